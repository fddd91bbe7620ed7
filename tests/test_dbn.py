"""Tests of networks.MemristiveDBN: learning on digits, save/load, rejection of bad
files, and bit-identical resume after an interruption."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from networks import MemristiveDBN
from neuromem.data import load_digits_binary


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpool_limits(1):  # shared 2-core machine: threaded BLAS only spin-waits
        yield


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_binary()
    return train_test_split(X.astype(np.float32), y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def small():
    X, y = load_digits_binary()
    return X[:200].astype(np.float32), y[:200]


#: the generative protocol these tests were written for (the defaults add the hybrid top)
GENERATIVE = dict(n_top_iter=None, discriminative_weight=0.0, guess_sweeps=1, paired_noise=False,
                  top_anneal_epochs=(), top_rbm_params=None)


def _small_dbn(**kw):
    params = dict(hidden_layer_sizes=(16,), n_top=32, n_iter=2, n_finetune=2, batch_size=10,
                  random_state=0, **GENERATIVE)
    params.update(kw)
    return MemristiveDBN(**params)


# ---------------------------------------------------------------------------- learning

@pytest.mark.parametrize("kw, floor", [
    (dict(device="ideal", update="ideal", rbm_params={"learning_rate": 0.1}), 0.75),
    (dict(device="yflash", update="counter", n_finetune=1), 0.6),
], ids=["ideal", "yflash-counter"])
def test_dbn_classifies_digits_in_both_modes(digits, kw, floor):
    Xtr, Xte, ytr, yte = digits
    dbn = MemristiveDBN((64,), 128, n_iter=10, batch_size=10, random_state=0, **GENERATIVE,
                        **kw).fit(Xtr, ytr)
    assert dbn.done_
    freeze = dbn.score(Xte, yte)
    sampling = np.mean(dbn.predict(Xte, inference="sampling") == yte)
    assert freeze > floor and sampling > floor - 0.05, (freeze, sampling)  # chance: 0.10
    proba = dbn.predict_proba(Xte[:20])
    assert proba.shape == (20, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(dbn.predict(Xte[:20]), dbn.classes_[proba.argmax(axis=1)])
    report = dbn.energy_report()
    assert report["total_j"] > 0 and report["read"]["count"] > 0


def test_dbn_labels_can_be_any_classes(small):
    """String labels train the same network as integers numbered in the strings' sorted
    order; it answers with the strings, and answers well (a constant, shifted or
    shuffled answer fails)."""
    X, y = small
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                       "eight", "nine"])[y]
    kw = dict(device="ideal", update="ideal", n_iter=20, n_finetune=0,
              rbm_params={"learning_rate": 0.1})  # learns 200 digits in 2 s
    dbn = _small_dbn(**kw).fit(X, labels)
    np.testing.assert_array_equal(dbn.classes_, sorted(set(labels)))
    predicted = dbn.predict(X)
    assert np.mean(predicted == labels) > 0.7, np.mean(predicted == labels)  # 0.885; chance 0.1
    rank = {name: k for k, name in enumerate(sorted(set(labels)))}
    twin = _small_dbn(**kw).fit(X, np.array([rank[name] for name in labels]))
    np.testing.assert_array_equal(dbn.predict_proba(X), twin.predict_proba(X))
    np.testing.assert_array_equal(predicted, dbn.classes_[twin.predict(X)])
    with pytest.raises(ValueError, match="X must hold values in \\[0, 1\\]"):
        dbn.predict(X[:3] * 2)


@pytest.mark.parametrize("kw, match", [
    (dict(hidden_layer_sizes=()), "hidden_layer_sizes"),
    (dict(hidden_layer_sizes=(16, 0)), "hidden_layer_sizes"),
    (dict(hidden_layer_sizes="big"), "hidden_layer_sizes must be a sequence of layer sizes or 'auto'"),
    (dict(hidden_layer_sizes=16), "hidden_layer_sizes must be a sequence"),
    (dict(n_top_iter="x"), "n_top_iter must be an integer >= 1 or 'auto' or None, got 'x'"),
    (dict(paired_noise=1), "paired_noise must be True or False or 'auto', got 1"),
    (dict(n_top=0), "n_top"),
    (dict(n_top="many"), "n_top must be an integer >= 1 or 'auto', got 'many'"),
    (dict(n_iter=-1), "n_iter"),
    (dict(n_top_iter=0), "n_top_iter"),
    (dict(inference="vote"), "inference"),
    (dict(n_samples=0), "n_samples"),
    (dict(finetune_learning_rate=0.0), "finetune_learning_rate"),
    (dict(finetune="backprop"), "finetune must be one of"),
    (dict(finetune_decay=0.0), "finetune_decay"),
    (dict(finetune_decay=1.5), "finetune_decay"),
    (dict(finetune_momentum=1.0), "finetune_momentum"),
    (dict(finetune_momentum=-0.1), "finetune_momentum"),
    (dict(neuron="relu"), "neuron"),
    (dict(device="yflash", update="ideal"), "update='ideal'"),
    (dict(discriminative_weight=-1), "discriminative_weight"),
    (dict(discriminative_weight=float("nan")), "discriminative_weight"),
    (dict(discriminative_weight=1.5), "whole number"),
    (dict(discriminative_weight="1"), "discriminative_weight"),
    (dict(top_rbm_params={"bogus": 1}), "top_rbm_params holds \\['bogus'\\]"),
    (dict(top_rbm_params={"cd_k": 2}), "top_rbm_params cannot set \\['cd_k'\\]"),
    (dict(top_rbm_params={"counter_threshold": 0}), "counter_threshold"),
    (dict(rbm_params={"device": "pcm"}), "rbm_params cannot set \\['device'\\]"),
])
def test_dbn_bad_params_raise(small, kw, match):
    X, y = small
    with pytest.raises(ValueError, match=match):
        _small_dbn(**kw).fit(X, y)


def test_top_rbm_trains_its_own_number_of_epochs(small):
    X, y = small
    dbn = _small_dbn(n_iter=1, n_top_iter=3, n_finetune=0)
    X, y = dbn.begin(X, y)
    assert dbn.stages_ == [("layer0", 1), ("top", 3)]
    done = []
    while not dbn.done_:
        done.append(dbn.train_epoch(X, y))
    assert done == [("layer0", 0), ("top", 0), ("top", 1), ("top", 2)]
    other = _small_dbn(n_iter=2, n_finetune=0)
    other.begin(X, y)  # the plan is known once the data are (epochs may be "auto")
    assert other.stages_[-1] == ("top", 2)


def test_dbn_rejects_bad_data(small):
    X, y = small
    with pytest.raises(ValueError, match="X must hold values in \\[0, 1\\]"):
        _small_dbn().fit(X * 2, y)
    with pytest.raises(ValueError, match="2 classes"):
        _small_dbn().fit(X, np.zeros(len(y)))


# ---------------------------------------------------------------------------- save / load

def _state(dbn):
    """Every learned array: device states of all crossbars and all counters."""
    out = {}
    for i, mod in enumerate(dbn._modules()):
        arrays, _ = mod.crossbar_.state_dict()
        for key, value in arrays.items():
            out[f"{i}/{key}"] = value
        out[f"{i}/counter"] = mod._counter.count.copy()
    return out


def _assert_same_state(a, b):
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


@pytest.fixture(scope="module")
def saved(small, tmp_path_factory):
    X, y = small
    dbn = _small_dbn(n_iter=2, n_finetune=1).fit(X, y)
    path = dbn.save(tmp_path_factory.mktemp("dbn") / "model.npz")
    return dbn, path


def test_save_load_round_trip(saved, small):
    X, _ = small
    dbn, path = saved
    report = dbn.energy_report()
    loaded = MemristiveDBN.load(path)
    assert loaded.energy_report() == report
    assert loaded.get_params() == dbn.get_params()
    np.testing.assert_array_equal(loaded.classes_, dbn.classes_)
    assert loaded.progress_ == dbn.progress_ and loaded.done_
    _assert_same_state(dbn, loaded)
    np.testing.assert_array_equal(loaded.predict_proba(X), dbn.predict_proba(X))
    # the stochastic mode continues the saved random streams: same draws, same answer
    twin = MemristiveDBN.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X, inference="sampling"),
                                  twin.predict_proba(X, inference="sampling"))


def _arrays_and_meta(path):
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays.pop("__metadata__").tobytes().decode())
    return arrays, meta


def _write(path, arrays, meta):
    out = dict(arrays)
    out["__metadata__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(path, **out)
    return path


def test_unmodified_rewrite_still_loads(saved, tmp_path):
    """The tamper tests below rewrite the archive; an unmodified rewrite must load."""
    dbn, path = saved
    arrays, meta = _arrays_and_meta(path)
    _assert_same_state(dbn, MemristiveDBN.load(_write(tmp_path / "same.npz", arrays, meta)))


@pytest.mark.parametrize("key", ["layer0/crossbar/state_plus", "top/counter", "classes",
                                 "gen0/crossbar/state_minus"])
def test_flipped_byte_in_an_array_is_rejected(saved, tmp_path, key):
    _, path = saved
    arrays, meta = _arrays_and_meta(path)
    value = arrays[key].copy()
    raw = value.reshape(-1).view(np.uint8)
    raw[raw.size // 2] ^= 0x01
    arrays[key] = value
    with pytest.raises(ValueError, match="checksum"):
        MemristiveDBN.load(_write(tmp_path / "flip.npz", arrays, meta))


def _edit(meta, path, value):
    node = meta
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()


@pytest.mark.parametrize("path, value, match", [
    (("format",), "something-else", "format"),
    (("version",), 99, "format"),
    (("sha256", "classes"), "0" * 64, "checksum"),
    (("modules", "top", "rng"), _DELETE, "rng"),
    (("modules", "layer0", "crossbar", "rows"), 10, "shape"),
    (("modules",), _DELETE, "modules"),
], ids=["format", "version", "hash", "rng", "rows", "modules"])
def test_edited_metadata_is_rejected(saved, tmp_path, path, value, match):
    """Re-signed edits (the metadata digest recomputed) still fail the deeper checks."""
    from networks.dbn import _meta_digest

    _, file = saved
    arrays, meta = _arrays_and_meta(file)
    _edit(meta, path, value)
    meta["metadata_sha256"] = _meta_digest(meta)
    with pytest.raises(ValueError, match=match):
        MemristiveDBN.load(_write(tmp_path / "meta.npz", arrays, meta))


def test_dropped_or_extra_array_is_rejected(saved, tmp_path):
    _, file = saved
    arrays, meta = _arrays_and_meta(file)
    dropped = {k: v for k, v in arrays.items() if k != "top/counter"}
    with pytest.raises(ValueError, match="top/counter"):
        MemristiveDBN.load(_write(tmp_path / "drop.npz", dropped, meta))
    with pytest.raises(ValueError, match="extra"):
        MemristiveDBN.load(_write(tmp_path / "extra.npz", {**arrays, "extra": np.zeros(3)}, meta))




@pytest.mark.parametrize("path, value, match", [
    # the estimators' own parameter checks
    (("params", "n_top"), 0, "invalid saved parameters: n_top must be an integer >= 1"),
    (("params", "rbm_params"), {"learning_rate": -0.5}, "learning_rate must lie in \\(0"),
    (("params", "finetune_momentum"), 1.5, "finetune_momentum must lie in \\[0, 1\\)"),
    (("params", "finetune"), "discriminative", "finetune='discriminative' needs update='ideal'"),
    (("params", "bogus"), 1, "invalid saved parameters: .*bogus"),
    (("modules", "layer0", "params", "learning_rate"), -0.5,
     "module 'layer0': learning_rate must lie in \\(0"),
    (("modules", "top", "params", "cd_k"), 0, "module 'top': cd_k must be an integer >= 1"),
    # valid values that do not fit the saved arrays
    (("params", "n_top"), 33, "module 'top' is 26 x 32 .*the parameters make it 26 x 33"),
    (("params", "hidden_layer_sizes"), [17], "module 'layer0' is 64 x 16 .*make it 64 x 17"),
    (("params", "label_lines"), 2, "module 'top' is 26 x 32 .*make it 36 x 32"),
    (("n_features_in",), 65, "module 'layer0' is 64 x 16 .*make it 65 x 16"),
    (("params", "device"), "pcm", "module 'layer0' has device=YFlash.*device=PCM"),
    (("modules", "layer0", "params", "n_components"), 17,
     "module 'layer0': the saved crossbar's shape \\(65, 17\\) does not match .*\\(65, 18\\)"),
    (("modules", "gen0", "params", "device"), "pcm",
     "module 'gen0': the saved crossbar's device YFlash.* does not match .*PCM"),
    (("modules", "layer0", "n_features_in"), 0, "module 'layer0': n_features_in must be an integer"),
    (("modules", "top", "n_labels"), 9, "module 'top' has 9 labels x 1 lines, the parameters 10"),
    (("progress", "stage"), 0, "modules \\['layer0', 'top', 'gen0'\\] do not match the progress"),
    (("progress", "epoch"), 3, "progress .* is not a point of the training plan"),
    (("seeds",), [1, 2], "seeds must be 16 integers"),
], ids=["n_top-0", "rbm-learning_rate", "finetune_momentum", "finetune", "unknown",
        "layer-learning_rate", "top-cd_k", "n_top", "hidden_layer_sizes", "label_lines",
        "n_features_in", "device", "layer-n_components", "gen-device", "layer-n_features_in",
        "top-n_labels", "progress-stage", "progress-epoch", "seeds"])
def test_edited_hyperparameters_are_rejected(saved, tmp_path, path, value, match):
    """Edits re-signed (the metadata digest recomputed), so that loading gets past the
    checksums: every parameter goes through the estimators' own checks, and the saved
    modules must be the ones the parameters build."""
    from networks.dbn import _meta_digest

    _, file = saved
    arrays, meta = _arrays_and_meta(file)
    _edit(meta, path, value)
    meta["metadata_sha256"] = _meta_digest(meta)
    with pytest.raises(ValueError, match=match):
        MemristiveDBN.load(_write(tmp_path / "meta.npz", arrays, meta))


def test_edited_classes_are_rejected(saved, tmp_path):
    """A re-signed ``classes`` array must be sorted distinct labels, one per label unit."""
    import hashlib

    from networks.dbn import _meta_digest

    _, file = saved
    arrays, meta = _arrays_and_meta(file)
    for classes, match in [(np.arange(9), "module 'top' is 26 x 32 .*the parameters make it 25 x 32"),
                           (np.arange(10)[::-1].copy(), "classes must be at least 2 distinct sorted"),
                           (np.zeros(1, dtype=int), "classes must be at least 2")]:
        arrays["classes"] = classes
        meta["sha256"]["classes"] = hashlib.sha256(classes.tobytes()).hexdigest()
        meta["metadata_sha256"] = _meta_digest(meta)
        with pytest.raises(ValueError, match=match):
            MemristiveDBN.load(_write(tmp_path / "classes.npz", arrays, meta))


def test_foreign_files_are_rejected(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match="not a neuromem DBN archive"):
        MemristiveDBN.load(text)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.arange(4.0))
    with pytest.raises(ValueError, match="no neuromem metadata"):
        MemristiveDBN.load(foreign)
    with pytest.raises(FileNotFoundError):
        MemristiveDBN.load(tmp_path / "missing.npz")
    bad_json = tmp_path / "bad_json.npz"
    np.savez(bad_json, __metadata__=np.frombuffer(b"{not json", dtype=np.uint8))
    with pytest.raises(ValueError, match="JSON"):
        MemristiveDBN.load(bad_json)



@pytest.mark.parametrize("damage, match", [
    ("truncated", "is not a neuromem DBN archive"),
    ("empty", "is not a neuromem DBN archive"),
    ("npy", "is not a neuromem DBN archive \\(not an .npz file\\)"),
    ("crc", "is not a neuromem DBN archive \\(damaged: "),
    ("json-list", "metadata is not a JSON object"),
], ids=["truncated", "empty", "npy", "crc", "json-list"])
def test_truncated_or_corrupted_files_are_rejected(saved, tmp_path, damage, match):
    _, file = saved
    raw = file.read_bytes()
    target = tmp_path / "damaged.npz"
    if damage == "truncated":
        target.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "npy":
        target = tmp_path / "array.npy"
        np.save(target, np.arange(5))
    elif damage == "crc":  # a byte inside a compressed member: the zip CRC fails
        damaged = bytearray(raw)
        damaged[len(raw) // 3] ^= 0xFF
        target.write_bytes(bytes(damaged))
    else:
        np.savez(target, __metadata__=np.frombuffer(b"[1, 2]", dtype=np.uint8))
    with pytest.raises(ValueError, match=match):
        MemristiveDBN.load(target)


# ---------------------------------------------------------------------------- resume

@pytest.mark.parametrize("kw", [
    dict(),
    dict(device="ideal", update="ideal"),
    dict(neuron="mtj", update="proportional", rbm_params={"persistent": True}),
    dict(discriminative_weight=2),
    dict(neuron="mtj", discriminative_weight=2, guess_sweeps=3, paired_noise=True,
         top_anneal_epochs=(1,)),
    dict(device="ideal", update="ideal", discriminative_weight=0.5),
    dict(device="ideal", update="ideal", finetune="discriminative", finetune_decay=0.5,
         finetune_momentum=0.5),
], ids=["yflash-counter", "ideal", "mtj-proportional-pcd", "yflash-hybrid",
        "mtj-hybrid-sweeps-paired", "ideal-hybrid",
        "ideal-discriminative"])
def test_resume_after_save_load_is_bit_identical(small, tmp_path, kw):
    """Plan: layer0 x2, top x2, finetune x2. Interrupt (save, load) after 2 epochs (a
    stage boundary), again after 3 (inside the top stage) and after 5 (inside
    fine-tuning); the result equals an uninterrupted run with the same seed."""
    X, y = small
    ref = _small_dbn(**kw)
    ref.begin(X, y)
    while not ref.done_:
        ref.train_epoch(X, y)

    dbn = _small_dbn(**kw)
    dbn.begin(X, y)
    done = 0
    for cut in (2, 3, 5):
        while done < cut:
            dbn.train_epoch(X, y)
            done += 1
        dbn = MemristiveDBN.load(dbn.save(tmp_path / f"checkpoint{cut}.npz"))
        stage, epoch = {2: (1, 0), 3: (1, 1), 5: (2, 1)}[cut]
        assert dbn.progress_ == {"stage": stage, "epoch": epoch}
    while not dbn.done_:
        dbn.train_epoch(X, y)
        done += 1
    assert done == 6
    _assert_same_state(ref, dbn)
    np.testing.assert_array_equal(ref.predict_proba(X), dbn.predict_proba(X))
    np.testing.assert_array_equal(ref.predict_proba(X, inference="sampling"),
                                  dbn.predict_proba(X, inference="sampling"))
    for a, b in zip(ref._modules(), dbn._modules()):
        for op in ("potentiate", "depress", "counter_increment", "comparator", "mtj_sample"):
            assert a.ledger_.count(op) == b.ledger_.count(op), op


def test_interrupted_run_differs_from_a_different_seed(small):
    """Guards the resume test: the final state does depend on the seed."""
    X, y = small
    a = _small_dbn(n_finetune=0, n_iter=1).fit(X, y)
    b = _small_dbn(n_finetune=0, n_iter=1, random_state=1).fit(X, y)
    assert not np.array_equal(_state(a)["0/state_plus"], _state(b)["0/state_plus"])


def test_train_epoch_after_done_raises(small):
    X, y = small
    dbn = _small_dbn(n_iter=1, n_finetune=0).fit(X, y)
    with pytest.raises(RuntimeError, match="finished"):
        dbn.train_epoch(X, y)


@pytest.mark.parametrize("inference", ["sampling", "freeze"])
def test_inference_between_epochs_leaves_training_unchanged(small, inference):
    X, y = small

    def train(evaluate):
        dbn = _small_dbn(n_finetune=0)
        dbn.begin(X, y)
        while not dbn.done_:
            dbn.train_epoch(X, y)
            if evaluate and dbn.top_ is not None:
                dbn.predict_proba(X[:10], inference=inference)
        return _state(dbn)

    plain, evaluated = train(False), train(True)
    for key in plain:
        np.testing.assert_array_equal(plain[key], evaluated[key], err_msg=key)


def test_label_lines_drive_several_rows_per_label(small, tmp_path):
    X, y = small
    dbn = _small_dbn(label_lines=3, n_finetune=1).fit(X, y)
    top = dbn.top_
    assert top.crossbar_.rows == 16 + 10 * 3 + top.bias_lines
    # the posterior sums each label's rows: recompute it from the raw weights
    w = top._weights_full()
    U = w[16:46, :32].reshape(10, 3, 32).sum(axis=1)
    b = w[16:46, 32:].sum(axis=1).reshape(10, 3).sum(axis=1)
    c = w[46:, :32].sum(axis=0)
    h = dbn._up_mean(X[:20], 1).astype(np.float64)
    scores = np.stack([b[k] + np.logaddexp(0, h @ w[:16, :32] + c + U[k]).sum(1) for k in range(10)], 1)
    expected = np.exp(scores - scores.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(dbn.predict_proba(X[:20]), expected, rtol=1e-6, atol=1e-12)
    # negative-phase labels are one-hot per label, copied onto all its rows
    sampled = top._sample_visible(np.random.default_rng(0).normal(0, 1e-6, (5, top._nv)).astype(np.float32))
    labels = sampled[:, 16:].reshape(5, 10, 3)
    assert np.all(labels.sum(axis=(1, 2)) == 3) and np.all(labels.min(2) == labels.max(2))
    loaded = MemristiveDBN.load(dbn.save(tmp_path / "ll.npz"))
    assert loaded.top_.label_lines == 3
    np.testing.assert_array_equal(loaded.predict_proba(X), dbn.predict_proba(X))
    soft = _small_dbn(label_lines=3, n_iter=5, n_finetune=0, device="ideal", update="ideal",
                      # init_std 0.1: mean-field positive statistics need a larger
                      # random start to break the hidden units' symmetry in 5 short epochs
                      rbm_params={"weight_range": 20, "learning_rate": 0.1,
                                  "init_std": 0.1}).fit(X, y)
    assert soft.score(X, y) > 0.25  # learns its labels (chance: 0.1)
    with pytest.raises(ValueError, match="label_lines"):
        _small_dbn(label_lines=0).fit(X, y)


# ---------------------------------------------------------------------------- hybrid top RBM

def _top_rbm(n_data, n_labels, label_lines, n_hidden, **kw):
    from networks.dbn import _LabelledRBM

    top = _LabelledRBM(n_hidden, random_state=0, **kw)
    top.n_labels, top.label_lines = n_labels, label_lines
    return top


def _labelled_batch(rng, n_data, n_labels, label_lines, labels):
    onehot = np.eye(n_labels, dtype=np.float32)[labels]
    x = (rng.random((len(labels), n_data)) < 0.5).astype(np.float32)
    return np.hstack([x, np.repeat(onehot, label_lines, axis=1)])


def test_discriminative_gradient_matches_finite_differences():
    """The ideal rule's discriminative statistics are d/dW of sum log p(y | x)."""
    n, L, r, nh = 12, 3, 2, 7
    rng = np.random.default_rng(0)
    top = _top_rbm(n, L, r, nh, device="ideal", update="ideal", weight_range=3, init_std=0.5)
    v = _labelled_batch(rng, n, L, r, rng.integers(0, L, 6))
    v[:, :n] = rng.random((6, n))  # probabilities, as the software reference is driven
    top.partial_fit(v)
    w0 = top._weights_full()

    def log_likelihood(w):
        U = w[n:n + L * r, :nh].reshape(L, r, nh).sum(axis=1)
        b = w[n:n + L * r, nh:].sum(axis=1).reshape(L, r).sum(axis=1)
        a = v[:, :n].astype(np.float64) @ w[:n, :nh] + w[n + L * r:, :nh].sum(axis=0)
        scores = np.stack([b[k] + np.logaddexp(0, a + U[k]).sum(axis=1) for k in range(L)], 1)
        y = v[:, n:].reshape(len(v), L, r).sum(axis=2).argmax(axis=1)
        log_z = np.log(np.exp(scores - scores.max(1, keepdims=True)).sum(1)) + scores.max(1)
        return float((scores[np.arange(len(v)), y] - log_z).sum())

    numeric = np.zeros_like(w0)
    eps = 1e-5
    for i, j in np.ndindex(*w0.shape):
        up, down = w0.copy(), w0.copy()
        up[i, j] += eps
        down[i, j] -= eps
        numeric[i, j] = (log_likelihood(up) - log_likelihood(down)) / (2 * eps)
    numeric[n + L * r:, nh:] = 0  # bias row x bias column: no device
    stats = top._discriminative_gradient(v)
    assert np.abs(numeric).max() > 0.1
    np.testing.assert_allclose(stats, numeric, atol=2e-5)


