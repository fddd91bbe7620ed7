"""Data converters around a crossbar: the ADC path that the counter-based designs avoid.

An ISAAC-style tile (Shafiee et al., ISCA 2016) drives each row through a DAC, holds
each column current in a sample-and-hold, digitises it with an ADC shared by many
columns, and recombines bit-serial partial results in a shift-and-add unit. Each part
here is a validated frozen dataclass with an energy and a time per operation;
``convert`` quantises what it converts and books the operations in an
:class:`~neuromem.energy.EnergyLedger` under the names of :data:`COMPONENT_NAMES`.

Sources and assumptions (docs/converters.md has the derivations):

* ADC: ISAAC's 8-bit SAR ADC at 1.28 GS/s, 16 mW for the 8 ADCs of one in-situ
  multiply-accumulate unit, i.e. 2 mW each: ``E = P / f_s = 1.5625 pJ`` per 8-bit
  conversion. Other resolutions (assumption): a constant Walden figure of merit,
  ``E(b) = E(8) 2**(b - 8)``, the low-resolution trend of Murmann's ADC survey
  (1997-2024); above ~10 bits real converters are worse (about 4x per bit).
* DAC: ISAAC's 1-bit row drivers, 4 mW for 8 x 128 of them at a 100 ns crossbar cycle:
  ``3.9 uW x 100 ns = 0.39 pJ`` per 1-bit conversion. A DAC resolving ``k`` bits in one
  cycle is assumed to cost ``2**k - 1`` unit elements, ``(2**k - 1) x 0.39 pJ``.
* Sample-and-hold: ISAAC, 10 uW for 8 x 128 of them, 100 ns cycle: ~1 fJ per sample.
* Shift-and-add: ISAAC, 0.2 mW per unit; at 1.28 G operations/s (one per ADC output):
  0.16 pJ per operation (assumption: one shift-add per conversion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from numbers import Integral, Real

import numpy as np

from .energy import EnergyLedger

#: ledger operation names the converters book under
COMPONENT_NAMES = ("dac", "sample_hold", "adc", "shift_add")

_ISAAC_ADC_POWER_W = 16e-3 / 8  # 8 ADCs per in-situ MAC unit share 16 mW
_ISAAC_ADC_RATE_HZ = 1.28e9
_ISAAC_CYCLE_S = 100e-9  # crossbar read cycle
_ISAAC_DAC_J = 4e-3 / (8 * 128) * _ISAAC_CYCLE_S  # one 1-bit DAC over one cycle
_ISAAC_SA_J = 0.2e-3 / _ISAAC_ADC_RATE_HZ


def _check_fields(obj, may_be_negative=()) -> None:
    """Type and range checks shared by the converter dataclasses (floats finite and
    >= 0, except those named in ``may_be_negative``, which need only be finite)."""
    name = type(obj).__name__
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.type in ("int", int):
            if not isinstance(value, Integral) or isinstance(value, bool):
                raise TypeError(f"{name}.{f.name} must be an integer, got {type(value).__name__} {value!r}")
        elif f.type in ("float", float):
            if not isinstance(value, Real) or isinstance(value, bool):
                raise TypeError(f"{name}.{f.name} must be a number, got {type(value).__name__} {value!r}")
            if not math.isfinite(value) or (value < 0 and f.name not in may_be_negative):
                raise ValueError(f"{name}.{f.name} must be finite and >= 0, got {value!r}")
        elif f.type in ("bool", bool) and not isinstance(value, bool):
            raise TypeError(f"{name}.{f.name} must be True or False, got {value!r}")


def _levels(bits: int, signed: bool) -> int:
    """Largest code magnitude: ``2**b - 1`` unsigned, ``2**(b-1) - 1`` signed (symmetric)."""
    return 2 ** (bits - 1) - 1 if signed else 2**bits - 1


def _quantise(x, full_scale, bits, signed, where):
    """``clip(round(x / lsb), -L or 0, L) * lsb`` with ``lsb = full_scale / L``; float64."""
    if not isinstance(full_scale, Real) or not (full_scale > 0 and math.isfinite(full_scale)):
        raise ValueError(f"{where}: full_scale must be finite and > 0, got {full_scale!r}")
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{where}: the input must be finite (no NaN or inf)")
    top = _levels(bits, signed)
    lsb = full_scale / top
    codes = np.clip(np.rint(x / lsb), -top if signed else 0, top)
    return codes * lsb


@dataclass(frozen=True)
class ADC:
    """Analogue-to-digital converter shared by ``columns_shared`` columns (ISAAC: 128).

    ``convert`` maps a current to the nearest of ``2 L + 1`` (signed) or ``L + 1``
    (unsigned) levels in ``[-full_scale, full_scale]`` (``L`` of :func:`_levels`),
    clipping outside. Energy per conversion: ``energy_8bit_j * 2**(bits - 8)`` unless
    ``energy_per_conversion_j`` is set; conversion time ``1 / sample_rate_hz``.
    """

    bits: int = 8
    sample_rate_hz: float = _ISAAC_ADC_RATE_HZ
    columns_shared: int = 128
    energy_8bit_j: float = _ISAAC_ADC_POWER_W / _ISAAC_ADC_RATE_HZ
    energy_per_conversion_j: float = -1.0  # < 0: scale energy_8bit_j by the Walden rule
    signed: bool = True

    source = ("Shafiee et al., ISCA 2016 (ISAAC): 8-bit, 1.28 GS/s, 2 mW per ADC; other "
              "resolutions assumed at a constant Walden figure of merit (Murmann, ADC survey)")

    def __post_init__(self):
        _check_fields(self, may_be_negative=("energy_per_conversion_j",))
        if not 1 <= self.bits <= 16 or (self.signed and self.bits < 2):
            raise ValueError(f"ADC.bits must lie in [{2 if self.signed else 1}, 16], got {self.bits}")
        if not self.sample_rate_hz > 0:
            raise ValueError(f"ADC.sample_rate_hz must be > 0, got {self.sample_rate_hz!r}")
        if self.columns_shared < 1:
            raise ValueError(f"ADC.columns_shared must be >= 1, got {self.columns_shared}")

    @property
    def conversion_energy_j(self) -> float:
        if self.energy_per_conversion_j >= 0:
            return float(self.energy_per_conversion_j)
        return self.energy_8bit_j * 2.0 ** (self.bits - 8)

    @property
    def conversion_time_s(self) -> float:
        return 1.0 / self.sample_rate_hz

    def read_time_s(self, n_columns: int) -> float:
        """Time to digitise ``n_columns`` columns once: each ADC serves ``columns_shared``
        of them in turn, the ADCs work in parallel."""
        return min(int(n_columns), self.columns_shared) * self.conversion_time_s

    def convert(self, current, full_scale, ledger: EnergyLedger | None = None) -> np.ndarray:
        """Quantised ``current`` (same units as ``full_scale``); books one conversion each."""
        out = _quantise(current, full_scale, self.bits, self.signed, "ADC.convert")
        if ledger is not None:
            ledger.record("adc", out.size, out.size * self.conversion_energy_j)
        return out


@dataclass(frozen=True)
class DAC:
    """Row driver: ``bits`` of resolution, ``bits_per_cycle`` of them per crossbar cycle.

    ISAAC streams inputs one bit per cycle (``bits_per_cycle=1``): a ``b``-bit input
    takes ``ceil(b / bits_per_cycle)`` cycles, and every cycle is a full read whose
    columns are sampled, converted and shift-added (see :func:`read_cycles`).
    ``convert`` quantises to ``L + 1`` levels in ``[0, full_scale]`` (unsigned) or
    ``2 L + 1`` in ``[-full_scale, full_scale]`` (signed) and books one operation per
    value per cycle, each ``unit_energy_j * (2**bits_per_cycle - 1)`` (assumed).
    """

    bits: int = 8
    bits_per_cycle: int = 1
    unit_energy_j: float = _ISAAC_DAC_J
    signed: bool = False

    source = ("Shafiee et al., ISCA 2016 (ISAAC): 1-bit DACs, 4 mW per 8 x 128 at a 100 ns "
              "cycle; multi-bit cost assumed to grow with the number of unit elements")

    def __post_init__(self):
        _check_fields(self)
        if not 1 <= self.bits <= 16 or (self.signed and self.bits < 2):
            raise ValueError(f"DAC.bits must lie in [{2 if self.signed else 1}, 16], got {self.bits}")
        if not 1 <= self.bits_per_cycle <= self.bits:
            raise ValueError(f"DAC.bits_per_cycle must lie in [1, bits={self.bits}], "
                             f"got {self.bits_per_cycle}")

    @property
    def cycles(self) -> int:
        """Crossbar cycles one input takes."""
        return -(-self.bits // self.bits_per_cycle)

    @property
    def conversion_energy_j(self) -> float:
        """Energy of one value through the DAC (all its cycles)."""
        return self.cycles * self.unit_energy_j * (2**self.bits_per_cycle - 1)

    def convert(self, x, full_scale, ledger: EnergyLedger | None = None) -> np.ndarray:
        """Quantised ``x`` (same units as ``full_scale``); books ``cycles`` ops per value."""
        out = _quantise(x, full_scale, self.bits, self.signed, "DAC.convert")
        if ledger is not None:
            ledger.record("dac", out.size * self.cycles, out.size * self.conversion_energy_j)
        return out


@dataclass(frozen=True)
class SampleHold:
    """Holds a column current while the shared ADC reaches it (ISAAC: 10 uW per 1024)."""

    energy_per_sample_j: float = 10e-6 / (8 * 128) * _ISAAC_CYCLE_S

    source = "Shafiee et al., ISCA 2016 (ISAAC): 10 uW for 8 x 128 units, 100 ns cycle"

    def __post_init__(self):
        _check_fields(self)

    def sample(self, n_values: int, ledger: EnergyLedger | None = None) -> None:
        """Book ``n_values`` samples (the held value is the analogue current itself)."""
        if ledger is not None:
            ledger.record("sample_hold", int(n_values), int(n_values) * self.energy_per_sample_j)


@dataclass(frozen=True)
class ShiftAdd:
    """Recombines bit-serial partial sums: ``sum_c 2**(c k) y_c`` (ISAAC: 0.2 mW per unit)."""

    energy_per_op_j: float = _ISAAC_SA_J

    source = ("Shafiee et al., ISCA 2016 (ISAAC): 0.2 mW per unit; one operation per ADC "
              "output at 1.28 GS/s (assumed)")

    def __post_init__(self):
        _check_fields(self)

    def combine(self, partials, bits_per_cycle: int, ledger: EnergyLedger | None = None):
        """``sum_c 2**(c * bits_per_cycle) partials[c]`` over the first axis, least
        significant slice first; books one operation per partial value."""
        partials = np.asarray(partials, dtype=np.float64)
        if partials.ndim < 1 or partials.shape[0] < 1:
            raise ValueError("ShiftAdd.combine: partials needs a leading axis of slices")
        if not isinstance(bits_per_cycle, Integral) or bits_per_cycle < 1:
            raise ValueError(f"ShiftAdd.combine: bits_per_cycle must be an integer >= 1, "
                             f"got {bits_per_cycle!r}")
        weights = 2.0 ** (bits_per_cycle * np.arange(partials.shape[0]))
        out = np.tensordot(weights, partials, axes=1)
        self.book(partials.size, ledger)
        return out

    def book(self, n_ops: int, ledger: EnergyLedger | None = None) -> None:
        if ledger is not None:
            ledger.record("shift_add", int(n_ops), int(n_ops) * self.energy_per_op_j)


@dataclass(frozen=True)
class ConverterChain:
    """The periphery of one crossbar read: DAC -> array -> sample-and-hold -> ADC -> shift-add.

    :meth:`book_read` books, for ``n_vectors`` input vectors of ``n_in`` values read into
    ``n_out`` outputs: the DAC operations, and per DAC cycle one sample, one conversion
    and one shift-add per output (ISAAC's bit-serial scheme). Quantisation is applied
    once, by the DAC on the inputs and the ADC on the recombined outputs (assumption:
    the partial sums of each cycle fit the ADC, as ISAAC's encoding guarantees).
    """

    dac: DAC = DAC()
    adc: ADC = ADC()
    sample_hold: SampleHold = SampleHold()
    shift_add: ShiftAdd = ShiftAdd()

    def __post_init__(self):
        for name, cls in (("dac", DAC), ("adc", ADC), ("sample_hold", SampleHold),
                          ("shift_add", ShiftAdd)):
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"ConverterChain.{name} must be a {cls.__name__}, "
                                f"got {type(getattr(self, name)).__name__}")

    def input(self, x, full_scale, ledger=None) -> np.ndarray:
        """The DAC step alone (quantise and book the row drives)."""
        return self.dac.convert(x, full_scale, ledger)

    def output(self, current, full_scale, ledger=None) -> np.ndarray:
        """Sample, convert and shift-add every output current once per DAC cycle; return
        the currents quantised by the ADC."""
        current = np.asarray(current)
        cycles = self.dac.cycles
        self.sample_hold.sample(current.size * cycles, ledger)
        out = self.adc.convert(current, full_scale, None)
        if ledger is not None:
            ledger.record("adc", out.size * cycles, out.size * cycles * self.adc.conversion_energy_j)
        if cycles > 1:
            self.shift_add.book(current.size * cycles, ledger)
        return out

    def read_time_s(self, n_outputs: int) -> float:
        """Conversion time of one input vector: cycles x (columns per ADC) conversions."""
        return self.dac.cycles * self.adc.read_time_s(n_outputs)
