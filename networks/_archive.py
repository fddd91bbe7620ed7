"""Checksummed ``.npz`` + JSON archives (no pickle) for the estimators' save/load."""

from __future__ import annotations

import errno
import hashlib
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from neuromem import get_device

METADATA = "__metadata__"


def params_to_json(params: dict) -> dict:
    """An estimator's ``get_params()`` as JSON values (a device as its description)."""
    out = {}
    for key, value in params.items():
        if hasattr(value, "describe"):  # a Device instance
            out[key] = {"__device__": value.describe()}
        elif isinstance(value, np.integer):
            out[key] = int(value)
        elif isinstance(value, np.floating):
            out[key] = float(value)
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = value
    return out


def params_from_json(params: dict) -> dict:
    """The inverse of :func:`params_to_json` (a described device is built again)."""
    out = dict(params)
    for key, value in params.items():
        if isinstance(value, dict) and "__device__" in value:
            spec = dict(value["__device__"])
            name = spec.pop("device")
            spec.pop("source", None)
            out[key] = get_device(name, **spec)
    return out


def metadata_digest(meta: dict) -> str:
    """SHA-256 of the metadata without its own checksum (keys sorted)."""
    body = {k: v for k, v in meta.items() if k != "metadata_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _array_digest(value) -> str:
    return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()


def write_archive(path, arrays: dict, meta: dict, fmt: str, version: int) -> Path:
    """Write ``arrays`` and JSON ``meta`` atomically (an interrupted save never leaves
    half a file), with a SHA-256 of every array and of the metadata."""
    path = Path(path)
    meta = dict(meta, format=fmt, version=version,
                sha256={k: _array_digest(v) for k, v in arrays.items()})
    meta["metadata_sha256"] = metadata_digest(meta)
    out = dict(arrays)
    out[METADATA] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        np.savez_compressed(tmp, **out)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_archive(path, fmt: str, version: int, what: str | None = None) -> tuple[dict, dict]:
    """``(arrays, meta)`` of a file written by :func:`write_archive` with this format;
    anything else (missing, foreign, damaged or altered) raises with the file named
    (``what`` names the kind of file in the messages)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
    what = what or f"a {fmt} archive"
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not {what} (not an .npz file)")
    damaged = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except damaged as exc:
        raise ValueError(f"{path} is not {what} (damaged: {exc})") from None
    if METADATA not in arrays:
        raise ValueError(f"{path} is not {what} (no neuromem metadata)")
    try:
        meta = json.loads(arrays.pop(METADATA).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: metadata is not a JSON object")
    if meta.get("format") != fmt or meta.get("version") != version:
        raise ValueError(f"{path}: format {meta.get('format')!r} v{meta.get('version')!r}, "
                         f"expected {fmt!r} v{version}")
    if meta.get("metadata_sha256") != metadata_digest(meta):
        raise ValueError(f"{path}: metadata fails its checksum (file altered?)")
    hashes = meta.get("sha256", {})
    if set(hashes) != set(arrays):
        raise ValueError(f"{path}: arrays {sorted(set(arrays) ^ set(hashes))} do not match the metadata")
    for key, value in arrays.items():
        if _array_digest(value) != hashes[key]:
            raise ValueError(f"{path}: array {key!r} fails its checksum (file altered?)")
    return arrays, meta
