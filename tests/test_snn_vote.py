"""The readouts of the Diehl & Cook network: class rates, the mean vote, the likelihood vote."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import poisson

from networks.stdp import VOTES, assign_labels, class_rates, predict, predict_likelihood, vote


def _broadly_tuned(n_images, seed):
    """20 neurons, each firing for two neighbouring classes (rate 4 and 3): the one-label
    view of a neuron loses the second class, the likelihood keeps it."""
    rates = np.full((10, 20), 0.05)
    for n in range(20):
        rates[n % 10, n] = 4.0
        rates[(n + 1 + n // 10) % 10, n] = 3.0
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n_images)
    return rates, rng.poisson(rates[labels]), labels


def test_class_rates_are_mean_responses_per_class():
    counts = np.array([[2, 0], [4, 1], [0, 3]])
    rates = class_rates(counts, np.array([1, 1, 2]), n_classes=3)
    assert rates.tolist() == [[0, 0], [3, 0.5], [0, 3]]
    assert assign_labels(counts, np.array([1, 1, 2]), n_classes=3).tolist() == [1, 2]
    with pytest.raises(ValueError, match="counts must be"):
        class_rates(counts, np.array([1, 2]))


def test_likelihood_vote_is_the_poisson_maximum_likelihood_class():
    rates, counts, _ = _broadly_tuned(200, seed=1)
    floor = 1e-3
    loglik = poisson.logpmf(counts[:, None, :], rates[None] + floor).sum(axis=2)
    assert predict_likelihood(counts, rates, rate_floor=floor).tolist() == loglik.argmax(axis=1).tolist()


def test_likelihood_vote_uses_what_the_mean_vote_throws_away():
    rates, counts, labels = _broadly_tuned(3000, seed=2)
    labelled = class_rates(counts[:2000], labels[:2000])  # rates measured, not given
    test_counts, test_labels = counts[2000:], labels[2000:]
    acc = {m: np.mean(vote(test_counts, labelled, m) == test_labels) for m in VOTES}
    assert acc["likelihood"] > acc["mean"] + 0.05, acc
    assert acc["likelihood"] > 0.9, acc
    # the mean vote is the paper's: neurons labelled by their best class
    assert vote(test_counts, labelled, "mean").tolist() == predict(
        test_counts, assign_labels(counts[:2000], labels[:2000])).tolist()


@pytest.mark.parametrize("call, message", [
    (lambda: vote(np.ones((2, 3)), np.ones((10, 3)), "majority"), "vote must be one of"),
    (lambda: predict_likelihood(np.ones((2, 3)), np.ones((10, 4))), "share"),
    (lambda: predict_likelihood(np.ones((2, 3)), np.ones((10, 3)), rate_floor=0.0), "rate_floor"),
])
def test_bad_input_names_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()
