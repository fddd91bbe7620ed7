"""Brian2 synapses whose weights live on a neuromem :class:`~neuromem.Crossbar`.

:class:`CrossbarSynapses` is a :class:`brian2.Synapses` whose weight ``w`` is the
conductance of a crossbar cell. Plasticity code in ``on_pre``/``on_post`` does not write
``w``; it assigns the desired change to a temporary ``dw``. Generated code (per spike,
inside Brian2) turns ``dw`` into an integer number of programming pulses, kept in the
synaptic variable ``xbar_pending``. A contained ``network_operation`` flushes the pending
pulses to :meth:`Crossbar.apply_pulses` every ``sync_interval`` (and at the end of every
run): the *device* decides the actual conductance change, and the crossbar weights are
written back into ``w``. Python therefore runs once per sync interval, not per step.

Mapping: synapse ``(i, j)`` (``S.i``, ``S.j``) is crossbar cell ``(i, j)``, for any
connectivity; cells without a synapse are never pulsed. The crossbar must have at least
``len(source)`` rows and ``len(target)`` columns, and one synapse per pair at most.

Scale: ``w = w_max * crossbar.weights[i, j]`` (``weights`` is conductance over the
device's nominal range), so ``w`` spans ``w_max * [g_min, g_max] / (g_max - g_min)``.

Pulse conversion (``rounding``):

``"residual"`` (default)
    ``xbar_acc += dw``; ``n = trunc(xbar_acc / step)`` pulses are requested and
    ``n * step`` taken off ``xbar_acc``, so nothing below one step is lost, only delayed.
``"stochastic"``
    ``n = floor(dw / step + U(0, 1))``: unbiased, no state besides the pending count.

``step`` is the nominal change of ``w`` per pulse, ``dw_per_pulse`` (up, down); by
default it is measured on a separate probe array of the same device
(:func:`nominal_pulse_step`), as a controller would take it from a datasheet.

Pulses requested within one sync interval are summed per cell before they are applied
(an accumulate-and-fire counter per cell), so ``+3`` and ``-2`` become one pulse up.

Example::

    xbar = Crossbar(1000, 1, "ideal", scheme="single", seed=1)
    S = CrossbarSynapses(inputs, neuron, xbar, w_max=0.01, sync_interval=1*ms,
                         **pair_stdp(20*ms, 20*ms, 1e-4, -1.05e-4, on_pre="ge += w"))
    S.connect()
    S.program_weights(np.random.default_rng(0).uniform(0, 0.01, 1000))
    net = Network(inputs, neuron, S)      # the sync operation comes with S
    net.run(10*second)                    # S.w == 0.01 * xbar.weights[S.i, S.j]
"""

from __future__ import annotations

import re
import warnings
from numbers import Real

import numpy as np
from brian2 import NetworkOperation, Quantity, Synapses, ms, prefs, second
from brian2.units.fundamentalunits import DimensionMismatchError, get_dimensions, get_unit

from .crossbar import Crossbar
from .devices import Device, get_device
from .devices.ideal import Ideal

__all__ = ["CrossbarSynapses", "CrossbarSync", "pair_stdp", "nominal_pulse_step",
           "use_cython", "diffusive_neurons"]

ROUNDINGS = ("residual", "stochastic")
_WRITES_W = re.compile(r"^\s*w\s*(\+|-|\*|/)?=(?!=)", re.MULTILINE)
_USES = {name: re.compile(rf"\b{name}\b") for name in ("w", "dw")}


def use_cython(strict: bool = False) -> str:
    """Select Brian2's Cython runtime target; fall back to numpy if Cython is missing.

    Returns the target now in use. ``strict=True`` raises instead of falling back.
    """
    try:
        import Cython  # noqa: F401
    except ImportError:
        if strict:
            raise
        warnings.warn("Cython is not installed: Brian2 runs with the (slow) numpy target")
        prefs.codegen.target = "numpy"
    else:
        prefs.codegen.target = "cython"
    return prefs.codegen.target


