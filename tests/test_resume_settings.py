"""The settings check shared by the experiments that resume from a checkpoint."""
import json
import os

import numpy as np
import pytest

from experiments.checkpoints import refusal, setting_differences, write_json


def test_equal_settings_read_back_from_json_have_no_difference():
    saved = {"sizes": [64, 32], "rate": 0.5, "seed": 3}          # as read from JSON
    now = {"sizes": (64, 32), "rate": 0.5, "seed": np.int64(3)}  # as built by the command
    assert setting_differences(saved, now) == []


def test_each_difference_is_named_with_both_values():
    diff = setting_differences({"rate": 0.5, "epochs": 8}, {"rate": 0.25, "epochs": 8, "extra": 1})
    assert diff == ["extra: checkpoint None, now 1", "rate: checkpoint 0.5, now 0.25"]


def test_only_the_keys_asked_for_are_compared():
    saved, now = {"rate": 0.5, "threads": 1}, {"rate": 0.5, "threads": 4}
    assert setting_differences(saved, now, keys=["rate"]) == []
    assert setting_differences(saved, now) == ["threads: checkpoint 1, now 4"]


def test_the_refusal_names_the_folder_the_differences_and_the_ways_on():
    msg = refusal("runs/a", ["rate: checkpoint 0.5, now 0.25", "epochs: checkpoint 8, now 12"])
    assert "runs/a" in msg and "rate: checkpoint 0.5, now 0.25; epochs: checkpoint 8, now 12" in msg
    assert "--no-resume" in msg and "--out" in msg


def test_write_json_is_atomic_and_writes_numpy_values_plainly(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json(path, {"n": np.int64(3), "x": np.float32(0.5), "a": np.arange(2), "p": tmp_path})
    assert json.loads(path.read_text()) == {"n": 3, "x": 0.5, "a": [0, 1], "p": str(tmp_path)}
    # a write that fails leaves the previous file and no temporary one

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"n": 4})
    assert json.loads(path.read_text())["n"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
