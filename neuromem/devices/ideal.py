"""Ideal linear device: the software reference.

Every pulse moves the conductance by the same step, clipped to hard bounds. With the
default zero spreads it is deterministic, so an experiment on it measures the
algorithm, not the hardware. Optional spreads exist to isolate one non-ideality at a
time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit

from .base import Device

# state rows
G, STEP = 0, 1


@njit(cache=True)
def _pulse(state, cells, counts, width, seed, g_out, g_min, g_max, c2c):
    """``counts[m]`` pulses into cell ``cells[m]`` (the listed cells only)."""
    np.random.seed(seed)
    g = state[G]
    step = state[STEP]
    for m in range(cells.size):
        k = cells[m]
        n = counts[m]
        if n == 0:
            continue
        sign = 1.0 if n > 0 else -1.0
        value = g[k]
        for _ in range(abs(n)):
            dg = step[k] * width
            if c2c > 0.0:
                dg *= 1.0 + c2c * np.random.standard_normal()
            value += sign * dg
            if value > g_max:
                value = g_max
            elif value < g_min:
                value = g_min
        g[k] = value
        g_out[k] = value


@njit(cache=True)
def _add(state, delta, g_out, g_min, g_max):
    g = state[G]
    for k in range(delta.size):
        value = g[k] + delta[k]
        if value > g_max:
            value = g_max
        elif value < g_min:
            value = g_min
        g[k] = value
        g_out[k] = value


@dataclass(frozen=True)
class Ideal(Device):
    """Linear, hard-bounded, noise-free by default (the software reference)."""

    g_min_s: float = 0.0
    g_max_s: float = 1e-6
    step_s: float = 1e-9
    d2d_step_rel: float = 0.0
    c2c_step_rel: float = 0.0
    g_init_s: float = 5e-7

    name: ClassVar[str] = "ideal"
    state_names: ClassVar[tuple[str, ...]] = ("g_s", "step_s")
    source: ClassVar[str] = "assumed: linear reference with 1000 levels between the bounds"
    analog_update: ClassVar[bool] = True

    def validate(self) -> None:
        self._check_nonnegative("g_min_s", "d2d_step_rel", "c2c_step_rel")
        self._check_positive("g_max_s", "step_s")
        self._check_order("g_min_s", "g_max_s")
        if not self.g_min_s <= self.g_init_s <= self.g_max_s:
            raise ValueError(
                f"Ideal.g_init_s ({self.g_init_s!r}) must lie between g_min_s and g_max_s"
            )

    def init_state(self, n_cells, rng):
        state = np.empty((2, n_cells))
        state[G] = self.g_init_s
        step = self.step_s * (1.0 + self.d2d_step_rel * rng.standard_normal(n_cells))
        state[STEP] = np.maximum(step, 0.0)
        return state

    def apply_pulses_at(self, state, cells, counts, width, seed, g_out, time_s=0.0):
        _pulse(state, cells, counts, float(width), seed, g_out, self.g_min_s, self.g_max_s,
               self.c2c_step_rel)

    def add_conductance(self, state, delta, g_out):
        """Analogue update (software reference only): ``G += delta`` within bounds."""
        _add(state, delta, g_out, self.g_min_s, self.g_max_s)

    def conductance(self, state, time_s=0.0):
        return state[G].copy()
