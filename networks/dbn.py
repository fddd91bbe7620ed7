"""Deep belief network of memristive RBMs (Hinton, Osindero & Teh 2006, on hardware).

Layout (MNIST default): 784-500-500 recognition RBMs, then a top RBM whose visible
layer is the last hidden layer joined with softmax label units (500 + 10) and whose
hidden layer has 2000 units. Training:

1. greedy layer-wise contrastive divergence, bottom up, each layer trained on the
   hidden activities of the one below (sampled to binary by the neurons);
2. the top RBM on ``[h_last, one-hot label]``; label units are sampled by a
   winner-take-all with random offsets (a softmax without an exponential circuit);
   optionally hybrid: each batch also takes a discriminative step that contrasts the
   true label with the network's own guess while the data rows stay clamped
   (``discriminative_weight``; on hardware the guess can come from several Gibbs
   sweeps, ``guess_sweeps``, the two contrasted reads can share their comparator
   noise, ``paired_noise``, and the counter threshold can double on a schedule,
   ``top_anneal_epochs``);
3. optional up-down fine-tuning (contrastive wake-sleep): the lower layers get
   separate generative crossbars (initialised as copies of the recognition weights),
   trained by the wake phase, while the recognition crossbars are trained by the
   sleep phase and the top RBM by CD. Delta-rule statistics ``x (s - ŝ)`` use a
   sampled prediction ``ŝ``, so they are integers that the same digital counters take;
   or, for the float software reference, discriminative fine-tuning: the freeze pass
   is a sigmoid network ending in the top RBM's exact label posterior, and every layer
   climbs ``log p(y | x)`` by back-propagation (as in Hinton & Salakhutdinov 2006).

Classification: ``"freeze"`` is a deterministic upward pass of mean activations
followed by the exact label posterior of the top RBM (free energy per label);
``"sampling"`` averages label-unit winners over stochastic hardware passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from numbers import Integral
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from neuromem import SoftmaxWTA, get_device
from neuromem.energy import sum_reports

from ._constraints import Integer, Number, OneOf, validate_params
from ._archive import metadata_digest as _meta_digest  # noqa: F401 (tests sign altered archives)
from ._archive import params_from_json, params_to_json, read_archive, write_archive
from .rbm import MemristiveRBM, auto_batch_size, program_rbm_weights

FORMAT = "neuromem-dbn"
FORMAT_VERSION = 1
INFERENCE = ("freeze", "sampling")
FINETUNE = ("up-down", "discriminative")
#: ``hidden_layer_sizes="auto"`` and ``n_top="auto"``: layers of one unit per 100 training
#: samples, between ``AUTO_WIDTH`` (200 and 500); two of them from ``AUTO_DEEP_SAMPLES``
#: samples up (MNIST: 784-500-500-(500+10)-2000), one below (digits: 64-200-(200+10)-800);
#: the top RBM ``AUTO_TOP_FACTOR`` times the last layer
AUTO_WIDTH, AUTO_DEEP_SAMPLES, AUTO_TOP_FACTOR = (200, 500), 10000, 4
#: ``n_iter="auto"``: mini-batches of pre-training per lower layer (5 MNIST epochs of
#: 100), in at most ``AUTO_LAYER_EPOCHS`` epochs (long pre-training hurts classification)
AUTO_LAYER_UPDATES, AUTO_LAYER_EPOCHS = 2500, 20
#: ``n_top_iter="auto"``: mini-batches of the top RBM (40 MNIST epochs of 100), in at
#: most ``AUTO_TOP_EPOCHS`` epochs
AUTO_TOP_UPDATES, AUTO_TOP_EPOCHS = 20000, 100
#: ``discriminative_weight="auto"``: the hybrid top RBM's weight with counters, and with
#: the float rule (the MNIST results' values)
AUTO_HYBRID_WEIGHT, AUTO_FLOAT_WEIGHT = 8.0, 10.0
#: ``guess_sweeps="auto"`` with the counters' hybrid step
AUTO_GUESS_SWEEPS = 5
#: ``top_anneal_epochs="auto"``: the counter threshold doubles after these fractions of
#: the top epochs (25, 32, 37 of 40 in the MNIST headline)
AUTO_ANNEAL_FRACTIONS = (25 / 40, 32 / 40, 37 / 40)
#: MemristiveRBM parameters that the DBN sets for every layer itself.
_SET_BY_DBN = frozenset({"n_components", "device", "neuron", "update", "cd_k", "batch_size",
                         "n_iter", "random_state"})


class _LabelledRBM(MemristiveRBM):
    """Top RBM: the last visible rows carry one softmax group of ``n_labels`` labels.

    Each label drives ``label_lines`` rows together (and senses their summed current on
    the way down), like the bias lines: the label's weight to a hidden unit is the sum
    over its rows, so labels learn ``label_lines`` times faster and span a wider range.
    """

    n_labels = 10  # set per instance by the DBN before use
    label_lines = 1
    discriminative_weight = 0.0
    guess_sweeps = 1
    paired_noise = False

    def _initialize_empty(self, n_features, device):
        super()._initialize_empty(n_features, device)
        self._wta = SoftmaxWTA(self.current_scale_a_, seed=int(self._rng.integers(2**31)),
                               ledger=self.ledger_)

    @property
    def n_data_(self) -> int:
        """Visible units that are not label rows."""
        return self._nv - self.n_labels * self.label_lines

    def _label_currents(self, currents):
        block = currents[:, self.n_data_:]
        return block.reshape(len(block), self.n_labels, self.label_lines).sum(axis=2)

    def expand_labels(self, labels):
        """One value per label -> one per label row."""
        return np.repeat(labels, self.label_lines, axis=1)

    def _sample_visible(self, currents):
        n = self.n_data_
        out = np.empty(currents.shape, dtype=np.float32)
        out[:, :n] = self._sample(currents[:, :n])
        out[:, n:] = self.expand_labels(self._wta.sample(self._label_currents(currents)))
        return out

    def _mean_visible(self, currents):
        n = self.n_data_
        out = np.empty(currents.shape)
        out[:, :n] = super()._mean_visible(currents[:, :n])
        out[:, n:] = self.expand_labels(self._wta.probability(self._label_currents(currents)))
        return out

    def random_streams(self):
        return super().random_streams() + [self._wta.rng]

    def sample_labels(self, h):
        """Drive the columns with hidden states ``h`` and let the winner-take-all pick a
        label from the label rows' currents (one-hot rows)."""
        return self._wta.sample(self._label_currents(self._visible_currents(self._with_bias(h))))

    def get_state(self, training_state=True):
        arrays, meta = super().get_state(training_state)
        meta["wta_rng"] = self._wta.rng.bit_generator.state
        meta["n_labels"] = self.n_labels
        meta["label_lines"] = self.label_lines
        meta["discriminative_weight"] = self.discriminative_weight
        meta["guess_sweeps"] = self.guess_sweeps
        meta["paired_noise"] = self.paired_noise
        return arrays, meta

    @classmethod
    def from_state(cls, arrays, meta):
        rbm = super().from_state(arrays, meta)
        rbm.n_labels = int(meta["n_labels"])
        rbm.label_lines = int(meta["label_lines"])
        rbm.discriminative_weight = float(meta.get("discriminative_weight", 0.0))
        rbm.guess_sweeps = int(meta.get("guess_sweeps", 1))
        rbm.paired_noise = bool(meta.get("paired_noise", False))
        rbm._wta.rng.bit_generator.state = meta["wta_rng"]
        return rbm

    # ------------------------------------------------------------------ discriminative
    def _label_index(self, v):
        """Label of each row of a visible batch (argmax over the label groups)."""
        return np.argmax(self._label_currents(v[:, : self._nv]), axis=1)

    def _label_parameters(self, w):
        """``(W, U, c, b_y)`` of the joint RBM from the full weight array ``w``: data and
        label weights to the hidden units, hidden biases, label biases (each label's
        rows and each bias line summed)."""
        n, nv, nh, L, r = self.n_data_, self._nv, self.n_components, self.n_labels, self.label_lines
        return (w[:n, :nh], w[n:nv, :nh].reshape(L, r, nh).sum(axis=1), w[nv:, :nh].sum(axis=0),
                w[n:nv, nh:].sum(axis=1).reshape(L, r).sum(axis=1))

    def _extra_statistics(self, v0):
        if not self.discriminative_weight:
            return None
        if self.update == "ideal":
            return self._discriminative_gradient(v0) * np.float32(self.discriminative_weight)
        self._discriminative_pulses(v0)
        return None

    def guess_labels(self, v0b, sweeps=None):
        """The network's guess of each row's label with the data rows clamped.

        Starts with the label rows off; each sweep samples the hidden units, then the
        label through the winner-take-all, and drives the label rows with it for the next
        sweep. This Gibbs chain over ``(h, y)`` given ``x`` tends to ``p(y | x)`` as the
        sweeps grow. ``v0b``: visible states with bias columns; returns one-hot guesses.
        """
        n, nv = self.n_data_, self._nv
        sweeps = self.guess_sweeps if sweeps is None else sweeps
        free = np.array(v0b[:, :nv], dtype=np.float32)
        free[:, n:] = 0.0
        for sweep in range(sweeps):
            guess = self.sample_labels(self.up(free))
            if sweep < sweeps - 1:
                free[:, n:] = self.expand_labels(guess)
        return guess

    def _discriminative_pulses(self, v0):
        """Conditional contrast on hardware: the data rows stay clamped and only the label
        is free. The network guesses a label (:meth:`guess_labels`: ``guess_sweeps``
        up-down sweeps through the winner-take-all); where the guess is wrong, the
        counters take ``[x, y] h - [x, guess] h'``, which lowers the free energy of the
        true label against the guess. With ``paired_noise`` the reads for ``h`` and
        ``h'`` share the comparators' random draws, so they differ only in the units the
        label swings. Needs only comparators, the WTA and a digital label compare, and
        only the layer operations of the RBM.
        """
        n = self.n_data_
        v0 = np.asarray(v0, dtype=np.float32)
        guess = self.guess_labels(self.with_bias(v0))
        wrong = np.argmax(guess, axis=1) != self._label_index(v0)
        if not wrong.any():
            return
        # an integer weight: each wrong row is presented that many times, each time
        # with its own hidden samples
        times = int(self.discriminative_weight)
        pos = np.repeat(v0[wrong], times, axis=0)
        neg = pos.copy()
        neg[:, n:] = self.expand_labels(np.repeat(guess[wrong], times, axis=0))
        if self.paired_noise:
            h_pos, h_neg = self.up_paired(pos, neg)
        else:
            h_pos, h_neg = self.up(pos), self.up(neg)
        self.accumulate(pos, h_pos, neg, h_neg)

    def _discriminative_gradient(self, v0, input_gradient=False):
        """Exact ``d log p(y | x)`` statistics of the joint RBM (Larochelle & Bengio 2008),
        laid out like CD statistics (rows: data, label rows, bias; columns: hidden, bias);
        with ``input_gradient`` also ``d log p(y | x) / d x`` for the layers below.

        With ``s_k = sigmoid(x W + c + U_k)`` and ``p_k = p(y = k | x)``, the hidden drive
        difference is ``s_y - sum_k p_k s_k``; label ``k`` takes ``(1[y=k] - p_k) s_k``.
        """
        n, nv, nh, r = self.n_data_, self._nv, self.n_components, self.label_lines
        W, U, c, b_y = self._label_parameters(self._weights_full().astype(np.float32))
        x = np.asarray(v0[:, :n], dtype=np.float32)
        act = (x @ W + c)[:, None, :] + U[None, :, :]
        softplus = np.logaddexp(np.float32(0), act)             # (batch, label, hidden)
        scores = b_y + softplus.sum(axis=2, dtype=np.float64)
        scores -= scores.max(axis=1, keepdims=True)
        p_y = np.exp(scores)
        p_y /= p_y.sum(axis=1, keepdims=True)
        coef = -p_y.astype(np.float32)
        coef[np.arange(len(x)), self._label_index(v0)] += 1      # 1[y = k] - p_k
        # sigmoid(a) = 1 - exp(-softplus(a)): no second transcendental pass
        np.negative(softplus, out=softplus)
        np.exp(softplus, out=softplus)
        p_h = np.subtract(np.float32(1), softplus, out=softplus)
        weighted = p_h * coef[:, :, None]
        dh = weighted.sum(axis=1)
        stats = np.zeros((nv + self.bias_lines, nh + self.bias_lines), dtype=np.float32)
        stats[:n, :nh] = x.T @ dh
        stats[n:nv, :nh] = np.repeat(weighted.sum(axis=0), r, axis=0)
        stats[nv:, :nh] = dh.sum(axis=0)
        stats[n:nv, nh:] = np.repeat(coef.sum(axis=0), r)[:, None]
        if input_gradient:
            return stats, dh @ W.T
        return stats

    def label_gradient(self, v0, input_gradient=False):
        """The float rule's exact ``d log p(y | x)`` statistics (see
        :meth:`_discriminative_gradient`), for back-propagation from the layers below."""
        return self._discriminative_gradient(v0, input_gradient)

    def label_log_posterior(self, h):
        """Exact ``log p(y | h)`` of the joint top RBM, by the free energy of each label."""
        W, U, c, b_y = self._label_parameters(self._weights_full())
        a = h @ W + c
        scores = np.stack([b_y[k] + np.logaddexp(0.0, a + U[k]).sum(axis=1)
                           for k in range(self.n_labels)], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        return scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))


