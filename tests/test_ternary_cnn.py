"""TernaryCNN: the convolution mapping, pooling, the hardware gradient against a plain
numpy reference, the estimator contract, no float weights, save/load, bad input."""

import math

import numpy as np
import pytest
from scipy.signal import correlate2d
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from networks import TernaryCNN
from networks._ternary_base import accumulate, calibration_indices
from networks.ternary_cnn import max_pool, patches, shift_images, unpatch, unpool
from neuromem.data import load_digits_scaled, train_validation_split
from neuromem.devices import MTJ


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_scaled()
    return train_validation_split(X, y, 0.2)


def small(**kw):
    # no shifted images and no held-out share unless a test asks: each test sees one mechanism
    params = dict(conv_layers=((8, 3),), hidden_layer_sizes=(32,), n_iter=4, batch_size=20,
                  normalization_batch=20, max_shift=0, validation_fraction=None, random_state=0)
    params.update(kw)
    return TernaryCNN(**params)


def test_patches_give_the_valid_correlation_and_unpatch_is_their_adjoint():
    rng = np.random.default_rng(0)
    a = rng.integers(-1, 2, (2, 7, 6, 3)).astype(float)
    kernel = rng.integers(-1, 2, (3, 3, 3)).astype(float)  # rows, cols, channels
    p = patches(a, 3)
    assert p.shape == (2, 5, 4, 27)
    conv = p @ kernel.reshape(-1)
    for n in range(2):
        ref = sum(correlate2d(a[n, :, :, c], kernel[:, :, c], mode="valid") for c in range(3))
        assert np.allclose(conv[n], ref)
    d = rng.normal(size=p.shape)
    assert np.isclose(np.sum(p * d), np.sum(a * unpatch(d, 3, 3)))


def test_the_accumulator_sums_in_double_precision():
    # errors that single precision cannot hold: 1 + k * 2**-40 rounds to 1 in float32
    rng = np.random.default_rng(0)
    x = rng.integers(-1, 2, size=(4000, 3)).astype(np.int8)
    d = 1.0 + rng.integers(1, 100, size=(4000, 2)) * 2.0 ** -40
    exact = np.array([[sum(int(a) * b for a, b in zip(x[:, i], d[:, j])) for j in range(2)] for i in range(3)])
    got = accumulate(x, d)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-9)
    assert not np.array_equal(np.round(got), got)  # the small parts survive the sum


def test_shift_images_moves_each_image_by_its_own_shift():
    rng = np.random.default_rng(0)
    images = rng.random((40, 6, 7))
    shifts = rng.integers(-3, 4, size=(40, 2))
    shifts[0] = (6, 0)  # off the frame: nothing is left
    moved = shift_images(images, shifts)
    for image, (dy, dx), out in zip(images, shifts, moved):
        expected = np.zeros_like(image)
        for i in range(6):
            for j in range(7):
                if 0 <= i - dy < 6 and 0 <= j - dx < 7:
                    expected[i, j] = image[i - dy, j - dx]
        assert np.array_equal(out, expected)
    with pytest.raises(ValueError, match="shifts holds 2 pairs for 40 images"):
        shift_images(images, shifts[:2])


def test_training_images_are_shifted_by_at_most_max_shift_and_calibration_is_not(digits):
    X_train, X_test, y_train, y_test = digits
    model = small(max_shift=1, n_iter=2).fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.35
    # one lit pixel in the middle of the 8 x 8 frame: where it lands is the shift drawn
    dot = np.zeros((2000, 64))
    dot[:, 3 * 8 + 4] = 1.0
    landed = np.argwhere(model.shifted(dot).reshape(2000, 8, 8) == 1.0)
    assert len(landed) == 2000  # every image keeps its dot (a shift of 1 stays in the frame)
    offsets = {(int(i) - 3, int(j) - 4) for _, i, j in landed}
    assert offsets == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    # the references after the last epoch are those of the unshifted training images
    references = [s.copy() for s in model.column_statistics_]
    model.calibrate(X_train[calibration_indices(len(X_train), min(len(X_train), model.calibration_samples))])
    assert all(np.array_equal(a, b) for a, b in zip(references, model.column_statistics_))
    # and shifting changed what was learned
    plain = small(n_iter=2).fit(X_train, y_train)
    assert not all(np.array_equal(a, b) for a, b in zip(plain.coefs_, model.coefs_))


