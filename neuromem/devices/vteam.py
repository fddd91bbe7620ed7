"""VTEAM: voltage-controlled threshold memristor (Kvatinsky et al., IEEE TCAS-II 62,
786-790, 2015).

State variable ``w`` in ``[w_on, w_off]`` (metres). Its rate is::

    dw/dt = k_off * (v/v_off - 1)**alpha_off * f_off(w)   for v > v_off > 0
          = 0                                             for v_on <= v <= v_off
          = k_on  * (v/v_on  - 1)**alpha_on  * f_on(w)    for v < v_on < 0

with ``k_off > 0`` and ``k_on < 0`` (so ``w`` grows towards ``w_off`` for positive
voltage and shrinks towards ``w_on`` for negative voltage), the Kvatinsky (TEAM)
window functions::

    f_off(w) = exp(-exp( (w - a_off) / w_c))
    f_on(w)  = exp(-exp(-(w - a_on)  / w_c))

and ``w`` hard-bounded to ``[w_on, w_off]``. The resistance is either linear,
``R = R_on + (R_off - R_on) * (w - w_on) / (w_off - w_on)``, or exponential,
``R = R_on * exp(lambda * (w - w_on) / (w_off - w_on))`` with
``lambda = ln(R_off / R_on)``; ``G = 1 / R``.

Sign convention of this package: a positive pulse count raises the conductance, so a
*potentiating* pulse is a negative voltage (``potentiate_voltage_v < 0``, drives ``w``
towards ``w_on`` = low resistance) and a *depressing* pulse a positive one
(``depress_voltage_v > 0``, drives ``w`` towards ``w_off`` = high resistance).

A rectangular pulse of amplitude V and duration ``pulse_width_s * width`` is integrated
with ``euler_substeps`` explicit Euler steps (the window makes the rate state
dependent). Device-to-device spread: every cell draws its own ``k_on``, ``k_off``,
``v_on`` and ``v_off`` (lognormal factors, sigma = the given relative spread, so signs
never flip). Cycle-to-cycle spread: the state change of every pulse is scaled by
``1 + c2c_step_rel * xi`` (clipped at 0, so a pulse never moves ``w`` backwards).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit

from .base import Device

# state rows
W, K_ON, K_OFF, V_ON, V_OFF = 0, 1, 2, 3, 4

_RESISTANCE_MODELS = ("linear", "exponential")


@njit(cache=True)
def _resistance(w, w_on, w_off, r_on, r_off, exponential):
    x = (w - w_on) / (w_off - w_on)
    if exponential:
        return r_on * math.exp(math.log(r_off / r_on) * x)
    return r_on + (r_off - r_on) * x


@njit(cache=True)
def _conductance(state, w_on, w_off, r_on, r_off, exponential, g_out):
    w = state[W]
    for k in range(w.size):
        g_out[k] = 1.0 / _resistance(w[k], w_on, w_off, r_on, r_off, exponential)


@njit(cache=True)
def _pulse(state, cells, counts, width, seed, g_out, v_pot, v_dep, t_pulse, n_sub,
           alpha_on, alpha_off, w_on, w_off, a_on, a_off, w_c,
           r_on, r_off, exponential, c2c):
    """``counts[m]`` pulses into cell ``cells[m]`` (the listed cells only)."""
    np.random.seed(seed)
    w = state[W]
    dt = t_pulse * width / n_sub
    for m in range(cells.size):
        k = cells[m]
        n = counts[m]
        if n == 0:
            continue
        value = w[k]
        if n > 0:
            # potentiation: negative voltage, towards w_on
            drive = 0.0
            if v_pot < state[V_ON, k]:
                drive = state[K_ON, k] * (v_pot / state[V_ON, k] - 1.0) ** alpha_on
            for _ in range(n):
                scale = 1.0
                if c2c > 0.0:
                    scale = max(1.0 + c2c * np.random.standard_normal(), 0.0)
                if drive == 0.0:
                    continue
                for _s in range(n_sub):
                    f_on = math.exp(-math.exp(-(value - a_on) / w_c))
                    value += drive * f_on * scale * dt
                    if value < w_on:
                        value = w_on
        else:
            drive = 0.0
            if v_dep > state[V_OFF, k]:
                drive = state[K_OFF, k] * (v_dep / state[V_OFF, k] - 1.0) ** alpha_off
            for _ in range(-n):
                scale = 1.0
                if c2c > 0.0:
                    scale = max(1.0 + c2c * np.random.standard_normal(), 0.0)
                if drive == 0.0:
                    continue
                for _s in range(n_sub):
                    f_off = math.exp(-math.exp((value - a_off) / w_c))
                    value += drive * f_off * scale * dt
                    if value > w_off:
                        value = w_off
        w[k] = value
        g_out[k] = 1.0 / _resistance(value, w_on, w_off, r_on, r_off, exponential)


@dataclass(frozen=True)
class VTEAM(Device):
    """VTEAM memristor driven by rectangular voltage pulses.

    Geometry and resistance: ``w_on_m < w_off_m`` bound the state variable,
    ``r_on_ohm < r_off_ohm`` are the resistances at those bounds,
    ``resistance_model`` is ``"linear"`` or ``"exponential"``.
    Kinetics: ``k_on_m_per_s < 0 < k_off_m_per_s``, ``v_on_v < 0 < v_off_v``,
    ``alpha_on``, ``alpha_off`` > 0; window ``window_a_on_m``, ``window_a_off_m``,
    ``window_wc_m``.
    Pulses: ``potentiate_voltage_v < 0`` (raises G), ``depress_voltage_v > 0``
    (lowers G), nominal duration ``pulse_width_s``, ``euler_substeps`` per pulse.
    Spreads: ``d2d_k_rel``, ``d2d_v_rel`` (device-to-device), ``c2c_step_rel``.
    """

    w_on_m: float = 0.0
    w_off_m: float = 3e-9
    r_on_ohm: float = 10e3
    r_off_ohm: float = 100e3
    resistance_model: str = "linear"
    k_on_m_per_s: float = -6e-3
    k_off_m_per_s: float = 6e-3
    v_on_v: float = -0.5
    v_off_v: float = 0.5
    alpha_on: float = 3.0
    alpha_off: float = 3.0
    window_a_on_m: float = 0.0
    window_a_off_m: float = 3e-9
    window_wc_m: float = 0.1e-9
    potentiate_voltage_v: float = -1.0
    depress_voltage_v: float = 1.0
    pulse_width_s: float = 10e-9
    euler_substeps: int = 4
    d2d_k_rel: float = 0.1
    d2d_v_rel: float = 0.05
    c2c_step_rel: float = 0.1
    w_init_m: float = 1.5e-9

    name: ClassVar[str] = "vteam"
    state_names: ClassVar[tuple[str, ...]] = (
        "w_m", "k_on_m_per_s", "k_off_m_per_s", "v_on_v", "v_off_v")
    source: ClassVar[str] = (
        "model: VTEAM, Kvatinsky, Ramadan, Friedman & Kolodny, IEEE TCAS-II 62, 786 "
        "(2015), Kvatinsky (TEAM) window. Values assumed (not a fit to a device): "
        "3 nm state range, 10-100 kOhm, thresholds -0.5/+0.5 V, alpha = 3, "
        "|k| = 6 mm/s so that a nominal +-1 V, 10 ns pulse moves w by 0.06 nm "
        "(about 50 pulses end to end), 10 % d2d on k, 5 % on thresholds, 10 % c2c, "
        "1 pJ per pulse")

    def validate(self) -> None:
        cls = type(self).__name__
        if self.resistance_model not in _RESISTANCE_MODELS:
            raise ValueError(
                f"{cls}.resistance_model must be one of {_RESISTANCE_MODELS}, "
                f"got {self.resistance_model!r}")
        for n in ("w_on_m", "w_off_m", "window_a_on_m", "window_a_off_m", "w_init_m"):
            if not math.isfinite(getattr(self, n)):
                raise ValueError(f"{cls}.{n} must be finite, got {getattr(self, n)!r}")
        self._check_order("w_on_m", "w_off_m")
        self._check_positive("r_on_ohm", "r_off_ohm", "k_off_m_per_s", "v_off_v",
                             "alpha_on", "alpha_off", "window_wc_m",
                             "depress_voltage_v", "pulse_width_s", "euler_substeps")
        self._check_order("r_on_ohm", "r_off_ohm")
        for n in ("k_on_m_per_s", "v_on_v", "potentiate_voltage_v"):
            v = getattr(self, n)
            if not (v < 0 and math.isfinite(v)):
                raise ValueError(f"{cls}.{n} must be finite and < 0 (VTEAM sign "
                                 f"convention), got {v!r}")
        if int(self.euler_substeps) != self.euler_substeps:
            raise ValueError(f"{cls}.euler_substeps must be an integer, "
                             f"got {self.euler_substeps!r}")
        self._check_nonnegative("d2d_k_rel", "d2d_v_rel", "c2c_step_rel")
        if not self.w_on_m <= self.w_init_m <= self.w_off_m:
            raise ValueError(f"{cls}.w_init_m ({self.w_init_m!r}) must lie between "
                             f"w_on_m and w_off_m")

    # ------------------------------------------------------------------ physics
    @property
    def g_min_s(self) -> float:
        return 1.0 / self.r_off_ohm

    @property
    def g_max_s(self) -> float:
        return 1.0 / self.r_on_ohm

    def resistance_ohm(self, w_m):
        """Resistance at state ``w_m`` (metres, array-like) for this ``resistance_model``."""
        x = (np.asarray(w_m, dtype=float) - self.w_on_m) / (self.w_off_m - self.w_on_m)
        if self.resistance_model == "exponential":
            return self.r_on_ohm * np.exp(np.log(self.r_off_ohm / self.r_on_ohm) * x)
        return self.r_on_ohm + (self.r_off_ohm - self.r_on_ohm) * x

    def init_state(self, n_cells, rng):
        state = np.empty((len(self.state_names), n_cells))
        state[W] = self.w_init_m
        state[K_ON] = self.k_on_m_per_s * np.exp(self.d2d_k_rel * rng.standard_normal(n_cells))
        state[K_OFF] = self.k_off_m_per_s * np.exp(self.d2d_k_rel * rng.standard_normal(n_cells))
        state[V_ON] = self.v_on_v * np.exp(self.d2d_v_rel * rng.standard_normal(n_cells))
        state[V_OFF] = self.v_off_v * np.exp(self.d2d_v_rel * rng.standard_normal(n_cells))
        return state

    def apply_pulses_at(self, state, cells, counts, width, seed, g_out, time_s=0.0):
        _pulse(state, cells, counts, float(width), seed, g_out,
               float(self.potentiate_voltage_v), float(self.depress_voltage_v),
               float(self.pulse_width_s), int(self.euler_substeps),
               float(self.alpha_on), float(self.alpha_off),
               float(self.w_on_m), float(self.w_off_m),
               float(self.window_a_on_m), float(self.window_a_off_m),
               float(self.window_wc_m), float(self.r_on_ohm), float(self.r_off_ohm),
               self.resistance_model == "exponential", float(self.c2c_step_rel))

    def conductance(self, state, time_s=0.0):
        g = np.empty(state.shape[1])
        _conductance(state, float(self.w_on_m), float(self.w_off_m),
                     float(self.r_on_ohm), float(self.r_off_ohm),
                     self.resistance_model == "exponential", g)
        return g

    def cell_bounds(self, state):
        """Per-cell ``(G_min, G_max)``: the resistances carry no spread here."""
        n = state.shape[1]
        return np.full(n, self.g_min_s), np.full(n, self.g_max_s)

    def pulse_duration_s(self, sign):
        return self.pulse_width_s
