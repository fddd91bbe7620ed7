"""Spiking networks with STDP on memristive synapses (Brian2).

* :func:`song2000` -- 1000 Poisson inputs onto one LIF neuron with additive pair STDP
  (Song, Miller & Abbott, Nat. Neurosci. 3, 919, 2000; parameters of Brian2's
  ``examples/synapses/STDP.py``), on a crossbar or, with ``device=None``, with plain
  Brian2 STDP (the software reference).
* :class:`DiehlCook2015` -- unsupervised MNIST learning after Diehl & Cook, Front.
  Comput. Neurosci. 9, 99 (2015): Poisson-coded pixels, adaptive-threshold excitatory
  LIF neurons, lateral inhibition through an inhibitory population, STDP on the
  input->excitatory synapses (placed on a crossbar), weight normalisation by pulses.

Both build an explicit :class:`brian2.Network`; the crossbar flush operation travels
inside the :class:`~neuromem.brian.CrossbarSynapses`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np
from brian2 import (Hz, Network, NetworkOperation, NeuronGroup, PoissonGroup, SpikeMonitor,
                    Synapses, mV, ms)
from brian2 import seed as brian_seed

from neuromem import Crossbar, get_device
from neuromem.brian import CrossbarSynapses, pair_stdp
from neuromem.devices import Device


def make_device(spec, **parameters) -> Device:
    """A device from an instance or a name; imports ``neuromem.devices.<name>`` if needed."""
    if isinstance(spec, str):
        key = spec.lower().replace("-", "").replace("_", "")
        try:
            importlib.import_module(f"neuromem.devices.{key}")
        except ImportError:
            pass  # get_device names the known devices
    return get_device(spec, **parameters)


# ---------------------------------------------------------------------- statistics
def bimodality(w, w_max, edge: float = 0.1) -> dict:
    """How bimodal a weight distribution on ``[0, w_max]`` is.

    ``near_bounds``: fraction of weights within ``edge * w_max`` of either bound (0.2
    for a uniform distribution). ``coefficient``: Sarle's bimodality coefficient
    ``(skew^2 + 1) / (excess kurtosis + 3 (n-1)^2 / ((n-2)(n-3)))``; 5/9 for a uniform
    distribution, above it for U-shaped ones, 1 for two equal spikes.
    """
    w = np.asarray(w, dtype=float).ravel() / float(w_max)
    n = w.size
    if n < 4:
        raise ValueError("bimodality needs at least 4 weights")
    near = float(np.mean((w <= edge) | (w >= 1.0 - edge)))
    centred = w - w.mean()
    var = float(np.mean(centred ** 2))
    if var == 0:
        return {"near_bounds": near, "coefficient": 0.0, "frac_high": float(np.mean(w >= 1 - edge))}
    skew = float(np.mean(centred ** 3)) / var ** 1.5
    kurt = float(np.mean(centred ** 4)) / var ** 2 - 3.0
    coef = (skew ** 2 + 1.0) / (kurt + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    return {"near_bounds": near, "coefficient": coef, "frac_high": float(np.mean(w >= 1 - edge))}


# ---------------------------------------------------------------------- Song 2000
@dataclass(frozen=True)
class Song2000Params:
    """Parameters of Brian2's STDP example (Song, Miller & Abbott 2000); units in names."""

    n_inputs: int = 1000
    rate_hz: float = 15.0
    taum_ms: float = 10.0
    Ee_mv: float = 0.0
    vt_mv: float = -54.0
    vr_mv: float = -60.0
    El_mv: float = -74.0
    taue_ms: float = 5.0
    gmax: float = 0.01             # conductance in units of the leak conductance
    dApre: float = 0.01            # in units of gmax
    taupre_ms: float = 20.0
    taupost_ms: float = 20.0
    depression_ratio: float = 1.05  # dApost = -dApre * taupre / taupost * ratio

    @property
    def a_pre(self) -> float:
        return self.dApre * self.gmax

    @property
    def a_post(self) -> float:
        return -self.dApre * self.taupre_ms / self.taupost_ms * self.depression_ratio * self.gmax

@dataclass
class SongNetwork:
    network: Network
    inputs: PoissonGroup
    neuron: NeuronGroup
    synapses: Synapses
    spikes: SpikeMonitor
    params: Song2000Params
    crossbar: Crossbar | None = None
    program_result: object = None
    extra: dict = field(default_factory=dict)


