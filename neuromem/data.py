"""Data sets: MNIST from IDX files, scikit-learn's small digits, and a validation split.

MNIST
-----
:func:`load_mnist` reads the four standard IDX files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``),
gzipped (``.gz``, preferred when both exist) or not. The directory is found by, in order:

1. the ``path`` argument;
2. the ``NEUROMEM_DATA`` environment variable;
3. the default cache directory ``$XDG_CACHE_HOME/neuromem/mnist``
   (``~/.cache/neuromem/mnist``).

For 1 and 2 the files may sit in the directory itself or in a ``mnist/`` subfolder.

Every file is checked against :data:`MNIST_MD5` (``verify=True``, the default), both in
its gzipped and its uncompressed form; the table accepts two training-image files, the
canonical one and one rebuilt from a PNG copy of MNIST (same images, other bytes).
Every file is also validated structurally (IDX magic number, dimensions, length, image and
label counts, label range), with or without ``verify``.

``download=True`` fetches missing files from ``url`` (default :data:`DEFAULT_MNIST_URL`)
with :mod:`urllib`, into a temporary file in the target directory, and moves it into place
only after its checksum matched: a failed or corrupt download never leaves a file behind.

Tune on a validation split of the training set (:func:`train_validation_split`), never on
the test set.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "DataError",
    "DEFAULT_MNIST_URL",
    "MNIST_FILES",
    "MNIST_MD5",
    "binarize",
    "default_data_dir",
    "load_digits_binary",
    "load_dataset",
    "load_digits_scaled",
    "load_mnist",
    "parse_idx",
    "train_validation_split",
]

#: Base URL of the mirror used by ``load_mnist(download=True)`` (the one torchvision uses;
#: it serves the canonical ``.gz`` files).
DEFAULT_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

#: Environment variable naming a directory with the MNIST files (or a ``mnist/`` subfolder).
ENV_VAR = "NEUROMEM_DATA"

#: ``kind`` -> (images file, labels file), without the ``.gz`` suffix.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: Accepted md5 sums, by file name: the gzipped files and their decompressed contents.
MNIST_MD5: dict[str, tuple[str, ...]] = {
    "train-images-idx3-ubyte.gz": (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",  # canonical
        "4492a641ed1b428fd2303b86acdf434d",  # rebuilt from a PNG copy of MNIST
    ),
    "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432",),
    "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3",),
    "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c",),
    "train-images-idx3-ubyte": (
        "6bbc9ace898e44ae57da46a324031adb",  # canonical
        "ff31079e9f752de13a2ec1d4a52d8877",  # rebuilt from a PNG copy of MNIST
    ),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624",),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea",),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637",),
}

# IDX element-type codes (third byte of the magic number).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MNIST_IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dims
_MNIST_LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dim
_MNIST_MAGICS = (_MNIST_IMAGES_MAGIC, _MNIST_LABELS_MAGIC)


class DataError(ValueError):
    """A data file that cannot be used. ``problem`` says what is wrong with which file;
    the message adds what to do about it from Python (a command line says it its way)."""

    def __init__(self, problem: str, hint: str = ""):
        super().__init__(f"{problem} {hint}".strip())
        self.problem = problem


# --------------------------------------------------------------------------- locating


def default_data_dir() -> Path:
    """The default MNIST cache directory: ``$XDG_CACHE_HOME/neuromem/mnist``."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "neuromem" / "mnist"


def _base_dir(path) -> tuple[Path, str]:
    """The directory to search and a words description of where it came from."""
    if path is not None:
        return Path(path).expanduser(), "the path argument"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser(), f"${ENV_VAR}"
    return default_data_dir(), "the default cache directory"


