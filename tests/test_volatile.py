"""Diffusive-memristor neurons: the device model and its Brian2 neuron group."""

import math

import numpy as np
import pytest
from brian2 import Network, SpikeMonitor, StateMonitor, amp, ms, second, us

from neuromem.brian import diffusive_neurons, use_cython
from neuromem.volatile import DiffusiveMemristor

use_cython()
NOMINAL = DiffusiveMemristor(d2d_v_threshold_rel=0.0, d2d_tau_relax_rel=0.0)


def _reference_rate(dev, current_a, duration_s=0.2, dt_s=1e-6):
    """The same device equations, forward Euler at 1 us, written out in numpy."""
    v, x, spikes = 0.0, 0.0, 0
    for _ in range(int(duration_s / dt_s)):
        g = dev.g_off_s + (dev.g_on_s - dev.g_off_s) * x
        v, x = (v + dt_s * (current_a - dev.g_leak_s * v - g * v) / dev.c_membrane_f,
                x - dt_s * x / dev.tau_relax_s)
        if v > dev.v_threshold_v:
            x = 1.0
            spikes += 1
    return spikes / duration_s


def test_rate_against_input_current():
    factors = np.array([0.5, 0.95, 1.2, 2.0, 5.0])
    group = diffusive_neurons(len(factors), NOMINAL, dt=10 * us)
    group.I_in = factors * NOMINAL.rheobase_a * amp
    spikes = SpikeMonitor(group)
    Network(group, spikes).run(200 * ms)
    rates = spikes.count[:] / 0.2
    # silent below the rheobase, firing above it, faster with more current
    assert rates[0] == 0 and rates[1] == 0 and rates[2] > 0
    assert np.all(np.diff(rates[2:]) > 0)
    # the ON device sets the refractory period: no faster than 1 / (ON time) at 5x
    assert rates[-1] < 1.0 / (0.5 * NOMINAL.on_time_s)
    for factor, rate in zip(factors[2:], rates[2:]):
        ref = _reference_rate(NOMINAL, factor * NOMINAL.rheobase_a)
        assert rate == pytest.approx(ref, rel=0.05, abs=10), factor


def test_relaxation_after_a_spike():
    group = diffusive_neurons(1, NOMINAL, dt=10 * us)
    state = StateMonitor(group, ["x", "g_device", "v"], record=0)
    spikes = SpikeMonitor(group)
    net = Network(group, state, spikes)
    group.I_in = 20 * NOMINAL.rheobase_a * amp
    net.run(0.5 * ms)                       # charge to the first spike
    group.I_in = 0 * amp
    net.run(20 * ms)
    assert spikes.count[0] == 1
    t_spike = float(spikes.t[0] / second)
    t = np.asarray(state.t / second)
    after = t > t_spike + 1e-4
    x = np.asarray(state.x[0])[after]
    expected = np.exp(-(t[after] - t_spike) / NOMINAL.tau_relax_s)
    np.testing.assert_allclose(x, expected, rtol=0.02)
    # the membrane is discharged by the ON device, then the device falls back to G_off
    assert np.asarray(state.v[0])[after].max() < 0.05 * NOMINAL.v_threshold_v
    g = np.asarray(state.g_device[0])
    assert g[after][0] > 0.5 * NOMINAL.g_on_s and g[-1] < 2 * NOMINAL.g_off_s
    on = t[(g > NOMINAL.g_hold_s)]
    assert on[-1] - t_spike == pytest.approx(NOMINAL.on_time_s, rel=0.02)


def test_device_to_device_spread():
    dev = DiffusiveMemristor()
    drawn = dev.draw(4000, np.random.default_rng(0))
    assert np.std(drawn["v_threshold_v"]) / dev.v_threshold_v == pytest.approx(0.10, rel=0.1)
    assert np.std(np.log(drawn["tau_relax_s"])) == pytest.approx(0.20, rel=0.1)
    group = diffusive_neurons(50, dev, seed=3)
    assert np.ptp(np.asarray(group.v_threshold[:])) > 0


@pytest.mark.parametrize("kwargs, message", [
    ({"g_on_s": -1.0}, "DiffusiveMemristor.g_on_s must be > 0"),
    ({"g_hold_s": 1e-2}, "g_off_s < g_hold_s < g_on_s"),
    ({"c2c_tau_relax_rel": 1.5}, "c2c_tau_relax_rel must lie in"),
    ({"tau_relax_s": float("nan")}, "tau_relax_s must be a finite number"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DiffusiveMemristor(**kwargs)


def test_bad_group_arguments():
    with pytest.raises(TypeError, match="DiffusiveMemristor"):
        diffusive_neurons(3, "yflash")
    with pytest.raises(ValueError, match="positive integer"):
        diffusive_neurons(0)


def test_on_time_formula():
    d = NOMINAL
    assert d.on_time_s == pytest.approx(
        d.tau_relax_s * math.log((d.g_on_s - d.g_off_s) / (d.g_hold_s - d.g_off_s)))
