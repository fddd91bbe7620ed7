"""Volatile (diffusive) memristors: threshold switches that make integrate-and-fire neurons.

A diffusive memristor (Ag nanoclusters in a dielectric; Wang et al., Nat. Mater. 16,
101, 2017) switches ON within nanoseconds when its voltage exceeds a threshold, as a
filament forms, and switches back OFF by itself as the silver diffuses away, over
microseconds to milliseconds. In parallel with a capacitor (the membrane) and a leak it
is an integrate-and-fire neuron with no comparator and no reset circuit (Wang et al.,
Nat. Electron. 1, 137, 2018): input current charges the capacitor; at the threshold
the device turns ON and discharges it (the spike); while the filament lasts the
membrane is clamped near zero (the refractory period); then it charges again.

Model (one state variable per device, the filament strength ``x`` in [0, 1])::

    C dv/dt = I_in - G_leak v - G(x) v,   G(x) = G_off + (G_on - G_off) x
    dx/dt   = -x / tau_relax              (spontaneous relaxation)
    v > V_th  ->  x = 1                   (switching ON: the spike)

The device stays ON (``G > G_hold``) for ``tau_relax * ln((G_on - G_off) / (G_hold -
G_off))`` after a spike: its refractory period. Values: the switching and relaxation
behaviour and their ranges follow the two papers above; the particular numbers and
spreads are assumed (marked in :class:`DiffusiveMemristor`), chosen so that the ON time
is a few milliseconds, as a neuron's refractory period is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

__all__ = ["DiffusiveMemristor"]


@dataclass(frozen=True)
class DiffusiveMemristor:
    """Parameters of a diffusive-memristor neuron (membrane, leak and device).

    All values assumed within the ranges of Wang et al. 2017 / 2018: ``G_on`` of the
    order of a milli-siemens (kOhm ON resistance under compliance), ``G_off`` of a
    nano-siemens, thresholds of a few tenths of a volt, relaxation from microseconds to
    milliseconds. Spreads are relative standard deviations (device to device, ``d2d``)
    and a uniform half-width of the relaxation time from one switching to the next
    (cycle to cycle, ``c2c``).
    """

    c_membrane_f: float = 1e-9
    g_leak_s: float = 1e-6
    g_on_s: float = 1e-3
    g_off_s: float = 1e-9
    g_hold_s: float = 1e-6
    v_threshold_v: float = 0.4
    tau_relax_s: float = 0.7e-3
    d2d_v_threshold_rel: float = 0.10
    d2d_tau_relax_rel: float = 0.20
    c2c_tau_relax_rel: float = 0.20
    source: str = ("Wang et al., Nat. Mater. 16, 101 (2017); Wang et al., Nat. Electron. "
                   "1, 137 (2018); values assumed within their ranges")

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        name = type(self).__name__
        for f in fields(self):
            if f.name == "source":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}.{f.name} must be a finite number, got {value!r}")
            if f.name.endswith("_rel"):
                if not 0 <= value < 1:
                    raise ValueError(f"{name}.{f.name} must lie in [0, 1), got {value!r}")
            elif not value > 0:
                raise ValueError(f"{name}.{f.name} must be > 0, got {value!r}")
        if not self.g_off_s < self.g_hold_s < self.g_on_s:
            raise ValueError(f"{name} needs g_off_s < g_hold_s < g_on_s, got "
                             f"{self.g_off_s!r}, {self.g_hold_s!r}, {self.g_on_s!r}")

    @property
    def on_time_s(self) -> float:
        """How long the device stays ON after a spike (``G > G_hold``): the refractory period."""
        return self.tau_relax_s * math.log((self.g_on_s - self.g_off_s) / (self.g_hold_s - self.g_off_s))

    @property
    def rheobase_a(self) -> float:
        """The smallest constant input current that makes the neuron fire."""
        return (self.g_leak_s + self.g_off_s) * self.v_threshold_v

    def draw(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Device-to-device spread: per-device ``v_threshold_v`` and ``tau_relax_s``."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        v = self.v_threshold_v * (1 + self.d2d_v_threshold_rel * rng.standard_normal(n))
        tau = self.tau_relax_s * np.exp(self.d2d_tau_relax_rel * rng.standard_normal(n))
        return {"v_threshold_v": np.maximum(v, 0.05 * self.v_threshold_v), "tau_relax_s": tau}

    def describe(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}
