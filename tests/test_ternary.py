"""Ternary MTJ-pair synapses: switching law, one-level moves, expected step, read, errors."""

import numpy as np
import pytest

from neuromem import EnergyLedger
from neuromem.devices import MTJ, YFlash
from neuromem.ternary import TernaryCrossbar, TernaryPeriphery

PROBS = np.array([0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98])


def _binomial_ok(measured, p, n, sigmas=5.0):
    return np.all(np.abs(measured - p) <= sigmas * np.sqrt(p * (1 - p) / n) + 1e-12)


@pytest.mark.parametrize("start, direction", [(0, 1), (0, -1), (1, -1), (-1, 1)])
def test_measured_switching_frequency_follows_the_switching_law(start, direction):
    rows = 4000
    device = MTJ(d2d_r_rel=0.0)
    init = {-1: (1, 0, 0), 0: (0, 1, 0), 1: (0, 0, 1)}[start]
    xbar = TernaryCrossbar(rows, PROBS.size, device, init=init, seed=3)
    w_set, w_reset = xbar.pulse_widths(PROBS)
    setting = start == 0  # from 0 a device goes AP -> P; from +-1 one goes P -> AP
    widths = w_set if setting else w_reset
    # the law, evaluated by the device itself at those widths (not by the inversion)
    if setting:
        law = device.switching_probability(widths, device.pulse_voltage_v, device.r_ap_ohm)
    else:
        law = device.switching_probability(widths, -device.depress_voltage_v, device.r_p_ohm)
    np.testing.assert_allclose(law, PROBS, rtol=1e-6)
    x = np.ones((1, rows), np.int8)
    out = xbar.update(x, np.full((1, PROBS.size), direction, np.int8), PROBS[None, :])
    moved = (xbar.weights != start).mean(axis=0)
    assert _binomial_ok(moved, law, rows)
    assert out["switches"] == int((xbar.weights != start).sum())
    key = "set_pulses" if setting else "reset_pulses"
    assert out[key] == rows * PROBS.size


def test_longer_pulses_switch_more_often_and_spread_changes_the_realised_rate():
    # a wide lognormal spread of delta changes each device's law; the mean rate moves away
    # from the controller's aim at low probability (the law is convex there)
    rows, p = 6000, np.array([0.05])
    plain = TernaryCrossbar(rows, 1, MTJ(d2d_r_rel=0.0), init=(0, 1, 0), seed=1)
    spread = TernaryCrossbar(rows, 1, MTJ(d2d_r_rel=0.3), d2d_delta_rel=0.3, init=(0, 1, 0), seed=1)
    for xbar in (plain, spread):
        xbar.update(np.ones((1, rows), np.int8), np.ones((1, 1), np.int8), p[None, :])
    f_plain = (plain.weights != 0).mean()
    f_spread = (spread.weights != 0).mean()
    assert _binomial_ok(np.array([f_plain]), p, rows)
    assert f_spread > p[0] + 5 * np.sqrt(p[0] * (1 - p[0]) / rows)
    w1, _ = plain.pulse_widths(np.array([0.2, 0.6]))
    assert w1[1] > w1[0] > 0


def test_a_transition_never_skips_a_state():
    rng = np.random.default_rng(0)
    xbar = TernaryCrossbar(60, 50, MTJ(d2d_r_rel=0.2), d2d_delta_rel=0.2, seed=0)
    moves = 0
    for _ in range(30):
        before = xbar.weights
        x = rng.integers(-1, 2, size=(1, 60)).astype(np.int8)
        d = rng.integers(-1, 2, size=(1, 50)).astype(np.int8)
        xbar.update(x, d, np.ones((1, 50)))  # the longest pulses: as likely to move as can be
        after = xbar.weights
        step = after.astype(int) - before
        assert np.all(np.abs(step) <= 1)
        wanted = np.sign(x[0][:, None] * d[0][None, :])
        assert np.all(step[wanted == 0] == 0)                  # gated rows, idle columns
        assert np.all((step == 0) | (step == wanted))          # only towards the aim
        plus, minus = xbar.device_bits
        assert not np.any(plus & minus)                        # canonical states only
        moves += int(np.sum(step != 0))
    assert moves > 1000


def test_program_reaches_the_target_one_level_per_round_and_books_it():
    rng = np.random.default_rng(1)
    xbar = TernaryCrossbar(40, 30, MTJ(d2d_r_rel=0.2), d2d_delta_rel=0.3, seed=3)
    start = xbar.weights
    target = rng.integers(-1, 2, size=xbar.shape).astype(np.int8)
    done = xbar.program(target)
    np.testing.assert_array_equal(xbar.weights, target)
    plus, minus = xbar.device_bits
    assert not np.any(plus & minus)
    # one device switch per level moved, never past the target, and a cell two levels
    # away needs a second round
    assert done["switches"] == int(np.abs(target.astype(int) - start).sum())
    assert done["rounds"] >= 2 and np.any(np.abs(target.astype(int) - start) == 2)
    ledger = xbar.ledger  # fabrication books nothing
    assert ledger.count("read") == 40 * (done["rounds"] + 1)  # a verify read of every row per round
    assert ledger.count("pulse_set") + ledger.count("pulse_reset") == (
        done["set_pulses"] + done["reset_pulses"]) >= done["switches"]
    assert ledger.total_j > 0
    assert xbar.program(target) == {"set_pulses": 0, "reset_pulses": 0, "switches": 0, "rounds": 0}


