"""Tests of the lifetime study (experiments/lifetime.py, ``neuromem lifetime``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import lifetime
from networks import MemristiveDBN
from neuromem import cli
from neuromem.data import load_digits_binary


@pytest.mark.parametrize("device, drifts", [("pcm", True), ("yflash", False)])
def test_wait_ages_every_array_of_a_drifting_device_only(device, drifts):
    X, y = load_digits_binary()
    dbn = MemristiveDBN((8,), 16, n_iter=1, n_top_iter=1, device=device, random_state=0).fit(X[:300], y[:300])
    before = [m.weights().copy() for m in dbn.layers_ + [dbn.top_]]
    lifetime._wait(dbn, 3.15e7)
    after = [m.weights() for m in dbn.layers_ + [dbn.top_]]
    changed = [not np.allclose(a, b) for a, b in zip(before, after)]
    assert all(changed) if drifts else not any(changed)


def test_command_measures_each_time_then_refresh(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["lifetime", "--device", "yflash", "--epochs", "1", "--top-epochs", "2",
                     "--times", "10", "1e6", "--refresh-epochs", "2", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    m = results["metrics"]
    assert list(m) == ["t_0", "t_10", "t_1e+06", "refresh_1", "refresh_2"]
    # the Y-Flash model keeps its charge: nothing changes with time alone
    assert m["t_0"] == m["t_10"] == m["t_1e+06"]
    assert results["device_drifts"] is False and results["network"]["n_top_iter"] == 2


def test_cycles_retrain_the_same_chip_and_wear_it_monotonically(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["lifetime", "--device", "yflash", "--epochs", "1", "--top-epochs", "2",
                     "--cycles", "0", "1", "3", "--times", "10", "--refresh-epochs", "0",
                     "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    m, ageing = results["metrics"], results["ageing"]
    assert list(m) == ["cycle_0", "cycle_1", "cycle_3", "t_0", "t_10"]
    assert all(0.0 <= v <= 1.0 for v in m.values()) and m["t_0"] == m["cycle_3"]
    assert list(ageing) == ["cycle_0", "cycle_1", "cycle_3"] and len(results["rewinds"]) == 3
    assert all(r["pulses"] > 0 for r in results["rewinds"])
    limits = {"va_v": 24.0, "beta_v": 11.5}  # YFlash's va_age_limit_v, beta_age_limit_v
    for name in ("pulses_per_device", "va_v", "beta_v"):
        series = [ageing[c][name] for c in ageing]
        if name in limits:  # the population's mean sits below the limit it relaxes to
            assert all(v < limits[name] for v in series)
        assert all(a < b for a, b in zip(series, series[1:])), (name, series)


def test_wear_cycles_age_the_devices_far_more_than_retraining_alone():
    X, y = load_digits_binary()
    dbn = MemristiveDBN((8,), 16, n_iter=1, n_top_iter=1, device="yflash", random_state=0).fit(X[:200], y[:200])
    before = lifetime.wear(dbn)
    lifetime.full_cycles(dbn, 2)
    after = lifetime.wear(dbn)
    # a full cycle is tens of pulses each way on every device (Y-Flash: ~40 down, ~25 up)
    assert 2 * 40 < after["pulses_per_device"] - before["pulses_per_device"] < 2 * 200
    assert after["va_v"] > before["va_v"] and after["beta_v"] > before["beta_v"]
    for layer in dbn.layers_ + [dbn.top_]:  # each cycle ends erased, at the high level
        assert np.all(layer.crossbar_.conductance >= 0.3e-6)
        assert np.all(layer.crossbar_.reference_conductance >= 0.3e-6)


def test_wear_stride_fast_forwards_the_same_wear():
    X, y = load_digits_binary()
    worn = {}
    for stride in (1, 10):
        dbn = MemristiveDBN((8,), 16, n_iter=1, n_top_iter=1, device="yflash",
                            random_state=0).fit(X[:200], y[:200])
        lifetime.full_cycles(dbn, 30, stride)
        worn[stride] = lifetime.wear(dbn)
    assert worn[10]["pulses_per_device"] == pytest.approx(worn[1]["pulses_per_device"], rel=0.015)
    for name in ("va_v", "beta_v"):
        assert worn[10][name] == pytest.approx(worn[1][name], abs=0.01)


def test_wear_is_pulses_alone_for_a_device_that_does_not_age():
    X, y = load_digits_binary()
    dbn = MemristiveDBN((8,), 16, n_iter=1, n_top_iter=1, device="pcm", random_state=0).fit(X[:300], y[:300])
    worn = lifetime.wear(dbn)
    assert list(worn) == ["pulses_per_device"] and worn["pulses_per_device"] > 0


@pytest.mark.parametrize("argv, words", [
    (["--times", "10", "5"], "--times must be distinct, ascending"),
    (["--times", "0"], "--times must be distinct, ascending and > 0"),
    (["--refresh-epochs", "-2"], "--refresh-epochs must be >= 0"),
    (["--recipe", "default"], "give --top-epochs N"),
    (["--cycles", "3", "1"], "--cycles must be distinct, ascending whole numbers >= 0"),
    (["--cycles", "1", "1"], "--cycles must be distinct"),
    (["--cycles", "-1"], "--cycles must be distinct, ascending whole numbers >= 0"),
    (["--cycles", "0", "1", "--wear-cycles", "-1"], "--wear-cycles must be >= 0"),
    (["--cycles", "0", "--wear-cycles", "3"], "give --cycles with a largest N >= 1"),
    (["--cycles", "1", "--wear-cycles", "3", "--wear-stride", "0"], "--wear-stride must be >= 1"),
    (["--wear-cycles", "3"], "give --cycles with a largest N >= 1"),
    (["--cycles", "1", "--wear-cycles", "3", "--device", "pcm"], "device pcm defines no full"),
])
def test_bad_arguments_exit_2_before_writing(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as exc:
        cli.main(["lifetime", *argv, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
