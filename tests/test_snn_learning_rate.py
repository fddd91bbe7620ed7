"""Learning-rate schedules of the Diehl & Cook network (engine and Brian2 model)."""

from __future__ import annotations

import numpy as np
import pytest

from networks import DiehlCookEngine
from networks.stdp import DiehlCook2015, DiehlCookParams, annealed_scale


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 784))
    for k in range(n):  # a bright random blob per image: the network fires and learns
        x[k, rng.choice(784, 150, replace=False)] = 255.0
    return x


def test_scale_is_the_same_as_scaled_rates():
    """A scale of 0.5 trains exactly as the rates halved in the parameters."""
    p = DiehlCookParams(n_neurons=10)
    scaled = DiehlCookEngine("ideal", params=p, seed=3)
    scaled.set_learning_rate_scale(0.5)
    halved = DiehlCookEngine("ideal", params=DiehlCookParams(
        n_neurons=10, nu_pre=p.nu_pre * 0.5, nu_post=p.nu_post * 0.5), seed=3)
    plain = DiehlCookEngine("ideal", params=p, seed=3)
    x = _images()
    counts = [e.present(x, learn=True) for e in (scaled, halved, plain)]
    assert np.array_equal(counts[0], counts[1])
    assert np.array_equal(scaled.weights(), halved.weights())
    assert not np.array_equal(scaled.weights(), plain.weights())
    assert scaled.requested["potentiate"] < plain.requested["potentiate"]


def test_scale_survives_a_checkpoint():
    engine = DiehlCookEngine("yflash", params=DiehlCookParams(n_neurons=10), seed=1)
    engine.set_learning_rate_scale(0.25)
    engine.present(_images(1), learn=True)
    arrays, meta = engine.state_dict()
    twin = DiehlCookEngine("yflash", params=DiehlCookParams(n_neurons=10), seed=1)
    twin.load_state_dict(arrays, meta)
    assert twin.learning_rate_scale == 0.25
    x = _images(2, seed=5)
    assert np.array_equal(engine.present(x, learn=True, start_index=1),
                          twin.present(x, learn=True, start_index=1))
    assert np.array_equal(engine.weights(), twin.weights())


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "0.5", True, 2e3])
def test_bad_scale_is_refused(bad):
    engine = DiehlCookEngine("ideal", params=DiehlCookParams(n_neurons=4))
    with pytest.raises(ValueError, match="learning-rate scale"):
        engine.set_learning_rate_scale(bad)
    assert engine.learning_rate_scale == 1.0


def test_brian2_model_scales_its_stdp_rates():
    net = DiehlCook2015(None, params=DiehlCookParams(n_neurons=4), seed=0)
    net.set_learning_rate_scale(0.1)
    assert float(net.xe.nu_post_s[:]) == pytest.approx(0.1 * net.params.nu_post)
    net.set_learning(False)
    assert float(net.xe.nu_post_s[:]) == 0.0
    net.set_learning(True)  # the scale holds through learning off and on
    assert float(net.xe.nu_pre_s[:]) == pytest.approx(0.1 * net.params.nu_pre)
    with pytest.raises(ValueError, match="learning-rate scale"):
        net.set_learning_rate_scale(-0.1)


def test_annealed_scale_falls_geometrically():
    assert annealed_scale(0.1, 0, 100) == 1.0
    assert annealed_scale(0.1, 100, 100) == pytest.approx(0.1)
    assert annealed_scale(0.1, 50, 100) == pytest.approx(0.1 ** 0.5)
    assert annealed_scale(1.0, 37, 100) == 1.0
    for bad in [(0.0, 0, 10), (1.5, 0, 10), (0.5, 11, 10), (0.5, 0, 0)]:
        with pytest.raises(ValueError):
            annealed_scale(*bad)


def test_params_from_recipe_take_overrides():
    tuned = DiehlCookParams.from_recipe("tuned", n_neurons=7)
    assert tuned.nu_pre == 0.0 and tuned.nu_post > DiehlCookParams().nu_post
    assert tuned.n_neurons == 7
    assert DiehlCookParams.from_recipe("diehl-cook-2015") == DiehlCookParams()
    with pytest.raises(ValueError, match="unknown recipe"):
        DiehlCookParams.from_recipe("nope")
