"""Tests of retraining one chip again (MemristiveRBM.rewind, MemristiveDBN.rewind) and of
the device state a crossbar exposes (Crossbar.device_state, Device.ageing_names)."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from networks import MemristiveDBN, MemristiveRBM
from neuromem import Crossbar
from neuromem.data import load_digits_binary
from neuromem.devices import get_device


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def small():
    X, y = load_digits_binary()
    return X[:200].astype(np.float32), y[:200]


def test_device_state_names_rows_and_is_a_copy():
    xbar = Crossbar(3, 4, "yflash", seed=0)
    state = xbar.device_state()
    assert list(state) == list(get_device("yflash").state_names)
    assert all(v.shape == (3, 4) for v in state.values())
    state["va_v"][...] = 0.0
    assert np.all(xbar.device_state()["va_v"] > 20)  # the crossbar's own is untouched
    with pytest.raises(ValueError, match="array must be 'plus' or 'minus'"):
        xbar.device_state("both")
    with pytest.raises(ValueError, match="not for 'single'"):
        Crossbar(2, 2, "yflash", scheme="single").device_state("minus")


def test_yflash_ageing_variables_move_with_pulses_toward_their_limits():
    dev = get_device("yflash")
    assert set(dev.ageing_names) <= set(dev.state_names) and dev.ageing_names
    assert get_device("pcm").ageing_names == ()
    xbar = Crossbar(4, 4, dev, seed=1)
    before = xbar.device_state()
    xbar.apply_pulses(np.full((4, 4), -50))  # program (hot-electron injection): V_a ages
    mid = xbar.device_state()
    xbar.apply_pulses(np.full((4, 4), 50))   # erase (tunnelling): beta ages
    after = xbar.device_state()
    gap = lambda s, name, limit: np.abs(s[name] - limit)  # noqa: E731
    va, beta = dev.va_age_limit_v, dev.beta_age_limit_v
    assert np.all(gap(mid, "va_v", va) < gap(before, "va_v", va))
    assert np.array_equal(mid["beta_v"], before["beta_v"])
    assert np.all(gap(after, "beta_v", beta) < gap(mid, "beta_v", beta))
    assert np.array_equal(after["va_v"], mid["va_v"])


def _pulses(xbar):
    return int(xbar.pulse_count.sum()) + int(xbar.reference_pulse_count.sum())


@pytest.mark.parametrize("scheme, device", [("reference", "yflash"), ("differential", "yflash"),
                                            ("differential", "ideal")])
def test_rbm_rewind_programs_back_to_the_start_and_clears_learning_state(small, scheme, device):
    X, _ = small
    rbm = MemristiveRBM(16, device=device, scheme=scheme, batch_size=20, random_state=0,
                        persistent=True, update="ideal" if device == "ideal" else "counter",
                        n_iter=3).fit(X[:100])
    start_plus, start_minus = rbm.initial_conductance_, rbm.initial_reference_conductance_
    assert not np.allclose(rbm.crossbar_.conductance, start_plus)  # training moved it
    pulses, wear = _pulses(rbm.crossbar_), rbm.crossbar_.device_state()
    out = rbm.rewind()
    g, ref = rbm.crossbar_.conductance, rbm.crossbar_.reference_conductance
    near = (np.abs(g - start_plus) <= 0.05 * start_plus + 1e-15) & \
        (np.abs(ref - start_minus) <= 0.05 * start_minus + 1e-15)
    assert out["missed"] == int((~near).sum())
    assert out["pulses"] == _pulses(rbm.crossbar_) - pulses
    if device == "ideal":
        assert out == {"pulses": 0, "missed": 0}
    else:
        assert out["pulses"] > 0 and out["missed"] < 0.01 * g.size
        # the devices keep their wear: the pulses of the rewind aged them further
        va = get_device("yflash").va_age_limit_v
        gap_before = np.abs(wear["va_v"] - va)
        gap_after = np.abs(rbm.crossbar_.device_state()["va_v"] - va)
        assert np.all(gap_after <= gap_before) and np.any(gap_after < gap_before)
    assert rbm.fantasy_ is None
    assert np.array_equal(rbm.initial_conductance_, start_plus)  # the start is kept
    rbm.partial_fit(X[:100])  # and it trains again from there


def test_initial_reference_survives_save_and_load(small, tmp_path):
    X, y = small
    dbn = MemristiveDBN((8,), 16, n_iter=1, n_top_iter=1, random_state=0).fit(X, y)
    loaded = MemristiveDBN.load(dbn.save(tmp_path / "m.npz"))
    for a, b in zip(dbn.layers_ + [dbn.top_], loaded.layers_ + [loaded.top_]):
        assert np.array_equal(a.initial_reference_conductance_, b.initial_reference_conductance_)
    assert loaded.rewind()["pulses"] > 0


def test_dbn_rewind_restarts_the_plan_on_the_same_arrays():
    X, y = load_digits_binary()
    X = X.astype(np.float32)
    dbn = MemristiveDBN((32,), 64, n_iter=5, n_top_iter=10, random_state=0).fit(X[:500], y[:500])
    first = dbn.score(X[500:900], y[500:900])
    arrays = [m.crossbar_ for m in dbn.layers_ + [dbn.top_]]
    pulses = sum(_pulses(x) for x in arrays)
    out = dbn.rewind()
    assert dbn.progress_ == {"stage": 0, "epoch": 0} and not dbn.done_
    assert out["pulses"] == sum(_pulses(x) for x in arrays) - pulses > 0
    rewound = dbn.score(X[500:900], y[500:900])
    while not dbn.done_:
        dbn.train_epoch(X[:500], y[:500])
    assert [m.crossbar_ for m in dbn.layers_ + [dbn.top_]] == arrays  # the same chip
    # back at the untrained start, then as good as the first training again
    assert rewound < 0.3 < first - 0.2
    assert dbn.score(X[500:900], y[500:900]) > first - 0.1


def test_dbn_rewind_refuses_a_fine_tuned_network(small):
    X, y = small
    dbn = MemristiveDBN((8,), 16, n_iter=1, n_top_iter=1, n_finetune=1, finetune="up-down",
                        random_state=0).fit(X, y)
    with pytest.raises(RuntimeError, match="cannot be rewound"):
        dbn.rewind()
