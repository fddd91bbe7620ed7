"""Tests of neuromem.brian: Brian2 synapses on a crossbar, STDP as device pulses."""

from __future__ import annotations

import json

import brian2  # a required dependency: its absence must fail, not skip
import numpy as np
import pytest
from brian2 import (Hz, Network, NeuronGroup, PoissonGroup, SpikeGeneratorGroup, SpikeMonitor,
                    Synapses, ms, nS, second)

from neuromem import Crossbar
from neuromem.brian import CrossbarSynapses, nominal_pulse_step, pair_stdp, use_cython
from neuromem.devices import Ideal

use_cython()

N_PRE, N_POST = 30, 4
A_PRE, A_POST = 0.004, -0.0042          # in units of w_max = 1
IDEAL = Ideal(step_s=1e-9)               # 1000 levels: step = 0.001 of w_max


def _spike_trains(seed, duration_s=1.0, rate_pre=20.0, rate_post=15.0):
    rng = np.random.default_rng(seed)

    def train(n, rate):
        k = rng.poisson(rate * duration_s * n)
        idx = rng.integers(0, n, k)
        # one spike per neuron per 0.1 ms step at most
        times = np.round(rng.uniform(0, duration_s, k), 4)
        pairs = np.unique(np.stack([idx, times * 1e4]).T.astype(np.int64), axis=0)
        return pairs[:, 0], pairs[:, 1] * 0.1 * ms

    return train(N_PRE, rate_pre), train(N_POST, rate_post)


def _open_loop(seed, crossbar=None, rounding="residual", w0=0.5, a_pre=A_PRE, a_post=A_POST,
               sync=1 * ms, device=IDEAL, connect=True):
    """STDP driven by fixed pre and post spike trains: no feedback, so the weight
    changes are a pure function of the spikes and can be compared synapse by synapse."""
    brian2.seed(seed)
    (ip, tp), (iq, tq) = _spike_trains(seed)
    pre = SpikeGeneratorGroup(N_PRE, ip, tp)
    post = SpikeGeneratorGroup(N_POST, iq, tq)
    if crossbar is None and device is not None:
        crossbar = Crossbar(N_PRE, N_POST, device, scheme="single", seed=seed)
    if device is None:
        syn = Synapses(pre, post, **pair_stdp(20 * ms, 20 * ms, a_pre, a_post, plain_w_max=1.0))
        syn.connect()
        syn.w = w0
    else:
        syn = CrossbarSynapses(pre, post, crossbar, w_max=1.0, sync_interval=sync,
                               rounding=rounding,
                               **pair_stdp(20 * ms, 20 * ms, a_pre, a_post, on_pre="x = w"))
        if connect:
            syn.connect()
    return Network(pre, post, syn), syn


def _plain_reference(seed, w0=0.5, a_pre=A_PRE, a_post=A_POST):
    """The spikes of :func:`_open_loop` through plain Brian2 STDP written out as in
    Brian2's own STDP example (traces in weight units, each spike adds its amplitude to
    its own trace and the other side's trace to w), independently of ``pair_stdp``."""
    brian2.seed(seed)
    (ip, tp), (iq, tq) = _spike_trains(seed)
    pre = SpikeGeneratorGroup(N_PRE, ip, tp)
    post = SpikeGeneratorGroup(N_POST, iq, tq)
    syn = Synapses(pre, post,
                   """w : 1
                   dApre/dt = -Apre / taupre : 1 (event-driven)
                   dApost/dt = -Apost / taupost : 1 (event-driven)""",
                   on_pre="""Apre += dApre
                   w = clip(w + Apost, 0, gmax)""",
                   on_post="""Apost += dApost
                   w = clip(w + Apre, 0, gmax)""",
                   namespace={"taupre": 20 * ms, "taupost": 20 * ms, "dApre": a_pre,
                              "dApost": a_post, "gmax": 1.0})
    syn.connect()
    syn.w = w0
    return Network(pre, post, syn), syn


