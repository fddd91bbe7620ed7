"""Tests of neuromem.Crossbar: Kirchhoff reads, pulses, program-and-verify, faults,
persistence, input validation, and a smoke run over every registered device family.

Device physics (each family's own curves and statistics) is tested elsewhere
(tests/test_devices.py, tests/test_yflash.py); here the devices only need to exist.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuromem import Crossbar, EnergyLedger, ProgramResult
from neuromem.devices import Device, Ideal, device_classes

SCHEMES = ("reference", "differential", "single")
ROWS, COLS = 13, 7


def _scrambled(scheme, seed=0, rows=ROWS, cols=COLS, **kwargs):
    """An Ideal crossbar whose conductances differ from cell to cell."""
    xbar = Crossbar(rows, cols, Ideal(), scheme=scheme, seed=seed, **kwargs)
    rng = np.random.default_rng(seed + 100)
    xbar.apply_pulses(rng.integers(-400, 401, size=(rows, cols)))
    return xbar


def _signed_g(xbar):
    """G+ - G- (or G) in float64, built from the public per-array views."""
    g = xbar.conductance.astype(np.float64)
    if xbar.scheme == "single":
        assert xbar.reference_conductance is None
        return g
    return g - xbar.reference_conductance.astype(np.float64)


def _total_g(xbar):
    g = xbar.conductance.astype(np.float64)
    if xbar.scheme != "single":
        g = g + xbar.reference_conductance
    return g


# ---------------------------------------------------------------------------- read

@pytest.mark.parametrize("scheme", SCHEMES)
def test_read_equals_v_dot_g_float_volts(scheme):
    xbar = _scrambled(scheme)
    g = _signed_g(xbar)
    assert np.ptp(g) > 1e-7, "test needs a non-trivial weight matrix"
    rng = np.random.default_rng(1)
    v1 = rng.uniform(-0.2, 0.2, ROWS)
    vb = rng.uniform(-0.2, 0.2, (5, ROWS))
    for v in (v1, vb):
        i = xbar.read(v)
        expected = v @ g
        assert i.shape == expected.shape
        assert i.dtype == np.float32
        np.testing.assert_allclose(i, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("scheme", SCHEMES)
def test_read_boolean_input_drives_read_voltage(scheme):
    xbar = _scrambled(scheme)
    g = _signed_g(xbar)
    vr = xbar.device.read_voltage_v
    rng = np.random.default_rng(2)
    b1 = rng.random(ROWS) < 0.5
    bb = rng.random((6, ROWS)) < 0.5
    for b in (b1, bb):
        i = xbar.read(b)
        expected = (b * vr) @ g
        assert i.shape == expected.shape
        np.testing.assert_allclose(i, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
        # a boolean array is the same as the equivalent float volts
        np.testing.assert_allclose(i, xbar.read(b.astype(np.float64) * vr), rtol=1e-6)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_read_back_is_the_transposed_read(scheme):
    xbar = _scrambled(scheme)
    g = _signed_g(xbar)
    rng = np.random.default_rng(30)
    v = rng.uniform(-0.2, 0.2, (4, COLS))
    expected = v @ g.T
    np.testing.assert_allclose(xbar.read_back(v), expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())
    b = rng.random(COLS) < 0.5
    vr = xbar.device.read_voltage_v
    np.testing.assert_allclose(xbar.read_back(b), (b * vr) @ g.T, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max())
    xbar.ledger.reset()
    xbar.read_back(v)
    e = xbar.device.read_time_s * float(np.sum((v ** 2) @ _total_g(xbar).T))
    assert xbar.ledger.energy_j("read") == pytest.approx(e, rel=1e-6)
    with pytest.raises(ValueError, match="v must have shape"):
        xbar.read_back(np.ones(ROWS))


def test_binary_flag_treats_0_1_floats_as_drive():
    xbar = _scrambled("reference")
    rng = np.random.default_rng(31)
    b = rng.random((3, ROWS)) < 0.5
    f = b.astype(np.float32)
    np.testing.assert_array_equal(xbar.read(f, binary=True), xbar.read(b))
    with pytest.raises(ValueError, match="binary"):
        xbar.read(f * 0.5, binary=True)
    # binary=False reads the input as volts: 1 V is outside the Ideal read range ...
    with pytest.raises(ValueError, match="read range"):
        xbar.read(b, binary=False)
    # ... and V_read * f is the binary read again, by a float product
    vr = xbar.device.read_voltage_v
    np.testing.assert_allclose(xbar.read(f * vr, binary=False), vr * (f @ _signed_g(xbar)),
                               rtol=1e-5, atol=1e-12)


def test_integer_0_1_input_is_binary_drive():
    """What neuromem.data.binarize returns (uint8 0/1) drives rows at V_read, like bool."""
    xbar = _scrambled("reference")
    b = np.random.default_rng(5).random((4, ROWS)) < 0.5
    for dtype in (np.uint8, np.int64):
        np.testing.assert_array_equal(xbar.read(b.astype(dtype)), xbar.read(b))
    np.testing.assert_array_equal(xbar.read_back(b[:, :COLS].astype(np.uint8)),
                                  xbar.read_back(b[:, :COLS]))


def test_drive_outside_the_read_range_is_refused():
    xbar = _scrambled("reference")
    vr = xbar.device.read_voltage_v
    e0 = xbar.ledger.energy_j("read")
    for v in (1e6, 1.01 * vr, -2 * vr):
        with pytest.raises(ValueError, match="read range"):
            xbar.read(np.full(ROWS, v))
        with pytest.raises(ValueError, match="read range"):
            xbar.read_back(np.full(COLS, v))
    assert xbar.ledger.energy_j("read") == e0  # nothing booked for a refused read
    xbar.read(np.full(ROWS, vr))  # the read voltage itself is fine
    xbar.read(np.full(ROWS, -vr))
    with pytest.raises(ValueError, match="read range"):  # integers other than 0/1 are volts
        xbar.read(np.full(ROWS, 255, dtype=np.uint8))


def test_read_uses_weights_property_consistently():
    xbar = _scrambled("differential")
    np.testing.assert_allclose(xbar.effective_conductance, _signed_g(xbar), rtol=1e-6, atol=1e-15)
    np.testing.assert_allclose(xbar.weights * xbar.weight_unit_s, _signed_g(xbar),
                               rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_read_energy_matches_ledger(scheme):
    xbar = _scrambled(scheme)
    gt = _total_g(xbar)
    t = xbar.device.read_time_s
    vr = xbar.device.read_voltage_v
    rng = np.random.default_rng(3)
    v = rng.uniform(-0.2, 0.2, (4, ROWS))
    b = rng.random((3, ROWS)) < 0.5
    b1 = rng.random(ROWS) < 0.5
    xbar.ledger.reset()
    xbar.read(v)
    e_v = t * sum(float(np.sum(vk[:, None] ** 2 * gt)) for vk in v)
    assert xbar.ledger.count("read") == 4
    assert xbar.ledger.energy_j("read") == pytest.approx(e_v, rel=1e-9)
    xbar.read(b)
    xbar.read(b1)
    e_b = t * sum(float(np.sum((bk * vr)[:, None] ** 2 * gt)) for bk in (*b, b1))
    assert xbar.ledger.count("read") == 4 + 3 + 1
    assert xbar.ledger.energy_j("read") == pytest.approx(e_v + e_b, rel=1e-6)


def test_read_noise_has_stated_std_and_is_seeded():
    rel, absolute = 0.05, 2e-9
    xbar = _scrambled("reference", seed=5, read_noise_rel=rel, read_noise_a=absolute)
    rng = np.random.default_rng(4)
    v = rng.random((2000, ROWS)) < 0.5
    clean = xbar.read(v, noise=False).astype(np.float64)
    noisy = xbar.read(v).astype(np.float64)
    sigma = rel * np.abs(clean) + absolute
    z = (noisy - clean) / sigma
    n = z.size
    assert abs(z.mean()) < 5 / np.sqrt(n)
    # var of a sample variance of n normals: 2/n
    assert abs(z.var() - 1.0) < 5 * np.sqrt(2 / n)
    # same seed, same draws; another seed, other draws
    again = _scrambled("reference", seed=5, read_noise_rel=rel, read_noise_a=absolute)
    again.read(v, noise=False)
    np.testing.assert_array_equal(again.read(v), noisy.astype(np.float32))
    other = _scrambled("reference", seed=6, read_noise_rel=rel, read_noise_a=absolute)
    assert not np.array_equal(other.read(v), noisy.astype(np.float32))


def test_read_without_noise_is_exact_when_noise_configured():
    xbar = _scrambled("reference", read_noise_rel=0.1)
    v = np.ones(ROWS) * 0.1
    np.testing.assert_allclose(xbar.read(v, noise=False), v @ _signed_g(xbar), rtol=1e-5)
    assert not np.allclose(xbar.read(v), v @ _signed_g(xbar), rtol=1e-3)


# ---------------------------------------------------------------------------- pulses

@pytest.mark.parametrize("scheme", SCHEMES)
def test_apply_pulses_moves_weights_by_sign(scheme):
    xbar = Crossbar(ROWS, COLS, Ideal(), scheme=scheme, seed=0)
    w0 = xbar.weights.copy()
    gp0 = xbar.conductance
    gm0 = xbar.reference_conductance
    rng = np.random.default_rng(7)
    counts = rng.integers(-20, 21, size=(ROWS, COLS))
    xbar.apply_pulses(counts)
    dw = xbar.weights - w0
    assert np.all(dw[counts > 0] > 0)
    assert np.all(dw[counts < 0] < 0)
    assert np.all(dw[counts == 0] == 0)
    step = xbar.device.step_s
    np.testing.assert_allclose(xbar.conductance - gp0, counts * step, atol=1e-15)
    if scheme == "differential":
        np.testing.assert_allclose(xbar.reference_conductance - gm0, -counts * step, atol=1e-15)
        np.testing.assert_allclose(xbar.weights - w0, 2 * counts * step / xbar.weight_unit_s,
                                   rtol=1e-4, atol=1e-6)
    elif scheme == "reference":
        np.testing.assert_array_equal(xbar.reference_conductance, gm0)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_ledger_counts_requested_pulses(scheme):
    ledger = EnergyLedger()
    dev = Ideal(potentiate_energy_j=2e-12, depress_energy_j=3e-12)
    xbar = Crossbar(ROWS, COLS, dev, scheme=scheme, seed=0, ledger=ledger)
    rng = np.random.default_rng(8)
    counts = rng.integers(-5, 6, size=(ROWS, COLS))
    up_req = int(counts[counts > 0].sum())
    down_req = int(-counts[counts < 0].sum())
    up, down = xbar.apply_pulses(counts)
    assert (up, down) == (up_req, down_req)
    if scheme == "differential":  # G- gets the opposite train
        up_req, down_req = up_req + down_req, down_req + up_req
    assert ledger.count("potentiate") == up_req
    assert ledger.count("depress") == down_req
    assert ledger.energy_j("potentiate") == pytest.approx(up_req * 2e-12)
    assert ledger.energy_j("depress") == pytest.approx(down_req * 3e-12)
    # a zero update records nothing
    xbar.apply_pulses(np.zeros((ROWS, COLS), dtype=int))
    assert ledger.count("potentiate") == up_req


def test_pulse_width_scales_step_and_energy():
    xbar = Crossbar(2, 2, Ideal(), seed=0)
    g0 = xbar.conductance
    xbar.apply_pulses(np.full((2, 2), 3), width=0.5)
    np.testing.assert_allclose(xbar.conductance - g0, 1.5 * xbar.device.step_s, rtol=1e-9)
    assert xbar.ledger.count("potentiate") == 12
    assert xbar.ledger.energy_j("potentiate") == pytest.approx(12 * 0.5 * 1e-12)


def test_ideal_pulses_clip_at_bounds():
    xbar = Crossbar(3, 3, Ideal(), scheme="single", seed=0)
    xbar.apply_pulses(np.full((3, 3), 10_000))
    assert np.all(xbar.conductance == xbar.device.g_max_s)
    xbar.apply_pulses(np.full((3, 3), -10_000))
    assert np.all(xbar.conductance == xbar.device.g_min_s)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_outer_update_equals_apply_pulses_of_outer_product(scheme):
    rng = np.random.default_rng(9)
    signs = rng.integers(-1, 2, ROWS)
    widths = rng.integers(0, 6, COLS)
    a = Crossbar(ROWS, COLS, Ideal(c2c_step_rel=0.2), scheme=scheme, seed=3)
    b = Crossbar(ROWS, COLS, Ideal(c2c_step_rel=0.2), scheme=scheme, seed=3)
    ra = a.outer_update(signs, widths)
    rb = b.apply_pulses(np.outer(signs, widths))
    assert ra == rb
    np.testing.assert_array_equal(a.conductance, b.conductance)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.ledger.as_dict() == b.ledger.as_dict()
    # float signs of exactly -1/0/+1 are accepted
    a.outer_update(signs.astype(float), widths)
    b.apply_pulses(np.outer(signs, widths))
    np.testing.assert_array_equal(a.conductance, b.conductance)


def test_outer_update_rejects_bad_signals():
    xbar = Crossbar(3, 2, seed=0)
    with pytest.raises(ValueError, match="row_signs"):
        xbar.outer_update([1, 0, 2], [1, 1])
    with pytest.raises(ValueError, match="row_signs"):
        xbar.outer_update([1, 0], [1, 1])
    with pytest.raises(ValueError, match="row_signs"):
        xbar.outer_update([1, np.nan, 0], [1, 1])
    with pytest.raises(ValueError, match="col_pulses"):
        xbar.outer_update([1, 0, -1], [1, -1])
    with pytest.raises((ValueError, TypeError), match="col_pulses"):
        xbar.outer_update([1, 0, -1], [1.5, 1.0])
    with pytest.raises(ValueError, match="col_pulses"):
        xbar.outer_update([1, 0, -1], [1, 1, 1])


# ---------------------------------------------------------------------------- faults

def _faulty(scheme="reference", seed=11, rows=30, cols=30, **dev):
    return Crossbar(rows, cols, Ideal(**dev), scheme=scheme, seed=seed,
                    stuck_low_rate=0.05, stuck_high_rate=0.05, dead_rate=0.05)


@pytest.mark.parametrize("dev", [{}, {"g_min_s": 1e-8}])
def test_fault_masks_are_disjoint_and_have_the_stated_rates(dev):
    xbar = _faulty(rows=60, cols=60, **dev)
    f = xbar.faults
    n = 60 * 60
    masks = [f["stuck_low"], f["stuck_high"], f["dead"]]
    assert sum(m.astype(int) for m in masks).max() <= 1, "a cell has two fault kinds"
    for m in masks:
        # binomial(3600, 0.05): mean 180, std 13
        assert abs(m.sum() - 0.05 * n) < 5 * np.sqrt(n * 0.05 * 0.95)
    g = xbar.conductance
    assert np.all(g[f["stuck_low"]] == xbar.device.g_min_s)
    assert np.all(g[f["stuck_high"]] == xbar.device.g_max_s)
    assert np.all(g[f["dead"]] == 0.0)
    healthy = ~(masks[0] | masks[1] | masks[2])
    assert np.all(g[healthy] == xbar.device.g_init_s)


def test_fault_rates_are_validated():
    with pytest.raises(ValueError, match="stuck_low_rate"):
        Crossbar(2, 2, stuck_low_rate=-0.1)
    with pytest.raises(ValueError, match="dead_rate"):
        Crossbar(2, 2, dead_rate=1.5)
    with pytest.raises(TypeError, match="stuck_high_rate"):
        Crossbar(2, 2, stuck_high_rate="0.1")
    with pytest.raises(ValueError, match="fault rates"):
        Crossbar(2, 2, stuck_low_rate=0.6, stuck_high_rate=0.6)


@pytest.mark.parametrize("scheme", ["reference", "differential"])
def test_stuck_cells_never_move_under_pulses(scheme):
    xbar = _faulty(scheme)
    f = xbar.faults
    faulty = f["stuck_low"] | f["stuck_high"] | f["dead"]
    assert faulty.sum() > 50
    g0 = xbar.conductance
    rng = np.random.default_rng(12)
    for _ in range(20):
        xbar.apply_pulses(rng.integers(-300, 301, size=g0.shape))
        np.testing.assert_array_equal(xbar.conductance[faulty], g0[faulty])
    xbar.outer_update(np.ones(30, dtype=int), np.full(30, 1000))
    np.testing.assert_array_equal(xbar.conductance[faulty], g0[faulty])
    np.testing.assert_allclose(xbar.conductance[~faulty], xbar.device.g_max_s, rtol=1e-9)
    # the faults hold through program and analogue updates too
    xbar.program(np.full(g0.shape, 3e-7), max_pulses=1000)
    np.testing.assert_array_equal(xbar.conductance[faulty], g0[faulty])
    xbar.add_conductance(np.full(g0.shape, -1e-7))
    np.testing.assert_array_equal(xbar.conductance[faulty], g0[faulty])


# ---------------------------------------------------------------------------- program

def test_program_reaches_targets_on_healthy_cells():
    xbar = Crossbar(20, 20, Ideal(c2c_step_rel=0.3, d2d_step_rel=0.2), scheme="single", seed=13)
    rng = np.random.default_rng(14)
    target = rng.uniform(0.1e-6, 0.9e-6, (20, 20))
    res = xbar.program(target, tolerance=0.02, max_pulses=2000)
    assert isinstance(res, ProgramResult)
    assert res.n_missed == 0
    g = xbar.conductance
    assert np.all(np.abs(g - target) <= 0.02 * target)
    np.testing.assert_array_equal(res.conductance_s, g)
    assert res.pulses.shape == (20, 20) and res.pulses.dtype.kind == "i"
    # pulses needed: at least the distance to the tolerance band in (generously large) steps
    distance = np.abs(target - 5e-7) - 0.02 * target
    assert np.all(res.pulses >= np.floor(distance / (4 * 1e-9)))
    assert np.any(res.pulses > 100)
    assert res.pulses.max() <= 2000
    assert xbar.ledger.count("verify_read") > 0


def test_program_reports_stuck_and_dead_cells_as_missed():
    xbar = _faulty("reference", rows=30, cols=30, g_min_s=1e-8)
    rng = np.random.default_rng(15)
    target = rng.uniform(0.2e-6, 0.8e-6, (30, 30))
    res = xbar.program(target, tolerance=0.02, max_pulses=1000)
    f = xbar.faults
    faulty = f["stuck_low"] | f["stuck_high"] | f["dead"]
    np.testing.assert_array_equal(res.missed, faulty)
    assert res.n_missed == int(faulty.sum())
    # faulty cells used up their pulse budget trying
    assert np.all(res.pulses[faulty] == 1000)
    assert np.all(res.pulses[~faulty] < 1000)


def test_program_reports_unreachable_targets():
    xbar = Crossbar(2, 2, Ideal(), scheme="single", seed=0)
    target = np.array([[2e-6, 3e-7], [0.5e-6, 1.0e-6]])  # 2 µS is above g_max
    res = xbar.program(target, max_pulses=1000)
    np.testing.assert_array_equal(res.missed, [[True, False], [False, False]])
    assert xbar.conductance[0, 0] == xbar.device.g_max_s


def test_program_max_pulses_limits_work():
    xbar = Crossbar(2, 2, Ideal(), scheme="single", seed=0)
    res = xbar.program(np.full((2, 2), 1e-7), max_pulses=10)  # needs 400 steps
    assert np.all(res.pulses == 10)
    assert np.all(res.missed)
    np.testing.assert_allclose(xbar.conductance, 5e-7 - 10e-9)


def test_program_minus_array():
    xbar = Crossbar(3, 3, Ideal(), scheme="reference", seed=0)
    gp = xbar.conductance
    res = xbar.program(np.full((3, 3), 3e-7), array="minus", max_pulses=1000)
    assert res.n_missed == 0
    np.testing.assert_allclose(xbar.reference_conductance, 3e-7, rtol=0.05)
    np.testing.assert_array_equal(xbar.conductance, gp)
    with pytest.raises(ValueError, match="array"):
        Crossbar(2, 2, scheme="single").program(np.zeros((2, 2)), array="minus")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_program_weights(scheme):
    xbar = Crossbar(10, 8, Ideal(c2c_step_rel=0.1), scheme=scheme, seed=16)
    rng = np.random.default_rng(17)
    lo = 0.05 if scheme == "single" else -0.4
    w = rng.uniform(lo, 0.4, (10, 8))
    res = xbar.program_weights(w, tolerance=0.01, max_pulses=2000)
    assert res.n_missed == 0
    # tolerance is relative to each device's conductance target
    if scheme == "single":
        np.testing.assert_allclose(xbar.weights, w, rtol=0.011)
    else:
        np.testing.assert_allclose(xbar.weights, w, atol=0.011 * 2)
    if scheme == "reference":
        np.testing.assert_array_equal(xbar.reference_conductance, np.full((10, 8), 5e-7))


def test_program_validates_arguments():
    xbar = Crossbar(2, 3, seed=0)
    with pytest.raises(ValueError, match="target_s"):
        xbar.program(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="target_s"):
        xbar.program(np.array([[1e-7, np.nan, 1e-7]] * 2))
    with pytest.raises(ValueError, match="target_s"):
        xbar.program(-1e-7)
    with pytest.raises(ValueError, match="tolerance"):
        xbar.program(1e-7, tolerance=0)
    with pytest.raises(TypeError, match="max_pulses"):
        xbar.program(1e-7, max_pulses=10.0)
    with pytest.raises(ValueError, match="max_pulses"):
        xbar.program(1e-7, max_pulses=0)
    with pytest.raises(ValueError, match="weights"):
        xbar.program_weights(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="weights"):
        xbar.program_weights(np.full((2, 3), np.inf))


# ---------------------------------------------------------------------------- persistence

def _json_roundtrip(meta):
    return json.loads(json.dumps(meta))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_state_dict_round_trip_is_exact(scheme):
    xbar = Crossbar(9, 6, Ideal(c2c_step_rel=0.2, d2d_step_rel=0.1), scheme=scheme, seed=21,
                    read_noise_rel=0.05, read_noise_a=1e-9,
                    stuck_low_rate=0.1, stuck_high_rate=0.1, dead_rate=0.1)
    rng = np.random.default_rng(22)
    xbar.apply_pulses(rng.integers(-50, 51, (9, 6)))
    xbar.read(np.ones(9, dtype=bool))
    arrays, meta = xbar.state_dict()
    arrays = {k: np.array(v) for k, v in arrays.items()}
    meta = _json_roundtrip(meta)
    copy = Crossbar.from_state_dict(arrays, meta)
    np.testing.assert_array_equal(copy.conductance, xbar.conductance)
    if scheme != "single":
        np.testing.assert_array_equal(copy.reference_conductance, xbar.reference_conductance)
    np.testing.assert_array_equal(copy.weights, xbar.weights)
    for k in ("stuck_low", "stuck_high", "dead"):
        np.testing.assert_array_equal(copy.faults[k], xbar.faults[k])
    assert copy.time_s == xbar.time_s
    assert copy.ledger.as_dict() == xbar.ledger.as_dict()
    assert copy.device == xbar.device
    # the futures agree: noise draws and cycle-to-cycle spread
    v = rng.random((5, 9)) < 0.5
    np.testing.assert_array_equal(copy.read(v), xbar.read(v))
    counts = rng.integers(-5, 6, (9, 6))
    copy.apply_pulses(counts)
    xbar.apply_pulses(counts)
    np.testing.assert_array_equal(copy.conductance, xbar.conductance)
    np.testing.assert_array_equal(copy.read(v), xbar.read(v))


def test_state_dict_is_a_snapshot():
    """Changing the crossbar after state_dict() must not change the saved state."""
    xbar = Crossbar(3, 3, seed=0)
    arrays, meta = xbar.state_dict()
    g0 = xbar.conductance
    xbar.apply_pulses(np.full((3, 3), 7))
    copy = Crossbar.from_state_dict(arrays, meta)
    np.testing.assert_array_equal(copy.conductance, g0)


def test_from_state_dict_without_fault_kinds_derives_them():
    xbar = Crossbar(20, 20, Ideal(g_min_s=1e-8), seed=3, stuck_low_rate=0.1,
                    stuck_high_rate=0.1, dead_rate=0.1)
    arrays, meta = xbar.state_dict()
    del arrays["fault_kind_plus"]
    copy = Crossbar.from_state_dict(arrays, meta)
    for k in ("stuck_low", "stuck_high", "dead"):
        np.testing.assert_array_equal(copy.faults[k], xbar.faults[k])


def test_from_state_dict_shares_a_given_ledger():
    xbar = Crossbar(3, 3, seed=0)
    arrays, meta = xbar.state_dict()
    ledger = EnergyLedger()
    copy = Crossbar.from_state_dict(arrays, meta, ledger=ledger)
    copy.read(np.full(3, 0.1))  # volts within the read range
    assert ledger.count("read") == 1


@pytest.mark.parametrize("scheme", ["reference", "differential", "single"])
def test_conductance_only_state_reads_the_same_and_refuses_writes(scheme):
    from neuromem.devices import YFlash

    xbar = Crossbar(6, 5, YFlash(), scheme=scheme, read_noise_rel=0.05, seed=3)
    xbar.apply_pulses(np.random.default_rng(0).integers(-3, 4, xbar.shape))
    full_arrays, _ = xbar.state_dict()
    arrays, meta = xbar.state_dict(conductance_only=True)
    assert sum(a.nbytes for a in arrays.values()) < 0.5 * sum(a.nbytes for a in full_arrays.values())
    copy = Crossbar.from_state_dict(arrays, meta)
    assert copy.read_only and not xbar.read_only
    v = np.random.default_rng(1).random((4, 6)) < 0.5
    np.testing.assert_array_equal(copy.read(v), xbar.read(v))  # same noise stream too
    np.testing.assert_array_equal(copy.effective_conductance, xbar.effective_conductance)
    for write in (lambda: copy.apply_pulses(np.ones(copy.shape, dtype=np.int64)),
                  lambda: copy.program(np.full(copy.shape, 1e-7))):
        with pytest.raises(RuntimeError, match="read but not pulsed"):
            write()


def test_from_state_dict_rejects_bad_input():
    xbar = Crossbar(4, 5, scheme="differential", seed=0)
    arrays, meta = xbar.state_dict()
    for key in arrays:
        bad = dict(arrays)
        del bad[key]
        if key in ("fault_kind_plus", "pulses_plus", "pulses_minus"):  # optional: older dicts
            Crossbar.from_state_dict(bad, meta)
        else:
            with pytest.raises(ValueError, match=key):
                Crossbar.from_state_dict(bad, meta)
        bad = dict(arrays)
        bad[key] = np.asarray(arrays[key])[..., :-1]
        with pytest.raises(ValueError, match=key):
            Crossbar.from_state_dict(bad, meta)
    for key in meta:
        if key == "conductance_only":  # optional: absent in older dicts, means False
            continue
        bad = dict(meta)
        del bad[key]
        with pytest.raises(ValueError, match=key):
            Crossbar.from_state_dict(arrays, bad)
    bad = dict(meta, rows=5)
    with pytest.raises(ValueError, match=r"'state_plus' has shape \(2, 20\), expected \(2, 25\)"):
        Crossbar.from_state_dict(arrays, bad)


# ---------------------------------------------------------------------------- validation

def test_constructor_validation():
    with pytest.raises(ValueError, match="unknown device 'nope'"):
        Crossbar(2, 2, "nope")
    with pytest.raises(TypeError, match="device"):
        Crossbar(2, 2, 3.0)
    with pytest.raises(ValueError, match="scheme"):
        Crossbar(2, 2, scheme="mirror")
    with pytest.raises(TypeError, match="rows"):
        Crossbar(2.0, 2)
    with pytest.raises(TypeError, match="cols"):
        Crossbar(2, "3")
    with pytest.raises(TypeError, match="rows"):
        Crossbar(True, 2)
    with pytest.raises(ValueError, match="rows"):
        Crossbar(0, 2)
    with pytest.raises(ValueError, match="cols"):
        Crossbar(2, -1)
    with pytest.raises(ValueError, match="read_noise_rel"):
        Crossbar(2, 2, read_noise_rel=-0.1)
    with pytest.raises(ValueError, match="read_noise_a"):
        Crossbar(2, 2, read_noise_a=float("nan"))
    assert Crossbar(np.int64(2), 3).shape == (2, 3)
    assert Crossbar(2, 2, "Ideal").device == Ideal()


def test_device_parameter_validation():
    with pytest.raises(ValueError, match="g_min_s"):
        Ideal(g_min_s=1e-6, g_max_s=1e-7)
    with pytest.raises(ValueError, match="g_min_s"):
        Ideal(g_min_s=-1e-9)
    with pytest.raises(ValueError, match="step_s"):
        Ideal(step_s=0)
    with pytest.raises(ValueError, match="g_max_s"):
        Ideal(g_max_s=float("nan"))
    with pytest.raises(ValueError, match="g_init_s"):
        Ideal(g_init_s=2e-6)
    with pytest.raises(TypeError, match="step_s"):
        Ideal(step_s="1e-9")
    with pytest.raises(ValueError, match="read_voltage_v"):
        Ideal(read_voltage_v=0)


def test_read_validation():
    xbar = Crossbar(3, 2, seed=0)
    with pytest.raises(ValueError, match=r"v must have shape"):
        xbar.read(np.ones(4))
    with pytest.raises(ValueError, match=r"v must have shape"):
        xbar.read(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"v must have shape"):
        xbar.read(np.ones((1, 2, 3)))
    with pytest.raises(ValueError, match=r"v must have shape"):
        xbar.read(1.0)
    with pytest.raises(ValueError, match="v must be finite"):
        xbar.read(np.array([0.1, np.nan, 0.1]))
    with pytest.raises(ValueError, match="v must be finite"):
        xbar.read(np.array([[0.1, 0.1, np.inf]]))
    with pytest.raises(TypeError, match="v must be"):
        xbar.read(np.array(["a", "b", "c"]))


def test_pulse_validation():
    xbar = Crossbar(3, 2, seed=0)
    with pytest.raises(TypeError, match="counts"):
        xbar.apply_pulses(np.ones((3, 2)))  # float pulses
    with pytest.raises(TypeError, match="counts"):
        xbar.apply_pulses(np.full((3, 2), np.nan))
    with pytest.raises(TypeError, match="counts"):
        xbar.apply_pulses(np.ones((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="counts"):
        xbar.apply_pulses(np.ones((2, 3), dtype=int))
    with pytest.raises(ValueError, match="width"):
        xbar.apply_pulses(np.ones((3, 2), dtype=int), width=-1.0)
    with pytest.raises(ValueError, match="delta_s"):
        xbar.add_conductance(np.ones(6))
    with pytest.raises(ValueError, match="delta_s"):
        xbar.add_conductance(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="seconds"):
        xbar.wait(-1.0)
    # nothing changed after the rejected calls
    np.testing.assert_array_equal(xbar.conductance, np.full((3, 2), 5e-7))


def test_add_conductance_is_for_analogue_devices_only(monkeypatch):
    monkeypatch.setattr(Ideal, "analog_update", False)
    xbar = Crossbar(2, 2, Ideal(), seed=0)
    with pytest.raises(TypeError, match="pulses"):
        xbar.add_conductance(np.zeros((2, 2)))
    monkeypatch.undo()
    xbar = Crossbar(2, 2, scheme="differential", seed=0)
    xbar.add_conductance(np.full((2, 2), 1e-7))
    np.testing.assert_allclose(xbar.conductance, 6e-7)
    np.testing.assert_allclose(xbar.reference_conductance, 4e-7)


# ---------------------------------------------------------------------------- all devices

REGISTERED = sorted(n for n in device_classes() if not n.startswith("_"))


def test_registry_has_ideal():
    assert "ideal" in REGISTERED
    assert device_classes()["ideal"] is Ideal


def _cell_bounds(xbar, array):
    """Per-cell ``(G_min, G_max)`` of one array (device-to-device spread included where
    the family draws its bounds per cell), shaped like the crossbar."""
    dev = xbar.device
    if not hasattr(dev, "cell_bounds"):  # no per-cell bounds: the nominal ones
        return np.full(xbar.shape, dev.g_min_s), np.full(xbar.shape, dev.g_max_s)
    state = xbar.state_dict()[0][f"state_{array}"]
    return tuple(b.reshape(xbar.shape) for b in dev.cell_bounds(state))


@pytest.mark.parametrize("name", REGISTERED)
@pytest.mark.parametrize("scheme", ["reference", "differential"])
def test_every_device_builds_pulses_and_stays_in_bounds(name, scheme):
    cls = device_classes()[name]
    dev = cls()
    assert isinstance(dev, Device)
    assert 0 <= dev.g_min_s < dev.g_max_s
    xbar = Crossbar(8, 8, name, scheme=scheme, seed=31)
    assert isinstance(xbar.device, cls)
    rng = np.random.default_rng(32)
    bounds = {a: _cell_bounds(xbar, a) for a in ("plus", "minus")}
    tol = 1e-9 * dev.g_max_s

    def check():
        for array, g in (("plus", xbar.conductance), ("minus", xbar.reference_conductance)):
            lo, hi = bounds[array]
            assert np.all(np.isfinite(g))
            assert np.all(g >= lo - tol), (name, array, (g - lo).min())
            assert np.all(g <= hi + tol), (name, array, (g - hi).max())
        i = xbar.read(np.ones(8, dtype=bool))
        assert i.shape == (8,) and np.all(np.isfinite(i))
        return xbar.weights, xbar.conductance, xbar.reference_conductance

    def parked(g, array, end):
        """Cells already at the bound a train drives them to (there they cannot move)."""
        lo, hi = bounds[array]
        return g >= hi - 1e-6 * (hi - lo) if end == "top" else g <= lo + 1e-6 * (hi - lo)

    w0, g0, r0 = check()
    xbar.apply_pulses(np.full((8, 8), 60))
    w_up, g_up, r_up = check()
    xbar.apply_pulses(np.full((8, 8), -120))
    w_down, _, _ = check()
    # a long train moves every cell's weight the way its sign says, unless the cell
    # already sits at that bound (an MTJ that is already parallel) ...
    stuck_up = parked(g0, "plus", "top")
    stuck_down = parked(g_up, "plus", "bottom")
    if scheme == "differential":  # the push-pull partner moves the other way
        stuck_up &= parked(r0, "minus", "bottom")
        stuck_down &= parked(r_up, "minus", "top")
    assert np.all((w_up > w0) | stuck_up), (name, np.mean(w_up > w0))
    assert np.all((w_down < w_up) | stuck_down), (name, np.mean(w_down < w_up))
    assert stuck_up.mean() < 0.75 and not stuck_down.any()
    # ... and far: at least half of what 60 steps of the finest device (Ideal: 1 % of
    # its range) give
    assert (w_up - w0).mean() > 0.03 and (w_up - w_down).mean() > 0.03, name
    for _ in range(10):
        xbar.apply_pulses(rng.integers(-30, 31, (8, 8)))
        check()
    assert xbar.ledger.count("potentiate") > 0 and xbar.ledger.count("depress") > 0


@pytest.mark.parametrize("name", REGISTERED)
def test_every_device_round_trips_through_state_dict(name):
    xbar = Crossbar(5, 4, name, scheme="differential", seed=41, read_noise_rel=0.02,
                    stuck_low_rate=0.1, stuck_high_rate=0.1, dead_rate=0.1)
    rng = np.random.default_rng(42)
    xbar.apply_pulses(rng.integers(-10, 11, (5, 4)))
    arrays, meta = xbar.state_dict()
    copy = Crossbar.from_state_dict({k: np.array(v) for k, v in arrays.items()},
                                    _json_roundtrip(meta))
    assert copy.device == xbar.device
    np.testing.assert_array_equal(copy.conductance, xbar.conductance)
    np.testing.assert_array_equal(copy.reference_conductance, xbar.reference_conductance)
    counts = rng.integers(-10, 11, (5, 4))
    copy.apply_pulses(counts)
    xbar.apply_pulses(counts)
    v = np.ones(5, dtype=bool)
    np.testing.assert_array_equal(copy.read(v), xbar.read(v))
    f = xbar.faults
    g = xbar.conductance
    assert np.all(g[f["stuck_low"]] == xbar.device.g_min_s)
    assert np.all(g[f["stuck_high"]] == xbar.device.g_max_s)
    assert np.all(g[f["dead"]] == 0.0)


@pytest.mark.parametrize("scheme", ["reference", "differential", "single"])
def test_sparse_pulse_refresh_equals_full_refresh(scheme):
    """Few-cell updates patch the float32 copy and line sums; a full sweep must agree."""
    xbar = Crossbar(60, 50, "yflash", scheme=scheme, stuck_low_rate=0.05, dead_rate=0.05, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        counts = np.zeros(xbar.shape, dtype=np.int64)
        hit = rng.random(xbar.shape) < 0.02
        counts[hit] = rng.integers(-2, 3, hit.sum())
        xbar.apply_pulses(counts)
    patched = xbar.effective_conductance, xbar._row_sum.copy(), xbar._col_sum.copy()
    xbar._refresh_effective()
    np.testing.assert_array_equal(patched[0], xbar.effective_conductance)
    np.testing.assert_allclose(patched[1], xbar._row_sum, rtol=1e-9)
    np.testing.assert_allclose(patched[2], xbar._col_sum, rtol=1e-9)
    assert np.all(xbar.conductance[xbar.faults["dead"]] == 0.0)


def test_pulse_count_tallies_every_pulse_per_device():
    xbar = Crossbar(4, 3, "ideal", scheme="differential", seed=0)
    counts = np.array([[1, -2, 0], [0, 0, 3], [-1, 0, 0], [0, 5, 0]])
    xbar.apply_pulses(counts)
    xbar.apply_pulses(-counts)
    np.testing.assert_array_equal(xbar.pulse_count, 2 * np.abs(counts))
    np.testing.assert_array_equal(xbar.reference_pulse_count, 2 * np.abs(counts))
    up, down = xbar.ledger.count("potentiate"), xbar.ledger.count("depress")
    assert xbar.pulse_count.sum() + xbar.reference_pulse_count.sum() == up + down
    result = xbar.program(np.full(xbar.shape, 6e-7), tolerance=0.01, max_pulses=500)
    np.testing.assert_array_equal(xbar.pulse_count - 2 * np.abs(counts), result.pulses)
    restored = Crossbar.from_state_dict(*xbar.state_dict())
    np.testing.assert_array_equal(restored.pulse_count, xbar.pulse_count)


def test_load_state_dict_restores_in_place_keeping_the_ledger_object():
    xbar = Crossbar(5, 4, "yflash", seed=2)
    ledger = xbar.ledger
    arrays, meta = xbar.state_dict()
    before = xbar.conductance
    xbar.apply_pulses(np.full(xbar.shape, -3))
    xbar.read(np.ones(5, dtype=bool))
    assert not np.array_equal(xbar.conductance, before)
    xbar.load_state_dict(arrays, meta)
    assert xbar.ledger is ledger and ledger.as_dict() == meta["ledger"]
    np.testing.assert_array_equal(xbar.conductance, before)


# ---------------------------------------------------------------------------- sparse paths

@pytest.mark.parametrize("scheme", ["reference", "differential", "single"])
def test_apply_pulses_at_equals_dense_apply_pulses(scheme):
    """The cell-list update equals the dense one: conductances, tallies, ledger, clock."""
    kw = dict(scheme=scheme, stuck_low_rate=0.05, dead_rate=0.05, seed=3)
    dense, sparse = Crossbar(40, 30, "yflash", **kw), Crossbar(40, 30, "yflash", **kw)
    rng = np.random.default_rng(0)
    for step in range(15):
        counts = np.zeros(dense.shape, dtype=np.int64)
        hit = rng.random(dense.shape) < (0.02 if step % 5 else 0.5)  # sparse and dense refresh
        counts[hit] = rng.integers(-2, 3, hit.sum())
        cells = np.flatnonzero(counts)
        assert dense.apply_pulses(counts) == sparse.apply_pulses_at(cells, counts.ravel()[cells])
    np.testing.assert_array_equal(sparse.conductance, dense.conductance)
    np.testing.assert_array_equal(sparse.effective_conductance, dense.effective_conductance)
    np.testing.assert_array_equal(sparse.pulse_count, dense.pulse_count)
    assert sparse.ledger.as_dict() == dense.ledger.as_dict()
    assert sparse.time_s == dense.time_s


def test_apply_pulses_at_validation():
    xbar = Crossbar(3, 4, "ideal", seed=0)
    before = xbar.conductance
    for cells in ([3, 1], [2, 2], [0, 12], [-1, 3]):
        with pytest.raises(ValueError, match="cells"):
            xbar.apply_pulses_at(np.array(cells), np.array([1, 1]))
    with pytest.raises(ValueError, match="length"):
        xbar.apply_pulses_at(np.array([1, 2]), np.array([1]))
    with pytest.raises(TypeError, match="integer"):
        xbar.apply_pulses_at(np.array([1, 2]), np.array([1.0, 1.0]))
    np.testing.assert_array_equal(xbar.conductance, before)
    assert xbar.apply_pulses_at(np.array([], dtype=np.int64), np.array([], dtype=np.int64)) == (0, 0)
    assert xbar.apply_pulses_at(np.array([1, 11]), np.array([2, -1])) == (2, 1)
    np.testing.assert_allclose(xbar.conductance.ravel()[[1, 11]], before.ravel()[[1, 11]] + [2e-9, -1e-9])


@pytest.mark.parametrize("scheme", ["reference", "differential"])
def test_binary_reads_sum_driven_lines_and_follow_sparse_updates(scheme):
    """Binary drive sums the driven rows (columns for read_back) of G+ - G-; the
    transposed copy behind read_back stays in step with sparse pulse updates."""
    xbar = Crossbar(70, 40, "yflash", scheme=scheme, seed=5)
    rng = np.random.default_rng(1)
    vr = xbar.device.read_voltage_v
    for step in range(4):
        v = rng.random((9, 70)) < 0.3
        h = rng.random((9, 40)) < 0.5
        g = _signed_g(xbar)
        np.testing.assert_allclose(xbar.read(v), vr * (v @ g), rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(xbar.read_back(h), vr * (h @ g.T), rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(xbar.read_back(h[0]), vr * (h[0] @ g.T), rtol=1e-5, atol=1e-12)
        cells = np.flatnonzero(rng.random(xbar.shape).ravel() < 0.05)
        xbar.apply_pulses_at(cells, rng.choice([-3, 3], cells.size))
    e0 = xbar.ledger.energy_j("read")
    v = (rng.random((5, 70)) < 0.3).astype(np.float32)
    xbar.read(v, binary=True)
    e = xbar.device.read_time_s * vr**2 * float((v @ _total_g(xbar)).sum())
    assert xbar.ledger.energy_j("read") - e0 == pytest.approx(e, rel=1e-6)