def test_the_defaults_shift_the_images_and_keep_the_best_epoch_of_a_held_out_tenth(digits):
    X_train, X_test, y_train, y_test = digits
    model = TernaryCNN(conv_layers=((8, 3),), hidden_layer_sizes=(32,), n_iter=3, batch_size=20,
                       normalization_batch=20, random_state=0).fit(X_train, y_train)
    X_fit, X_held, _, y_held = model.validation_split(X_train, y_train)
    assert len(X_held) == round(0.1 * len(X_train)) and model.n_samples_seen_ == 3 * len(X_fit)
    assert len(model.validation_scores_) == 3 and model.best_validation_score_ == max(model.validation_scores_)
    assert model.score(X_held, y_held) == model.best_validation_score_  # programmed back to it
    assert not np.array_equal(model.shifted(X_test), X_test)
    assert model.score(X_test, y_test) > 0.35


def test_max_pool_routes_the_error_to_the_first_maximum():
    a = np.array([[0, 1, -1, -1, 7], [1, 0, -1, 0, 7], [5, 5, 5, 5, 7]], dtype=float)[None, :, :, None]
    pooled, where = max_pool(a, 2)
    assert pooled[0, :, :, 0].tolist() == [[1, 0]]  # the ragged row and column are dropped
    back = unpool(np.array([[[[2.0], [3.0]]]]), where, 2, a.shape)[0, :, :, 0]
    assert back.tolist() == [[0, 2, 0, 0, 0], [0, 0, 0, 3, 0], [0, 0, 0, 0, 0]]
    rng = np.random.default_rng(1)
    a = rng.integers(-1, 2, (3, 6, 6, 2)).astype(float)
    pooled, where = max_pool(a, 3)
    d = rng.normal(size=pooled.shape)
    assert np.isclose(np.sum(pooled * d), np.sum(a * unpool(d, where, 3, a.shape)))


