"""One table of parameter limits per estimator (scikit-learn's ``_parameter_constraints``
pattern): every parameter listed, every limit enforced with a message naming it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from networks import MemristiveDBN, MemristiveRBM
from networks._constraints import Integer, Number, OneOf, validate_params


def _bad_values(accepted):
    """Values each entry of a constraint list rejects (and no other entry accepts)."""
    bad = [object(), "not-an-option"]
    for c in accepted:
        if isinstance(c, Integer):
            bad += [c.low - 1, 1.5, True]
        elif isinstance(c, Number):
            bad += [math.nan, math.inf]
            if math.isfinite(c.low):
                bad.append(c.low - 1.0)
                if c.low_open:
                    bad.append(c.low)
            if math.isfinite(c.high):
                bad.append(c.high + 1.0)
    return bad


@pytest.mark.parametrize("cls", [MemristiveRBM, MemristiveDBN])
def test_every_parameter_has_an_entry(cls):
    assert set(cls._parameter_constraints) == set(cls().get_params())


@pytest.mark.parametrize("cls, name", [(cls, name) for cls in (MemristiveRBM, MemristiveDBN)
                                       for name, v in sorted(cls._parameter_constraints.items())
                                       if v != "no_validation"])
def test_estimators_refuse_what_their_tables_refuse(cls, name):
    accepted = cls._parameter_constraints[name]
    cls()._check_params()  # the defaults pass
    for value in _bad_values(accepted):
        with pytest.raises(ValueError, match=rf"^{name} must .*, got "):
            cls(**{name: value})._check_params()


@pytest.mark.parametrize("kw, message", [
    (dict(batch_size="x"), "batch_size must be an integer >= 1 or 'auto', got 'x'"),
    (dict(reference_level=2), r"reference_level must lie in \[0, 1\] or 'auto', got 2"),
    (dict(counter_threshold=0), "counter_threshold must be an integer >= 1 or None, got 0"),
    (dict(learning_rate=0.0), r"learning_rate must lie in \(0, inf\], got 0.0"),
    (dict(scheme="single"), r"scheme must be one of \('reference', 'differential'\), got 'single'"),
    (dict(persistent=1), "persistent must be True or False, got 1"),
])
def test_rbm_messages_name_the_parameter_and_what_it_takes(kw, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        MemristiveRBM(**kw)._check_params()


def test_literals_and_numpy_scalars():
    class Toy:
        _parameter_constraints = {"a": [Integer(0), None], "b": [True, False],
                                  "c": [Number(0, 1, high_open=True), "auto"], "d": [OneOf("x", "y")],
                                  "e": "no_validation"}
        a, b, c, d, e = np.int64(3), np.bool_(False), "auto", "y", object()

    toy = Toy()
    validate_params(toy)
    toy.a = None
    toy.c = np.float32(0.5)
    validate_params(toy)
    toy.c = 1.0
    with pytest.raises(ValueError, match=r"^c must lie in \[0, 1\) or 'auto', got 1.0$"):
        validate_params(toy)
    toy.c, toy.b = 0.0, "yes"
    with pytest.raises(ValueError, match="^b must be True or False, got 'yes'$"):
        validate_params(toy)
    validate_params(toy, names=["a", "c"])  # only the names given
