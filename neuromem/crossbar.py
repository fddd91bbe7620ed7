"""A passive 1R crossbar of one device family.

Rows are driven by voltages, columns collect current (Kirchhoff's current law,
``I_j = sum_i V_i G_ij``). A signed weight is a conductance difference:

``"reference"``
    ``W = G+ - G-``: only ``G+`` is pulsed, ``G-`` is a static reference device of the
    same population (the Y-Flash DBN of Wang et al., Nat. Electron. 2022).
``"differential"``
    ``W = G+ - G-`` with both devices pulsed push-pull: a positive count raises ``G+``
    and lowers ``G-`` by the same number of pulses.
``"single"``
    ``W = G``: one unsigned device per weight (excitatory spiking synapses).

The crossbar keeps the device state arrays, a float32 copy of the effective
conductance for fast reads, fault masks, a clock (for drift) and an energy ledger.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from . import _crossbar_kernels as kern
from .devices import Device, get_device
from .energy import EnergyLedger

SCHEMES = ("reference", "differential", "single")
#: fault kinds, coded 1, 2, 3 in the fault-kind arrays (0 = healthy)
FAULT_KINDS = ("stuck_low", "stuck_high", "dead")
_SIGN_MINUS = {"reference": 1.0, "differential": 1.0, "single": 0.0}
#: binary reads sum the driven lines when fewer than this fraction is driven, else GEMM
#: (measured break-even of the two on a 785 x 501 array: 35-45 % of the lines driven)
_SPARSE_DRIVE = 0.4


@dataclass(frozen=True)
class ProgramResult:
    """Outcome of :meth:`Crossbar.program`."""

    pulses: np.ndarray  #: pulses used per cell, ``(rows, cols)``
    missed: np.ndarray  #: True where the target was not reached within tolerance
    conductance_s: np.ndarray  #: conductance reached, ``(rows, cols)``

    @property
    def n_missed(self) -> int:
        return int(self.missed.sum())


def _check_count(name, value):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _check_rate(name, value):
    if not isinstance(value, Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def _check_nonneg(name, value):
    if not isinstance(value, Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


class Crossbar:
    """A ``rows x cols`` passive array of one device family.

    Parameters
    ----------
    rows, cols : int
        Array size. Row ``i`` is input ``i``; column ``j`` is output ``j``.
    device : Device or str
        A device parameter set (``neuromem.devices.YFlash()``) or its name
        (``"ideal"``, ``"yflash"``, ``"softbounds"``, ``"vteam"``, ``"pcm"``, ``"mtj"``).
    scheme : {"reference", "differential", "single"}
        How a signed weight is made of conductances (see module docstring).
    read_noise_rel, read_noise_a : float
        Gaussian noise added to every column current of every read: standard deviation
        ``read_noise_rel * |I| + read_noise_a`` (output noise, as aihwkit's ``out_noise``;
        variates come from a fixed 2**16-entry normal table at random indices).
    stuck_low_rate, stuck_high_rate, dead_rate : float
        Fractions of cells stuck at the device's ``g_min_s``, at ``g_max_s``, or open
        (0 S). They are drawn once, at construction, from ``seed``.
    seed : int or None
        Seeds device-to-device spread, faults, cycle-to-cycle and read noise.
    ledger : EnergyLedger, optional
        Where reads and pulses are recorded (shared between arrays of one chip).
    """

    def __init__(self, rows, cols, device: Device | str = "ideal", *, scheme="reference",
                 read_noise_rel=0.0, read_noise_a=0.0, stuck_low_rate=0.0,
                 stuck_high_rate=0.0, dead_rate=0.0, seed=None,
                 ledger: EnergyLedger | None = None):
        self.rows = _check_count("rows", rows)
        self.cols = _check_count("cols", cols)
        self.device = get_device(device)
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        self.scheme = scheme
        self.read_noise_rel = _check_nonneg("read_noise_rel", read_noise_rel)
        self.read_noise_a = _check_nonneg("read_noise_a", read_noise_a)
        rates = {n: _check_rate(n, v) for n, v in (("stuck_low_rate", stuck_low_rate),
                                                   ("stuck_high_rate", stuck_high_rate),
                                                   ("dead_rate", dead_rate))}
        if sum(rates.values()) > 1.0:
            raise ValueError(f"fault rates add up to more than 1: {rates}")
        self.fault_rates = rates
        self.rng = np.random.default_rng(seed)
        self.ledger = ledger if ledger is not None else EnergyLedger()
        self.time_s = 0.0
        #: True for a crossbar restored from conductances alone: it reads, never writes
        self.read_only = False

        n = self.rows * self.cols
        self._state_plus = self.device.init_state(n, self.rng)
        if scheme == "single":
            self._state_minus = None
        else:
            # the reference/minus devices come from the same population
            self._state_minus = self.device.init_state(n, self.rng)
        self._fault_plus, self._fault_kind_plus = self._draw_faults(n)
        self._fault_minus = self._draw_faults(n)[0] if scheme == "differential" else None
        self._g_plus = np.empty(n)
        self._g_minus = np.zeros(n)
        self._pulses_plus = np.zeros(n, dtype=np.int64)
        self._pulses_minus = np.zeros(n, dtype=np.int64)
        self._w32 = np.empty((self.rows, self.cols), dtype=np.float32)
        # the transpose, for binary backward reads; rebuilt on demand after a full refresh
        self._w32t = None
        self._w32t_valid = False
        self._row_sum = np.empty(self.rows)
        self._col_sum = np.empty(self.cols)
        self._refresh_all()

    # ------------------------------------------------------------------ faults & caches
    def _draw_faults(self, n):
        """Fault conductances (NaN = healthy) and fault kinds (0 = healthy, see FAULT_KINDS).

        The kind is kept apart from the value: with ``g_min_s == 0`` a stuck-low cell and
        a dead cell read the same 0 S, but they are different faults.
        """
        fault = np.full(n, np.nan)
        kind = np.zeros(n, dtype=np.int8)
        u = self.rng.random(n)
        lo = self.fault_rates["stuck_low_rate"]
        hi = lo + self.fault_rates["stuck_high_rate"]
        dead = hi + self.fault_rates["dead_rate"]
        kind[u < lo] = 1
        kind[(u >= lo) & (u < hi)] = 2
        kind[(u >= hi) & (u < dead)] = 3
        fault[kind == 1] = self.device.g_min_s
        fault[kind == 2] = self.device.g_max_s
        fault[kind == 3] = 0.0
        return fault, kind

    def _kinds_from_values(self, fault):
        """Fault kinds of a fault-value array (for state dicts saved without kinds)."""
        kind = np.zeros(fault.size, dtype=np.int8)
        kind[fault == self.device.g_min_s] = 1
        kind[fault == self.device.g_max_s] = 2
        kind[(fault == 0.0) & (kind == 0)] = 3
        return kind

    def _refresh_all(self):
        """Recompute every conductance from the device state (after drift or load)."""
        self._g_plus[:] = self.device.conductance(self._state_plus, self.time_s)
        if self._state_minus is not None:
            self._g_minus[:] = self.device.conductance(self._state_minus, self.time_s)
        self._g_time_s = self.time_s
        self._refresh_effective()

    def _refresh_effective(self):
        kern.override(self._g_plus, self._fault_plus)
        if self._fault_minus is not None:
            kern.override(self._g_minus, self._fault_minus)
        kern.effective_conductance(self._g_plus, self._g_minus, _SIGN_MINUS[self.scheme],
                                   self._w32, self._row_sum, self._col_sum)
        self._w32t_valid = False

    def _transposed(self):
        """``_w32.T`` as a C-contiguous float32 array (kept in step by sparse updates)."""
        if not self._w32t_valid:
            if self._w32t is None:
                self._w32t = np.empty((self.cols, self.rows), dtype=np.float32)
            np.copyto(self._w32t, self._w32.T)
            self._w32t_valid = True
        return self._w32t

    def _check_writable(self):
        if self.read_only:
            raise RuntimeError("this crossbar was restored from its conductances alone (no device "
                               "state): it can be read but not pulsed or programmed")

    def _sync_drift(self):
        if self.device.drifts and not self.read_only and self.time_s != self._g_time_s:
            self._refresh_all()

    # ------------------------------------------------------------------ views
    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def conductance(self) -> np.ndarray:
        """Conductance of the pulsed devices ``G+`` in siemens, ``(rows, cols)`` (a copy)."""
        self._sync_drift()
        return self._g_plus.reshape(self.shape).copy()

    @property
    def reference_conductance(self) -> np.ndarray | None:
        """Conductance of the ``G-`` devices (None for the ``"single"`` scheme)."""
        if self.scheme == "single":
            return None
        self._sync_drift()
        return self._g_minus.reshape(self.shape).copy()

    @property
    def effective_conductance(self) -> np.ndarray:
        """Signed conductance ``G+ - G-`` (or ``G``) in siemens, float32 ``(rows, cols)``."""
        self._sync_drift()
        return self._w32.copy()

    def effective_conductance_at(self, cells) -> np.ndarray:
        """:attr:`effective_conductance` of the flat cells ``cells`` only (float64).

        Costs ``len(cells)``, not a copy of the array: for callers that track the few
        cells they pulsed.
        """
        cells = np.asarray(cells)
        if cells.ndim != 1 or cells.dtype.kind not in "iu":
            raise TypeError(f"cells must be a 1-D integer array, got {cells.dtype} {cells.shape}")
        if cells.size and (cells.min() < 0 or cells.max() >= self.rows * self.cols):
            raise ValueError(f"cells must be flat indices in [0, {self.rows * self.cols})")
        self._sync_drift()
        return self._w32.ravel()[cells].astype(np.float64)

    @property
    def pulse_count(self) -> np.ndarray:
        """Pulses fired into each ``G+`` device so far (programming included), ``(rows, cols)``."""
        return self._pulses_plus.reshape(self.shape).copy()

    @property
    def reference_pulse_count(self) -> np.ndarray | None:
        """Pulses fired into each ``G-`` device (None for the ``"single"`` scheme)."""
        return None if self.scheme == "single" else self._pulses_minus.reshape(self.shape).copy()

    def device_state(self, array: str = "plus") -> dict[str, np.ndarray]:
        """The device state of one array by the device's ``state_names``: a copy of each
        row, ``(rows, cols)`` (Y-Flash: ``q_fg_c``, and its ageing variables ``va_v``,
        ``beta_v``). ``array`` is ``"plus"`` or ``"minus"`` (not for ``"single"``)."""
        if array not in ("plus", "minus") or (array == "minus" and self.scheme == "single"):
            raise ValueError(f"array must be 'plus' or 'minus' (not for 'single'), got {array!r}")
        if self.read_only:
            raise RuntimeError("this crossbar was restored from its conductances alone: it "
                               "holds no device state")
        state = self._state_plus if array == "plus" else self._state_minus
        return {name: state[i].reshape(self.shape).copy()
                for i, name in enumerate(self.device.state_names)}

    @property
    def weight_unit_s(self) -> float:
        """Conductance of one unit of weight: the device's nominal range."""
        return self.device.g_max_s - self.device.g_min_s

    @property
    def weights(self) -> np.ndarray:
        """Signed effective weights, ``effective_conductance / weight_unit_s``."""
        return self.effective_conductance / np.float32(self.weight_unit_s)

    @property
    def faults(self) -> dict[str, np.ndarray]:
        """Boolean masks ``(rows, cols)`` of stuck-low, stuck-high and dead ``G+`` cells."""
        kind = self._fault_kind_plus.reshape(self.shape)
        return {name: kind == code for code, name in enumerate(FAULT_KINDS, start=1)}

    # ------------------------------------------------------------------ read
    def read(self, v, *, binary: bool | None = None, noise: bool = True) -> np.ndarray:
        """Column currents (amperes) for row voltages ``v`` (forward read).

        ``v`` has shape ``(rows,)`` or ``(batch, rows)``. Float input is in volts and
        must stay within the device's read range ``|v| <= read_voltage_v`` (a larger
        voltage would disturb the stored state; it is refused). With ``binary=True`` a
        0/1 input drives its row at the device's ``read_voltage_v`` or leaves it at
        0 V, so binary inputs need no DAC; ``binary=None`` (the default) takes boolean
        arrays and integer arrays holding only 0 and 1 (e.g. the uint8 output of
        :func:`neuromem.data.binarize`) as binary drive. Returns float32 currents of
        shape ``(cols,)`` or ``(batch, cols)``: the differential current ``I+ - I-`` of
        each column.
        """
        return self._read(v, binary, noise, backward=False)

    def read_back(self, v, *, binary: bool | None = None, noise: bool = True) -> np.ndarray:
        """Row currents for column voltages ``v`` of shape ``(cols,)`` or ``(batch, cols)``.

        A passive array conducts both ways: driving the columns and sensing the rows
        computes ``v @ G.T`` on the same devices (the downward pass of an RBM).
        """
        return self._read(v, binary, noise, backward=True)

    def _read(self, v, binary, noise, backward):
        v = np.asarray(v)
        n_in = self.cols if backward else self.rows
        if v.ndim not in (1, 2) or v.shape[-1] != n_in:
            raise ValueError(f"v must have shape ({n_in},) or (batch, {n_in}), got {v.shape}")
        if v.dtype.kind not in "biuf":
            raise TypeError(f"v must be a numeric or boolean array, got dtype {v.dtype}")
        if binary is None:
            # booleans, and integers that hold only 0 and 1, are binary drive, not volts
            binary = v.dtype == np.bool_ or (v.dtype.kind in "iu" and bool(np.all((v == 0) | (v == 1))))
        self._sync_drift()
        x = v.astype(np.float32, copy=False)
        line_sum = self._col_sum if backward else self._row_sum
        if binary:
            scale = self.device.read_voltage_v
            x2 = np.ascontiguousarray(x.reshape(-1, n_in))
            ok, ones, drive = kern.binary_drive(x2, line_sum)
            if not ok:
                raise ValueError("binary=True needs v to hold only 0 and 1")
            energy = self.device.read_time_s * scale**2 * drive
            if ones < _SPARSE_DRIVE * x2.size:
                # a sparse 0/1 drive: sum the driven lines' conductances (no multiplies)
                w = self._transposed() if backward else self._w32
                currents = np.empty((x2.shape[0], w.shape[1]), dtype=np.float32)
                kern.binary_read(x2, w, currents)
                currents = currents.reshape(x.shape[:-1] + (w.shape[1],))
            else:  # dense drive: a float32 GEMM is faster
                currents = x @ (self._w32.T if backward else self._w32)
        else:
            if not np.all(np.isfinite(x)):
                raise ValueError("v must be finite (no NaN or inf)")
            v_max = self.device.read_voltage_v
            peak = float(np.max(np.abs(x))) if x.size else 0.0
            if peak > v_max * (1 + 1e-6):
                raise ValueError(
                    f"read voltage {peak:g} V exceeds the {type(self.device).__name__} read "
                    f"range (|v| <= read_voltage_v = {v_max:g} V); a larger drive would "
                    "disturb the stored state. Pass 0/1 input (binary drive) or volts in range")
            scale = 1.0
            # energy: every driven line dissipates V^2 times its total conductance (a matvec)
            energy = self.device.read_time_s * float(
                np.sum(np.square(x) @ line_sum.astype(np.float32), dtype=np.float64))
            currents = x @ (self._w32.T if backward else self._w32)
        if scale != 1.0:
            currents *= np.float32(scale)
        if noise and (self.read_noise_rel > 0 or self.read_noise_a > 0):
            currents = np.ascontiguousarray(currents)
            kern.add_read_noise(currents, np.float32(self.read_noise_rel),
                                np.float32(self.read_noise_a),
                                int(self.rng.integers(1, 2**63 - 1)), kern.NOISE_TABLE)
        n_reads = 1 if x.ndim == 1 else x.shape[0]
        self.ledger.record("read", n_reads, energy)
        self.time_s += n_reads * self.device.read_time_s
        return currents

    # ------------------------------------------------------------------ write
    def _check_counts(self, counts):
        counts = np.asarray(counts)
        if counts.shape != self.shape:
            raise ValueError(f"counts must have shape {self.shape}, got {counts.shape}")
        if counts.dtype.kind not in "iu":
            raise TypeError(f"counts must be an integer array (pulses), got dtype {counts.dtype}")
        return np.ascontiguousarray(counts, dtype=np.int64).ravel()

    def _pulse_flat(self, counts, width, array="plus", cells=None):
        """Apply flat int64 ``counts`` to one array (no validation), book-keep.

        ``cells`` lists the nonzero entries when the caller already knows them.
        """
        if cells is None:
            cells = np.flatnonzero(counts)
        return self._pulse_cells(cells, counts[cells], width, array)

    def _pulse_cells(self, cells, moved, width, array="plus"):
        """Apply ``moved[m]`` pulses to flat cell ``cells[m]`` of one array (no
        validation), book-keep: pulse tallies, energy, time. Cost ~ ``cells.size``."""
        if cells.size == 0:
            return 0, 0
        tally = self._pulses_plus if array == "plus" else self._pulses_minus
        up, down, longest = kern.tally_pulses(cells, moved, tally)
        seed = int(self.rng.integers(0, 2**32 - 1))
        state, g = ((self._state_plus, self._g_plus) if array == "plus"
                    else (self._state_minus, self._g_minus))
        self._sync_drift()
        self.device.apply_pulses_at(state, cells, moved, float(width), seed, g, self.time_s)
        dev = self.device
        self.ledger.record("potentiate", up, up * dev.pulse_energy_j(+1) * width)
        self.ledger.record("depress", down, down * dev.pulse_energy_j(-1) * width)
        # pulses reach all cells of the array in parallel: the longest train sets the time
        self.time_s += longest * width * max(dev.pulse_duration_s(+1), dev.pulse_duration_s(-1))
        return up, down

    def apply_pulses(self, counts, *, width: float = 1.0) -> tuple[int, int]:
        """Apply signed integer pulses per cell; positive raises the weight.

        ``counts`` has shape ``(rows, cols)``. In the ``"differential"`` scheme the
        ``G-`` device of each cell gets the opposite pulses. ``width`` scales the
        nominal pulse duration. Returns the numbers of potentiating and depressing
        pulses applied to ``G+``. :meth:`apply_pulses_at` takes the same update as a
        list of cells (cheaper when few cells move).
        """
        self._check_writable()
        flat = self._check_counts(counts)
        width = _check_nonneg("width", width)
        cells = np.flatnonzero(flat)
        return self._apply_cells(cells, flat[cells], width)

    def apply_pulses_at(self, cells, counts, *, width: float = 1.0) -> tuple[int, int]:
        """Sparse :meth:`apply_pulses`: ``counts[m]`` pulses into flat cell ``cells[m]``.

        ``cells`` are distinct flat indices ``row * cols + col`` in increasing order
        (as :meth:`DigitalCounter.update_sparse` emits them); ``counts`` are signed
        integers of the same length. The work is proportional to ``len(cells)``; the
        result equals :meth:`apply_pulses` of the matching dense array.
        """
        self._check_writable()
        cells = np.asarray(cells)
        counts = np.asarray(counts)
        if cells.ndim != 1 or counts.shape != cells.shape:
            raise ValueError(f"cells and counts must be 1-D of one length, got shapes "
                             f"{cells.shape} and {counts.shape}")
        if cells.dtype.kind not in "iu" or counts.dtype.kind not in "iu":
            raise TypeError(f"cells and counts must be integer arrays, got dtypes "
                            f"{cells.dtype} and {counts.dtype}")
        width = _check_nonneg("width", width)
        cells = np.ascontiguousarray(cells, dtype=np.int64)
        counts = np.ascontiguousarray(counts, dtype=np.int64)
        if cells.size and not kern.strictly_increasing_within(cells, self.rows * self.cols):
            raise ValueError(f"cells must be strictly increasing flat indices in "
                             f"[0, {self.rows * self.cols})")
        return self._apply_cells(cells, counts, width)

    def _apply_cells(self, cells, moved, width):
        """Both arrays of the scheme pulsed at ``cells``, then the read caches patched."""
        # learning rules touch few cells per update: patch those instead of sweeping
        sparse = 8 * cells.size < self.rows * self.cols and not self.device.drifts
        sign = _SIGN_MINUS[self.scheme]
        if sparse:
            old_line = kern.line_conductance_at(cells, self._g_plus, self._g_minus, sign)
        up, down = self._pulse_cells(cells, moved, width, "plus")
        if self.scheme == "differential":
            self._pulse_cells(cells, -moved, width, "minus")
        if sparse:
            fault_minus = self._fault_minus if self._fault_minus is not None else np.empty(0)
            kern.refresh_cells(cells, self._g_plus, self._g_minus, self._fault_plus, fault_minus,
                               sign, self._w32, self._row_sum, self._col_sum, old_line)
            if self._w32t_valid:
                kern.patch_transposed(cells, self._w32, self._w32t)
        else:
            self._refresh_effective()
        return up, down

    def outer_update(self, row_signs, col_pulses, *, width: float = 1.0) -> tuple[int, int]:
        """In-array outer-product update in one step.

        Row ``i`` is driven with polarity ``row_signs[i]`` in {-1, 0, +1}, column ``j``
        with a pulse ``col_pulses[j] >= 0`` nominal pulses long, so cell ``(i, j)`` gets
        ``row_signs[i] * col_pulses[j]`` pulses (docs/hardware.md §1, ``ΔG = f(ΔT_j V_i)``).
        """
        row_signs = np.asarray(row_signs)
        col_pulses = np.asarray(col_pulses)
        if row_signs.shape != (self.rows,):
            raise ValueError(f"row_signs must have shape ({self.rows},), got {row_signs.shape}")
        if col_pulses.shape != (self.cols,):
            raise ValueError(f"col_pulses must have shape ({self.cols},), got {col_pulses.shape}")
        if row_signs.dtype.kind not in "iuf" or not np.all(np.isin(row_signs, (-1, 0, 1))):
            raise ValueError("row_signs must hold only -1, 0 and +1")
        if col_pulses.dtype.kind not in "iu" or np.any(col_pulses < 0):
            raise ValueError("col_pulses must hold non-negative integers")
        counts = np.empty(self.rows * self.cols, dtype=np.int64)
        kern.outer_counts(row_signs.astype(np.int64), col_pulses.astype(np.int64), counts)
        return self.apply_pulses(counts.reshape(self.shape), width=width)

    def add_conductance(self, delta_s, *, array: str = "plus") -> None:
        """Analogue update of one array (software-reference devices only).

        ``array="plus"``: ``G+ += delta`` (in the differential scheme ``G-`` takes
        ``-delta``); ``array="minus"``: ``G- += delta`` alone. Physical devices move by
        pulses; asking them for an analogue change raises TypeError.
        """
        self._check_writable()
        if not self.device.analog_update:
            raise TypeError(
                f"{type(self.device).__name__} moves by pulses only; use apply_pulses or program"
            )
        if array not in ("plus", "minus") or (array == "minus" and self.scheme == "single"):
            raise ValueError(f"array must be 'plus' or 'minus' (not for 'single'), got {array!r}")
        delta = np.asarray(delta_s, dtype=np.float64)
        if delta.shape != self.shape:
            raise ValueError(f"delta_s must have shape {self.shape}, got {delta.shape}")
        if not np.all(np.isfinite(delta)):
            raise ValueError("delta_s must be finite")
        flat = np.ascontiguousarray(delta).ravel()
        if array == "minus":
            self.device.add_conductance(self._state_minus, flat, self._g_minus)
        else:
            self.device.add_conductance(self._state_plus, flat, self._g_plus)
            if self.scheme == "differential":
                self.device.add_conductance(self._state_minus, -flat, self._g_minus)
        self._refresh_effective()

    def program(self, target_s, *, tolerance: float = 0.05, max_pulses: int = 100,
                array: str = "plus", min_width: float = 1 / 64) -> ProgramResult:
        """Iterative program-and-verify of one array towards ``target_s`` (siemens).

        Each round reads every cell, and each cell still outside
        ``|G - target| <= tolerance * target`` gets one pulse towards its target. A
        cell that overshoots (its direction flips) continues with pulses of half the
        width, down to ``min_width``. A cell stops after ``max_pulses`` pulses; those
        still outside tolerance (stuck cells, targets outside the device range) are
        reported in ``missed``. ``array`` is ``"plus"`` or ``"minus"`` (the reference).
        """
        self._check_writable()
        target = np.asarray(target_s, dtype=np.float64)
        if target.shape == ():
            target = np.full(self.shape, float(target))
        if target.shape != self.shape:
            raise ValueError(f"target_s must be a scalar or of shape {self.shape}, got {target.shape}")
        if not np.all(np.isfinite(target)) or np.any(target < 0):
            raise ValueError("target_s must be finite and >= 0 (conductances in siemens)")
        if not (isinstance(tolerance, Real) and 0 < tolerance < 1):
            raise ValueError(f"tolerance must lie in (0, 1), got {tolerance!r}")
        max_pulses = _check_count("max_pulses", max_pulses)
        if array not in ("plus", "minus") or (array == "minus" and self.scheme == "single"):
            raise ValueError(f"array must be 'plus' or 'minus' (not for 'single'), got {array!r}")
        if not 0 < min_width <= 1:
            raise ValueError(f"min_width must lie in (0, 1], got {min_width!r}")

        t = target.ravel()
        g = self._g_plus if array == "plus" else self._g_minus
        n = t.size
        used = np.zeros(n, dtype=np.int64)
        width = np.ones(n)
        last = np.zeros(n, dtype=np.int64)
        counts = np.zeros(n, dtype=np.int64)
        for _ in range(max_pulses):
            self._sync_drift()
            err = t - g
            active = (np.abs(err) > tolerance * t) & (used < max_pulses)
            if not active.any():
                break
            direction = np.where(active, np.sign(err).astype(np.int64), 0)
            flipped = active & (last != 0) & (direction != last)
            width[flipped] = np.maximum(width[flipped] * 0.5, min_width)
            last[active] = direction[active]
            for w in np.unique(width[active]):
                np.copyto(counts, 0)
                group = active & (width == w)
                counts[group] = direction[group]
                self._pulse_flat(counts, float(w), array)
                self.ledger.record("verify_read", int(group.sum()),
                                   self.device.read_time_s * self.device.read_voltage_v**2
                                   * float(g[group].sum()))
            kern.override(self._g_plus, self._fault_plus)
            if self._fault_minus is not None:
                kern.override(self._g_minus, self._fault_minus)
            used += active
        self._refresh_effective()
        missed = np.abs(t - g) > tolerance * t
        shape = self.shape
        return ProgramResult(used.reshape(shape), missed.reshape(shape), g.reshape(shape).copy())

    def full_cycles(self, n_cycles: int, *, array: str = "plus", stride: int = 1,
                    max_pulses: int = 200) -> tuple[int, int]:
        """``n_cycles`` full program / full erase cycles of every healthy device of one
        array (the family's endurance test, :attr:`Device.full_cycle_levels_s`).

        Each cycle programs a cell pulse by pulse, reading it before each pulse, until
        ``G <= low``, then erases it until ``G >= high`` (at most ``max_pulses`` pulses
        each way); every cell ends at the high level. Stuck and dead cells are left
        alone (a verify never passes on them). ``stride > 1`` simulates the first cycle
        (it starts wherever the cell is) and then one in every ``stride`` pulse by pulse,
        and applies the wear of the ``stride - 1`` after each of the latter in closed
        form from its pulse counts (Y-Flash ages by pulse count alone); the
        pulse tallies, the energy ledger (pulses and verify reads) and the clock count
        every cycle. Returns the numbers of erase (potentiating) and program
        (depressing) pulses, as :meth:`apply_pulses` does.
        """
        self._check_writable()
        if array not in ("plus", "minus") or (array == "minus" and self.scheme == "single"):
            raise ValueError(f"array must be 'plus' or 'minus' (not for 'single'), got {array!r}")
        if self.device.full_cycle_levels_s is None:
            raise TypeError(f"{type(self.device).__name__} defines no full program / erase "
                            "cycle (Device.full_cycle_levels_s is None)")
        if not isinstance(n_cycles, Integral) or isinstance(n_cycles, bool) or n_cycles < 0:
            raise ValueError(f"n_cycles must be a whole number >= 0, got {n_cycles!r}")
        stride = _check_count("stride", stride)
        max_pulses = _check_count("max_pulses", max_pulses)
        if n_cycles == 0:
            return 0, 0
        state, g, fault, tally = ((self._state_plus, self._g_plus, self._fault_plus,
                                   self._pulses_plus) if array == "plus" else
                                  (self._state_minus, self._g_minus, self._fault_minus,
                                   self._pulses_minus))
        cells = np.arange(g.size) if fault is None else np.flatnonzero(np.isnan(fault))
        self._sync_drift()
        seed = int(self.rng.integers(0, 2**32 - 1))
        dev = self.device
        n_prog, n_erase, g_read = dev.full_cycles_at(state, cells, int(n_cycles), seed, g,
                                                     max_pulses=max_pulses, stride=stride)
        tally[cells] += n_prog + n_erase
        up, down = int(n_erase.sum()), int(n_prog.sum())
        self.ledger.record("potentiate", up, up * dev.pulse_energy_j(+1))
        self.ledger.record("depress", down, down * dev.pulse_energy_j(-1))
        # a verify read before each pulse and one after the last of each phase
        self.ledger.record("verify_read", up + down + 2 * int(n_cycles) * cells.size,
                           dev.read_time_s * dev.read_voltage_v**2 * float(g_read.sum()))
        # cells cycle in parallel: the slowest one sets the time
        if cells.size:
            self.time_s += float(np.max(n_prog * dev.pulse_duration_s(-1)
                                        + n_erase * dev.pulse_duration_s(+1)))
        self._refresh_all()
        return up, down

    def program_weights(self, weights, **kwargs) -> ProgramResult:
        """Program signed weights (units of :attr:`weight_unit_s`).

        ``"reference"``: ``G+`` targets ``G- + w * unit``. ``"differential"``: both
        devices move symmetrically about mid-range. ``"single"``: ``G = w * unit``.
        Returns the result for ``G+`` (differential: cells missed in either array).
        """
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != self.shape:
            raise ValueError(f"weights must have shape {self.shape}, got {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError("weights must be finite")
        unit = self.weight_unit_s
        if self.scheme == "single":
            return self.program(np.clip(w * unit, 0, None), **kwargs)
        if self.scheme == "reference":
            return self.program(np.clip(self._g_minus.reshape(self.shape) + w * unit, 0, None), **kwargs)
        mid = 0.5 * (self.device.g_min_s + self.device.g_max_s)
        plus = self.program(np.clip(mid + 0.5 * w * unit, 0, None), **kwargs)
        minus = self.program(np.clip(mid - 0.5 * w * unit, 0, None), array="minus", **kwargs)
        return ProgramResult(plus.pulses + minus.pulses, plus.missed | minus.missed,
                             plus.conductance_s)

    def wait(self, seconds: float) -> None:
        """Let time pass (conductance drift of PCM-like devices)."""
        self.time_s += _check_nonneg("seconds", seconds)

    # ------------------------------------------------------------------ persistence
    def state_dict(self, *, conductance_only: bool = False) -> tuple[dict, dict]:
        """``(arrays, metadata)``: numpy arrays and a JSON-ready dict that restore it.

        A snapshot: the arrays are copies, later pulses do not change them. With
        ``conductance_only`` it keeps only what a read needs, the conductances ``G+`` and
        ``G-`` (faults applied): a fraction of the size, restored as a ``read_only``
        crossbar that reads bit for bit as this one but takes no pulses (and no drift).
        """
        # the per-line sums (read energy) are kept up to date incrementally between full
        # refreshes; recompute them here so a restored copy and this one book reads
        # identically to the last bit
        self._sync_drift()
        self._refresh_effective()
        if conductance_only:
            arrays = {"g_plus": self._g_plus.copy()}
            if self.scheme != "single":
                arrays["g_minus"] = self._g_minus.copy()
        else:
            arrays = {"state_plus": self._state_plus.copy(), "fault_plus": self._fault_plus.copy(),
                  "fault_kind_plus": self._fault_kind_plus.copy(),
                      "pulses_plus": self._pulses_plus.copy(),
                      "pulses_minus": self._pulses_minus.copy()}
            if self._state_minus is not None:
                arrays["state_minus"] = self._state_minus.copy()
            if self._fault_minus is not None:
                arrays["fault_minus"] = self._fault_minus.copy()
        meta = {"conductance_only": bool(conductance_only),
            "rows": self.rows, "cols": self.cols, "scheme": self.scheme,
            "device": self.device.describe(),
            "read_noise_rel": self.read_noise_rel, "read_noise_a": self.read_noise_a,
            "fault_rates": self.fault_rates, "time_s": self.time_s,
            "rng": json.loads(json.dumps(self.rng.bit_generator.state)),
            "ledger": self.ledger.as_dict(),
        }
        return arrays, meta

    @classmethod
    def from_state_dict(cls, arrays: dict, meta: dict, *, ledger: EnergyLedger | None = None) -> "Crossbar":
        """Rebuild a crossbar saved by :meth:`state_dict`; validates keys and shapes."""
        required = ["rows", "cols", "scheme", "device", "read_noise_rel", "read_noise_a",
                    "fault_rates", "time_s", "rng"] + (["ledger"] if ledger is None else [])
        missing = [key for key in required if key not in meta]
        if missing:
            raise ValueError(f"crossbar metadata lacks {missing}")
        try:
            dev_meta = dict(meta["device"])
            name = dev_meta.pop("device")
            dev_meta.pop("source", None)
            device = get_device(name, **dev_meta)
            xbar = cls(meta["rows"], meta["cols"], device, scheme=meta["scheme"],
                       read_noise_rel=meta["read_noise_rel"], read_noise_a=meta["read_noise_a"],
                       seed=0, ledger=ledger)
        except KeyError as exc:
            raise ValueError(f"crossbar metadata lacks {exc}") from None
        n = xbar.rows * xbar.cols
        if meta.get("conductance_only"):
            expected = {"g_plus": (n,)}
            if xbar.scheme != "single":
                expected["g_minus"] = (n,)
            for key, shape in expected.items():
                if np.shape(arrays.get(key)) != shape:
                    raise ValueError(f"crossbar array {key!r} missing or not of shape {shape}")
            xbar._g_plus[:] = arrays["g_plus"]
            if "g_minus" in arrays:
                xbar._g_minus[:] = arrays["g_minus"]
            xbar.read_only = True
            xbar.fault_rates = dict(meta["fault_rates"])
            xbar.time_s = xbar._g_time_s = float(meta["time_s"])
            xbar.rng.bit_generator.state = meta["rng"]
            if ledger is None:
                xbar.ledger = EnergyLedger.from_dict(meta["ledger"])
            xbar._refresh_effective()
            return xbar
        expected = {"state_plus": xbar._state_plus.shape, "fault_plus": (n,)}
        if xbar._state_minus is not None:
            expected["state_minus"] = xbar._state_minus.shape
        if xbar.scheme == "differential":
            expected["fault_minus"] = (n,)
        for optional in ("fault_kind_plus", "pulses_plus", "pulses_minus"):
            if optional in arrays:  # older state dicts lack them
                expected[optional] = (n,)
        for key, shape in expected.items():
            if key not in arrays:
                raise ValueError(f"crossbar arrays lack {key!r}")
            if np.shape(arrays[key]) != shape:
                raise ValueError(f"crossbar array {key!r} has shape {np.shape(arrays[key])}, expected {shape}")
        xbar._state_plus = np.array(arrays["state_plus"], dtype=np.float64)
        xbar._fault_plus = np.array(arrays["fault_plus"], dtype=np.float64)
        xbar._fault_kind_plus = (np.array(arrays["fault_kind_plus"], dtype=np.int8)
                                 if "fault_kind_plus" in arrays
                                 else xbar._kinds_from_values(xbar._fault_plus))
        for name in ("pulses_plus", "pulses_minus"):
            if name in arrays:
                setattr(xbar, "_" + name, np.array(arrays[name], dtype=np.int64))
        if "state_minus" in expected:
            xbar._state_minus = np.array(arrays["state_minus"], dtype=np.float64)
        if "fault_minus" in expected:
            xbar._fault_minus = np.array(arrays["fault_minus"], dtype=np.float64)
        xbar.fault_rates = dict(meta["fault_rates"])
        xbar.time_s = float(meta["time_s"])
        xbar.rng.bit_generator.state = meta["rng"]
        if ledger is None:
            xbar.ledger = EnergyLedger.from_dict(meta["ledger"])
        xbar._refresh_all()
        return xbar

    def load_state_dict(self, arrays: dict, meta: dict) -> None:
        """Restore a :meth:`state_dict` snapshot into this object, in place.

        Everything that holds a reference to this crossbar or to its ledger keeps it
        (Brian2 hooks, networks sharing one ledger); the ledger takes the saved counts.
        """
        fresh = type(self).from_state_dict(arrays, meta)
        ledger = self.ledger
        self.__dict__.update(fresh.__dict__)
        self.ledger = ledger
        ledger.load_dict(meta["ledger"])

    def __repr__(self) -> str:
        return (f"Crossbar({self.rows}x{self.cols}, {type(self.device).__name__}, "
                f"scheme={self.scheme!r})")
