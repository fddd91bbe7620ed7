"""Tests of neuromem.data: MNIST IDX loading, checksums, locating, download; digits; split."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from neuromem import data
from neuromem.data import (
    MNIST_FILES,
    binarize,
    load_digits_binary,
    load_digits_scaled,
    load_mnist,
    parse_idx,
    train_validation_split,
)


def _shared_mnist() -> Path | None:
    candidates = []
    if os.environ.get("NEUROMEM_DATA"):
        env = Path(os.environ["NEUROMEM_DATA"])
        candidates += [env, env / "mnist"]
    candidates.append(Path(__file__).resolve().parents[1].parent / "shared/data/mnist")
    for c in candidates:
        if (c / "t10k-labels-idx1-ubyte.gz").is_file():
            return c
    return None


SHARED = _shared_mnist()
needs_mnist = pytest.mark.skipif(
    SHARED is None,
    reason="shared MNIST not found (set NEUROMEM_DATA or provide ../shared/data/mnist "
    "next to the repository)",
)


# --------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file (uint8) holding ``array``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.tobytes()


def small_set(n: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_small(directory: Path, kind: str = "train", gz: bool = True, n: int = 20):
    """Write a small valid IDX set for ``kind``; return (images, labels, {filename: md5})."""
    directory.mkdir(parents=True, exist_ok=True)
    images, labels = small_set(n)
    sums = {}
    for name, array in zip(MNIST_FILES[kind], (images, labels)):
        content = idx_bytes(array)
        if gz:
            content, name = gzip.compress(content, mtime=0), name + ".gz"
        (directory / name).write_bytes(content)
        sums[name] = (hashlib.md5(content).hexdigest(),)
    return images, labels, sums


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No NEUROMEM_DATA, and a default cache dir inside tmp_path."""
    monkeypatch.delenv("NEUROMEM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields (base url, dir)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# --------------------------------------------------------------------------- shared MNIST


@needs_mnist
def test_shared_mnist_train_and_test():
    X, y = load_mnist(SHARED, kind="train")
    assert X.shape == (60000, 784) and X.dtype == np.uint8
    assert y.shape == (60000,) and y.min() == 0 and y.max() == 9
    assert abs(X.mean() - 33.3) < 0.1
    assert np.bincount(y).min() > 5000
    Xt, yt = load_mnist(SHARED, kind="test", flatten=False)
    assert Xt.shape == (10000, 28, 28) and Xt.dtype == np.uint8
    assert yt.shape == (10000,) and set(np.unique(yt)) == set(range(10))


@needs_mnist
def test_shared_mnist_through_env_var(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("NEUROMEM_DATA", str(SHARED))
    X, y = load_mnist(kind="test", normalize=True)
    assert X.shape == (10000, 784) and X.dtype == np.float32
    assert 0.0 <= X.min() and X.max() <= 1.0


@needs_mnist
def test_uncompressed_copies_are_checksummed(tmp_path):
    for kind in ("test", "train"):
        for name in MNIST_FILES[kind]:
            raw = gzip.decompress((SHARED / f"{name}.gz").read_bytes())
            (tmp_path / name).write_bytes(raw)
    Xt, yt = load_mnist(tmp_path, kind="test")
    assert Xt.shape == (10000, 784)
    X, y = load_mnist(tmp_path, kind="train")
    assert X.shape == (60000, 784)


def test_both_training_image_checksums_accepted():
    assert {
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "4492a641ed1b428fd2303b86acdf434d",
    } <= set(data.MNIST_MD5["train-images-idx3-ubyte.gz"])
    assert len(data.MNIST_MD5["train-images-idx3-ubyte"]) == 2


# --------------------------------------------------------------------------- locating


@pytest.mark.parametrize("sub", ["", "mnist"])
def test_env_var_dir_or_mnist_subfolder(monkeypatch, tmp_path, no_env, sub):
    images, labels, sums = write_small(tmp_path / "d" / sub, kind="test")
    monkeypatch.setattr(data, "MNIST_MD5", sums)
    monkeypatch.setenv("NEUROMEM_DATA", str(tmp_path / "d"))
    X, y = load_mnist(kind="test")
    np.testing.assert_array_equal(X, images.reshape(len(images), -1))
    np.testing.assert_array_equal(y, labels)
    assert y.dtype == np.int64


def test_path_argument_beats_env_var(monkeypatch, tmp_path, no_env):
    """Both places hold a valid set; the path argument's is loaded."""
    images, labels, sums = write_small(tmp_path / "a", kind="train", n=20)
    _, _, env_sums = write_small(tmp_path / "env", kind="train", n=30)
    monkeypatch.setenv("NEUROMEM_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(data, "MNIST_MD5", {k: sums[k] + env_sums[k] for k in sums})
    assert load_mnist(kind="train")[0].shape == (30, 784)  # the env folder is usable
    X, y = load_mnist(tmp_path / "a")
    np.testing.assert_array_equal(X, images.reshape(20, -1))
    np.testing.assert_array_equal(y, labels)


def test_default_cache_dir(monkeypatch, tmp_path, no_env):
    assert data.default_data_dir() == tmp_path / "cache" / "neuromem" / "mnist"
    _, _, sums = write_small(data.default_data_dir(), kind="test")
    monkeypatch.setattr(data, "MNIST_MD5", sums)
    assert load_mnist(kind="test")[0].shape == (20, 784)


def test_uncompressed_small_files(monkeypatch, tmp_path):
    images, _, sums = write_small(tmp_path, kind="test", gz=False)
    monkeypatch.setattr(data, "MNIST_MD5", sums)
    X, _ = load_mnist(tmp_path, kind="test", flatten=False)
    np.testing.assert_array_equal(X, images)
    X[0, 0, 0] = 7  # the returned array is writable


def test_missing_files_say_where_and_how(tmp_path, no_env):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path / "nothing", kind="test")
    message = str(info.value)
    assert str(tmp_path / "nothing") in message
    assert "NEUROMEM_DATA" in message and "download=True" in message


def test_bad_kind():
    with pytest.raises(ValueError, match="kind"):
        load_mnist(kind="validation")


# --------------------------------------------------------------------------- validation


def test_checksum_mismatch_names_file_and_both_sums(monkeypatch, tmp_path):
    _, _, sums = write_small(tmp_path, kind="test")
    actual = sums["t10k-images-idx3-ubyte.gz"][0]
    wrong = "0" * 32
    monkeypatch.setattr(data, "MNIST_MD5", {**sums, "t10k-images-idx3-ubyte.gz": (wrong,)})
    with pytest.raises(ValueError, match="checksum mismatch") as info:
        load_mnist(tmp_path, kind="test")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and actual in message and wrong in message
    X, _ = load_mnist(tmp_path, kind="test", verify=False)  # verify=False skips the check
    assert X.shape == (20, 784)


def test_real_table_rejects_tampered_file(tmp_path):
    write_small(tmp_path, kind="test")  # small files, not in the real table
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_mnist(tmp_path, kind="test")


def _write_raw(tmp_path, images_bytes: bytes, labels_bytes: bytes):
    names = MNIST_FILES["test"]
    (tmp_path / names[0]).write_bytes(images_bytes)
    (tmp_path / names[1]).write_bytes(labels_bytes)


def test_bad_magic(tmp_path):
    images, labels = small_set()
    bad = bytearray(idx_bytes(images))
    bad[2] = 0x42  # unknown element type
    _write_raw(tmp_path, bytes(bad), idx_bytes(labels))
    with pytest.raises(ValueError, match="magic"):
        load_mnist(tmp_path, kind="test", verify=False)
    # images and labels swapped
    _write_raw(tmp_path, idx_bytes(labels), idx_bytes(images))
    with pytest.raises(ValueError, match="magic"):
        load_mnist(tmp_path, kind="test", verify=False)


@pytest.mark.parametrize("cut", [2, 10, 100])
def test_truncated(tmp_path, cut):
    images, labels = small_set()
    good = idx_bytes(images)
    truncated = good[: len(good) - cut] if cut == 100 else good[:cut]
    _write_raw(tmp_path, truncated, idx_bytes(labels))
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(tmp_path, kind="test", verify=False)


def test_truncated_gzip(tmp_path):
    images, labels = small_set()
    names = MNIST_FILES["test"]
    packed = gzip.compress(idx_bytes(images))
    (tmp_path / f"{names[0]}.gz").write_bytes(packed[: len(packed) // 2])
    (tmp_path / f"{names[1]}.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(tmp_path, kind="test", verify=False)


def test_trailing_bytes(tmp_path):
    images, labels = small_set()
    _write_raw(tmp_path, idx_bytes(images) + b"\0", idx_bytes(labels))
    with pytest.raises(ValueError, match="trailing"):
        load_mnist(tmp_path, kind="test", verify=False)


def test_count_mismatch(tmp_path):
    images, labels = small_set(20)
    _write_raw(tmp_path, idx_bytes(images), idx_bytes(labels[:19]))
    with pytest.raises(ValueError, match="count mismatch"):
        load_mnist(tmp_path, kind="test", verify=False)


def test_parse_idx_big_endian_types():
    values = np.arange(6, dtype=">i4").reshape(2, 3)
    content = bytes([0, 0, 0x0C, 2]) + np.array([2, 3], ">u4").tobytes() + values.tobytes()
    out = parse_idx(content)
    assert out.dtype == np.dtype(np.int32)
    np.testing.assert_array_equal(out, np.arange(6).reshape(2, 3))


# --------------------------------------------------------------------------- download


def test_download_success(monkeypatch, tmp_path, no_env, server):
    base_url, root = server
    images, labels, sums = write_small(root, kind="test")
    monkeypatch.setattr(data, "MNIST_MD5", sums)
    target = tmp_path / "target"
    X, y = load_mnist(target, kind="test", download=True, url=base_url, timeout=5)
    np.testing.assert_array_equal(X, images.reshape(len(images), -1))
    assert sorted(p.name for p in target.iterdir()) == sorted(sums)  # no temp files left
    # second call reads the cached files, no server needed
    X2, _ = load_mnist(target, kind="test", url="http://127.0.0.1:1/")
    np.testing.assert_array_equal(X, X2)


def test_download_checksum_failure_leaves_nothing(monkeypatch, tmp_path, no_env, server):
    base_url, root = server
    _, _, sums = write_small(root, kind="test")
    sums["t10k-images-idx3-ubyte.gz"] = ("f" * 32,)
    monkeypatch.setattr(data, "MNIST_MD5", sums)
    target = tmp_path / "target"
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_mnist(target, kind="test", download=True, url=base_url, timeout=5)
    assert not target.exists() or list(target.iterdir()) == []


def test_download_missing_on_server(monkeypatch, tmp_path, no_env, server):
    base_url, _ = server  # serves an empty directory: 404
    target = tmp_path / "target"
    with pytest.raises(ConnectionError, match="could not download"):
        load_mnist(target, kind="test", download=True, url=base_url, timeout=5)
    assert list(target.iterdir()) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_unreachable(tmp_path, no_env):
    target = tmp_path / "target"
    url = f"http://127.0.0.1:{_closed_port()}/mnist"
    with pytest.raises(ConnectionError) as info:
        load_mnist(target, kind="test", download=True, url=url, timeout=5)
    message = str(info.value)
    assert "could not download" in message and "offline?" in message
    assert str(target) in message and "NEUROMEM_DATA" in message
    assert isinstance(info.value, OSError)
    assert list(target.iterdir()) == []


# --------------------------------------------------------------------------- digits, split


def test_digits_scaled_and_binary():
    X, y = load_digits_scaled()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))
    Xb, yb = load_digits_binary()
    assert Xb.dtype == np.uint8 and set(np.unique(Xb)) == {0, 1}
    np.testing.assert_array_equal(Xb, (X > 0.5).astype(np.uint8))
    np.testing.assert_array_equal(yb, y)


def test_binarize_default_thresholds():
    as_uint8 = np.array([0, 127, 128, 255], np.uint8)
    np.testing.assert_array_equal(binarize(as_uint8), [0, 0, 1, 1])
    np.testing.assert_array_equal(binarize(np.array([0.2, 0.5, 0.7])), [0, 0, 1])
    assert binarize(np.array([3.0]), threshold=2, dtype=np.float32).dtype == np.float32


def test_train_validation_split_deterministic_stratified():
    X, y = load_digits_scaled()
    a = train_validation_split(X, y, 500, seed=3)
    b = train_validation_split(X, y, 500, seed=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    X_tr, X_val, y_tr, y_val = a
    assert len(X_val) == len(y_val) == 500 and len(X_tr) == len(X) - 500
    # stratified: class proportions kept within one sample
    expected = np.bincount(y) * 500 / len(y)
    assert np.all(np.abs(np.bincount(y_val, minlength=10) - expected) <= 1)
    c = train_validation_split(X, y, 500, seed=4)
    assert not np.array_equal(a[3], c[3])
    with pytest.raises(ValueError, match="n_validation must lie in 1..1796, not 1797"):
        train_validation_split(X, y, len(y), seed=0)
