"""Batch normalisation of the ternary networks' hidden columns (``normalization="batch"``):
the gradient against a plain numpy batch-norm backprop whose Jacobian is checked by finite
differences, what the normalised error leaves out, the running statistics used at
inference, chunking, save/load and bad input."""

import numpy as np
import pytest
from sklearn.base import clone

from networks import TernaryCNN, TernaryMLP
from neuromem.data import load_digits_scaled, train_validation_split
from neuromem.devices import MTJ
from ternary_reference import plain_deltas

GROUP = 20


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_scaled()
    return train_validation_split(X, y, 0.2)


def mlp(**kw):
    params = dict(hidden_layer_sizes=(32,), n_iter=4, batch_size=GROUP, normalization="batch",
                  normalization_batch=GROUP, threshold=0.5, ste_width=1.0, cells_per_weight=1,
                  random_state=0)
    params.update(kw)
    return TernaryMLP(**params)


def cnn(**kw):
    params = dict(conv_layers=((8, 3),), hidden_layer_sizes=(32,), n_iter=4, batch_size=GROUP,
                  normalization="batch", normalization_batch=GROUP, threshold=0.5, ste_width=1.0,
                  max_shift=0, validation_fraction=None, random_state=0)
    params.update(kw)
    return TernaryCNN(**params)


def _normalize(z):
    """The normalisation of one group, written plainly: (z - mean) / sqrt(var + 1)."""
    return (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1.0)


def _normalize_back(z, d):
    """Its Jacobian-transpose product, by the textbook batch-norm backward pass."""
    zhat, std = _normalize(z), np.sqrt(z.var(axis=0) + 1.0)
    return (d - d.mean(axis=0) - zhat * (d * zhat).mean(axis=0)) / std


def test_the_backward_formula_is_the_jacobian_of_the_normalisation():
    rng = np.random.default_rng(0)
    z, d = rng.normal(3.0, 2.0, (GROUP, 4)), rng.normal(size=(GROUP, 4))
    eps, numeric = 1e-6, np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        step = np.zeros_like(z)
        step[idx] = eps
        numeric[idx] = ((_normalize(z + step) - _normalize(z - step)) * d).sum() / (2 * eps)
    np.testing.assert_allclose(_normalize_back(z, d), numeric, rtol=1e-6, atol=1e-8)


def test_hardware_gradient_equals_plain_batchnorm_backprop(digits):
    X_train, _, y_train, _ = digits
    model = mlp(hidden_layer_sizes=(24, 16), n_iter=1, adc_bits=16, dac_bits=16, backward_gain=1.0,
                device=MTJ(d2d_r_rel=0.0)).fit(X_train[:300], y_train[:300])
    X, y = X_train[300:360], y_train[300:360]  # three groups
    W = [w.astype(float) for w in model.coefs_]
    ones = np.ones((len(X), model.bias_rows))
    xs, flags, zs = [np.hstack([(X > model.input_threshold).astype(float), ones])], [], []
    for w in W[:-1]:
        root = np.sqrt(w.shape[0])
        step = 8 * root / (2**16 - 1)  # the hidden ADC: 16 bits over +-4 sqrt(fan-in)
        z = np.clip(np.rint(xs[-1] @ w / step) * step, -4 * root, 4 * root)
        zhat = np.vstack([_normalize(z[s:s + GROUP]) for s in range(0, len(z), GROUP)])
        zs.append(z)
        flags.append(np.abs(zhat) < model.ste_width)
        act = (zhat > model.threshold).astype(float) - (zhat < -model.threshold)
        xs.append(np.hstack([act, ones]))

    def to_counts(k, d):  # per group, in units of sqrt(fan-in) like the unnormalised network
        z = zs[k]
        d = np.vstack([_normalize_back(z[s:s + GROUP], d[s:s + GROUP]) for s in range(0, len(z), GROUP)])
        return d * np.sqrt(W[k].shape[0])

    deltas = plain_deltas(model, xs, W, y, flags, to_counts)
    got = model.gradients(X, y)
    for g, x, d in zip(got, xs, deltas):
        want = x.T @ d / len(X)
        assert np.abs(g - want).max() <= 2e-3 * np.abs(want).max()


def test_the_normalised_error_does_not_move_a_columns_mean(digits):
    # the bias rows are driven at +1 for every image, so their gradient is the batch sum
    # of the column's error: zero once the normalisation takes the mean out
    X_train, _, y_train, _ = digits
    X, y = X_train[:2 * GROUP], y_train[:2 * GROUP]
    plain = mlp(normalization=None, threshold=0.15, ste_width=0.5, n_iter=1).fit(X_train, y_train)
    normed = mlp(n_iter=1).fit(X_train, y_train)
    bias_plain = plain.gradients(X, y)[0][-plain.bias_rows:]
    bias_normed = normed.gradients(X, y)[0][-normed.bias_rows:]
    assert np.abs(bias_plain).max() > 1e-2
    assert np.abs(bias_normed).max() < 1e-6 * np.abs(normed.gradients(X, y)[0]).max()