def _same_ledger(a, b):
    assert a.keys() == b.keys()
    for op in a:
        if op == "total_j":
            assert a[op] == pytest.approx(b[op], rel=1e-12)
        else:
            assert a[op]["count"] == b[op]["count"]
            assert a[op]["energy_j"] == pytest.approx(b[op]["energy_j"], rel=1e-12)


def _pulses(xbar):
    return xbar.ledger.count("potentiate"), xbar.ledger.count("depress")


# ---------------------------------------------------------------------- ideal mode
def test_pair_stdp_plain_form_is_brian2s_stdp_rule():
    net_h, helper = _open_loop(3, device=None)
    net_r, reference = _plain_reference(3)
    net_h.run(1 * second)
    net_r.run(1 * second)
    assert np.abs(reference.w[:] - 0.5).max() > 0.02
    np.testing.assert_allclose(helper.w[:], reference.w[:], rtol=0, atol=1e-12)


def test_ideal_device_reproduces_plain_stdp_synapse_by_synapse():
    net_p, plain = _plain_reference(3)
    net_m, mem = _open_loop(3)
    w0 = mem.w[:].copy()
    assert np.allclose(w0, 0.5)  # Ideal starts at mid-range: same start as plain
    net_p.run(1 * second)
    net_m.run(1 * second)
    d_plain = plain.w[:] - w0
    d_mem = mem.w[:] - w0
    step = mem.dw_per_pulse[0]
    assert step == pytest.approx(1e-3)
    assert np.abs(d_plain).max() > 20 * step  # STDP did move the weights
    # residual rounding: each synapse is behind the plain rule by less than one pulse
    assert np.abs(d_mem - d_plain).max() < step + 1e-6
    assert np.corrcoef(d_mem, d_plain)[0, 1] > 0.99


def test_every_weight_change_is_accounted_for_as_pulses():
    net, syn = _open_loop(4)
    xbar = syn.crossbar
    w0 = syn.w[:].copy()
    net.run(1 * second)
    up, down = _pulses(xbar)
    assert (up, down) == (syn.sync.requested["potentiate"], syn.sync.requested["depress"])
    assert up > 0 and down > 0
    # Brian2's w is the crossbar's weight, cell (i, j) for synapse (i, j)
    w_x = xbar.weights[syn.i[:], syn.j[:]]
    assert np.allclose(syn.w[:], w_x, rtol=0, atol=1e-7)
    # ideal, unclipped: the net weight change is exactly (up - down) nominal steps
    n_net = np.rint((syn.w[:] - w0) / 1e-3).astype(int)
    assert np.allclose(syn.w[:] - w0, n_net * 1e-3, atol=1e-6)
    assert n_net.sum() == up - down
    assert np.abs(n_net).sum() <= up + down
    # nothing pending after run: the end-of-run flush emptied the queue
    assert not syn.xbar_pending[:].any()
    # reads of the spikes are booked too: one cell read per synaptic event
    assert xbar.ledger.count("synaptic_read") == syn.sync.synaptic_events > 0
    assert xbar.ledger.energy_j("synaptic_read") > 0


def test_stochastic_rounding_is_unbiased_and_accounted():
    net_p, plain = _plain_reference(5)
    net_m, mem = _open_loop(5, rounding="stochastic")
    net_p.run(1 * second)
    net_m.run(1 * second)
    d_plain = plain.w[:] - 0.5
    d_mem = mem.w[:] - 0.5
    assert np.corrcoef(d_mem, d_plain)[0, 1] > 0.95
    # mean of |n| Bernoulli-rounded requests: error shrinks like sqrt(n); 4 sigma bound
    assert abs(d_mem.mean() - d_plain.mean()) < 4 * 1e-3 * np.sqrt(np.abs(d_plain).mean() / 1e-3 + 1) / np.sqrt(d_mem.size)
    up, down = _pulses(mem.crossbar)
    assert (up, down) == (mem.sync.requested["potentiate"], mem.sync.requested["depress"])


