"""networks.CrossbarMLP: in-situ backpropagation with converters on crossbars."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from neuromem.energy import energy_breakdown
from networks import CrossbarMLP

RNG = np.random.default_rng(0)
X_SMALL = RNG.random((40, 6))
Y_SMALL = (X_SMALL[:, 0] + X_SMALL[:, 1] > X_SMALL[:, 2] + 0.5).astype(int) + 2 * (X_SMALL[:, 3] > 0.5)


def _fresh(**kw):
    """A model initialised on the small set (no training epoch)."""
    params = dict(hidden_layer_sizes=(5,), n_iter=0, random_state=3)
    params.update(kw)
    return CrossbarMLP(**params).fit(X_SMALL, Y_SMALL)


def _float_gradients(weights, X, Y):
    """Reference backpropagation in float64 on the same weights."""
    xs, a = [], X
    zs = []
    for W in weights:
        x = np.hstack([a, np.ones((len(a), 1))])
        z = x @ W
        xs.append(x)
        zs.append(z)
        a = np.clip(z, 0, 1)
    e = np.exp(zs[-1] - zs[-1].max(axis=1, keepdims=True))
    delta = e / e.sum(axis=1, keepdims=True) - Y
    grads = [None] * len(weights)
    for k in range(len(weights) - 1, -1, -1):
        grads[k] = xs[k].T @ delta / len(X)
        if k:
            delta = (delta @ weights[k][:-1].T) * ((zs[k - 1] > 0) & (zs[k - 1] < 1))
    return grads


def test_gradient_on_ideal_device_matches_float_reference():
    model = _fresh(hidden_layer_sizes=(7, 5), dac_bits=16, adc_bits=16, adc_range=8.0,
                   adc_range_back=2.0)
    Y = (Y_SMALL[:, None] == model.classes_[None, :]).astype(float)
    hw = model.gradients(X_SMALL, Y_SMALL)
    ref = _float_gradients(model.weights_, X_SMALL, Y)
    assert len(hw) == 3
    for g, r in zip(hw, ref):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, atol=2e-3 * np.abs(r).max() + 1e-6)
    # coarse converters change the gradient measurably: the comparison can fail
    coarse = _fresh(hidden_layer_sizes=(7, 5), dac_bits=3, adc_bits=3, adc_range=8.0,
                    adc_range_back=2.0)
    g3 = coarse.gradients(X_SMALL, Y_SMALL)
    assert max(np.abs(a - b).max() for a, b in zip(g3, ref)) > 1e-2


def test_outer_product_update_gives_the_rule_s_pulses():
    model = _fresh(rounding="nearest", batch_size=1, learning_rate=0.02, max_pulses=6)
    x = (RNG.random((1, 6)) > 0.5).astype(float)  # binary rows: driven or not
    x[0, :2] = [1.0, 0.0]
    y = Y_SMALL[:1]
    grads = model.gradients(x, y)
    before = model.weights_
    pulses_before = model.ledger_.as_dict()
    model.partial_fit(x, y)
    after = model.weights_
    n_up = n_down = 0
    for k, g in enumerate(grads):
        delta = g[-1]  # the bias row is always driven: its gradient is delta itself
        rows = np.append(x[0], 1.0) if k == 0 else None
        if rows is None:  # hidden activations: only rows with a nonzero input move
            rows = (np.abs(g).sum(axis=1) > 0).astype(float)
        n = np.minimum(np.floor(0.02 * np.abs(delta) / model.pulse_weight_[k] + 0.5), 6)
        expected = rows[:, None] * (-np.sign(delta) * n)[None, :]
        moved = (after[k] - before[k]) / model.pulse_weight_[k]
        np.testing.assert_allclose(moved, expected, atol=1e-3)
        n_up += expected[expected > 0].sum()
        n_down += -expected[expected < 0].sum()
    assert n_up + n_down > 0
    ops = model.ledger_.as_dict()
    # differential pair: the G- device takes the opposite pulse
    got_up = ops["potentiate"]["count"] - pulses_before.get("potentiate", {"count": 0})["count"]
    got_down = ops["depress"]["count"] - pulses_before.get("depress", {"count": 0})["count"]
    assert got_up == got_down == n_up + n_down
    assert model.history_[-1]["pulses"] == n_up + n_down


def test_momentum_first_step_equals_plain_sgd_and_books_memory():
    x = (RNG.random((1, 6)) > 0.4).astype(float)
    y = Y_SMALL[:1]
    plain = _fresh(rounding="nearest", batch_size=1, momentum=0.0)
    heavy = _fresh(rounding="nearest", batch_size=1, momentum=0.9)
    for a, b in zip(plain.weights_, heavy.weights_):
        np.testing.assert_array_equal(a, b)
    grads = plain.gradients(x, y)
    plain.partial_fit(x, y)
    heavy.partial_fit(x, y)
    for g, a, b in zip(grads, plain.weights_, heavy.weights_):
        # rows whose input is 0 or 1: the outer product drives them exactly (a fractional
        # hidden activation is rounded as a row drive there, as a product here)
        exact = np.all(g == 0, axis=1) | np.all(np.isclose(g, g[-1]), axis=1)
        assert exact.sum() >= 2
        np.testing.assert_allclose(a[exact], b[exact], atol=1e-6)
    assert "sram_read" not in plain.ledger_.operations and plain.velocity_ is None
    cells = sum(w.size for w in heavy.weights_)
    assert heavy.ledger_.count("sram_read") == heavy.ledger_.count("sram_write") == cells
    assert energy_breakdown(heavy.ledger_)["digital_memory"] > 0
    # the second step: v2 = mu v1 - eta g2 (g2 on the weights after the first step)
    v1 = [v.copy() for v in heavy.velocity_]
    x2 = (RNG.random((1, 6)) > 0.4).astype(float)
    g2 = heavy.gradients(x2, Y_SMALL[1:2])
    heavy.partial_fit(x2, Y_SMALL[1:2])
    for v_old, g, v_new in zip(v1, g2, heavy.velocity_):
        np.testing.assert_allclose(v_new, 0.9 * v_old - heavy.learning_rate * g, atol=1e-9)


def test_learns_digits_on_ideal_and_yflash():
    from neuromem.data import load_digits_scaled
    X, y = load_digits_scaled()
    X = X.astype(np.float64)
    train, test = slice(0, 1200), slice(1200, None)
    ideal = CrossbarMLP((32,), n_iter=3, random_state=0).fit(X[train], y[train])
    assert ideal.score(X[test], y[test]) > 0.88
    yflash = CrossbarMLP((32,), "yflash", n_iter=3, pulse_width=0.1, random_state=0)
    yflash.fit(X[train], y[train])
    assert yflash.score(X[test], y[test]) > 0.8
    parts = energy_breakdown(yflash.energy_report())
    assert parts["converters"] > 0 and parts["programming_pulses"] > 0
    assert parts["counters"] == 0


def test_fit_is_reproducible_and_clone_keeps_params():
    a = CrossbarMLP((5,), n_iter=2, random_state=7).fit(X_SMALL, Y_SMALL)
    b = clone(a).fit(X_SMALL, Y_SMALL)
    for u, v in zip(a.weights_, b.weights_):
        np.testing.assert_array_equal(u, v)
    assert b.get_params()["hidden_layer_sizes"] == (5,)


def test_save_load_round_trip_and_resume(tmp_path):
    model = CrossbarMLP((5,), n_iter=1, momentum=0.5, random_state=1).fit(X_SMALL, Y_SMALL)
    path = model.save(tmp_path / "m.npz")
    loaded = CrossbarMLP.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X_SMALL), model.predict_proba(X_SMALL))
    assert loaded.energy_report() == model.energy_report()
    model.partial_fit(X_SMALL, Y_SMALL)
    loaded.partial_fit(X_SMALL, Y_SMALL)
    for u, v in zip(model.weights_, loaded.weights_):
        np.testing.assert_array_equal(u, v)
    for u, v in zip(model.velocity_, loaded.velocity_):
        np.testing.assert_array_equal(u, v)


def test_load_rejects_damaged_or_foreign_files(tmp_path):
    model = CrossbarMLP((4,), n_iter=0, random_state=1).fit(X_SMALL, Y_SMALL)
    path = model.save(tmp_path / "m.npz")
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["layer0/state_plus"] = arrays["layer0/state_plus"] + 1e-9
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="checksum"):
        CrossbarMLP.load(bad)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not an .npz"):
        CrossbarMLP.load(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError):
        CrossbarMLP.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="CrossbarMLP archive"):
        CrossbarMLP.load(tmp_path / "other.npz")


@pytest.mark.parametrize("param, value", [
    ("hidden_layer_sizes", ()), ("hidden_layer_sizes", (0,)), ("adc_bits", 1),
    ("dac_bits", 17), ("adc_range", 0.0), ("learning_rate", -1.0), ("momentum", 1.0),
    ("batch_size", 0), ("n_iter", -1), ("pulse_width", 0.0), ("pulse_width", 2.0),
    ("rounding", "up"), ("scheme", "single"), ("device", "unobtainium"),
    ("dac_bits_per_cycle", 9),
])
def test_bad_parameters_name_themselves(param, value):
    with pytest.raises(ValueError, match=param.split("_")[0]):
        CrossbarMLP(**{param: value}).fit(X_SMALL, Y_SMALL)


def test_bad_input_errors():
    with pytest.raises(NotFittedError):
        CrossbarMLP().predict(X_SMALL)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        CrossbarMLP(n_iter=0).fit(X_SMALL * 3, Y_SMALL)
    with pytest.raises(ValueError, match="2 classes"):
        CrossbarMLP(n_iter=0).fit(X_SMALL, np.zeros(len(X_SMALL)))
    with pytest.raises(ValueError, match="classes must be given"):
        CrossbarMLP().partial_fit(X_SMALL, Y_SMALL)
    model = _fresh()
    with pytest.raises(ValueError, match="features"):
        model.predict(X_SMALL[:, :3])
    with pytest.raises(ValueError, match="not in classes"):
        model.partial_fit(X_SMALL, Y_SMALL + 10)
