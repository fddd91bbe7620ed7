"""The contract every device family meets.

A device family is a frozen dataclass of parameters (units in the field names) plus a
flat module of ``@njit(cache=True)`` kernels that the dataclass only dispatches to.
A *population* of ``n`` cells lives in one float64 array ``state`` of shape
``(len(state_names), n)``: one row per internal variable (a conductance, a charge,
a per-cell parameter drawn at fabrication for device-to-device spread, ...).
The crossbar owns that array; the device knows how to draw it, pulse it and read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from numbers import Real
from typing import ClassVar

import numpy as np


def _is_real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Device:
    """Base class of all device parameter sets.

    Fields shared by every family: how a cell is read and what a read and a pulse
    cost. Subclasses add their physics and override defaults where their source says
    otherwise.
    """

    read_voltage_v: float = 0.2
    read_time_s: float = 10e-9
    potentiate_energy_j: float = 1e-12
    depress_energy_j: float = 1e-12

    #: short name used by :func:`neuromem.devices.get_device`
    name: ClassVar[str] = "device"
    #: rows of the state array, in order
    state_names: ClassVar[tuple[str, ...]] = ()
    #: the rows of ``state_names`` that wear with use (change with every pulse whatever
    #: the stored value, and never come back): empty for a device that does not age
    ageing_names: ClassVar[tuple[str, ...]] = ()
    #: where the default parameters come from ("assumed" where no source gives them)
    source: ClassVar[str] = "assumed"
    #: True when the device accepts arbitrary analogue conductance changes
    #: (only the software reference; physical devices move by pulses)
    analog_update: ClassVar[bool] = False
    #: where, as a fraction of the conductance range, a signed weight's reference sits
    #: by default: where up and down pulses move the conductance by similar steps
    operating_level: ClassVar[float] = 0.5

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float, "int", int):
                if not _is_real(value):
                    raise TypeError(
                        f"{type(self).__name__}.{f.name} must be a real number, "
                        f"got {type(value).__name__} {value!r}"
                    )
                if math.isnan(float(value)):
                    raise ValueError(f"{type(self).__name__}.{f.name} must not be NaN")
        self._check_positive("read_voltage_v", "read_time_s")
        self._check_nonnegative("potentiate_energy_j", "depress_energy_j")
        self.validate()

    def validate(self) -> None:
        """Family-specific checks; raise ValueError naming the field."""

    def _check_positive(self, *names: str) -> None:
        for n in names:
            v = getattr(self, n)
            if not v > 0 or not math.isfinite(v):
                raise ValueError(f"{type(self).__name__}.{n} must be finite and > 0, got {v!r}")

    def _check_nonnegative(self, *names: str) -> None:
        for n in names:
            v = getattr(self, n)
            if not v >= 0 or not math.isfinite(v):
                raise ValueError(f"{type(self).__name__}.{n} must be finite and >= 0, got {v!r}")

    def _check_order(self, low: str, high: str) -> None:
        lo, hi = getattr(self, low), getattr(self, high)
        if not lo < hi:
            raise ValueError(
                f"{type(self).__name__}: {low} ({lo!r}) must be smaller than {high} ({hi!r})"
            )

    def _check_fraction(self, *names: str) -> None:
        for n in names:
            v = getattr(self, n)
            if not 0 <= v <= 1:
                raise ValueError(f"{type(self).__name__}.{n} must lie in [0, 1], got {v!r}")

    # ------------------------------------------------------------------ physics
    @property
    def g_min_s(self) -> float:
        """Nominal lowest conductance of the family (siemens)."""
        raise NotImplementedError

    @property
    def g_max_s(self) -> float:
        """Nominal highest conductance of the family (siemens)."""
        raise NotImplementedError

    def init_state(self, n_cells: int, rng: np.random.Generator) -> np.ndarray:
        """Draw a fresh population of ``n_cells`` devices (device-to-device spread)."""
        raise NotImplementedError

    def apply_pulses(
        self,
        state: np.ndarray,
        counts: np.ndarray,
        width: float,
        seed: int,
        g_out: np.ndarray,
        time_s: float = 0.0,
    ) -> None:
        """Apply ``counts[k]`` pulses to cell ``k`` in place (dense form).

        ``counts`` is int64 of shape ``(n,)``: positive raises the conductance
        (potentiation), negative lowers it (depression), zero leaves the cell alone.
        ``width`` scales the nominal pulse duration (1.0 = nominal). ``seed`` seeds the
        kernel's cycle-to-cycle noise so runs are reproducible. The new conductance of
        every pulsed cell is written to ``g_out[k]`` (at time ``time_s``). Same as
        :meth:`apply_pulses_at` on the nonzero entries (same random stream).
        """
        counts = np.ascontiguousarray(counts, dtype=np.int64).ravel()
        cells = np.flatnonzero(counts)
        self.apply_pulses_at(state, cells, counts[cells], width, seed, g_out, time_s)

    def apply_pulses_at(
        self,
        state: np.ndarray,
        cells: np.ndarray,
        counts: np.ndarray,
        width: float,
        seed: int,
        g_out: np.ndarray,
        time_s: float = 0.0,
    ) -> None:
        """Apply ``counts[m]`` pulses to cell ``cells[m]`` in place (index form).

        ``cells`` (int64, distinct flat indices) lists the cells to pulse and
        ``counts`` (int64, same length) their signed pulse counts, so the cost is
        proportional to the pulsed cells, not to the population. Cells are pulsed in
        the order listed; ascending order draws the same random numbers as the dense
        :meth:`apply_pulses`. Only ``g_out`` of the listed cells is written.
        """
        raise NotImplementedError

    def conductance(self, state: np.ndarray, time_s: float = 0.0) -> np.ndarray:
        """Conductance (siemens) of every cell at time ``time_s``."""
        raise NotImplementedError

    def pulse_duration_s(self, sign: int) -> float:
        """Duration of one nominal pulse (potentiating for sign > 0)."""
        return 0.0

    def pulse_energy_j(self, sign: int) -> float:
        """Energy of one nominal pulse (potentiating for sign > 0)."""
        return self.potentiate_energy_j if sign > 0 else self.depress_energy_j

    @property
    def full_cycle_levels_s(self) -> tuple[float, float] | None:
        """``(low, high)`` read conductances of one full program / full erase cycle (the
        verify levels of the family's endurance test), or None where it defines none."""
        return None

    def full_cycles_at(self, state, cells, n_cycles: int, seed: int, g_out, *,
                       max_pulses: int = 10_000, stride: int = 1):
        """Full program / full erase cycles of the cells ``cells`` between the levels of
        :attr:`full_cycle_levels_s`; ``(n_program, n_erase, g_read_s)`` per listed cell
        (see :meth:`neuromem.devices.YFlash.full_cycles_at`). Only families that define
        those levels implement it."""
        raise NotImplementedError(f"{type(self).__name__} defines no full program / erase cycle")

    @property
    def drifts(self) -> bool:
        """True when the conductance changes with time alone (needs re-reading)."""
        return False

    def describe(self) -> dict:
        """Parameters and provenance, JSON-ready."""
        out = {"device": self.name, "source": self.source}
        out.update({f.name: getattr(self, f.name) for f in fields(self)})
        return out


def device_classes() -> dict[str, type[Device]]:
    """Every imported device family by its short name."""
    found: dict[str, type[Device]] = {}
    stack = list(Device.__subclasses__())
    while stack:
        cls = stack.pop()
        found[cls.name] = cls
        stack.extend(cls.__subclasses__())
    return found


def get_device(spec: "Device | str", **parameters) -> Device:
    """A device parameter set from an instance or a name (``"yflash"``, ``"ideal"``, ...),
    or the path of a pulse table (``"curves.csv"``: :class:`~neuromem.devices.Measured`
    fitted to it).

    Keyword arguments override parameters (``get_device("yflash", c2c_rel=0)``).
    """
    if isinstance(spec, Device):
        return replace(spec, **parameters) if parameters else spec
    if isinstance(spec, str):
        if spec.lower().endswith(".csv"):  # a pulse table: a family fitted to it
            from .measured import Measured

            return Measured.from_csv(spec, **parameters)
        classes = device_classes()
        key = spec.lower().replace("-", "").replace("_", "")
        if key not in classes:
            raise ValueError(f"unknown device {spec!r}; known devices: {sorted(classes)}")
        return classes[key](**parameters)
    raise TypeError(f"device must be a Device or a device name, got {type(spec).__name__}")