def test_closed_loop_song_network_matches_plain_brian2():
    from networks.stdp import song2000

    # build and run one after the other: brian2.seed in song2000 fixes the input spikes
    mem = song2000("ideal", seed=7)
    w0 = mem.synapses.w[:].copy()
    mem.network.run(3 * second)
    plain = song2000(None, seed=7, w_init=w0)
    plain.network.run(3 * second)
    n_m, n_p = mem.spikes.num_spikes, plain.spikes.num_spikes
    assert n_p > 50
    # a shifted output spike makes the runs drift apart (chaos): counts within noise
    assert abs(n_m - n_p) <= max(0.1 * n_p, 3 * np.sqrt(n_p))
    w_m, w_p = mem.synapses.w[:], plain.synapses.w[:]
    # the weights moved (by ~0.03 gmax in 3 s) and moved alike
    assert np.abs(w_p - w0).mean() > 0.015 * mem.params.gmax
    assert np.corrcoef(w_m - w0, w_p - w0)[0, 1] > 0.8
    assert np.abs(w_m - w_p).mean() < 0.5 * np.abs(w_p - w0).mean()


@pytest.mark.slow  # 30 s of the 1000-input Song network
def test_song_ideal_becomes_bimodal():
    # Song 2000 with twice the learning rate for 30 s (the experiment runs 1x for
    # 100+ s); bimodality coefficient 5/9 = uniform, > 5/9 = bimodal (Sarle)
    from networks.stdp import Song2000Params, bimodality, song2000

    params = Song2000Params(dApre=0.02)
    net = song2000("ideal", params=params, seed=2)
    before = bimodality(net.synapses.w[:], params.gmax)
    net.network.run(30 * second)
    after = bimodality(net.synapses.w[:], params.gmax)
    assert before["coefficient"] < 0.57
    assert after["coefficient"] > 0.62
    assert after["near_bounds"] > before["near_bounds"] + 0.08
    assert 0.05 < after["frac_high"] < 0.5  # both modes populated


# ---------------------------------------------------------------------- devices
def _device(name):
    from networks.stdp import make_device

    return make_device(name)  # every device named here exists: a failure is a bug


@pytest.mark.parametrize("name", ["ideal", "yflash", "softbounds"])
def test_weights_stay_within_device_bounds(name):
    device = _device(name)
    xbar = Crossbar(N_PRE, N_POST, device, scheme="single", seed=1)
    # strong potentiation-dominated STDP pushes weights against the upper bound
    net, syn = _open_loop(6, crossbar=xbar, a_pre=0.2, a_post=-0.05, sync=2 * ms)
    net.run(1 * second)
    g = xbar.conductance[syn.i[:], syn.j[:]]
    if hasattr(device, "cell_bounds"):
        lo, hi = (b.reshape(xbar.shape)[syn.i[:], syn.j[:]] for b in
                  device.cell_bounds(xbar._state_plus))
    else:
        lo, hi = device.g_min_s, device.g_max_s
    assert np.all(g >= lo * (1 - 1e-9)) and np.all(g <= hi * (1 + 1e-9))
    unit = xbar.weight_unit_s
    assert np.all(syn.w[:] <= np.max(hi) / unit * (1 + 1e-6))
    assert np.all(syn.w[:] >= 0)
    assert syn.w[:].max() > 0.95 * device.g_max_s / unit  # the upper bound was reached
    assert np.allclose(syn.w[:], syn.crossbar_weights(), rtol=1e-6, atol=0)
    assert _pulses(xbar) == (syn.sync.requested["potentiate"], syn.sync.requested["depress"])


def test_nominal_pulse_step():
    assert nominal_pulse_step(Ideal(step_s=2e-9, g_max_s=1e-6)) == (2e-3, 2e-3)
    up, down = nominal_pulse_step(_device("softbounds"))
    assert 0 < up < 0.1 and 0 < down < 0.1