# ---------------------------------------------------------------------- pulse step
def nominal_pulse_step(device: Device | str, *, n_cells: int = 64, seed: int = 0,
                       max_pulses: int = 5000, reach: float = 0.95) -> tuple[float, float]:
    """Nominal weight change of one potentiating and one depressing pulse.

    In units of :attr:`Crossbar.weights` (conductance / nominal range). For the linear
    :class:`~neuromem.devices.Ideal` it is ``step_s / range``. For any other device it
    is measured on a separate probe array (its own seed and ledger): the cells are
    driven to the bottom, then the mean swing is divided by the number of pulses that
    cover ``reach`` of it, going up; then likewise going down.
    """
    device = get_device(device)
    if isinstance(device, Ideal):
        step = device.step_s / (device.g_max_s - device.g_min_s)
        return step, step
    if not 0 < reach < 1:
        raise ValueError(f"reach must lie in (0, 1), got {reach!r}")
    probe = Crossbar(1, n_cells, device, scheme="single", seed=seed)
    ones = np.ones((1, n_cells), dtype=np.int64)

    def sweep(sign):
        trace = [float(probe.weights.mean())]
        for _ in range(max_pulses):
            probe.apply_pulses(sign * ones)
            trace.append(float(probe.weights.mean()))
            # saturated: the last 10 pulses moved it by < 0.1 % of the swing so far
            if len(trace) > 10 and abs(trace[-1] - trace[-11]) < 1e-3 * abs(trace[-1] - trace[0]):
                break
        trace = np.abs(np.array(trace) - trace[0])
        swing = trace[-1]
        if swing <= 0:
            raise ValueError(f"{type(device).__name__} does not move under {sign:+d} pulses")
        n = int(np.argmax(trace >= reach * swing))
        return reach * swing / max(n, 1)

    sweep(-1)
    up = sweep(+1)
    down = sweep(-1)
    return up, down


# ---------------------------------------------------------------------- STDP rule
def pair_stdp(taupre, taupost, a_pre, a_post, *, on_pre: str = "", on_post: str = "",
              plain_w_max=None) -> dict:
    """Pair-based STDP with exponential traces (all-to-all pairing), as keyword arguments.

    ``a_pre`` (> 0 for potentiation) is added to the presynaptic trace at every
    presynaptic spike, ``a_post`` (< 0 for depression) to the postsynaptic trace at every
    postsynaptic spike; the weight changes by the other side's trace. ``on_pre`` /
    ``on_post`` are extra statements run first (e.g. ``"ge += w"``).

    Returns ``dict(model=..., on_pre=..., on_post=..., namespace=...)`` for
    :class:`CrossbarSynapses`. With ``plain_w_max`` it returns the same rule for a plain
    :class:`brian2.Synapses` instead (``w`` declared, ``w = clip(w + dw, 0, plain_w_max)``):
    the reference the ideal-device mode is compared with.
    """
    for name, value in (("taupre", taupre), ("taupost", taupost)):
        if not isinstance(value, Quantity) or get_dimensions(value) != second.dim or not value > 0:
            raise ValueError(f"{name} must be a positive time (e.g. 20*ms), got {value!r}")
    model = ("dapre/dt = -apre / stdp_taupre : 1 (event-driven)\n"
             "dapost/dt = -apost / stdp_taupost : 1 (event-driven)")
    ns = {"stdp_taupre": taupre, "stdp_taupost": taupost, "stdp_a_pre": a_pre,
          "stdp_a_post": a_post}
    pre = f"{on_pre}\napre += 1\ndw = stdp_a_post * apost"
    post = f"{on_post}\napost += 1\ndw = stdp_a_pre * apre"
    if plain_w_max is not None:
        unit = _unit_string(plain_w_max)
        model += f"\nw : {unit}"
        ns["stdp_w_max"] = plain_w_max
        pre += "\nw = clip(w + dw, 0 * stdp_w_max, stdp_w_max)"
        post += "\nw = clip(w + dw, 0 * stdp_w_max, stdp_w_max)"
    return {"model": model, "on_pre": pre.strip(), "on_post": post.strip(), "namespace": ns}


def _unit_string(value) -> str:
    dim = get_dimensions(value)
    return "1" if dim.is_dimensionless else repr(get_unit(dim))


