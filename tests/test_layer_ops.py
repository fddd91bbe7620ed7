"""The DBN drives its RBMs through their public layer operations only, and training is
bit for bit what it was when it reached into their private members (fingerprints in
tests/data/dbn_fingerprints.json, written by the code before that change, commit 62e3368).

Device states reached by counted pulses, pulse counts and sampled predictions are the
same on every machine, so they are compared by digest. The mean-field probabilities, and
the conductances of the case trained by float updates, are sums of floats whose last bits
depend on the CPU's BLAS kernels, so they are stored as numbers and compared to a
tolerance far below any change a refactoring would make (the stored numbers were written
by the code of commit 62e3368; the current code reproduces them bit for bit on the
machine that wrote them)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from networks import MemristiveDBN
from neuromem.data import load_digits_binary

FINGERPRINTS = Path(__file__).parent / "data" / "dbn_fingerprints.json"
CASES = {
    "counter-updown": dict(n_finetune=1),
    "counter-hybrid": dict(discriminative_weight=2, guess_sweeps=3, paired_noise=True,
                           n_top_iter=3, top_anneal_epochs=(1,),
                           top_rbm_params={"scheme": "differential"}),
    "mtj-proportional": dict(neuron="mtj", update="proportional", discriminative_weight=1),
    "ideal-discriminative": dict(device="ideal", update="ideal", discriminative_weight=2.0,
                                 finetune="discriminative", n_finetune=2,
                                 finetune_learning_rate=0.3, finetune_momentum=0.5,
                                 finetune_decay=0.8, rbm_params={"weight_range": 20}),
}
BASE = dict(hidden_layer_sizes=(12, 10), n_top=16, n_iter=2, n_top_iter=2, batch_size=20,
            discriminative_weight=0.0, guess_sweeps=1, paired_noise=False,
            top_anneal_epochs=(), top_rbm_params=None, random_state=0)
# Trained by float updates: their conductances are sums of floats, kept as numbers.
FLOAT_STATE = {"ideal-discriminative"}


def _digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def fingerprint(case: str) -> dict:
    X, y = load_digits_binary()
    X = X.astype(np.float32)
    with threadpool_limits(1):
        dbn = MemristiveDBN(**{**BASE, **CASES[case]}).fit(X[:300], y[:300])
        modules = [*dbn.layers_, dbn.top_, *dbn.generative_]
        state = {"conductance": [m.crossbar_.conductance for m in modules],
                 "reference": [m.crossbar_.reference_conductance for m in modules]}
        if case not in FLOAT_STATE:
            state = {key: [_digest(a) for a in arrays] for key, arrays in state.items()}
        return {
            **state,
            "freeze": [dbn.predict_proba(X[300:400])],
            "sampling": _digest(dbn.predict_proba(X[300:400], inference="sampling")),
            "accuracy": float(dbn.score(X[300:400], y[300:400])),
            "pulses": int(sum(m.crossbar_.pulse_count.sum() for m in modules)),
        }


def _numeric_keys(case: str) -> list[str]:
    return ["freeze", *(["conductance", "reference"] if case in FLOAT_STATE else [])]


@pytest.mark.parametrize("case", list(CASES))
def test_training_is_bit_identical_to_before(case):
    expected = json.loads(FINGERPRINTS.read_text())[case]
    found = fingerprint(case)
    for key in _numeric_keys(case):
        found_arrays, expected_arrays = found.pop(key), expected.pop(key)
        assert len(found_arrays) == len(expected_arrays), key
        for array, reference in zip(found_arrays, expected_arrays):
            reference = np.asarray(reference)
            np.testing.assert_allclose(array, reference, rtol=1e-7,
                                       atol=1e-9 * np.abs(reference).max(), err_msg=key)
    assert found == expected


if __name__ == "__main__":  # writes the fingerprints (run once, before a refactoring)
    prints = {c: fingerprint(c) for c in CASES}
    for c, p in prints.items():
        for key in _numeric_keys(c):
            p[key] = [a.tolist() for a in p[key]]
    FINGERPRINTS.write_text(json.dumps(prints, indent=1))


def test_the_dbn_uses_only_public_members_of_its_rbms():
    """No ``rbm._something`` in MemristiveDBN: the layer operations are the contract."""
    import ast
    import inspect

    import networks.dbn as module

    tree = ast.parse(inspect.getsource(module.MemristiveDBN))
    private = sorted({f"{ast.unparse(node.value)}.{node.attr}" for node in ast.walk(tree)
                      if isinstance(node, ast.Attribute) and node.attr.startswith("_")
                      and not node.attr.startswith("__")
                      and ast.unparse(node.value) not in ("self", "cls", "dbn")})
    assert private == [], private


def test_layer_operations_are_the_hardware_steps():
    from networks import MemristiveRBM

    X, _ = load_digits_binary()
    rbm = MemristiveRBM(8, n_iter=1, random_state=0).fit(X[:100])
    h = rbm.up(X[:5])
    assert h.shape == (5, 8) and set(np.unique(h)) <= {0.0, 1.0}
    v = rbm.down(h)
    assert v.shape == (5, 64) and set(np.unique(v)) <= {0.0, 1.0}
    np.testing.assert_allclose(rbm.up_mean(X[:5]), rbm.transform(X[:5]), rtol=1e-6)
    w = rbm.weights()
    np.testing.assert_array_equal(w[:64, :8].T, rbm.components_)
    before = rbm.crossbar_.pulse_count.sum()
    stats = np.zeros(rbm.crossbar_.shape, dtype=np.float32)
    stats[:64, :8] = 10 * rbm.counter_threshold_  # far past the threshold: every cell fires
    rbm.apply_statistics(stats, 5, int(stats.sum()))
    assert rbm.crossbar_.pulse_count.sum() == before + 64 * 8
    rbm.set_counter_threshold(1000)
    assert rbm._counter.threshold == 1000