def test_discriminative_pulses_contrast_the_true_label_with_a_wrong_guess(monkeypatch):
    """Counters: rows guessed right take nothing; a wrong guess raises the true label's
    counters, lowers the guessed label's and leaves the other labels alone."""
    n, L, r, nh = 20, 4, 2, 30
    rng = np.random.default_rng(1)
    top = _top_rbm(n, L, r, nh, device="yflash", update="counter", counter_threshold=10**6)
    top.discriminative_weight = 2
    labels = np.array([0, 0, 0, 2, 3, 3])
    v = _labelled_batch(rng, n, L, r, labels)
    top.partial_fit(v)  # sets up the arrays; the huge threshold keeps the devices still
    guess = {"labels": labels.copy()}
    monkeypatch.setattr(top._wta, "sample",
                        lambda currents: np.eye(L, dtype=np.float32)[guess["labels"]])

    before = top._counter.count.copy()
    top._discriminative_pulses(v)
    np.testing.assert_array_equal(top._counter.count, before)  # all guessed right

    guess["labels"] = np.array([1, 1, 0, 2, 3, 3])  # rows 0 and 1: label 0 guessed as 1
    top._discriminative_pulses(v)
    change = (top._counter.count - before)[:, :nh]
    rows = {k: change[n + k * r: n + (k + 1) * r] for k in range(L)}
    assert rows[0].min() >= 0 and rows[0].sum() > 0
    assert rows[1].max() <= 0 and rows[1].sum() < 0
    assert not rows[2].any() and not rows[3].any()
    # only the data bits of the two wrong rows move the data counters
    quiet = (v[:2, :n].sum(axis=0) == 0)
    assert quiet.any() and not change[:n][quiet].any()