def _find_file(directory: Path, name: str) -> Path | None:
    """``name.gz`` or ``name`` in ``directory`` (the gzipped one preferred), or None."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _candidates(base: Path) -> list[Path]:
    return [base, base / "mnist"]


# --------------------------------------------------------------------------- checksums


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _check_md5(name: str, actual: str, where: str) -> None:
    """Raise ValueError unless ``actual`` is an accepted md5 for file ``name``."""
    expected = MNIST_MD5.get(name)
    if not expected:
        raise DataError(f"no known md5 checksum for {name!r} ({where})",
                        "Pass verify=False to skip the check.")
    if actual not in expected:
        raise DataError(
            f"checksum mismatch for {name} ({where}): md5 is {actual}, expected "
            f"{' or '.join(expected)}; the file is corrupt, truncated or not the MNIST file.",
            "Delete it and fetch it again (load_mnist(download=True)), or pass "
            "verify=False to skip the check.")


# --------------------------------------------------------------------------- IDX parsing


def _read_bytes(file: Path, verify: bool) -> bytes:
    """The (decompressed) content of ``file``, checksum-verified when ``verify``."""
    raw = file.read_bytes()
    if verify:
        _check_md5(file.name, _md5(raw), str(file))
    if file.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:  # truncated or not gzip at all
        raise DataError(f"{file}: corrupt or truncated gzip data ({exc})") from exc


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse an IDX file's content into an array of its shape (big-endian types converted).

    Raises ValueError for a bad magic number, a truncated header or body, or trailing bytes.
    """
    if len(data) < 4:
        raise ValueError(f"{source}: truncated IDX file ({len(data)} bytes, no header)")
    zero, type_code, ndim = data[0] | data[1], data[2], data[3]
    if zero != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{source}: bad IDX magic number 0x{int.from_bytes(data[:4], 'big'):08x} "
            "(expected 0x00000801 for labels or 0x00000803 for images); not an IDX file, "
            "or a gzipped file without the .gz suffix?"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{source}: truncated IDX header ({len(data)} of {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    count = int(np.prod(shape, dtype=np.int64))
    expected = header + count * dtype.itemsize
    if len(data) < expected:
        raise ValueError(
            f"{source}: truncated IDX file: {len(data)} bytes, expected {expected} for "
            f"shape {shape}"
        )
    if len(data) > expected:
        raise ValueError(
            f"{source}: {len(data) - expected} unexpected trailing bytes after the IDX "
            f"data of shape {shape}"
        )
    array = np.frombuffer(data, dtype, count=count, offset=header)
    return array.reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _load_idx(file: Path, magic: int, verify: bool) -> np.ndarray:
    data = _read_bytes(file, verify)
    found = int.from_bytes(data[:4], "big")
    if len(data) >= 4 and found != magic and found in _MNIST_MAGICS:
        raise ValueError(
            f"{file}: bad IDX magic number 0x{found:08x}, expected 0x{magic:08x} "
            "(images and labels files swapped?)"
        )
    array = parse_idx(data, str(file))
    if found != magic:
        raise ValueError(f"{file}: bad IDX magic number 0x{found:08x}, expected 0x{magic:08x}")
    return array


# --------------------------------------------------------------------------- download


def _download(url: str, target: Path, verify: bool, timeout: float) -> None:
    """Fetch ``url`` to ``target`` via a temporary file, checksum-verified before the move."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".part", dir=target.parent
    )
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(
                url, timeout=timeout
            ) as response:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            # URLError/HTTPError (refused, DNS, 404), timeouts, truncated responses
            reason = getattr(exc, "reason", None) or exc
            raise ConnectionError(
                f"could not download {url} ({reason}) (offline?). Place the MNIST files "
                f"({target.name}, ...) in {target.parent}, or set {ENV_VAR} to a "
                "directory that contains them, or pass another base url=."
            ) from exc
        if verify:
            _check_md5(target.name, digest.hexdigest(), f"downloaded from {url}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- MNIST


def load_mnist(
    path=None,
    *,
    kind: str = "train",
    download: bool = False,
    url: str | None = None,
    verify: bool = True,
    flatten: bool = True,
    normalize: bool = False,
    timeout: float = 60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Load the MNIST training (``kind="train"``, 60,000) or test (``"test"``, 10,000) set.

    Parameters
    ----------
    path
        Directory holding the IDX files (or a ``mnist/`` subfolder with them). Default: the
        ``NEUROMEM_DATA`` environment variable, else :func:`default_data_dir`.
    kind
        ``"train"`` or ``"test"``. The test set is held out: tune on
        :func:`train_validation_split` of the training set.
    download
        Fetch missing files from ``url`` (checksum-verified before they are moved in place).
    url
        Base URL of a mirror holding the four ``.gz`` files (default
        :data:`DEFAULT_MNIST_URL`).
    verify
        Check every file's md5 against :data:`MNIST_MD5` (gzipped and uncompressed files
        alike). ``False`` skips it; the structural checks remain.
    flatten
        Images as ``(n, 784)`` (default) or ``(n, 28, 28)``.
    normalize
        Return images as float32 in [0, 1] (``/ 255``) instead of uint8 0..255.
    timeout
        Socket timeout in seconds for each download.

    Returns
    -------
    X, y
        Images (uint8, or float32 with ``normalize``) and labels (int64, 0..9).

    Raises
    ------
    FileNotFoundError
        Files missing and ``download=False``.
    ValueError
        Checksum mismatch, bad magic number, truncated file, image/label count mismatch.
    ConnectionError
        A download failed.
    """
    if kind not in MNIST_FILES:
        raise ValueError(f"kind must be 'train' or 'test', not {kind!r}")
    names = MNIST_FILES[kind]
    base, source = _base_dir(path)

    directory = files = None
    for candidate in _candidates(base):
        found = [_find_file(candidate, name) for name in names]
        if all(found):
            directory, files = candidate, found
            break

    if files is None and download:
        # Complete a partial set where it lies; else download into mnist/ if it exists.
        directory = next(
            (c for c in _candidates(base) if any(_find_file(c, n) for n in names)),
            base / "mnist" if (base / "mnist").is_dir() else base,
        )
        base_url = (url or DEFAULT_MNIST_URL).rstrip("/") + "/"
        files = []
        for name in names:
            existing = _find_file(directory, name)
            if existing is None:
                existing = directory / f"{name}.gz"
                _download(base_url + existing.name, existing, verify, timeout)
            files.append(existing)

    if files is None:
        looked = " and ".join(str(c) for c in _candidates(base))
        raise FileNotFoundError(
            f"MNIST {kind} files ({names[0]}[.gz], {names[1]}[.gz]) not found in {looked} "
            f"(from {source}). Set {ENV_VAR} to a directory that contains them (or a "
            "mnist/ subfolder with them), pass path=..., or call "
            "load_mnist(..., download=True) to fetch them."
        )

    images = _load_idx(files[0], _MNIST_IMAGES_MAGIC, verify)
    labels = _load_idx(files[1], _MNIST_LABELS_MAGIC, verify)
    if len(images) != len(labels):
        raise ValueError(
            f"image/label count mismatch: {len(images)} images in {files[0]} but "
            f"{len(labels)} labels in {files[1]}"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{files[1]}: labels outside 0..9 (max {labels.max()})")

    X = images.reshape(len(images), -1) if flatten else images
    if normalize:
        X = X.astype(np.float32) / np.float32(255.0)
    elif not X.flags.writeable:
        X = X.copy()
    return X, labels.astype(np.int64)


# --------------------------------------------------------------------------- small digits


def load_digits_scaled(dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits (1,797 images), features in [0, 1].

    Returns ``X`` of shape (1797, 64) (pixel values 0..16 divided by 16) and ``y`` (int64).
    Needs no download: the data ship with scikit-learn.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(dtype)
    return X, digits.target.astype(np.int64)


def load_digits_binary(threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The 8×8 digits of :func:`load_digits_scaled` binarized (``x > threshold``), 0/1 uint8."""
    X, y = load_digits_scaled(np.float64)
    return binarize(X, threshold), y


def binarize(X, threshold: float | None = None, dtype=np.uint8) -> np.ndarray:
    """``1`` where ``X > threshold`` (strictly), else ``0``.

    ``threshold=None`` picks 127 for integer data (MNIST uint8) and 0.5 otherwise (data in
    [0, 1]).
    """
    X = np.asarray(X)
    if threshold is None:
        threshold = 127 if np.issubdtype(X.dtype, np.integer) else 0.5
    return (X > threshold).astype(dtype)


# --------------------------------------------------------------------------- splitting


def train_validation_split(X, y, n_validation, seed=0, *, stratify: bool = True):
    """Deterministic split of a *training* set into training and validation parts.

    Stratified by default (each class keeps its proportion in both parts), via
    :func:`sklearn.model_selection.train_test_split` with ``random_state=seed``; plain
    random with ``stratify=False``. The same ``seed`` gives the same split.

    ``n_validation`` is a count (int) or a fraction in (0, 1).

    Returns ``X_train, X_val, y_train, y_val`` (scikit-learn's order).
    """
    from sklearn.model_selection import train_test_split

    n = len(y)
    if len(X) != n:
        raise ValueError(f"X has {len(X)} rows but y has {n}")
    if isinstance(n_validation, float) and not 0.0 < n_validation < 1.0:
        raise ValueError(f"a fractional n_validation must lie in (0, 1), not {n_validation}")
    if isinstance(n_validation, (int, np.integer)) and not 0 < n_validation < n:
        raise ValueError(f"n_validation must lie in 1..{n - 1}, not {n_validation}")
    return train_test_split(
        X,
        y,
        test_size=n_validation,
        random_state=seed,
        shuffle=True,
        stratify=y if stratify else None,
    )


# --------------------------------------------------------------------------- any data set


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _unit_interval(X: np.ndarray, where: str) -> np.ndarray:
    """Pixels as float32 in [0, 1]: integers over 255 (or their maximum beyond that),
    floats as they are (they must already lie in [0, 1])."""
    if X.dtype.kind in "iu":
        if X.size and X.min() < 0:
            raise DataError(f"{where}: negative pixel values")
        top = max(255, int(X.max()) if X.size else 255)
        return (X.astype(np.float32) / np.float32(top))
    if X.dtype.kind == "b":
        return X.astype(np.float32)
    if X.dtype.kind != "f":
        raise DataError(f"{where}: pixels must be numbers, got dtype {X.dtype}")
    X = X.astype(np.float32)
    if X.size and (not np.all(np.isfinite(X)) or X.min() < 0 or X.max() > 1):
        raise DataError(f"{where}: float pixels must lie in [0, 1] (scale them first)")
    return X


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be one-dimensional, got shape {y.shape}")
    if y.dtype.kind == "f" and y.size and np.any(y != np.round(y)):
        raise DataError(f"{where}: labels must be whole numbers")
    if y.dtype.kind not in "iuf":
        raise DataError(f"{where}: labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)


def _pair(X, y, where):
    if X.ndim not in (2, 3):
        raise DataError(f"{where}: images must have shape (n, features) or (n, height, width), "
                        f"got {X.shape}")
    if len(X) != len(y):
        raise DataError(f"{where}: {len(X)} images but {len(y)} labels")
    if len(X) == 0:
        raise DataError(f"{where}: no images")
    shape = X.shape[1:] if X.ndim == 3 else (X.shape[1],)
    return _unit_interval(X.reshape(len(X), -1), where), _labels(y, where), shape


def _idx_dir(directory: Path) -> tuple[dict, dict]:
    arrays, files = {}, {}
    for kind, (images, labels) in MNIST_FILES.items():
        for key, name in ((f"X_{kind}", images), (f"y_{kind}", labels)):
            found = _find_file(directory, name)
            if found is None:
                raise FileNotFoundError(f"{directory} lacks {name}[.gz] (an IDX data set needs "
                                        f"the four files {', '.join(n for p in MNIST_FILES.values() for n in p)})")
            raw = found.read_bytes()
            if found.suffix == ".gz":
                try:
                    raw = gzip.decompress(raw)
                except (EOFError, OSError, zlib.error) as exc:
                    raise DataError(f"{found}: corrupt or truncated gzip data ({exc})") from None
            arrays[key] = parse_idx(raw, str(found))
            files[found.name] = _sha256(found)
    return arrays, files


def load_dataset(spec, *, data_dir=None, test_fraction: float = 0.2, seed: int = 0) -> dict:
    """A labelled image set, split into training and test parts, pixels in [0, 1].

    ``spec`` is ``"mnist"`` (the checksum-verified IDX files, found as by
    :func:`load_mnist` from ``data_dir``), ``"digits"`` (scikit-learn's bundled 8x8
    digits; a stratified ``test_fraction`` is held out with ``seed``), a directory of IDX
    files under the standard MNIST names (any image size and number of classes), or an
    ``.npz`` file with arrays ``X_train``, ``y_train``, ``X_test``, ``y_test`` (images as
    ``(n, features)`` or ``(n, height, width)``; integers are divided by 255, floats
    must already lie in [0, 1]). Files other than the known MNIST set pass structural
    checks only; their SHA-256 sums are returned in ``info["sha256"]``.

    Returns a dict with ``X_train``, ``y_train``, ``X_test``, ``y_test`` (float32
    pixels, int64 labels), ``image_shape`` and ``info``. Raises FileNotFoundError,
    :class:`DataError` (a ValueError) for unusable content.
    """
    text = str(spec)
    info = {"name": text}
    if text == "mnist":
        X, y = load_mnist(data_dir, kind="train")
        Xt, yt = load_mnist(data_dir, kind="test")
        info["verified"] = "md5 of every file against MNIST_MD5"
        where = ("MNIST training set", "MNIST test set")
    elif text == "digits":
        X_all, y_all = load_digits_scaled(np.float32)
        X, Xt, y, yt = train_validation_split(X_all, y_all, test_fraction, seed)
        info["test_fraction"], info["split_seed"] = test_fraction, seed
        where = ("digits", "digits")
        X, Xt = X.reshape(-1, 8, 8), Xt.reshape(-1, 8, 8)
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{text}: no such file or directory (a data set is mnist, "
                                    "digits, a directory of IDX files or an .npz file)")
        if path.is_dir():
            arrays, files = _idx_dir(path)
        elif path.suffix == ".npz":
            try:
                with np.load(path, allow_pickle=False) as f:
                    missing = {"X_train", "y_train", "X_test", "y_test"} - set(f.files)
                    if missing:
                        raise DataError(f"{path} lacks the arrays {sorted(missing)} (it needs "
                                        "X_train, y_train, X_test, y_test)")
                    arrays = {k: f[k] for k in ("X_train", "y_train", "X_test", "y_test")}
            except DataError:
                raise
            except (OSError, ValueError, EOFError, zlib.error) as exc:
                raise DataError(f"{path} is not a readable .npz file ({exc})") from None
            files = {path.name: _sha256(path)}
        else:
            raise DataError(f"{text}: a data set is mnist, digits, a directory of IDX files or "
                            "an .npz file")
        X, y, Xt, yt = arrays["X_train"], arrays["y_train"], arrays["X_test"], arrays["y_test"]
        info["sha256"] = files
        info["verified"] = "structural checks only (not a known data set)"
        where = (f"{text} (training part)", f"{text} (test part)")
    X, y, shape = _pair(np.asarray(X), np.asarray(y), where[0])
    Xt, yt, shape_t = _pair(np.asarray(Xt), np.asarray(yt), where[1])
    if shape != shape_t:
        raise DataError(f"{text}: training images {shape} and test images {shape_t} differ in shape")
    unseen = sorted(set(np.unique(yt).tolist()) - set(np.unique(y).tolist()))
    if unseen:
        raise DataError(f"{text}: test labels {unseen[:5]} never occur in the training part")
    if len(np.unique(y)) < 2:
        raise DataError(f"{text}: the training part holds fewer than 2 classes")
    info.update({"n_train": int(len(y)), "n_test": int(len(yt)), "image_shape": list(shape),
                 "n_classes": int(len(np.unique(y)))})
    return {"X_train": X, "y_train": y, "X_test": Xt, "y_test": yt,
            "image_shape": tuple(shape), "info": info}
