"""Devices from measured data: a family fitted to conductance-versus-pulse tables.

A *pulse table* is a CSV file with one row per pulse::

    device,cycle,direction,pulse,conductance_s
    0,0,potentiation,0,3.4e-10
    0,0,potentiation,1,5.1e-10
    ...
    0,0,depression,0,1.02e-06
    ...

``device`` and ``cycle`` identify a curve (a run of identical nominal pulses on one
device), ``direction`` is ``potentiation`` (pulses that raise the conductance) or
``depression``, ``pulse`` orders the readings of a curve (``0``: before the first
pulse) and ``conductance_s`` is the conductance read after that many pulses (siemens).
Measured potentiation / depression curves of several devices, as papers and test
benches report them, have this shape. :func:`write_pulse_table` writes such a table
from any neuromem device (simulated on a fresh population).

:class:`Measured` is the fitted model. Its state per cell is the conductance plus the
cell's own step scale and bounds; a pulse moves the conductance by the mean measured
step at that conductance, interpolated in the fitted table::

    up:    dG = +s_cell * step_up(G)   * width * max(0, 1 + c2c_up_rel   * xi)
    down:  dG = -s_cell * step_down(G) * width * max(0, 1 + c2c_down_rel * xi)

then kept inside the cell's bounds. The fit (:func:`fit_pulse_table`):

* bounds: each device's lowest and highest reading; ``g_min_s`` / ``g_max_s`` are
  their medians over devices; ``d2d_bounds_rel`` the relative spread of the highest;
* step tables: the steps of all curves (``G[n+1] - G[n]``) binned by the conductance
  before the pulse (``n_bins`` bins, logarithmic when the readings span more than two
  decades); each table point is a bin's mean conductance and mean step (flat beyond
  the first and last point; a cell stops at its bound);
* device-to-device spread ``d2d_step_rel``: the relative spread over devices of each
  device's steps divided by the table's prediction for them;
* cycle-to-cycle spread ``c2c_up_rel`` / ``c2c_down_rel``: from the differences of
  consecutive steps of a curve (``std((s[n+1] - s[n]) / mean) / sqrt(2)``), which a
  device's own smooth curve does not inflate;
* ``operating_level``: where the two tables give equal steps (as a fraction of the
  window; 0.5 when they never cross).

Assumptions (marked as such in ``source``): a pulse's step depends only on the
conductance (no hidden state, no history), a step scales linearly with the pulse width
(``width``), cycle-to-cycle noise is Gaussian and multiplicative. Pulse duration and
energies are not in the table: they are parameters (defaults assumed).

``get_device("measured", table="file.csv")`` or ``get_device("file.csv")`` fits a table
(so ``MemristiveRBM(device="file.csv")`` and ``neuromem dbn --device file.csv`` work);
a fitted device's :meth:`~Measured.describe` holds the whole fit, so saved models
rebuild it without the file.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
from numba import njit

from .base import Device, get_device

__all__ = ["Measured", "fit_pulse_table", "pulse_table", "read_pulse_table", "write_pulse_table",
           "step_statistics"]

# state rows
G, SCALE, G_LO, G_HI = 0, 1, 2, 3
COLUMNS = ("device", "cycle", "direction", "pulse", "conductance_s")
DIRECTIONS = ("potentiation", "depression")
_TABLES = ("up_g_s", "up_step_s", "down_g_s", "down_step_s")


@njit(cache=True)
def _interp(x, xs, ys):
    """Piecewise-linear ``y(x)`` through ``(xs, ys)`` (xs ascending), flat outside."""
    n = xs.size
    if x <= xs[0]:
        return ys[0]
    if x >= xs[n - 1]:
        return ys[n - 1]
    lo, hi = 0, n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xs[mid] <= x:
            lo = mid
        else:
            hi = mid
    t = (x - xs[lo]) / (xs[hi] - xs[lo])
    return ys[lo] + t * (ys[hi] - ys[lo])


@njit(cache=True)
def _pulse(state, cells, counts, width, seed, g_out, up_g, up_step, down_g, down_step,
           c2c_up, c2c_down):
    """``counts[m]`` pulses into cell ``cells[m]``: ``dG = +-s * step(G) * width * noise``."""
    np.random.seed(seed)
    g = state[G]
    scale = state[SCALE]
    lo = state[G_LO]
    hi = state[G_HI]
    for m in range(cells.size):
        k = cells[m]
        n = counts[m]
        value = g[k]
        if n > 0:
            for _ in range(n):
                step = scale[k] * width * _interp(value, up_g, up_step)
                if c2c_up > 0.0:
                    step *= max(1.0 + c2c_up * np.random.standard_normal(), 0.0)
                value = min(value + step, hi[k])
        elif n < 0:
            for _ in range(-n):
                step = scale[k] * width * _interp(value, down_g, down_step)
                if c2c_down > 0.0:
                    step *= max(1.0 + c2c_down * np.random.standard_normal(), 0.0)
                value = max(value - step, lo[k])
        g[k] = value
        g_out[k] = value


def _as_tuple(values) -> tuple:
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Measured(Device):
    """A device family fitted to measured conductance-versus-pulse tables.

    Build one with :func:`fit_pulse_table` (or ``Measured.from_csv(path)``); the
    defaults are a placeholder: a linear device of 100 equal steps across 1-100 uS with
    no spread (assumed).

    Parameters
    ----------
    g_min_s, g_max_s
        Median lowest / highest conductance of the measured devices (siemens).
    up_g_s, up_step_s
        Potentiation table: conductance before a pulse (ascending) and the mean step
        (siemens, > 0) of one nominal pulse there.
    down_g_s, down_step_s
        Depression table: the same for pulses that lower the conductance (step
        magnitudes, > 0).
    d2d_step_rel
        Relative device-to-device spread (std) of a cell's step scale.
    d2d_bounds_rel
        Relative device-to-device spread (std) of each cell's bounds.
    c2c_up_rel, c2c_down_rel
        Relative cycle-to-cycle spread (std) of a potentiating / depressing step.
    g_init_frac
        Where a fresh cell starts between its bounds (0: lowest, 1: highest).
    operating_level_frac
        The default reference level of signed weights, as a fraction of the window.
    pulse_width_s
        Duration of one nominal pulse (not in the table; assumed).
    table
        Where the fit came from (a file name; provenance only).
    """

    g_min_s: float = 1e-6
    g_max_s: float = 100e-6
    up_g_s: tuple = (1e-6, 100e-6)
    up_step_s: tuple = (0.99e-6, 0.99e-6)
    down_g_s: tuple = (1e-6, 100e-6)
    down_step_s: tuple = (0.99e-6, 0.99e-6)
    d2d_step_rel: float = 0.0
    d2d_bounds_rel: float = 0.0
    c2c_up_rel: float = 0.0
    c2c_down_rel: float = 0.0
    g_init_frac: float = 0.5
    operating_level_frac: float = 0.5
    pulse_width_s: float = 100e-9
    table: str = "placeholder: linear device, 100 equal steps (assumed)"

    name: ClassVar[str] = "measured"
    state_names: ClassVar[tuple[str, ...]] = ("g_s", "step_scale", "g_min_s", "g_max_s")
    source: ClassVar[str] = (
        "fitted to measured conductance-versus-pulse tables (see the table field). "
        "Assumed: a step depends only on the conductance, scales linearly with pulse "
        "width, multiplicative Gaussian cycle-to-cycle noise; pulse duration and energy "
        "are not measured by the table (defaults assumed: 100 ns, 1 pJ)")

    def __post_init__(self) -> None:
        for name in _TABLES:  # JSON gives lists back: store tuples (hashable, frozen)
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
                raise TypeError(f"Measured.{name} must be a sequence of numbers, got {value!r}")
            try:
                object.__setattr__(self, name, _as_tuple(value))
            except (TypeError, ValueError):
                raise TypeError(f"Measured.{name} must hold numbers, got {value!r}") from None
        if not isinstance(self.table, str):
            raise TypeError(f"Measured.table must be a string, got {self.table!r}")
        super().__post_init__()

    def validate(self) -> None:
        self._check_nonnegative("g_min_s", "d2d_step_rel", "d2d_bounds_rel", "c2c_up_rel",
                                "c2c_down_rel")
        self._check_positive("g_max_s", "pulse_width_s")
        self._check_order("g_min_s", "g_max_s")
        self._check_fraction("g_init_frac", "operating_level_frac")
        for g_name, s_name in (("up_g_s", "up_step_s"), ("down_g_s", "down_step_s")):
            g, s = np.asarray(getattr(self, g_name)), np.asarray(getattr(self, s_name))
            if g.size < 2 or g.size != s.size:
                raise ValueError(f"Measured.{g_name} and Measured.{s_name} must have the same "
                                 f"length >= 2, got {g.size} and {s.size}")
            if not (np.all(np.isfinite(g)) and np.all(np.diff(g) > 0)):
                raise ValueError(f"Measured.{g_name} must be finite and strictly ascending")
            if not (np.all(np.isfinite(s)) and np.all(s >= 0) and np.any(s > 0)):
                raise ValueError(f"Measured.{s_name} must be finite, >= 0 and not all zero")

    @classmethod
    def from_csv(cls, path, **parameters) -> "Measured":
        """Fit a pulse table file (:func:`fit_pulse_table`); keywords override the fit."""
        return fit_pulse_table(read_pulse_table(path), table=Path(path).name, **parameters)

    # ------------------------------------------------------------------ physics
    @property
    def operating_level(self) -> float:
        return self.operating_level_frac

    def init_state(self, n_cells, rng):
        state = np.empty((len(self.state_names), n_cells))
        state[SCALE] = np.maximum(1.0 + self.d2d_step_rel * rng.standard_normal(n_cells), 0.0)
        lo = np.maximum(self.g_min_s * (1.0 + self.d2d_bounds_rel * rng.standard_normal(n_cells)), 0.0)
        hi = self.g_max_s * (1.0 + self.d2d_bounds_rel * rng.standard_normal(n_cells))
        state[G_LO] = lo
        state[G_HI] = np.maximum(hi, lo)
        state[G] = lo + self.g_init_frac * (state[G_HI] - lo)
        return state

    def apply_pulses_at(self, state, cells, counts, width, seed, g_out, time_s=0.0):
        arrays = [np.asarray(getattr(self, n)) for n in _TABLES]
        _pulse(state, cells, counts, float(width), seed, g_out, *arrays,
               self.c2c_up_rel, self.c2c_down_rel)

    def conductance(self, state, time_s=0.0):
        return state[G].copy()

    def cell_bounds(self, state):
        """Per-cell ``(G_min, G_max)`` drawn at fabrication (siemens)."""
        return state[G_LO].copy(), state[G_HI].copy()

    def pulse_duration_s(self, sign):
        return self.pulse_width_s


# ---------------------------------------------------------------------------- tables

def pulse_table(device, *, n_devices: int = 16, n_cycles: int = 2, n_pulses: int = 100,
                width: float = 1.0, seed: int = 0) -> list[dict]:
    """Simulated measurement of any device: a fresh population of ``n_devices`` cells
    is driven to its lowest conductance (``n_pulses`` depressing pulses), then each
    cycle records a potentiation curve and a depression curve of ``n_pulses`` pulses.
    Returns the rows of a pulse table."""
    device = get_device(device)
    for name, value, low in (("n_devices", n_devices, 1), ("n_cycles", n_cycles, 1),
                             ("n_pulses", n_pulses, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    rng = np.random.default_rng(seed)
    state = device.init_state(n_devices, rng)
    g_out = np.empty(n_devices)
    seeds = iter(rng.integers(0, 2**31 - 1, size=n_pulses * (2 * n_cycles + 1)))
    down, up = -np.ones(n_devices, np.int64), np.ones(n_devices, np.int64)
    t = 0.0
    for _ in range(n_pulses):
        device.apply_pulses(state, down, width, int(next(seeds)), g_out, t)
    rows = []
    for cycle in range(n_cycles):
        for direction, counts in (("potentiation", up), ("depression", down)):
            g = device.conductance(state, t)
            for d in range(n_devices):
                rows.append({"device": d, "cycle": cycle, "direction": direction, "pulse": 0,
                             "conductance_s": float(g[d])})
            for p in range(1, n_pulses + 1):
                device.apply_pulses(state, counts, width, int(next(seeds)), g_out, t)
                g = device.conductance(state, t)
                for d in range(n_devices):
                    rows.append({"device": d, "cycle": cycle, "direction": direction,
                                 "pulse": p, "conductance_s": float(g[d])})
    return rows


def write_pulse_table(path, device, **options) -> Path:
    """Write :func:`pulse_table` of ``device`` (an instance or a name) as CSV."""
    rows = pulse_table(device, **options)
    path = Path(path)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "conductance_s": repr(r["conductance_s"])})
    return path


def read_pulse_table(path) -> list[dict]:
    """Rows of a pulse table CSV, checked: the columns of :data:`COLUMNS`, integer
    device / cycle / pulse, a known direction, finite conductances >= 0, and at least
    two readings per curve. Errors name the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pulse table {path} does not exist")
    rows = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; a pulse table has "
                             f"{', '.join(COLUMNS)}")
        for line, raw in enumerate(reader, start=2):
            try:
                row = {"device": raw["device"].strip(), "cycle": int(raw["cycle"]),
                       "direction": raw["direction"].strip().lower(), "pulse": int(raw["pulse"]),
                       "conductance_s": float(raw["conductance_s"])}
            except (TypeError, ValueError, AttributeError):
                raise ValueError(f"{path}, line {line}: cycle and pulse must be integers and "
                                 f"conductance_s a number, got {dict(raw)}") from None
            if row["direction"] not in DIRECTIONS:
                raise ValueError(f"{path}, line {line}: direction must be one of {DIRECTIONS}, "
                                 f"got {raw['direction']!r}")
            if not (math.isfinite(row["conductance_s"]) and row["conductance_s"] >= 0):
                raise ValueError(f"{path}, line {line}: conductance_s must be finite and >= 0, "
                                 f"got {raw['conductance_s']!r}")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    curves = _curves(rows)
    for direction in DIRECTIONS:
        if not any(k[2] == direction and len(c) >= 2 for k, c in curves.items()):
            raise ValueError(f"{path}: no {direction} curve with two readings or more")
    return rows