def test_discriminative_weight_scales_the_counted_steps(monkeypatch):
    """Weight 2 counts each wrong guess twice: about twice the counter movement."""
    n, L, r, nh = 20, 4, 1, 30
    moved = {}
    for weight in (1, 2):
        rng = np.random.default_rng(2)
        top = _top_rbm(n, L, r, nh, device="yflash", update="counter", counter_threshold=10**6)
        top.discriminative_weight = weight
        v = _labelled_batch(rng, n, L, r, np.zeros(8, dtype=int))
        top.partial_fit(v)
        monkeypatch.setattr(top._wta, "sample",
                            lambda currents: np.eye(L, dtype=np.float32)[np.ones(8, dtype=int)])
        before = top._counter.count[n, :nh].copy()  # label 0's row: only rises
        for _ in range(40):
            top._discriminative_pulses(v)
        moved[weight] = int((top._counter.count[n, :nh] - before).sum())
    assert moved[1] > 1000
    assert 1.8 < moved[2] / moved[1] < 2.2, moved


def test_guess_sweeps_bring_the_guess_to_the_label_posterior():
    """The guess chain (data rows clamped) samples p(y | x) of the top RBM as it mixes;
    one sweep from the label rows off does not."""
    n, L, r, nh, reps = 12, 4, 1, 20, 4000
    rng = np.random.default_rng(0)
    top = _top_rbm(n, L, r, nh, device="ideal", update="counter", weight_range=3,
                   init_std=1.0, counter_threshold=10**6)
    v = _labelled_batch(rng, n, L, r, rng.integers(0, L, 4))
    top.partial_fit(v)
    x = v[:3, :n]
    exact = np.exp(top.label_log_posterior(x))
    batch = top._with_bias(np.hstack([np.repeat(x, reps, axis=0),
                                      np.zeros((3 * reps, L * r), dtype=np.float32)]))
    distance = {}
    for sweeps in (1, 30):
        freq = top.guess_labels(batch, sweeps=sweeps).reshape(3, reps, L).mean(axis=1)
        distance[sweeps] = 0.5 * np.abs(freq - exact).sum(axis=1)  # total variation
    assert distance[30].max() < 0.03, distance
    assert distance[1].max() > 0.06, distance