def test_inference_uses_the_running_statistics(digits):
    X_train, X_test, y_train, _ = digits
    model = mlp(calibration_samples=0).fit(X_train, y_train)
    # the running statistics follow the columns' mean and spread over the training images
    xbar = model.layers_[0]
    drive = np.hstack([(X_train > model.input_threshold).astype(np.int8),
                       np.ones((len(X_train), model.bias_rows), np.int8)])
    z = xbar.read(drive) / xbar.unit_current_a
    mean, std = model.column_statistics_[0] / 16
    assert model.column_statistics_[0].dtype == np.int32
    assert np.abs(mean - z.mean(axis=0)).max() < 0.3 * z.std(axis=0).mean()
    np.testing.assert_allclose(std, np.sqrt(z.var(axis=0) + 1), rtol=0.25)
    # an image's class does not depend on the images decided with it
    assert np.array_equal(model.predict(X_test[:7]), model.predict(X_test)[:7])
    floats = [k for k, v in vars(model).items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    assert floats == []


def test_calibration_sets_the_references_from_its_images_and_writes_nothing(digits):
    X_train, _, y_train, _ = digits
    model = mlp(n_iter=2, calibration_samples=0).fit(X_train, y_train)
    coefs, counts = model.coefs_, dict(model.training_counts_)
    reads = model.ledger_.count("read")
    X = X_train[:GROUP]  # one statistics group
    assert model.calibrate(X) is model
    xbar = model.layers_[0]
    drive = np.hstack([(X > model.input_threshold).astype(np.int8), np.ones((GROUP, model.bias_rows), np.int8)])
    z = xbar.read(drive) / xbar.unit_current_a
    mean, std = model.column_statistics_[0] / 16
    step = 8 * np.sqrt(xbar.rows) / 255  # the hidden ADC's step
    assert np.abs(mean - z.mean(axis=0)).max() <= step / 2 + 1 / 32
    np.testing.assert_allclose(std, np.sqrt(z.var(axis=0) + 1), atol=step / 2 + 1 / 32)
    assert all(np.array_equal(a, b) for a, b in zip(model.coefs_, coefs))
    assert model.training_counts_ == counts
    assert model.ledger_.count("read") - reads == 3 * GROUP  # a forward pass (two arrays), the check
    with pytest.raises(ValueError, match="normalization='batch'"):
        mlp(n_iter=1, normalization=None).fit(X_train, y_train).calibrate(X)
    with pytest.raises(ValueError, match="0 sample"):
        model.calibrate(X[:0])


@pytest.mark.parametrize("estimator", [mlp, cnn])
def test_fit_calibrates_after_every_epoch_on_evenly_spaced_images(digits, estimator):
    from networks._ternary_base import calibration_indices

    X_train, X_test, y_train, _ = digits
    running = estimator(n_iter=2, calibration_samples=0).fit(X_train, y_train)
    calibrated = estimator(n_iter=2, calibration_samples=100).fit(X_train, y_train)
    # the calibration reads and writes nothing the training uses: the same device bits
    assert all(np.array_equal(a, b) for a, b in zip(running.coefs_, calibrated.coefs_))
    before = [s.copy() for s in running.column_statistics_]
    running.calibrate(X_train[calibration_indices(len(X_train), 100)])
    assert all(np.array_equal(a, b) for a, b in zip(running.column_statistics_, calibrated.column_statistics_))
    assert not all(np.array_equal(a, b) for a, b in zip(before, calibrated.column_statistics_))
    assert np.array_equal(running.predict(X_test), calibrated.predict(X_test))
    idx = calibration_indices(1437, 100)
    assert len(np.unique(idx)) == 100 and idx[0] == 0 and idx[-1] == 1436


def test_normalised_networks_learn_where_fixed_levels_do_not(digits):
    X_train, X_test, y_train, y_test = digits
    fixed = dict(normalization=None, threshold=0.15, ste_width=0.5)
    # at ten times the default rate the fixed levels lose the layer, the normalised one learns
    assert mlp(**fixed, learning_rate=3.0).fit(X_train, y_train).score(X_test, y_test) < 0.4
    assert mlp(learning_rate=3.0).fit(X_train, y_train).score(X_test, y_test) > 0.65
    # at a hundred times, the fixed levels leave no unit in its window; normalised, about
    # 68 % (a normal's share within one sigma) stay there
    assert mlp(**fixed, learning_rate=30.0).fit(X_train, y_train).window_fractions(X_test)[0] < 0.01
    assert mlp(learning_rate=30.0).fit(X_train, y_train).window_fractions(X_test)[0] > 0.5
    assert cnn().fit(X_train, y_train).score(X_test, y_test) > 0.6


def test_the_dense_defaults_normalise_and_learn_the_digits(digits):
    X_train, X_test, y_train, y_test = digits
    default = TernaryMLP((128,), random_state=0)
    assert (default.normalization, default.cells_per_weight) == ("batch", 4)
    fixed = TernaryMLP((128,), normalization=None, threshold=0.15, ste_width=0.5,
                       cells_per_weight=1, random_state=0)
    score = default.fit(X_train, y_train).score(X_test, y_test)
    assert score > 0.75 and score > fixed.fit(X_train, y_train).score(X_test, y_test) + 0.1


def test_chunks_keep_whole_statistics_groups(digits):
    X_train, X_test, y_train, _ = digits
    # batches of 50 images: groups of 20 and 30 (the rest joins the last group); chunks
    # of 7 images are widened to whole groups
    model = cnn(n_iter=2, batch_size=50, chunk_size=250).fit(X_train, y_train)
    chunked = clone(model).set_params(chunk_size=7).fit(X_train, y_train)
    assert all(np.array_equal(a, b) for a, b in zip(chunked.coefs_, model.coefs_))
    assert all(np.array_equal(a, b) for a, b in zip(chunked.column_statistics_, model.column_statistics_))
    assert np.array_equal(chunked.predict(X_test), model.predict(X_test))


@pytest.mark.parametrize("estimator", [mlp, cnn])
def test_save_load_keeps_the_statistics_and_continues_bit_for_bit(digits, tmp_path, estimator):
    X_train, X_test, y_train, _ = digits
    model = estimator(n_iter=1).fit(X_train, y_train)
    loaded = type(model).load(model.save(tmp_path / "normed.npz"))
    assert loaded.normalization == "batch" and loaded.normalization_batch == GROUP
    assert all(np.array_equal(a, b) for a, b in zip(loaded.column_statistics_, model.column_statistics_))
    assert np.array_equal(loaded.decision_function(X_test), model.decision_function(X_test))
    classes = np.unique(y_train)
    model.partial_fit(X_train, y_train, classes)
    loaded.partial_fit(X_train, y_train, classes)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.coefs_, model.coefs_))
    assert all(np.array_equal(a, b) for a, b in zip(loaded.column_statistics_, model.column_statistics_))


