"""Tests of the cloning study (experiments/clone.py, ``neuromem clone``)."""

from __future__ import annotations

import json

import pytest

from neuromem import cli


def test_clone_reports_original_copy_and_refresh_epochs(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["clone", "--epochs", "1", "--top-epochs", "3", "--refresh-epochs", "2",
                     "--seed", "4", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    m = results["metrics"]
    assert list(m) == ["original", "clone", "clone_refresh_1", "clone_refresh_2"]
    assert all(0 <= v <= 1 for v in m.values())
    # another chip: its own seed (device spread, neurons), every array written
    assert results["networks"]["copy"]["random_state"] == 1004 != results["networks"]["original"]["random_state"]
    assert results["networks"]["copy"]["n_top_iter"] == 3
    layers = results["networks"]["original"]["hidden_layer_sizes"]
    n_in = results["dataset"]["n_features"]
    sizes = [n_in] + list(layers)
    lower = sum((a + 1) * (b + 1) for a, b in zip(sizes[:-1], sizes[1:]))
    top = (sizes[-1] + 10 + 1) * (results["networks"]["original"]["n_top"] + 1)
    assert results["transfer"]["cells"] == lower + top
    assert results["transfer"]["programming_pulses"] > 0


@pytest.mark.parametrize("argv, words", [
    (["--refresh-epochs", "-1"], "--refresh-epochs must be >= 0"),
    (["--top-epochs", "0"], "--top-epochs must be >= 1"),
    (["--device", "nosuch"], "nosuch"),
])
def test_bad_arguments_exit_2_before_writing(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as exc:
        cli.main(["clone", *argv, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
