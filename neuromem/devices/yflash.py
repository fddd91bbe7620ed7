"""Y-Flash floating-gate memristor: the physical compact model (docs/hardware.md §4).

A Y-Flash cell (Danial et al., Nat. Electron. 2019; 180 nm CMOS, single poly) is one
floating gate (FG) shared by two transistors with a common drain D: a *read*
transistor (source SR) and an *injection* transistor (source SI). The state of a cell
is the FG charge ``Q_FG``; the conductance is read, not stored. Each cell also carries
its own ageing variables ``V_a`` (hot-electron injection) and ``beta`` (Fowler-Nordheim
tunnelling), drawn at fabrication and drifting with every pulse. State rows:
``("q_fg_c", "va_v", "beta_v")``.

Model (Wang et al., APL 119, 263504, 2021; summarised in docs/hardware.md)
--------------------------------------------------------------------------
* Charge sharing: ``V_FG = (Q_FG + C_gd V_D + C_gsr V_SR + C_gsi V_SI) / C_sum``.
* Each transistor: ``I = 1 / (1/I_sub + 1/I_ab)`` with
  ``I_sub = I_s0 exp((V_FG - V_th)/(n V_T)) (1 - exp(-V_DS/V_T))`` and
  ``I_ab = 5 I_s0 (1 - exp(-V_DS/V_T)) + {K/2 (V_FG-V_th)^2 | K (V_FG-V_th-V_DS/2) V_DS}``
  (no channel current for ``V_DS <= 0``, as in the compact model).
* Program (depress, G down): hot-electron injection in the injection transistor,
  ``I_HEI = -I_S P0 exp(-V_a / V_FG)`` for ``V_FG >= 0.1 V``; V_D = 5 V, V_SI = 0,
  t_p = 200 us.
* Erase (potentiate, G up): Fowler-Nordheim tunnelling at the injection source,
  ``I_FN = xi (V_SG - V_bi)^2 exp(-beta / (V_SG - V_bi))``, ``V_SG = V_SI - V_FG``;
  V_D = 0, V_SI = 8 V, t_p = 100 us.
* ``Q_FG += (I_HEI + I_FN) t_p`` -- one explicit Euler step per pulse.
* Read: V_D = 2 V, V_SR = 0, ``G = I_D / 2 V``.
* Ageing per pulse of duration t_p: program ``V_a += (24 V - V_a)(exp(t_p/1 s) - 1)``,
  erase ``beta += (11.5 V - beta)(exp(t_p/0.5 s) - 1)`` (each relaxes toward its limit;
  the factor is capped at 1 so an absurdly wide pulse cannot overshoot the limit).
* Device-to-device: ``V_a ~ N(23.4, 0.8) V``, ``beta ~ N(9, 0.8) V``,
  ``Q_init = -1e-11 C (1 + 0.01 N(0,1))``.

Choices where the sources are silent (every deviation from a literal reading)
----------------------------------------------------------------------------
1. **Terminals an operation does not name float** (``floating_unbiased_terminals``).
   The published model names V_D and V_SI for program and erase, and only V_D for read; the read
   source is grounded (it is the read transistor), everything else is left open. A
   floating terminal's coupling capacitor is in series with an open node, carries no
   charge and drops out of the charge-sharing sum (as a public re-implementation of the
   compact model treats a high-impedance node). So program and erase use
   ``C_sum = C_gd + C_gsi`` (16 pF) with the read source floating (no read current is
   wasted while programming), and read uses ``C_gd + C_gsr`` with the
   injection source floating (the read current is the read transistor's alone).
   The literal alternative (all unnamed terminals grounded, 17 pF everywhere,
   ``floating_unbiased_terminals=False``) couples 0.2 V less drain voltage onto the
   gate while programming and gives program steps of only dlnG = -0.12...-0.14 per
   pulse for the nominal device (-0.09...-0.11 for the population), well short of
   the measured -0.22: it cannot reproduce the data.
2. **Two sets of ageing variables.** The published values give both nominal ``V_a0 = 22.5 V``,
   ``beta0 = 8 V`` and population draws ``N(23.4, 0.8)``, ``N(9, 0.8)``. They are not
   the same device: the single-device step statistics (dlnG = -0.22 per program pulse;
   +0.58 / +0.29 / +0.09 per erase pulse) are reproduced by the nominal values, the
   96-device pulse counts (37.8 +- 8.2, 25.1 +- 6.1) by the population draws. Both are
   fields: :meth:`YFlash.init_state` draws the population (``va_mean_v``...),
   :meth:`YFlash.nominal_state` builds the single fitted device (``va_nominal_v``,
   ``beta_nominal_v``). With the population means the median program step is -0.17 and
   the erase steps +0.39 / +0.23 / +0.06 (slower devices on average).
3. **Full program / full erase thresholds** are not stated. A full cycle here is
   program-and-verify between two read levels: program until ``G <= 0.5 nS`` (read
   current 1 nA at 2 V, the lower end of the paper's 1 nA - 5 uA range), then erase
   until ``G >= 0.3 uS`` (0.6 uA). The upper level follows from the published erase
   statistics: 25 pulses of +0.58 (below 10 nS), +0.29 (10-100 nS) and +0.09 (above)
   starting at 0.5 nS end near 0.3 uS, so a 1 uS ceiling could not be reached in 25
   pulses by the measured device either. Fields ``full_cycle_g_low_s``,
   ``full_cycle_g_high_s``; see :meth:`YFlash.full_cycles`.
4. **Charge window** ``[q_fg_min_c, q_fg_max_c] = [-19, -8.5] pC`` (the hard bound).
   The compact model has no saturation of its own: erase keeps raising G through the
   unbounded above-threshold square law, and program keeps lowering G into the
   sub-pA range, neither of which the paper's data (read current 1 nA - 5 uA) supports.
   Q_FG is clipped after every Euler step to the window whose read conductance spans
   ``g_min_s`` = 0.34 nS to ``g_max_s`` = 1.03 uS, so G can never leave
   ``[g_min_s, g_max_s]`` (G is monotonic in Q_FG, the read model has no per-cell
   spread). The fresh charge is drawn inside it.
5. **Integration.** One explicit Euler step per nominal pulse: compared with a
   1000-step integral of the same pulse, the single step overestimates dQ by only
   1.0-3.6 % across the window, and both mechanisms are self-limiting (the charge
   they move pushes V_FG the way that shrinks their own current), so the explicit step
   is stable. A pulse
   wider than nominal (``width > 1``) is split into ``ceil(width)`` equal sub-steps, so
   no single step moves more charge than a nominal pulse.
6. **Cycle-to-cycle spread** is not part of the compact model. Each pulse's charge
   increment is multiplied by ``max(0, 1 + c2c_rel N(0,1))`` (one draw per pulse; the
   floor keeps a pulse from moving the wrong way). ``c2c_rel = 0.15`` reproduces the
   measured ~15 % pulse-to-pulse spread of the program step (the state dependence of the
   step adds only ~4 % within the 3-300 nS mid range).
7. **Energies** are estimated from the model (``estimated_pulse_energy_j``), V x I x t
   of one nominal pulse at the middle of the charge window: program
   ``V_D I_D t_p`` = 5 V x 107 uA x 200 us ~ 1.07e-7 J (the injection transistor runs
   above threshold; the model's 15 pF-scale capacitances make this a pessimistic
   figure), erase ``V_SI I_FN t_p`` ~ 1.86e-12 J (the channel is off; charging the
   source line is a periphery cost, not included).
8. ``read_voltage_v`` defaults to the read drain voltage (2 V): G is defined at that
   bias and the read is nonlinear, so a crossbar must read at the same voltage.

Measured with the defaults (tests/test_yflash.py checks them with tolerances)
----------------------------------------------------------------------------
* Window: ``g_min_s`` = 0.336 nS, ``g_max_s`` = 1.025 uS.
* Nominal fresh device: median program step dlnG = -0.23 over 3-300 nS (published -0.22),
  pulse-to-pulse spread 15 % (published ~15 %); median erase steps +0.52 below 10 nS,
  +0.31 at 10-100 nS, +0.086 above 100 nS (published +0.58 / +0.29 / +0.09).
* Fresh population (d2d draws): program step -0.17, erase +0.39 / +0.23 / +0.06; the
  within-device spread stays 15 %, pooled over devices it is ~27 %.
* 96 fresh population devices, full cycles 1-5: program 38-41 +- 8-9 pulses (published
  37.8 +- 8.2), erase 25-27 +- 6-7 (published 25.1 +- 6.1). After 400 full cycles:
  program 44 +- 1, erase 51 +- 2 (V_a -> 23.97 V, beta -> 11.4 V). The nominal device
  goes from 30 to 44 program pulses (published ~33 -> ~45) and from 19 to 50 erase pulses
  (published ~40 -> ~110: the model's erase ageing is ~2.5x, the measured ~2.75x, and the
  endurance device erased more slowly than the 96-device population to begin with).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from numbers import Integral
from typing import ClassVar

import numpy as np
from numba import njit

from .base import Device

# state rows
Q_FG, V_A, BETA = 0, 1, 2

# indices into the flat float64 parameter vector handed to the kernels
(C_GD, C_GSR, C_GSI, VT,
 R_VTH, R_K, R_IS0, R_N,
 I_VTH, I_K, I_IS0, I_N,
 AB_FACTOR, HEI_P0, HEI_VMIN, FN_XI, FN_VBI,
 PROG_VD, PROG_VS, PROG_T, ER_VD, ER_VS, ER_T, READ_VD,
 VA_LIM, BETA_LIM, TAU_P, TAU_E,
 C2C, Q_MIN, Q_MAX, FLOATING, N_PARAMS) = range(33)


# ---------------------------------------------------------------------- kernels
@njit(cache=True)
def _channel_current(vfg, vds, vth, k, is0, n, vt, ab_factor):
    """Drain current of one transistor: sub- and above-threshold in series."""
    if vds <= 0.0:
        return 0.0
    drive = 1.0 - math.exp(-vds / vt)
    x = vfg - vth
    arg = x / (n * vt)
    if arg > 700.0:
        arg = 700.0
    i_sub = is0 * math.exp(arg) * drive
    i_ab = ab_factor * is0 * drive
    if x >= 0.0:
        if x < vds:
            i_ab += 0.5 * k * x * x
        else:
            i_ab += k * (x - 0.5 * vds) * vds
    if i_sub <= 0.0 or i_ab <= 0.0:
        return 0.0
    return 1.0 / (1.0 / i_sub + 1.0 / i_ab)


@njit(cache=True)
def _vfg(q, c_gd, c_gsr, c_gsi, v_d, v_sr, v_si, sr_on, si_on):
    """Floating-gate voltage by charge sharing; a floating terminal drops out."""
    num = q + c_gd * v_d
    den = c_gd
    if sr_on:
        num += c_gsr * v_sr
        den += c_gsr
    if si_on:
        num += c_gsi * v_si
        den += c_gsi
    return num / den


@njit(cache=True)
def _read_current(q, p):
    """Drain current at the read bias (V_D = read drain, V_SR = 0)."""
    floating = p[FLOATING] > 0.5
    vd = p[READ_VD]
    vfg = _vfg(q, p[C_GD], p[C_GSR], p[C_GSI], vd, 0.0, 0.0, True, not floating)
    i = _channel_current(vfg, vd, p[R_VTH], p[R_K], p[R_IS0], p[R_N], p[VT], p[AB_FACTOR])
    if not floating:  # grounded injection source conducts too
        i += _channel_current(vfg, vd, p[I_VTH], p[I_K], p[I_IS0], p[I_N], p[VT],
                              p[AB_FACTOR])
    return i


@njit(cache=True)
def _drain_current(q, v_d, v_si, p):
    """Drain current during a program/erase pulse (energy estimate)."""
    floating = p[FLOATING] > 0.5
    vfg = _vfg(q, p[C_GD], p[C_GSR], p[C_GSI], v_d, 0.0, v_si, not floating, True)
    i = _channel_current(vfg, v_d - v_si, p[I_VTH], p[I_K], p[I_IS0], p[I_N], p[VT],
                         p[AB_FACTOR])
    if not floating:
        i += _channel_current(vfg, v_d, p[R_VTH], p[R_K], p[R_IS0], p[R_N], p[VT],
                              p[AB_FACTOR])
    return i


@njit(cache=True)
def _gate_current(q, va, beta, v_d, v_si, p):
    """Current onto the floating gate through the injection transistor (A).

    Both mechanisms are evaluated at every bias; each vanishes outside its own
    operation (no channel current when V_D <= V_SI; no tunnelling unless
    V_SI - V_FG > V_bi).
    """
    floating = p[FLOATING] > 0.5
    vfg = _vfg(q, p[C_GD], p[C_GSR], p[C_GSI], v_d, 0.0, v_si, not floating, True)
    i_g = 0.0
    # hot-electron injection (program): electrons land on the gate, Q decreases
    if vfg >= p[HEI_VMIN]:
        i_s = _channel_current(vfg, v_d - v_si, p[I_VTH], p[I_K], p[I_IS0], p[I_N],
                               p[VT], p[AB_FACTOR])
        i_g -= i_s * p[HEI_P0] * math.exp(-va / vfg)
    # Fowler-Nordheim tunnelling at the injection source (erase): Q increases
    over = v_si - vfg - p[FN_VBI]
    if over > 0.0:
        i_g += p[FN_XI] * over * over * math.exp(-beta / over)
    return i_g


@njit(cache=True)
def _one_pulse(q, va, beta, sign, width, n_sub, p):
    """One pulse on one cell; returns ``(q, va, beta)`` after it."""
    if sign > 0:  # potentiate = erase (FN tunnelling)
        v_d, v_si, t_p = p[ER_VD], p[ER_VS], p[ER_T] * width
    else:  # depress = program (hot-electron injection)
        v_d, v_si, t_p = p[PROG_VD], p[PROG_VS], p[PROG_T] * width
    factor = 1.0
    if p[C2C] > 0.0:
        factor = 1.0 + p[C2C] * np.random.standard_normal()
        if factor < 0.0:
            factor = 0.0
    dt = t_p / n_sub
    for _ in range(n_sub):
        q += factor * _gate_current(q, va, beta, v_d, v_si, p) * dt
        if q > p[Q_MAX]:
            q = p[Q_MAX]
        elif q < p[Q_MIN]:
            q = p[Q_MIN]
    if sign > 0:
        age = min(math.expm1(t_p / p[TAU_E]), 1.0)
        beta += (p[BETA_LIM] - beta) * age
    else:
        age = min(math.expm1(t_p / p[TAU_P]), 1.0)
        va += (p[VA_LIM] - va) * age
    return q, va, beta


@njit(cache=True)
def _substeps(width):
    return max(1, int(math.ceil(width - 1e-9)))


@njit(cache=True)
def _conductance(state, p, out):
    q = state[Q_FG]
    vd = p[READ_VD]
    for k in range(q.size):
        out[k] = _read_current(q[k], p) / vd


@njit(cache=True)
def _pulse(state, cells, counts, width, seed, g_out, p):
    """``counts[m]`` pulses into cell ``cells[m]`` (the listed cells only)."""
    np.random.seed(seed)
    n_sub = _substeps(width)
    for m in range(cells.size):
        k = cells[m]
        n = counts[m]
        if n == 0:
            continue
        sign = 1 if n > 0 else -1
        q, va, beta = state[Q_FG, k], state[V_A, k], state[BETA, k]
        for _ in range(abs(n)):
            q, va, beta = _one_pulse(q, va, beta, sign, width, n_sub, p)
        state[Q_FG, k], state[V_A, k], state[BETA, k] = q, va, beta
        g_out[k] = _read_current(q, p) / p[READ_VD]


@njit(cache=True)
def _one_cycle(q, va, beta, g_low, g_high, max_pulses, p):
    """One full cycle of one cell: program to ``G <= g_low``, then erase to ``G >= g_high``.

    Returns ``(q, va, beta, n_program, n_erase, g_read)``; each phase stops after
    ``max_pulses``; ``g_read`` sums the conductance seen by every verify read (one
    before each pulse and one that ends each phase).
    """
    vd = p[READ_VD]
    g_read = 0.0
    n_p = 0
    g = _read_current(q, p) / vd
    g_read += g
    while g > g_low and n_p < max_pulses:
        q, va, beta = _one_pulse(q, va, beta, -1, 1.0, 1, p)
        n_p += 1
        g = _read_current(q, p) / vd
        g_read += g
    n_e = 0
    while g < g_high and n_e < max_pulses:
        q, va, beta = _one_pulse(q, va, beta, 1, 1.0, 1, p)
        n_e += 1
        g = _read_current(q, p) / vd
        g_read += g
    return q, va, beta, n_p, n_e, g_read


@njit(cache=True)
def _aged(va, beta, n_program, n_erase, p):
    """``V_a`` and ``beta`` after ``n_program`` program and ``n_erase`` erase pulses of
    nominal width, in closed form: ``L - x`` shrinks by ``(1 - a)`` per pulse."""
    a_p = min(math.expm1(p[PROG_T] / p[TAU_P]), 1.0)
    a_e = min(math.expm1(p[ER_T] / p[TAU_E]), 1.0)
    va = p[VA_LIM] - (p[VA_LIM] - va) * (1.0 - a_p) ** n_program
    beta = p[BETA_LIM] - (p[BETA_LIM] - beta) * (1.0 - a_e) ** n_erase
    return va, beta


@njit(cache=True)
def _cell_cycles(q, va, beta, n_cycles, stride, g_low, g_high, max_pulses, p, prog_row, erase_row):
    """``n_cycles`` full cycles of one cell; the first (which starts wherever the cell
    is) and then one in every ``stride`` simulated by :func:`_one_cycle`, the ageing of
    the ``stride - 1`` after each of the latter applied in closed form from its pulse
    counts (every cycle starts and ends at the erase level).

    Fills ``prog_row`` / ``erase_row`` per cycle (-1 where ``max_pulses`` did not
    suffice) when they are not empty; returns ``(q, va, beta, program pulses, erase
    pulses, summed verify-read conductance)`` over all cycles.
    """
    total_p, total_e, total_g = 0, 0, 0.0
    c = 0
    while c < n_cycles:
        q, va, beta, n_p, n_e, g_sum = _one_cycle(q, va, beta, g_low, g_high, max_pulses, p)
        block = 1 if c == 0 else min(stride, n_cycles - c)
        va, beta = _aged(va, beta, n_p * (block - 1), n_e * (block - 1), p)
        if prog_row.size:
            for j in range(c, c + block):
                prog_row[j] = n_p if n_p < max_pulses else -1
                erase_row[j] = n_e if n_e < max_pulses else -1
        total_p += n_p * block
        total_e += n_e * block
        total_g += g_sum * block
        c += block
    return q, va, beta, total_p, total_e, total_g


@njit(cache=True)
def _full_cycles(state, n_cycles, stride, seed, g_low, g_high, max_pulses, p, n_prog, n_erase):
    """:func:`_cell_cycles` on every cell, pulses recorded per cycle (``n_prog[c, k]``)."""
    np.random.seed(seed)
    for k in range(state.shape[1]):
        q, va, beta, _, _, _ = _cell_cycles(state[Q_FG, k], state[V_A, k], state[BETA, k],
                                            n_cycles, stride, g_low, g_high, max_pulses, p,
                                            n_prog[:, k], n_erase[:, k])
        state[Q_FG, k], state[V_A, k], state[BETA, k] = q, va, beta


@njit(cache=True)
def _full_cycles_at(state, cells, n_cycles, stride, seed, g_low, g_high, max_pulses, p,
                    n_prog, n_erase, g_read, g_out):
    """:func:`_cell_cycles` on the listed cells, recording totals per cell: pulses of
    each kind, and the summed conductance of the verify reads (``g_read``); the
    conductance reached goes to ``g_out``."""
    np.random.seed(seed)
    no_rows = np.empty(0, dtype=np.int64)
    for m in range(cells.size):
        k = cells[m]
        q, va, beta, n_prog[m], n_erase[m], g_read[m] = _cell_cycles(
            state[Q_FG, k], state[V_A, k], state[BETA, k], n_cycles, stride, g_low, g_high,
            max_pulses, p, no_rows, no_rows)
        state[Q_FG, k], state[V_A, k], state[BETA, k] = q, va, beta
        g_out[k] = _read_current(q, p) / p[READ_VD]


# ---------------------------------------------------------------------- device
@dataclass(frozen=True)
class YFlash(Device):
    """Y-Flash floating-gate memristor (180 nm CMOS), physical compact model.

    Positive pulse counts erase (Fowler-Nordheim, G up), negative ones program
    (hot-electron injection, G down). See the module docstring for the model and for
    every choice the sources leave open.
    """

    # G is defined at the read drain voltage, and the read is nonlinear: read there
    read_voltage_v: float = 2.0
    # estimated from this model (estimated_pulse_energy_j at the window's middle)
    potentiate_energy_j: float = 1.86e-12
    depress_energy_j: float = 1.07e-7

    # capacitive coupling of the floating gate
    c_gd_f: float = 15e-12
    c_gsr_f: float = 1e-12
    c_gsi_f: float = 1e-12
    thermal_voltage_v: float = 0.026
    #: the "5" of ``I_ab = 5 I_s0 (1 - exp(-V_DS/V_T)) + ...``
    above_threshold_leak_factor: float = 5.0
    # read transistor
    read_vth_v: float = 0.87
    read_k_a_per_v2: float = 1.7e-5
    read_is0_a: float = 3e-8
    read_slope_factor: float = 1.85
    # injection transistor
    inj_vth_v: float = 1.32
    inj_k_a_per_v2: float = 3.4e-5
    inj_is0_a: float = 6e-8
    inj_slope_factor: float = 2.405
    # hot-electron injection (program)
    hei_p0: float = 5e-3
    hei_min_vfg_v: float = 0.1
    # Fowler-Nordheim tunnelling (erase)
    fn_xi_a_per_v2: float = 3e-9
    fn_vbi_v: float = 5.0
    # operating points
    program_drain_v: float = 5.0
    program_source_v: float = 0.0
    program_time_s: float = 200e-6
    erase_drain_v: float = 0.0
    erase_source_v: float = 8.0
    erase_time_s: float = 100e-6
    read_drain_v: float = 2.0
    #: terminals an operation does not name float (drop out of the FG charge sharing)
    floating_unbiased_terminals: bool = True
    # ageing (per pulse, relaxation toward a limit)
    va_age_limit_v: float = 24.0
    beta_age_limit_v: float = 11.5
    ageing_time_constant_program_s: float = 1.0
    ageing_time_constant_erase_s: float = 0.5
    # the single fitted device of the compact-model paper (nominal_state)
    va_nominal_v: float = 22.5
    beta_nominal_v: float = 8.0
    # device-to-device population (init_state)
    va_mean_v: float = 23.4
    va_std_v: float = 0.8
    beta_mean_v: float = 9.0
    beta_std_v: float = 0.8
    q_init_c: float = -1e-11
    q_init_rel_std: float = 0.01
    # cycle-to-cycle: relative spread of each pulse's charge increment
    c2c_rel: float = 0.15
    # hard bounds: charge window where the model is used (G from ~0.34 nS to ~1.03 uS)
    q_fg_min_c: float = -19e-12
    q_fg_max_c: float = -8.5e-12
    # full program / full erase verify levels (read conductance)
    full_cycle_g_low_s: float = 0.5e-9
    full_cycle_g_high_s: float = 0.3e-6

    name: ClassVar[str] = "yflash"
    #: program steps are geometric and erase steps shrink with G, so up and down steps
    #: balance only near 100 nS (about +19 / -20 nS per pulse there, against +33 / -66 nS
    #: at 500 nS): 0.1 of the ~1 uS range
    operating_level: ClassVar[float] = 0.1
    state_names: ClassVar[tuple[str, ...]] = ("q_fg_c", "va_v", "beta_v")
    #: V_a and beta relax toward their limits with every program / erase pulse
    ageing_names: ClassVar[tuple[str, ...]] = ("va_v", "beta_v")
    source: ClassVar[str] = (
        "Wang et al., Appl. Phys. Lett. 119, 263504 (2021) (physical compact model); "
        "Danial et al., Nat. Electron. 2, 596 (2019) (Y-Flash device); "
        "Wang et al., Nat. Electron. 5, 870 (2022) (population statistics). "
        "Choices the sources leave open are listed in neuromem/devices/yflash.py"
    )

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        if not isinstance(self.floating_unbiased_terminals, bool):
            raise TypeError("YFlash.floating_unbiased_terminals must be a bool")
        self._check_positive(
            "c_gd_f", "c_gsr_f", "c_gsi_f", "thermal_voltage_v",
            "read_k_a_per_v2", "read_is0_a", "read_slope_factor",
            "inj_k_a_per_v2", "inj_is0_a", "inj_slope_factor",
            "hei_min_vfg_v", "fn_xi_a_per_v2", "fn_vbi_v",
            "program_drain_v", "program_time_s", "erase_source_v", "erase_time_s",
            "read_drain_v", "va_age_limit_v", "beta_age_limit_v",
            "ageing_time_constant_program_s", "ageing_time_constant_erase_s",
            "va_nominal_v", "beta_nominal_v", "va_mean_v", "beta_mean_v",
            "full_cycle_g_low_s", "full_cycle_g_high_s",
        )
        self._check_nonnegative(
            "above_threshold_leak_factor", "read_vth_v", "inj_vth_v",
            "program_source_v", "erase_drain_v",
            "va_std_v", "beta_std_v", "q_init_rel_std", "c2c_rel",
        )
        self._check_fraction("hei_p0")
        for name in ("q_fg_min_c", "q_fg_max_c", "q_init_c"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"YFlash.{name} must be finite, got {getattr(self, name)!r}")
        self._check_order("program_source_v", "program_drain_v")
        self._check_order("erase_drain_v", "erase_source_v")
        self._check_order("q_fg_min_c", "q_fg_max_c")
        self._check_order("full_cycle_g_low_s", "full_cycle_g_high_s")
        if not self.q_fg_min_c <= self.q_init_c <= self.q_fg_max_c:
            raise ValueError(
                f"YFlash.q_init_c ({self.q_init_c!r}) must lie in [q_fg_min_c, q_fg_max_c]"
            )

    # ------------------------------------------------------------------ kernels glue
    @cached_property
    def _params(self) -> np.ndarray:
        p = np.empty(N_PARAMS)
        p[C_GD], p[C_GSR], p[C_GSI] = self.c_gd_f, self.c_gsr_f, self.c_gsi_f
        p[VT] = self.thermal_voltage_v
        p[R_VTH], p[R_K], p[R_IS0], p[R_N] = (
            self.read_vth_v, self.read_k_a_per_v2, self.read_is0_a, self.read_slope_factor)
        p[I_VTH], p[I_K], p[I_IS0], p[I_N] = (
            self.inj_vth_v, self.inj_k_a_per_v2, self.inj_is0_a, self.inj_slope_factor)
        p[AB_FACTOR] = self.above_threshold_leak_factor
        p[HEI_P0], p[HEI_VMIN] = self.hei_p0, self.hei_min_vfg_v
        p[FN_XI], p[FN_VBI] = self.fn_xi_a_per_v2, self.fn_vbi_v
        p[PROG_VD], p[PROG_VS], p[PROG_T] = (
            self.program_drain_v, self.program_source_v, self.program_time_s)
        p[ER_VD], p[ER_VS], p[ER_T] = self.erase_drain_v, self.erase_source_v, self.erase_time_s
        p[READ_VD] = self.read_drain_v
        p[VA_LIM], p[BETA_LIM] = self.va_age_limit_v, self.beta_age_limit_v
        p[TAU_P] = self.ageing_time_constant_program_s
        p[TAU_E] = self.ageing_time_constant_erase_s
        p[C2C] = self.c2c_rel
        p[Q_MIN], p[Q_MAX] = self.q_fg_min_c, self.q_fg_max_c
        p[FLOATING] = 1.0 if self.floating_unbiased_terminals else 0.0
        p.setflags(write=False)
        return p

    # ------------------------------------------------------------------ physics
    def init_state(self, n_cells, rng):
        """A fabricated population: per-cell ``Q_init``, ``V_a`` and ``beta`` drawn."""
        state = np.empty((3, n_cells))
        q = self.q_init_c * (1.0 + self.q_init_rel_std * rng.standard_normal(n_cells))
        state[Q_FG] = np.clip(q, self.q_fg_min_c, self.q_fg_max_c)
        # normal draws; a non-positive V_a or beta is unphysical (never at the defaults)
        state[V_A] = np.maximum(self.va_mean_v + self.va_std_v * rng.standard_normal(n_cells),
                                1e-3)
        state[BETA] = np.maximum(
            self.beta_mean_v + self.beta_std_v * rng.standard_normal(n_cells), 1e-3)
        return state

    def nominal_state(self, n_cells: int) -> np.ndarray:
        """``n_cells`` copies of the single fitted device of the compact-model paper.

        ``V_a = va_nominal_v``, ``beta = beta_nominal_v``, ``Q_FG = q_init_c``; no spread.
        """
        state = np.empty((3, n_cells))
        state[Q_FG] = self.q_init_c
        state[V_A] = self.va_nominal_v
        state[BETA] = self.beta_nominal_v
        return state

    def apply_pulses_at(self, state, cells, counts, width, seed, g_out, time_s=0.0):
        width = float(width)
        if not width > 0 or not math.isfinite(width):
            raise ValueError(f"width must be finite and > 0, got {width!r}")
        _pulse(state, cells, counts, width, seed, g_out, self._params)

    def conductance(self, state, time_s=0.0):
        out = np.empty(state.shape[1])
        _conductance(state, self._params, out)
        return out

    def conductance_at_charge(self, q_fg_c) -> np.ndarray:
        """Read conductance (S) for floating-gate charges ``q_fg_c`` (no clipping)."""
        q = np.atleast_1d(np.asarray(q_fg_c, dtype=float))
        state = np.zeros((3, q.size))
        state[Q_FG] = q
        return self.conductance(state)

    @cached_property
    def g_min_s(self) -> float:
        """Read conductance at ``q_fg_min_c`` (the lowest a cell can reach)."""
        return float(self.conductance_at_charge(self.q_fg_min_c)[0])

    @cached_property
    def g_max_s(self) -> float:
        """Read conductance at ``q_fg_max_c`` (the highest a cell can reach)."""
        return float(self.conductance_at_charge(self.q_fg_max_c)[0])

    @property
    def full_cycle_levels_s(self) -> tuple[float, float]:
        """``(full_cycle_g_low_s, full_cycle_g_high_s)``, the levels of :meth:`full_cycles`."""
        return (self.full_cycle_g_low_s, self.full_cycle_g_high_s)

    def pulse_duration_s(self, sign):
        return self.erase_time_s if sign > 0 else self.program_time_s

    def estimated_pulse_energy_j(self, sign: int, q_fg_c: float | None = None) -> float:
        """V x I x t of one nominal pulse at charge ``q_fg_c`` (default: window middle).

        Program: drain voltage x drain (channel) current. Erase: source voltage x
        (tunnelling + channel) current; line charging is not included.
        """
        p = self._params
        q = 0.5 * (self.q_fg_min_c + self.q_fg_max_c) if q_fg_c is None else float(q_fg_c)
        if sign > 0:
            v_d, v_si, t_p = self.erase_drain_v, self.erase_source_v, self.erase_time_s
            i_fn = _gate_current(q, self.va_mean_v, self.beta_mean_v, v_d, v_si, p)
            return v_si * (max(i_fn, 0.0) + _drain_current(q, v_d, v_si, p)) * t_p
        v_d, v_si, t_p = self.program_drain_v, self.program_source_v, self.program_time_s
        return (v_d - v_si) * _drain_current(q, v_d, v_si, p) * t_p

    def full_cycles(self, state, n_cycles: int, seed: int, *, max_pulses: int = 10_000,
                    stride: int = 1):
        """Full program / full erase cycling in place (program-and-verify).

        Each cycle programs every cell until ``G <= full_cycle_g_low_s``, then erases
        it until ``G >= full_cycle_g_high_s``. Returns ``(n_program, n_erase)``, int64
        arrays of shape ``(n_cycles, n_cells)`` with the pulses each phase took (-1
        where ``max_pulses`` did not suffice).

        ``stride > 1`` fast-forwards: the first cycle (it starts wherever the cell is),
        then one cycle in every ``stride``, is simulated pulse by pulse, and the ageing
        of the ``stride - 1`` cycles after each of the latter (``V_a`` and ``beta`` only
        move with pulse counts; the charge starts and ends every cycle at the erase
        level) is applied in closed form from that cycle's pulse counts, which are
        reported for the skipped cycles too. Exact for ``stride=1``; the error of a
        larger stride is measured in docs/studies.md.
        """
        n_cycles, stride, max_pulses = _check_cycling(n_cycles, stride, max_pulses)
        n_cells = state.shape[1]
        n_prog = np.zeros((n_cycles, n_cells), dtype=np.int64)
        n_erase = np.zeros((n_cycles, n_cells), dtype=np.int64)
        _full_cycles(state, n_cycles, stride, int(seed), self.full_cycle_g_low_s,
                     self.full_cycle_g_high_s, max_pulses, self._params, n_prog, n_erase)
        return n_prog, n_erase

    def full_cycles_at(self, state, cells, n_cycles: int, seed: int, g_out, *,
                       max_pulses: int = 10_000, stride: int = 1):
        """:meth:`full_cycles` of the flat cells ``cells`` (int64) only, with totals:
        returns ``(n_program, n_erase, g_read_s)``, per listed cell the program and erase
        pulses of all ``n_cycles`` cycles and the summed conductance of their verify
        reads (one before each pulse and one after the last of each phase). The
        conductance each cell ends at is written to ``g_out[cell]``."""
        n_cycles, stride, max_pulses = _check_cycling(n_cycles, stride, max_pulses)
        cells = np.ascontiguousarray(cells, dtype=np.int64)
        n_prog = np.zeros(cells.size, dtype=np.int64)
        n_erase = np.zeros(cells.size, dtype=np.int64)
        g_read = np.zeros(cells.size)
        _full_cycles_at(state, cells, n_cycles, stride, int(seed), self.full_cycle_g_low_s,
                        self.full_cycle_g_high_s, max_pulses, self._params, n_prog, n_erase,
                        g_read, g_out)
        return n_prog, n_erase, g_read


def _check_cycling(n_cycles, stride, max_pulses) -> tuple[int, int, int]:
    """Validated ``(n_cycles >= 0, stride >= 1, max_pulses >= 1)`` as ints."""
    for name, value, least in (("n_cycles", n_cycles, 0), ("stride", stride, 1),
                               ("max_pulses", max_pulses, 1)):
        if not isinstance(value, Integral) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
        if value < least:
            raise ValueError(f"{name} must be >= {least}, got {value}")
    return int(n_cycles), int(stride), int(max_pulses)
