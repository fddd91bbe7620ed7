"""One table of parameter limits per estimator, checked by one function.

The pattern of scikit-learn's ``_parameter_constraints``: an estimator class maps each
constructor parameter to the list of what it accepts; :func:`validate_params` checks
every entry and raises a ``ValueError`` that names the parameter, what it accepts and
what it got. Rules that tie several parameters together stay in the estimator's code.

Entries of a list: a literal (a string such as ``"auto"``, ``None``, ``True``) that the
value may equal, or one of the constraint objects below. ``"no_validation"`` in place of
the list: the estimator checks that parameter itself (a device by name, a seed).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

__all__ = ["Integer", "Number", "OneOf", "validate_params"]


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


class Integer:
    """A whole number ``>= low`` (bools are not numbers here)."""

    def __init__(self, low: int):
        self.low = low

    def problem(self, value):
        if not _is_int(value) or value < self.low:
            return f"must be an integer >= {self.low}"
        return None


class Number:
    """A finite real number in ``[low, high]``; ``low_open`` / ``high_open`` exclude the
    ends."""

    def __init__(self, low=-math.inf, high=math.inf, *, low_open=False, high_open=False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def problem(self, value):
        if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
            return "must be a finite number"
        if (value < self.low or value > self.high or (self.low_open and value == self.low)
                or (self.high_open and value == self.high)):
            return (f"must lie in {'(' if self.low_open else '['}{self.low}, {self.high}"
                    f"{')' if self.high_open else ']'}")
        return None


class OneOf:
    """One of a fixed set of values (names of modes, neurons, ...)."""

    def __init__(self, *options):
        self.options = options

    def problem(self, value):
        if isinstance(value, str) and value in self.options:
            return None
        return f"must be one of {self.options}"


def _literal_matches(allowed, value) -> bool:
    if allowed is None:
        return value is None
    if isinstance(allowed, bool):
        return isinstance(value, (bool, np.bool_)) and bool(value) == allowed
    return isinstance(value, str) and value == allowed


def validate_params(estimator, names=None):
    """Check ``estimator``'s parameters against ``type(estimator)._parameter_constraints``
    (only ``names`` when given); raises ``ValueError`` ``"<name> must ..., got <value>"``
    (with ``"or 'auto'"``-style alternatives where literals are allowed)."""
    table = type(estimator)._parameter_constraints
    for name in (table if names is None else names):
        accepted = table[name]
        if accepted == "no_validation":
            continue
        value = getattr(estimator, name)
        literals = [a for a in accepted if a is None or isinstance(a, (str, bool))]
        if any(_literal_matches(a, value) for a in literals):
            continue
        problems = [c.problem(value) for c in accepted if c not in literals]
        if problems and not all(problems):
            continue
        text = problems[0] if problems else "must be " + " or ".join(map(repr, literals))
        if problems and literals:
            text += " or " + " or ".join(map(repr, literals))
        raise ValueError(f"{name} {text}, got {value!r}")