def test_the_decay_begins_after_the_epochs_at_the_full_rate(digits):
    X_train, _, y_train, _ = digits
    model = mlp(learning_rate=0.4, learning_rate_decay=0.5, learning_rate_decay_after=2)
    rates = [model.epoch_learning_rate(e, GROUP) for e in range(5)]
    assert rates == pytest.approx([0.4, 0.4, 0.2, 0.1, 0.05])
    model.set_params(learning_rate_decay_after=1)  # the decay from the second epoch
    assert model.epoch_learning_rate(2, GROUP) == pytest.approx(0.1)
    # in training: the held epochs are those of a constant rate, cell for cell; the
    # first decayed one is not
    held = mlp(n_iter=2, learning_rate_decay=0.2, learning_rate_decay_after=2).fit(X_train, y_train)
    constant = mlp(n_iter=2).fit(X_train, y_train)
    assert all(np.array_equal(a, b) for a, b in zip(held.coefs_, constant.coefs_))
    switches = [m.partial_fit(X_train, y_train).training_counts_["switches"] for m in (held, constant)]
    assert not all(np.array_equal(a, b) for a, b in zip(held.coefs_, constant.coefs_))
    assert switches[0] < switches[1]


def test_the_learning_rate_grows_with_the_batch(digits):
    X_train, _, y_train, _ = digits
    model = mlp(learning_rate=0.4, batch_growth=2.0, learning_rate_batch_exponent=1.0)
    assert model.epoch_learning_rate(0, GROUP) == pytest.approx(0.4)
    assert model.epoch_learning_rate(3, 8 * GROUP) == pytest.approx(3.2)
    model.set_params(learning_rate_batch_exponent=0.5, learning_rate_decay=0.5)
    assert model.epoch_learning_rate(2, 4 * GROUP) == pytest.approx(0.4 * 0.25 * 2)
    # in training: the late epochs, with their large batches, keep switching cells
    late = []
    for exponent in (0.0, 1.0):
        model = mlp(n_iter=3, learning_rate_batch_exponent=exponent)
        model.fit(X_train, y_train)
        before = model.training_counts_["switches"]
        model.partial_fit(X_train, y_train)  # the fourth epoch: batches of 8 * GROUP
        late.append(model.training_counts_["switches"] - before)
    assert late[1] > 3 * late[0]


@pytest.mark.parametrize("kw, match", [
    (dict(learning_rate_batch_exponent=-1.0), "learning_rate_batch_exponent"),
    (dict(normalization="layer"), "normalization must be one of"),
    (dict(normalization_batch=1), "normalization_batch"),
    (dict(calibration_samples=-1), "calibration_samples"),
])
@pytest.mark.parametrize("estimator", [mlp, cnn])
def test_bad_normalisation_parameters_are_refused(digits, kw, match, estimator):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match=match):
        estimator(**kw).fit(X_train, y_train)
