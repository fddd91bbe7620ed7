"""Tests of the periphery (stochastic neurons, digital counters) and the energy ledger."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from neuromem import ComparatorNeuron, DigitalCounter, EnergyLedger, PBitNeuron, SoftmaxWTA
from neuromem.energy import ADD_16BIT_J

NEURONS = [ComparatorNeuron, PBitNeuron]
# p-bits without device-to-device spread follow the ideal law exactly
IDEAL = {ComparatorNeuron: {}, PBitNeuron: {"gain_spread_rel": 0.0, "offset_spread_rel": 0.0}}
I0 = 1e-6
N_SAMPLES = 100_000
X_GRID = np.array([-6.0, -4.0, -2.5, -1.0, -0.3, 0.0, 0.2, 0.7, 1.5, 3.0, 5.0])


def _sigmoid(x):
    from scipy.special import expit

    return expit(x)


def _binomial_z(k, n, p):
    return (k - n * p) / np.sqrt(n * p * (1 - p))


# ---------------------------------------------------------------------------- neurons

@pytest.mark.parametrize("cls", NEURONS)
def test_neuron_fires_with_logistic_probability(cls):
    neuron = cls(current_scale_a=I0, seed=1, **IDEAL[cls])
    current = np.repeat(X_GRID * I0, N_SAMPLES).reshape(X_GRID.size, N_SAMPLES)
    fired = neuron.sample(current)
    assert fired.shape == current.shape and fired.dtype == np.uint8
    assert set(np.unique(fired)) <= {0, 1}
    k = fired.sum(axis=1)
    p = _sigmoid(X_GRID)
    z = _binomial_z(k, N_SAMPLES, p)
    assert np.all(np.abs(z) < 5), dict(zip(X_GRID, z))
    # the test can tell a wrong slope apart: sigma(x/2) or sigma(2x) would fail it
    for wrong in (_sigmoid(X_GRID / 2), _sigmoid(2 * X_GRID)):
        assert np.max(np.abs(_binomial_z(k, N_SAMPLES, wrong))) > 5


@pytest.mark.parametrize("cls", NEURONS)
def test_neuron_probability_method(cls):
    neuron = cls(current_scale_a=2e-6, **IDEAL[cls])
    x = np.array([-1000.0, -3.0, 0.0, 1.0, 1000.0])
    np.testing.assert_allclose(neuron.probability(x * 2e-6), _sigmoid(x), rtol=1e-12, atol=1e-300)
    with pytest.raises(ValueError, match="current"):
        neuron.probability([0.0, np.nan])


def test_comparator_equals_logistic_threshold_rule():
    """1[I > I0 ln(u/(1-u))] and the ideal p-bit rule, on the uniforms the seed gives."""
    rng = np.random.default_rng(3)
    current = rng.normal(0, 2e-6, 5000)
    out_c = ComparatorNeuron(I0, seed=1234).sample(current)
    out_p = PBitNeuron(I0, seed=1234, **IDEAL[PBitNeuron]).sample(current)
    u = np.random.default_rng(1234).random(5000, dtype=np.float32).astype(np.float64)
    expected_c = current > I0 * np.log(u / (1 - u))
    # float32 evaluation may flip decisions only where the two sides nearly tie
    margin = np.abs(current / I0 - np.log(u / (1 - u)))
    assert np.all((out_c == expected_c) | (margin < 1e-4))
    assert np.mean(out_c == expected_c) > 0.999
    expected_p = np.tanh(current / (2 * I0)) > 2 * u - 1
    assert np.mean(out_p == expected_p) > 0.999


def test_pbit_device_spread_sets_each_units_probability():
    neuron = PBitNeuron(I0, gain_spread_rel=0.2, offset_spread_rel=0.3, seed=5)
    n_units, n_trials = 20, 40_000
    x = np.linspace(-2, 2, n_units)
    current = np.tile(x * I0, (n_trials, 1))
    k = neuron.sample(current).sum(axis=0)
    p_unit = neuron.probability(x * I0)
    assert np.all(np.abs(_binomial_z(k, n_trials, p_unit)) < 5)
    # the spread is real: the ideal law is rejected for these units
    assert np.max(np.abs(_binomial_z(k, n_trials, _sigmoid(x)))) > 5
    # fabrication is fixed by the seed and the layer width, not by call order
    again = PBitNeuron(I0, gain_spread_rel=0.2, offset_spread_rel=0.3, seed=5)
    again.unit_parameters(7)
    np.testing.assert_array_equal(again.unit_parameters(n_units)[0], neuron.unit_parameters(n_units)[0])
    with pytest.raises(ValueError, match="gain_spread_rel"):
        PBitNeuron(I0, gain_spread_rel=-0.1)


@pytest.mark.parametrize("cls", NEURONS)
def test_neuron_extremes(cls):
    neuron = cls(current_scale_a=I0, seed=2)
    assert neuron.sample(np.full(10_000, 60 * I0)).all()
    assert not neuron.sample(np.full(10_000, -60 * I0)).any()


@pytest.mark.parametrize("cls", NEURONS)
def test_neuron_is_reproducible_with_seed(cls):
    current = np.linspace(-3e-6, 3e-6, 4000).reshape(40, 100)
    a = cls(seed=7).sample(current)
    b = cls(seed=7).sample(current)
    np.testing.assert_array_equal(a, b)
    c = cls(seed=8).sample(current)
    assert not np.array_equal(a, c)
    # successive draws of one neuron differ
    n = cls(seed=7)
    n.sample(current)
    assert not np.array_equal(n.sample(current), a)


@pytest.mark.parametrize("cls", NEURONS)
def test_neuron_accepts_float32_lists_and_out(cls):
    neuron = cls(seed=3)
    a = neuron.sample(np.zeros((3, 4), dtype=np.float32))
    assert a.shape == (3, 4)
    b = cls(seed=3).sample([[0.0] * 4] * 3)
    np.testing.assert_array_equal(a, b)
    out = np.empty((3, 4), dtype=np.uint8)
    res = cls(seed=3).sample(np.zeros((3, 4)), out=out)
    assert res is out
    np.testing.assert_array_equal(out, a)
    with pytest.raises(ValueError, match="out"):
        neuron.sample(np.zeros((3, 4)), out=np.empty((4, 3), dtype=np.uint8))


@pytest.mark.parametrize("cls", NEURONS)
def test_neuron_ledger_counts_decisions(cls):
    ledger = EnergyLedger()
    neuron = cls(decision_energy_j=7e-15, seed=0, ledger=ledger)
    neuron.sample(np.zeros((5, 6)))
    neuron.sample(np.zeros(4))
    op = cls.operation
    assert ledger.count(op) == 34
    assert ledger.energy_j(op) == pytest.approx(34 * 7e-15)
    assert ledger.operations == [op]


@pytest.mark.parametrize("cls", NEURONS)
def test_paired_samples_keep_their_marginals_and_share_the_draw(cls):
    """Each read of a pair fires with its own logistic probability; together they differ
    only where the currents straddle the shared draw (never the wrong way round)."""
    neuron = cls(current_scale_a=I0, seed=2, **IDEAL[cls])
    a = np.repeat(X_GRID * I0, N_SAMPLES).reshape(X_GRID.size, N_SAMPLES)
    b = a - 0.5 * I0
    fired_a, fired_b = neuron.sample_paired(a, b)
    for fired, x in ((fired_a, X_GRID), (fired_b, X_GRID - 0.5)):
        z = _binomial_z(fired.sum(axis=1), N_SAMPLES, _sigmoid(x))
        assert np.all(np.abs(z) < 5), dict(zip(x, z))
    assert np.all(fired_a >= fired_b)  # a higher current never fires less on one draw
    # P(a fires, b does not) is the gap of the probabilities, not p_a (1 - p_b)
    flips = (fired_a != fired_b).mean(axis=1)
    gap = _sigmoid(X_GRID) - _sigmoid(X_GRID - 0.5)
    np.testing.assert_allclose(flips, gap, atol=0.01)
    independent = _sigmoid(X_GRID) * (1 - _sigmoid(X_GRID - 0.5)) + \
        _sigmoid(X_GRID - 0.5) * (1 - _sigmoid(X_GRID))
    assert np.all(independent[3:8] > gap[3:8] + 0.2)  # the check can tell them apart
    same_a, same_b = neuron.sample_paired(a[:, :100], a[:, :100])
    np.testing.assert_array_equal(same_a, same_b)
    assert neuron.ledger.count(cls.operation) == 2 * a.size + 2 * a[:, :100].size
    booked = neuron.ledger.count(cls.operation)
    with pytest.raises(ValueError, match="same units"):
        neuron.sample_paired(np.zeros((2, 3)), np.zeros((3, 2)))
    assert neuron.ledger.count(cls.operation) == booked  # a refused pair books nothing


def test_wta_refuses_paired_sampling():
    with pytest.raises(NotImplementedError, match="paired"):
        SoftmaxWTA(I0, seed=0).sample_paired(np.zeros((2, 3)), np.zeros((2, 3)))


@pytest.mark.parametrize("cls", NEURONS)
def test_neuron_validation(cls):
    with pytest.raises(ValueError, match="current_scale_a"):
        cls(current_scale_a=0.0)
    with pytest.raises(ValueError, match="current_scale_a"):
        cls(current_scale_a=-1e-6)
    with pytest.raises(ValueError, match="current_scale_a"):
        cls(current_scale_a=float("nan"))
    with pytest.raises(TypeError, match="current_scale_a"):
        cls(current_scale_a="1e-6")
    with pytest.raises(ValueError, match="decision_energy_j"):
        cls(decision_energy_j=-1.0)
    neuron = cls(seed=0)
    with pytest.raises(ValueError, match="current"):
        neuron.sample(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="current"):
        neuron.sample(np.array([np.inf, 0.0]))
    assert neuron.ledger.count(cls.operation) == 0


# ---------------------------------------------------------------------------- counter

def test_counter_hand_worked_example():
    """threshold 100, one pulse at most; every line below worked out by hand."""
    counter = DigitalCounter((1,), threshold=100)
    steps = [
        # delta, expected pulse, expected count afterwards
        (+150, +1, 50),    # C = 150, n = 1, C -= 100
        (-250, -1, 0),     # C = -200, n = -2: only ONE pulse, C -= -200
        (-250, -1, -50),   # C = -250, n = trunc(-2.5) = -2: one pulse, C = -50
        (+30, 0, -20),     # C = -20, n = trunc(-0.2) = 0
        (-79, 0, -99),     # C = -99, n = trunc(-0.99) = 0 (floor would give -1)
        (-1, -1, 0),       # C = -100, n = -1
        (+99, 0, 99),
        (+1, +1, 0),       # C = 100, n = 1
        (+350, +1, 50),    # C = 350, n = 3: one pulse, C = 50
        (-149, 0, -99),    # C = -99: truncation toward zero, no pulse
        (0, 0, -99),
        (+298, +1, 99),    # C = 199, n = 1, C = 99
    ]
    for delta, pulse, count in steps:
        out = counter.update(np.array([delta]))
        assert out.tolist() == [pulse], (delta, pulse, count)
        assert counter.count.tolist() == [count], (delta, pulse, count)


def test_counter_cells_are_independent():
    counter = DigitalCounter((2, 3), threshold=100)
    delta = np.array([[150, -250, 99], [-100, 0, 1000]])
    pulses = counter.update(delta)
    np.testing.assert_array_equal(pulses, [[1, -1, 0], [-1, 0, 1]])
    np.testing.assert_array_equal(counter.count, [[50, -50, 99], [0, 0, 0]])
    pulses = counter.update(np.array([[-50, 49, 1], [-99, -101, -1]]))
    np.testing.assert_array_equal(pulses, [[0, 0, 1], [0, -1, 0]])
    np.testing.assert_array_equal(counter.count, [[0, -1, 0], [-99, -1, -1]])


def test_counter_max_pulses_gives_proportional_capped_pulses():
    counter = DigitalCounter((1,), threshold=100, max_pulses=3)
    steps = [
        (+150, +1, 50),
        (-250, -2, 0),     # C = -200, n = -2
        (+550, +3, 50),    # C = 550, n = 5, capped at 3; C -= 500
        (-349, -2, -99),   # C = -299, n = -2
        (-901, -3, 0),     # C = -1000, n = -10, capped at -3
    ]
    for delta, pulse, count in steps:
        out = counter.update(np.array([delta]))
        assert out.tolist() == [pulse], (delta, pulse, count)
        assert counter.count.tolist() == [count], (delta, pulse, count)


def test_counter_threshold_one_and_integer_valued_floats():
    counter = DigitalCounter((3,), threshold=1, max_pulses=1)
    np.testing.assert_array_equal(counter.update(np.array([2.0, -3.0, 0.0])), [1, -1, 0])
    np.testing.assert_array_equal(counter.count, [0, 0, 0])
    counter = DigitalCounter(3, threshold=10)
    np.testing.assert_array_equal(counter.update(np.array([12, 5, 9], dtype=np.uint8)), [1, 0, 0])
    np.testing.assert_array_equal(counter.count, [2, 5, 9])
    counter.reset()
    np.testing.assert_array_equal(counter.count, [0, 0, 0])


def test_counter_ledger_counts_increments():
    ledger = EnergyLedger()
    counter = DigitalCounter((2, 2), threshold=100, ledger=ledger)
    counter.update(np.array([[3, -4], [0, 10]]))
    assert ledger.count("counter_increment") == 17
    assert ledger.energy_j("counter_increment") == pytest.approx(17 * ADD_16BIT_J)
    counter.update(np.zeros((2, 2), dtype=int), n_increments=400)
    assert ledger.count("counter_increment") == 417


def test_counter_rejects_bad_deltas_and_stays_unchanged():
    counter = DigitalCounter((1, 3), threshold=100)
    counter.update(np.array([[150, -20, 7]]))
    before = counter.count.copy()
    for bad in (np.array([[1.0, 0.5, 2.0]]), np.array([[1.0, 2.0, np.nan]]),
                np.array([[np.inf, 0.0, 0.0]])):
        with pytest.raises(ValueError, match="delta"):
            counter.update(bad)
        np.testing.assert_array_equal(counter.count, before)
    with pytest.raises(ValueError, match="delta"):
        counter.update(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="delta"):
        counter.update(np.zeros((3, 1), dtype=int))
    with pytest.raises(TypeError, match="delta"):
        counter.update(np.array([["a", "b", "c"]]))
    np.testing.assert_array_equal(counter.count, before)
    assert counter.ledger.count("counter_increment") == 177


def test_counter_validation():
    with pytest.raises(ValueError, match="threshold"):
        DigitalCounter((2,), threshold=0)
    with pytest.raises(TypeError, match="threshold"):
        DigitalCounter((2,), threshold=2.5)
    with pytest.raises(ValueError, match="max_pulses"):
        DigitalCounter((2,), max_pulses=0)
    with pytest.raises(TypeError, match="max_pulses"):
        DigitalCounter((2,), max_pulses=True)
    with pytest.raises(ValueError, match="shape"):
        DigitalCounter((2, 0))
    with pytest.raises(ValueError, match="increment_energy_j"):
        DigitalCounter((2,), increment_energy_j=-1.0)


# ---------------------------------------------------------------------------- ledger

def test_ledger_arithmetic():
    ledger = EnergyLedger()
    assert ledger.total_j == 0.0 and ledger.operations == []
    assert ledger.count("read") == 0 and ledger.energy_j("read") == 0.0
    ledger.record("read", 2, 1e-12)
    ledger.record("read", 3, 2e-12)
    ledger.record("potentiate", 1, 5e-12)
    ledger.record("depress", 0, 0.0)
    assert ledger.count("read") == 5
    assert ledger.energy_j("read") == pytest.approx(3e-12)
    assert ledger.total_j == pytest.approx(8e-12)
    assert ledger.operations == ["depress", "potentiate", "read"]
    assert "read" in repr(ledger)
    # looking up an unknown operation does not create it
    ledger.count("nothing")
    ledger.energy_j("nothing")
    assert "nothing" not in ledger.operations
    with pytest.raises(ValueError, match="count"):
        ledger.record("read", -1, 0.0)
    with pytest.raises(ValueError, match="energy_j"):
        ledger.record("read", 1, -1e-12)
    assert ledger.count("read") == 5
    ledger.reset()
    assert ledger.total_j == 0.0 and ledger.operations == []


def test_ledger_dict_round_trip():
    ledger = EnergyLedger()
    ledger.record("read", 7, 1.5e-12)
    ledger.record("comparator", 100, 5e-12)
    d = ledger.as_dict()
    assert d["read"] == {"count": 7, "energy_j": 1.5e-12}
    assert d["total_j"] == pytest.approx(6.5e-12)
    d2 = json.loads(json.dumps(d))
    back = EnergyLedger.from_dict(d2)
    assert back.as_dict() == d
    assert back.count("comparator") == 100
    assert math.isclose(back.total_j, ledger.total_j)


def test_shared_ledger_collects_every_part():
    from neuromem import Crossbar

    ledger = EnergyLedger()
    xbar = Crossbar(4, 3, seed=0, ledger=ledger)
    neuron = ComparatorNeuron(seed=0, ledger=ledger)
    counter = DigitalCounter((4, 3), ledger=ledger)
    i = xbar.read(np.ones((2, 4), dtype=bool))
    neuron.sample(i)
    pulses = counter.update(np.full((4, 3), 120))
    xbar.apply_pulses(pulses)
    used = [op for op in ledger.operations if ledger.count(op)]
    assert used == ["comparator", "counter_increment", "potentiate", "read"]
    assert ledger.count("potentiate") == 12
    assert ledger.count("comparator") == 6
    assert ledger.total_j == pytest.approx(sum(ledger.energy_j(op) for op in ledger.operations))


# ---------------------------------------------------------------------------- fused counters

def test_counter_sparse_output_matches_hand_worked_example():
    """The hand-worked example again, through update_sparse and through update_outer
    (a 1x1 array: delta = matching ones in the positive minus the negative batch)."""
    steps = [(+150, +1, 50), (-250, -1, 0), (-250, -1, -50), (+30, 0, -20), (-79, 0, -99),
             (-1, -1, 0), (+99, 0, 99), (+1, +1, 0), (+350, +1, 50), (-149, 0, -99),
             (0, 0, -99), (+298, +1, 99)]
    sparse = DigitalCounter((1,), threshold=100)
    outer = DigitalCounter((1, 1), threshold=100)
    for delta, pulse, count in steps:
        cells, pulses = sparse.update_sparse(np.array([delta]))
        assert (cells.tolist(), pulses.tolist()) == (([0], [pulse]) if pulse else ([], []))
        assert sparse.count.tolist() == [count]
        pos = np.ones((max(delta, 0) + 3, 1))
        pos[:3] = 0  # samples with v = 0 add nothing (their h is 1)
        neg = np.ones((max(-delta, 0), 1))
        cells, pulses = outer.update_outer(pos, np.ones_like(pos), neg, neg)
        assert (cells.tolist(), pulses.tolist()) == (([0], [pulse]) if pulse else ([], []))
        assert outer.count.tolist() == [[count]]
    assert outer.ledger.count("counter_increment") == sum(abs(d) for d, _, _ in steps)


@pytest.mark.parametrize("max_pulses", [1, 3])
def test_counter_update_outer_equals_dense_statistics(max_pulses):
    """Fused statistics + counters == v+^T h+ - v-^T h- through the dense update."""
    rows, cols = 23, 17
    threshold = 4 if max_pulses == 1 else 2
    fused = DigitalCounter((rows, cols), threshold=threshold, max_pulses=max_pulses)
    dense = DigitalCounter((rows, cols), threshold=threshold, max_pulses=max_pulses)
    rng = np.random.default_rng(0)
    fired = 0
    largest = 0
    for step in range(12):
        b_pos, b_neg = 9, 9 + step % 3  # the two batches may differ in size
        vp = (rng.random((b_pos, rows)) < 0.3).astype(np.float32)
        hp = (rng.random((b_pos, cols)) < 0.5).astype(np.float32)
        vn = rng.random((b_neg, rows)) < 0.3  # booleans are 0/1 as well
        hn = (rng.random((b_neg, cols)) < 0.5).astype(np.uint8)
        stats = vp.T @ hp - vn.astype(np.float32).T @ hn.astype(np.float32)
        stats[20:, 15:] = 0  # the skipped corner
        n_incr = int(vp.sum(1) @ hp.sum(1) + vn.sum(1) @ hn.sum(1))
        expected = dense.update(stats, n_increments=n_incr)
        cells, pulses = fused.update_outer(vp, hp, vn, hn, skip_from=(20, 15))
        np.testing.assert_array_equal(fused.count, dense.count)
        np.testing.assert_array_equal(cells, np.flatnonzero(expected))
        np.testing.assert_array_equal(pulses, expected.ravel()[cells])
        fired += cells.size
        largest = max(largest, int(np.abs(pulses).max(initial=0)))
        assert fused.ledger.count("counter_increment") == dense.ledger.count("counter_increment")
    assert fired > 20 and np.abs(dense.count).max() > 0
    assert largest == max_pulses  # the cap is reached (and respected)


def test_counter_update_outer_rejects_non_binary_states_unchanged():
    counter = DigitalCounter((3, 2), threshold=2)
    counter.update(np.array([[1, -1], [0, 1], [1, 0]]))
    before = counter.count.copy()
    ok = np.ones((4, 3)), np.ones((4, 2))
    with pytest.raises(ValueError, match="binary"):
        counter.update_outer(np.full((4, 3), 0.5), ok[1], *ok)
    with pytest.raises(ValueError, match="binary"):
        counter.update_outer(*ok, ok[0], np.full((4, 2), 2.0))
    with pytest.raises(ValueError, match="shape"):
        counter.update_outer(np.ones((4, 2)), ok[1], *ok)
    np.testing.assert_array_equal(counter.count, before)
    assert counter.ledger.count("counter_increment") == 4