def test_paired_noise_moves_only_the_units_the_label_swings(monkeypatch):
    """With paired noise the true-label read never fires a unit that the guess read does
    not, where the true label drives the unit harder (noise-free reads), and the two
    reads differ far less often; independent draws break both."""
    n, L, r, nh = 20, 4, 1, 300
    rng = np.random.default_rng(3)
    labels = rng.integers(0, L, 40)
    wrong = (labels + 1) % L
    v = _labelled_batch(rng, n, L, r, labels)
    backwards, differ = {}, {}
    for paired in (True, False):
        top = _top_rbm(n, L, r, nh, device="ideal", update="counter", weight_range=3,
                       init_std=1.0, counter_threshold=10**6)
        top.discriminative_weight, top.paired_noise = 3, paired
        top.partial_fit(v)
        monkeypatch.setattr(top, "guess_labels", lambda v0b: np.eye(L, dtype=np.float32)[wrong])
        seen = {}
        original = top._counter.update_outer

        def spy(v_pos, h_pos, v_neg, h_neg, original=original, seen=seen, **kw):
            seen.update(v_pos=v_pos, h_pos=h_pos, h_neg=h_neg)
            return original(v_pos, h_pos, v_neg, h_neg, **kw)

        monkeypatch.setattr(top._counter, "update_outer", spy)
        top._discriminative_pulses(v)
        U = top._weights_full()[n: n + L, :nh]
        true_rows = np.repeat(labels, 3)
        harder = U[true_rows] >= U[np.repeat(wrong, 3)]          # (rows, hidden)
        h_pos, h_neg = seen["h_pos"][:, :nh], seen["h_neg"][:, :nh]
        np.testing.assert_array_equal(seen["v_pos"][:, n: n + L], np.eye(L)[true_rows])
        backwards[paired] = np.mean(harder & (h_pos < h_neg)) + np.mean(~harder & (h_pos > h_neg))
        differ[paired] = np.mean(h_pos != h_neg)
    assert backwards[True] == 0 and backwards[False] > 0.05, backwards
    assert differ[True] < 0.5 * differ[False], differ


