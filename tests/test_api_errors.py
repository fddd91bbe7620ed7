"""Errors a user meets first: what scikit-learn and Python would raise, in their words."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from networks import MemristiveDBN, MemristiveRBM
from neuromem.data import load_digits_binary


def test_predict_before_fit_raises_not_fitted():
    X = np.zeros((2, 64))
    for method in ("predict", "predict_proba", "score"):
        with pytest.raises(NotFittedError):
            args = (X, np.zeros(2)) if method == "score" else (X,)
            getattr(MemristiveDBN(), method)(*args)
    with pytest.raises(NotFittedError):
        MemristiveRBM().transform(X)


def test_load_of_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        MemristiveDBN.load(tmp_path / "missing.npz")


def test_load_of_a_text_file_says_what_it_is(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello\n")
    with pytest.raises(ValueError, match="not a neuromem DBN archive") as info:
        MemristiveDBN.load(path)
    assert "pickle" not in str(info.value)


def test_interrupted_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    X, y = load_digits_binary()
    dbn = MemristiveDBN((8,), 8, n_iter=1, batch_size=50, random_state=0).fit(X[:200], y[:200])

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dbn.save(tmp_path / "model.npz")
    assert list(tmp_path.iterdir()) == []


def test_a_model_saved_for_prediction_is_small_and_predicts_the_same(tmp_path):
    X, y = load_digits_binary()
    dbn = MemristiveDBN((32,), 48, n_iter=2, batch_size=20, n_finetune=1, random_state=0)
    dbn.fit(X[:400], y[:400])
    full = dbn.save(tmp_path / "full.npz")
    slim = dbn.save(tmp_path / "slim.npz", training_state=False)
    assert slim.stat().st_size < 0.5 * full.stat().st_size
    model = MemristiveDBN.load(slim)
    for mode in ("freeze", "sampling"):
        np.testing.assert_array_equal(model.predict_proba(X[400:600], inference=mode),
                                      dbn.predict_proba(X[400:600], inference=mode))
    with pytest.raises(RuntimeError, match="training state"):
        model.train_epoch(X[:400], y[:400])
    with pytest.raises(RuntimeError, match="read but not pulsed"):
        model.top_.crossbar_.apply_pulses(np.ones(model.top_.crossbar_.shape, dtype=np.int64))
    model.fit(X[:100], y[:100])  # a fresh fit starts over and trains again
