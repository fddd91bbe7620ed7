"""Tests of full program / full erase cycling with a stride: the Y-Flash kernels
(``YFlash.full_cycles``, ``YFlash.full_cycles_at``) and ``Crossbar.full_cycles``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuromem import Crossbar
from neuromem.devices import YFlash

N_CYCLES = 40


@pytest.fixture(scope="module")
def dev():
    return YFlash()


def _trained_like(dev, n, seed=0):
    """``n`` population devices with charges spread across the window (as after training)."""
    state = dev.init_state(n, np.random.default_rng(seed))
    q = np.random.default_rng(seed + 1).uniform(dev.q_fg_min_c, dev.q_fg_max_c, n)
    state[0] = q
    return state


def _cycled(dev, state, stride, seed=1):
    state = state.copy()
    g = np.empty(state.shape[1])
    n_prog, n_erase, g_read = dev.full_cycles_at(state, np.arange(state.shape[1]), N_CYCLES,
                                                 seed, g, stride=stride, max_pulses=200)
    return state, n_prog, n_erase, g_read, g


@pytest.fixture(scope="module")
def exact_and_strided(dev):
    start = _trained_like(dev, 400)
    return start, _cycled(dev, start, 1), _cycled(dev, start, 10)


def test_stride_agrees_with_every_cycle_simulated(exact_and_strided):
    """Stride 10 against stride 1 over 40 cycles of 400 devices: the mean ageing
    variables agree to 3 % of their change, each device's to 0.06 V (rms 0.015 V; two
    exact runs with different noise seeds differ by up to ~0.015 V), total pulses to 1.5 %."""
    start, (exact, p1, e1, _, _), (fast, p10, e10, _, _) = exact_and_strided
    for row, name in ((1, "va"), (2, "beta")):
        change = exact[row].mean() - start[row].mean()
        assert change > 0.05, name  # 40 cycles age the devices measurably
        assert abs(fast[row].mean() - exact[row].mean()) < 0.03 * change, name
        diff = fast[row] - exact[row]
        assert np.abs(diff).max() < 0.06 and np.sqrt(np.mean(diff**2)) < 0.015, name
    total1, total10 = (p1 + e1).sum(), (p10 + e10).sum()
    assert abs(total10 / total1 - 1) < 0.015
    # about 40 program and 28 erase pulses per cycle (the population's endurance test)
    assert 30 < p1.mean() / N_CYCLES < 50 and 20 < e1.mean() / N_CYCLES < 40


@pytest.mark.parametrize("which", [1, 2])
def test_ageing_follows_the_pulse_counts_in_closed_form(dev, exact_and_strided, which):
    """Y-Flash ages by pulse count alone, so with or without a stride each device's
    V_a and beta are their fresh values relaxed by the pulses reported."""
    start, *runs = exact_and_strided
    state, n_prog, n_erase, _, _ = runs[which - 1]
    a_p = math.expm1(dev.program_time_s / dev.ageing_time_constant_program_s)
    a_e = math.expm1(dev.erase_time_s / dev.ageing_time_constant_erase_s)
    va = dev.va_age_limit_v - (dev.va_age_limit_v - start[1]) * (1 - a_p) ** n_prog
    beta = dev.beta_age_limit_v - (dev.beta_age_limit_v - start[2]) * (1 - a_e) ** n_erase
    np.testing.assert_allclose(state[1], va, rtol=1e-9)
    np.testing.assert_allclose(state[2], beta, rtol=1e-9)


def test_every_cell_ends_erased_and_verify_reads_are_summed(dev, exact_and_strided):
    _, (state, n_prog, n_erase, g_read, g), _ = exact_and_strided
    assert np.all(g >= dev.full_cycle_g_high_s)
    np.testing.assert_allclose(g, dev.conductance(state))
    # one read before each pulse and one after the last of each phase, each in the window
    n_reads = n_prog + n_erase + 2 * N_CYCLES
    assert np.all(g_read > n_reads * dev.g_min_s) and np.all(g_read < n_reads * dev.g_max_s)


def test_per_cycle_record_repeats_the_simulated_cycle(dev):
    start = _trained_like(dev, 50, seed=3)
    state = start.copy()
    n_prog, n_erase = dev.full_cycles(state, 12, seed=4, stride=5)
    assert n_prog.shape == n_erase.shape == (12, 50)
    # cycles 1-5 and 6-10 repeat their first; 11 starts a last, short block
    for first, last in ((1, 5), (6, 10), (11, 11)):
        assert np.all(n_prog[first:last + 1] == n_prog[first])
        assert np.all(n_erase[first:last + 1] == n_erase[first])
    # the per-cycle form and the totals form run the same cycles
    other = start.copy()
    g = np.empty(50)
    p, e, _ = dev.full_cycles_at(other, np.arange(50), 12, 4, g, stride=5)
    np.testing.assert_array_equal(p, n_prog.sum(axis=0))
    np.testing.assert_array_equal(e, n_erase.sum(axis=0))
    np.testing.assert_array_equal(other, state)


def test_listed_cells_only(dev):
    state = _trained_like(dev, 20, seed=5)
    before = state.copy()
    g = np.zeros(20)
    dev.full_cycles_at(state, np.array([2, 7]), 3, 0, g, stride=1)
    untouched = np.setdiff1d(np.arange(20), [2, 7])
    np.testing.assert_array_equal(state[:, untouched], before[:, untouched])
    assert np.all(state[1:, [2, 7]] != before[1:, [2, 7]]) and np.all(g[untouched] == 0)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"n_cycles": -1}, ValueError, "n_cycles must be >= 0"),
    ({"n_cycles": 2.5}, TypeError, "n_cycles must be an integer"),
    ({"stride": 0}, ValueError, "stride must be >= 1"),
    ({"max_pulses": 0}, ValueError, "max_pulses must be >= 1"),
])
def test_device_refuses_bad_arguments(dev, kwargs, error, words):
    args = {"n_cycles": 2, "stride": 1, "max_pulses": 10}
    args.update(kwargs)
    state = dev.init_state(3, np.random.default_rng(0))
    with pytest.raises(error, match=words):
        dev.full_cycles(state, args["n_cycles"], 0, stride=args["stride"],
                        max_pulses=args["max_pulses"])


# ---------------------------------------------------------------------- crossbar
def _xbar(scheme="reference", **kwargs):
    return Crossbar(6, 5, "yflash", scheme=scheme, seed=0, **kwargs)


@pytest.mark.parametrize("array", ["plus", "minus"])
def test_crossbar_books_pulses_energy_reads_and_time(array):
    xbar = _xbar()
    dev = xbar.device
    counts = xbar.pulse_count if array == "plus" else xbar.reference_pulse_count
    other = xbar.reference_pulse_count if array == "plus" else xbar.pulse_count
    va0 = xbar.device_state(array)["va_v"]
    t0 = xbar.time_s
    up, down = xbar.full_cycles(4, array=array, stride=2)
    after = xbar.pulse_count if array == "plus" else xbar.reference_pulse_count
    moved = after - counts
    assert up + down == moved.sum() and down > 30 * 4 * 30 and up > 20 * 4 * 30
    assert np.all(moved >= 4 * 2)
    np.testing.assert_array_equal(
        xbar.reference_pulse_count if array == "plus" else xbar.pulse_count, other)
    ledger = xbar.ledger
    assert ledger.count("potentiate") == up and ledger.count("depress") == down
    assert ledger.energy_j("potentiate") == pytest.approx(up * dev.potentiate_energy_j)
    assert ledger.energy_j("depress") == pytest.approx(down * dev.depress_energy_j)
    n_reads = ledger.count("verify_read")
    assert n_reads == up + down + 2 * 4 * 30
    per_read = ledger.energy_j("verify_read") / n_reads / (dev.read_time_s * dev.read_voltage_v**2)
    assert dev.g_min_s < per_read < dev.g_max_s
    assert xbar.time_s > t0 + (down / 30) * dev.program_time_s * 0.5
    # aged (V_a closer to its limit), and every device erased to the high level (the
    # read views refreshed)
    va = xbar.device_state(array)["va_v"]
    assert np.all(np.abs(dev.va_age_limit_v - va) < np.abs(dev.va_age_limit_v - va0))
    g = xbar.conductance if array == "plus" else xbar.reference_conductance
    assert np.all(g >= dev.full_cycle_g_high_s)


def test_crossbar_stride_is_the_default_exact_cycling():
    a, b = _xbar(), _xbar()
    assert a.full_cycles(3) == b.full_cycles(3, stride=1)
    np.testing.assert_array_equal(a.device_state()["beta_v"], b.device_state()["beta_v"])


def test_crossbar_leaves_faulty_cells_alone():
    xbar = _xbar(stuck_low_rate=0.2, stuck_high_rate=0.2)
    faulty = xbar.faults["stuck_low"] | xbar.faults["stuck_high"]
    assert faulty.any() and not faulty.all()
    g_before, beta_before = xbar.conductance, xbar.device_state()["beta_v"]
    xbar.full_cycles(2)
    assert np.all(xbar.pulse_count[faulty] == 0) and np.all(xbar.pulse_count[~faulty] > 0)
    np.testing.assert_array_equal(xbar.conductance[faulty], g_before[faulty])
    np.testing.assert_array_equal(xbar.device_state()["beta_v"][faulty], beta_before[faulty])


def test_crossbar_zero_cycles_changes_nothing():
    xbar = _xbar()
    before = xbar.device_state()["q_fg_c"]
    assert xbar.full_cycles(0) == (0, 0)
    np.testing.assert_array_equal(xbar.device_state()["q_fg_c"], before)
    assert xbar.ledger.count("depress") == 0


@pytest.mark.parametrize("make, kwargs, error, words", [
    (lambda: _xbar(), {"n_cycles": -1}, ValueError, "n_cycles must be a whole number >= 0"),
    (lambda: _xbar(), {"n_cycles": 1.5}, ValueError, "n_cycles must be a whole number"),
    (lambda: _xbar(), {"n_cycles": 1, "stride": 0}, ValueError, "stride must be >= 1"),
    (lambda: _xbar(), {"n_cycles": 1, "max_pulses": 0}, ValueError, "max_pulses must be >= 1"),
    (lambda: _xbar(), {"n_cycles": 1, "array": "both"}, ValueError, "array must be 'plus' or"),
    (lambda: _xbar("single"), {"n_cycles": 1, "array": "minus"}, ValueError, "not for 'single'"),
    (lambda: Crossbar(3, 3, "pcm", seed=0), {"n_cycles": 1}, TypeError,
     "PCM defines no full program / erase cycle"),
])
def test_crossbar_refuses_bad_arguments(make, kwargs, error, words):
    with pytest.raises(error, match=words):
        make().full_cycles(**kwargs)


def test_crossbar_restored_from_conductances_cannot_cycle():
    arrays, meta = _xbar().state_dict(conductance_only=True)
    with pytest.raises(RuntimeError, match="cannot|not pulsed"):
        Crossbar.from_state_dict(arrays, meta).full_cycles(1)
