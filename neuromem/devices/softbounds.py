"""Soft-bounds device: the common pulsed-device abstraction of RRAM-like synapses.

Each potentiating pulse moves the conductance a fixed fraction of the way to the
upper bound, each depressing pulse a fixed fraction of the way to the lower bound::

    up:    dG = +alpha_up   * (G_max - G) * (1 + c2c * xi)
    down:  dG = -alpha_down * (G - G_min) * (1 + c2c * xi),   xi ~ N(0, 1)

so steps shrink as the cell approaches the bound it is driven towards, and the
conductance saturates softly instead of clipping. This is the soft-bounds model of
IBM's aihwkit (``SoftBoundsDevice``; Gokmen & Vlasov, Front. Neurosci. 10, 333, 2016
for the pulsed-update abstraction), written here directly in conductance.

Device-to-device spread: every cell draws its own ``alpha_up``, ``alpha_down`` and its
own bounds at fabrication (stored as state rows). Cycle-to-cycle spread: every step is
scaled by ``1 + c2c_step_rel * xi``; the factor is clipped at 0, so a potentiating
pulse never lowers the conductance (and a depressing one never raises it), and the
result is kept inside the cell's own bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit

from .base import Device

# state rows
G, ALPHA_UP, ALPHA_DOWN, G_LO, G_HI = 0, 1, 2, 3, 4


@njit(cache=True)
def _pulse(state, cells, counts, width, seed, g_out, c2c):
    """``counts[m]`` pulses into cell ``cells[m]`` (the listed cells only)."""
    np.random.seed(seed)
    g = state[G]
    a_up = state[ALPHA_UP]
    a_down = state[ALPHA_DOWN]
    lo = state[G_LO]
    hi = state[G_HI]
    for m in range(cells.size):
        k = cells[m]
        n = counts[m]
        if n == 0:
            continue
        value = g[k]
        if n > 0:
            for _ in range(n):
                frac = a_up[k] * width
                if c2c > 0.0:
                    frac *= max(1.0 + c2c * np.random.standard_normal(), 0.0)
                if frac > 1.0:
                    frac = 1.0
                value += frac * (hi[k] - value)
        else:
            for _ in range(-n):
                frac = a_down[k] * width
                if c2c > 0.0:
                    frac *= max(1.0 + c2c * np.random.standard_normal(), 0.0)
                if frac > 1.0:
                    frac = 1.0
                value -= frac * (value - lo[k])
        if value > hi[k]:
            value = hi[k]
        elif value < lo[k]:
            value = lo[k]
        g[k] = value
        g_out[k] = value


@dataclass(frozen=True)
class SoftBounds(Device):
    """Soft-bounded pulsed device (RRAM-like), aihwkit's SoftBounds family.

    Parameters (all defaults assumed, see ``source``):

    g_min_s, g_max_s
        Nominal lower / upper conductance bound (siemens).
    alpha_up, alpha_down
        Fraction of the remaining distance to the bound covered by one nominal
        potentiating / depressing pulse (0 < alpha <= 1). ``width`` scales it.
    d2d_alpha_rel
        Relative device-to-device spread (std) of ``alpha_up`` and ``alpha_down``.
    d2d_bounds_rel
        Relative device-to-device spread (std) of each bound.
    c2c_step_rel
        Relative cycle-to-cycle spread (std) of every step.
    g_init_frac
        Where a fresh cell starts between its own bounds (0 = G_min, 1 = G_max).
    pulse_width_s
        Duration of one nominal pulse.
    """

    g_min_s: float = 1e-6
    g_max_s: float = 100e-6
    alpha_up: float = 0.02
    alpha_down: float = 0.02
    d2d_alpha_rel: float = 0.3
    d2d_bounds_rel: float = 0.1
    c2c_step_rel: float = 0.3
    g_init_frac: float = 0.5
    pulse_width_s: float = 100e-9

    name: ClassVar[str] = "softbounds"
    state_names: ClassVar[tuple[str, ...]] = (
        "g_s", "alpha_up", "alpha_down", "g_min_s", "g_max_s")
    source: ClassVar[str] = (
        "model: soft bounds, dG = alpha*(G_max-G) up, -alpha*(G-G_min) down (aihwkit "
        "SoftBoundsDevice; Gokmen & Vlasov, Front. Neurosci. 10, 333, 2016). Values "
        "assumed: 1-100 uS window, alpha = 0.02 (about 100 steps across the window at "
        "mid-range), d2d/c2c spreads 0.3 of the order of aihwkit's PulsedDevice "
        "defaults (dw_min_dtod = dw_min_std = 0.3), 10 % bound spread, 100 ns / 1 pJ "
        "pulses")

    def validate(self) -> None:
        self._check_nonnegative("g_min_s", "d2d_alpha_rel", "d2d_bounds_rel",
                                "c2c_step_rel")
        self._check_positive("g_max_s", "alpha_up", "alpha_down", "pulse_width_s")
        self._check_order("g_min_s", "g_max_s")
        for n in ("alpha_up", "alpha_down", "g_init_frac"):
            self._check_fraction(n)

    # ------------------------------------------------------------------ physics
    def init_state(self, n_cells, rng):
        state = np.empty((len(self.state_names), n_cells))
        for row, mean in ((ALPHA_UP, self.alpha_up), (ALPHA_DOWN, self.alpha_down)):
            a = mean * (1.0 + self.d2d_alpha_rel * rng.standard_normal(n_cells))
            state[row] = np.clip(a, 0.0, 1.0)
        lo = self.g_min_s * (1.0 + self.d2d_bounds_rel * rng.standard_normal(n_cells))
        hi = self.g_max_s * (1.0 + self.d2d_bounds_rel * rng.standard_normal(n_cells))
        lo = np.maximum(lo, 0.0)
        state[G_LO] = lo
        state[G_HI] = np.maximum(hi, lo)
        state[G] = lo + self.g_init_frac * (state[G_HI] - lo)
        return state

    def apply_pulses_at(self, state, cells, counts, width, seed, g_out, time_s=0.0):
        _pulse(state, cells, counts, float(width), seed, g_out, self.c2c_step_rel)

    def conductance(self, state, time_s=0.0):
        return state[G].copy()

    def cell_bounds(self, state):
        """Per-cell ``(G_min, G_max)`` drawn at fabrication (siemens)."""
        return state[G_LO].copy(), state[G_HI].copy()

    def pulse_duration_s(self, sign):
        return self.pulse_width_s