# ---------------------------------------------------------------------- sync operation
class CrossbarSync(NetworkOperation):
    """The contained operation of :class:`CrossbarSynapses`: flushes pulses to the crossbar.

    It also stores and restores the crossbar state with ``Network.store``/``restore``
    (device state, clock, random state and the energy ledger roll back together with the
    Brian2 variables), checks the mapping before a run and flushes after it.
    """

    def __init__(self, synapses: "CrossbarSynapses", sync_interval):
        # runs on the synapses' own clock and counts steps: a second clock would put
        # Brian2 on its slower multi-clock scheduling path for the whole network
        NetworkOperation.__init__(self, self._sync, clock=synapses.clock, when="end",
                                  name=f"{synapses.name}_crossbar_sync")
        self.synapses = synapses
        self.sync_interval = sync_interval
        self._every = 1             # steps between flushes (set before each run)
        self._countdown = 1
        self.n_flushes = 0
        self.requested = {"potentiate": 0, "depress": 0}  # pulses sent to the crossbar
        self.synaptic_events = 0
        self._cells = None          # flat cell index per synapse
        self._w_written = None      # w as last written (detects writes from outside)
        self._counts = None         # reusable (rows*cols,) pulse buffer
        self._views = None          # live variable arrays, cached during a run only
        self._t_last_s = 0.0

    # -------------------------------------------------------------- mapping
    def cells(self) -> np.ndarray:
        """Flat crossbar cell index of every synapse (validates the connectivity)."""
        if self._views is not None and self._cells is not None:
            return self._cells  # during a run the connectivity cannot change
        S = self.synapses
        n = len(S)
        if self._cells is not None and self._cells.size == n:
            return self._cells
        xbar = S.crossbar
        i = np.asarray(S.variables["_synaptic_pre"].get_value(), dtype=np.int64)
        j = np.asarray(S.variables["_synaptic_post"].get_value(), dtype=np.int64)
        cells = i * xbar.cols + j
        if np.unique(cells).size != cells.size:
            raise ValueError(f"{S.name}: more than one synapse per (i, j) pair; each synapse "
                             "needs its own crossbar cell")
        self._cells = cells
        return cells

    # -------------------------------------------------------------- transfers
    def _fetch_views(self):
        """(w, xbar_events, xbar_pending) as live arrays of the Brian2 variables."""
        v = self.synapses.variables
        return (v["w"].get_value(), v["xbar_events"].get_value(),
                v["xbar_pending"].get_value())

    def write_weights(self, synapses: np.ndarray | None = None) -> None:
        """Copy the crossbar weights into ``w`` (``w = w_max * weights[i, j]``).

        ``synapses`` restricts the copy to those synapse indices (the pulsed ones).
        """
        S = self.synapses
        # float64 before scaling: w does not depend on the conductances' storage type
        g = S.crossbar.effective_conductance.ravel().astype(np.float64)
        w = S.variables["w"].get_value()
        cells = self.cells()
        if synapses is None or self._w_written is None or self._w_written.shape != w.shape:
            np.multiply(g[cells], S._w_per_siemens, out=w)
            self._w_written = w.copy()
        else:
            w[synapses] = g[cells[synapses]] * S._w_per_siemens
            self._w_written[synapses] = w[synapses]

    def flush(self, t_s: float | None = None) -> tuple[int, int]:
        """Apply every pending pulse now; returns (potentiating, depressing) pulses."""
        S = self.synapses
        xbar = S.crossbar
        cells = self.cells()
        if t_s is not None and t_s > self._t_last_s:
            xbar.wait(t_s - self._t_last_s)  # device clock follows biological time (drift)
            self._t_last_s = t_s
        w, events, pending = self._views or self._fetch_views()
        n_events = int(events.sum())
        if n_events:
            # each presynaptic spike reads its cells at the conductance they had since
            # the last flush: V_read^2 * G * t_read per cell
            dev = xbar.device
            if xbar.scheme == "single":
                g, scale = w, 1.0 / S._w_per_siemens  # w = G * w_per_siemens, current
            else:
                g = (xbar.conductance + xbar.reference_conductance).ravel()[cells]
                scale = 1.0
            # (multiply-sum, not @: BLAS threads stall on a busy machine, int @ float is slow)
            energy = dev.read_voltage_v ** 2 * dev.read_time_s * scale * float(np.multiply(g, events).sum())
            xbar.ledger.record("synaptic_read", n_events, energy)
            self.synaptic_events += n_events
            events[:] = 0
        pulsed = np.flatnonzero(pending)
        up = down = 0
        if pulsed.size:
            if self._counts is None or self._counts.size != xbar.rows * xbar.cols:
                self._counts = np.zeros(xbar.rows * xbar.cols, dtype=np.int64)
            where = cells[pulsed]
            self._counts[where] = pending[pulsed]
            up, down = xbar.apply_pulses(self._counts.reshape(xbar.shape))
            self._counts[where] = 0
            self.requested["potentiate"] += up
            self.requested["depress"] += down
            pending[pulsed] = 0
            self.n_flushes += 1
        if xbar.device.drifts:
            self.write_weights()
        elif pulsed.size:
            self.write_weights(pulsed)
        return up, down

    def _sync(self):
        self.flush(self.clock.variables["t"].get_value().item())

    def run(self):
        self._countdown -= 1
        if self._countdown <= 0:
            self._countdown = self._every
            self._sync()

    # -------------------------------------------------------------- Brian2 hooks
    def before_run(self, run_namespace):
        S = self.synapses
        dt = float(self.clock.dt_)
        every = float(self.sync_interval) / dt
        if abs(every - round(every)) > 1e-6 * every or round(every) < 1:
            raise ValueError(f"{S.name}: sync_interval ({self.sync_interval}) must be a "
                             f"multiple of the synapses' dt ({self.clock.dt})")
        self._every = int(round(every))
        self._countdown = min(self._countdown, self._every)
        self._views = None
        self._cells = None
        self.cells()
        w = S.variables["w"].get_value()
        if self._w_written is None or self._w_written.shape != w.shape:
            self.write_weights()
        elif not np.array_equal(w, self._w_written):
            raise RuntimeError(
                f"{S.name}.w was changed outside the crossbar; weights live on the devices: "
                "set them with program_weights(...) instead of assigning w")
        NetworkOperation.before_run(self, run_namespace)
        self._views = self._fetch_views()  # no resizing while running

    def after_run(self):
        self.flush(self.clock.variables["t"].get_value().item())
        self._views = None
        NetworkOperation.after_run(self)

    def _full_state(self):
        arrays, meta = self.synapses.crossbar.state_dict()
        return {"arrays": {k: v.copy() for k, v in arrays.items()}, "meta": meta,
                "requested": dict(self.requested), "n_flushes": self.n_flushes,
                "synaptic_events": self.synaptic_events, "t_last_s": self._t_last_s,
                "countdown": self._countdown,
                "w_written": None if self._w_written is None else self._w_written.copy()}

    def _restore_from_full_state(self, state):
        # in place: users and other arrays keep their references to crossbar and ledger
        self.synapses.crossbar.load_state_dict(state["arrays"], state["meta"])
        self.requested = dict(state["requested"])
        self.n_flushes = state["n_flushes"]
        self.synaptic_events = state["synaptic_events"]
        self._t_last_s = state["t_last_s"]
        self._countdown = state["countdown"]
        self._w_written = None if state["w_written"] is None else state["w_written"].copy()