def test_guess_and_noise_options_validate_and_survive_save_and_load(small, tmp_path):
    X, y = small
    dbn = _small_dbn(n_finetune=0, discriminative_weight=2, guess_sweeps=3,
                     paired_noise=True).fit(X, y)
    assert dbn.top_.guess_sweeps == 3 and dbn.top_.paired_noise is True
    loaded = MemristiveDBN.load(dbn.save(tmp_path / "guess.npz"))
    assert (loaded.guess_sweeps, loaded.paired_noise) == (3, True)
    assert (loaded.top_.guess_sweeps, loaded.top_.paired_noise) == (3, True)
    np.testing.assert_array_equal(loaded.predict_proba(X), dbn.predict_proba(X))
    for bad, match in [(dict(guess_sweeps=0), "guess_sweeps"),
                       (dict(guess_sweeps=2.0), "guess_sweeps"),
                       (dict(paired_noise="yes"), "paired_noise")]:
        with pytest.raises(ValueError, match=match):
            _small_dbn(discriminative_weight=2, **bad).fit(X, y)
    for extra in (dict(guess_sweeps=2), dict(paired_noise=True)):
        with pytest.raises(ValueError, match="discriminative_weight > 0"):
            _small_dbn(**extra).fit(X, y)  # no hybrid step: the option would do nothing
        with pytest.raises(ValueError, match="update != 'ideal'"):
            _small_dbn(device="ideal", update="ideal", discriminative_weight=2, **extra).fit(X, y)