def song2000(device=None, *, params: Song2000Params = Song2000Params(), seed: int = 0,
             w_init=None, sync_interval=1 * ms, rounding="residual", crossbar_seed=None,
             dw_per_pulse=None) -> SongNetwork:
    """Build the Song 2000 network.

    ``device``: a device (or name) for memristive synapses on a ``n_inputs x 1`` crossbar
    (``"single"`` scheme, ``w = gmax * G / (G_max - G_min)``), or None for plain Brian2
    STDP with ``w = clip(w + dw, 0, gmax)``. ``w_init`` (per synapse): initial weights;
    default ``U(0, gmax)`` from ``seed``. Memristive weights are programmed with
    program-and-verify, so they start where the devices landed; pass
    ``w_init=memristive.synapses.w[:]`` to start a plain reference from the same state.
    """
    p = params
    brian_seed(seed)  # Poisson spikes (generated code) and numpy's global generator
    if w_init is None:
        w_init = np.random.default_rng(seed).uniform(0.0, p.gmax, p.n_inputs)
    w_init = np.asarray(w_init, dtype=float)
    if w_init.shape != (p.n_inputs,):
        raise ValueError(f"w_init must have shape ({p.n_inputs},), got {w_init.shape}")
    inputs = PoissonGroup(p.n_inputs, rates=p.rate_hz * Hz, name="song_inputs")
    neuron = NeuronGroup(
        1, """dv/dt = (ge * (Ee - v) + El - v) / taum : volt
              dge/dt = -ge / taue : 1""",
        threshold="v > vt", reset="v = vr", method="euler", name="song_neuron",
        namespace={"Ee": p.Ee_mv * mV, "El": p.El_mv * mV, "taum": p.taum_ms * ms,
                   "taue": p.taue_ms * ms, "vt": p.vt_mv * mV, "vr": p.vr_mv * mV})
    neuron.v = p.vr_mv * mV
    taupre, taupost = p.taupre_ms * ms, p.taupost_ms * ms
    crossbar = result = None
    if device is None:
        syn = Synapses(inputs, neuron, name="song_synapses",
                       **pair_stdp(taupre, taupost, p.a_pre, p.a_post, on_pre="ge += w",
                                   plain_w_max=p.gmax))
        syn.connect()
        syn.w = w_init
    else:
        crossbar = Crossbar(p.n_inputs, 1, make_device(device), scheme="single",
                            seed=seed if crossbar_seed is None else crossbar_seed)
        syn = CrossbarSynapses(inputs, neuron, crossbar, w_max=p.gmax, name="song_synapses",
                               sync_interval=sync_interval, rounding=rounding,
                               dw_per_pulse=dw_per_pulse,
                               **pair_stdp(taupre, taupost, p.a_pre, p.a_post,
                                           on_pre="ge += w"))
        syn.connect()
        result = syn.program_weights(w_init)
    spikes = SpikeMonitor(neuron, name="song_spikes")
    net = Network(inputs, neuron, syn, spikes)
    return SongNetwork(net, inputs, neuron, syn, spikes, p, crossbar, result)