# ---------------------------------------------------------------------- Network integration
def test_store_restore_rolls_back_crossbar_and_ledger():
    net, syn = _open_loop(8)
    xbar = syn.crossbar
    net.run(0.3 * second)
    net.store("a")
    ledger_a = xbar.ledger.as_dict()
    g_a = xbar.conductance
    net.run(0.4 * second)
    w_first, g_first, ledger_first = syn.w[:].copy(), xbar.conductance, xbar.ledger.as_dict()
    assert not np.array_equal(g_first, g_a)
    net.restore("a", restore_random_state=True)
    assert np.array_equal(xbar.conductance, g_a)
    _same_ledger(xbar.ledger.as_dict(), ledger_a)
    assert np.allclose(syn.w[:], syn.crossbar_weights())
    net.run(0.4 * second)  # same spikes, same state: same result
    assert np.array_equal(syn.w[:], w_first)
    assert np.array_equal(xbar.conductance, g_first)
    _same_ledger(xbar.ledger.as_dict(), ledger_first)


def test_works_in_explicit_network_with_neurons_and_poisson_input():
    brian2.seed(11)
    inp = PoissonGroup(50, rates=40 * Hz)
    neu = NeuronGroup(2, "dv/dt = -v / (10*ms) : 1", threshold="v > 1", reset="v = 0",
                      method="exact")
    xbar = Crossbar(50, 2, IDEAL, scheme="single", seed=0)
    syn = CrossbarSynapses(inp, neu, xbar, w_max=0.5, sync_interval=5 * ms,
                           **pair_stdp(20 * ms, 20 * ms, 0.01, -0.0105, on_pre="v_post += w"))
    syn.connect(p=0.7)  # any connectivity: synapse (i, j) is cell (i, j)
    mon = SpikeMonitor(neu)
    net = Network(inp, neu, syn, mon)
    net.run(0.5 * second)
    assert mon.num_spikes > 0
    assert np.allclose(syn.w[:], 0.5 * xbar.weights[syn.i[:], syn.j[:]], atol=1e-7)
    untouched = np.ones(xbar.shape, bool)
    untouched[syn.i[:], syn.j[:]] = False
    assert np.all(xbar.conductance[untouched] == IDEAL.g_init_s)  # cells without synapse


def test_program_weights_and_request_change():
    net, syn = _open_loop(9)
    target = np.linspace(0.1, 0.9, len(syn))
    result = syn.program_weights(target, tolerance=0.01)
    assert result.n_missed == 0
    assert np.allclose(syn.w[:], target, rtol=0.011)
    before = _pulses(syn.crossbar)
    syn.request_change(np.full(len(syn), 0.0105))  # 10.5 steps: 10 pulses, 0.5 kept
    syn.flush()
    up = _pulses(syn.crossbar)[0] - before[0]
    assert up == 10 * len(syn)
    assert np.allclose(syn.xbar_acc[:], 0.0005, atol=1e-9)
    net.run(50 * ms)  # programmed weights are accepted by the run-time check


def test_writing_w_outside_the_crossbar_is_refused():
    net, syn = _open_loop(10)
    net.run(10 * ms)
    syn.w = 0.7
    with pytest.raises(brian2.core.base.BrianObjectException) as info:
        net.run(10 * ms)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "program_weights" in str(info.value.__cause__)


