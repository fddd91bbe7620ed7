"""Any data set: IDX folders of any image size and class count, .npz files, grey levels."""

from __future__ import annotations

import gzip
import hashlib
import json

import numpy as np
import pytest

from experiments import mnist_dbn
from neuromem.data import DataError, load_dataset


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx_set(folder, n_train=120, n_test=30, shape=(5, 4), classes=3, gz=False):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train": n_train, "t10k": n_test}
    for prefix, n in parts.items():
        y = np.arange(n) % classes
        X = (rng.random((n,) + shape) * 60 + 190 * (y[:, None, None] == (np.arange(shape[1]) % classes))).astype(np.uint8)
        for kind, arr in (("images-idx3", X), ("labels-idx1", y)):
            raw = _idx(arr)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return folder


def test_idx_folder_of_any_size_and_class_count(tmp_path):
    folder = _write_idx_set(tmp_path / "idx", gz=True)
    ds = load_dataset(folder)
    assert ds["X_train"].shape == (120, 20) and ds["X_test"].shape == (30, 20)
    assert ds["image_shape"] == (5, 4) and ds["info"]["n_classes"] == 3
    assert 0 <= ds["X_train"].min() and ds["X_train"].max() <= 1
    sums = ds["info"]["sha256"]
    assert sums["train-images-idx3-ubyte.gz"] == hashlib.sha256(
        (folder / "train-images-idx3-ubyte.gz").read_bytes()).hexdigest()
    assert "structural" in ds["info"]["verified"]


def test_npz_file_with_its_checksum(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "mine.npz"
    np.savez(path, X_train=rng.random((50, 12)), y_train=np.arange(50) % 4,
             X_test=rng.random((10, 12)), y_test=np.arange(10) % 4)
    ds = load_dataset(path)
    assert ds["X_train"].dtype == np.float32 and ds["image_shape"] == (12,)
    assert ds["info"]["sha256"] == {"mine.npz": hashlib.sha256(path.read_bytes()).hexdigest()}


@pytest.mark.parametrize("arrays, message", [
    (dict(X_train=np.ones((4, 3)), y_train=np.zeros(4)), "lacks the arrays"),
    (dict(X_train=np.full((4, 3), 2.0), y_train=[0, 1, 0, 1], X_test=np.ones((2, 3)), y_test=[0, 1]),
     "must lie in \\[0, 1\\]"),
    (dict(X_train=np.ones((4, 3)), y_train=[0, 1, 0], X_test=np.ones((2, 3)), y_test=[0, 1]),
     "4 images but 3 labels"),
    (dict(X_train=np.ones((4, 3)), y_train=[0, 1, 0, 1], X_test=np.ones((2, 5)), y_test=[0, 1]),
     "differ in shape"),
    (dict(X_train=np.ones((4, 3)), y_train=[0, 1, 0, 1], X_test=np.ones((2, 3)), y_test=[0, 7]),
     "never occur in the training part"),
])
def test_npz_structure_is_checked(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(path)


def test_not_a_data_set(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="a data set is mnist, digits"):
        load_dataset(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="lacks train-images-idx3-ubyte"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("binarize", ["threshold", "stochastic"])
def test_cli_trains_on_an_idx_folder(tmp_path, binarize):
    folder = _write_idx_set(tmp_path / "idx")
    out = tmp_path / binarize
    argv = ["--dataset", str(folder), "--layers", "8", "--top", "16", "--epochs", "1",
            "--top-epochs", "2", "--batch-size", "20", "--binarize", binarize, "--final",
            "--no-progress", "--out", str(out)]
    assert mnist_dbn.main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"]["n_classes"] == 3 and res["dataset"]["image_shape"] == [5, 4]
    assert set(res["dataset"]["sha256"]) == {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}
    assert res["recipe"]["run"]["binarize"] == binarize
    assert ("stochastic" in res["dataset"]["binarize"]) == (binarize == "stochastic")
    assert res["accuracy"]["test"]["freeze"] >= 0
    assert "receptive_fields.png" in res["figures"]  # 5x4 fields drawn at their own shape


def test_stochastic_binarisation_draws_again_each_presentation():
    """Grey pixels reach the RBM as probabilities; each epoch drives a new 0/1 sample."""
    from networks import MemristiveRBM

    rbm = MemristiveRBM(4, batch_size=10, random_state=0)
    grey = np.full((10, 6), 0.5)
    rbm.fit(grey)
    a, b = rbm._binary_input(grey), rbm._binary_input(grey)
    assert set(np.unique(a)) <= {0.0, 1.0} and not np.array_equal(a, b)
    assert abs(np.mean([rbm._binary_input(grey).mean() for _ in range(50)]) - 0.5) < 0.05


@pytest.mark.parametrize("n_features", [16, 10])
def test_cli_draws_flat_npz_features(tmp_path, n_features):
    """An .npz of flat feature vectors trains and draws its figures: square fields when
    the count is a square (16 -> 4x4), a strip otherwise."""
    rng = np.random.default_rng(2)
    path = tmp_path / "flat.npz"
    np.savez(path, X_train=rng.random((60, n_features)), y_train=np.arange(60) % 3,
             X_test=rng.random((12, n_features)), y_test=np.arange(12) % 3)
    out = tmp_path / "run"
    argv = ["--dataset", str(path), "--layers", "6", "--top", "8", "--epochs", "1",
            "--top-epochs", "1", "--batch-size", "20", "--final", "--no-progress", "--out", str(out)]
    assert mnist_dbn.main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"]["image_shape"] == [n_features]
    assert "receptive_fields.png" in res["figures"] and (out / "receptive_fields.png").exists()
