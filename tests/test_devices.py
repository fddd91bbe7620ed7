"""Tests of the pulsed device families: SoftBounds, VTEAM, PCM, MTJ."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuromem.devices.mtj import MTJ
from neuromem.devices.pcm import PCM
from neuromem.devices.softbounds import SoftBounds
from neuromem.devices.vteam import VTEAM

FAMILIES = [SoftBounds, VTEAM, PCM, MTJ]

# parameter overrides that remove every cycle-to-cycle spread (MTJ switching stays
# stochastic by nature, but a pulse can only move it in its own direction)
QUIET = {
    SoftBounds: dict(c2c_step_rel=0.0),
    VTEAM: dict(c2c_step_rel=0.0),
    PCM: dict(c2c_set_rel=0.0, c2c_reset_rel=0.0),
    MTJ: dict(),
}
# ... and every device-to-device spread as well
NO_D2D = {
    SoftBounds: dict(d2d_alpha_rel=0.0, d2d_bounds_rel=0.0),
    VTEAM: dict(d2d_k_rel=0.0, d2d_v_rel=0.0),
    PCM: dict(d2d_nu=0.0, d2d_alpha_rel=0.0, d2d_g_max_rel=0.0),
    MTJ: dict(d2d_r_rel=0.0),
}


def _train(n_steps, n_cells, seed):
    """Random pulse counts in [-3, 3], biased up / down in alternating blocks of 100
    steps so that the cells are driven into both bounds."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(-3, 4, size=(n_steps, n_cells))
    block = (np.arange(n_steps) // 100) % 2 == 0
    push = rng.random((n_steps, n_cells)) < 0.8
    counts = np.where(push & block[:, None], np.abs(counts), counts)
    counts = np.where(push & ~block[:, None], -np.abs(counts), counts)
    return counts.astype(np.int64)


def _run(device, state, counts, seed0=0, width=1.0):
    """Apply a train; return the conductance after each step, shape (steps, cells)."""
    g_out = np.full(state.shape[1], np.nan)
    out = np.empty(counts.shape)
    for t, c in enumerate(counts):
        device.apply_pulses(state, c, width, seed0 + t, g_out)
        out[t] = device.conductance(state)
        pulsed = c != 0
        assert np.array_equal(g_out[pulsed], out[t][pulsed])
    return out


# ---------------------------------------------------------------------- generic
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
@pytest.mark.parametrize("spread", ["default", "no_d2d"])
def test_stays_within_bounds(family, spread):
    params = {} if spread == "default" else NO_D2D[family]
    dev = family(**params)
    state = dev.init_state(200, np.random.default_rng(1))
    lo, hi = dev.cell_bounds(state)
    if spread == "no_d2d":  # per-cell bounds are then the nominal ones
        np.testing.assert_allclose(lo, dev.g_min_s, rtol=1e-12)
        np.testing.assert_allclose(hi, dev.g_max_s, rtol=1e-12)
    else:  # the spread of the bounds is modest: within 50 % of nominal
        assert np.all(lo >= 0.5 * dev.g_min_s) and np.all(hi <= 1.5 * dev.g_max_s)
    g = _run(dev, state, _train(2000, 200, seed=2))
    tol = 1e-12 * dev.g_max_s
    assert np.all(np.isfinite(g))
    assert np.all(g >= lo - tol) and np.all(g <= hi + tol)
    # the train really explores the window (otherwise the test proves nothing)
    span = (g.max(axis=0) - g.min(axis=0)) / (hi - lo)
    assert np.median(span) > 0.7


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
@pytest.mark.parametrize("noise", ["quiet", "default"])
def test_moves_monotonically_with_pulse_sign(family, noise):
    dev = family(**(QUIET[family] if noise == "quiet" else {}))
    state = dev.init_state(200, np.random.default_rng(3))
    lo, _ = dev.cell_bounds(state)
    counts = _train(300, 200, seed=4)
    g_before = dev.conductance(state)
    g = _run(dev, state, counts, seed0=100)
    prev = np.vstack([g_before, g[:-1]])
    up, down = counts > 0, counts < 0
    assert np.all(g[up] >= prev[up])
    if family is PCM and noise == "default":
        # a RESET lands at G_min (1 + c2c |xi|): it may sit above a previous RESET
        # level by that noise, never above the RESET band
        ceiling = np.broadcast_to(lo * (1 + 6 * dev.c2c_reset_rel), g.shape)
        assert np.all((g[down] <= prev[down]) | (g[down] <= ceiling[down]))
    else:
        assert np.all(g[down] <= prev[down])
    # and the pulses do something (many cells sit at a bound, where they cannot)
    assert np.mean(g[up] > prev[up]) > 0.05 and np.mean(g[down] < prev[down]) > 0.05


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_reproducible_from_seed(family):
    dev = family()
    counts = _train(50, 100, seed=5)
    results = []
    for seed0 in (7, 7, 8):
        state = dev.init_state(100, np.random.default_rng(6))
        results.append((_run(dev, state, counts, seed0=seed0), state))
    (g1, s1), (g2, s2), (g3, _) = results
    assert np.array_equal(g1, g2) and np.array_equal(s1, s2)
    assert not np.array_equal(g1, g3)  # the seed does drive the noise
    # and the fabrication draw is reproducible from the generator
    a = dev.init_state(10, np.random.default_rng(9))
    b = dev.init_state(10, np.random.default_rng(9))
    assert np.array_equal(a, b)


BAD = [
    (SoftBounds, "g_min_s", -1e-6),
    (SoftBounds, "g_max_s", 0.5e-6),  # below g_min_s: inverted bounds
    (SoftBounds, "alpha_up", 1.5),
    (SoftBounds, "alpha_down", float("nan")),
    (SoftBounds, "c2c_step_rel", -0.1),
    (SoftBounds, "g_init_frac", 2.0),
    (VTEAM, "resistance_model", "quadratic"),
    (VTEAM, "r_off_ohm", 5e3),  # below r_on_ohm
    (VTEAM, "w_off_m", -1e-9),  # below w_on_m
    (VTEAM, "k_on_m_per_s", 1e-3),  # must be negative
    (VTEAM, "v_off_v", -0.5),
    (VTEAM, "potentiate_voltage_v", 1.0),
    (VTEAM, "euler_substeps", 0),
    (VTEAM, "euler_substeps", 2.5),
    (VTEAM, "d2d_k_rel", -0.1),
    (VTEAM, "w_init_m", 5e-9),
    (VTEAM, "window_wc_m", float("nan")),
    (PCM, "g_min_s", 30e-6),  # above g_max_s
    (PCM, "drift_nu", -0.05),
    (PCM, "drift_t0_s", 0.0),
    (PCM, "alpha_set", 0.0),
    (PCM, "d2d_nu", float("inf")),
    (MTJ, "delta", -1.0),
    (MTJ, "r_ap_ohm", 1e3),  # below r_p_ohm
    (MTJ, "pulse_width_s", 0.0),
    (MTJ, "switch_charge_c", float("nan")),
    (MTJ, "p_init_frac", -0.5),
]


@pytest.mark.parametrize("family,field,value", BAD,
                         ids=[f"{f.name}-{n}-{v}" for f, n, v in BAD])
def test_bad_parameter_raises_naming_field(family, field, value):
    with pytest.raises(ValueError, match=field):
        family(**{field: value})


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_contract_basics(family):
    dev = family()
    assert 0 <= dev.g_min_s < dev.g_max_s
    assert dev.pulse_duration_s(+1) > 0 and dev.pulse_duration_s(-1) > 0
    assert dev.pulse_energy_j(+1) > 0 and dev.pulse_energy_j(-1) > 0
    assert dev.source and dev.name == family.name
    assert dev.drifts is (family is PCM)
    state = dev.init_state(5, np.random.default_rng(0))
    assert state.shape == (len(family.state_names), 5)
    d = dev.describe()
    assert d["device"] == family.name
    with pytest.raises(TypeError):
        family(pulse_width_s="fast") if family is not PCM else family(set_pulse_s="fast")
    # unpulsed cells keep their conductance and g_out entry
    g_out = np.full(5, -1.0)
    before = dev.conductance(state)
    dev.apply_pulses(state, np.zeros(5, dtype=np.int64), 1.0, 0, g_out)
    assert np.all(g_out == -1.0) and np.array_equal(dev.conductance(state), before)


# ---------------------------------------------------------------------- SoftBounds
def test_softbounds_step_shrinks_towards_bound():
    dev = SoftBounds(**QUIET[SoftBounds], **NO_D2D[SoftBounds], g_init_frac=0.0)
    state = dev.init_state(1, np.random.default_rng(0))
    g = _run(dev, state, np.ones((100, 1), dtype=np.int64))[:, 0]
    g = np.concatenate([[dev.g_min_s], g])
    steps = np.diff(g)
    assert np.all(steps > 0) and np.all(np.diff(steps) < 0)
    np.testing.assert_allclose(steps, dev.alpha_up * (dev.g_max_s - g[:-1]), rtol=1e-9)
    assert steps[-1] < 0.2 * steps[0]
    # and on the way down, steps shrink towards G_min
    g_dn = _run(dev, state, -np.ones((100, 1), dtype=np.int64))[:, 0]
    steps_dn = -np.diff(np.concatenate([[g[-1]], g_dn]))
    assert np.all(steps_dn > 0) and np.all(np.diff(steps_dn) < 0)


def test_softbounds_width_scales_step():
    dev = SoftBounds(**QUIET[SoftBounds], **NO_D2D[SoftBounds])
    out = []
    for width in (1.0, 2.0):
        state = dev.init_state(1, np.random.default_rng(0))
        g0 = dev.conductance(state)[0]
        out.append(_run(dev, state, np.ones((1, 1), dtype=np.int64), width=width)[0, 0] - g0)
    assert out[1] == pytest.approx(2 * out[0], rel=1e-9)


# ---------------------------------------------------------------------- VTEAM
def _vteam(**kw):
    return VTEAM(**{**QUIET[VTEAM], **NO_D2D[VTEAM], **kw})


def test_vteam_no_change_below_threshold():
    for kw in (dict(potentiate_voltage_v=-0.45), dict(depress_voltage_v=0.45)):
        dev = _vteam(**kw)  # |V| below the 0.5 V thresholds
        sign = 1 if "potentiate_voltage_v" in kw else -1
        state = dev.init_state(10, np.random.default_rng(0))
        g0 = dev.conductance(state)
        g = _run(dev, state, np.full((20, 10), sign, dtype=np.int64))
        assert np.array_equal(g[-1], g0)
    # the same pulses above threshold do move it, in the right direction
    dev = _vteam()
    state = dev.init_state(10, np.random.default_rng(0))
    g0 = dev.conductance(state)
    assert np.all(_run(dev, state, np.ones((1, 10), dtype=np.int64))[0] > g0)
    assert np.all(_run(dev, state, -np.ones((2, 10), dtype=np.int64))[-1] < g0)


def test_vteam_euler_step_matches_rate_mid_range():
    dev = _vteam()
    state = dev.init_state(1, np.random.default_rng(0))
    w0 = state[0, 0]
    _run(dev, state, np.ones((1, 1), dtype=np.int64))
    expected = dev.k_on_m_per_s * (dev.potentiate_voltage_v / dev.v_on_v - 1) ** dev.alpha_on \
        * dev.pulse_width_s  # window is ~1 in mid range
    assert state[0, 0] - w0 == pytest.approx(expected, rel=1e-5)
    assert state[0, 0] < w0  # potentiation drives w towards w_on


def test_vteam_linear_and_exponential_resistance_differ():
    lin, exp = _vteam(), _vteam(resistance_model="exponential")
    g_lin = lin.conductance(lin.init_state(1, np.random.default_rng(0)))[0]
    g_exp = exp.conductance(exp.init_state(1, np.random.default_rng(0)))[0]
    # mid-state: arithmetic vs geometric mean of R_on and R_off
    assert 1 / g_lin == pytest.approx((lin.r_on_ohm + lin.r_off_ohm) / 2, rel=1e-12)
    assert 1 / g_exp == pytest.approx(math.sqrt(lin.r_on_ohm * lin.r_off_ohm), rel=1e-12)
    assert g_exp > 1.5 * g_lin
    # both share the end points
    for dev in (lin, exp):
        np.testing.assert_allclose(dev.resistance_ohm([dev.w_on_m, dev.w_off_m]),
                                   [dev.r_on_ohm, dev.r_off_ohm], rtol=1e-12)


def test_vteam_has_tens_of_levels():
    dev = _vteam(w_init_m=3e-9)
    state = dev.init_state(1, np.random.default_rng(0))
    g = _run(dev, state, np.ones((300, 1), dtype=np.int64))[:, 0]
    n_full = int(np.argmax(g >= dev.g_min_s + 0.99 * (dev.g_max_s - dev.g_min_s))) + 1
    assert 20 <= n_full <= 200


# ---------------------------------------------------------------------- PCM
def test_pcm_set_gradual_reset_abrupt():
    dev = PCM(**QUIET[PCM], **NO_D2D[PCM])
    state = dev.init_state(1, np.random.default_rng(0))
    span = dev.g_max_s - dev.g_min_s
    g = _run(dev, state, np.ones((100, 1), dtype=np.int64))[:, 0]
    assert g[0] - dev.g_min_s < 0.2 * span  # one SET pulse: small step
    n90 = int(np.argmax(g >= dev.g_min_s + 0.9 * span)) + 1
    assert n90 >= 10  # gradual
    assert g[-1] > dev.g_min_s + 0.99 * span
    g_reset = _run(dev, state, -np.ones((1, 1), dtype=np.int64))[0, 0]
    assert g_reset == pytest.approx(dev.g_min_s, rel=1e-12)  # one pulse, all the way


def test_pcm_reset_with_noise_lands_near_gmin():
    dev = PCM()
    state = dev.init_state(500, np.random.default_rng(0))
    _run(dev, state, np.full((60, 500), 1, dtype=np.int64))
    lo, hi = dev.cell_bounds(state)
    assert np.median((dev.conductance(state) - lo) / (hi - lo)) > 0.9
    g = _run(dev, state, np.full((1, 500), -1, dtype=np.int64))[0]
    assert np.all(g <= lo * (1 + 6 * dev.c2c_reset_rel))
    assert np.all((g - lo) / (hi - lo) < 0.02)


def test_pcm_drift_power_law():
    dev = PCM(drift_t0_s=2.0)
    n = 300
    state = dev.init_state(n, np.random.default_rng(0))
    g_out = np.empty(n)
    t_prog = 50.0
    dev.apply_pulses(state, np.full(n, 8, dtype=np.int64), 1.0, 0, g_out, time_s=t_prog)
    assert np.all(state[1] == t_prog)  # programming time recorded
    g_prog = dev.conductance(state, t_prog)
    np.testing.assert_array_equal(g_prog, g_out)
    # no drift within t0 of the pulse
    np.testing.assert_array_equal(dev.conductance(state, t_prog + 0.5 * dev.drift_t0_s), g_prog)
    t1, t2 = 10.0, 1e4
    g1 = dev.conductance(state, t_prog + t1)
    g2 = dev.conductance(state, t_prog + t2)
    assert np.all(g2 < g1) and np.all(g1 < g_prog)
    nu = -np.log(g2 / g1) / np.log(t2 / t1)
    np.testing.assert_allclose(nu, state[2], rtol=1e-9)  # each cell's own exponent
    assert abs(nu.mean() - dev.drift_nu) < 4 * dev.d2d_nu / math.sqrt(n)
    assert nu.std() == pytest.approx(dev.d2d_nu, rel=0.25)
    # G(t) = G(t0) (t/t0)^-nu
    np.testing.assert_allclose(g1, g_prog * (t1 / dev.drift_t0_s) ** -state[2], rtol=1e-12)


def test_pcm_pulse_acts_on_drifted_state_and_restarts_clock():
    dev = PCM(**QUIET[PCM], **NO_D2D[PCM])
    state = dev.init_state(1, np.random.default_rng(0))
    g_out = np.empty(1)
    dev.apply_pulses(state, np.array([10]), 1.0, 0, g_out, time_s=0.0)
    g_drifted = dev.conductance(state, 1000.0)[0]
    dev.apply_pulses(state, np.array([1]), 1.0, 1, g_out, time_s=1000.0)
    expected = g_drifted + dev.alpha_set * (dev.g_max_s - g_drifted)
    assert g_out[0] == pytest.approx(expected, rel=1e-12)
    assert dev.conductance(state, 1000.5)[0] == g_out[0]  # fresh programming
    # a RESET re-amorphises: a drifted cell comes back to the fresh RESET level
    dev.apply_pulses(state, np.array([-1]), 1.0, 2, g_out, time_s=1000.0)
    assert dev.conductance(state, 1e5)[0] < dev.g_min_s  # amorphous state drifts
    dev.apply_pulses(state, np.array([-1]), 1.0, 3, g_out, time_s=1e5)
    assert g_out[0] == dev.g_min_s and dev.conductance(state, 1e5 + 0.5)[0] == dev.g_min_s


# ---------------------------------------------------------------------- MTJ
def test_mtj_switching_probability_formula():
    dev = MTJ()
    widths = np.geomspace(1e-11, 1e-7, 50)
    p = dev.switching_probability(widths, dev.pulse_voltage_v)
    assert p[0] < 1e-6 and p[-1] > 1 - 1e-6
    assert np.all(np.diff(p) >= 0) and np.any(np.diff(p) > 0)
    # rises with voltage too
    volts = np.linspace(0.05, 2.0, 40)
    pv = dev.switching_probability(dev.pulse_width_s, volts)
    assert np.all(np.diff(pv) >= 0) and pv[0] < 0.01 and pv[-1] > 0.99
    # explicit form from the module docstring
    theta0 = 1 / math.sqrt(2 * dev.delta)
    x = dev.pulse_width_s * dev.pulse_voltage_v / (dev.switch_charge_c * dev.r_ap_ohm)
    ref = 1 - math.erf(math.pi / (2 * math.sqrt(2) * theta0) * math.exp(-x))
    assert dev.switching_probability(dev.pulse_width_s, dev.pulse_voltage_v) == \
        pytest.approx(ref, rel=1e-9)
    # depressing direction uses R_P and |V|
    assert dev.switching_probability(dev.pulse_width_s, -dev.depress_voltage_v) == \
        pytest.approx(dev.switching_probability(dev.pulse_width_s, dev.depress_voltage_v,
                                                dev.r_p_ohm), rel=1e-12)
    # higher thermal stability: harder to switch
    assert MTJ(delta=80).switching_probability(dev.pulse_width_s, 0.5) < \
        dev.switching_probability(dev.pulse_width_s, 0.5)


@pytest.mark.parametrize("direction", [+1, -1])
def test_mtj_switching_frequency_matches_probability(direction):
    dev = MTJ(d2d_r_rel=0.0, p_init_frac=0.0 if direction > 0 else 1.0)
    n = 20000
    observed = []
    for i, width in enumerate((0.8, 1.0, 1.3, 1.6)):
        state = dev.init_state(n, np.random.default_rng(i))
        g_out = np.empty(n)
        dev.apply_pulses(state, np.full(n, direction, dtype=np.int64), width, 10 + i, g_out)
        switched = state[0] == (1.0 if direction > 0 else 0.0)
        v = dev.pulse_voltage_v if direction > 0 else -dev.depress_voltage_v
        p = float(dev.switching_probability(width * dev.pulse_width_s, v))
        assert 0.02 < p < 0.98
        se = math.sqrt(p * (1 - p) / n)
        assert abs(switched.mean() - p) < 4 * se
        parallel = state[0] == 1.0
        expected_g = np.where(parallel, 1 / dev.r_p_ohm, 1 / dev.r_ap_ohm)
        np.testing.assert_allclose(g_out, expected_g, rtol=1e-12)
        observed.append(switched.mean())
    assert np.all(np.diff(observed) > 0)  # rises with pulse width


def test_mtj_multiple_pulses_compound():
    dev = MTJ(d2d_r_rel=0.0, p_init_frac=0.0)
    n = 20000
    state = dev.init_state(n, np.random.default_rng(0))
    dev.apply_pulses(state, np.full(n, 3, dtype=np.int64), 1.0, 1, np.empty(n))
    p = float(dev.switching_probability(dev.pulse_width_s, dev.pulse_voltage_v))
    p3 = 1 - (1 - p) ** 3
    assert abs(state[0].mean() - p3) < 4 * math.sqrt(p3 * (1 - p3) / n)


# ---------------------------------------------------------------------- index form
@pytest.mark.parametrize("name", ["ideal", "softbounds", "vteam", "pcm", "mtj", "yflash"])
def test_index_pulses_equal_dense_pulses(name):
    """``apply_pulses_at`` on the listed cells is the dense ``apply_pulses`` (same
    physics, same random stream in ascending order); unlisted cells stay untouched."""
    from neuromem.devices import get_device

    dev = get_device(name, **({"c2c_step_rel": 0.1, "d2d_step_rel": 0.1} if name == "ideal" else {}))
    n = 400
    state_dense = dev.init_state(n, np.random.default_rng(1))
    state_index = state_dense.copy()
    g_dense = np.full(n, np.nan)
    g_index = np.full(n, np.nan)
    rng = np.random.default_rng(2)
    for step in range(30):
        counts = np.zeros(n, dtype=np.int64)
        hit = rng.random(n) < 0.05
        counts[hit] = rng.integers(-3, 4, hit.sum())
        cells = np.flatnonzero(counts)
        dev.apply_pulses(state_dense, counts, 1.0, 10 + step, g_dense, time_s=step * 1e-3)
        dev.apply_pulses_at(state_index, cells, counts[cells], 1.0, 10 + step, g_index,
                            time_s=step * 1e-3)
    np.testing.assert_array_equal(state_index, state_dense)
    np.testing.assert_array_equal(g_index, g_dense)  # NaN where never pulsed, in both
    assert np.isnan(g_index).any() and not np.isnan(g_index).all()
    moved = ~np.isnan(g_index)
    assert not np.array_equal(state_index[:, moved], dev.init_state(n, np.random.default_rng(1))[:, moved])
