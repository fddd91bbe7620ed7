"""Tests of the measured device family (neuromem/devices/measured.py): pulse tables,
the fit, and its use wherever a device name goes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import neuromem as nm
from neuromem import cli
from neuromem.devices import Measured, YFlash, get_device
from neuromem.devices.measured import (fit_pulse_table, pulse_table, read_pulse_table,
                                       step_statistics, write_pulse_table)

TABLE = dict(n_devices=16, n_cycles=2, n_pulses=100)


@pytest.fixture(scope="module")
def yflash_rows():
    return pulse_table("yflash", seed=0, **TABLE)


@pytest.fixture(scope="module")
def yflash_fit(yflash_rows):
    return fit_pulse_table(yflash_rows)


def _close(a, b, rel):
    return abs(a - b) <= rel * abs(b)


def matches(stats, reference, *, rel_step=0.10, skip_top_up_bin=True) -> list[str]:
    """What differs between two tables' step statistics (empty: they match). The top
    potentiation bin is where curves end at their bound; the fit clips there."""
    problems = []
    for key in ("g_low_s", "g_high_s"):
        if not _close(stats[key], reference[key], 0.05):
            problems.append(key)
    for direction in ("potentiation", "depression"):
        mine, theirs = (np.array(s[direction]["mean_step_s"]) for s in (stats, reference))
        bins = range(len(mine) - 1) if direction == "potentiation" and skip_top_up_bin else range(len(mine))
        for b in bins:
            if not _close(mine[b], theirs[b], rel_step):
                problems.append(f"{direction} bin {b}: {mine[b]:.3g} vs {theirs[b]:.3g}")
        if not _close(stats[direction]["step_spread_rel"], reference[direction]["step_spread_rel"], 0.2):
            problems.append(f"{direction} spread")
    if not _close(stats["pulses_to_half_range"], reference["pulses_to_half_range"], 0.1):
        problems.append("pulses to half range")
    return problems


def test_family_fitted_to_yflash_reproduces_its_step_statistics(yflash_rows, yflash_fit):
    reference = step_statistics(yflash_rows)
    replay = pulse_table(yflash_fit, seed=1, **TABLE)  # another population, other noise
    assert matches(step_statistics(replay), reference) == []
    # the spreads: Y-Flash draws 15 % pulse-to-pulse noise on every step
    assert abs(yflash_fit.c2c_down_rel - YFlash().c2c_rel) < 0.05
    assert abs(yflash_fit.c2c_up_rel - YFlash().c2c_rel) < 0.06
    assert 0 < yflash_fit.d2d_step_rel < 0.5
    # where up and down steps are equal: near Y-Flash's own operating level (0.1)
    assert abs(yflash_fit.operating_level - YFlash.operating_level) < 0.05


def test_the_comparison_tells_devices_apart(yflash_rows, yflash_fit):
    reference = step_statistics(yflash_rows)
    other = fit_pulse_table(pulse_table("softbounds", seed=0, **TABLE))
    assert matches(step_statistics(pulse_table(other, seed=1, **TABLE)), reference) != []
    # a fit without its spread reproduces the means, not the spread (of the
    # potentiation steps; the depression bins' spread is mostly their slope)
    quiet = Measured(**{**_params(yflash_fit), "c2c_up_rel": 0.0, "c2c_down_rel": 0.0,
                        "d2d_step_rel": 0.0})
    problems = matches(step_statistics(pulse_table(quiet, seed=1, **TABLE)), reference)
    assert "potentiation spread" in problems


def _params(device) -> dict:
    d = device.describe()
    d.pop("device"), d.pop("source")
    return d


def test_csv_round_trip_and_a_path_as_device_name(tmp_path, yflash_fit):
    path = write_pulse_table(tmp_path / "yf.csv", "yflash", seed=0, **TABLE)
    rows = read_pulse_table(path)
    assert len(rows) == 16 * 2 * 2 * 101
    from_file = get_device(str(path))
    assert isinstance(from_file, Measured) and from_file.table == "yf.csv"
    np.testing.assert_allclose(from_file.up_step_s, yflash_fit.up_step_s, rtol=1e-12)
    np.testing.assert_allclose(from_file.down_g_s, yflash_fit.down_g_s, rtol=1e-12)
    # overrides on top of the fit
    assert get_device(str(path), pulse_width_s=1e-6).pulse_width_s == 1e-6
    # describe() holds the whole fit: JSON and back gives the same device
    back = json.loads(json.dumps(from_file.describe()))
    name = back.pop("device")
    back.pop("source")
    assert get_device(name, **back) == from_file


def test_a_crossbar_and_an_rbm_on_a_measured_device(tmp_path):
    path = write_pulse_table(tmp_path / "sb.csv", "softbounds", n_devices=8, n_cycles=1,
                             n_pulses=60, seed=0)
    xbar = nm.Crossbar(6, 4, device=str(path), seed=0)
    before = xbar.conductance.copy()
    xbar.apply_pulses(np.full(xbar.shape, 3, dtype=np.int64))
    assert np.all(xbar.conductance >= before) and np.any(xbar.conductance > before)
    arrays, meta = xbar.state_dict()
    again = nm.Crossbar.from_state_dict(arrays, json.loads(json.dumps(meta, default=list)))
    assert again.device == xbar.device
    np.testing.assert_array_equal(again.conductance, xbar.conductance)

    from networks import MemristiveRBM
    from neuromem.data import load_digits_binary

    X, _ = load_digits_binary()
    rbm = MemristiveRBM(n_components=8, n_iter=1, device=str(path), random_state=0).fit(X[:200])
    assert rbm.transform(X[:5]).shape == (5, 8)
    assert rbm.training_pulse_count_.sum() > 0


def test_pulses_follow_the_table_and_stay_in_bounds():
    dev = Measured(g_min_s=1e-6, g_max_s=11e-6, up_g_s=(1e-6, 11e-6), up_step_s=(1e-6, 1e-6),
                   down_g_s=(1e-6, 11e-6), down_step_s=(2e-6, 2e-6), g_init_frac=0.0)
    state = dev.init_state(3, np.random.default_rng(0))
    g_out = np.zeros(3)
    dev.apply_pulses(state, np.array([1, 4, 20], dtype=np.int64), 1.0, 0, g_out)
    np.testing.assert_allclose(dev.conductance(state), [2e-6, 5e-6, 11e-6])
    dev.apply_pulses(state, np.array([-1, -1, -1], dtype=np.int64), 0.5, 1, g_out)
    np.testing.assert_allclose(dev.conductance(state), [1e-6, 4e-6, 10e-6])
    # with spread: reproducible from the seed, never out of the cell's bounds
    noisy = Measured(**{**_params(dev), "c2c_up_rel": 0.5, "d2d_bounds_rel": 0.1})
    states = [noisy.init_state(50, np.random.default_rng(3)) for _ in range(2)]
    for st in states:
        for t in range(30):
            noisy.apply_pulses(st, np.full(50, 1, dtype=np.int64), 1.0, t, np.zeros(50))
    np.testing.assert_array_equal(states[0], states[1])
    lo, hi = noisy.cell_bounds(states[0])
    g = noisy.conductance(states[0])
    assert np.all(g <= hi) and np.all(g >= lo)


@pytest.mark.parametrize("kwargs, words", [
    ({"up_g_s": (1e-6,), "up_step_s": (1e-7,)}, "Measured.up_g_s and Measured.up_step_s"),
    ({"down_g_s": (2e-6, 1e-6)}, "Measured.down_g_s must be finite and strictly ascending"),
    ({"up_step_s": (-1e-7, 1e-7)}, "Measured.up_step_s must be finite, >= 0"),
    ({"up_g_s": "abc"}, "Measured.up_g_s must be a sequence"),
    ({"c2c_up_rel": -0.1}, "Measured.c2c_up_rel"),
    ({"g_min_s": 2e-4}, "g_min_s"),
])
def test_bad_parameters_name_the_field(kwargs, words):
    with pytest.raises((ValueError, TypeError)) as exc:
        Measured(**kwargs)
    assert words in str(exc.value)


@pytest.mark.parametrize("text, words", [
    ("device,cycle,pulse,conductance_s\n0,0,0,1e-6\n", "missing columns ['direction']"),
    ("device,cycle,direction,pulse,conductance_s\n0,0,up,0,1e-6\n", "line 2: direction"),
    ("device,cycle,direction,pulse,conductance_s\n0,0,potentiation,0,-1\n", "line 2: conductance_s"),
    ("device,cycle,direction,pulse,conductance_s\n0,x,potentiation,0,1\n", "line 2: cycle and pulse"),
    ("device,cycle,direction,pulse,conductance_s\n0,0,potentiation,0,1e-6\n0,0,potentiation,1,2e-6\n",
     "no depression curve"),
])
def test_bad_tables_name_line_and_column(tmp_path, text, words):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as exc:
        read_pulse_table(path)
    assert words in str(exc.value)
    with pytest.raises(FileNotFoundError):
        read_pulse_table(tmp_path / "missing.csv")


def test_cli_exports_a_pulse_table(tmp_path, capsys):
    out = tmp_path / "pcm.csv"
    assert cli.main(["devices", "--export", "pcm", "--out", str(out), "--n-devices", "3",
                     "--n-pulses", "10"]) == 0
    rows = read_pulse_table(out)
    assert len(rows) == 3 * 2 * 2 * 11 and {r["direction"] for r in rows} == {"potentiation", "depression"}
    capsys.readouterr()
    bad = tmp_path / "bad.csv"
    assert cli.main(["devices", "--export", "nosuch", "--out", str(bad)]) == 2
    assert cli.main(["devices", "--export", "pcm"]) == 2
    assert cli.main(["devices", "--export", "pcm", "--out", str(bad), "--n-pulses", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "unknown device 'nosuch'" in err[0] and "--out" in err[1]
    assert not bad.exists()