def rate_over_time(spike_times_s, duration_s: float, bin_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Firing rate (Hz) in consecutive bins: (bin centres in s, rates)."""
    n_bins = max(1, int(round(duration_s / bin_s)))
    counts, edges = np.histogram(np.asarray(spike_times_s), bins=n_bins, range=(0.0, duration_s))
    width = edges[1] - edges[0]
    return 0.5 * (edges[1:] + edges[:-1]), counts / width


# ---------------------------------------------------------------------- Diehl & Cook 2015
@dataclass(frozen=True)
class DiehlCookParams:
    """Diehl & Cook 2015 (their published Brian code); units in the names."""

    n_input: int = 784
    n_neurons: int = 100
    dt_ms: float = 0.5
    presentation_ms: float = 350.0
    rest_ms: float = 150.0
    # rate = pixel / 8 * intensity Hz, intensity starts at 2 (pixel / 4 Hz)
    intensity: float = 2.0
    intensity_step: float = 1.0
    min_spikes: int = 5            # present again with more intensity below this
    max_retries: int = 4           # not in the paper: bounds the time spent on one image
    # excitatory neurons
    v_rest_e_mv: float = -65.0
    v_reset_e_mv: float = -65.0
    v_thresh_e_mv: float = -52.0
    offset_mv: float = 20.0
    refrac_e_ms: float = 5.0
    # The published code blocks spikes with a timer, ``dtimer/dt = 100.0 : ms`` (0.1 ms
    # per ms) tested against 5 ms: an excitatory neuron cannot fire again for 50 ms
    # (its membrane is clamped for 5 ms). Set to refrac_e_ms for a plain 5 ms.
    spike_block_e_ms: float = 50.0
    tau_e_ms: float = 100.0
    theta_plus_mv: float = 0.05
    tau_theta_ms: float = 1e7
    theta_init_mv: float = 20.0
    # inhibitory neurons
    v_rest_i_mv: float = -60.0
    v_reset_i_mv: float = -45.0
    v_thresh_i_mv: float = -40.0
    refrac_i_ms: float = 2.0
    tau_i_ms: float = 10.0
    tau_ge_ms: float = 1.0
    tau_gi_ms: float = 2.0
    # input->excitatory delays, drawn per synapse from U(0, input_delay_max_ms) and
    # rounded to whole steps (the published code: 0-10 ms); 0: no delays
    input_delay_max_ms: float = 0.0
    w_ei: float = 10.4
    w_ie: float = 17.0
    # STDP (pre trace and two post traces, nearest-spike: traces set to 1)
    w_max: float = 1.0
    w_init_max: float = 0.3
    nu_pre: float = 0.0001
    nu_post: float = 0.01
    tc_pre_ms: float = 20.0
    tc_post1_ms: float = 20.0
    tc_post2_ms: float = 40.0
    norm_total: float | None = 78.0  # column sum of input weights; None: no normalisation

    def __post_init__(self):
        if not (self.input_delay_max_ms >= 0 and np.isfinite(self.input_delay_max_ms)):
            raise ValueError(f"input_delay_max_ms must be a non-negative number of ms, got "
                             f"{self.input_delay_max_ms!r}")

    @classmethod
    def from_recipe(cls, source="tuned", **overrides) -> "DiehlCookParams":
        """The parameters of a named recipe (``networks/recipes/snn/``: ``"tuned"``,
        ``"diehl-cook-2015"``) or TOML file, with ``overrides`` (e.g. ``n_neurons=400``)."""
        from .recipes import load_snn_recipe

        return cls(**{**load_snn_recipe(source)["params"], **overrides})

    def namespace(self) -> dict:
        """Brian2 names with units (``tau_e``, ``v_rest_e``, ...)."""
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name.endswith("_ms"):
                out[name[:-3]] = value * ms
            elif name.endswith("_mv"):
                out[name[:-3]] = value * mV
            else:
                out[name] = value
        return out


def check_learning_rate_scale(scale) -> float:
    """``scale`` as a float in (0, 1e3], or a ValueError naming it."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1e3 \
            or not np.isfinite(scale):
        raise ValueError(f"learning-rate scale must be a number in (0, 1000], got {scale!r}")
    return float(scale)


def annealed_scale(final_ratio: float, done: int, total: int) -> float:
    """Learning-rate scale after ``done`` of ``total`` training presentations when the
    rates fall geometrically from the parameters' own to ``final_ratio`` times them."""
    if not 0 < final_ratio <= 1:
        raise ValueError(f"final_ratio must lie in (0, 1], got {final_ratio!r}")
    if not 0 <= done <= total or total < 1:
        raise ValueError(f"need 0 <= done <= total and total >= 1, got done={done}, total={total}")
    return float(final_ratio) ** (done / total)


class DiehlCook2015:
    """The Diehl & Cook 2015 network with its input->excitatory synapses on a crossbar.

    A new crossbar of ``device`` is made and programmed to ``U(0, w_init_max)`` unless
    ``crossbar`` (e.g. from a checkpoint) is given; ``theta`` restores thresholds.
    ``device=None`` gives the paper's plain Brian2 STDP synapses instead (the
    software reference; ``crossbar`` is then None).

    One Brian2 run covers many images: a coarse ``network_operation`` (every 50 ms)
    switches the Poisson rates between images and rest, repeats silent images with more
    intensity, and applies weight normalisation as pulses (through
    :meth:`CrossbarSynapses.request_change`) before every training image. Spike counts
    per image are kept in a NeuronGroup counter, so no SpikeMonitor grows with the run.

    Input->excitatory delays (the published code's random 0-10 ms) are set by
    ``params.input_delay_max_ms`` (:func:`input_delay_steps`). Deviation from the
    paper: ``max_retries`` bounds the intensity ramp.
    """

    def __init__(self, device="ideal", *, params: DiehlCookParams = DiehlCookParams(),
                 seed: int = 0, sync_interval=10 * ms, rounding="residual", crossbar=None,
                 theta=None, program_tolerance=0.05):
        p = self.params = params
        if p.n_neurons < 2:
            raise ValueError(f"n_neurons must be >= 2 (lateral inhibition), got {p.n_neurons}")
        brian_seed(seed)
        self.rng = np.random.default_rng(seed)
        step = 50 * ms
        for name in ("presentation_ms", "rest_ms"):
            ratio = getattr(p, name) / 50.0
            if abs(ratio - round(ratio)) > 1e-9 or ratio < 1:
                raise ValueError(f"{name} must be a positive multiple of 50 ms")
        self._steps_on = int(round(p.presentation_ms / 50.0))
        self._steps_total = self._steps_on + int(round(p.rest_ms / 50.0))
        ns = p.namespace()
        dt = p.dt_ms * ms
        self.inputs = PoissonGroup(p.n_input, rates=np.zeros(p.n_input) * Hz, dt=dt, name="dc_input")
        self.exc = NeuronGroup(
            p.n_neurons,
            """dv/dt = ((v_rest_e - v) + ge * (-v) + gi * (-100*mV - v)) / tau_e : volt (unless refractory)
               dge/dt = -ge / tau_ge : 1
               dgi/dt = -gi / tau_gi : 1
               dtheta/dt = -theta * theta_decays / tau_theta : volt
               theta_decays : 1 (shared)
               theta_step : volt (shared)
               count : integer""",
            threshold="v > theta - offset + v_thresh_e and "
                      "timestep(t - lastspike, dt) >= timestep(spike_block_e, dt)",
            reset="v = v_reset_e\ntheta += theta_step\ncount += 1",
            refractory=p.refrac_e_ms * ms, method="euler", namespace=ns, dt=dt, name="dc_exc")
        self.exc.v = (p.v_rest_e_mv - 40) * mV
        self.exc.theta = p.theta_init_mv * mV if theta is None else theta
        self.exc.theta_step = p.theta_plus_mv * mV
        self.inh = NeuronGroup(
            p.n_neurons,
            """dv/dt = ((v_rest_i - v) + ge * (-v) + gi * (-85*mV - v)) / tau_i : volt (unless refractory)
               dge/dt = -ge / tau_ge : 1
               dgi/dt = -gi / tau_gi : 1""",
            threshold="v > v_thresh_i", reset="v = v_reset_i", refractory=p.refrac_i_ms * ms,
            method="euler", namespace=ns, dt=dt, name="dc_inh")
        self.inh.v = (p.v_rest_i_mv - 40) * mV
        self.ei = Synapses(self.exc, self.inh, on_pre="ge_post += w_ei", namespace=ns,
                           dt=dt, name="dc_ei")
        self.ei.connect(j="i")
        self.ie = Synapses(self.inh, self.exc, on_pre="gi_post += w_ie", namespace=ns,
                           dt=dt, name="dc_ie")
        self.ie.connect(condition="i != j")

        stdp_model = """nu_pre_s : 1 (shared)
                        nu_post_s : 1 (shared)
                        dpre/dt = -pre / tc_pre : 1 (event-driven)
                        dpost1/dt = -post1 / tc_post1 : 1 (event-driven)
                        dpost2/dt = -post2 / tc_post2 : 1 (event-driven)"""
        self.program_result = None
        if device is None and crossbar is None:
            # plain Brian2 STDP, the paper's own synapses: the software reference
            self.crossbar = None
            self.xe = Synapses(
                self.inputs, self.exc, name="dc_xe", dt=dt, namespace=ns,
                model=stdp_model + "\nw : 1",
                on_pre="""ge_post += w
                          pre = 1
                          w = clip(w - nu_pre_s * post1, 0, w_max)""",
                on_post="""w = clip(w + nu_post_s * pre * post2, 0, w_max)
                           post1 = 1
                           post2 = 1""")
            self.xe.connect()
            self.xe.w = self.rng.uniform(0.0, p.w_init_max, len(self.xe))
        else:
            fresh = crossbar is None
            if fresh:
                crossbar = Crossbar(p.n_input, p.n_neurons, make_device(device),
                                    scheme="single", seed=seed)
            elif crossbar.shape != (p.n_input, p.n_neurons):
                raise ValueError(f"crossbar shape {crossbar.shape} != ({p.n_input}, {p.n_neurons})")
            self.crossbar = crossbar
            self.xe = CrossbarSynapses(
                self.inputs, self.exc, crossbar, w_max=p.w_max, name="dc_xe", dt=dt,
                sync_interval=sync_interval, rounding=rounding, namespace=ns,
                model=stdp_model,
                on_pre="""ge_post += w
                          pre = 1
                          dw = -nu_pre_s * post1""",
                on_post="""dw = nu_post_s * pre * post2
                           post1 = 1
                           post2 = 1""")
            self.xe.connect()
            if fresh:
                w0 = self.rng.uniform(0.0, p.w_init_max, len(self.xe))
                self.program_result = self.xe.program_weights(w0, tolerance=program_tolerance)
        if p.input_delay_max_ms > 0:
            steps = input_delay_steps(p, seed)
            self.xe.delay = steps[np.asarray(self.xe.i[:]), np.asarray(self.xe.j[:])] * dt
        self._learning_rate_scale = 1.0
        self.set_learning(True)
        self._sequencer = NetworkOperation(self._step, dt=step, when="start", name="dc_sequencer")
        self.network = Network(self.inputs, self.exc, self.inh, self.ei, self.ie, self.xe,
                               self._sequencer)
        self._images = None

    # -------------------------------------------------------------- control
    def set_learning(self, on: bool) -> None:
        """STDP, adaptive thresholds and normalisation on (training) or off (labelling/test)."""
        self.learning = bool(on)
        scale = self._learning_rate_scale if on else 0.0
        self.xe.nu_pre_s = self.params.nu_pre * scale
        self.xe.nu_post_s = self.params.nu_post * scale
        self.exc.theta_step = self.params.theta_plus_mv * mV if on else 0 * mV
        self.exc.theta_decays = 1.0 if on else 0.0  # the paper holds theta fixed at test time

    @property
    def learning_rate_scale(self) -> float:
        """The factor on ``params.nu_pre`` and ``params.nu_post`` (1 unless a schedule set it)."""
        return self._learning_rate_scale

    def set_learning_rate_scale(self, scale: float) -> None:
        """Multiply the STDP rates ``nu_pre`` and ``nu_post`` by ``scale`` from now on
        (a learning-rate schedule steps it down during training; 1: the parameters' own
        rates)."""
        self._learning_rate_scale = check_learning_rate_scale(scale)
        self.set_learning(self.learning)

    def normalise(self) -> None:
        """Scale each neuron's input weights towards ``norm_total`` by pulses."""
        total = self.params.norm_total
        if total is None:
            return
        w = np.asarray(self.xe.w[:])
        post = np.asarray(self.xe.j[:])
        col = np.bincount(post, weights=w, minlength=self.params.n_neurons)
        factor = np.where(col > 0, total / np.maximum(col, 1e-12), 1.0)
        if self.crossbar is None:
            self.xe.w = w * factor[post]
            return
        self.xe.request_change(w * (factor[post] - 1.0), rng=self.rng)
        self.xe.flush()

    def weights(self) -> np.ndarray:
        """Input->excitatory weights as a ``(n_input, n_neurons)`` array."""
        out = np.zeros((self.params.n_input, self.params.n_neurons))
        out[np.asarray(self.xe.i[:]), np.asarray(self.xe.j[:])] = self.xe.w[:]
        return out

    # -------------------------------------------------------------- running images
    def _start_image(self):
        img = self._images[self._k]
        if self.learning:
            self.normalise()
        self.inputs.rates = img / 8.0 * self._intensity * Hz

    def _step(self):
        phase = self._phase
        if phase == 0:
            self.exc.count = 0
            self._start_image()
        elif phase == self._steps_on:
            self.inputs.rates = 0 * Hz
            self._counts_now = np.asarray(self.exc.count[:]).copy()
        self._phase += 1
        if self._phase < self._steps_total:
            return
        self._phase = 0
        counts = self._counts_now
        if counts.sum() < self.params.min_spikes and self._retries < self.params.max_retries:
            self._intensity += self.params.intensity_step
            self._retries += 1
            return
        self._out[self._k] = counts
        self._k += 1
        self._intensity = self.params.intensity
        self._retries = 0
        if self._progress is not None:
            self._progress.update(1)
        if self._k == len(self._images):
            self.network.stop()

    def present(self, images, *, learn: bool, progress=None) -> np.ndarray:
        """Show ``images`` (uint8, ``(n, 784)``); returns spike counts ``(n, n_neurons)``."""
        images = np.asarray(images, dtype=float)
        if images.ndim != 2 or images.shape[1] != self.params.n_input:
            raise ValueError(f"images must have shape (n, {self.params.n_input}), got {images.shape}")
        self.set_learning(learn)
        self._images = images
        self._out = np.zeros((len(images), self.params.n_neurons), dtype=np.int64)
        self._k = 0
        self._phase = 0
        self._intensity = self.params.intensity
        self._retries = 0
        self._counts_now = None
        self._progress = progress
        per_image = (self.params.presentation_ms + self.params.rest_ms) * ms * (1 + self.params.max_retries)
        if len(images):
            self.network.run(per_image * len(images))
        self._images = None
        return self._out


def input_delay_steps(params: DiehlCookParams, seed: int) -> np.ndarray:
    """Input->excitatory delays in steps of ``dt``, ``(n_input, n_neurons)``.

    Drawn from ``U(0, input_delay_max_ms)`` by a stream of their own (the weights'
    draw does not change when delays are switched on) and rounded to whole steps, the
    resolution a clocked simulation has; Brian2 model and engine use the same draw.
    """
    shape = (params.n_input, params.n_neurons)
    if params.input_delay_max_ms == 0:
        return np.zeros(shape, np.int64)
    rng = np.random.default_rng([seed, 11])
    return np.rint(rng.uniform(0.0, params.input_delay_max_ms, shape) / params.dt_ms).astype(np.int64)


#: how the labelled neurons' spike counts decide a class (see :func:`vote`)
VOTES = ("likelihood", "mean")


def class_rates(counts: np.ndarray, labels: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """Mean spike count of every neuron for every class, ``(n_classes, n_neurons)``,
    from responses ``counts`` (images x neurons) to images of known ``labels`` (a class
    without images gets zeros)."""
    counts = np.asarray(counts, dtype=float)
    labels = np.asarray(labels)
    if counts.ndim != 2 or labels.shape != (counts.shape[0],):
        raise ValueError(f"counts must be (images, neurons) and labels (images,), got "
                         f"{counts.shape} and {labels.shape}")
    rates = np.zeros((n_classes, counts.shape[1]))
    for c in range(n_classes):
        sel = labels == c
        if sel.any():
            rates[c] = counts[sel].mean(axis=0)
    return rates


def assign_labels(counts: np.ndarray, labels: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """Label of each neuron: the class with the highest mean response (Diehl & Cook)."""
    return class_rates(counts, labels, n_classes).argmax(axis=0)


def predict(counts: np.ndarray, assignments: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """Class with the highest mean spike count over the neurons assigned to it."""
    counts = np.asarray(counts, dtype=float)
    scores = np.full((counts.shape[0], n_classes), -1.0)
    for c in range(n_classes):
        sel = assignments == c
        if sel.any():
            scores[:, c] = counts[:, sel].mean(axis=1)
    return scores.argmax(axis=1)


def predict_likelihood(counts: np.ndarray, rates: np.ndarray, rate_floor: float = 1e-3) -> np.ndarray:
    """Class under which the spike counts are most likely, every neuron's count taken as
    Poisson with its mean response to that class (``rates``, from :func:`class_rates`):
    ``argmax_c Σ_n k_n log λ_cn - λ_cn``. Every neuron votes, for every class, in
    proportion to how selective it is, where the mean vote lets each neuron speak for its
    one best class only. ``rate_floor`` (spikes per image) is added to every mean so that
    a neuron never seen to fire for a class does not veto it outright.
    """
    if not rate_floor > 0:
        raise ValueError(f"rate_floor must be > 0, got {rate_floor!r}")
    lam = np.asarray(rates, dtype=float) + rate_floor
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or lam.ndim != 2 or counts.shape[1] != lam.shape[1]:
        raise ValueError(f"counts (images, neurons) and rates (classes, neurons) must share "
                         f"the neuron axis, got {counts.shape} and {lam.shape}")
    return (counts @ np.log(lam).T - lam.sum(axis=1)).argmax(axis=1)


def vote(counts: np.ndarray, rates: np.ndarray, method: str = "likelihood") -> np.ndarray:
    """Predicted class of each image from its spike counts and the neurons' class rates:
    ``"likelihood"`` (:func:`predict_likelihood`) or ``"mean"`` (Diehl & Cook: each
    neuron labelled with its best class, the class of the highest mean count wins)."""
    if method == "mean":
        return predict(counts, np.asarray(rates).argmax(axis=0), n_classes=len(rates))
    if method == "likelihood":
        return predict_likelihood(counts, rates)
    raise ValueError(f"vote must be one of {list(VOTES)}, got {method!r}")
