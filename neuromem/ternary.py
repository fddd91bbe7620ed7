"""Ternary synapses on crossbars of MTJ pairs, with stochastic in-array updates.

Each cell holds two binary MTJs (:class:`neuromem.devices.MTJ`), ``plus`` and
``minus``, and stores the weight ``w = plus - minus`` in three canonical states::

    +1 = (P, AP)      0 = (AP, AP)      -1 = (AP, P)      (P = parallel, low R)

**Read (gated XNOR).** Row ``i`` is driven at ``a_i V_read`` with ``a_i`` in
``{-1, 0, +1}`` (0 = row off: the gate); the plus device of cell ``(i, j)`` sits on
column ``j+``, the minus device on ``j-``, and the sense amplifier takes ``I(j+) -
I(j-)``. A cell then contributes ``a_i (G+ - G-) V_read``, which is
``(G_P - G_AP) V_read`` times ``XNOR(a_i, w_ij)`` (+1 for equal signs, -1 for
opposite ones) and exactly nothing when either is 0, up to the device-to-device
mismatch of the two resistances. :meth:`TernaryCrossbar.read` returns the column
currents; :attr:`TernaryCrossbar.unit_current_a` converts them to counts of XNORs.
A DAC may instead drive a row at any level ``a_i`` in ``[-1, 1]`` (grey-level pixels):
the column then sums ``a_i w_ij`` in the same units.

**Update (stochastic, one level at a time).** After GXNOR-Net (Deng et al., *Neural
Networks* 100, 49, 2018), a weight never holds a float: the wanted step ``Δw`` becomes
a move of one level with probability ``p = tanh(|Δw|)`` (their ``τ``; ``m`` and the
learning rate are folded into ``Δw``), towards ``-sign(gradient)``. In the array the
probability is the switching probability of the one device that makes the move, set
by the pulse width through the precessional switching law
``P_sw = 1 - erf(π / (2√2 θ0) exp(-Δt V / (C R)))`` (Greenberg-Toledo et al.,
*Semicond. Sci. Technol.* 36, 114003, 2021): :meth:`TernaryCrossbar.pulse_widths`
inverts it with the nominal parameters, ``Δt = (C R / V) ln(a / erfc⁻¹(p))``,
``a = π / (2√2 θ0)``. The rows are gated by the sign of the input (no pulse where it is
0) and the columns timed by the width for their error, so one sample's update is
row-gated and column-parallel, as in the in-situ training of Greenberg-Toledo et al.
Each device switches with its *own* probability: device-to-device spread of the
resistances (``MTJ.d2d_r_rel``) and of the thermal stability (``d2d_delta_rel``)
makes the realised probability differ from the one the controller aimed at. A cell
at ``+1`` asked to move up (or at ``-1`` asked down) gets no pulse.

The periphery that turns currents into numbers and back (ADC, DAC, comparators,
digital arithmetic) is :class:`TernaryPeriphery`; every read, pulse and conversion is
booked in an :class:`neuromem.EnergyLedger`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from numbers import Integral, Real

import numpy as np
from scipy.special import erfcinv

from . import _ternary_kernels as kern
from .devices import MTJ, get_device
from .energy import EnergyLedger

#: per-operation names booked in the ledger
READ, READ_BACK, PULSE_POT, PULSE_DEP = "read", "read_back", "pulse_set", "pulse_reset"
#: ``state_dict`` format tag
STATE_FORMAT = "neuromem-ternary-crossbar-1"


def _check_int(name, value, low):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_real(name, value, low, high=math.inf, low_open=False):
    if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < low or value > high or (low_open and value == low):
        raise ValueError(f"{name} must lie in {'(' if low_open else '['}{low}, {high}], got {value!r}")


def _drives(x, name, width):
    """Row drives ``x`` as ``(batch, width)``: int8 when they hold only -1, 0, +1 (a
    digital gate), else float64 levels in ``[-1, 1]`` (a DAC's fraction of ``V_read``)."""
    x = np.asarray(x)
    if x.dtype.kind in "biu":
        return _ternary(x, name, width)
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must be a numeric or boolean array, got dtype {x.dtype}")
    if x.ndim not in (1, 2) or x.shape[-1] != width:
        raise ValueError(f"{name} must have shape ({width},) or (batch, {width}), got {x.shape}")
    x2 = x.reshape(-1, width)
    if not np.all(np.abs(x2) <= 1.0):  # also refuses NaN
        raise ValueError(f"{name} must hold drive levels in [-1, 1] (fractions of V_read)")
    return np.ascontiguousarray(x2, dtype=np.float64)


def _ternary(x, name, width):
    """``x`` as int8 ``(batch, width)`` holding only -1, 0, +1 (booleans and 0/1 too)."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric or boolean array, got dtype {x.dtype}")
    if x.ndim not in (1, 2) or x.shape[-1] != width:
        raise ValueError(f"{name} must have shape ({width},) or (batch, {width}), got {x.shape}")
    x2 = x.reshape(-1, width)
    if not np.all((x2 == 0) | (x2 == 1) | (x2 == -1)):
        raise ValueError(f"{name} must hold only -1, 0 and +1")
    return np.ascontiguousarray(x2, dtype=np.int8)


@dataclass(frozen=True)
class TernaryPeriphery:
    """Costs and resolution of the mixed-signal periphery of a ternary array.

    adc_bits, dac_bits
        Resolution of the column/row ADCs and of the DACs that drive error voltages.
    conversion_step_energy_j
        Walden figure of merit: one conversion of a ``b``-bit converter costs
        ``2**b`` times this; a comparator decision is a 1-bit conversion. Assumed
        10 fJ per step, the order of moderate-speed SAR ADCs in Murmann's ADC
        Performance Survey (1997-2023).
    digital_op_energy_j
        One digital operation (a 16-bit floating-point multiply and add: 1.1 + 0.4 pJ
        at 45 nm, Horowitz, ISSCC 2014).
    digital_add_energy_j
        One add of the gradient accumulator where a ternary drive selects the error,
        its negative or nothing (a 16-bit floating-point add: 0.4 pJ at 45 nm, Horowitz,
        ISSCC 2014).
    """

    adc_bits: int = 8
    dac_bits: int = 8
    conversion_step_energy_j: float = 10e-15
    digital_op_energy_j: float = 1.5e-12
    digital_add_energy_j: float = 0.4e-12

    def __post_init__(self):
        for name in ("adc_bits", "dac_bits"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or not 1 <= value <= 16:
                raise ValueError(f"TernaryPeriphery.{name} must be an integer in 1..16, got {value!r}")
        for name in ("conversion_step_energy_j", "digital_op_energy_j", "digital_add_energy_j"):
            value = getattr(self, name)
            if not isinstance(value, Real) or isinstance(value, bool) or not (
                    math.isfinite(value) and value >= 0):
                raise ValueError(f"TernaryPeriphery.{name} must be finite and >= 0, got {value!r}")

    def describe(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @staticmethod
    def _quantize(values, full_scale, bits):
        if not (isinstance(full_scale, Real) and math.isfinite(full_scale) and full_scale > 0):
            raise ValueError(f"full_scale must be finite and > 0, got {full_scale!r}")
        step = 2.0 * full_scale / (2**bits - 1)
        out = np.asarray(values, dtype=float) / step  # a new array: the rest works in place
        np.rint(out, out=out)
        out *= step
        return np.clip(out, -full_scale, full_scale, out=out)

    def adc(self, values, full_scale, ledger: EnergyLedger) -> np.ndarray:
        """Signed mid-tread conversion of ``values`` over ``±full_scale`` (same units)."""
        out = self._quantize(values, full_scale, self.adc_bits)
        ledger.record("adc", out.size, out.size * self.conversion_step_energy_j * 2**self.adc_bits)
        return out

    def dac(self, values, full_scale, ledger: EnergyLedger) -> np.ndarray:
        """The levels a ``dac_bits`` DAC produces for ``values`` over ``±full_scale``."""
        out = self._quantize(values, full_scale, self.dac_bits)
        ledger.record("dac", out.size, out.size * self.conversion_step_energy_j * 2**self.dac_bits)
        return out

    def threshold(self, values, level, ledger: EnergyLedger, *, ternary: bool) -> np.ndarray:
        """Comparators: ``sign(values)`` (binary, one per value; 0 maps to +1) or the
        ternary ``+1 / 0 / -1`` against ``±level`` (two per value). int8."""
        values = np.asarray(values, dtype=float)
        if ternary:
            out = (values > level).astype(np.int8) - (values < -level).astype(np.int8)
            n = 2 * values.size
        else:
            out = np.where(values >= 0, 1, -1).astype(np.int8)
            n = values.size
        ledger.record("comparator", n, n * 2 * self.conversion_step_energy_j)
        return out

    def digital(self, n_ops: int, ledger: EnergyLedger) -> None:
        """Book ``n_ops`` digital operations."""
        ledger.record("digital", int(n_ops), int(n_ops) * self.digital_op_energy_j)

    def accumulate(self, x, n_cols: int, ledger: EnergyLedger) -> None:
        """Book the digital accumulation of ``xᵀ δ`` for drives ``x`` (``(batch, rows)``)
        and ``n_cols`` error columns. Ternary drives (int8 in {-1, 0, +1}) select the
        error, its negative or nothing, so each nonzero drive costs ``n_cols`` adds and a
        zero drive none; drives from DACs (floats) cost a multiply and add per product."""
        x = np.asarray(x)
        if x.dtype == np.int8:
            n = int(np.count_nonzero(x)) * int(n_cols)
            ledger.record("digital_add", n, n * self.digital_add_energy_j)
        else:
            self.digital(x.size * int(n_cols), ledger)


class TernaryCrossbar:
    """A ``rows x cols`` array of ternary cells, each a pair of MTJs.

    Parameters
    ----------
    rows, cols : int
        Inputs (word lines) and outputs (pairs of bit lines).
    device : MTJ or "mtj"
        The MTJ parameters (with ``d2d_r_rel``, the spread of the resistances).
    d2d_delta_rel : float
        Lognormal device-to-device spread (sigma) of the thermal stability ``delta``,
        which sets each device's switching-law prefactor. Assumed 0 by default.
    max_width_s : float
        Longest pulse the width generator makes (a requested probability above what it
        reaches is clipped to it).
    min_probability : float
        Requested probabilities below this produce no pulse.
    init : tuple of three floats
        Probabilities of the states ``-1, 0, +1`` in the initial random state (after a
        reset and a random write at fabrication; not booked).
    seed : int or None
        Seeds fabrication (spread, initial state) and the switching noise.
    ledger : EnergyLedger or None
        Where reads and pulses are booked (a new one if None).
    """

    def __init__(self, rows, cols, device="mtj", *, d2d_delta_rel=0.0, max_width_s=20e-9,
                 min_probability=1e-3, init=(1 / 3, 1 / 3, 1 / 3), seed=None, ledger=None):
        _check_int("rows", rows, 1)
        _check_int("cols", cols, 1)
        device = get_device(device)
        if not isinstance(device, MTJ):
            raise ValueError(f"device must be an MTJ (a pair of them makes a ternary cell), "
                             f"got {type(device).__name__}")
        _check_real("d2d_delta_rel", d2d_delta_rel, 0.0)
        _check_real("max_width_s", max_width_s, 0.0, low_open=True)
        _check_real("min_probability", min_probability, 0.0, 1.0, low_open=True)
        init = np.asarray(init, dtype=float)
        if init.shape != (3,) or not np.all(np.isfinite(init)) or np.any(init < 0) or not (
                abs(init.sum() - 1.0) < 1e-9):
            raise ValueError(f"init must be three probabilities (of -1, 0, +1) summing to 1, got {init.tolist()}")
        if ledger is not None and not isinstance(ledger, EnergyLedger):
            raise TypeError(f"ledger must be an EnergyLedger or None, got {type(ledger).__name__}")
        self.rows, self.cols = int(rows), int(cols)
        self.device = device
        self.d2d_delta_rel = float(d2d_delta_rel)
        self.max_width_s = float(max_width_s)
        self.min_probability = float(min_probability)
        self.ledger = EnergyLedger() if ledger is None else ledger
        self.rng = np.random.default_rng(seed)
        shape = (self.rows, self.cols)
        self._dev = {name: self._fabricate(shape) for name in ("plus", "minus")}
        w = self.rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=shape, p=init)
        self._plus = (w == 1).astype(np.uint8)
        self._minus = (w == -1).astype(np.uint8)
        self._refresh()

    # ------------------------------------------------------------------ fabrication
    def _fabricate(self, shape):
        n = shape[0] * shape[1]
        drawn = self.device.init_state(n, self.rng)  # rows: parallel, r_p, r_ap
        dev = np.empty((3,) + shape)
        dev[kern.R_P] = drawn[1].reshape(shape)
        dev[kern.R_AP] = drawn[2].reshape(shape)
        delta = self.device.delta * np.exp(self.d2d_delta_rel * self.rng.standard_normal(shape))
        dev[kern.PREFACTOR] = math.pi * np.sqrt(delta) / 2.0  # pi / (2 sqrt2 theta0)
        return dev

    def _refresh(self):
        self._g_diff = np.empty((self.rows, self.cols))
        self._g_sum = np.empty((self.rows, self.cols))
        self._g_diff_groups = {}
        kern.conductances(self._plus, self._minus, self._dev["plus"], self._dev["minus"],
                          self._g_diff, self._g_sum)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    # ------------------------------------------------------------------ state
    @property
    def weights(self) -> np.ndarray:
        """The stored weights, int8 in ``{-1, 0, +1}`` (read from the two bits)."""
        return self._plus.astype(np.int8) - self._minus.astype(np.int8)

    @property
    def device_bits(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the ``plus`` and ``minus`` bits (1 = parallel)."""
        return self._plus.copy(), self._minus.copy()

    @property
    def unit_current_a(self) -> float:
        """Nominal current of one matching ``(a, w)`` pair: ``V_read (1/R_P - 1/R_AP)``."""
        d = self.device
        return d.read_voltage_v * (1.0 / d.r_p_ohm - 1.0 / d.r_ap_ohm)

    # ------------------------------------------------------------------ read
    def _check_group(self, group):
        if not isinstance(group, Integral) or isinstance(group, bool) or group < 1 or self.cols % group:
            raise ValueError(f"group must be an integer >= 1 that divides cols ({self.cols}), got {group!r}")
        return int(group)

    def _grouped(self, group):
        """``G+ - G-`` with each run of ``group`` adjacent columns summed (the wired sum
        of their currents), cached until the next write."""
        if group == 1:
            return self._g_diff
        if group not in self._g_diff_groups:
            self._g_diff_groups[group] = self._g_diff.reshape(self.rows, -1, group).sum(axis=2)
        return self._g_diff_groups[group]

    def read(self, a, group=1) -> np.ndarray:
        """Column currents (amperes, ``(batch, cols // group)``) for row drives ``a`` in
        {-1, 0, +1} (gated rows) or, from DACs, any levels in ``[-1, 1]``.

        Each row is driven at ``a_i V_read``; the result is the differential current
        of each column pair, ``V_read Σ_i a_i (G+_ij - G-_ij)`` (the MTJs are ohmic
        over the read range), and the energy ``t_read Σ_i (a_i V_read)² Σ_j G_ij``.
        With ``group`` ``k`` > 1, each run of ``k`` adjacent columns shares one sense
        line, which carries the sum of their currents (several cells of one weight).
        """
        group = self._check_group(group)
        a2 = _drives(a, "a", self.rows)
        v = self.device.read_voltage_v
        drive = (np.abs(a2) if a2.dtype == np.int8 else np.square(a2)).sum(axis=0, dtype=np.float64)
        energy = self.device.read_time_s * v * v * float(drive @ self._g_sum.sum(axis=1))
        self.ledger.record(READ, a2.shape[0], energy)
        out = (a2.astype(np.float64) @ self._grouped(group)) * v
        return out if np.ndim(a) == 2 else out[0]

    def read_back(self, v_cols, group=1) -> np.ndarray:
        """Row currents for column voltages ``v_cols`` (volts, ``|v| <= read_voltage_v``):
        ``v @ (G+ - G-).T``, the transposed read of the backward pass. With ``group``
        ``k`` > 1, ``v_cols`` holds one voltage per run of ``k`` adjacent columns, which
        one driver sets on all of them (``(batch, cols // group)``)."""
        group = self._check_group(group)
        n_drivers = self.cols // group
        v = np.asarray(v_cols, dtype=float)
        if v.ndim not in (1, 2) or v.shape[-1] != n_drivers:
            raise ValueError(f"v_cols must have shape ({n_drivers},) or (batch, {n_drivers}), got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError("v_cols must be finite")
        v_max = self.device.read_voltage_v
        if v.size and np.max(np.abs(v)) > v_max * (1 + 1e-9):
            raise ValueError(f"v_cols exceeds the read range |v| <= {v_max:g} V")
        v2 = v.reshape(-1, n_drivers)
        column_g = self._g_sum.sum(axis=0).reshape(n_drivers, group).sum(axis=1)
        energy = self.device.read_time_s * float(np.sum(np.square(v2) @ column_g))
        self.ledger.record(READ_BACK, v2.shape[0], energy)
        out = v2 @ self._grouped(group).T
        return out if v.ndim == 2 else out[0]

    # ------------------------------------------------------------------ update
    def switching_probability(self, width_s, setting: bool = True) -> np.ndarray:
        """Nominal probability that one pulse of ``width_s`` switches a device:
        AP -> P with the potentiating voltage (``setting=True``) or P -> AP with the
        depressing one."""
        d = self.device
        if setting:
            return d.switching_probability(width_s, d.pulse_voltage_v, d.r_ap_ohm)
        return d.switching_probability(width_s, -d.depress_voltage_v, d.r_p_ohm)

    def pulse_widths(self, p) -> tuple[np.ndarray, np.ndarray]:
        """Widths (seconds) of the setting and resetting pulses whose *nominal*
        switching probability is ``p``: the switching law inverted.

        ``p`` below ``min_probability`` gives 0 (no pulse); widths are clipped to
        ``max_width_s``.
        """
        p = np.asarray(p, dtype=float)
        if not np.all((p >= 0) & (p <= 1)):
            raise ValueError("p must hold probabilities in [0, 1]")
        d = self.device
        a = math.pi / (2.0 * math.sqrt(2.0) * d.theta0)
        pulsed = p >= self.min_probability
        x = np.zeros(p.shape)  # the exponent dt V / (C R); inf for p = 1
        with np.errstate(divide="ignore"):
            x[pulsed] = np.log(a / np.abs(erfcinv(p[pulsed])))
        x = np.maximum(x, 0.0)
        out = []
        for v, r in ((d.pulse_voltage_v, d.r_ap_ohm), (d.depress_voltage_v, d.r_p_ohm)):
            out.append(np.minimum(x * (d.switch_charge_c * r / v), self.max_width_s))
        return out[0], out[1]

    def update(self, x, direction, probability) -> dict:
        """Stochastic one-level moves of sample ``b = 0..B-1``, in order.

        ``x`` (``(B, rows)``, in {-1, 0, +1}) gates the rows, ``direction`` (``(B,
        cols)``, in {-1, 0, +1}) gives each column's polarity and ``probability``
        (``(B, cols)``) the switching probability the controller aims at; cell
        ``(i, j)`` moves one level towards ``sign(x_i direction_j)`` with the
        probability its own device realises for the width of that aim. Returns the
        pulses and switches of this call.
        """
        xb = _ternary(x, "x", self.rows)
        db = _ternary(direction, "direction", self.cols)
        p = np.asarray(probability, dtype=float)
        if p.shape != db.shape and not (np.ndim(direction) == 1 and p.shape == (self.cols,)):
            raise ValueError(f"probability must have the shape of direction {db.shape}, got {p.shape}")
        p = p.reshape(db.shape)
        if xb.shape[0] != db.shape[0]:
            raise ValueError(f"x has {xb.shape[0]} samples but direction has {db.shape[0]}")
        w_pot, w_dep = self.pulse_widths(p)
        d = self.device
        tally = np.zeros(4, dtype=np.int64)
        energy = np.zeros(2)
        kern.stochastic_update(self._plus, self._minus, self._dev["plus"], self._dev["minus"],
                               xb, db, np.ascontiguousarray(w_pot), np.ascontiguousarray(w_dep),
                               float(d.pulse_voltage_v), float(d.depress_voltage_v),
                               float(d.switch_charge_c), int(self.rng.integers(1, 2**31 - 1)),
                               self._g_diff, self._g_sum, tally, energy)
        self._g_diff_groups = {}  # the writes changed the conductances
        self.ledger.record(PULSE_POT, int(tally[kern.POT_PULSES]), float(energy[0]))
        self.ledger.record(PULSE_DEP, int(tally[kern.DEP_PULSES]), float(energy[1]))
        self.ledger.record("switch", int(tally[kern.SWITCHES]), 0.0)
        return {"set_pulses": int(tally[kern.POT_PULSES]), "reset_pulses": int(tally[kern.DEP_PULSES]),
                "switches": int(tally[kern.SWITCHES]), "saturated": int(tally[kern.SATURATED])}

    def update_cells(self, direction, probability) -> dict:
        """Row-by-row programming: cell ``(i, j)`` moves one level towards
        ``direction[i, j]`` (in {-1, 0, +1}) with the probability its device realises for
        the width aimed at ``probability[i, j]``. Each row is gated in turn and its
        columns timed by their own widths (``rows`` row steps of :meth:`update`)."""
        d = _ternary(direction, "direction", self.cols)
        if d.shape != self.shape:
            raise ValueError(f"direction must have shape {self.shape}, got {d.shape}")
        return self.update(np.eye(self.rows, dtype=np.int8), d, probability)

    # ------------------------------------------------------------------ copy and program
    def read_states(self) -> np.ndarray:
        """The stored weights as the periphery senses them, one row at a time (each
        row driven alone at ``V_read``, every column pair's sign sensed): int8 in
        ``{-1, 0, +1}``. Booked as ``rows`` reads."""
        v = self.device.read_voltage_v
        energy = self.device.read_time_s * v * v * float(self._g_sum.sum())
        self.ledger.record(READ, self.rows, energy)
        return self.weights

    def program(self, target, max_rounds: int = 100) -> dict:
        """Program-and-verify the cells to ``target`` (int, ``{-1, 0, +1}``, the shape
        of the array): each round reads the states (:meth:`read_states`) and pulses
        every cell that differs one level towards its target at the longest width
        (:meth:`update_cells`), until none differs. A cell two levels away takes two
        rounds at least: a transition never skips a state. Returns the pulses,
        switches and rounds; RuntimeError if cells still differ after ``max_rounds``."""
        t = np.asarray(target)
        if t.shape != self.shape or t.dtype.kind not in "iu" or (t.size and (t.min() < -1 or t.max() > 1)):
            raise ValueError(f"target must be integers in {{-1, 0, +1}} of shape {self.shape}, "
                             f"got {t.dtype} {t.shape}")
        _check_int("max_rounds", max_rounds, 1)
        done = {"set_pulses": 0, "reset_pulses": 0, "switches": 0, "rounds": 0}
        t = t.astype(np.int8)
        for _ in range(max_rounds):
            direction = np.sign(t - self.read_states()).astype(np.int8)
            if not direction.any():
                return done
            moved = self.update_cells(direction, np.abs(direction).astype(float))
            for key in ("set_pulses", "reset_pulses", "switches"):
                done[key] += moved[key]
            done["rounds"] += 1
        if np.any(self.read_states() != t):
            raise RuntimeError(f"program: cells still differ from the target after {max_rounds} rounds")
        return done

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> tuple[dict, dict]:
        """``(arrays, meta)``: the bits, the fabricated device parameters and the random
        stream; JSON-ready ``meta``."""
        arrays = {"plus": self._plus.copy(), "minus": self._minus.copy(),
                  "dev_plus": self._dev["plus"].copy(), "dev_minus": self._dev["minus"].copy()}
        meta = {"format": STATE_FORMAT, "rows": self.rows, "cols": self.cols,
                "device": self.device.describe(), "d2d_delta_rel": self.d2d_delta_rel,
                "max_width_s": self.max_width_s, "min_probability": self.min_probability,
                "rng": self.rng.bit_generator.state}
        return arrays, meta

    @classmethod
    def from_state_dict(cls, arrays: dict, meta: dict, ledger=None) -> "TernaryCrossbar":
        """Rebuild an array from :meth:`state_dict` (validated: shapes, bits, parameters)."""
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"not a ternary crossbar state (format {meta.get('format')!r})")
        spec = dict(meta["device"])
        name = spec.pop("device")
        spec.pop("source", None)
        xbar = cls(meta["rows"], meta["cols"], get_device(name, **spec),
                   d2d_delta_rel=meta["d2d_delta_rel"], max_width_s=meta["max_width_s"],
                   min_probability=meta["min_probability"], seed=0, ledger=ledger)
        shape = xbar.shape
        for key in ("plus", "minus"):
            a = np.asarray(arrays[key])
            if a.shape != shape or a.dtype != np.uint8 or not np.all(a <= 1):
                raise ValueError(f"{key} bits must be uint8 0/1 of shape {shape}")
        if np.any((arrays["plus"] == 1) & (arrays["minus"] == 1)):
            raise ValueError("a cell holds both devices parallel (not a canonical ternary state)")
        for key in ("dev_plus", "dev_minus"):
            a = np.asarray(arrays[key])
            if a.shape != (3,) + shape or not np.all(np.isfinite(a)) or not np.all(a > 0):
                raise ValueError(f"{key} must be positive finite of shape {(3,) + shape}")
        xbar._plus = np.ascontiguousarray(arrays["plus"])
        xbar._minus = np.ascontiguousarray(arrays["minus"])
        xbar._dev = {"plus": np.ascontiguousarray(arrays["dev_plus"], dtype=float),
                     "minus": np.ascontiguousarray(arrays["dev_minus"], dtype=float)}
        xbar.rng.bit_generator.state = meta["rng"]
        xbar._refresh()
        return xbar
