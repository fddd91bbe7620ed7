"""Magnetic tunnel junction (MTJ): a binary stochastic synapse.

Two states: parallel (P, low resistance ``r_p_ohm``, high G) and antiparallel (AP,
``r_ap_ohm``). A potentiating pulse (positive count) of voltage ``pulse_voltage_v``
switches AP -> P, a depressing pulse (``depress_voltage_v``, opposite polarity)
switches P -> AP, each with the precessional-regime probability::

    P_sw = 1 - erf( pi / (2 sqrt(2) theta0) * exp(-dt * V / (C * R)) ),
    theta0 = 1 / sqrt(2 * delta)

(Greenberg-Toledo, Perach, Hubara, Soudry & Kvatinsky, Semicond. Sci. Technol. 36,
114003, 2021). ``R`` is the resistance of the state being switched from (the current
is ``V / R``), ``dt`` the pulse width, ``C`` = ``switch_charge_c`` a characteristic
charge (coulombs; ``C / I`` is the precession time constant). Physically: the initial
angle of the free layer is thermally distributed with spread ``theta0``, it grows as
``exp(t / tau)`` with ``1/tau = I / C``, and the cell switches when it reaches pi/2,
so ``P_sw = P(|theta| > (pi/2) exp(-t/tau)) = erfc(pi / (2 sqrt 2 theta0) e^(-t/tau))``.
The formula as written rises from about 0 (``dt -> 0``: ``erfc(pi sqrt(delta) / 2)``,
about 1e-42 for delta = 60) to 1 (``dt -> inf``) with pulse width and voltage:
the sign of the exponent as written is right.

A pulse on a cell already in the target state does nothing. Device-to-device spread:
one lognormal factor per cell on both resistances (resistance-area product spread;
TMR kept). Read disturb is not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit
from scipy.special import erfc

from .base import Device

# state rows
PARALLEL, R_P, R_AP = 0, 1, 2


@njit(cache=True)
def _p_switch(width_s, voltage_v, r_ohm, charge_c, a):
    return math.erfc(a * math.exp(-width_s * voltage_v / (charge_c * r_ohm)))


@njit(cache=True)
def _pulse(state, cells, counts, width_s, seed, g_out, v_pot, v_dep, charge_c, a):
    """``counts[m]`` pulses into cell ``cells[m]`` (the listed cells only)."""
    np.random.seed(seed)
    for m in range(cells.size):
        k = cells[m]
        n = counts[m]
        if n == 0:
            continue
        parallel = state[PARALLEL, k] > 0.5
        if n > 0 and not parallel:
            p = _p_switch(width_s, v_pot, state[R_AP, k], charge_c, a)
            for _ in range(n):
                if np.random.random() < p:
                    parallel = True
                    break
        elif n < 0 and parallel:
            p = _p_switch(width_s, v_dep, state[R_P, k], charge_c, a)
            for _ in range(-n):
                if np.random.random() < p:
                    parallel = False
                    break
        state[PARALLEL, k] = 1.0 if parallel else 0.0
        g_out[k] = 1.0 / (state[R_P, k] if parallel else state[R_AP, k])


@dataclass(frozen=True)
class MTJ(Device):
    """Binary stochastic MTJ synapse (see the module docstring for the physics).

    delta
        Thermal stability factor ``E_b / k_B T``.
    r_p_ohm, r_ap_ohm
        Parallel (low) and antiparallel (high) resistance.
    pulse_voltage_v, depress_voltage_v
        Magnitudes of the potentiating (AP -> P) and depressing (P -> AP) pulses.
    pulse_width_s
        Nominal pulse width; ``width`` in ``apply_pulses`` scales it.
    switch_charge_c
        Characteristic charge ``C`` of the switching law (coulombs).
    d2d_r_rel
        Lognormal device-to-device spread (sigma) of the resistances.
    p_init_frac
        Probability that a fresh cell starts in the P state.
    """

    delta: float = 60.0
    r_p_ohm: float = 2.5e3
    r_ap_ohm: float = 5e3
    pulse_voltage_v: float = 0.5
    depress_voltage_v: float = 0.25
    pulse_width_s: float = 1.5e-9
    switch_charge_c: float = 5e-14
    d2d_r_rel: float = 0.05
    p_init_frac: float = 0.5
    potentiate_energy_j: float = 75e-15
    depress_energy_j: float = 37.5e-15

    name: ClassVar[str] = "mtj"
    state_names: ClassVar[tuple[str, ...]] = ("parallel", "r_p_ohm", "r_ap_ohm")
    source: ClassVar[str] = (
        "model: precessional switching P_sw = 1 - erf(pi/(2 sqrt2 theta0) "
        "exp(-dt V/(C R))), theta0 = 1/sqrt(2 delta) (Greenberg-Toledo et al., "
        "Semicond. Sci. Technol. 36, 114003, 2021). Values assumed: delta = 60, "
        "R_P = 2.5 kOhm, R_AP = 5 kOhm (TMR 100 %), C = 5e-14 C (order of e times the "
        "spin count of a ~40 nm free layer over the polarisation), 1.5 ns pulses of "
        "0.5 V (AP->P) and 0.25 V (P->AP): equal 100 uA currents, P_sw = 0.39 each; "
        "energies V^2 dt / R of those pulses; 5 % d2d on R")

    def validate(self) -> None:
        self._check_positive("delta", "r_p_ohm", "r_ap_ohm", "pulse_voltage_v",
                             "depress_voltage_v", "pulse_width_s", "switch_charge_c")
        self._check_order("r_p_ohm", "r_ap_ohm")
        self._check_nonnegative("d2d_r_rel")
        self._check_fraction("p_init_frac")

    # ------------------------------------------------------------------ physics
    @property
    def g_min_s(self) -> float:
        return 1.0 / self.r_ap_ohm

    @property
    def g_max_s(self) -> float:
        return 1.0 / self.r_p_ohm

    @property
    def theta0(self) -> float:
        """Thermal spread of the initial magnetisation angle, ``1/sqrt(2 delta)``."""
        return 1.0 / math.sqrt(2.0 * self.delta)

    def switching_probability(self, width_s, voltage_v, resistance_ohm=None):
        """Probability that one pulse switches the cell (vectorised, broadcasts).

        ``voltage_v > 0`` is a potentiating pulse (AP -> P, current through
        ``r_ap_ohm``), ``voltage_v < 0`` a depressing one (P -> AP, through
        ``r_p_ohm``); ``resistance_ohm`` overrides that choice. Only ``|V|`` enters
        the formula.
        """
        width_s = np.asarray(width_s, dtype=float)
        voltage_v = np.asarray(voltage_v, dtype=float)
        if resistance_ohm is None:
            resistance_ohm = np.where(voltage_v < 0, self.r_p_ohm, self.r_ap_ohm)
        resistance_ohm = np.asarray(resistance_ohm, dtype=float)
        a = math.pi / (2.0 * math.sqrt(2.0) * self.theta0)
        x = width_s * np.abs(voltage_v) / (self.switch_charge_c * resistance_ohm)
        return erfc(a * np.exp(-x))

    def init_state(self, n_cells, rng):
        state = np.empty((len(self.state_names), n_cells))
        state[PARALLEL] = (rng.random(n_cells) < self.p_init_frac).astype(float)
        factor = np.exp(self.d2d_r_rel * rng.standard_normal(n_cells))
        state[R_P] = self.r_p_ohm * factor
        state[R_AP] = self.r_ap_ohm * factor
        return state

    def apply_pulses_at(self, state, cells, counts, width, seed, g_out, time_s=0.0):
        a = math.pi / (2.0 * math.sqrt(2.0) * self.theta0)
        _pulse(state, cells, counts, float(width) * self.pulse_width_s, seed, g_out,
               float(self.pulse_voltage_v), float(self.depress_voltage_v),
               float(self.switch_charge_c), a)

    def conductance(self, state, time_s=0.0):
        return np.where(state[PARALLEL] > 0.5, 1.0 / state[R_P], 1.0 / state[R_AP])

    def cell_bounds(self, state):
        """Per-cell ``(G_min, G_max)`` = ``(1/R_AP, 1/R_P)`` of that cell."""
        return 1.0 / state[R_AP], 1.0 / state[R_P]

    def pulse_duration_s(self, sign):
        return self.pulse_width_s