# ---------------------------------------------------------------------- synapses
class CrossbarSynapses(Synapses):
    """A :class:`brian2.Synapses` whose weights ``w`` are crossbar conductances.

    Parameters
    ----------
    source, target : NeuronGroup-like
        As for :class:`brian2.Synapses`.
    crossbar : Crossbar
        Holds the synapses: synapse ``(i, j)`` is cell ``(i, j)``.
    w_max : float or Quantity
        Value of ``w`` for one unit of crossbar weight (the device's nominal range); its
        unit is the unit of ``w``.
    model, on_pre, on_post : str (on_pre/on_post may be dicts of pathways)
        Brian2 code that must not declare or assign ``w``; plasticity assigns the desired
        change to the temporary ``dw`` (unit of ``w``).
    dw_per_pulse : float, Quantity or (up, down), optional
        Nominal change of ``w`` per potentiating / depressing pulse. Default:
        ``w_max * nominal_pulse_step(crossbar.device)``.
    rounding : {"residual", "stochastic"}
        How ``dw`` becomes whole pulses (module docstring).
    sync_interval : Quantity
        How often pending pulses are applied to the crossbar (1-10 ms is typical).
    **kwargs
        Passed on to :class:`brian2.Synapses` (``connect``, ``delay``, ``namespace``,
        ``method``, ``dt``, ``name``, ...).
    """

    def __init__(self, source, target, crossbar: Crossbar, *, w_max, model="", on_pre=None,
                 on_post=None, dw_per_pulse=None, rounding="residual", sync_interval=1 * ms,
                 name="crossbarsynapses*", **kwargs):
        if not isinstance(crossbar, Crossbar):
            raise TypeError(f"crossbar must be a neuromem Crossbar, got {type(crossbar).__name__}")
        if crossbar.rows < len(source) or crossbar.cols < len(target):
            raise ValueError(f"crossbar {crossbar.shape} is too small for {len(source)} sources "
                             f"x {len(target)} targets (row i = source i, column j = target j)")
        w_max_si = _positive_number("w_max", w_max)
        w_unit = _unit_string(w_max)
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
        if (not isinstance(sync_interval, Quantity) or get_dimensions(sync_interval) != second.dim
                or not float(sync_interval) > 0):
            raise ValueError(f"sync_interval must be a positive time (e.g. 1*ms), got {sync_interval!r}")
        for forbidden in ("pre", "post"):
            if forbidden in kwargs:
                raise TypeError(f"use on_{forbidden}=..., not {forbidden}=...")
        model = "" if model is None else str(model)
        if re.search(r"^\s*(d)?(w|xbar_acc|xbar_pending|xbar_events)\b", model, re.MULTILINE):
            raise ValueError("model must not declare w or xbar_* variables: CrossbarSynapses "
                             "declares w (the crossbar weight) itself")
        up, down = self._pulse_steps(crossbar, dw_per_pulse, w_max, w_max_si)

        on_pre = self._instrument(on_pre, rounding, count_reads=True)
        on_post = self._instrument(on_post, rounding, count_reads=False)
        model = "\n".join([
            model,
            f"w : {w_unit}",
            f"xbar_acc : {w_unit}",
            "xbar_pending : integer",
            "xbar_events : integer",
            f"xbar_dw_up : {w_unit} (shared, constant)",
            f"xbar_dw_down : {w_unit} (shared, constant)",
        ])
        # attributes first: Brian2 groups refuse new attributes after construction
        self._crossbar = crossbar
        self._w_max = w_max
        self._w_per_siemens = w_max_si / crossbar.weight_unit_s
        self._rounding = rounding
        self._dw_steps_si = (up, down)
        Synapses.__init__(self, source, target, model=model, on_pre=on_pre, on_post=on_post,
                          name=name, **kwargs)
        self.variables["xbar_dw_up"].set_value(up)
        self.variables["xbar_dw_down"].set_value(down)
        self._sync_op = CrossbarSync(self, sync_interval)
        self.contained_objects.append(self._sync_op)

    # -------------------------------------------------------------- construction helpers
    @staticmethod
    def _pulse_steps(crossbar, dw_per_pulse, w_max, w_max_si):
        if dw_per_pulse is None:
            up, down = nominal_pulse_step(crossbar.device)
            return up * w_max_si, down * w_max_si
        pair = dw_per_pulse if isinstance(dw_per_pulse, (tuple, list)) else (dw_per_pulse,) * 2
        if len(pair) != 2:
            raise ValueError("dw_per_pulse must be one value or an (up, down) pair")
        out = []
        for value in pair:
            try:
                _ = value + 0 * w_max  # unit check against w
            except DimensionMismatchError:
                raise ValueError(f"dw_per_pulse {value!r} must have the unit of w_max ({w_max!r})") from None
            out.append(_positive_number("dw_per_pulse", value))
        return tuple(out)

    @staticmethod
    def _instrument(code, rounding, count_reads):
        """Append pulse conversion (and read counting) to each pathway's code."""
        if code is None:
            return None
        if isinstance(code, dict):
            return {k: CrossbarSynapses._instrument(v, rounding, count_reads) for k, v in code.items()}
        if not isinstance(code, str):
            raise TypeError(f"on_pre/on_post must be a string or a dict of strings, got {type(code).__name__}")
        if _WRITES_W.search(code):
            raise ValueError("on_pre/on_post must not assign w (it is the device's conductance); "
                             "assign the desired change to dw instead, e.g. 'dw = Apost'")
        lines = [code]
        if count_reads and _USES["w"].search(code):
            lines.append("xbar_events += 1")
        if _USES["dw"].search(code):
            if rounding == "residual":
                lines += [
                    "xbar_acc += dw",
                    "xbar_n = int(xbar_acc / xbar_dw_up) * int(xbar_acc > 0 * xbar_dw_up)"
                    " + int(xbar_acc / xbar_dw_down) * int(xbar_acc < 0 * xbar_dw_down)",
                    "xbar_acc -= xbar_n * (xbar_dw_up * int(xbar_n > 0) + xbar_dw_down * int(xbar_n < 0))",
                    "xbar_pending += xbar_n",
                ]
            else:
                lines += [
                    "xbar_x = dw / xbar_dw_up * int(dw > 0 * xbar_dw_up)"
                    " + dw / xbar_dw_down * int(dw < 0 * xbar_dw_down)",
                    "xbar_pending += int(floor(xbar_x + rand()))",
                ]
        return "\n".join(lines)

    # -------------------------------------------------------------- public API
    @property
    def crossbar(self) -> Crossbar:
        """The crossbar that holds the weights."""
        return self._crossbar

    @property
    def sync(self) -> CrossbarSync:
        """The contained flush operation (pulse and event counters live there)."""
        return self._sync_op

    @property
    def w_max(self):
        """Value of ``w`` for one unit of crossbar weight."""
        return self._w_max

    @property
    def dw_per_pulse(self) -> tuple[float, float]:
        """Nominal (up, down) change of ``w`` per pulse, in SI units of ``w``."""
        return self._dw_steps_si

    @property
    def rounding(self) -> str:
        return self._rounding

    def connect(self, *args, **kwargs):
        """As :meth:`brian2.Synapses.connect`; then ``w`` reads the crossbar cells."""
        result = Synapses.connect(self, *args, **kwargs)
        self._sync_op._cells = None
        self._sync_op.write_weights()
        return result

    def flush(self):
        """Apply pending pulses now (also done every ``sync_interval`` and after runs)."""
        return self._sync_op.flush()

    def request_change(self, dw, rng: np.random.Generator | None = None) -> None:
        """Queue a desired change of ``w`` per synapse from Python (e.g. normalisation).

        ``dw`` (unit of ``w``, one entry per synapse) becomes pulses by the same rounding
        rule as the plasticity code and is applied at the next flush; call
        :meth:`flush` to apply it now. ``rng`` serves stochastic rounding (default:
        numpy's global generator, which ``brian2.seed`` seeds).
        """
        n_syn = len(self)
        dw = np.asarray(dw / (self._w_max / float(self._w_max)) if isinstance(dw, Quantity) else dw,
                        dtype=float)
        if dw.shape != (n_syn,):
            raise ValueError(f"dw must have one entry per synapse ({n_syn}), got shape {dw.shape}")
        if not np.all(np.isfinite(dw)):
            raise ValueError("dw must be finite")
        up, down = self._dw_steps_si
        pending = self.variables["xbar_pending"].get_value()
        if self._rounding == "residual":
            acc = self.variables["xbar_acc"].get_value()
            acc += dw
            n = np.where(acc > 0, np.trunc(acc / up), np.trunc(acc / down)).astype(np.int64)
            acc -= n * np.where(n > 0, up, down)
        else:
            x = np.where(dw > 0, dw / up, dw / down)
            u = rng.random(n_syn) if rng is not None else np.random.random(n_syn)
            n = np.floor(x + u).astype(np.int64)
        pending += n

    def crossbar_weights(self) -> np.ndarray:
        """``w`` as the crossbar holds it now, one value per synapse (SI units)."""
        g = self.crossbar.effective_conductance.ravel().astype(np.float64)
        return g[self._sync_op.cells()] * self._w_per_siemens

    def program_weights(self, values, *, tolerance: float = 0.02, max_pulses: int | None = None):
        """Program-and-verify the synapses to ``values`` (unit of ``w``; scalar or per synapse).

        Uses :meth:`Crossbar.program` (pulses and verify reads go to the ledger); ``w``
        then holds what the devices reached. ``max_pulses`` defaults to enough nominal
        pulses to cross the range twice. Returns the :class:`ProgramResult`.
        """
        if max_pulses is None:
            step = min(self._dw_steps_si) / float(self._w_max)
            max_pulses = int(np.ceil(2.0 / step)) + 10
        cells = self._sync_op.cells()
        target = np.asarray(values / self._w_max if isinstance(values, Quantity) else
                            np.asarray(values, dtype=float) / float(self._w_max), dtype=float)
        target = np.broadcast_to(target, cells.shape) if target.ndim == 0 else target
        if target.shape != cells.shape:
            raise ValueError(f"values must be a scalar or have one entry per synapse ({cells.size}), "
                             f"got shape {target.shape}")
        if not np.all(np.isfinite(target)) or np.any(target < 0):
            raise ValueError("values must be finite and >= 0")
        xbar = self.crossbar
        full = xbar.weights.astype(np.float64).ravel()
        full[cells] = target
        result = xbar.program_weights(full.reshape(xbar.shape), tolerance=tolerance,
                                      max_pulses=max_pulses)
        self.variables["xbar_acc"].get_value()[:] = 0
        self.variables["xbar_pending"].get_value()[:] = 0
        self._sync_op.write_weights()
        return result

    def __repr__(self):
        return (f"CrossbarSynapses({self.source.name} -> {self.target.name}, {self.crossbar!r}, "
                f"w_max={self._w_max!r})")


