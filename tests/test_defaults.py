"""Estimators with no arguments learn: scikit-learn's digits, 80/20 split, binarised.

The floors are the accuracies measured with these exact calls (README, "Defaults that
learn"); the test split is the held-out 20 % (split seed 0), never used for tuning.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_limits

from networks import MemristiveDBN, MemristiveRBM
from neuromem.data import load_digits_binary, train_validation_split

#: the 90 % aim on the held-out 20 % (the README lists what the defaults measured)
DBN_FLOOR = 0.90


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_binary()
    return train_validation_split(X, y, 0.2, 0)  # X_train, X_test, y_train, y_test


def test_default_rbm_features_beat_bernoulli_rbm(digits):
    X_train, X_test, y_train, y_test = digits
    with threadpool_limits(1):
        ours = make_pipeline(MemristiveRBM(random_state=0), LogisticRegression(max_iter=2000))
        theirs = make_pipeline(BernoulliRBM(random_state=0), LogisticRegression(max_iter=2000))
        ours_acc = ours.fit(X_train, y_train).score(X_test, y_test)
        theirs_acc = theirs.fit(X_train, y_train).score(X_test, y_test)
    assert ours[0].crossbar_.device.name == "yflash"  # the same default device as the DBN
    assert ours_acc >= 335 / 360, ours_acc      # measured 0.9306 (335 of 360)
    assert ours_acc >= theirs_acc, (ours_acc, theirs_acc)  # measured 0.9028


@pytest.mark.parametrize("n_samples, sizes, n_top, batch, n_iter, n_top_iter, anneal", [
    (1437, (200,), 800, 14, 20, 100, (62, 80, 92)),         # the digits' 80 % split
    (50000, (500, 500), 2000, 100, 5, 40, (25, 32, 37)),    # MNIST's training split: the headline
    (60000, (500, 500), 2000, 100, 5, 34, (21, 27, 31)),    # all of MNIST's training set
    (20000, (200, 200), 800, 100, 13, 100, (62, 80, 92)),   # two layers from 10 000 samples
])
def test_auto_network_scales_with_the_data(n_samples, sizes, n_top, batch, n_iter, n_top_iter, anneal):
    """``"auto"`` sizes and epochs resolve from the number of training samples; on
    MNIST's 50 000-image split exactly to the Y-Flash headline recipe's network."""
    X = np.random.default_rng(0).integers(0, 2, (n_samples, 3)).astype(np.float32)
    dbn = MemristiveDBN()
    dbn.begin(X, np.arange(n_samples) % 10)
    assert (dbn.hidden_layer_sizes_, dbn.n_top_, dbn.batch_size_) == (sizes, n_top, batch)
    assert (dbn.n_iter_, dbn.n_top_iter_, dbn.top_anneal_epochs_) == (n_iter, n_top_iter, anneal)
    assert [name for name, _ in dbn.stages_] == [f"layer{i}" for i in range(len(sizes))] + ["top"]
    if n_samples == 50000:
        headline = MemristiveDBN.from_recipe("yflash-headline")
        assert (tuple(headline.hidden_layer_sizes), headline.n_top) == (sizes, n_top)
        assert (headline.n_iter, headline.n_top_iter) == (n_iter, n_top_iter)
        assert tuple(headline.top_anneal_epochs) == anneal
    fixed = MemristiveDBN((30, 20), 50)
    fixed.begin(X[:200], np.arange(200) % 10)
    assert (fixed.hidden_layer_sizes_, fixed.n_top_) == ((30, 20), 50)  # given sizes stay


@pytest.mark.slow
def test_default_dbn_learns_digits(digits, tmp_path):
    """``MemristiveDBN(random_state=0)``: 64-200-(200+10)-800 on Y-Flash with the
    automatic settings (batch 14, 20 lower epochs, 100 hybrid top epochs); the same
    network as ``neuromem dbn --final``. Saved for prediction, it loads with its sizes."""
    X_train, X_test, y_train, y_test = digits
    with threadpool_limits(1):
        dbn = MemristiveDBN(random_state=0).fit(X_train.astype(np.float32), y_train)
        accuracy = dbn.score(X_test.astype(np.float32), y_test)
    assert (dbn.hidden_layer_sizes_, dbn.n_top_) == ((200,), 800)
    assert (dbn.batch_size_, dbn.n_iter_, dbn.n_top_iter_) == (14, 20, 100)
    assert dbn.top_.crossbar_.scheme == "differential" and dbn.guess_sweeps_ == 5
    assert accuracy >= DBN_FLOOR, accuracy
    loaded = MemristiveDBN.load(dbn.save(tmp_path / "m.npz", training_state=False))
    assert (loaded.hidden_layer_sizes, loaded.hidden_layer_sizes_, loaded.n_top_) == ("auto", (200,), 800)
    np.testing.assert_array_equal(loaded.predict_proba(X_test[:50].astype(np.float32)),
                                  dbn.predict_proba(X_test[:50].astype(np.float32)))
