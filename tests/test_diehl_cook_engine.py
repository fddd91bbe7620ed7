"""The compiled Diehl & Cook engine against the Brian2 model, and its own contracts."""

import numpy as np
import pytest
from brian2 import SpikeMonitor, ms

from neuromem import Crossbar
from networks.diehl_cook_engine import DiehlCookEngine
from networks.stdp import DiehlCook2015, DiehlCookParams

STEPS_ON, STEPS_ALL = 700, 1000  # 350 ms image + 150 ms rest at dt = 0.5 ms


def _images(n, seed=0):
    """Bright strokes on a dark 28 x 28 field, enough to drive the neurons."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28))
    for k in range(n):
        r, c = rng.integers(4, 20, 2)
        out[k, r:r + 8, c:c + 3] = 255
        out[k, r + 3:r + 5, 4:24] = 200
    return out.reshape(n, 784)


def _rasters(monitor, n_presentations):
    """Input spikes of each presentation as (ptr, idx), from a Brian2 SpikeMonitor."""
    steps = np.round(np.asarray(monitor.t / (0.5 * ms))).astype(np.int64)
    who = np.asarray(monitor.i, dtype=np.int64)
    out = []
    for m in range(n_presentations):
        sel = (steps >= m * STEPS_ALL) & (steps < m * STEPS_ALL + STEPS_ON)
        local, ids = steps[sel] - m * STEPS_ALL, who[sel]
        order = np.lexsort((ids, local))
        local, ids = local[order], ids[order]
        ptr = np.searchsorted(local, np.arange(STEPS_ON + 1)).astype(np.int64)
        out.append((ptr, ids))
    return out


@pytest.mark.parametrize("device", [None, "ideal", "yflash"])
def test_engine_reproduces_brian2_spike_for_spike(device):
    """Same input spike trains in, the same excitatory spikes out, image by image.

    Tolerance: floating-point order differs (Brian2's generated code divides by time
    constants, the kernels multiply by dt / tau), so a threshold crossing may move by
    a step now and then; we require >= 97 % of the (image, neuron) spike counts equal
    and the total within 2 %.
    """
    params = DiehlCookParams(n_neurons=16)
    images = _images(4)
    model = DiehlCook2015(device, params=params, seed=3, sync_interval=10 * ms)
    crossbar = None
    if device is not None:
        arrays, meta = model.crossbar.state_dict()
        crossbar = Crossbar.from_state_dict(arrays, meta)
    w0 = model.weights().ravel()
    inputs = SpikeMonitor(model.inputs)
    model.network.add(inputs)
    brian_counts = model.present(images, learn=True)
    n_presentations = int(round(float(model.network.t / (500 * ms))))
    assert n_presentations >= len(images)

    engine = DiehlCookEngine(device, params=params, seed=3, crossbar=crossbar,
                             between_images="rest", sync_interval_ms=10.0,
                             dw_per_pulse=None if device is None else model.xe.dw_per_pulse)
    if device is None:
        engine = DiehlCookEngine.from_frozen_state(
            {**engine.frozen_state(), "weights": w0})
        engine.between_images = "rest"
    engine_counts = engine.present(images, learn=True,
                                   input_spikes=_rasters(inputs, n_presentations))
    assert brian_counts.sum() > 5 * len(images)
    agree = np.mean(engine_counts == brian_counts)
    assert agree >= 0.97, (agree, brian_counts.sum(1), engine_counts.sum(1))
    assert abs(int(engine_counts.sum()) - int(brian_counts.sum())) <= 0.02 * brian_counts.sum()
    # a spike a step apart reorders the device's cycle-to-cycle draws: a few cells
    # may end a pulse apart, the rest agree to float precision
    diff = np.abs(engine.weights() - model.weights())
    assert np.mean(diff < 1e-3) >= (0.99 if device in (None, "ideal") else 0.95)
    assert diff.max() <= (0.01 if device is None else 2 * max(engine.dw_per_pulse) + 1e-9)
    np.testing.assert_allclose(engine.theta_v, np.asarray(model.exc.theta_[:]), rtol=1e-3)
