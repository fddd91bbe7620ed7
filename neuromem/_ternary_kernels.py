"""Numba kernels of the ternary MTJ-pair array (dispatched to by :mod:`neuromem.ternary`).

A cell holds two MTJs, ``plus`` and ``minus`` (1 = parallel, low resistance). The
weight is ``plus - minus`` in the canonical states ``+1 = (P, AP)``, ``0 = (AP, AP)``,
``-1 = (AP, P)``, so every one-level transition switches exactly one device.
Per-device parameters (resistances, switching-law prefactor ``a``) are fixed at
fabrication; the only state that training changes is the two bits of each cell.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# rows of the per-device parameter block ``dev``: (4, rows, cols) for each of plus/minus
R_P, R_AP, PREFACTOR = 0, 1, 2
# entries of the tally array written by ``stochastic_update``
POT_PULSES, DEP_PULSES, SWITCHES, SATURATED = 0, 1, 2, 3


@njit(cache=True)
def p_switch(width_s, voltage_v, r_ohm, charge_c, a):
    """``P_sw = erfc(a exp(-dt V / (C R)))`` (= ``1 - erf(...)``)."""
    return math.erfc(a * math.exp(-width_s * voltage_v / (charge_c * r_ohm)))


@njit(cache=True)
def conductances(plus, minus, dev_plus, dev_minus, g_diff, g_sum):
    """``g_diff = G+ - G-`` and ``g_sum = G+ + G-`` of every cell from the two bits."""
    rows, cols = plus.shape
    for i in range(rows):
        for j in range(cols):
            gp = 1.0 / (dev_plus[R_P, i, j] if plus[i, j] else dev_plus[R_AP, i, j])
            gm = 1.0 / (dev_minus[R_P, i, j] if minus[i, j] else dev_minus[R_AP, i, j])
            g_diff[i, j] = gp - gm
            g_sum[i, j] = gp + gm


@njit(cache=True)
def stochastic_update(plus, minus, dev_plus, dev_minus, x, direction, width_pot, width_dep,
                      v_pot, v_dep, charge_c, seed, g_diff, g_sum, tally, energy):
    """Row-gated, column-timed pulses of samples ``b = 0..B-1`` in order.

    Cell ``(i, j)`` of sample ``b`` is pulsed when ``x[b, i] != 0`` and
    ``direction[b, j] != 0``; the weight moves one level towards
    ``sign(x[b, i] * direction[b, j])``: a potentiating pulse of width
    ``width_pot[b, j]`` (AP -> P) or a depressing one of ``width_dep[b, j]`` (P -> AP)
    on the one device whose switch makes that step, with that device's own switching
    probability. A cell already at the bound in that direction gets no pulse.
    ``energy[0]``/``energy[1]`` add ``V^2 dt / R`` of the potentiating/depressing
    pulses; ``tally`` counts pulses, switches and skipped saturated cells.
    """
    np.random.seed(seed)
    batch, rows = x.shape
    cols = direction.shape[1]
    for b in range(batch):
        for i in range(rows):
            xi = x[b, i]
            if xi == 0:
                continue
            for j in range(cols):
                dj = direction[b, j]
                if dj == 0:
                    continue
                up = (xi > 0) == (dj > 0)
                w = np.int64(plus[i, j]) - np.int64(minus[i, j])
                if (up and w == 1) or (not up and w == -1):
                    if width_pot[b, j] > 0.0 or width_dep[b, j] > 0.0:
                        tally[SATURATED] += 1  # a pulse the controller withholds
                    continue
                # which device moves: up from 0 sets plus, up from -1 resets minus;
                # down from 0 sets minus, down from +1 resets plus
                if up:
                    on_plus = w == 0
                else:
                    on_plus = w == 1
                setting = w == 0  # AP -> P (potentiating pulse) on the chosen device
                dev = dev_plus if on_plus else dev_minus
                if setting:
                    r = dev[R_AP, i, j]
                    dt = width_pot[b, j]
                    v = v_pot
                else:
                    r = dev[R_P, i, j]
                    dt = width_dep[b, j]
                    v = v_dep
                if dt <= 0.0:
                    continue
                p = p_switch(dt, v, r, charge_c, dev[PREFACTOR, i, j])
                if setting:
                    tally[POT_PULSES] += 1
                    energy[0] += v * v * dt / r
                else:
                    tally[DEP_PULSES] += 1
                    energy[1] += v * v * dt / r
                if np.random.random() < p:
                    tally[SWITCHES] += 1
                    bit = 1 if setting else 0
                    if on_plus:
                        plus[i, j] = bit
                    else:
                        minus[i, j] = bit
                    gp = 1.0 / (dev_plus[R_P, i, j] if plus[i, j] else dev_plus[R_AP, i, j])
                    gm = 1.0 / (dev_minus[R_P, i, j] if minus[i, j] else dev_minus[R_AP, i, j])
                    g_diff[i, j] = gp - gm
                    g_sum[i, j] = gp + gm