def test_program_refuses_bad_targets_and_reports_cells_it_could_not_move():
    xbar = TernaryCrossbar(4, 5, seed=0)
    for bad in (np.zeros((5, 4), np.int8), np.full((4, 5), 2), np.zeros((4, 5)), np.full((4, 5), -2)):
        with pytest.raises(ValueError, match="target"):
            xbar.program(bad)
    with pytest.raises(ValueError, match="max_rounds"):
        xbar.program(np.zeros((4, 5), np.int8), max_rounds=0)
    far = -np.where(xbar.weights == 0, 1, xbar.weights).astype(np.int8)  # some cells two levels away
    with pytest.raises(RuntimeError, match="1 rounds"):
        xbar.program(far, max_rounds=1)


def test_samples_of_one_call_apply_in_order_one_level_each():
    xbar = TernaryCrossbar(1, 1, MTJ(d2d_r_rel=0.0), init=(1, 0, 0), seed=0)
    x = np.ones((3, 1), np.int8)
    xbar.update(x, np.ones((3, 1), np.int8), np.ones((3, 1)))
    assert xbar.weights[0, 0] == 1  # -1 -> 0 -> +1, then saturated
    out = xbar.update(x[:1], np.ones((1, 1), np.int8), np.ones((1, 1)))
    assert out["saturated"] == 1 and out["set_pulses"] == out["reset_pulses"] == 0


def test_read_is_the_gated_xnor_sum():
    xbar = TernaryCrossbar(30, 7, MTJ(d2d_r_rel=0.0), seed=4)
    a = np.random.default_rng(1).integers(-1, 2, size=(5, 30)).astype(np.int8)
    counts = xbar.read(a) / xbar.unit_current_a
    np.testing.assert_allclose(counts, a.astype(int) @ xbar.weights, atol=1e-9)
    # transposed read with column voltages
    v = np.random.default_rng(2).uniform(-0.2, 0.2, size=(2, 7))
    back = xbar.read_back(v) / (xbar.unit_current_a / xbar.device.read_voltage_v)
    np.testing.assert_allclose(back, v @ xbar.weights.T, atol=1e-9)
    assert xbar.ledger.count("read") == 5 and xbar.ledger.count("read_back") == 2
    assert xbar.ledger.energy_j("read") > 0


def test_grouped_columns_sum_their_currents_and_share_a_driver():
    # four cells per weight: runs of 4 adjacent columns on one sense line and one DAC
    xbar = TernaryCrossbar(30, 12, MTJ(d2d_r_rel=0.1), seed=5)
    twin = TernaryCrossbar.from_state_dict(*xbar.state_dict())
    rng = np.random.default_rng(3)
    for _ in range(2):  # the second pass reads after a write (the wired sums follow it)
        a = rng.integers(-1, 2, size=(6, 30)).astype(np.int8)
        per_column = twin.read(a)
        np.testing.assert_allclose(xbar.read(a, group=4), per_column.reshape(6, 3, 4).sum(axis=2),
                                   rtol=1e-12, atol=1e-18)
        v = rng.uniform(-0.2, 0.2, size=(2, 3))
        np.testing.assert_allclose(xbar.read_back(v, group=4), twin.read_back(np.repeat(v, 4, axis=1)),
                                   rtol=1e-12, atol=1e-18)
        for kind in ("read", "read_back"):
            assert xbar.ledger.energy_j(kind) == pytest.approx(twin.ledger.energy_j(kind), rel=1e-12)
        d, p = rng.integers(-1, 2, size=(30, 12)).astype(np.int8), np.full((30, 12), 0.6)
        xbar.update_cells(d, p)
        twin.update_cells(d, p)
        assert xbar.ledger.count("switch") > 0
    for bad in (0, 5, 2.0, True):
        with pytest.raises(ValueError, match="group must be an integer >= 1 that divides cols"):
            xbar.read(a, group=bad)
    with pytest.raises(ValueError, match=r"v_cols must have shape \(3,\)"):
        xbar.read_back(np.zeros(12), group=4)


def test_read_takes_dac_levels_and_books_their_energy():
    xbar = TernaryCrossbar(30, 7, MTJ(d2d_r_rel=0.0), seed=4)
    a = np.random.default_rng(1).uniform(-1, 1, size=(5, 30))
    counts = xbar.read(a) / xbar.unit_current_a
    np.testing.assert_allclose(counts, a @ xbar.weights, atol=1e-9)
    full = xbar.ledger.energy_j("read")
    xbar.read(a / 2)  # the read energy goes as the square of the drive
    assert xbar.ledger.energy_j("read") - full == pytest.approx(full / 4)
    ternary = np.sign(a).astype(np.int8)
    np.testing.assert_allclose(xbar.read(ternary.astype(float)), xbar.read(ternary), atol=0)
    for bad in (np.full(30, 1.5), np.full(30, np.nan)):
        with pytest.raises(ValueError, match=r"\[-1, 1\]"):
            xbar.read(bad)


