"""TernaryMLP: the estimator contract, the rule's expected step, no float weights, ledger,
save/load."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from networks import TernaryMLP
from networks._ternary_base import column_budget, gate
from networks.ternary_mlp import transition
from neuromem.data import load_digits_scaled, train_validation_split
from neuromem.devices import MTJ
from neuromem.ternary import TernaryCrossbar
from ternary_reference import plain_deltas


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_scaled()
    return train_validation_split(X, y, 0.2)


def small(**kw):
    # the rule itself: fixed comparator levels, one cell per weight (the normalisation
    # and the defaults have their own tests)
    params = dict(hidden_layer_sizes=(32,), n_iter=4, batch_size=50, learning_rate=0.3,
                  threshold=0.15, ste_width=0.5, normalization=None, cells_per_weight=1,
                  random_state=0)
    params.update(kw)
    return TernaryMLP(**params)


def test_expected_update_of_a_weight_equals_the_rules_step():
    # every column one gradient; 3000 cells per column start at 0, so the mean step is
    # -sign(g) tanh(eta |g|) exactly (the devices are nominal: no spread)
    eta, rows = 0.5, 3000
    grads = np.array([-3.0, -1.0, -0.2, 0.3, 1.2, 4.0])
    xbar = TernaryCrossbar(rows, grads.size, MTJ(d2d_r_rel=0.0), init=(0, 1, 0), seed=7)
    direction, p = transition(np.tile(grads, (rows, 1)), eta)
    xbar.update_cells(direction, p)
    mean_step = xbar.weights.mean(axis=0)
    expected = -np.sign(grads) * np.tanh(eta * np.abs(grads))
    sd = np.sqrt(np.tanh(eta * np.abs(grads)) * (1 - np.tanh(eta * np.abs(grads))) / rows)
    assert np.all(np.abs(mean_step - expected) <= 5 * sd + 1e-12)
    # and at the bounds the step is clipped: +1 cells asked to go up stay
    top = TernaryCrossbar(50, 2, MTJ(d2d_r_rel=0.0), init=(0, 0, 1), seed=1)
    d, p = transition(np.tile([-2.0, 2.0], (50, 1)), 10.0)
    top.update_cells(d, p)
    assert np.all(top.weights[:, 0] == 1) and np.all(top.weights[:, 1] == 0)


def test_gated_writes_keep_the_step_where_the_resistance_spread_distorts_it():
    # 20 000 cells per column start at 0 and are asked for the steps tanh(|g|) (0.02, 0.2)
    rows, grads = 20000, np.array([0.02, 0.2])
    aim = np.tanh(grads)
    sd = np.sqrt(aim * (1 - aim) / rows)

    def mean_step(spread, gated):
        xbar = TernaryCrossbar(rows, 2, MTJ(d2d_r_rel=spread), init=(0, 1, 0), seed=3)
        direction, p = transition(np.tile(grads, (rows, 1)), 1.0)
        if gated:
            direction, p = gate(direction, p, 0.99, np.random.default_rng(0))
            assert set(np.unique(p)) <= {0.0, 0.99}
        xbar.update_cells(direction, p)
        return -xbar.weights.mean(axis=0)

    assert np.all(np.abs(mean_step(0.0, True) - aim) <= 5 * sd)
    # with a 30 % resistance spread the low-resistance devices switch far more often
    # than the width aims at; gated, every device switches almost surely once picked
    assert mean_step(0.3, False)[0] > 3 * aim[0]
    spread = mean_step(0.3, True)
    assert np.all((spread >= 0.9 * aim - 5 * sd) & (spread <= aim + 5 * sd))


def test_column_budget_caps_each_columns_expected_switches():
    # 4000 cells per column start at 0; the columns ask for 4, 40, 400 and 2000 switches
    rows, limit = 4000, 100.0
    aim = np.array([0.001, 0.01, 0.1, 0.5])
    direction, p = -np.ones((rows, 4), np.int8), np.tile(aim, (rows, 1))
    scaled, n_scaled = column_budget(p, limit)
    assert np.allclose(scaled[:, :2], p[:, :2])  # within the limit: untouched
    assert np.allclose(scaled.sum(axis=0)[2:], limit) and n_scaled == 2 * rows
    xbar = TernaryCrossbar(rows, 4, MTJ(d2d_r_rel=0.0), init=(0, 1, 0), seed=5)
    xbar.update_cells(direction, scaled)
    switched = (xbar.weights == -1).sum(axis=0)
    expected = np.minimum(aim * rows, limit)
    assert np.all(np.abs(switched - expected) <= 5 * np.sqrt(expected) + 1)


def test_column_write_limit_keeps_an_overlarge_rate_from_thrashing(digits):
    X_train, X_test, y_train, y_test = digits
    kw = dict(hidden_layer_sizes=(64,), batch_size=20, batch_growth=1.0, learning_rate=30.0)
    free = small(**kw).fit(X_train, y_train)
    limited = small(**kw, column_write_limit=0.02).fit(X_train, y_train)
    # unlimited, every update switches a large share of the cells and the hidden
    # units saturate; the limit keeps the steps small enough to learn
    assert free.window_fractions(X_test)[0] < 0.1 and free.score(X_test, y_test) < 0.3
    assert limited.window_fractions(X_test)[0] > 0.5 and limited.score(X_test, y_test) > 0.6
    assert limited.training_counts_["switches"] < free.training_counts_["switches"] / 5
    # a limit no column reaches changes nothing but books the column sums
    loose = small(**kw, column_write_limit=1e9).fit(X_train, y_train)
    assert all(np.array_equal(a, b) for a, b in zip(loose.coefs_, free.coefs_))
    updates = loose.n_iter * -(-len(X_train) // kw["batch_size"])
    cells = sum(w.size for w in loose.coefs_)
    assert loose.ledger_.count("digital") - free.ledger_.count("digital") == updates * cells
    with pytest.raises(ValueError, match="column_write_limit acts on"):
        small(update="sample", column_write_limit=0.02).fit(X_train, y_train)


def test_gated_training_books_its_draws_and_refuses_the_per_sample_rule(digits):
    X_train, X_test, y_train, y_test = digits
    plain = small(batch_size=20).fit(X_train, y_train)
    gated = small(batch_size=20, pulse_probability=0.99).fit(X_train, y_train)
    assert gated.score(X_test, y_test) > 0.45
    assert gated.ledger_.count("digital") > plain.ledger_.count("digital")
    with pytest.raises(ValueError, match="pulse_probability acts on"):
        small(update="sample", pulse_probability=0.99).fit(X_train, y_train)


def test_transition_has_no_step_without_gradient():
    d, p = transition(np.array([0.0, 2.0, -2.0]), 1.0)
    assert d.tolist() == [0, -1, 1] and p[0] == 0 and p[1] == p[2] == pytest.approx(np.tanh(2))
    # a deadzone: gradients within it move nothing, larger ones by what exceeds it
    d, p = transition(np.array([0.5, -1.0, 3.0]), 2.0, deadzone=1.0)
    assert d.tolist() == [-1, 1, -1] and p[0] == p[1] == 0 and p[2] == pytest.approx(np.tanh(4))


@pytest.mark.parametrize("update", ["batch", "sample"])
def test_a_deadzone_above_every_gradient_stops_all_writes(digits, update):
    X_train, _, y_train, _ = digits
    moving = small(n_iter=1, update=update).fit(X_train, y_train)
    still = small(n_iter=1, update=update, gradient_deadzone=1e9).fit(X_train, y_train)
    assert moving.training_counts_["switches"] > 0 and still.training_counts_["switches"] == 0


def test_learns_the_digits_and_follows_the_contract(digits):
    X_train, X_test, y_train, y_test = digits
    model = small(batch_size=20)
    with pytest.raises(NotFittedError):
        model.predict(X_test)
    model.fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.45  # chance is 0.1 (0.50-0.67 over seeds 0-5)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and not hasattr(twin, "layers_")
    proba = model.predict_proba(X_test[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(np.unique(model.predict(X_test))) <= set(model.classes_)
    binary = small(activation="binary", batch_size=20).fit(X_train, y_train)
    assert binary.score(X_test, y_test) > 0.3


def test_batch_grows_every_epoch_up_to_the_whole_set(digits):
    model = small(batch_size=30, batch_growth=2.0)
    assert [model.epoch_batch_size(e, 1000) for e in range(7)] == [30, 60, 120, 240, 480, 960, 1000]
    assert small(batch_growth=1.0).epoch_batch_size(5, 1000) == 50
    assert model.epoch_batch_size(5000, 1000) == 1000  # no overflow of growth**epoch
    # fewer, better-averaged batches switch fewer devices in the later epochs
    X_train, _, y_train, _ = digits
    switches = {}
    for growth in (1.0, 8.0):
        m = small(batch_size=20, batch_growth=growth)
        m.partial_fit(X_train, y_train, classes=np.unique(y_train))
        first = m.training_counts_["switches"]
        m.partial_fit(X_train, y_train)
        switches[growth] = (first, m.training_counts_["switches"] - first)
    assert switches[1.0][0] == switches[8.0][0]  # epoch 0: the same batches, same seed
    assert switches[8.0][1] < 0.5 * switches[1.0][1], switches


def test_an_epoch_is_cut_into_batches_of_equal_size(digits, monkeypatch):
    model = small(batch_size=100, batch_growth=1.0)
    assert model.epoch_batches(0, 250) == [125, 125]  # not 100, 100 and a remainder of 50
    assert model.epoch_batches(0, 1000) == [100] * 10
    assert model.epoch_batches(0, 30) == [30] and model.epoch_batches(0, 0) == []
    sizes = small(batch_size=759, batch_growth=1.0).epoch_batches(0, 60000)
    assert len(sizes) == 79 and sum(sizes) == 60000 and max(sizes) - min(sizes) <= 1
    # partial_fit trains on exactly these batches, every sample once
    X_train, _, y_train, _ = digits
    seen = []
    train_batch = TernaryMLP._train_batch

    def spy(self, X, onehot, lr):
        seen.append(len(X))
        rates.append(lr)
        return train_batch(self, X, onehot, lr)

    rates = []
    monkeypatch.setattr(TernaryMLP, "_train_batch", spy)
    model = small(batch_size=100, batch_growth=2.0, learning_rate_batch_exponent=1.0)
    model.partial_fit(X_train, y_train, classes=np.unique(y_train))
    model.partial_fit(X_train, y_train)
    n = len(X_train)
    first, second = model.epoch_batches(0, n), model.epoch_batches(1, n)
    assert seen == first + second, (n, seen)
    assert min(seen) >= 100 * 2 / 3  # no short remainder batch
    # a rate scaled by the batch follows the batches trained, not the nominal 100 and 200
    assert n % 100 and n % 200  # (else the two would agree)
    expected = [model.epoch_learning_rate(e, n / len(b)) for e, b in ((0, first), (1, second))]
    assert rates == pytest.approx([expected[0]] * len(first) + [expected[1]] * len(second))
    assert expected[0] != pytest.approx(model.epoch_learning_rate(0, 100))


def test_no_float_weight_exists_in_the_trained_model(digits):
    X_train, _, y_train, _ = digits
    model = small(n_iter=1)
    model.partial_fit(X_train[:10], y_train[:10], classes=np.arange(10))
    fabricated = [x.state_dict()[0] for x in model.layers_]
    model.partial_fit(X_train, y_train)
    for before, xbar in zip(fabricated, model.layers_):
        after, _ = xbar.state_dict()
        for key, value in after.items():
            if value.dtype.kind == "f":  # only the fabricated device parameters are floats
                np.testing.assert_array_equal(value, before[key])
            else:
                assert value.dtype == np.uint8 and set(np.unique(value)) <= {0, 1}
        assert np.any(after["plus"] != before["plus"])  # training moved bits
    for w in model.coefs_:
        assert w.dtype == np.int8 and set(np.unique(w)) <= {-1, 0, 1}
    floats = [k for k, v in vars(model).items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    assert floats == []


def test_every_operation_is_booked(digits):
    X_train, _, y_train, _ = digits
    n = 200
    model = small(n_iter=1, batch_size=50).fit(X_train[:n], y_train[:n])
    ledger = model.ledger_
    for op in ("read", "read_back", "adc", "dac", "comparator", "digital", "digital_add", "pulse_set",
               "pulse_reset"):
        assert ledger.count(op) > 0 and ledger.energy_j(op) > 0, op
    # the gradient accumulator: an add per nonzero drive and error column, none for the
    # dark pixels (most of the inputs) and a fraction of the hidden units
    assert 0 < ledger.count("digital_add") < n * ((64 + 8) * 32 + (32 + 8) * 10)
    assert ledger.count("read") == 2 * n            # two arrays read per sample
    assert ledger.count("read_back") == n           # one backward read per sample
    assert ledger.count("adc") == n * 10 + n * (32 + 8)  # outputs, then the hidden rows
    counts = model.training_counts_
    assert ledger.count("pulse_set") == counts["set_pulses"]
    ops = model.training_operations()
    assert ops["ops_per_sample"] == 2 * (2 * (64 + 8) * 32 + 2 * (32 + 8) * 10 + (32 + 8) * 10)
    before = ledger.total_j
    model.predict(X_train[:10])
    assert ledger.total_j > before


def test_signed_input_drives_dark_pixels(digits):
    X_train, X_test, y_train, y_test = digits
    binary = small(n_iter=1).fit(X_train[:300], y_train[:300])
    signed = small(n_iter=1, input_coding="signed").fit(X_train[:300], y_train[:300])
    # every first-layer row is driven for every sample: more read energy than 0/1 drive
    assert signed.layers_[0].ledger.energy_j("read") > 1.5 * binary.layers_[0].ledger.energy_j("read")
    assert not np.array_equal(signed.decision_function(X_test), binary.decision_function(X_test))


def test_grey_input_drives_rows_at_dac_levels(digits):
    X_train, X_test, y_train, y_test = digits
    model = small(input_coding="grey", normalization="batch", threshold=0.25, ste_width=0.8)
    assert model.fit(X_train, y_train).score(X_test, y_test) > 0.6  # 0.76 when written
    before = model.ledger_.count("dac")
    model.predict(X_test[:10])
    assert model.ledger_.count("dac") - before == 10 * 64  # one per pixel; no other DAC at inference
    binary = small(n_iter=1).fit(X_train[:300], y_train[:300])
    grey = small(n_iter=1, input_coding="grey").fit(X_train[:300], y_train[:300])
    assert not np.array_equal(grey.decision_function(X_test), binary.decision_function(X_test))


def test_per_sample_rule_trains_in_array(digits):
    X_train, X_test, y_train, y_test = digits
    model = small(update="sample", batch_size=10, learning_rate=0.02, n_iter=2).fit(X_train, y_train)
    assert model.score(X_test, y_test) > 0.2  # chance is 0.1
    assert model.ledger_.count("digital") < 10 * len(X_train) * 2 * 72  # no outer products


def test_save_load_round_trip(digits, tmp_path):
    X_train, X_test, y_train, _ = digits
    model = small(n_iter=2, device=MTJ(d2d_r_rel=0.1), d2d_delta_rel=0.05).fit(X_train, y_train)
    path = model.save(tmp_path / "ternary.npz")
    loaded = TernaryMLP.load(path)
    assert loaded.get_params().keys() == model.get_params().keys()
    assert loaded.device == model.device
    np.testing.assert_array_equal(loaded.decision_function(X_test), model.decision_function(X_test))
    for a, b in zip(loaded.coefs_, model.coefs_):
        np.testing.assert_array_equal(a, b)
    # training continues identically (device parameters and random streams restored)
    model.partial_fit(X_train, y_train)
    loaded.partial_fit(X_train, y_train)
    for a, b in zip(loaded.coefs_, model.coefs_):
        np.testing.assert_array_equal(a, b)


def keep_best(**kw):
    # on these digits the held-out score of this chip peaks at epoch 4 of 6
    return small(**{"n_iter": 6, "batch_size": 20, "cells_per_weight": 2, "validation_fraction": 0.2, **kw})


def test_validation_split_is_stratified_seeded_and_leaves_the_stream_alone(digits):
    X_train, _, y_train, _ = digits
    model = keep_best()
    X_fit, X_held, y_fit, y_held = model.validation_split(X_train, y_train)
    again = model.validation_split(X_train, y_train)
    np.testing.assert_array_equal(again[1], X_held)
    assert len(y_held) == int(np.ceil(0.2 * len(y_train))) and len(y_fit) + len(y_held) == len(y_train)
    share = np.bincount(y_held, minlength=10) / np.bincount(y_train, minlength=10)
    assert np.all(np.abs(share - 0.2) < 0.03)  # every class held out in proportion
    rows = {r.tobytes() for r in X_train}
    assert {r.tobytes() for r in X_fit} | {r.tobytes() for r in X_held} == rows
    other = keep_best(random_state=1).validation_split(X_train, y_train)[1]
    assert not np.array_equal(other, X_held)


def test_fit_keeps_the_best_epoch_and_programs_the_arrays_back(digits):
    X_train, X_test, y_train, y_test = digits
    model = keep_best().fit(X_train, y_train)
    X_fit, X_held, y_fit, y_held = model.validation_split(X_train, y_train)
    scores = model.validation_scores_
    assert len(scores) == 6 and model.best_epoch_ == int(np.argmax(scores)) + 1
    assert model.best_epoch_ < 6  # so the arrays had to be programmed back
    assert model.n_samples_seen_ == 6 * len(y_fit)  # the held-out images are never trained on
    assert model.score(X_held, y_held) == model.best_validation_score_ == max(scores)
    # the same by hand, epoch by epoch: the arrays now hold that epoch's cells
    twin = keep_best()
    epochs = []
    for _ in range(6):
        twin.partial_fit(X_fit, y_fit, classes=np.arange(10))
        twin.record_validation(X_held, y_held)
        epochs.append((twin.coefs_, [s.copy() for s in twin.column_statistics_]))
    assert twin.validation_scores_ == scores
    switches = twin.training_counts_["switches"]
    pulses = twin.ledger_.count("pulse_set") + twin.ledger_.count("pulse_reset")
    restored = twin.restore_best()
    coefs, statistics = epochs[model.best_epoch_ - 1]
    for a, b, c in zip(model.coefs_, twin.coefs_, coefs):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
    assert all(np.array_equal(a, b) for a, b in zip(twin.column_statistics_, statistics))
    assert restored["switches"] > 0 and twin.training_counts_["switches"] == switches
    assert twin.ledger_.count("pulse_set") + twin.ledger_.count("pulse_reset") == (
        pulses + restored["set_pulses"] + restored["reset_pulses"])  # the programming is booked
    assert model.score(X_test, y_test) > 0.45
    assert all(w.dtype == np.int8 for w in model.best_weights_)  # copies of states, no float


def test_the_best_epoch_is_saved_and_bad_use_is_refused(digits, tmp_path):
    X_train, _, y_train, _ = digits
    model = keep_best(n_iter=3)
    with pytest.raises(NotFittedError):
        model.record_validation(X_train, y_train)
    model.partial_fit(X_train, y_train, classes=np.arange(10))
    with pytest.raises(ValueError, match="record_validation"):
        model.restore_best()
    with pytest.raises(ValueError, match="validation_fraction"):
        small().validation_split(X_train, y_train)
    with pytest.raises(ValueError, match="validation_fraction=0.01 of 20 samples"):
        small(validation_fraction=0.01).fit(X_train[:20], y_train[:20])
    model = keep_best().fit(X_train, y_train)
    loaded = TernaryMLP.load(model.save(tmp_path / "best.npz"))
    assert (loaded.validation_fraction, loaded.best_epoch_) == (0.2, model.best_epoch_)
    assert loaded.validation_scores_ == model.validation_scores_
    model.partial_fit(X_train, y_train)
    loaded.partial_fit(X_train, y_train)
    model.restore_best()
    loaded.restore_best()
    for a, b in zip(loaded.coefs_, model.coefs_):
        np.testing.assert_array_equal(a, b)


def test_models_saved_before_batch_growth_keep_a_constant_batch(digits, tmp_path):
    from networks._archive import read_archive, write_archive
    from networks.ternary_mlp import FORMAT, FORMAT_VERSION

    X_train, _, y_train, _ = digits
    path = small(n_iter=1).fit(X_train, y_train).save(tmp_path / "new.npz")
    arrays, meta = read_archive(path, FORMAT, FORMAT_VERSION)
    del meta["params"]["batch_growth"]  # as files written before the parameter existed
    old = write_archive(tmp_path / "old.npz", arrays, meta, FORMAT, FORMAT_VERSION)
    assert TernaryMLP.load(old).batch_growth == 1.0
    assert TernaryMLP.load(path).batch_growth == 2.0


def test_load_refuses_foreign_and_altered_files(digits, tmp_path):
    X_train, _, y_train, _ = digits
    path = small(n_iter=1).fit(X_train[:100], y_train[:100]).save(tmp_path / "m.npz")
    with pytest.raises(FileNotFoundError):
        TernaryMLP.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not an .npz"):
        TernaryMLP.load(tmp_path / "junk.npz")
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["layer0/plus"] = 1 - arrays["layer0/plus"]
    np.savez(tmp_path / "altered.npz", **arrays)
    with pytest.raises(ValueError, match="checksum"):
        TernaryMLP.load(tmp_path / "altered.npz")


@pytest.mark.parametrize("kw, match", [
    ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"), ({"activation": "relu"}, "activation"),
    ({"learning_rate": 0.0}, "learning_rate"), ({"batch_size": 0}, "batch_size"),
    ({"adc_bits": 20}, "adc_bits"), ({"device": "yflash"}, "MTJ"), ({"loss": "mse"}, "loss"),
    ({"min_probability": 1.5}, "min_probability"), ({"update": "adam"}, "update"),
    ({"input_coding": "analog"}, "input_coding"), ({"batch_growth": 0.5}, "batch_growth"),
    ({"input_coding": "grey", "update": "sample"}, "update='batch'"),
    ({"pulse_probability": 0.0}, "pulse_probability"), ({"pulse_probability": 1.5}, "pulse_probability"),
    ({"pulse_probability": "0.99"}, "pulse_probability"), ({"column_write_limit": 0.0}, "column_write_limit"),
    ({"column_write_limit": float("inf")}, "column_write_limit"), ({"column_write_limit": True}, "column_write_limit"),
    ({"learning_rate_decay_after": -1}, "learning_rate_decay_after"),
    ({"learning_rate_decay_after": 1.5}, "learning_rate_decay_after"),
    ({"validation_fraction": 0.0}, "validation_fraction"), ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"validation_fraction": True}, "validation_fraction"), ({"validation_fraction": "0.1"}, "validation_fraction"),
])
def test_bad_parameters_are_refused_at_fit(digits, kw, match):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match=match):
        small(**kw).fit(X_train[:20], y_train[:20])


def test_bad_data_is_refused(digits):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        small().fit(X_train[:20] * 16, y_train[:20])
    with pytest.raises(ValueError, match="classes"):
        small().partial_fit(X_train[:20], y_train[:20])
    model = small(n_iter=1).fit(X_train[:50], y_train[:50])
    with pytest.raises(ValueError, match="features"):
        model.predict(X_train[:5, :10])


@pytest.mark.parametrize("cells, coding", [(1, "binary"), (3, "binary"), (1, "grey"), ((3, 1, 2), "binary")])
def test_hardware_gradient_equals_plain_backprop(digits, cells, coding):
    # two hidden layers, ideal converters, nominal devices and unit sense gain: the array
    # passes (reads, comparators, DAC-driven transposed reads) give the plain backprop
    # gradient at every depth, with no factor that compounds layer by layer; with several
    # cells per weight the weight is their mean
    X_train, _, y_train, _ = digits
    model = small(hidden_layer_sizes=(24, 16), n_iter=1, adc_bits=16, dac_bits=16, backward_gain=1.0,
                  device=MTJ(d2d_r_rel=0.0), cells_per_weight=cells,
                  input_coding=coding).fit(X_train[:300], y_train[:300])
    X, y = X_train[300:360], y_train[300:360]
    W = [w.astype(float) / k for w, k in zip(model.coefs_, model.cells_per_array_)]
    assert len(np.unique(model.coefs_[0])) == 2 * model.cells_per_array_[0] + 1  # the levels of the sum
    ones = np.ones((len(X), model.bias_rows))
    pixels = X if coding == "grey" else (X > model.input_threshold).astype(float)
    xs, flags = [np.hstack([pixels, ones])], []
    for w in W[:-1]:
        z, root = xs[-1] @ w, np.sqrt(w.shape[0])
        flags.append(np.abs(z) < model.ste_width * root)
        xs.append(np.hstack([(z > model.threshold * root).astype(float) - (z < -model.threshold * root), ones]))
    deltas = plain_deltas(model, xs, W, y, flags)
    got = model.gradients(X, y)
    for g, x, d in zip(got, xs, deltas):
        want = x.T @ d / len(X)
        assert np.abs(g - want).max() <= 2e-3 * np.abs(want).max()
    # the sense gain scales the error once per layer it crosses
    model.set_params(backward_gain=0.5)
    for depth, (g, g1) in enumerate(zip(model.gradients(X, y)[::-1], got[::-1])):
        assert np.allclose(g, g1 * 0.5**depth, rtol=1e-9, atol=1e-12)


def test_the_cells_of_a_weight_move_on_their_own_draws(digits):
    # one update of a network with two cells per weight: of the weights whose cells both
    # sit at 0, each cell moves with the weight's probability p, independently, so
    # 2 p cells move per weight and both move with probability p^2
    X_train, _, y_train, _ = digits
    X, y = X_train[:100], y_train[:100]
    model = small(hidden_layer_sizes=(64,), n_iter=0, batch_size=100, learning_rate=20.0,
                  cells_per_weight=2, device=MTJ(d2d_r_rel=0.0)).fit(X, y)  # builds the arrays, trains nothing
    before = [xbar.weights.reshape(xbar.rows, -1, 2) for xbar in model.layers_]
    p = [np.tanh(20.0 * np.abs(g)) for g in model.gradients(X, y)]
    model.partial_fit(X, y)  # one batch of 100: one update
    after = [xbar.weights.reshape(xbar.rows, -1, 2) for xbar in model.layers_]
    moved = both = want_moved = want_both = var_moved = 0.0
    for b, a, q in zip(before, after, p):
        at_zero = np.all(b == 0, axis=2) & (q >= model.min_probability)
        changed = (a != b)[at_zero]
        q = q[at_zero]
        moved += changed.sum()
        both += np.all(changed, axis=1).sum()
        want_moved, var_moved = want_moved + 2 * q.sum(), var_moved + 2 * (q * (1 - q)).sum()
        want_both += (q**2).sum()
    assert want_both > 50  # enough pairs for the test to tell p^2 from p
    assert abs(moved - want_moved) < 5 * np.sqrt(var_moved)
    assert abs(both - want_both) < 5 * np.sqrt(want_both)


def test_window_fractions_count_the_units_the_error_passes(digits):
    X_train, X_test, y_train, _ = digits
    model = small(hidden_layer_sizes=(32, 16)).fit(X_train, y_train)
    with pytest.raises(NotFittedError):
        small().window_fractions(X_test)
    fractions = model.window_fractions(X_test)
    assert len(fractions) == 2 and all(0 < f < 1 for f in fractions)
    # the first hidden array by hand: the pre-activation counts of the binarised pixels
    xbar = model.layers_[0]
    drive = np.hstack([(X_test > model.input_threshold).astype(np.int8),
                       np.ones((len(X_test), model.bias_rows), np.int8)])
    z = xbar.read(drive) / xbar.unit_current_a
    inside = np.abs(z) < model.ste_width * np.sqrt(xbar.rows)
    assert fractions[0] == pytest.approx(inside.mean())
    model.set_params(ste_width=1e6)
    assert model.window_fractions(X_test) == [1.0, 1.0]