# ---------------------------------------------------------------------- bad input
def test_bad_arguments_raise_clear_errors():
    pre = NeuronGroup(3, "v : 1", threshold="v > 1")
    post = NeuronGroup(2, "v : 1", threshold="v > 1")
    xbar = Crossbar(3, 2, IDEAL, scheme="single", seed=0)
    ok = dict(w_max=1.0, on_pre="v_post += w")
    with pytest.raises(TypeError, match="Crossbar"):
        CrossbarSynapses(pre, post, np.zeros((3, 2)), **ok)
    with pytest.raises(ValueError, match="too small"):
        CrossbarSynapses(pre, post, Crossbar(2, 2, IDEAL, scheme="single"), **ok)
    with pytest.raises(ValueError, match="must not assign w"):
        CrossbarSynapses(pre, post, xbar, w_max=1.0, on_pre="w = clip(w + 0.1, 0, 1)")
    with pytest.raises(ValueError, match="must not declare w"):
        CrossbarSynapses(pre, post, xbar, model="w : 1", **ok)
    with pytest.raises(ValueError, match="rounding"):
        CrossbarSynapses(pre, post, xbar, rounding="nearest", **ok)
    with pytest.raises(ValueError, match="sync_interval"):
        CrossbarSynapses(pre, post, xbar, sync_interval=1.0, **ok)
    with pytest.raises(ValueError, match="w_max"):
        CrossbarSynapses(pre, post, xbar, w_max=-1.0, on_pre="v_post += w")
    with pytest.raises(ValueError, match="unit of w_max"):
        CrossbarSynapses(pre, post, xbar, w_max=1 * nS, dw_per_pulse=0.01,
                         on_pre="ge_post += w")
    with pytest.raises(ValueError, match="taupre"):
        pair_stdp(20, 20 * ms, 0.01, -0.01)
    syn = CrossbarSynapses(pre, post, xbar, **ok)
    with pytest.raises(ValueError, match="one entry per synapse"):
        syn.connect()
        syn.program_weights(np.ones(5))


def test_two_synapses_on_one_cell_are_refused():
    net, syn = _open_loop(12, connect=False)
    with pytest.raises(ValueError, match="one synapse per"):
        syn.connect(n=2)


# ---------------------------------------------------------------------- networks & experiments
def test_diehl_cook_network_learns_by_pulses_and_normalises():
    from networks.stdp import DiehlCook2015, DiehlCookParams, assign_labels, predict

    params = DiehlCookParams(n_neurons=6, presentation_ms=100.0, rest_ms=50.0)
    model = DiehlCook2015("ideal", params=params, seed=3)
    rng = np.random.default_rng(0)
    images = (rng.random((3, 784)) < 0.2) * 255.0
    w0 = model.weights().copy()
    counts = model.present(images, learn=True)
    assert counts.shape == (3, 6) and counts.sum() > 0
    w1 = model.weights()
    assert not np.allclose(w0, w1)
    # normalisation by pulses before each image: column sums near 78
    assert np.allclose(w1.sum(axis=0), 78.0, rtol=0.05)
    assert np.allclose(model.xe.w[:], model.xe.crossbar_weights(), atol=1e-6)
    theta = model.exc.theta_[:].copy()
    before = model.crossbar.ledger.count("potentiate") + model.crossbar.ledger.count("depress")
    model.present(images[:1], learn=False)  # frozen: no pulses, thresholds fixed
    after = model.crossbar.ledger.count("potentiate") + model.crossbar.ledger.count("depress")
    assert after == before
    assert np.allclose(model.exc.theta_[:], theta, rtol=1e-4)
    labels = assign_labels(np.array([[3, 0], [0, 2]]), np.array([4, 7]))
    assert labels.tolist() == [4, 7]
    assert predict(np.array([[0, 5], [1, 0]]), labels).tolist() == [7, 4]
    with pytest.raises(ValueError, match="multiple of 50 ms"):
        DiehlCook2015("ideal", params=DiehlCookParams(n_neurons=4, rest_ms=120.0))


def test_song_experiment_writes_results(tmp_path):
    from experiments import stdp_song2000

    res = stdp_song2000.main(["--duration", "0.3", "--devices", "ideal", "--out", str(tmp_path)])
    assert set(res["runs"]) == {"ideal", "plain_brian2"}
    ideal = res["runs"]["ideal"]
    assert ideal["stdp_pulses"]["potentiate"] > 0
    assert ideal["ledger"]["potentiate"]["count"] >= ideal["stdp_pulses"]["potentiate"]
    assert (tmp_path / "song2000.png").exists() and (tmp_path / "results.json").exists()
    with pytest.raises(SystemExit):
        stdp_song2000.main(["--devices", "no-such-device"])
