"""What a resumed run must match, and how its files are written.

Every experiment that checkpoints compares the settings saved beside its checkpoint
with the ones the command line builds now and refuses to resume when a setting that
shapes training differs, naming each difference, so a resumed run never silently
mixes two configurations. Its JSON files are written whole or not at all
(:func:`write_json`), so a run killed while writing leaves the previous file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def plain(value):
    """``value`` as it reads back from JSON (tuples become lists, unknown objects their
    ``str``), so a saved setting and a freshly built one compare equal when they are."""
    return json.loads(json.dumps(value, default=_json_value))


def _json_value(obj):
    if hasattr(obj, "tolist"):  # NumPy scalars and arrays
        return obj.tolist()
    return str(obj)


def write_json(path, data) -> None:
    """Write ``data`` to ``path`` as JSON atomically: a temporary file named after this
    process (several Dask workers may write beside each other), then a rename. NumPy
    values are written as plain numbers and lists, other unknown objects as their
    ``str``."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=_json_value))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def setting_differences(saved: dict, now: dict, keys=None) -> list[str]:
    """``"name: checkpoint X, now Y"`` for every setting in ``keys`` (all the names of
    both by default) whose value differs between ``saved`` and ``now``; a name missing
    on one side reads as ``None``."""
    saved, now = plain(saved), plain(now)
    names = sorted(set(saved) | set(now)) if keys is None else list(keys)
    return [f"{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}"
            for k in names if saved.get(k) != now.get(k)]


def refusal(out, differences: list[str]) -> str:
    """The message of a refused resume: what differs and the two ways on."""
    return (f"the checkpoint in {out} was made with other settings ("
            + "; ".join(differences)
            + "); use --no-resume to start over, or choose another --out")