def test_top_anneal_epochs_double_the_counter_threshold(small, monkeypatch, tmp_path):
    """The threshold seen by each top epoch: x2 after each listed epoch; fine-tuning keeps
    the last value; a network loaded between epochs picks the schedule up again."""
    from networks.dbn import _LabelledRBM

    X, y = small
    seen = []
    original = _LabelledRBM.partial_fit

    def spy(self, data):
        out = original(self, data)  # the first batch builds the counters
        seen.append(self._counter.threshold)
        return out

    monkeypatch.setattr(_LabelledRBM, "partial_fit", spy)
    dbn = _small_dbn(n_iter=1, n_top_iter=4, n_finetune=1, top_anneal_epochs=(1, 3),
                     top_rbm_params={"counter_threshold": 7})
    X2, y2 = dbn.begin(X, y)
    for _ in range(5):
        dbn.train_epoch(X2, y2)
    assert seen == [7, 14, 14, 28]
    assert dbn.top_.counter_threshold_ == 7  # the parameter itself is left alone
    loaded = MemristiveDBN.load(dbn.save(tmp_path / "top-done.npz"))
    assert loaded.top_._counter.threshold == 7  # rebuilt from the parameter ...
    loaded.train_epoch(X2, y2)  # up-down fine-tuning
    assert loaded.done_ and loaded.top_._counter.threshold == 28  # ... set again
    seen.clear()
    dbn = _small_dbn(n_iter=1, n_top_iter=4, n_finetune=0, top_anneal_epochs=(2,))
    X2, y2 = dbn.begin(X, y)
    for _ in range(3):
        dbn.train_epoch(X2, y2)
    loaded = MemristiveDBN.load(dbn.save(tmp_path / "anneal.npz"))
    assert loaded.top_._counter.threshold == 10  # rebuilt from the parameter ...
    loaded.train_epoch(X2, y2)
    assert seen[-1] == 20  # ... and doubled again by the schedule
    for bad in ((0,), (4,), (3, 2), (2, 2), (1.5,), [True]):
        with pytest.raises(ValueError, match="top_anneal_epochs"):
            _small_dbn(n_iter=1, n_top_iter=4, top_anneal_epochs=bad).fit(X, y)
    with pytest.raises(ValueError, match="no counters"):
        _small_dbn(device="ideal", update="ideal", top_anneal_epochs=(1,)).fit(X, y)