def _curves(rows) -> dict:
    """``(device, cycle, direction) -> conductances ordered by pulse``."""
    curves = {}
    for r in rows:
        curves.setdefault((str(r["device"]), r["cycle"], r["direction"]), []).append(
            (r["pulse"], r["conductance_s"]))
    return {k: np.array([g for _, g in sorted(v)]) for k, v in curves.items()}


def _steps(rows):
    """Per direction: arrays of (device index, conductance before, step magnitude)."""
    curves = _curves(rows)
    devices = sorted({k[0] for k in curves})
    out = {}
    for direction, sign in (("potentiation", 1.0), ("depression", -1.0)):
        dev, before, step = [], [], []
        for (d, _, dr), g in curves.items():
            if dr != direction or g.size < 2:
                continue
            dev.append(np.full(g.size - 1, devices.index(d)))
            before.append(g[:-1])
            step.append(sign * np.diff(g))
        out[direction] = tuple(np.concatenate(a) for a in (dev, before, step))
    return devices, out


def _table(before, step, edges):
    """Mean conductance and mean step in each bin that holds readings."""
    idx = np.clip(np.searchsorted(edges, before, side="right") - 1, 0, len(edges) - 2)
    g, s = [], []
    for b in range(len(edges) - 1):
        sel = idx == b
        if np.any(sel):
            g.append(before[sel].mean())
            s.append(max(step[sel].mean(), 0.0))
    g, s = np.array(g), np.array(s)
    keep = np.concatenate([[True], np.diff(g) > 0])  # strictly ascending
    return g[keep], s[keep]