def _reference_gradients(model, X, y):
    """The same network in plain numpy with ideal converters (explicit loops)."""
    W = [w.astype(float) for w in model.coefs_]
    bias = model.bias_rows
    (channels, kernel), = model.conv_layers
    n = len(X)
    pixels = X if model.input_coding == "grey" else (X > model.input_threshold)
    img = pixels.astype(float).reshape(n, 8, 8)
    h = 8 - kernel + 1
    z = np.zeros((n, h, h, channels))
    drive = np.zeros((n, h, h, kernel * kernel + bias))
    for i in range(h):
        for j in range(h):
            drive[:, i, j] = np.concatenate([img[:, i:i + kernel, j:j + kernel].reshape(n, -1),
                                             np.ones((n, bias))], axis=1)
            z[:, i, j] = drive[:, i, j] @ W[0]
    root = math.sqrt(W[0].shape[0])
    act = (z > model.threshold * root).astype(float) - (z < -model.threshold * root)
    flag = np.abs(z) < model.ste_width * root
    p = h // 2
    pooled, pos = np.zeros((n, p, p, channels)), np.zeros((n, p, p, channels, 2), int)
    for b in range(n):
        for i in range(p):
            for j in range(p):
                for c in range(channels):
                    win = act[b, 2 * i:2 * i + 2, 2 * j:2 * j + 2, c]
                    k = int(np.argmax(win.reshape(-1)))
                    pooled[b, i, j, c] = win.reshape(-1)[k]
                    pos[b, i, j, c] = (2 * i + k // 2, 2 * j + k % 2)
    x1 = np.concatenate([pooled.reshape(n, -1), np.ones((n, bias))], axis=1)
    z1 = x1 @ W[1]
    r1 = math.sqrt(W[1].shape[0])
    a1 = (z1 > model.threshold * r1).astype(float) - (z1 < -model.threshold * r1)
    f1 = np.abs(z1) < model.ste_width * r1
    x2 = np.concatenate([a1, np.ones((n, bias))], axis=1)
    r2 = math.sqrt(W[2].shape[0])
    out = np.clip(x2 @ W[2], -4 * r2, 4 * r2)
    logits = model.output_scale * out / r2
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    d2 = prob - np.eye(10)[y]

    def back(w, d):
        full = min(w.shape[1], 4 * math.sqrt(w.shape[1]))
        scale = np.abs(d).max(1, keepdims=True)
        scale[scale == 0] = 1
        return np.clip((d / scale) @ w.T, -full, full) * scale

    d1 = back(W[2], d2)[:, :W[2].shape[0] - bias] * f1
    dx1 = back(W[1], d1)[:, :W[1].shape[0] - bias].reshape(n, p, p, channels)
    dz = np.zeros_like(z)
    for b in range(n):
        for i in range(p):
            for j in range(p):
                for c in range(channels):
                    r, s = pos[b, i, j, c]
                    dz[b, r, s, c] = dx1[b, i, j, c]
    dz *= flag
    g0 = np.einsum("bijr,bijc->rc", drive, dz) / (h * h * n)
    return [g0, x1.T @ d1 / n, x2.T @ d2 / n]


@pytest.mark.parametrize("coding", ["binary", "grey"])
def test_hardware_gradient_equals_plain_backprop(digits, coding):
    X_train, _, y_train, _ = digits
    model = small(n_iter=1, adc_bits=16, dac_bits=16, device=MTJ(d2d_r_rel=0.0), chunk_size=7,
                  normalization=None, threshold=0.15, ste_width=0.5, cells_per_weight=1,  # fixed levels
                  input_coding=coding)
    model.fit(X_train[:200], y_train[:200])  # weights with structure, not only the random start
    X, y = X_train[200:240], y_train[200:240]
    got = model.gradients(X, y)
    want = _reference_gradients(model, X, y)
    for g, r in zip(got, want):
        assert g.shape == r.shape
        assert np.abs(g - r).max() <= 2e-3 * max(np.abs(r).max(), 1e-9)
    assert np.abs(want[0]).max() > 0  # the kernels do receive an error


def test_learns_the_digits_and_follows_the_contract(digits):
    X_train, X_test, y_train, y_test = digits
    model = small()
    with pytest.raises(NotFittedError):
        model.predict(X_test)
    model.fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.35  # chance is 0.1
    assert model.predict_proba(X_test[:5]).sum(axis=1) == pytest.approx(np.ones(5))
    twin = clone(model).fit(X_train, y_train)
    assert np.array_equal(twin.predict(X_test), model.predict(X_test))
    # the chunk only bounds memory: the same training in chunks of 7 images
    chunked = clone(model).set_params(chunk_size=7).fit(X_train, y_train)
    assert all(np.array_equal(a, b) for a, b in zip(chunked.coefs_, model.coefs_))


def test_window_fractions_cover_every_hidden_array_in_any_chunking(digits):
    X_train, X_test, y_train, _ = digits
    model = small(n_iter=1).fit(X_train, y_train)
    fractions = model.window_fractions(X_test)
    assert len(fractions) == 2 and all(0 < f < 1 for f in fractions)  # one conv, one dense
    model.set_params(chunk_size=7)
    assert model.window_fractions(X_test) == fractions
    model.set_params(ste_width=1e6)
    assert model.window_fractions(X_test) == [1.0, 1.0]


def test_gated_and_limited_writes_learn_and_are_saved(digits, tmp_path):
    X_train, X_test, y_train, y_test = digits
    model = small(pulse_probability=0.99, column_write_limit=0.05, device=MTJ(d2d_r_rel=0.3)).fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.35
    model.save(tmp_path / "gated.npz")
    loaded = TernaryCNN.load(tmp_path / "gated.npz")
    assert (loaded.pulse_probability, loaded.column_write_limit) == (0.99, 0.05)


def test_several_cells_per_weight_learn_and_are_saved(digits, tmp_path):
    X_train, X_test, y_train, y_test = digits
    model = small(cells_per_weight=2).fit(X_train, y_train)
    assert model.layers_[0].shape == (9 + 4, 16) and model.coefs_[0].shape == (9 + 4, 8)
    assert set(np.unique(model.coefs_[1])) == {-2, -1, 0, 1, 2}
    assert model.score(X_test, y_test) > 0.35
    loaded = TernaryCNN.load(model.save(tmp_path / "two.npz"))
    assert np.array_equal(loaded.decision_function(X_test), model.decision_function(X_test))
    assert model.training_operations() == small().fit(X_train[:50], y_train[:50]).training_operations()


def test_each_array_may_have_its_own_cells_per_weight(digits, tmp_path):
    X_train, X_test, y_train, y_test = digits
    model = small(cells_per_weight=(1, 3, 2), n_iter=2).fit(X_train, y_train)
    assert model.cells_per_array_ == [1, 3, 2]
    assert [x.shape for x in model.layers_] == [(9 + 4, 8), (72 + 4, 96), (32 + 4, 20)]
    assert [c.shape for c in model.coefs_] == [(9 + 4, 8), (72 + 4, 32), (32 + 4, 10)]
    for w, k in zip(model.coefs_, (1, 3, 2)):
        assert set(np.unique(w)) <= set(range(-k, k + 1)) and w.min() < -k + 1 and w.max() > k - 1
    assert model.score(X_test, y_test) > 0.35
    loaded = TernaryCNN.load(model.save(tmp_path / "mixed.npz"))
    assert loaded.cells_per_weight == (1, 3, 2) and loaded.get_params() == model.get_params()
    assert np.array_equal(loaded.decision_function(X_test), model.decision_function(X_test))
    # the kernels' reads dominate: one cell on them instead of two cuts the read energy,
    # and the operations counted for a digital accelerator do not change
    two = small(cells_per_weight=2, n_iter=1).fit(X_train[:100], y_train[:100])
    mixed = small(cells_per_weight=(1, 2, 2), n_iter=1).fit(X_train[:100], y_train[:100])
    reads = [m.ledger_.as_dict()["read"] for m in (two, mixed)]
    assert reads[0]["count"] == reads[1]["count"] and reads[1]["energy_j"] < 0.85 * reads[0]["energy_j"]
    assert mixed.training_operations() == two.training_operations()


def test_the_best_epoch_is_kept_for_every_array(digits):
    X_train, _, y_train, _ = digits
    model = small(validation_fraction=0.2, random_state=2).fit(X_train, y_train)
    assert model.best_epoch_ == 2 < 4  # this chip's held-out score peaks early
    _, X_held, _, y_held = model.validation_split(X_train, y_train)
    assert model.score(X_held, y_held) == model.best_validation_score_ == max(model.validation_scores_)
    # the convolution's kernels are kept and programmed back as the dense arrays are
    assert [w.shape for w in model.best_weights_] == [x.shape for x in model.layers_]
    assert [s.shape for s in model.best_column_statistics_] == [s.shape for s in model.column_statistics_]
    np.testing.assert_array_equal(model.layers_[0].weights, model.best_weights_[0])


def test_no_float_weight_and_every_pass_booked(digits):
    X_train, _, y_train, _ = digits
    model = small(n_iter=1).fit(X_train[:100], y_train[:100])
    k = model.cells_per_weight
    assert all(w.dtype == np.int8 and set(np.unique(w)) <= set(range(-k, k + 1)) for w in model.coefs_)
    assert model.coefs_[0].shape == (9 + 4, 8)  # a 3x3 kernel per column plus the bias rows
    ledger = model.ledger_.as_dict()
    positions = 6 * 6
    # forward reads: one per conv position and one per dense layer, per sample, in
    # training and in the calibration pass after the epoch (all 100 images)
    assert ledger["read"]["count"] == 2 * 100 * (positions + 2)
    for key in ("read_back", "adc", "dac", "digital", "digital_add", "pulse_set", "pulse_reset"):
        assert ledger[key]["count"] > 0 and ledger[key]["energy_j"] > 0
    # inference: comparators at the references (two per hidden value), ADCs only on the outputs
    model.predict(X_train[:10])
    after = model.ledger_.as_dict()
    assert after["comparator"]["count"] == 10 * 2 * (positions * 8 + 32)
    assert after["adc"]["count"] - ledger["adc"]["count"] == 10 * 10
    ops = model.training_operations()
    assert ops["forward_macs"] == positions * 13 * 8 + (3 * 3 * 8 + 4) * 32 + (32 + 4) * 10


def test_grey_pixels_drive_the_kernels_through_dacs(digits):
    X_train, X_test, y_train, y_test = digits
    model = small(input_coding="grey").fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.5
    before = model.ledger_.count("dac")
    model.predict(X_test[:10])
    assert model.ledger_.count("dac") - before == 10 * 64  # one conversion per pixel, held
    binary = small(n_iter=1).fit(X_train[:100], y_train[:100])
    grey = small(n_iter=1, input_coding="grey").fit(X_train[:100], y_train[:100])
    # the same chip and stream: only the first array's drives differ
    assert not np.array_equal(grey.coefs_[0], binary.coefs_[0])


def test_save_load_round_trip_continues_bit_for_bit(digits, tmp_path):
    X_train, X_test, y_train, y_test = digits
    model = small(n_iter=1).fit(X_train, y_train)
    path = model.save(tmp_path / "cnn.npz")
    loaded = TernaryCNN.load(path)
    assert loaded.conv_layers == ((8, 3),)
    assert np.array_equal(loaded.decision_function(X_test), model.decision_function(X_test))
    classes = np.unique(y_train)
    shifting = small(n_iter=1, max_shift=2).fit(X_train, y_train)
    twin = TernaryCNN.load(shifting.save(tmp_path / "shifting.npz"))
    assert twin.max_shift == 2
    shifting.partial_fit(X_train, y_train, classes)
    twin.partial_fit(X_train, y_train, classes)
    assert all(np.array_equal(a, b) for a, b in zip(twin.coefs_, shifting.coefs_))
    model.partial_fit(X_train, y_train, classes)
    loaded.partial_fit(X_train, y_train, classes)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.coefs_, model.coefs_))
    with pytest.raises(ValueError, match="cnn"):
        from networks import TernaryMLP
        TernaryMLP.load(path)  # a CNN file is not an MLP file