def test_guess_options_change_training_only_when_set(small):
    """Defaults keep the hybrid step as it was; each option changes the trained top."""
    X, y = small
    base = _small_dbn(n_finetune=0, discriminative_weight=2).fit(X, y).top_._weights_full()
    for extra in (dict(guess_sweeps=3), dict(paired_noise=True)):
        top = _small_dbn(n_finetune=0, discriminative_weight=2, **extra).fit(X, y).top_
        assert not np.array_equal(top._weights_full(), base), extra
    again = _small_dbn(n_finetune=0, discriminative_weight=2, guess_sweeps=1,
                       paired_noise=False).fit(X, y).top_._weights_full()
    np.testing.assert_array_equal(again, base)


@pytest.mark.slow  # four DBN fits on the digits per case
@pytest.mark.parametrize("kw, weight, epochs, gain", [
    (dict(device="yflash", update="counter"), 2, 10, 0.01),
    (dict(device="ideal", update="ideal", rbm_params={"learning_rate": 0.1}), 4.0, 5, 0.025),
], ids=["yflash-counter", "ideal"])
def test_hybrid_top_rbm_classifies_better_than_generative_only(digits, kw, weight, epochs, gain):
    Xtr, Xte, ytr, yte = digits
    scores = {w: np.mean([MemristiveDBN((64,), 128, n_iter=epochs, batch_size=10, random_state=seed,
                                        **{**GENERATIVE, "discriminative_weight": w}, **kw)
                          .fit(Xtr, ytr).score(Xte, yte)
                          for seed in (0, 1)])
              for w in (0, weight)}
    assert scores[weight] > scores[0] + gain, scores


def test_discriminative_weight_survives_save_and_load(small, tmp_path):
    X, y = small
    dbn = _small_dbn(n_finetune=0, discriminative_weight=3).fit(X, y)
    loaded = MemristiveDBN.load(dbn.save(tmp_path / "hybrid.npz"))
    assert loaded.discriminative_weight == 3 and loaded.top_.discriminative_weight == 3
    np.testing.assert_array_equal(loaded.predict_proba(X), dbn.predict_proba(X))
    # set_params between epochs reaches the top RBM at its next epoch
    dbn = _small_dbn(n_iter=1, n_top_iter=2, n_finetune=0, discriminative_weight=3)
    X, y = dbn.begin(X, y)
    dbn.train_epoch(X, y)
    dbn.train_epoch(X, y)
    assert dbn.top_.discriminative_weight == 3
    dbn.set_params(discriminative_weight=0)
    dbn.train_epoch(X, y)
    assert dbn.top_.discriminative_weight == 0


def test_top_rbm_params_reach_only_the_top_rbm(small, tmp_path):
    X, y = small
    dbn = _small_dbn(n_finetune=0, rbm_params={"weight_range": 4},
                     top_rbm_params={"counter_threshold": 37}).fit(X, y)
    assert dbn.top_.counter_threshold_ == 37 and dbn.top_.weight_range == 4
    assert dbn.layers_[0].counter_threshold_ == 10  # the batch size (Wang 2022 default)
    loaded = MemristiveDBN.load(dbn.save(tmp_path / "top.npz"))
    assert loaded.top_rbm_params == {"counter_threshold": 37}
    assert loaded.top_.counter_threshold_ == 37