def _positive_number(name, value) -> float:
    if isinstance(value, Quantity):
        v = float(np.asarray(value))
    elif isinstance(value, Real) and not isinstance(value, bool):
        v = float(value)
    else:
        raise TypeError(f"{name} must be a number or a Brian2 quantity, got {type(value).__name__}")
    if not (v > 0 and np.isfinite(v)):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


# ---------------------------------------------------------------------- volatile neurons
#: equations of a diffusive-memristor integrate-and-fire neuron (neuromem.volatile)
DIFFUSIVE_NEURON_EQUATIONS = """
dv/dt = (I_in - g_leak * v - g_device * v) / c_membrane : volt
g_device = g_off + (g_on - g_off) * x : siemens
dx/dt = -x / tau_relax : 1
I_in : amp
v_threshold : volt (constant)
tau_relax : second (constant)
"""


def diffusive_neurons(n: int, device=None, *, seed: int | None = 0, name="diffusive*", **kwargs):
    """``n`` integrate-and-fire neurons made of diffusive memristors (a ``NeuronGroup``).

    ``device`` is a :class:`neuromem.volatile.DiffusiveMemristor` (default parameters
    if None); each neuron gets its own threshold and relaxation time (device-to-device
    spread, drawn from ``seed``). The input is the current ``I_in`` (set it, or add to
    it from synapses with ``(summed)`` variables); ``x`` is the filament, ``g_device``
    the device's conductance. A spike is the switching ON (``x = 1``); the membrane is
    integrated with ``exponential_euler``, exact for the fast discharge through the ON
    device at any ``dt``. Other keyword arguments go to :class:`brian2.NeuronGroup`.
    """
    from brian2 import NeuronGroup, amp, farad, second, siemens, volt

    from .volatile import DiffusiveMemristor

    device = DiffusiveMemristor() if device is None else device
    if not isinstance(device, DiffusiveMemristor):
        raise TypeError(f"device must be a DiffusiveMemristor, got {type(device).__name__}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    ns = {"c_membrane": device.c_membrane_f * farad, "g_leak": device.g_leak_s * siemens,
          "g_on": device.g_on_s * siemens, "g_off": device.g_off_s * siemens,
          "v_switch": device.v_threshold_v * volt}
    ns.update(kwargs.pop("namespace", {}))
    group = NeuronGroup(n, DIFFUSIVE_NEURON_EQUATIONS, threshold="v > v_threshold",
                        reset="x = 1", method="exponential_euler", namespace=ns, name=name,
                        **kwargs)
    drawn = device.draw(n, np.random.default_rng(seed))
    group.v_threshold = drawn["v_threshold_v"] * volt
    group.tau_relax = drawn["tau_relax_s"] * second
    group.I_in = 0 * amp
    return group
