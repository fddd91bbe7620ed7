"""A compiled engine for the Diehl & Cook 2015 network, with its synapses on a crossbar.

:class:`DiehlCookEngine` runs the same network as the Brian2 model
:class:`networks.stdp.DiehlCook2015` (same equations, parameters, step order, pulse
conversion and flushes to the crossbar) in small Numba kernels
(:mod:`networks._diehl_cook_kernels`), about 30 times faster (benchmarks/bench_snn.py), so the
paper's protocol (60 000 training images, then labelling and testing) fits in minutes.
Brian2 remains the way to build and change spiking networks; this engine exists for one
network, and a test checks that it reproduces the Brian2 model spike for spike on the
same input spike trains.

Between images the network either simulates the paper's 150 ms rest
(``between_images="rest"``) or jumps over it (``"reset"``, the default): the clock, the
STDP traces, the thresholds and the devices' clock advance by the rest as they would,
and the membrane potentials and conductances are set to the resting state the rest
brings them close to. With ``"reset"`` every image starts from the same state, so
frozen-weight phases (labelling, testing) can be split into shards that run on Dask
workers and give exactly the spike counts of a serial run (:meth:`respond`).
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np

from neuromem import Crossbar
from neuromem.brian import nominal_pulse_step
from neuromem.volatile import DiffusiveMemristor

from . import _diehl_cook_kernels as kern
from .stdp import DiehlCookParams, check_learning_rate_scale, input_delay_steps, make_device

__all__ = ["DiehlCookEngine", "BETWEEN_IMAGES", "ROUNDINGS"]

BETWEEN_IMAGES = ("reset", "rest")
STEP_CALIBRATIONS = ("swing", "operating")
ROUNDINGS = ("residual", "stochastic")
_RULES = {"residual": kern.RULE_RESIDUAL, "stochastic": kern.RULE_STOCHASTIC}
_STATE = ("v_e", "ge_e", "gi_e", "theta", "last_e", "v_i", "ge_i", "gi_i", "last_i",
          "pre", "pre_t", "post1", "post2", "post_t")
_FAR_PAST = -(1 << 40)  # "last spike" of a neuron that never spiked (not refractory)


def _steps(ms: float, dt_ms: float, name: str) -> int:
    n = ms / dt_ms
    if n < 0 or abs(n - round(n)) > 1e-9:
        raise ValueError(f"{name} ({ms} ms) must be a non-negative multiple of dt ({dt_ms} ms)")
    return int(round(n))


def image_seed(seed: int, stream: int, index: int, attempt: int) -> int:
    """Seed of the Poisson input of one presentation (independent of shards and resumes)."""
    return int(np.random.SeedSequence([seed, stream, index, attempt]).generate_state(1)[0])


class DiehlCookEngine:
    """Diehl & Cook 2015 on a crossbar, simulated by compiled kernels.

    Parameters
    ----------
    device : Device, str or None
        Device family of the input->excitatory crossbar (``"single"`` scheme, one
        device per synapse, ``w = w_max * G / (G_max - G_min)``). ``None``: plain
        software STDP (``w = clip(w + dw, 0, w_max)``), the reference of the paper.
    params : DiehlCookParams
        Network parameters (the paper's by default).
    seed : int
        Seeds the crossbar, the initial weights and every image's Poisson input.
    sync_interval_ms : float
        Pending pulses are applied to the crossbar every this many ms (and before
        every normalisation and at the end of every image).
    rounding : {"residual", "stochastic"}
        How desired changes become whole pulses (as in ``CrossbarSynapses``).
    between_images : {"reset", "rest"}
        Jump over the rest between images (default) or simulate it (module docstring).
    pulse_width : float
        Duration of the programming pulses relative to the device's nominal pulse
        (shorter pulses, smaller steps); the nominal step is measured at this width.
    dw_per_pulse : (float, float), optional
        Change of ``w`` per potentiating / depressing pulse assumed by the pulse
        conversion; default measured on a probe array of the device.
    crossbar, theta_v : optional
        Start from an existing crossbar (e.g. a checkpoint) and thresholds (volts).
    step_calibration : {"swing", "operating"}
        Where the nominal step of a pulse (which the pulse conversion divides by) is
        measured: at the mean weight normalisation holds the neurons at
        (``"operating"``, ``norm_total / n_input``, the default: where the weights live,
        and where a nonlinear device's steps differ most from their swing averages), or
        over the device's whole swing (``"swing"``, as ``CrossbarSynapses`` does).
    neuron : DiffusiveMemristor, optional
        Excitatory neurons made of diffusive (volatile) memristors instead of the
        paper's LIF neurons: per-device thresholds and refractory periods (the time
        the device stays ON), jittered from spike to spike.
    """

    def __init__(self, device="ideal", *, params: DiehlCookParams = DiehlCookParams(),
                 seed: int = 0, sync_interval_ms: float = 10.0, rounding: str = "residual",
                 between_images: str = "reset", pulse_width: float = 1.0,
                 dw_per_pulse=None, crossbar: Crossbar | None = None, theta_v=None,
                 program_tolerance: float = 0.05, neuron: DiffusiveMemristor | None = None,
                 step_calibration: str = "operating"):
        if not isinstance(params, DiehlCookParams):
            raise TypeError(f"params must be a DiehlCookParams, got {type(params).__name__}")
        p = self.params = params
        if p.n_neurons < 2:
            raise ValueError(f"n_neurons must be >= 2 (lateral inhibition), got {p.n_neurons}")
        if not isinstance(seed, Integral) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
        if step_calibration not in STEP_CALIBRATIONS:
            raise ValueError(f"step_calibration must be one of {STEP_CALIBRATIONS}, got "
                             f"{step_calibration!r}")
        self.step_calibration = step_calibration
        if between_images not in BETWEEN_IMAGES:
            raise ValueError(f"between_images must be one of {BETWEEN_IMAGES}, got {between_images!r}")
        if not (isinstance(pulse_width, (int, float)) and pulse_width > 0 and math.isfinite(pulse_width)):
            raise ValueError(f"pulse_width must be a positive number, got {pulse_width!r}")
        self.seed = int(seed)
        self.rounding = rounding
        self.between_images = between_images
        self.pulse_width = float(pulse_width)
        fastest = min(p.tau_ge_ms, p.tau_gi_ms, p.tau_e_ms, p.tau_i_ms)
        if not 0 < p.dt_ms < fastest:
            # forward Euler multiplies a conductance by 1 - dt / tau each step: at
            # dt = tau an input acts for one step only (the network falls silent)
            raise ValueError(f"dt_ms must lie in (0, {fastest}) ms, below the fastest time "
                             f"constant, got {p.dt_ms}")
        self._on_steps = _steps(p.presentation_ms, p.dt_ms, "presentation_ms")
        self._rest_steps = _steps(p.rest_ms, p.dt_ms, "rest_ms")
        if self._on_steps < 1:
            raise ValueError("presentation_ms must be at least one step")
        self.sync_interval_ms = float(sync_interval_ms)
        self._sync_every = _steps(sync_interval_ms, p.dt_ms, "sync_interval_ms")
        if self._sync_every < 1:
            raise ValueError("sync_interval_ms must be at least one step")
        n_cells = p.n_input * p.n_neurons

        rng = np.random.default_rng(seed)
        self.program_result = None
        if device is None and crossbar is None:
            self.crossbar = None
            self._rule = kern.RULE_CLIP
            self._w = rng.uniform(0.0, p.w_init_max, n_cells)
            self._dw = (1.0, 1.0)  # unused by the clip rule
        else:
            self._rule = _RULES[rounding]
            fresh = crossbar is None
            if fresh:
                crossbar = Crossbar(p.n_input, p.n_neurons, make_device(device),
                                    scheme="single", seed=seed)
            elif not isinstance(crossbar, Crossbar):
                raise TypeError(f"crossbar must be a neuromem Crossbar, got {type(crossbar).__name__}")
            elif crossbar.shape != (p.n_input, p.n_neurons) or crossbar.scheme != "single":
                raise ValueError(f"crossbar must be {p.n_input} x {p.n_neurons} with the "
                                 f"'single' scheme, got {crossbar.shape} {crossbar.scheme!r}")
            self.crossbar = crossbar
            if dw_per_pulse is None:
                if step_calibration == "operating":
                    # the mean weight that normalisation holds every neuron at
                    level = (p.norm_total or 0.5 * p.w_init_max * p.n_input) / p.n_input / p.w_max
                    up, down = self._probe_steps(crossbar.device, level)
                elif self.pulse_width != 1.0:
                    up, down = self._probe_steps(crossbar.device, 0.5)
                else:
                    up, down = nominal_pulse_step(crossbar.device)
                self._dw = (up * p.w_max, down * p.w_max)
            else:
                pair = tuple(float(x) for x in np.broadcast_to(dw_per_pulse, (2,)))
                if not all(x > 0 and math.isfinite(x) for x in pair):
                    raise ValueError(f"dw_per_pulse must be positive, got {dw_per_pulse!r}")
                self._dw = pair
            if fresh:
                target = rng.uniform(0.0, p.w_init_max, n_cells) / p.w_max
                step = min(self._dw) / p.w_max
                self.program_result = crossbar.program_weights(
                    target.reshape(crossbar.shape), tolerance=program_tolerance,
                    max_pulses=int(np.ceil(2.0 / step)) + 10)
            self._w = np.empty(n_cells)
            self._read_weights()
        self._p = self._parameter_vector()
        self._learning_rate_scale = 1.0
        dt_s = p.dt_ms * 1e-3
        self._tables = tuple(kern.trace_table(dt_s, tau * 1e-3)
                             for tau in (p.tc_pre_ms, p.tc_post1_ms, p.tc_post2_ms))
        self._refrac_i = int(round(p.refrac_i_ms / p.dt_ms))
        self._delays = kern.delay_tables(input_delay_steps(p, self.seed))
        # spikes sent at the end of an image still arrive: reset mode simulates this tail
        self._tail_steps = min(self._delays[2] - 1, self._rest_steps)
        self._spike_block_e = int(round(p.spike_block_e_ms / p.dt_ms))
        self.neuron = neuron
        self._thresh_e, self._refrac_e_base, self._refrac_jitter = self._excitatory_neurons()
        self._acc = np.zeros(n_cells)
        self._pending = np.zeros(n_cells, np.int64)
        self._listed = np.zeros(n_cells, np.uint8)
        self._cells = np.zeros(n_cells, np.int64)
        self._n_listed = np.zeros(1, np.int64)
        # stochastic rounding's stream (a SplitMix64 state), seeded from ``seed``
        self._rng_state = np.array([image_seed(self.seed, 1 << 20, 0, 0)], np.uint64)
        self._events = np.zeros(p.n_input, np.int64)
        self.requested = {"potentiate": 0, "depress": 0}
        self.synaptic_events = 0
        self._t_last_s = 0.0
        self.step = 0               # absolute simulation step (the clock)
        self._state = self._initial_state()
        if theta_v is not None:
            theta_v = np.asarray(theta_v, dtype=float)
            if theta_v.shape != (p.n_neurons,):
                raise ValueError(f"theta_v must have shape ({p.n_neurons},), got {theta_v.shape}")
            self._state["theta"][:] = theta_v

    # -------------------------------------------------------------- set-up helpers
    def _probe_steps(self, device, level: float):
        """Mean change of the crossbar weight (conductance over range) per pulse of width
        ``pulse_width`` at weight ``level``, measured on a probe array (a calibration,
        as from a datasheet; no ADC in the learning loop)."""
        probe = Crossbar(1, 64, device, scheme="single", seed=0)
        ones = np.ones((1, 64), dtype=np.int64)
        out = []
        for sign in (+1, -1):
            probe.program_weights(np.full((1, 64), level), tolerance=0.05, max_pulses=2000)
            before = probe.weights.astype(float).mean()
            probe.apply_pulses(sign * ones, width=self.pulse_width)
            step = abs(probe.weights.astype(float).mean() - before)
            if step <= 0:
                raise ValueError(f"{type(device).__name__} does not move with pulse_width "
                                 f"{self.pulse_width}")
            out.append(step)
        return tuple(out)

    def _parameter_vector(self) -> np.ndarray:
        p = self.params
        vec = np.zeros(kern.N_PARAMETERS)
        mv, ms = 1e-3, 1e-3
        dt = p.dt_ms * ms
        vec[kern.DT] = dt
        vec[kern.V_REST_E] = p.v_rest_e_mv * mv
        vec[kern.V_RESET_E] = p.v_reset_e_mv * mv
        vec[kern.RATE_E] = dt / (p.tau_e_ms * ms)
        vec[kern.E_INH_E] = -100 * mv
        vec[kern.RATE_GE] = dt / (p.tau_ge_ms * ms)
        vec[kern.RATE_GI] = dt / (p.tau_gi_ms * ms)
        vec[kern.RATE_THETA] = dt / (p.tau_theta_ms * ms)
        vec[kern.THETA_PLUS] = p.theta_plus_mv * mv
        vec[kern.V_REST_I] = p.v_rest_i_mv * mv
        vec[kern.V_RESET_I] = p.v_reset_i_mv * mv
        vec[kern.V_THRESH_I] = p.v_thresh_i_mv * mv
        vec[kern.RATE_I] = dt / (p.tau_i_ms * ms)
        vec[kern.E_INH_I] = -85 * mv
        vec[kern.W_EI] = p.w_ei
        vec[kern.W_IE] = p.w_ie
        vec[kern.NU_PRE] = p.nu_pre
        vec[kern.NU_POST] = p.nu_post
        vec[kern.W_MAX] = p.w_max
        vec[kern.DW_UP], vec[kern.DW_DOWN] = self._dw
        vec[kern.PER_DW_UP], vec[kern.PER_DW_DOWN] = 1.0 / self._dw[0], 1.0 / self._dw[1]
        return vec

    @property
    def learning_rate_scale(self) -> float:
        """The factor on ``params.nu_pre`` and ``params.nu_post`` (1 unless a schedule set it)."""
        return self._learning_rate_scale

    def set_learning_rate_scale(self, scale: float) -> None:
        """Multiply the STDP rates ``nu_pre`` and ``nu_post`` by ``scale`` from now on
        (a learning-rate schedule steps it down during training; 1: the parameters' own
        rates). On a crossbar a smaller rate means fewer pulses, not smaller ones."""
        self._learning_rate_scale = check_learning_rate_scale(scale)
        self._p[kern.NU_PRE] = self.params.nu_pre * self._learning_rate_scale
        self._p[kern.NU_POST] = self.params.nu_post * self._learning_rate_scale

    def _excitatory_neurons(self):
        """Per-neuron threshold (V), refractory steps and their cycle-to-cycle jitter.

        LIF neurons: the paper's values for all. Diffusive-memristor neurons: the
        device's threshold spread scales the distance from rest to threshold, and the
        refractory period is the time the device stays ON after switching (its own
        relaxation time, drawn per device, jittered per spike).
        """
        p = self.params
        n_e = p.n_neurons
        base = (p.v_thresh_e_mv - p.offset_mv) * 1e-3
        if self.neuron is None:
            return (np.full(n_e, base), np.full(n_e, p.refrac_e_ms / p.dt_ms), 0.0)
        if not isinstance(self.neuron, DiffusiveMemristor):
            raise TypeError(f"neuron must be None (LIF) or a DiffusiveMemristor, got "
                            f"{type(self.neuron).__name__}")
        dev = self.neuron
        drawn = dev.draw(n_e, np.random.default_rng([self.seed, 7]))
        spread = drawn["v_threshold_v"] / dev.v_threshold_v - 1.0
        thresh = base + (p.v_thresh_e_mv - p.v_rest_e_mv) * 1e-3 * spread
        on_time_s = drawn["tau_relax_s"] * (dev.on_time_s / dev.tau_relax_s)
        return thresh, np.maximum(on_time_s / (p.dt_ms * 1e-3), 1.0), float(dev.c2c_tau_relax_rel)

    def _initial_state(self) -> dict:
        p = self.params
        n_e, n_in = p.n_neurons, p.n_input
        return {
            "v_e": np.full(n_e, (p.v_rest_e_mv - 40) * 1e-3), "ge_e": np.zeros(n_e),
            "gi_e": np.zeros(n_e), "theta": np.full(n_e, p.theta_init_mv * 1e-3),
            "last_e": np.full(n_e, _FAR_PAST, np.int64),
            "v_i": np.full(n_e, (p.v_rest_i_mv - 40) * 1e-3), "ge_i": np.zeros(n_e),
            "gi_i": np.zeros(n_e), "last_i": np.full(n_e, _FAR_PAST, np.int64),
            "refrac_e": np.rint(self._refrac_e_base).astype(np.int64),
            "pre": np.zeros(n_in * n_e), "pre_t": np.zeros(n_in * n_e, np.int64),
            "post1": np.zeros(n_e), "post2": np.zeros(n_e), "post_t": np.zeros(n_e, np.int64),
        }

    # -------------------------------------------------------------- the crossbar
    def _read_weights(self, cells=None) -> None:
        scale = self.params.w_max / self.crossbar.weight_unit_s
        if cells is None:
            # float64 before scaling, as effective_conductance_at gives: the same w
            # whether a cell was read alone or with the whole array (bit-exact resumes)
            g = self.crossbar.effective_conductance.ravel().astype(np.float64)
            np.multiply(g, scale, out=self._w)
        else:
            self._w[cells] = self.crossbar.effective_conductance_at(cells) * scale

    def flush(self, *, book_reads: bool = True) -> tuple[int, int]:
        """Apply pending pulses (and book the synaptic reads so far); returns (up, down).

        The kernels count input spikes per row; their reads are booked at the
        conductances of the moment of booking (every image end), not of every spike.
        """
        xbar = self.crossbar
        if xbar is None:  # software weights: input events stay counted in _events
            return 0, 0
        now_s = self.step * self.params.dt_ms * 1e-3
        if now_s > self._t_last_s:
            xbar.wait(now_s - self._t_last_s)  # the devices' clock follows the network's
            self._t_last_s = now_s
        n_reads = int(self._events.sum()) if book_reads else 0
        if n_reads:
            dev = xbar.device
            g = xbar.effective_conductance
            energy = dev.read_voltage_v ** 2 * dev.read_time_s * float(
                self._events @ g.sum(axis=1, dtype=np.float64))
            xbar.ledger.record("synaptic_read", n_reads * xbar.cols, energy)
            self.synaptic_events += n_reads * xbar.cols
            self._events[:] = 0
        up = down = 0
        n = int(self._n_listed[0])
        if n:
            cells = np.sort(self._cells[:n])
            counts = self._pending[cells]
            moved = counts != 0
            if moved.any():
                up, down = xbar.apply_pulses_at(cells[moved], counts[moved], width=self.pulse_width)
                self.requested["potentiate"] += up
                self.requested["depress"] += down
            self._pending[cells] = 0
            self._listed[cells] = 0
            self._n_listed[0] = 0
            if not xbar.device.drifts:
                self._read_weights(cells)
        if xbar.device.drifts:
            self._read_weights()
        return up, down

    # -------------------------------------------------------------- running images
    def _run(self, first, stop, ptr, idx, learn, counts):
        st = self._state
        s = first
        while s < stop:
            s_next = kern.simulate(
                s, stop, self.step, self._sync_every, self._on_steps, ptr, idx,
                *self._delays, self._p,
                learn, self._rule, self._w, self._acc, self._pending, self._listed,
                self._cells, self._n_listed, st["v_e"], st["ge_e"], st["gi_e"], st["theta"],
                st["last_e"], st["v_i"], st["ge_i"], st["gi_i"], st["last_i"], st["pre"],
                st["pre_t"], st["post1"], st["post2"], st["post_t"], counts, self._events,
                self._thresh_e, st["refrac_e"], self._refrac_e_base, self._refrac_jitter,
                self._spike_block_e, self._refrac_i, *self._tables, self._rng_state)
            if s_next < stop:  # a sync point with pulses pending
                saved = self.step
                self.step = saved + s_next  # the flush happens at the end of that step
                self.flush(book_reads=False)
                self.step = saved
            s = s_next

    def _skip_rest(self, learn: bool) -> None:
        """Jump over the rest: the clock (and with learning the thresholds' decay)
        advances, the traces decay with the clock, membranes and conductances settle.
        (The first ``_tail_steps`` of the rest, while delayed spikes still arrive, have
        been simulated.)"""
        n = self._rest_steps - self._tail_steps
        if learn:
            self._state["theta"] *= (1.0 - self._p[kern.RATE_THETA]) ** n  # n Euler steps
        self.step += n
        self.settle()

    def settle(self) -> None:
        """Set membranes to their resting potentials, conductances to zero, and end
        refractoriness: the state the rest between images approaches."""
        p = self.params
        st = self._state
        st["v_e"][:] = p.v_rest_e_mv * 1e-3
        st["v_i"][:] = p.v_rest_i_mv * 1e-3
        for name in ("ge_e", "gi_e", "ge_i", "gi_i"):
            st[name][:] = 0.0
        st["last_e"][:] = _FAR_PAST
        st["last_i"][:] = _FAR_PAST

    def _presentation(self, rates_hz, seed, learn, input_spikes=None) -> np.ndarray:
        """One presentation (image and rest); returns the spike counts while the image is on."""
        p = self.params
        if learn and p.norm_total is not None:
            kern.normalise_columns(self._w, float(p.norm_total), p.n_input, p.n_neurons,
                                   self._rule, self._p, self._acc, self._pending,
                                   self._listed, self._cells, self._n_listed, self._rng_state)
            self.flush(book_reads=False)
        if input_spikes is None:
            ptr, idx = kern.poisson_raster(rates_hz, self._on_steps, p.dt_ms * 1e-3, seed)
        else:
            ptr, idx = input_spikes
        counts = np.zeros(p.n_neurons, np.int64)
        self._run(0, self._on_steps, ptr, idx, learn, counts)
        self.step += self._on_steps
        if self.between_images == "rest":
            self.step -= self._on_steps
            self._run(self._on_steps, self._on_steps + self._rest_steps, ptr, idx, learn,
                      np.zeros(p.n_neurons, np.int64))
            self.step += self._on_steps + self._rest_steps
        else:
            if self._tail_steps:
                self.step -= self._on_steps
                self._run(self._on_steps, self._on_steps + self._tail_steps, ptr, idx, learn,
                          np.zeros(p.n_neurons, np.int64))
                self.step += self._on_steps + self._tail_steps
            self._skip_rest(learn)
        self.flush()
        return counts

    def present(self, images, *, learn: bool, progress=None, start_index: int = 0,
                stream: int = 0, input_spikes=None) -> np.ndarray:
        """Show ``images`` (``(n, n_input)``, 0-255); returns spike counts ``(n, n_neurons)``.

        ``learn``: STDP, adaptive thresholds (their rise and decay) and normalisation on
        (training) or off (the paper holds thresholds fixed while testing).
        Image ``k`` gets Poisson input seeded by ``(seed, stream, start_index + k,
        attempt)``, so a resumed or sharded run draws what an uninterrupted one does.
        ``input_spikes`` (tests): one ``(ptr, idx)`` raster per presentation instead
        (silent images then take the next raster for their repeat).
        """
        p = self.params
        images = np.asarray(images)
        if images.ndim != 2 or images.shape[1] != p.n_input:
            raise ValueError(f"images must have shape (n, {p.n_input}), got {images.shape}")
        if images.size and (not np.all(np.isfinite(images)) or images.min() < 0):
            raise ValueError("images must hold finite, non-negative intensities (0-255)")
        out = np.zeros((len(images), p.n_neurons), np.int64)
        rasters = iter(input_spikes) if input_spikes is not None else None
        for k in range(len(images)):
            intensity = p.intensity
            for attempt in range(p.max_retries + 1):
                rates = images[k].astype(np.float64) / 8.0 * intensity
                raster = next(rasters) if rasters is not None else None
                counts = self._presentation(
                    rates, image_seed(self.seed, stream, start_index + k, attempt),
                    bool(learn), raster)
                if counts.sum() >= p.min_spikes:
                    break
                intensity += p.intensity_step
            out[k] = counts
            if progress is not None:
                progress.update(1)
        return out

    # -------------------------------------------------------------- frozen phases
    def respond(self, images, *, stream: int, client=None, n_shards: int | None = None,
                progress=None) -> np.ndarray:
        """Spike counts with learning off, optionally split into shards on Dask workers.

        Requires ``between_images="reset"`` for shards (every image starts from the
        rest state, so shards give exactly the counts of a serial run). ``client`` is a
        ``dask.distributed.Client``; None runs here. The crossbar's read energy and
        the clock are booked as for a serial run.
        """
        images = np.asarray(images)
        if client is None or len(images) == 0:
            return self.present(images, learn=False, progress=progress, stream=stream)
        if self.between_images != "reset":
            raise ValueError("sharded evaluation needs between_images='reset'")
        from dask.distributed import as_completed

        n_shards = n_shards or max(1, 4 * len(client.scheduler_info().get("workers", {})))
        bounds = np.linspace(0, len(images), min(n_shards, len(images)) + 1).astype(int)
        frozen = self.frozen_state()
        futures = {}
        scattered = client.scatter(frozen, broadcast=True)
        for a, b in zip(bounds[:-1], bounds[1:]):
            fut = client.submit(_respond_shard, scattered, images[a:b], stream, int(a),
                                pure=False)
            futures[fut] = (a, b)
        out = np.zeros((len(images), self.params.n_neurons), np.int64)
        for fut in as_completed(futures):
            a, b = futures[fut]
            counts, events, steps = fut.result()
            out[a:b] = counts
            self._events += events
            self.step += steps
            if progress is not None:
                progress.update(b - a)
        self.flush()
        return out

    @classmethod
    def from_frozen_state(cls, frozen: dict) -> "DiehlCookEngine":
        """A weights-only engine (no crossbar) that answers as the frozen network does."""
        engine = cls(None, params=frozen["params"], seed=frozen["seed"],
                     sync_interval_ms=frozen["sync_interval_ms"], theta_v=frozen["theta_v"],
                     neuron=frozen["neuron"])
        weights = np.asarray(frozen["weights"], dtype=float)
        if weights.shape != engine._w.shape:
            raise ValueError(f"weights must have {engine._w.size} entries, got {weights.shape}")
        engine._w[:] = weights
        engine.settle()  # as every image after the first of a serial run starts
        return engine

    def frozen_state(self) -> dict:
        """What a worker needs to answer images with learning off (no crossbar)."""
        return {"params": self.params, "seed": self.seed, "weights": self._w.copy(),
                "theta_v": self._state["theta"].copy(), "sync_interval_ms": self.sync_interval_ms,
                "neuron": self.neuron}

    # -------------------------------------------------------------- inspection
    def weights(self) -> np.ndarray:
        """Input->excitatory weights as a ``(n_input, n_neurons)`` array (a copy)."""
        return self._w.reshape(self.params.n_input, self.params.n_neurons).copy()

    @property
    def theta_v(self) -> np.ndarray:
        """Adaptive threshold offsets of the excitatory neurons (volts, a copy)."""
        return self._state["theta"].copy()

    @property
    def dw_per_pulse(self) -> tuple[float, float]:
        """Change of ``w`` per potentiating / depressing pulse assumed by the conversion."""
        return self._dw

    @property
    def n_synaptic_events(self) -> int:
        """Synaptic events (input spikes times neurons) so far: the crossbar's reads."""
        return self.synaptic_events + int(self._events.sum()) * self.params.n_neurons

    def state(self) -> dict:
        """Copies of every state variable of the network (SI units, steps)."""
        return {k: v.copy() for k, v in self._state.items()}

    # -------------------------------------------------------------- checkpoints
    def state_dict(self) -> tuple[dict, dict]:
        """``(arrays, metadata)`` that restore the engine exactly (no pickle)."""
        if self._n_listed[0]:
            self.flush()
        arrays = {f"net_{k}": v.copy() for k, v in self._state.items()}
        arrays["acc"] = self._acc.copy()
        meta = {"step": self.step, "t_last_s": self._t_last_s, "requested": dict(self.requested),
                "synaptic_events": self.synaptic_events, "dw_per_pulse": list(self._dw),
                "learning_rate_scale": self.learning_rate_scale}
        if self.crossbar is None:
            arrays["w"] = self._w.copy()
        else:
            x_arrays, x_meta = self.crossbar.state_dict()
            arrays.update({f"xbar_{k}": v for k, v in x_arrays.items()})
            meta["crossbar"] = x_meta
        return arrays, meta

    def load_state_dict(self, arrays: dict, meta: dict) -> None:
        """Restore :meth:`state_dict` output into this engine (same parameters)."""
        for k, v in self._state.items():
            got = np.asarray(arrays[f"net_{k}"])
            if got.shape != v.shape:
                raise ValueError(f"checkpoint array net_{k} has shape {got.shape}, expected {v.shape}")
            v[:] = got
        if np.asarray(arrays["acc"]).shape != self._acc.shape:
            raise ValueError("checkpoint array acc does not match the network size")
        self._acc[:] = arrays["acc"]
        if self.crossbar is None:
            self._w[:] = arrays["w"]
        else:
            x_arrays = {k[5:]: v for k, v in arrays.items() if k.startswith("xbar_")}
            self.crossbar.load_state_dict(x_arrays, meta["crossbar"])
            self._read_weights()
        self.step = int(meta["step"])
        self._t_last_s = float(meta["t_last_s"])
        self.requested = dict(meta["requested"])
        self.synaptic_events = int(meta["synaptic_events"])
        self.set_learning_rate_scale(float(meta.get("learning_rate_scale", 1.0)))


def _respond_shard(frozen: dict, images, stream: int, start_index: int):
    """Worker side of :meth:`DiehlCookEngine.respond`: counts, input events, steps run."""
    engine = DiehlCookEngine.from_frozen_state(frozen)
    counts = engine.present(images, learn=False, stream=stream, start_index=start_index)
    return counts, engine._events.copy(), engine.step