# ---------------------------------------------------------------------------- discriminative fine-tuning

def _freeze_log_likelihood(dbn, X, y):
    """sum log p(y | x) of the freeze pass, in float64 from the weight arrays."""
    h = np.asarray(X, dtype=np.float64)
    for rbm in dbn.layers_:
        w = rbm._weights_full()
        h = 1 / (1 + np.exp(-(h @ w[: rbm._nv, : rbm.n_components]
                              + w[rbm._nv:, : rbm.n_components].sum(axis=0))))
    log_p = dbn.top_.label_log_posterior(h)
    return float(log_p[np.arange(len(y)), np.searchsorted(dbn.classes_, y)].sum())


def test_discriminative_finetune_gradient_matches_finite_differences(small):
    """Every layer's statistics are d/dW of sum log p(y | x) through the freeze pass,
    cell by cell of each crossbar (bias lines included)."""
    X, y = small
    dbn = MemristiveDBN((12, 9), 15, device="ideal", update="ideal", n_iter=1, batch_size=20,
                        random_state=0, rbm_params={"weight_range": 20, "init_std": 0.5},
                        **GENERATIVE)
    dbn.fit(X, y)
    x, labels = X[:8], y[:8]
    # the freeze pass of predict_proba is the network being differentiated
    np.testing.assert_allclose(np.exp(dbn.top_.label_log_posterior(
        dbn._up_mean(x, 2).astype(np.float64))), dbn.predict_proba(x), rtol=1e-5)
    captured = {}
    dbn._step = lambda rbm, stats, n, k, weight_decay=True: captured.setdefault(id(rbm), stats)
    dbn._gradient_batch(x, dbn.top_.expand_labels(dbn._one_hot(labels)))
    rng = np.random.default_rng(0)
    for rbm in [*dbn.layers_, dbn.top_]:
        stats = captured[id(rbm)]
        rows, cols = rbm.crossbar_.shape
        cells = [(int(rng.integers(rbm._nv)), int(rng.integers(rbm.n_components))) for _ in range(4)]
        cells.append((rows - 1, int(rng.integers(rbm.n_components))))  # a bias line
        for i, j in cells:
            eps = 1e-4
            delta = np.zeros((rows, cols))
            delta[i, j] = eps / rbm._g_to_w
            rbm.crossbar_.add_conductance(delta)
            up = _freeze_log_likelihood(dbn, x, labels)
            rbm.crossbar_.add_conductance(-2 * delta)
            down = _freeze_log_likelihood(dbn, x, labels)
            rbm.crossbar_.add_conductance(delta)
            numeric = (up - down) / (2 * eps)
            assert stats[i, j] == pytest.approx(numeric, rel=0.02, abs=1e-4), (type(rbm), i, j)
    assert max(np.abs(s).max() for s in captured.values()) > 0.05


def test_discriminative_finetune_lifts_accuracy(digits):
    Xtr, Xte, ytr, yte = digits
    kw = dict(device="ideal", update="ideal", n_iter=5, batch_size=10,
              rbm_params={"learning_rate": 0.1}, finetune="discriminative",
              finetune_learning_rate=0.5, finetune_decay=0.7)
    scores = {n: np.mean([MemristiveDBN((64,), 128, n_finetune=n, random_state=seed, **GENERATIVE,
                                        **kw)
                          .fit(Xtr, ytr).score(Xte, yte) for seed in (0, 1)])
              for n in (0, 5)}
    assert scores[5] > scores[0] + 0.03, scores


def test_discriminative_finetune_step_decays_and_skips_weight_decay(small, monkeypatch):
    """The float step of fine-tuning epoch e is rate * decay**e with the fine-tuning
    momentum (from rest) and no weight decay; the RBMs' own settings are restored."""
    X, y = small
    dbn = _small_dbn(device="ideal", update="ideal", n_iter=1, n_finetune=3,
                     finetune="discriminative", finetune_learning_rate=0.2,
                     finetune_momentum=0.3, finetune_decay=0.5)  # RBMs' own: 0.5
    X, y = dbn.begin(X, y)
    dbn.train_epoch(X, y)
    dbn.train_epoch(X, y)
    assert np.abs(dbn.top_._velocity).max() > 0  # left over from CD
    seen = []
    apply = type(dbn.top_).apply_statistics

    def spy(rbm, stats, n_samples, n_increments=0, **step):
        if not seen:
            assert not rbm._velocity.any()  # fine-tuning starts from rest
        seen.append((dbn.progress_["epoch"], step["learning_rate"], step["momentum"],
                     step["weight_decay"]))
        return apply(rbm, stats, n_samples, n_increments, **step)

    monkeypatch.setattr(type(dbn.top_), "apply_statistics", spy)
    while not dbn.done_:
        dbn.train_epoch(X, y)
    assert {e: round(rate, 12) for e, rate, _, _ in seen} == {0: 0.2, 1: 0.1, 2: 0.05}
    assert all(m == 0.3 and wd == 0 for _, _, m, wd in seen)
    assert dbn.top_.learning_rate == dbn.layers_[0].learning_rate == MemristiveDBN()._rbm(
        1, 0, 0).learning_rate
    assert dbn.top_.weight_decay == 2e-4 and dbn.top_.momentum == 0.5


def test_discriminative_finetune_is_software_only(small):
    X, y = small
    with pytest.raises(ValueError, match="finetune='discriminative' needs update='ideal'"):
        _small_dbn(finetune="discriminative").fit(X, y)
