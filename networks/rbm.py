"""Restricted Boltzmann machine trained in situ on a memristive crossbar.

The weights *and* both biases live in one :class:`neuromem.Crossbar` of shape
``(n_visible + bias_lines, n_hidden + bias_lines)``: the extra rows are driven by a
constant 1 in the upward pass (hidden biases), the extra columns in the downward pass
(visible biases). Units are binary stochastic neurons (a comparator against a logistic
random reference, or an MTJ p-bit) that see the column current directly: no ADC, no
sigmoid circuit. Learning follows contrastive divergence with the statistics
``v0 h0 - vk hk`` accumulated in integer counters that fire programming pulses
(Wang et al., Nat. Electron. 5, 870, 2022; docs/hardware.md §3).

Weight units: the hidden input is ``x = I / I0`` with ``I0 = V_read * g_range /
weight_range``, so a conductance difference spanning the device range ``g_range`` is
``weight_range`` units of weight (3 in Wang 2022: ``I0 = 3 µA / 3``).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from neuromem import ComparatorNeuron, Crossbar, DigitalCounter, EnergyLedger, PBitNeuron, get_device

from ._archive import params_from_json, params_to_json
from ._constraints import Integer, Number, OneOf, validate_params

NEURONS = {"comparator": ComparatorNeuron, "mtj": PBitNeuron}
UPDATES = ("counter", "proportional", "ideal")


def auto_batch_size(n_samples: int) -> int:
    """``batch_size="auto"``: one hundredth of the data, between 10 and 100.

    With the counter rule a batch fires at most one pulse per cell, so the number of
    batches per epoch sets how fast the array learns: 100 (Wang 2022's batch) for
    MNIST-sized sets, 10 for a few thousand samples or fewer.
    """
    return int(min(100, max(10, n_samples // 100)))


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softplus(x):
    return np.logaddexp(0.0, x)


def program_rbm_weights(xbar, weights, g_to_w, scheme, reference_level):
    """Program a crossbar to ``weights`` (RBM weight units, ``w = G_eff * g_to_w``).

    The reference (or both) devices sit at ``reference_level`` of the device range.
    Analogue devices are set exactly; physical devices by program-and-verify (5 %
    tolerance), so the result carries the device's programming error.
    """
    dev = xbar.device
    delta_g = np.asarray(weights, dtype=np.float64) / g_to_w
    level = dev.g_min_s + reference_level * (dev.g_max_s - dev.g_min_s)
    if dev.analog_update:
        if scheme == "reference":
            xbar.add_conductance(level - xbar.reference_conductance, array="minus")
            xbar.add_conductance(xbar.reference_conductance + delta_g - xbar.conductance)
        else:
            xbar.add_conductance(level + 0.5 * delta_g - xbar.conductance)
            xbar.add_conductance(level - 0.5 * delta_g - xbar.reference_conductance, array="minus")
        return
    if scheme == "reference":
        xbar.program(np.full(xbar.shape, level), array="minus", tolerance=0.05, max_pulses=200)
        target = np.clip(xbar.reference_conductance + delta_g, dev.g_min_s, dev.g_max_s)
        xbar.program(target, tolerance=0.05, max_pulses=200)
    else:
        xbar.program(np.clip(level + 0.5 * delta_g, dev.g_min_s, dev.g_max_s),
                     tolerance=0.05, max_pulses=200)
        xbar.program(np.clip(level - 0.5 * delta_g, dev.g_min_s, dev.g_max_s),
                     array="minus", tolerance=0.05, max_pulses=200)


def _total_pulses(xbar) -> int:
    """Pulses fired into every device of a crossbar so far (``G+`` and ``G-``)."""
    ref = xbar.reference_pulse_count
    return int(xbar.pulse_count.sum()) + (0 if ref is None else int(ref.sum()))


class MemristiveRBM(TransformerMixin, BaseEstimator):
    """Bernoulli RBM whose parameters are conductances of a simulated 1R crossbar.

    Follows scikit-learn's ``BernoulliRBM`` contract (``fit``, ``partial_fit``,
    ``transform``, ``gibbs``, ``score_samples``; ``components_``,
    ``intercept_hidden_``, ``intercept_visible_`` in weight units).

    Parameters
    ----------
    n_components : int
        Number of hidden units.
    device : str or neuromem.devices.Device
        Synapse device (default Y-Flash, as :class:`MemristiveDBN`; ``"ideal"`` is the
        software reference).
    neuron : {"comparator", "mtj"}
        Binary stochastic neuron: comparator against a logistic random reference, or
        stochastic-MTJ p-bit.
    update : {"counter", "proportional", "ideal"}
        ``"counter"``: Wang 2022's accumulate-and-threshold rule, one pulse per
        crossing. ``"proportional"``: the same counters but ``trunc(C / threshold)``
        pulses (up to ``max_pulses``) per update, so large statistics move the weight
        further; still no ADC (pulse count from a digital counter). ``"ideal"``:
        float gradient with momentum (software reference; needs an analogue device,
        i.e. ``device="ideal"``).
    cd_k : int
        Gibbs steps of contrastive divergence.
    persistent : bool
        Persistent CD: negative chains continue across batches instead of restarting
        at the data.
    batch_size : int or "auto"
        Mini-batch size; ``"auto"``: :func:`auto_batch_size` of the training set (10 to
        100), resolved at the first fit into ``batch_size_``.
    n_iter : int
        Epochs.
    counter_threshold : int or None
        ``CD_min`` of the counters (default: see :attr:`counter_threshold_`).
    max_pulses : int
        Cap of the ``"proportional"`` rule.
    learning_rate, momentum, weight_decay : float
        Only for ``update="ideal"``.
    scheme : {"reference", "differential"}
        Signed weights as ``G+ - G_ref`` or as a push-pull pair.
    weight_range : float
        Weight units spanned by the device's conductance range (sets ``I0``; 10 by
        default, the setting of the MNIST results; Wang 2022 use 3).
    reference_level : float or "auto"
        Where, as a fraction of the device range, the reference ``G-`` devices (and
        the initial ``G+``) are programmed; ``"auto"``: the device's
        ``operating_level`` (0.1 for Y-Flash, where its up and down steps balance;
        0.5 for the others).
    bias_lines : int
        Bias rows/columns per bias (driven together, so a bias spans
        ``bias_lines * weight_range / 2`` units).
    init_std : float
        Standard deviation of the initial weights (weight units), programmed by
        program-and-verify.
    read_noise_rel : float
        Relative read noise of every column current.
    pulse_width : float
        Duration of the counter rules' training pulses as a fraction of the device's
        nominal pulse (programming is unaffected). Shorter pulses take smaller
        conductance steps (for Y-Flash in proportion: 20 / 9.7 / 4.8 nS at 1 / 0.5 /
        0.25 near 100 nS), so a weight holds more levels; lower ``counter_threshold``
        in step to keep the learning rate.
    stuck_low_rate, stuck_high_rate : float
        Fractions of the array's cells stuck at the device's lowest / highest
        conductance (drawn once, at fabrication, from ``random_state``: a network
        rebuilt with the same seed has the same faulty cells).
    verbose : bool
        Print the pseudo-likelihood after each epoch.
    random_state : int, RandomState or None
        Seeds everything: device spread, neuron noise, batches.
    """

    def __init__(self, n_components=256, *, device="yflash", neuron="comparator",
                 update="counter", cd_k=1, persistent=False, batch_size="auto", n_iter=10,
                 counter_threshold=None, max_pulses=4, learning_rate=0.05, momentum=0.5,
                 weight_decay=2e-4, scheme="reference", weight_range=10.0,
                 reference_level="auto", bias_lines=1, init_std=0.01, read_noise_rel=0.0,
                 pulse_width=1.0, stuck_low_rate=0.0, stuck_high_rate=0.0, verbose=False,
                 random_state=None):
        self.n_components = n_components
        self.device = device
        self.neuron = neuron
        self.update = update
        self.cd_k = cd_k
        self.persistent = persistent
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.counter_threshold = counter_threshold
        self.max_pulses = max_pulses
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.scheme = scheme
        self.weight_range = weight_range
        self.reference_level = reference_level
        self.bias_lines = bias_lines
        self.init_std = init_std
        self.read_noise_rel = read_noise_rel
        self.pulse_width = pulse_width
        self.stuck_low_rate = stuck_low_rate
        self.stuck_high_rate = stuck_high_rate
        self.verbose = verbose
        self.random_state = random_state

    # ------------------------------------------------------------------ validation
    #: what each parameter accepts (checked by :func:`networks._constraints.validate_params`)
    _parameter_constraints = {
        "n_components": [Integer(1)],
        "device": "no_validation",  # a name or a Device: get_device checks it
        "neuron": [OneOf(*NEURONS)],
        "update": [OneOf(*UPDATES)],
        "cd_k": [Integer(1)],
        "persistent": [True, False],
        "batch_size": [Integer(1), "auto"],
        "n_iter": [Integer(0)],
        "counter_threshold": [Integer(1), None],
        "max_pulses": [Integer(1)],
        "learning_rate": [Number(0, low_open=True)],
        "momentum": [Number(0, 1)],
        "weight_decay": [Number(0)],
        "scheme": [OneOf("reference", "differential")],
        "weight_range": [Number(0, low_open=True)],
        "reference_level": [Number(0, 1), "auto"],
        "bias_lines": [Integer(1)],
        "init_std": [Number(0)],
        "read_noise_rel": [Number(0)],
        "pulse_width": [Number(0, low_open=True)],
        "stuck_low_rate": [Number(0, 1)],
        "stuck_high_rate": [Number(0, 1)],
        "verbose": [True, False],
        "random_state": "no_validation",  # check_random_state checks it
    }

    def _check_params(self):
        validate_params(self)
        if self.stuck_low_rate + self.stuck_high_rate > 1:
            raise ValueError(f"stuck_low_rate + stuck_high_rate must be <= 1, got "
                             f"{self.stuck_low_rate} + {self.stuck_high_rate}")
        device = get_device(self.device)
        if self.update == "ideal" and not device.analog_update:
            raise ValueError(
                f"update='ideal' needs an analogue (software) device, got {device.name!r}; "
                "use update='counter' or 'proportional' for physical devices"
            )
        return device

    # ------------------------------------------------------------------ construction
    def _initialize(self, n_features, device, n_samples=None):
        self._resolve_batch_size(n_samples)
        self._initialize_empty(n_features, device)
        init = np.zeros(self.crossbar_.shape)
        init[:n_features, : self.n_components] = self._rng.normal(
            0.0, self.init_std, (n_features, self.n_components))
        program_rbm_weights(self.crossbar_, init, self._g_to_w, self.scheme, self.reference_level_)
        self._mark_initial_state()

    def _resolve_batch_size(self, n_samples):
        if self.batch_size == "auto":
            self.batch_size_ = auto_batch_size(n_samples if n_samples is not None else 0)
        else:
            self.batch_size_ = int(self.batch_size)

    @property
    def reference_level_(self) -> float:
        """The reference level in use (``"auto"`` resolved by the device)."""
        if isinstance(self.reference_level, str):
            return float(get_device(self.device).operating_level)
        return float(self.reference_level)

    def _mark_initial_state(self):
        """Remember the programmed starting point: conductances and pulses so far."""
        self.initial_conductance_ = self.crossbar_.conductance
        self.initial_reference_conductance_ = self.crossbar_.reference_conductance
        self.initial_pulse_count_ = self.crossbar_.pulse_count

    @property
    def training_pulse_count_(self) -> np.ndarray:
        """Pulses each ``G+`` device took since initial programming, ``(rows, cols)``."""
        check_is_fitted(self, "crossbar_")
        return self.crossbar_.pulse_count - self.initial_pulse_count_

    def _initialize_empty(self, n_features, device):
        """Build crossbar, neurons and counters without programming any weight."""
        if not hasattr(self, "batch_size_"):
            self._resolve_batch_size(None)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(0, 2**31 - 1))
        self._rng = np.random.default_rng(seed)
        self.ledger_ = EnergyLedger()
        nb = self.bias_lines
        self.crossbar_ = Crossbar(n_features + nb, self.n_components + nb, device,
                                  scheme=self.scheme, read_noise_rel=self.read_noise_rel,
                                  stuck_low_rate=self.stuck_low_rate,
                                  stuck_high_rate=self.stuck_high_rate,
                                  seed=int(self._rng.integers(2**31)), ledger=self.ledger_)
        dev = self.crossbar_.device
        g_range = dev.g_max_s - dev.g_min_s
        self.current_scale_a_ = dev.read_voltage_v * g_range / self.weight_range
        # conductance -> weight units, as the neurons see it
        self._g_to_w = dev.read_voltage_v / self.current_scale_a_
        neuron_cls = NEURONS[self.neuron]
        self._neuron = neuron_cls(self.current_scale_a_, seed=int(self._rng.integers(2**31)),
                                  ledger=self.ledger_)
        self._counter = DigitalCounter(self.crossbar_.shape, self.counter_threshold_,
                                       max_pulses=self.max_pulses if self.update == "proportional" else 1,
                                       ledger=self.ledger_)
        self._velocity = np.zeros(self.crossbar_.shape, dtype=np.float32)
        self.fantasy_ = None
        self.n_features_in_ = n_features

    @property
    def counter_threshold_(self) -> int:
        """``CD_min``: the batch size for ``"counter"`` (Wang 2022); for
        ``"proportional"`` ``batch_size / max_pulses``, so a batch whose every sample
        agrees fires ``max_pulses`` pulses."""
        if self.counter_threshold is not None:
            return self.counter_threshold
        batch = getattr(self, "batch_size_", self.batch_size)
        if batch == "auto":
            raise AttributeError("counter_threshold_ follows batch_size='auto', which is "
                                 "resolved by fit")
        if self.update == "proportional":
            return max(1, batch // self.max_pulses)
        return batch

    # ------------------------------------------------------------------ parameters
    @property
    def _nv(self):
        return self.n_features_in_

    def _weights_full(self):
        return self.crossbar_.effective_conductance.astype(np.float64) * self._g_to_w

    @property
    def components_(self):
        """Weights ``(n_components, n_features)`` in weight units (BernoulliRBM layout)."""
        check_is_fitted(self, "crossbar_")
        return self._weights_full()[: self._nv, : self.n_components].T

    @property
    def intercept_hidden_(self):
        check_is_fitted(self, "crossbar_")
        return self._weights_full()[self._nv:, : self.n_components].sum(axis=0)

    @property
    def intercept_visible_(self):
        check_is_fitted(self, "crossbar_")
        return self._weights_full()[: self._nv, self.n_components:].sum(axis=1)

    # ------------------------------------------------------------------ hardware passes
    def _with_bias(self, states):
        out = np.ones((states.shape[0], states.shape[1] + self.bias_lines), dtype=np.float32)
        out[:, : states.shape[1]] = states
        return out

    def _hidden_currents(self, vb, binary=True, noise=True):
        return self.crossbar_.read(vb, binary=binary, noise=noise)[:, : self.n_components]

    def _visible_currents(self, hb, noise=True):
        return self.crossbar_.read_back(hb, binary=True, noise=noise)[:, : self._nv]

    def _sample(self, currents):
        out = np.empty(currents.shape, dtype=np.float32)
        return self._neuron.sample(currents, out=out)

    def _sample_visible(self, currents):
        """Visible units of the downward pass (subclasses add softmax groups)."""
        return self._sample(currents)

    def _mean_visible(self, currents):
        return _sigmoid(currents / self.current_scale_a_)

    def _binary_input(self, X):
        """Hardware drives rows with 0/1: probabilities in (0, 1) are sampled."""
        X = np.asarray(X, dtype=np.float32)
        if np.all((X == 0) | (X == 1)):
            return X
        return (self._rng.random(X.shape, dtype=np.float32) < X).astype(np.float32)

    # ------------------------------------------------------------------ layer operations
    # The hardware steps of one layer. Networks built from RBMs (MemristiveDBN) drive
    # the array through these alone.
    def check_params(self):
        """Validate every parameter (ValueError naming the bad one); returns the device."""
        return self._check_params()

    def with_bias(self, states):
        """``states`` with the bias lines appended (driven at 1), float32."""
        return self._with_bias(np.asarray(states, dtype=np.float32))

    def binary_drive(self, X):
        """What the rows are driven with: 0/1 data as it is, values in (0, 1) sampled
        (a new draw at every call, from the layer's random stream)."""
        return self._binary_input(X)

    def up(self, v):
        """Drive the rows with 0/1 states ``v`` (bias lines at 1) and let the neurons
        sample the hidden units; returns 0/1 float32 ``h``."""
        return self._sample(self._hidden_currents(self._with_bias(v)))

    def up_mean(self, X):
        """``P(h = 1 | v)`` from a noise-free read with the rows driven at ``X * V_read``."""
        return self._mean_hiddens(X)

    def up_paired(self, v_a, v_b):
        """Two reads of the same hidden units, rows driven by ``v_a`` and by ``v_b``, on
        one random draw of the neurons (the reference held over both reads): each fires
        with its own probability, and they differ only where the drive swings a unit."""
        return self._neuron.sample_paired(self._hidden_currents(self._with_bias(v_a)),
                                          self._hidden_currents(self._with_bias(v_b)))

    def accumulate(self, v_pos, h_pos, v_neg, h_neg):
        """The counters take ``v_pos^T h_pos - v_neg^T h_neg`` (0/1 states; the bias lines
        are added here) and fire the pulses whose counts cross the threshold."""
        pos_v, pos_h, neg_v, neg_h = (self._with_bias(a) for a in (v_pos, h_pos, v_neg, h_neg))
        cells, pulses = self._counter.update_outer(pos_v, pos_h, neg_v, neg_h,
                                                   skip_from=(self._nv, self.n_components))
        self.crossbar_.apply_pulses_at(cells, pulses, width=self.pulse_width)

    def down(self, h):
        """Drive the columns with 0/1 hidden states ``h`` and sample the visible units."""
        return self._sample_visible(self._visible_currents(self._with_bias(h)))

    def cd_step(self, v0, cd_k=None):
        """One contrastive-divergence update of the layer's own rule on batch ``v0``
        (``cd_k`` Gibbs steps, default the estimator's); returns the reconstruction."""
        return self._fit_batch(np.asarray(v0, dtype=np.float32), cd_k)

    def apply_statistics(self, stats, n_samples, n_increments=0, *, learning_rate=None,
                         momentum=None, weight_decay=None):
        """Move the array by dense batch statistics ``stats`` (crossbar shape, summed over
        ``n_samples`` rows). Counter rules add them to the counters (``n_increments``:
        the counter steps they took, for the ledger) and fire the pulses that cross the
        threshold; the float rule takes one step, with this step's ``learning_rate``,
        ``momentum`` and ``weight_decay`` where given (else the estimator's)."""
        self._apply_statistics(stats, n_samples, n_increments, learning_rate, momentum,
                               weight_decay)

    def set_counter_threshold(self, threshold: int):
        """Set the counters' threshold ``CD_min`` from now on (a schedule anneals the
        step by raising it)."""
        self._counter.threshold = int(threshold)

    def reset_momentum(self):
        """Start the float rule's momentum from rest."""
        self._velocity[...] = 0.0

    def weights(self):
        """Every weight of the array in weight units, crossbar layout (bias lines
        included): ``W = weights()[:n_features, :n_components]``."""
        check_is_fitted(self, "crossbar_")
        return self._weights_full()

    def program(self, n_features, weights):
        """A fresh array for ``n_features`` visible units, programmed to ``weights``
        (crossbar layout, weight units) by program-and-verify."""
        self._resolve_batch_size(None)
        self._initialize_empty(n_features, self._check_params())
        program_rbm_weights(self.crossbar_, weights, self._g_to_w, self.scheme, self.reference_level_)
        self._mark_initial_state()
        return self

    def rewind(self) -> dict:
        """Program the array back to where training started (``initial_conductance_``,
        ``initial_reference_conductance_``) by program-and-verify (5 % tolerance, 200
        pulses at most; analogue devices are set exactly) and clear the counters, the
        momentum and the persistent chain: the next epochs train this array again from
        its starting weights. The devices keep their wear (pulse counts, ageing state).
        Returns the pulses it took and the cells left outside tolerance."""
        check_is_fitted(self, "crossbar_")
        xbar = self.crossbar_
        before = _total_pulses(xbar)
        targets = [("plus", self.initial_conductance_)]
        if self.initial_reference_conductance_ is not None:
            targets.append(("minus", self.initial_reference_conductance_))
        missed = 0
        for array, target in targets:
            if xbar.device.analog_update:
                now = xbar.conductance if array == "plus" else xbar.reference_conductance
                xbar.add_conductance(target - now, array=array)
            else:
                missed += int(xbar.program(target, array=array, tolerance=0.05,
                                           max_pulses=200).missed.sum())
        self._counter.count[...] = 0
        self.reset_momentum()
        self.fantasy_ = None
        return {"pulses": _total_pulses(xbar) - before, "missed": missed}

    def random_streams(self) -> list:
        """Every random generator of the layer (to save and restore around evaluation)."""
        return [self._rng, self._neuron.rng, self.crossbar_.rng]

    # ------------------------------------------------------------------ learning
    def _fit_batch(self, v0, cd_k=None):
        v0b = self._with_bias(v0)
        ideal = self.update == "ideal"
        if ideal:
            # software reference (Hinton 2010): analogue drive by the data probabilities,
            # positive statistics from P(h | v0), binary h0 only to drive the reconstruction
            currents = self._analog_hidden_currents(v0)
            h0 = self._sample(currents)
            p0b = self._with_bias(_sigmoid(currents / self.current_scale_a_).astype(np.float32))
        else:
            h0 = self._sample(self._hidden_currents(v0b))
        h0b = self._with_bias(h0)
        if self.persistent and self.fantasy_ is not None and len(self.fantasy_) == len(v0):
            hkb = self._with_bias(self.fantasy_)
        else:
            hkb = h0b
        cd_k = self.cd_k if cd_k is None else cd_k
        for step in range(cd_k):
            iv = self._visible_currents(hkb)
            last = step == cd_k - 1
            if ideal and last:
                # software reference: mean-field reconstruction and statistics (Hinton 2010)
                vk = self._mean_visible(iv).astype(np.float32)
                vkb = self._with_bias(vk)
                ik = self._analog_hidden_currents(vk)
                hk = _sigmoid(ik.astype(np.float64) / self.current_scale_a_).astype(np.float32)
            else:
                vk = self._sample_visible(iv)
                vkb = self._with_bias(vk)
                hk = self._sample(self._hidden_currents(vkb))
            hkb = self._with_bias(hk)
        if self.persistent:
            # the chain continues from binary hidden states (the ideal rule's hk is a mean)
            self.fantasy_ = self._sample(ik) if ideal else hk
        if not ideal:
            # counters take v0^T h0 - vk^T hk row by row (binary states: sums of selected
            # rows, no dense statistics); bias row x bias column has no device
            cells, pulses = self._counter.update_outer(
                v0b, h0b, vkb, hkb, skip_from=(self._nv, self.n_components))
            self.crossbar_.apply_pulses_at(cells, pulses, width=self.pulse_width)
            self._extra_statistics(v0)
            return vk
        # software reference: both statistics in one float product [v0; vk]^T [p0; -hk]
        stats = np.concatenate([v0b, vkb]).T @ np.concatenate([p0b, -hkb])
        extra = self._extra_statistics(v0)
        if extra is not None:
            stats += extra
        self._apply_statistics(stats, len(v0), 0)
        return vk

    def _extra_statistics(self, v0):
        """Hook for subclasses: more learning from the same batch after the CD step.

        Counter rules apply their own pulses here; the ideal rule returns float
        statistics to add to the CD statistics (``None``: nothing to add).
        """
        return None

    def _apply_statistics(self, stats, n_samples, n_increments, learning_rate=None,
                          momentum=None, weight_decay=None):
        """Move the array by batch statistics ``stats`` (rows x cols, summed over the batch).

        Counter rules feed the integer statistics to the digital counters, which fire
        pulses; the ideal rule takes a float SGD step with momentum and weight decay
        (the estimator's own, or those given for this step).
        """
        rate = self.learning_rate if learning_rate is None else learning_rate
        momentum = self.momentum if momentum is None else momentum
        decay = self.weight_decay if weight_decay is None else weight_decay
        stats[self._nv:, self.n_components:] = 0.0  # bias row x bias column: no device
        if self.update == "ideal":
            grad = stats
            grad *= np.float32(1.0 / n_samples)
            if decay:
                w = self.crossbar_._w32[: self._nv, : self.n_components]
                grad[: self._nv, : self.n_components] -= np.float32(decay * self._g_to_w) * w
            self._velocity *= np.float32(momentum)
            self._velocity += np.float32(rate) * grad
            self.crossbar_.add_conductance(self._velocity * np.float32(1.0 / self._g_to_w))
        else:
            cells, pulses = self._counter.update_sparse(stats, n_increments=n_increments)
            self.crossbar_.apply_pulses_at(cells, pulses, width=self.pulse_width)

    def _epoch(self, X, rng):
        n = X.shape[0]
        order = rng.permutation(n)
        for start in range(0, n, self.batch_size_):
            batch = X[order[start: start + self.batch_size_]]
            # hardware rows are driven 0/1; the software reference takes probabilities
            self._fit_batch(batch.astype(np.float32) if self.update == "ideal"
                            else self._binary_input(batch))

    def fit(self, X, y=None):
        """Train on ``X`` (values in [0, 1]; non-binary values are sampled to 0/1)."""
        device = self._check_params()
        X = self._validate_X(X, reset=True)
        self._initialize(X.shape[1], device, n_samples=X.shape[0])
        for epoch in range(self.n_iter):
            self._epoch(X, self._rng)
            if self.verbose:
                print(f"[MemristiveRBM] epoch {epoch + 1}/{self.n_iter}, "
                      f"pseudo-likelihood {self.score_samples(X).mean():.2f}")
        return self

    def partial_fit(self, X, y=None):
        """One pass of CD over the mini-batches of ``X``."""
        first = not hasattr(self, "crossbar_")
        device = self._check_params() if first else None
        X = self._validate_X(X, reset=first)
        if first:
            self._initialize(X.shape[1], device, n_samples=X.shape[0])
        self._epoch(X, self._rng)
        return self

    def _validate_X(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=(np.float64, np.float32))
        if X.size and X.min() < 0:
            raise ValueError("Negative values in data passed to MemristiveRBM: X must hold "
                             "values in [0, 1] (binary inputs or firing probabilities)")
        if X.size and X.max() > 1:
            raise ValueError("X must hold values in [0, 1] (binary inputs or firing probabilities)")
        return X

    # ------------------------------------------------------------------ persistence
    def get_state(self, training_state: bool = True) -> tuple[dict, dict]:
        """``(arrays, metadata)`` holding everything to resume training bit for bit; with
        ``training_state=False`` only what inference needs (the conductances, no device
        state, counters or momentum), a small fraction of the size."""
        check_is_fitted(self, "crossbar_")
        arrays, xmeta = self.crossbar_.state_dict(conductance_only=not training_state)
        arrays = {f"crossbar/{k}": v for k, v in arrays.items()}
        if training_state:
            arrays["counter"] = self._counter.count.copy()
            arrays["velocity"] = self._velocity.copy()
            arrays["initial_conductance"] = self.initial_conductance_
            if self.initial_reference_conductance_ is not None:
                arrays["initial_reference_conductance"] = self.initial_reference_conductance_
            arrays["initial_pulse_count"] = self.initial_pulse_count_
            if self.fantasy_ is not None:
                arrays["fantasy"] = self.fantasy_.copy()
        meta = {
            "params": params_to_json(self.get_params()),
            "n_features_in": int(self.n_features_in_),
            "batch_size": int(self.batch_size_),
            "training_state": bool(training_state),
            "crossbar": xmeta,
            "rng": self._rng.bit_generator.state,
            "neuron_rng": self._neuron.rng.bit_generator.state,
            "ledger": self.ledger_.as_dict(),
        }
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict, meta: dict) -> "MemristiveRBM":
        """Rebuild a model saved by :meth:`get_state` (validates shapes)."""
        try:
            rbm = cls(**params_from_json(meta["params"]))
            device = rbm._check_params()
            n_features = meta["n_features_in"]
            if not isinstance(n_features, Integral) or isinstance(n_features, bool) or n_features < 1:
                raise ValueError(f"n_features_in must be an integer >= 1, got {n_features!r}")
            rbm.batch_size_ = int(meta.get("batch_size", rbm.batch_size))
            rbm._initialize_empty(n_features, device)
            built = rbm.crossbar_  # what the parameters make
            xbar_arrays = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("crossbar/")}
            rbm.crossbar_ = Crossbar.from_state_dict(xbar_arrays, meta["crossbar"], ledger=rbm.ledger_)
            for what in ("shape", "device", "scheme", "read_noise_rel"):
                saved, expected = getattr(rbm.crossbar_, what), getattr(built, what)
                if saved != expected:
                    raise ValueError(f"the saved crossbar's {what} {saved!r} does not match the "
                                     f"parameters, which make {expected!r}")
            rbm.ledger_.load_dict(meta["ledger"])
            expected = rbm.crossbar_.shape
            if meta.get("training_state", True):
                for key in ("counter", "velocity", "initial_conductance", "initial_pulse_count"):
                    if arrays[key].shape != expected:
                        raise ValueError(f"array {key!r} has shape {arrays[key].shape}, expected {expected}")
                rbm._counter.count[...] = arrays["counter"]
                rbm._velocity[...] = arrays["velocity"]
                rbm.initial_conductance_ = np.array(arrays["initial_conductance"])
                # saved before it was kept: the reference as saved
                ref = arrays.get("initial_reference_conductance")
                if ref is not None and ref.shape != expected:
                    raise ValueError(f"array 'initial_reference_conductance' has shape "
                                     f"{ref.shape}, expected {expected}")
                rbm.initial_reference_conductance_ = (
                    np.array(ref) if ref is not None else rbm.crossbar_.reference_conductance)
                rbm.initial_pulse_count_ = np.array(arrays["initial_pulse_count"], dtype=np.int64)
                if "fantasy" in arrays and (arrays["fantasy"].ndim != 2
                                            or arrays["fantasy"].shape[1] != rbm.n_components):
                    raise ValueError(f"array 'fantasy' has shape {arrays['fantasy'].shape}, expected "
                                     f"(chains, {rbm.n_components})")
                rbm.fantasy_ = np.array(arrays["fantasy"]) if "fantasy" in arrays else None
            else:
                rbm.initial_conductance_ = rbm.crossbar_.conductance
                rbm.initial_reference_conductance_ = rbm.crossbar_.reference_conductance
                rbm.initial_pulse_count_ = rbm.crossbar_.pulse_count
            rbm._rng.bit_generator.state = meta["rng"]
            rbm._neuron.rng.bit_generator.state = meta["neuron_rng"]
        except KeyError as exc:
            raise ValueError(f"saved RBM state lacks {exc}") from None
        return rbm

    # ------------------------------------------------------------------ inference
    def _analog_hidden_currents(self, X):
        """Noise-free column currents with rows driven at ``X * V_read`` (analogue drive)."""
        v_read = self.crossbar_.device.read_voltage_v
        xb = self._with_bias(np.asarray(X, dtype=np.float32) * np.float32(v_read))
        xb[:, self._nv:] = v_read
        return self._hidden_currents(xb, binary=False, noise=False)

    def _mean_hiddens(self, X):
        """``P(h = 1 | v)`` from a noise-free analogue read (rows driven at X * V_read)."""
        currents = self._analog_hidden_currents(X)
        return _sigmoid(currents.astype(np.float64) / self.current_scale_a_)

    def transform(self, X):
        """Hidden activation probabilities ``P(h = 1 | v = X)``."""
        check_is_fitted(self, "crossbar_")
        X = self._validate_X(X, reset=False)
        return self._mean_hiddens(X).astype(X.dtype, copy=False)

    def sample_hidden(self, X):
        """Binary hidden states sampled by the hardware neurons (0/1 float32)."""
        check_is_fitted(self, "crossbar_")
        X = self._validate_X(X, reset=False)
        return self._sample(self._hidden_currents(self._with_bias(self._binary_input(X))))

    def gibbs(self, v):
        """One Gibbs step ``v -> h -> v'`` on the hardware; returns boolean ``v'``."""
        check_is_fitted(self, "crossbar_")
        v = self._validate_X(v, reset=False)
        h = self._sample(self._hidden_currents(self._with_bias(self._binary_input(v))))
        return self._sample(self._visible_currents(self._with_bias(h))) > 0.5

    def _free_energy(self, v):
        w = self._weights_full()
        W = w[: self._nv, : self.n_components]
        c = w[self._nv:, : self.n_components].sum(axis=0)
        b = w[: self._nv, self.n_components:].sum(axis=1)
        return -(v @ b) - _softplus(v @ W + c).sum(axis=1)

    def score_samples(self, X):
        """Pseudo-likelihood of ``X`` (one random bit flipped per sample), as BernoulliRBM."""
        check_is_fitted(self, "crossbar_")
        X = self._validate_X(X, reset=False)
        v = (X > 0.5).astype(np.float64)
        rng = check_random_state(self.random_state)
        idx = (np.arange(v.shape[0]), rng.randint(0, v.shape[1], v.shape[0]))
        flipped = v.copy()
        flipped[idx] = 1 - flipped[idx]
        fe = self._free_energy(v)
        fe_flip = self._free_energy(flipped)
        return -v.shape[1] * _softplus(-(fe_flip - fe))

    def reconstruction_error(self, X):
        """Mean squared error of a deterministic up-down pass (probabilities)."""
        check_is_fitted(self, "crossbar_")
        X = self._validate_X(X, reset=False)
        w = self._weights_full()
        W = w[: self._nv, : self.n_components]
        b = w[: self._nv, self.n_components:].sum(axis=1)
        h = self._mean_hiddens(X)
        v = _sigmoid(h @ W.T + b)
        return float(np.mean((v - X) ** 2))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