def fit_pulse_table(rows, *, n_bins: int = 32, table: str = "", **parameters) -> Measured:
    """Fit :class:`Measured` to pulse-table rows (:func:`read_pulse_table`); keywords
    override fitted or default parameters (``pulse_width_s``, energies, ...)."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    devices, steps = _steps(rows)
    g_all = np.array([r["conductance_s"] for r in rows])
    per_dev = {d: [] for d in devices}
    for r in rows:
        per_dev[str(r["device"])].append(r["conductance_s"])
    lows = np.array([min(v) for v in per_dev.values()])
    highs = np.array([max(v) for v in per_dev.values()])
    g_min, g_max = float(np.median(lows)), float(np.median(highs))
    if not g_max > g_min:
        raise ValueError("the pulse table's devices do not move: their highest and lowest "
                         "conductances agree")
    lo_all, hi_all = float(g_all.min()), float(g_all.max())
    if lo_all > 0 and hi_all / lo_all > 100:
        edges = np.geomspace(lo_all, hi_all * (1 + 1e-12), n_bins + 1)
    else:
        edges = np.linspace(lo_all, hi_all * (1 + 1e-12) + 1e-30, n_bins + 1)
    tables, scales, c2c = {}, [], {}
    for direction in DIRECTIONS:
        dev, before, step = steps[direction]
        g_t, s_t = _table(before, step, edges)
        tables[direction] = (g_t, s_t)
        pred = np.interp(before, g_t, s_t)
        scale = np.ones(len(devices))
        for d in range(len(devices)):
            sel = dev == d
            if np.any(sel) and pred[sel].sum() > 0:
                scale[d] = step[sel].sum() / pred[sel].sum()
        scales.append(scale)
        c2c[direction] = _c2c(rows, direction)
    scale = np.mean(scales, axis=0)
    d2d_step = float(np.std(scale) / np.mean(scale)) if len(devices) > 1 else 0.0
    d2d_bounds = float(np.std(highs) / np.mean(highs)) if len(devices) > 1 else 0.0
    fitted = dict(
        g_min_s=g_min, g_max_s=g_max,
        up_g_s=tables["potentiation"][0], up_step_s=tables["potentiation"][1],
        down_g_s=tables["depression"][0], down_step_s=tables["depression"][1],
        d2d_step_rel=d2d_step, d2d_bounds_rel=d2d_bounds,
        c2c_up_rel=c2c["potentiation"], c2c_down_rel=c2c["depression"],
        g_init_frac=0.5, operating_level_frac=_crossing(tables, g_min, g_max),
        table=table or "fitted pulse table")
    known = {f.name for f in fields(Measured)}
    unknown = set(parameters) - known
    if unknown:
        raise ValueError(f"unknown Measured parameters {sorted(unknown)}; choose from {sorted(known)}")
    return Measured(**{**fitted, **parameters})


def _c2c(rows, direction) -> float:
    """Cycle-to-cycle spread from consecutive steps of each curve: for a curve that
    changes slowly from pulse to pulse, ``(s[n+1] - s[n]) / mean`` has standard
    deviation ``sqrt(2) c2c`` whatever the device's own curve (steps within 1 % of the
    curve's largest, at the bounds, are left out)."""
    rel = []
    sign = 1.0 if direction == "potentiation" else -1.0
    for (_, _, dr), g in _curves(rows).items():
        if dr != direction or g.size < 3:
            continue
        s = sign * np.diff(g)
        pair = (s[:-1] > 0.01 * s.max()) & (s[1:] > 0.01 * s.max())
        if np.any(pair):
            a, b = s[:-1][pair], s[1:][pair]
            rel.append((b - a) / (0.5 * (a + b)))
    if not rel:
        return 0.0
    return float(np.std(np.concatenate(rel)) / math.sqrt(2.0))