def test_models_saved_before_normalisation_load_with_fixed_levels(digits, tmp_path):
    from networks._archive import read_archive, write_archive
    from networks.ternary_cnn import FORMAT, FORMAT_VERSION

    X_train, X_test, y_train, _ = digits
    model = small(n_iter=1, normalization=None, threshold=0.15, ste_width=0.5, cells_per_weight=1)
    path = model.fit(X_train, y_train).save(tmp_path / "new.npz")
    arrays, meta = read_archive(path, FORMAT, FORMAT_VERSION)
    for name in ("normalization", "normalization_batch", "cells_per_weight", "gradient_deadzone",
                 "learning_rate_batch_exponent", "calibration_samples", "max_shift", "validation_fraction"):
        del meta["params"][name]  # as files written before the parameters existed
    for name in [a for a in arrays if a.startswith("statistics")]:
        del arrays[name]
    old = TernaryCNN.load(write_archive(tmp_path / "old.npz", arrays, meta, FORMAT, FORMAT_VERSION))
    assert (old.normalization, old.cells_per_weight, old.calibration_samples, old.max_shift,
            old.validation_fraction) == (None, 1, 0, 0, None)
    assert np.array_equal(old.decision_function(X_test), model.decision_function(X_test))


@pytest.mark.parametrize("kw, match", [
    (dict(conv_layers=()), "conv_layers"),
    (dict(conv_layers=((8, 0),)), "conv_layers"),
    (dict(conv_layers=((8, 9),)), r"conv_layers\[0\] leaves no feature map"),
    (dict(image_shape=(4, 4)), "image_shape"),
    (dict(image_shape=(8,)), "image_shape"),
    (dict(pool_size=0), "pool_size"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(pulse_probability=2.0), "pulse_probability"),
    (dict(column_write_limit=-1.0), "column_write_limit"),
    (dict(cells_per_weight=0), "cells_per_weight"),
    (dict(cells_per_weight=65), "cells_per_weight"),
    (dict(cells_per_weight=True), "cells_per_weight"),
    (dict(cells_per_weight=(2, 2)), r"cells_per_weight must be .* a tuple of 3"),
    (dict(cells_per_weight=(2, 0, 2)), "cells_per_weight"),
    (dict(cells_per_weight=(2, 2.0, 2)), "cells_per_weight"),
    (dict(gradient_deadzone=-1.0), "gradient_deadzone"),
    (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(max_shift=-1), "max_shift"),
    (dict(max_shift=1.5), "max_shift"),
])
def test_bad_parameters_are_refused(digits, kw, match):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match=match):
        small(**kw).fit(X_train, y_train)


def test_non_square_images_need_their_shape(digits):
    X_train, _, y_train, _ = digits
    X = X_train[:60, :48]  # 6 x 8 images
    with pytest.raises(ValueError, match="not a square image"):
        small().fit(X, y_train[:60])
    model = small(image_shape=(6, 8), n_iter=1).fit(X, y_train[:60])
    assert model.coefs_[1].shape[0] == 2 * 3 * 8 + 4  # (6-2)//2 x (8-2)//2 x 8 channels