def test_mismatch_makes_zero_weights_conduct_a_little():
    xbar = TernaryCrossbar(200, 3, MTJ(d2d_r_rel=0.1), init=(0, 1, 0), seed=0)
    counts = xbar.read(np.ones(200, np.int8)) / xbar.unit_current_a
    assert np.all(counts != 0) and np.all(np.abs(counts) < 20)


def test_state_dict_round_trip_keeps_bits_devices_and_stream():
    xbar = TernaryCrossbar(8, 5, MTJ(d2d_r_rel=0.1), d2d_delta_rel=0.1, seed=2)
    arrays, meta = xbar.state_dict()
    twin = TernaryCrossbar.from_state_dict(arrays, meta)
    np.testing.assert_array_equal(twin.weights, xbar.weights)
    a = np.ones((1, 8), np.int8)
    np.testing.assert_array_equal(twin.read(a), xbar.read(a))
    d, p = np.ones((1, 5), np.int8), np.full((1, 5), 0.5)
    xbar.update(a, d, p)
    twin.update(a, d, p)
    np.testing.assert_array_equal(twin.weights, xbar.weights)
    bad = dict(arrays, plus=np.ones((8, 5), np.uint8), minus=np.ones((8, 5), np.uint8))
    with pytest.raises(ValueError, match="canonical"):
        TernaryCrossbar.from_state_dict(bad, meta)


def test_periphery_books_conversions_and_quantises():
    ledger = EnergyLedger()
    per = TernaryPeriphery(adc_bits=4)
    q = per.adc(np.array([0.0, 0.33, 2.0, -5.0]), 1.0, ledger)
    assert q[2] == 1.0 and q[3] == -1.0 and abs(q[1] - 0.33) <= 1 / 15
    assert ledger.count("adc") == 4 and ledger.energy_j("adc") == pytest.approx(4 * 16 * 10e-15)
    t = per.threshold(np.array([-2.0, -0.5, 0.5, 2.0]), 1.0, ledger, ternary=True)
    np.testing.assert_array_equal(t, [-1, 0, 0, 1])
    assert ledger.count("comparator") == 8


def test_the_accumulator_adds_for_ternary_drives_and_multiplies_for_dac_levels():
    ledger = EnergyLedger()
    per = TernaryPeriphery()
    ternary = np.array([[1, 0, -1, 0], [0, 0, 1, 1]], dtype=np.int8)
    per.accumulate(ternary, 5, ledger)  # 4 nonzero drives, each selecting 5 errors
    assert ledger.count("digital_add") == 20 and ledger.count("digital") == 0
    assert ledger.energy_j("digital_add") == pytest.approx(20 * 0.4e-12)
    per.accumulate(np.array([[0.5, 0.0, -0.25, 0.0]]), 5, ledger)  # DAC levels: real products
    assert ledger.count("digital") == 20 and ledger.energy_j("digital") == pytest.approx(20 * 1.5e-12)
    assert ledger.count("digital_add") == 20
    with pytest.raises(ValueError, match="digital_add_energy_j"):
        TernaryPeriphery(digital_add_energy_j=-1.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"rows": 0}, "rows"), ({"cols": 1.5}, "cols"), ({"device": YFlash()}, "MTJ"),
    ({"d2d_delta_rel": -0.1}, "d2d_delta_rel"), ({"max_width_s": 0.0}, "max_width_s"),
    ({"min_probability": 2.0}, "min_probability"), ({"init": (0.5, 0.5, 0.5)}, "init"),
])
def test_bad_construction_is_refused(kwargs, match):
    args = {"rows": 3, "cols": 2}
    args.update(kwargs)
    rows, cols = args.pop("rows"), args.pop("cols")
    with pytest.raises(ValueError, match=match):
        TernaryCrossbar(rows, cols, **args)


def test_bad_drive_and_update_are_refused():
    xbar = TernaryCrossbar(3, 2, seed=0)
    with pytest.raises(ValueError, match="only -1, 0 and \\+1"):
        xbar.read(np.array([2, 0, 1]))
    with pytest.raises(ValueError, match="shape"):
        xbar.read(np.ones(4, np.int8))
    with pytest.raises(ValueError, match="read range"):
        xbar.read_back(np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="probabilities"):
        xbar.update(np.ones((1, 3), np.int8), np.ones((1, 2), np.int8), np.full((1, 2), 1.5))
    with pytest.raises(ValueError, match="samples"):
        xbar.update(np.ones((2, 3), np.int8), np.ones((1, 2), np.int8), np.ones((1, 2)))
    with pytest.raises(ValueError, match="adc_bits"):
        TernaryPeriphery(adc_bits=0)
