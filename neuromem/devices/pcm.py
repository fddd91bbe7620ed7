"""Phase-change memory (PCM): gradual SET, abrupt RESET, power-law conductance drift.

* SET (potentiation, positive count): partial crystallisation; each pulse adds a
  saturating increment ``dG = alpha_set * (G_max - G) * (1 + c2c_set_rel * xi)``
  (factor clipped at 0, ``width`` scales ``alpha_set``), so many pulses are needed to
  reach G_max (the accumulative behaviour used for PCM synapses by Sebastian et al.
  and Boybat et al., Nat. Commun. 9, 2514, 2018).
* RESET (depression, negative count): melt-quench re-amorphises the cell in one
  pulse, whatever its state: ``G -> G_min * (1 + c2c_reset_rel * |xi|)`` (a fresh
  amorphous plug, so the drift clock restarts too). Pulse ``width`` does not change
  this (the RESET is all-or-nothing here). With ``c2c_reset_rel = 0`` a RESET never
  raises the conductance of an undrifted cell; with noise it can, by that noise.
* Drift: the amorphous phase relaxes, so the conductance decays as
  ``G(t) = G_prog * ((t - t_prog) / t0) ** (-nu)`` for ``t - t_prog > t0``, and
  ``G_prog`` before (``G_prog`` is the conductance read ``t0`` after the last pulse;
  Le Gallo & Sebastian, J. Phys. D 53, 213002, 2020; Papandreou et al., IMW 2011).
  ``apply_pulses(..., time_s)`` first lets the cell drift to ``time_s``, then pulses
  it and records ``time_s`` as its programming time; ``conductance(state, time_s)``
  applies the drift since then.

State rows: programmed conductance, programming time, and per-cell (device-to-device)
drift exponent ``nu``, SET fraction ``alpha`` and bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit

from .base import Device

# state rows
G, T_PROG, NU, ALPHA, G_LO, G_HI = 0, 1, 2, 3, 4, 5


@njit(cache=True)
def _drifted(g_prog, t_prog, nu, time_s, t0):
    dt = time_s - t_prog
    if dt <= t0:
        return g_prog
    return g_prog * math.exp(-nu * math.log(dt / t0))


@njit(cache=True)
def _conductance(state, time_s, t0, g_out):
    for k in range(state.shape[1]):
        g_out[k] = _drifted(state[G, k], state[T_PROG, k], state[NU, k], time_s, t0)


@njit(cache=True)
def _pulse(state, cells, counts, width, seed, g_out, time_s, t0, c2c_set, c2c_reset):
    """``counts[m]`` pulses into cell ``cells[m]`` (the listed cells only)."""
    np.random.seed(seed)
    for m in range(cells.size):
        k = cells[m]
        n = counts[m]
        if n == 0:
            continue
        lo = state[G_LO, k]
        hi = state[G_HI, k]
        value = _drifted(state[G, k], state[T_PROG, k], state[NU, k], time_s, t0)
        if n > 0:
            for _ in range(n):
                frac = state[ALPHA, k] * width
                if c2c_set > 0.0:
                    frac *= max(1.0 + c2c_set * np.random.standard_normal(), 0.0)
                if frac > 1.0:
                    frac = 1.0
                if value < hi:
                    value += frac * (hi - value)
        else:
            # each RESET re-amorphises the cell: the new value does not depend on
            # the old one (so a drifted cell comes back to the fresh RESET level)
            for _ in range(-n):
                value = lo
                if c2c_reset > 0.0:
                    value = lo * (1.0 + c2c_reset * abs(np.random.standard_normal()))
                if value > hi:
                    value = hi
        state[G, k] = value
        state[T_PROG, k] = time_s
        g_out[k] = value


@dataclass(frozen=True)
class PCM(Device):
    """Phase-change memory cell (see the module docstring for the physics).

    g_min_s, g_max_s
        Nominal RESET (amorphous) and fully SET conductance (siemens).
    alpha_set
        Fraction of the remaining distance to G_max covered by one SET pulse.
    c2c_set_rel
        Relative cycle-to-cycle spread (std) of each SET increment.
    c2c_reset_rel
        RESET lands at ``G_min * (1 + c2c_reset_rel * |xi|)``.
    drift_nu, d2d_nu
        Mean and absolute device-to-device std of the drift exponent (clipped at 0).
    drift_t0_s
        Reference time of the drift law (time after the pulse at which G = G_prog).
    d2d_alpha_rel, d2d_g_max_rel
        Relative device-to-device spread of ``alpha_set`` and of G_max.
    g_init_frac
        Where a fresh cell starts between its bounds (0 = RESET state).
    set_pulse_s, reset_pulse_s
        Nominal pulse durations.
    """

    g_min_s: float = 0.1e-6
    g_max_s: float = 25e-6
    alpha_set: float = 0.1
    c2c_set_rel: float = 0.3
    c2c_reset_rel: float = 0.2
    drift_nu: float = 0.05
    d2d_nu: float = 0.01
    drift_t0_s: float = 1.0
    d2d_alpha_rel: float = 0.2
    d2d_g_max_rel: float = 0.1
    g_init_frac: float = 0.0
    set_pulse_s: float = 100e-9
    reset_pulse_s: float = 50e-9
    potentiate_energy_j: float = 5e-12
    depress_energy_j: float = 20e-12

    name: ClassVar[str] = "pcm"
    state_names: ClassVar[tuple[str, ...]] = (
        "g_prog_s", "t_prog_s", "nu", "alpha_set", "g_min_s", "g_max_s")
    source: ClassVar[str] = (
        "model: gradual SET / abrupt RESET / drift G = G_prog (t/t0)^-nu "
        "(Papandreou et al., IMW 2011; Sebastian et al. 2016; Le Gallo & Sebastian, "
        "J. Phys. D 53, 213002, 2020: nu of order 0.05-0.1 for amorphous-rich states). "
        "G_max = 25 uS as in aihwkit's PCM noise model (Joshi et al., Nat. Commun. 11, "
        "2473, 2020). Assumed: G_min = 0.1 uS, alpha_set = 0.1 (about 20 SET pulses "
        "to 90 % of G_max), nu = 0.05 +- 0.01 for every state, t0 = 1 s, spreads, "
        "100 ns SET / 50 ns RESET pulses, 5 pJ SET / 20 pJ RESET")

    def validate(self) -> None:
        self._check_nonnegative("g_min_s", "c2c_set_rel", "c2c_reset_rel", "drift_nu",
                                "d2d_nu", "d2d_alpha_rel", "d2d_g_max_rel")
        self._check_positive("g_max_s", "alpha_set", "drift_t0_s", "set_pulse_s",
                             "reset_pulse_s")
        self._check_order("g_min_s", "g_max_s")
        self._check_fraction("alpha_set", "g_init_frac")

    # ------------------------------------------------------------------ physics
    def init_state(self, n_cells, rng):
        state = np.empty((len(self.state_names), n_cells))
        state[T_PROG] = 0.0
        state[NU] = np.maximum(self.drift_nu + self.d2d_nu * rng.standard_normal(n_cells), 0.0)
        a = self.alpha_set * (1.0 + self.d2d_alpha_rel * rng.standard_normal(n_cells))
        state[ALPHA] = np.clip(a, 0.0, 1.0)
        state[G_LO] = self.g_min_s
        hi = self.g_max_s * (1.0 + self.d2d_g_max_rel * rng.standard_normal(n_cells))
        state[G_HI] = np.maximum(hi, self.g_min_s)
        state[G] = self.g_min_s + self.g_init_frac * (state[G_HI] - self.g_min_s)
        return state

    def apply_pulses_at(self, state, cells, counts, width, seed, g_out, time_s=0.0):
        _pulse(state, cells, counts, float(width), seed, g_out, float(time_s),
               float(self.drift_t0_s), float(self.c2c_set_rel), float(self.c2c_reset_rel))

    def conductance(self, state, time_s=0.0):
        g = np.empty(state.shape[1])
        _conductance(state, float(time_s), float(self.drift_t0_s), g)
        return g

    def cell_bounds(self, state):
        """Per-cell ``(G_min, G_max)`` of the programmed (undrifted) conductance."""
        return state[G_LO].copy(), state[G_HI].copy()

    @property
    def drifts(self) -> bool:
        return True

    def pulse_duration_s(self, sign):
        return self.set_pulse_s if sign > 0 else self.reset_pulse_s