def _check_int(name, value, low):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


class MemristiveDBN(ClassifierMixin, BaseEstimator):
    """Deep belief network trained in situ on memristive crossbars.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int or "auto"
        Sizes of the stacked recognition RBMs. ``"auto"``: one unit per 100 training
        samples, between 200 and 500, in two layers from 10 000 samples up and one layer
        below (``(500, 500)`` on MNIST, ``(200,)`` on the 8x8 digits), resolved at the
        first fit into ``hidden_layer_sizes_``. Small sets learn better with one layer:
        on the digits the two-layer MNIST network's accuracy swings by several points
        from one top epoch to the next.
    n_top : int or "auto"
        Hidden units of the top (associative) RBM. ``"auto"``: four times the last
        layer (2000 on MNIST), resolved into ``n_top_``.
    device, neuron, update, cd_k, batch_size :
        As in :class:`MemristiveRBM`, shared by all layers (``batch_size="auto"``: 10
        to 100, one hundredth of the training set).
    n_iter : int or "auto"
        Pre-training epochs per layer (also for the top RBM when ``n_top_iter`` is
        ``None``). ``"auto"``: enough epochs for about :data:`AUTO_LAYER_UPDATES`
        mini-batches (5 epochs on MNIST, more on small sets).
    n_top_iter : int, "auto" or None
        Epochs of the top RBM (``None``: ``n_iter``; ``"auto"``: about
        :data:`AUTO_TOP_UPDATES` mini-batches).
    top_cd_k : int
        CD steps of the top RBM.
    n_finetune : int
        Epochs of fine-tuning after the top RBM (0 = none).
    finetune : {"up-down", "discriminative"}
        ``"up-down"``: contrastive wake-sleep with untied generative weights (Hinton,
        Osindero & Teh 2006). ``"discriminative"``: every recognition layer and the top
        RBM climb ``log p(y | x)`` of the freeze pass (the label posterior of the top
        RBM given the mean activities below), back-propagated through the layers, as a
        software reference only (``update="ideal"``).
    finetune_cd_k : int
        Gibbs steps in the top RBM during up-down fine-tuning.
    finetune_learning_rate : float
        Step of the float rules when ``update="ideal"`` (delta rule or gradient; the
        discriminative gradient takes no weight decay).
    finetune_momentum : float
        Momentum of the float fine-tuning step (its velocity starts from zero).
    finetune_decay : float
        The float fine-tuning step is multiplied by this after every epoch (1 = constant).
    inference : {"freeze", "sampling"}
        Classification mode of :meth:`predict` / :meth:`predict_proba`.
    n_samples : int
        Stochastic passes averaged in ``"sampling"`` mode.
    label_lines : int
        Rows driven by each label unit of the top RBM (1 = one row per label).
    discriminative_weight : float or "auto"
        Weight of the discriminative (conditional) term in training the top RBM, on top
        of its CD step (hybrid training, Larochelle & Bengio 2008); 0 = generative only;
        ``"auto"``: 8 with counters, 10 with ``update="ideal"`` (the MNIST results).
        With ``update="ideal"`` it scales the exact gradient of ``log p(y | x)``. With
        counters it must be an integer: on every batch the network guesses each label
        with the data rows clamped, and where it is wrong the counters take
        ``[x, y] h - [x, guess] h'``, each wrong row presented that many times. The top
        RBM keeps the step during up-down fine-tuning.
    guess_sweeps : int or "auto"
        ``"auto"``: 5 where the counters' hybrid step runs, else 1. Counter rules: Gibbs sweeps (hidden units, then the label winner-take-all) with
        the data rows clamped that make the network's guess in the discriminative step;
        1 = one up-down pass from the label rows off. More sweeps bring the guess closer
        to a sample of ``p(y | x)``, at one more pair of array reads each.
    paired_noise : bool or "auto"
        ``"auto"``: on where the counters' hybrid step runs. Counter rules: the two reads of each wrong row (true label, guess) share the
        hidden comparators' random draws, so ``h - h'`` is non-zero only where the label
        swings a unit: the same expected step with much less noise.
    top_anneal_epochs : tuple of int or "auto"
        ``"auto"``: after 25/40, 32/40 and 37/40 of the top epochs with counters (25, 32,
        37 of 40 on MNIST), none with the float rule. Counter rules: the top RBM's counter threshold doubles after each of these top
        epochs (the counter form of halving the step), so the last epochs settle instead
        of hopping between neighbouring conductance levels; ``()`` = constant. Fine-tuning
        keeps the last value.
    rbm_params : dict or None
        Extra :class:`MemristiveRBM` parameters for every layer (``weight_range``,
        ``learning_rate``, ``scheme``, ``reference_level``, ``bias_lines``,
        ``counter_threshold``, ``max_pulses``, ``persistent``, ``read_noise_rel`` ...).
    top_rbm_params : dict, None or "auto"
        ``"auto"``: with counters, push-pull pairs and twice the batch size as counter
        threshold (``{"scheme": "differential", "counter_threshold": 2 * batch}``, the
        MNIST headline's top), nothing with the float rule. Parameters of the top RBM
        only, merged over ``rbm_params`` (the associative
        layer often wants another rate, e.g. ``{"counter_threshold": 200}``).
    random_state : int or None
        Seeds the whole network.
    """

    def __init__(self, hidden_layer_sizes="auto", n_top="auto", *, device="yflash",
                 neuron="comparator", update="counter", cd_k=1, top_cd_k=1, batch_size="auto",
                 n_iter="auto", n_top_iter="auto", n_finetune=0, finetune="up-down",
                 finetune_cd_k=3, finetune_learning_rate=0.01, finetune_momentum=0.0,
                 finetune_decay=1.0, inference="freeze", n_samples=10, label_lines=1,
                 discriminative_weight="auto", guess_sweeps="auto", paired_noise="auto",
                 top_anneal_epochs="auto", rbm_params=None, top_rbm_params="auto",
                 verbose=False, random_state=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_top = n_top
        self.device = device
        self.neuron = neuron
        self.update = update
        self.cd_k = cd_k
        self.top_cd_k = top_cd_k
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.n_top_iter = n_top_iter
        self.n_finetune = n_finetune
        self.finetune = finetune
        self.finetune_cd_k = finetune_cd_k
        self.finetune_learning_rate = finetune_learning_rate
        self.finetune_momentum = finetune_momentum
        self.finetune_decay = finetune_decay
        self.inference = inference
        self.n_samples = n_samples
        self.label_lines = label_lines
        self.discriminative_weight = discriminative_weight
        self.guess_sweeps = guess_sweeps
        self.paired_noise = paired_noise
        self.top_anneal_epochs = top_anneal_epochs
        self.rbm_params = rbm_params
        self.top_rbm_params = top_rbm_params
        self.verbose = verbose
        self.random_state = random_state

    @classmethod
    def from_recipe(cls, recipe="digits", **params) -> "MemristiveDBN":
        """A network built from a named recipe (``neuromem recipes`` lists them), the
        path of a recipe TOML file, or a ``results.json`` of ``neuromem dbn``;
        keyword arguments override single parameters (as ``set_params``).

        >>> dbn = MemristiveDBN.from_recipe("yflash-headline", random_state=1)
        >>> dbn.n_top_iter, dbn.top_rbm_params["scheme"]
        (40, 'differential')
        """
        from .recipes import load_recipe, recipe_estimator_params

        settings = recipe_estimator_params(recipe if isinstance(recipe, dict) else load_recipe(recipe))
        settings.update(params)
        return cls(**settings)

    # ------------------------------------------------------------------ plan
    #: what each parameter accepts (checked by :func:`networks._constraints.validate_params`);
    #: rules across parameters are in :meth:`_check_params`
    _parameter_constraints = {
        "hidden_layer_sizes": "no_validation",  # sizes or "auto": checked in _check_params
        "n_top": [Integer(1), "auto"],
        "device": "no_validation",  # device, neuron, update, cd_k: MemristiveRBM's table
        "neuron": "no_validation",
        "update": "no_validation",
        "cd_k": "no_validation",
        "top_cd_k": [Integer(1)],
        "batch_size": [Integer(1), "auto"],
        "n_iter": [Integer(0), "auto"],
        "n_top_iter": [Integer(1), "auto", None],
        "n_finetune": [Integer(0)],
        "finetune": [OneOf(*FINETUNE)],
        "finetune_cd_k": [Integer(1)],
        "finetune_learning_rate": [Number(0, low_open=True)],
        "finetune_momentum": [Number(0, 1, high_open=True)],
        "finetune_decay": [Number(0, 1, low_open=True)],
        "inference": [OneOf(*INFERENCE)],
        "n_samples": [Integer(1)],
        "label_lines": [Integer(1)],
        "discriminative_weight": [Number(0), "auto"],
        "guess_sweeps": [Integer(1), "auto"],
        "paired_noise": [True, False, "auto"],
        "top_anneal_epochs": "no_validation",  # against the top epochs: _check_anneal
        "rbm_params": "no_validation",  # dicts of MemristiveRBM parameters: checked below
        "top_rbm_params": "no_validation",
        "verbose": [True, False],
        "random_state": "no_validation",  # check_random_state checks it
    }

    def _check_params(self):
        sizes = self._auto("hidden_layer_sizes", None)
        if sizes is not None:
            if isinstance(sizes, str) or not hasattr(sizes, "__len__"):
                raise ValueError("hidden_layer_sizes must be a sequence of layer sizes or "
                                 f"'auto', got {sizes!r}")
            sizes = tuple(sizes)
            if not sizes:
                raise ValueError("hidden_layer_sizes must name at least one layer")
            for s in sizes:
                _check_int("hidden_layer_sizes", s, 1)
        validate_params(self)
        counters = self.update != "ideal"
        dw = self._auto("discriminative_weight", AUTO_HYBRID_WEIGHT if counters else AUTO_FLOAT_WEIGHT)
        if self.update != "ideal" and dw != int(dw):
            raise ValueError("discriminative_weight must be a whole number with counter "
                             f"updates (update={self.update!r}), got {dw!r}")
        sweeps, paired = self._auto("guess_sweeps", 1), self._auto("paired_noise", False)
        if (sweeps != 1 or paired) and (self.update == "ideal" or not dw):
            # the float rule takes the exact gradient of log p(y | x): no guess, no reads
            raise ValueError("guess_sweeps and paired_noise shape the counter rules' "
                             "discriminative step; they need discriminative_weight > 0 and "
                             f"update != 'ideal' (got discriminative_weight={dw!r}, "
                             f"update={self.update!r})")
        n_top = self.n_iter if self.n_top_iter is None else self.n_top_iter
        self._check_anneal(None if n_top == "auto" else n_top)
        if self._auto("top_anneal_epochs", ()) and self.update == "ideal":
            raise ValueError("top_anneal_epochs doubles the counters' threshold; update="
                             "'ideal' has no counters (set its learning_rate instead)")
        if self.finetune == "discriminative" and self.update != "ideal":
            # back-propagation needs error magnitudes (an ADC) and the sigmoid slope; a
            # mistake-driven sign version on Y-Flash did not beat the hybrid top in short trials
            raise ValueError("finetune='discriminative' needs update='ideal' (a float "
                             f"gradient), got update={self.update!r}; use 'up-down'")
        for name in ("rbm_params", "top_rbm_params"):
            value = self._auto(name, None)
            if value is not None and not isinstance(value, dict):
                raise TypeError(f"{name} must be a dict or None, got {type(value).__name__}")
            unknown = set(value or {}) - set(MemristiveRBM().get_params())
            if unknown:
                raise ValueError(f"{name} holds {sorted(unknown)}, which are not "
                                 "MemristiveRBM parameters")
            reserved = _SET_BY_DBN & set(value or {})
            if reserved:
                raise ValueError(f"{name} cannot set {sorted(reserved)}: the DBN sets them")
        # an RBM validates the shared parameters (device, neuron, update, ...)
        self._rbm(0, 1, seed=0).check_params()
        if self._auto("top_rbm_params", None):
            self._rbm(0, 1, seed=0, top=True).check_params()
        return sizes

    def _auto(self, name, value):
        """The parameter ``name``, or ``value`` where it is ``"auto"``."""
        setting = getattr(self, name)
        return value if isinstance(setting, str) and setting == "auto" else setting

    def _check_anneal(self, n_top):
        """``top_anneal_epochs`` against ``n_top`` top epochs (None: not known yet)."""
        anneal = self._auto("top_anneal_epochs", ())
        high = math.inf if n_top is None else n_top
        if (not isinstance(anneal, (tuple, list))
                or any(not isinstance(e, Integral) or isinstance(e, bool) for e in anneal)
                or list(anneal) != sorted(set(anneal))
                or any(not 1 <= e < high for e in anneal)):
            raise ValueError("top_anneal_epochs must be increasing whole numbers of top epochs "
                             f"in [1, {high - 1}] (n_top_iter={n_top}), got {anneal!r}")

    def _resolve_plan(self, n_samples):
        """Every ``"auto"`` setting for ``n_samples`` training rows, into
        ``hidden_layer_sizes_``, ``n_top_``, ``batch_size_``, ``n_iter_``, ``n_top_iter_``,
        ``discriminative_weight_``, ``guess_sweeps_``, ``paired_noise_``,
        ``top_anneal_epochs_`` and ``top_rbm_params_``."""
        width = min(AUTO_WIDTH[1], max(AUTO_WIDTH[0], n_samples // 100))
        auto_sizes = (width, width) if n_samples >= AUTO_DEEP_SAMPLES else (width,)
        self.hidden_layer_sizes_ = tuple(int(s) for s in self._auto("hidden_layer_sizes", auto_sizes))
        self.n_top_ = int(self._auto("n_top", AUTO_TOP_FACTOR * self.hidden_layer_sizes_[-1]))
        batch = auto_batch_size(n_samples) if self.batch_size == "auto" else int(self.batch_size)
        per_epoch = max(1, math.ceil(n_samples / batch))
        n_iter = (min(AUTO_LAYER_EPOCHS, math.ceil(AUTO_LAYER_UPDATES / per_epoch))
                  if self.n_iter == "auto" else int(self.n_iter))
        if self.n_top_iter is None:
            n_top = n_iter
        elif self.n_top_iter == "auto":
            n_top = min(AUTO_TOP_EPOCHS, math.ceil(AUTO_TOP_UPDATES / per_epoch))
        else:
            n_top = int(self.n_top_iter)
        self.batch_size_, self.n_iter_, self.n_top_iter_ = batch, n_iter, max(n_top, 1)
        counters = self.update != "ideal"
        top_params = {"scheme": "differential", "counter_threshold": 2 * batch} if counters else {}
        self.top_rbm_params_ = dict(self._auto("top_rbm_params", top_params) or {})
        self._resolve_hybrid()

    def _resolve_hybrid(self):
        """The top RBM's hybrid step from the current parameters (read again at every top
        epoch, so ``set_params`` between epochs takes effect)."""
        n_top, counters = self.n_top_iter_, self.update != "ideal"
        dw = float(self._auto("discriminative_weight",
                              AUTO_HYBRID_WEIGHT if counters else AUTO_FLOAT_WEIGHT))
        hybrid = counters and dw > 0  # the hardware hybrid step runs
        anneal = ()
        if counters:
            anneal = tuple(sorted({e for e in (round(n_top * f) for f in AUTO_ANNEAL_FRACTIONS)
                                   if 1 <= e < n_top}))
        self.discriminative_weight_ = dw
        self.guess_sweeps_ = int(self._auto("guess_sweeps", AUTO_GUESS_SWEEPS if hybrid else 1))
        self.paired_noise_ = bool(self._auto("paired_noise", hybrid))
        self.top_anneal_epochs_ = tuple(self._auto("top_anneal_epochs", anneal))
        self._check_anneal(self.n_top_iter_)

    def _plan(self) -> dict:
        return {"hidden_layer_sizes": list(self.hidden_layer_sizes_), "n_top": self.n_top_,
                "batch_size": self.batch_size_, "n_iter": self.n_iter_,
                "n_top_iter": self.n_top_iter_, "discriminative_weight": self.discriminative_weight_,
                "guess_sweeps": self.guess_sweeps_, "paired_noise": self.paired_noise_,
                "top_anneal_epochs": list(self.top_anneal_epochs_),
                "top_rbm_params": self.top_rbm_params_}

    def _rbm(self, n_hidden, index, seed, cls=MemristiveRBM, cd_k=None, top=False):
        params = dict(self.rbm_params or {})
        if top:
            params.update(getattr(self, "top_rbm_params_", None)
                          or self._auto("top_rbm_params", {"scheme": "differential"}) or {})
        batch = getattr(self, "batch_size_", self.batch_size)
        return cls(max(n_hidden, 1), device=self.device, neuron=self.neuron, update=self.update,
                   cd_k=cd_k or self.cd_k, batch_size=batch, n_iter=1,
                   random_state=seed, **params)

    @property
    def stages_(self):
        """Training plan: ``(name, epochs)`` per stage."""
        check_is_fitted(self, "n_iter_")
        sizes = self.hidden_layer_sizes_
        plan = [(f"layer{i}", self.n_iter_) for i in range(len(sizes))]
        plan.append(("top", self.n_top_iter_))
        if self.n_finetune:
            plan.append(("finetune", self.n_finetune))
        return plan

    @property
    def done_(self) -> bool:
        return self.progress_["stage"] >= len(self.stages_)

    # ------------------------------------------------------------------ training
    def begin(self, X, y):
        """Validate data and set up an untrained network (first call of a resumable fit)."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=(np.float64, np.float32))
        check_classification_targets(y)
        if X.min() < 0 or X.max() > 1:
            raise ValueError("X must hold values in [0, 1] (binary pixels or probabilities)")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"y must hold at least 2 classes, got {len(self.classes_)}")
        self._resolve_plan(len(X))
        seeds = check_random_state(self.random_state).randint(0, 2**31 - 1, size=16)
        self._seeds = [int(s) for s in seeds]
        self._rng = np.random.default_rng(self._seeds[-1])
        self.layers_ = []
        self.top_ = None
        self.generative_ = []
        self.progress_ = {"stage": 0, "epoch": 0}
        self.training_state_ = True
        self.history_ = []
        self._data_cache = None
        return X, y

    def _one_hot(self, y):
        idx = np.searchsorted(self.classes_, y)
        if np.any(self.classes_[np.minimum(idx, len(self.classes_) - 1)] != y):
            raise ValueError("y holds labels not seen in fit")
        out = np.zeros((len(y), len(self.classes_)), dtype=np.float32)
        out[np.arange(len(y)), idx] = 1
        return out

    def _up_mean(self, X, n_layers):
        h = np.asarray(X, dtype=np.float32)
        for rbm in self.layers_[:n_layers]:
            h = rbm.up_mean(h).astype(np.float32)
        return h

    def _stage_input(self, name, X, y):
        """Training data of a stage (mean activities of the layers below).

        Computed once per stage and cached, outside the ledgers; the reads it takes are
        booked into the lower layers' ledgers at every epoch instead, as hardware with
        no memory of 60k activity vectors would pay them each time.
        """
        key = (name, X.shape, hashlib.sha256(np.ascontiguousarray(X[:: max(1, len(X) // 64)])).hexdigest())
        if self._data_cache is None or self._data_cache[0] != key:
            with self._isolated():
                for m in self.layers_:  # measured from zero: exact whenever it is recomputed
                    m.ledger_.reset()
                if name.startswith("layer"):
                    data = self._up_mean(X, int(name[5:]))
                else:
                    data = np.hstack([self._up_mean(X, len(self.layers_)),
                                      np.repeat(self._one_hot(y), self.label_lines, axis=1)])
                cost = [{op: (e["count"], e["energy_j"]) for op, e in m.ledger_.as_dict().items()
                         if op != "total_j"} for m in self.layers_]
            self._data_cache = (key, data, cost)
        _, data, cost = self._data_cache
        for layer, change in zip(self.layers_, cost):
            for op, (count, energy) in change.items():
                layer.ledger_.record(op, count, energy)
        return data

    def train_epoch(self, X, y):
        """Run the next epoch of the plan; returns ``(stage_name, epoch)`` just done."""
        check_is_fitted(self, "progress_")
        if not getattr(self, "training_state_", True):
            raise RuntimeError("this network was saved without its training state "
                               "(save(..., training_state=True) keeps it); it can only predict")
        if self.done_:
            raise RuntimeError("training plan already finished")
        name, epochs = self.stages_[self.progress_["stage"]]
        sizes = self.hidden_layer_sizes_
        if name.startswith("layer"):
            i = int(name[5:])
            data = self._stage_input(name, X, y)
            if len(self.layers_) == i:
                rbm = self._rbm(sizes[i], i, self._seeds[i])
                rbm.partial_fit(data)
                self.layers_.append(rbm)
            else:
                self.layers_[i].partial_fit(data)
        elif name == "top":
            data = self._stage_input(name, X, y)
            if self.top_ is None:
                top = self._rbm(self.n_top_, len(sizes), self._seeds[10], cls=_LabelledRBM,
                                cd_k=self.top_cd_k, top=True)
                top.n_labels = len(self.classes_)
                top.label_lines = self.label_lines
            else:
                top = self.top_
            # read at every epoch, so set_params between epochs takes effect
            self._configure_top(top, self.progress_["epoch"])
            top.partial_fit(data)
            self.top_ = top
        elif self.finetune == "discriminative":
            if self.progress_["epoch"] == 0:
                self._reset_velocities(self._modules())
            self._discriminative_epoch(np.asarray(X, dtype=np.float32), self._one_hot(y))
        else:
            if not self.generative_:
                self._untie()
                self._reset_velocities(self.layers_)  # the top RBM goes on with its CD
            self._configure_top(self.top_, math.inf)
            self._finetune_epoch(np.asarray(X, dtype=np.float32),
                                 self.top_.expand_labels(self._one_hot(y)))
        done = (name, self.progress_["epoch"])
        self.progress_["epoch"] += 1
        if self.progress_["epoch"] >= epochs:
            self.progress_ = {"stage": self.progress_["stage"] + 1, "epoch": 0}
            self._data_cache = None
        return done

    def rewind(self) -> dict:
        """Start the training plan again on the same chip: every array is programmed
        back to where its training started (:meth:`MemristiveRBM.rewind`, by
        program-and-verify) and the next :meth:`train_epoch` is the first epoch of the
        first stage. The devices keep their wear, so calling it between full plans
        retrains one chip over and over (ageing by retraining cycles). Returns the
        programming pulses and the cells left outside tolerance, summed over arrays."""
        check_is_fitted(self, "progress_")
        if self.generative_:
            raise RuntimeError("this network was fine-tuned up-down (its generative arrays are "
                               "copies made for fine-tuning, with no starting state): it cannot "
                               "be rewound; rewind before fine-tuning or use n_finetune=0")
        total = {"pulses": 0, "missed": 0}
        for module in self.layers_ + ([self.top_] if self.top_ is not None else []):
            for key, value in module.rewind().items():
                total[key] += value
        self.progress_ = {"stage": 0, "epoch": 0}
        self._data_cache = None
        return total

    def _configure_top(self, top, top_epoch):
        """Hybrid-step settings, and the counter threshold for top epoch ``top_epoch``
        (0-based; recomputed every epoch, so a resumed run takes the same schedule)."""
        self._resolve_hybrid()
        top.discriminative_weight = self.discriminative_weight_
        top.guess_sweeps = self.guess_sweeps_
        top.paired_noise = self.paired_noise_
        if hasattr(top, "crossbar_"):  # not built before the first batch (then no doubling)
            doublings = sum(e <= top_epoch for e in self.top_anneal_epochs_)
            top.set_counter_threshold(top.counter_threshold_ * 2 ** doublings)

    def fit(self, X, y):
        """Greedy pre-training, top RBM, then optional up-down fine-tuning."""
        X, y = self.begin(X, y)
        while not self.done_:
            stage, epoch = self.train_epoch(X, y)
            if self.verbose:
                print(f"[MemristiveDBN] {stage} epoch {epoch + 1}")
        return self

    # ------------------------------------------------------------------ up-down
    def _untie(self):
        """Generative crossbars for the lower layers, programmed as copies of W.T."""
        for i, rbm in enumerate(self.layers_):
            gen = self._rbm(rbm.n_features_in_, i, self._seeds[11 + i % 4])
            full = rbm.weights()
            nv, nh, nb = rbm.n_features_in_, rbm.n_components, gen.bias_lines
            target = np.zeros((nh + nb, nv + nb))
            target[:nh, :nv] = full[:nv, :nh].T
            target[nh:, :nv] = full[:nv, nh:].T  # visible biases move to the bias rows
            self.generative_.append(gen.program(nh, target))

    def _delta_update(self, rbm, inputs, targets, predicted_states, predicted_mean):
        """Delta rule ``x (s - ŝ)`` on one crossbar; ``ŝ`` sampled, or the mean if ideal."""
        xb = rbm.with_bias(inputs)
        pred = predicted_mean if rbm.update == "ideal" else predicted_states
        err = np.zeros((len(inputs), rbm.n_components + rbm.bias_lines), dtype=np.float32)
        err[:, : rbm.n_components] = targets - pred
        stats = xb.T @ err
        n_incr = int(xb.sum(axis=1) @ np.abs(err).sum(axis=1))
        self._step(rbm, stats, len(inputs), n_incr)

    @staticmethod
    def _reset_velocities(modules):
        """Fine-tuning momentum starts from rest, not from the CD steps before it."""
        for mod in modules:
            if mod.update == "ideal":
                mod.reset_momentum()

    def _step(self, rbm, stats, n_samples, n_increments, weight_decay=True):
        """Apply fine-tuning statistics; float rules take the fine-tuning rate of this
        epoch and the fine-tuning momentum."""
        if rbm.update != "ideal":
            rbm.apply_statistics(stats, n_samples, n_increments)
            return
        rate = self.finetune_learning_rate * self.finetune_decay ** self.progress_["epoch"]
        rbm.apply_statistics(stats, n_samples, n_increments, learning_rate=rate,
                             momentum=self.finetune_momentum,
                             weight_decay=None if weight_decay else 0.0)

    def _finetune_epoch(self, X, Y):
        n = len(X)
        order = self._rng.permutation(n)
        top = self.top_
        n_h = top.n_data_
        for start in range(0, n, self.batch_size_):
            idx = order[start: start + self.batch_size_]
            v = self.layers_[0].binary_drive(X[idx])
            # wake: recognition pass
            wake = [v]
            for rbm in self.layers_:
                wake.append(rbm.up(wake[-1]))
            # top associative memory: CD from [h_top, label]
            vis0 = np.hstack([wake[-1], Y[idx]]).astype(np.float32)
            vis = top.cd_step(vis0, cd_k=self.finetune_cd_k)
            # the negative-phase sample of the top layer starts the sleep pass
            sleep = [top.binary_drive(vis[:, :n_h])]
            for gen in reversed(self.generative_):
                sleep.insert(0, gen.up(sleep[0]))
            # generative weights learn to reconstruct the wake states
            for i, gen in enumerate(self.generative_):
                mean = gen.up_mean(wake[i + 1])
                self._delta_update(gen, wake[i + 1], wake[i], gen.up(wake[i + 1]), mean)
            # recognition weights learn to recover the sleep states
            for i, rbm in enumerate(self.layers_):
                mean = rbm.up_mean(sleep[i])
                self._delta_update(rbm, sleep[i], sleep[i + 1], rbm.up(sleep[i]), mean)

    # ------------------------------------------------------------------ discriminative
    def _discriminative_epoch(self, X, Y):
        """One epoch of ``log p(y | x)`` ascent through the freeze pass."""
        n = len(X)
        order = self._rng.permutation(n)
        top = self.top_
        labels = top.expand_labels(Y)
        for start in range(0, n, self.batch_size_):
            idx = order[start: start + self.batch_size_]
            self._gradient_batch(X[idx], labels[idx])

    def _gradient_batch(self, x, labels):
        """Float back-propagation: the freeze pass is a sigmoid network whose output is
        the top RBM's exact label posterior."""
        acts = [np.asarray(x, dtype=np.float32)]
        params = []
        for rbm in self.layers_:
            w, nv, nh = rbm.weights().astype(np.float32), rbm.n_features_in_, rbm.n_components
            W, c = w[:nv, :nh], w[nv:, :nh].sum(axis=0)
            params.append(W)
            acts.append(1.0 / (1.0 + np.exp(-(acts[-1] @ W + c))))
        top = self.top_
        stats, grad = top.label_gradient(np.hstack([acts[-1], labels]), input_gradient=True)
        updates = [(top, stats)]
        for i in range(len(self.layers_) - 1, -1, -1):
            rbm, a = self.layers_[i], acts[i + 1]
            delta = grad * a * (1 - a)
            nv, nh = rbm.n_features_in_, rbm.n_components
            stats = np.zeros((nv + rbm.bias_lines, nh + rbm.bias_lines), dtype=np.float32)
            stats[:nv, :nh] = acts[i].T @ delta
            stats[nv:, :nh] = delta.sum(axis=0)
            updates.append((rbm, stats))
            if i:
                grad = delta @ params[i].T
        for rbm, stats in updates:  # every gradient from the weights before this step
            self._step(rbm, stats, len(x), 0, weight_decay=False)

    # ------------------------------------------------------------------ inference
    @contextlib.contextmanager
    def _isolated(self):
        """Evaluation leaves training untouched: every generator, ledger and clock of
        every module is restored afterwards (so checkpoints resume bit for bit whatever
        was evaluated in between; the ledgers count training only)."""
        saved = []
        for mod in self._modules():
            gens = mod.random_streams()
            saved.append((mod, [g.bit_generator.state for g in gens],
                          mod.ledger_.as_dict(), mod.crossbar_.time_s))
        try:
            yield
        finally:
            for mod, states, ledger, time_s in saved:
                gens = mod.random_streams()
                for g, state in zip(gens, states):
                    g.bit_generator.state = state
                mod.ledger_.load_dict(ledger)
                mod.crossbar_.time_s = time_s

    def _check_X(self, X):
        check_is_fitted(self, "top_")
        if self.top_ is None:
            raise ValueError("the DBN has no trained top layer yet")
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        if X.min() < 0 or X.max() > 1:
            raise ValueError("X must hold values in [0, 1]")
        return X

    def predict_proba(self, X, *, inference=None, n_samples=None):
        """Class probabilities by ``"freeze"`` (exact, deterministic) or ``"sampling"``.

        Evaluation does not disturb training: random streams, ledgers and clocks are
        restored afterwards, so the same call on the same model gives the same answer.
        """
        X = self._check_X(X)
        mode = inference or self.inference
        if mode not in INFERENCE:
            raise ValueError(f"inference must be one of {INFERENCE}, got {mode!r}")
        with self._isolated():
            return self._predict_proba(X, mode, n_samples or self.n_samples)

    def _predict_proba(self, X, mode, n_samples):
        if mode == "freeze":
            h = self._up_mean(X, len(self.layers_)).astype(np.float64)
            return np.exp(self.top_.label_log_posterior(h))
        top = self.top_
        n_h = top.n_data_
        counts = np.zeros((len(X), top.n_labels))
        for _ in range(n_samples):
            h = self.layers_[0].binary_drive(X)
            for rbm in self.layers_:
                h = rbm.up(h)
            # clamp the top layer's input, start with no label, let the labels settle
            vis = np.hstack([h, np.zeros((len(X), top.n_features_in_ - n_h), np.float32)])
            for _ in range(2):
                label = top.sample_labels(top.up(vis))
                vis[:, n_h:] = top.expand_labels(label)
            counts += label
        return counts / counts.sum(axis=1, keepdims=True)

    def predict(self, X, **kwargs):
        proba = self.predict_proba(X, **kwargs)  # raises NotFittedError before fit
        return self.classes_[np.argmax(proba, axis=1)]

    def _modules(self):
        mods = list(self.layers_)
        if self.top_ is not None:
            mods.append(self.top_)
        return mods + list(self.generative_)

    def energy_report(self) -> dict:
        """Operation counts and energy summed over every crossbar and its periphery."""
        return sum_reports(*(mod.ledger_ for mod in self._modules()))

    # ------------------------------------------------------------------ persistence
    def save(self, path, *, training_state: bool = True) -> Path:
        """Write a ``.npz`` archive (arrays plus JSON metadata with SHA-256 per array).

        ``training_state=True`` keeps everything to resume training bit for bit (device
        states, counters, random streams: the checkpoints of ``neuromem dbn``).
        ``False`` keeps what prediction needs, the conductances of the recognition and
        top arrays, about a quarter of the size for Y-Flash; such a model predicts
        exactly as the saved one but cannot train further.
        """
        check_is_fitted(self, "progress_")
        path = Path(path)
        arrays = {"classes": np.asarray(self.classes_)}
        modules = {}
        named = [(f"layer{i}", r) for i, r in enumerate(self.layers_)]
        if self.top_ is not None:
            named.append(("top", self.top_))
        if training_state:
            named += [(f"gen{i}", g) for i, g in enumerate(self.generative_)]
        for name, mod in named:
            a, m = mod.get_state(training_state)
            modules[name] = m
            arrays.update({f"{name}/{k}": v for k, v in a.items()})
        meta = {
            "params": params_to_json(self.get_params()),
            "n_features_in": int(self.n_features_in_),
            "plan": self._plan(),
            "progress": self.progress_, "history": self.history_,
            "seeds": self._seeds, "rng": self._rng.bit_generator.state,
            "training_state": bool(training_state),
            "modules": modules,
        }
        write_archive(path, arrays, meta, FORMAT, FORMAT_VERSION)
        return path

    @classmethod
    def load(cls, path) -> "MemristiveDBN":
        """Read a file written by :meth:`save`; a tampered or foreign file raises ValueError."""
        path = Path(path)
        arrays, meta = read_archive(path, FORMAT, FORMAT_VERSION, what="a neuromem DBN archive")
        try:
            try:
                # the network's own checks; they pass the RBM parameters (the shared
                # ones, rbm_params, top_rbm_params) through MemristiveRBM's
                dbn = cls(**params_from_json(meta["params"]))
                if not isinstance(dbn.hidden_layer_sizes, str):  # JSON keeps lists
                    dbn.hidden_layer_sizes = tuple(dbn.hidden_layer_sizes)
                if isinstance(dbn.top_anneal_epochs, list):  # JSON keeps lists
                    dbn.top_anneal_epochs = tuple(dbn.top_anneal_epochs)
                dbn._check_params()
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}: invalid saved parameters: {exc}") from None
            dbn.n_features_in_ = meta["n_features_in"]
            dbn.classes_ = arrays["classes"]
            plan = dict(meta.get("plan") or {  # archives before "auto" settings held numbers
                "batch_size": dbn.batch_size, "n_iter": dbn.n_iter,
                "n_top_iter": dbn.n_iter if dbn.n_top_iter is None else dbn.n_top_iter,
                "discriminative_weight": dbn.discriminative_weight,
                "guess_sweeps": dbn.guess_sweeps, "paired_noise": dbn.paired_noise,
                "top_anneal_epochs": dbn.top_anneal_epochs,
                "top_rbm_params": dbn.top_rbm_params})
            # sizes set as parameters are the parameters' (archives from before the "auto"
            # sizes have no others); "auto" ones were resolved into the plan
            sizes = dbn._auto("hidden_layer_sizes", plan.get("hidden_layer_sizes"))
            n_top = dbn._auto("n_top", plan.get("n_top"))
            if (not isinstance(sizes, (list, tuple)) or not sizes
                    or any(not isinstance(v, Integral) or isinstance(v, bool) or v < 1
                           for v in (*sizes, n_top))):
                raise ValueError(f"{path}: the plan's network sizes {sizes!r}, {n_top!r} are "
                                 "not whole numbers >= 1")
            dbn.hidden_layer_sizes_, dbn.n_top_ = tuple(sizes), int(n_top)
            dbn.batch_size_ = int(plan["batch_size"])
            dbn.n_iter_, dbn.n_top_iter_ = int(plan["n_iter"]), int(plan["n_top_iter"])
            dbn.discriminative_weight_ = float(plan["discriminative_weight"])
            dbn.guess_sweeps_ = int(plan["guess_sweeps"])
            dbn.paired_noise_ = bool(plan["paired_noise"])
            dbn.top_anneal_epochs_ = tuple(plan["top_anneal_epochs"])
            dbn.top_rbm_params_ = dict(plan["top_rbm_params"] or {})
            dbn.progress_ = dict(meta["progress"])
            dbn.training_state_ = bool(meta.get("training_state", True))
            dbn.history_ = list(meta["history"])
            dbn._seeds = list(meta["seeds"])
            dbn._rng = np.random.default_rng(0)
            dbn._rng.bit_generator.state = meta["rng"]
            dbn._data_cache = None
            dbn.layers_, dbn.top_, dbn.generative_ = [], None, []
            for name, mod_meta in meta["modules"].items():
                sub = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(name + "/")}
                try:
                    if name == "top":
                        dbn.top_ = _LabelledRBM.from_state(sub, mod_meta)
                    elif name.startswith("layer"):
                        dbn.layers_.append(MemristiveRBM.from_state(sub, mod_meta))
                    else:
                        dbn.generative_.append(MemristiveRBM.from_state(sub, mod_meta))
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{path}: module {name!r}: {exc}") from None
            problem = dbn._loaded_mismatch(list(meta["modules"]),
                                           training_state=bool(meta.get("training_state", True)))
        except KeyError as exc:
            raise ValueError(f"{path}: metadata lacks {exc}") from None
        if problem:
            raise ValueError(f"{path}: {problem}")
        return dbn

    def _loaded_mismatch(self, names, *, training_state=True):
        """What in a loaded network disagrees with its parameters, or None: the progress
        against the training plan, the saved modules against the progress, and each
        module's size and hardware against what the parameters build. A prediction-only
        archive (``training_state=False``) holds no generative copies."""
        sizes, stages, progress = self.hidden_layer_sizes_, self.stages_, self.progress_
        stage, epoch = progress.get("stage"), progress.get("epoch")
        if (set(progress) != {"stage", "epoch"}
                or any(not isinstance(v, Integral) or isinstance(v, bool) for v in (stage, epoch))
                or not 0 <= stage <= len(stages)
                or not 0 <= epoch < (max(stages[stage][1], 1) if stage < len(stages) else 1)):
            return f"progress {progress!r} is not a point of the training plan {stages}"
        n_in = self.n_features_in_
        if not isinstance(n_in, Integral) or isinstance(n_in, bool) or n_in < 1:
            return f"n_features_in must be an integer >= 1, got {n_in!r}"
        classes = self.classes_
        if classes.ndim != 1 or len(classes) < 2 or not np.array_equal(np.unique(classes), classes):
            return f"classes must be at least 2 distinct sorted labels, got {classes!r}"
        if len(self._seeds) != 16 or any(not isinstance(s, Integral) for s in self._seeds):
            return f"seeds must be 16 integers, got {self._seeds!r}"
        # a stage's module is built by its first epoch; up-down fine-tuning adds the
        # generative copies of the lower layers
        begun = lambda i: stage > i or (stage == i and epoch > 0)  # noqa: E731
        expected = [f"layer{i}" for i in range(len(sizes)) if begun(i)]
        expected += ["top"] if begun(len(sizes)) else []
        if (training_state and self.finetune == "up-down" and self.n_finetune
                and begun(len(sizes) + 1)):
            expected += [f"gen{i}" for i in range(len(sizes))]
        if names != expected:
            return f"modules {names} do not match the progress {progress} (expected {expected})"
        visible = (n_in,) + sizes
        shapes = [(f"layer{i}", m, visible[i], sizes[i]) for i, m in enumerate(self.layers_)]
        if self.top_ is not None:
            n_top_visible = sizes[-1] + len(classes) * self.label_lines
            shapes.append(("top", self.top_, n_top_visible, self.n_top_))
        shapes += [(f"gen{i}", m, sizes[i], visible[i]) for i, m in enumerate(self.generative_)]
        for name, mod, n_visible, n_hidden in shapes:
            if (mod.n_features_in_, mod.n_components) != (n_visible, n_hidden):
                return (f"module {name!r} is {mod.n_features_in_} x {mod.n_components} (visible x "
                        f"hidden), the parameters make it {n_visible} x {n_hidden}")
            for key in ("device", "neuron", "update"):  # the DBN's for every module
                mine, theirs = getattr(self, key), getattr(mod, key)
                if key == "device":
                    mine, theirs = get_device(mine), get_device(theirs)
                if mine != theirs:
                    return f"module {name!r} has {key}={theirs!r}, the parameters {key}={mine!r}"
        top = self.top_
        if top is not None and (top.n_labels, top.label_lines) != (len(classes), self.label_lines):
            return (f"module 'top' has {top.n_labels} labels x {top.label_lines} lines, the "
                    f"parameters {len(classes)} classes x label_lines={self.label_lines}")
        return None