def _crossing(tables, g_min, g_max) -> float:
    """Fraction of the window where the up and down steps are equal (0.5 if never)."""
    grid = np.linspace(g_min, g_max, 2001)
    up = np.interp(grid, *tables["potentiation"])
    down = np.interp(grid, *tables["depression"])
    diff = np.sign(up - down)
    change = np.flatnonzero(diff[:-1] * diff[1:] < 0)
    if change.size == 0:
        return 0.5
    return float(np.clip((grid[change[0]] - g_min) / (g_max - g_min), 0.0, 1.0))


def step_statistics(rows, *, n_bins: int = 8) -> dict:
    """Summary of a pulse table to compare two of them: conductance range, the mean
    step in ``n_bins`` conductance bins per direction (log bins when the range spans
    more than two decades), the relative spread of the steps within a bin (averaged
    over bins with ten steps or more), and the mean number of
    pulses a potentiation curve needs to cross half of the range."""
    devices, steps = _steps(rows)
    g_all = np.array([r["conductance_s"] for r in rows])
    lo, hi = float(np.percentile(g_all, 1)), float(np.percentile(g_all, 99))
    edges = (np.geomspace(max(lo, 1e-30), hi, n_bins + 1) if lo > 0 and hi / lo > 100
             else np.linspace(lo, hi, n_bins + 1))
    out = {"g_low_s": lo, "g_high_s": hi}
    for direction in DIRECTIONS:
        _, before, step = steps[direction]
        idx = np.searchsorted(edges, before, side="right") - 1
        means = [float(step[idx == b].mean()) if np.any(idx == b) else float("nan")
                 for b in range(n_bins)]
        spreads = [float(np.std(step[idx == b]) / np.mean(step[idx == b]))
                   for b in range(n_bins) if np.sum(idx == b) >= 10 and np.mean(step[idx == b]) > 0]
        out[direction] = {"mean_step_s": means,
                          "step_spread_rel": float(np.mean(spreads)) if spreads else float("nan")}
    half = lo + 0.5 * (hi - lo)
    crossings = [int(np.argmax(g >= half)) for k, g in _curves(rows).items()
                 if k[2] == "potentiation" and np.any(g >= half)]
    out["pulses_to_half_range"] = float(np.mean(crossings)) if crossings else float("nan")
    return out
