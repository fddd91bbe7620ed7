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

#: measured: 0.8972 (323 of 360), one image short of the 0.90 aim
DBN_FLOOR = 323 / 360


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


@pytest.mark.slow
def test_default_dbn_learns_digits(digits):
    """``MemristiveDBN(random_state=0)``: 64-500-500-(500+10)-2000 on Y-Flash with the
    automatic settings (batch 14, 20 epochs per lower layer, 100 hybrid top epochs).
    Also ``neuromem dbn --final`` (the same network through the command line)."""
    X_train, X_test, y_train, y_test = digits
    with threadpool_limits(1):
        dbn = MemristiveDBN(random_state=0).fit(X_train.astype(np.float32), y_train)
        accuracy = dbn.score(X_test.astype(np.float32), y_test)
    assert (dbn.batch_size_, dbn.n_iter_, dbn.n_top_iter_) == (14, 20, 100)
    assert dbn.top_.crossbar_.scheme == "differential" and dbn.guess_sweeps_ == 5
    assert accuracy >= DBN_FLOOR, accuracy
