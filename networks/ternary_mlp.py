"""A ternary multilayer perceptron trained in situ on MTJ-pair crossbars.

Every weight is a ternary cell of :class:`neuromem.ternary.TernaryCrossbar` (two MTJ
bits); there is no float copy of any weight, during training or after. One training
sample (after GXNOR-Net, Deng et al., *Neural Networks* 100, 49, 2018, on the in-situ
array of Greenberg-Toledo et al., *Semicond. Sci. Technol.* 36, 114003, 2021):

1. **forward**: the input pixels (binarised) drive the first array's rows; each
   hidden layer's column currents go to comparators that give the ternary activation
   (``+1`` above ``+θ``, ``-1`` below ``-θ``, else 0; ``θ = threshold·√fan_in`` in
   units of one XNOR) or the binary one (the sign), plus a window comparator pair
   that flags ``|z| < ste_width·√fan_in`` (the straight-through derivative). The
   output columns are digitised by ADCs.
2. **error**: ``δ = softmax(output_scale · z / √fan_in) - onehot(y)``, in digital.
3. **backward**: DACs drive each array's columns with ``δ`` (scaled to the read
   range), ADCs read its rows (the transposed read), and the window flags gate the
   result: ``δ_below = (Wᵀ δ) ⊙ flag``.
4. **update**: for every layer the gradient of cell ``(i, j)`` is ``x_i δ_j`` with
   ``x_i`` in {-1, 0, 1}: the rows are gated by ``x``, column ``j`` gets a pulse of the
   polarity of ``-sign(x_i δ_j)`` whose width makes the switching probability
   ``p_j = tanh(learning_rate · |δ_j|)`` (GXNOR-Net's transition probability with
   ``m·η`` as the learning rate). A cell moves at most one level per sample.

With ``batch_size > 1`` the forward and backward passes of a mini-batch use the
weights at its start and the samples' pulses follow in order (a delayed update);
``batch_size=1`` is the plain per-sample rule. Every read, conversion, comparator
decision, pulse and digital operation is booked in :attr:`TernaryMLP.ledger_`.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from neuromem import EnergyLedger, get_device
from neuromem.ternary import TernaryCrossbar, TernaryPeriphery

from ._archive import read_archive, write_archive
from .rbm import _jsonable_params, _params_from_json

FORMAT, FORMAT_VERSION = "neuromem-ternary-mlp", 1
ACTIVATIONS = ("ternary", "binary")
#: digital operations booked per value: the softmax error per output (exp, sum, divide,
#: subtract), the transition probability per column (a table look-up), the gate per
#: backward value, the DAC scaling per driven column
OPS_SOFTMAX, OPS_PROBABILITY, OPS_GATE, OPS_SCALE = 4, 1, 1, 1

#: one table of parameter limits: name -> (kind, low, high); "int", "real" (closed),
#: "real>" (low open), "choice" (allowed values)
_CONSTRAINTS = {
    "n_iter": ("int", 0, None),
    "batch_size": ("int", 1, None),
    "batch_growth": ("real", 1.0, None),
    "learning_rate": ("real>", 0.0, None),
    "learning_rate_decay": ("real>", 0.0, 1.0),
    "threshold": ("real", 0.0, None),
    "ste_width": ("real>", 0.0, None),
    "output_scale": ("real>", 0.0, None),
    "bias_rows": ("int", 0, None),
    "input_threshold": ("real", 0.0, 1.0),
    "d2d_delta_rel": ("real", 0.0, None),
    "max_width_s": ("real>", 0.0, None),
    "min_probability": ("real>", 0.0, 1.0),
    "adc_bits": ("int", 1, 16),
    "dac_bits": ("int", 1, 16),
    "activation": ("choice", ACTIVATIONS, None),
    "loss": ("choice", ("softmax", "hinge"), None),
    "update": ("choice", ("batch", "sample"), None),
    "input_coding": ("choice", ("binary", "signed"), None),
}


def transition(gradient, learning_rate):
    """GXNOR-Net's discrete step for ``gradient``: ``(direction, probability)``.

    A weight moves one level towards ``direction = -sign(gradient)`` with probability
    ``tanh(learning_rate · |gradient|)`` (0 where the gradient is 0), so its expected
    step is ``-sign(g) tanh(η |g|)`` away from the bounds.
    """
    g = np.asarray(gradient, dtype=float)
    return (-np.sign(g)).astype(np.int8), np.tanh(learning_rate * np.abs(g))


def _check_table(est):
    for name, (kind, low, high) in _CONSTRAINTS.items():
        value = getattr(est, name)
        if kind == "choice":
            if value not in low:
                raise ValueError(f"{name} must be one of {list(low)}, got {value!r}")
        elif kind == "int":
            if not isinstance(value, Integral) or isinstance(value, bool) or value < low or (
                    high is not None and value > high):
                span = f">= {low}" if high is None else f"in {low}..{high}"
                raise ValueError(f"{name} must be an integer {span}, got {value!r}")
        else:
            if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            too_low = value <= low if kind == "real>" else value < low
            if too_low or (high is not None and value > high):
                left = "(" if kind == "real>" else "["
                raise ValueError(f"{name} must lie in {left}{low}, {'inf)' if high is None else f'{high}]'}"
                                 f", got {value!r}")


class TernaryMLP(ClassifierMixin, BaseEstimator):
    """Classifier whose weights are ternary MTJ-pair cells, trained by stochastic pulses.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Hidden layers (``()``: a single ternary layer from the inputs to the outputs).
    activation : {"ternary", "binary"}
        Hidden activations: ``{-1, 0, +1}`` (two comparators) or ``{-1, +1}`` (one).
    n_iter : int
        Training epochs of :meth:`fit`.
    batch_size : int
        Samples whose forward and backward passes share the weights at the batch's
        start (their pulses follow in order); 1 = the per-sample rule.
    batch_growth : float
        The batch grows by this factor after every epoch (epoch ``e`` uses
        ``round(batch_size · batch_growth**e)`` samples, at most the whole set). A cell
        moves up with probability ``∝ g⁺`` and down ``∝ g⁻`` whatever ``η``, so with a
        constant batch the noise of the batch gradient sets how sharply the weights
        settle and a smaller ``η`` only slows them; a larger batch averages the noise
        away (the way decaying the rate anneals float SGD).
    learning_rate : float
        ``η`` of the transition probability ``tanh(η |x_i δ_j|)``.
    learning_rate_decay : float
        ``η`` is multiplied by this after every epoch.
    threshold : float
        Ternary activation threshold in units of ``√fan_in`` XNOR counts.
    ste_width : float
        Half-width of the straight-through window, in units of ``√fan_in``.
    output_scale : float
        Softmax inverse temperature in units of ``1/√fan_in``.
    bias_rows : int
        Rows per array driven at ``+1`` for every sample (their ternary cells act as a
        bias of ``-bias_rows .. +bias_rows``).
    input_threshold : float
        Pixels (scaled to [0, 1]) above this drive their row (binary input, no DAC).
    input_coding : {"binary", "signed"}
        Pixels at or below ``input_threshold`` leave their row off (``"binary"``: 0/1)
        or drive it at ``-V_read`` (``"signed"``: -1/+1).
    device : str or MTJ
        The MTJ parameters, e.g. ``MTJ(d2d_r_rel=0.1)`` for 10 % resistance spread.
    d2d_delta_rel : float
        Device-to-device spread (lognormal sigma) of the MTJs' thermal stability.
    max_width_s, min_probability :
        Pulse-width generator: longest pulse; aims below this probability give none.
    adc_bits, dac_bits : int
        Converter resolution.
    loss : {"softmax", "hinge"}
        Output error: softmax cross-entropy, or the squared hinge (GXNOR-Net's).
    update : {"batch", "sample"}
        ``"batch"``: the mini-batch gradient, accumulated in digital, written row by row
        (each cell with its own width); ``"sample"``: the in-array rule of each sample
        (rows gated by the input, columns timed by the error; no digital products).
    verbose : bool
        Progress bar over the epochs of :meth:`fit`.
    random_state : int or None
        Seeds fabrication, initial states, shuffling and the switching noise.
    """

    def __init__(self, hidden_layer_sizes=(1024, 1024, 1024), *, activation="ternary", n_iter=8,
                 batch_size=100, batch_growth=2.0, learning_rate=0.3, learning_rate_decay=1.0, threshold=0.15,
                 ste_width=0.5, output_scale=4.0, bias_rows=8, input_threshold=0.5,
                 device="mtj", d2d_delta_rel=0.0, max_width_s=20e-9, min_probability=1e-3,
                 adc_bits=8, dac_bits=8, loss="softmax", update="batch", input_coding="binary",
                 verbose=False, random_state=None):
        self.input_coding = input_coding
        self.loss = loss
        self.update = update
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.batch_growth = batch_growth
        self.learning_rate = learning_rate
        self.learning_rate_decay = learning_rate_decay
        self.threshold = threshold
        self.ste_width = ste_width
        self.output_scale = output_scale
        self.bias_rows = bias_rows
        self.input_threshold = input_threshold
        self.device = device
        self.d2d_delta_rel = d2d_delta_rel
        self.max_width_s = max_width_s
        self.min_probability = min_probability
        self.adc_bits = adc_bits
        self.dac_bits = dac_bits
        self.verbose = verbose
        self.random_state = random_state

    # ------------------------------------------------------------------ checks
    def check_params(self) -> None:
        """Raise ValueError naming the first parameter outside its limits (fit does too)."""
        self._check_params()

    def _check_params(self):
        _check_table(self)
        sizes = self.hidden_layer_sizes
        if not isinstance(sizes, (tuple, list)) or not all(
                isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be a tuple of integers >= 1, got {sizes!r}")
        try:
            device = get_device(self.device)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"device: {exc}") from None
        if device.name != "mtj":
            raise ValueError(f"device must be an MTJ (name 'mtj' or an MTJ instance), got {device.name!r}")
        return device

    def _check_X(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=np.float64)
        if X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError("X must hold pixel values scaled to [0, 1] "
                             f"(got values in [{X.min():g}, {X.max():g}])")
        return X

    # ------------------------------------------------------------------ build
    def _build(self, n_features, n_classes, device):
        rng = check_random_state(self.random_state)
        seeds = rng.randint(0, 2**31 - 1, size=len(self.hidden_layer_sizes) + 2)
        self.ledger_ = EnergyLedger()
        self.periphery_ = TernaryPeriphery(adc_bits=self.adc_bits, dac_bits=self.dac_bits)
        sizes = [n_features, *self.hidden_layer_sizes, n_classes]
        self.layers_ = [
            TernaryCrossbar(n_in + self.bias_rows, n_out, device, d2d_delta_rel=self.d2d_delta_rel,
                            max_width_s=self.max_width_s, min_probability=self.min_probability,
                            seed=int(seeds[k]), ledger=self.ledger_)
            for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self._rng = np.random.default_rng(int(seeds[-1]))
        self.n_samples_seen_ = 0
        self.epochs_done_ = 0
        self.training_counts_ = {"set_pulses": 0, "reset_pulses": 0, "switches": 0, "saturated": 0}

    # ------------------------------------------------------------------ hardware passes
    def _drive(self, a):
        if not self.bias_rows:
            return a
        return np.concatenate([a, np.ones((a.shape[0], self.bias_rows), np.int8)], axis=1)

    def _forward(self, X, training):
        """Activations per layer (the array drives, bias rows included), the STE flags of
        the hidden layers and the digitised output counts."""
        a = (X > self.input_threshold).astype(np.int8)
        if self.input_coding == "signed":
            a = 2 * a - 1  # dark pixels drive their rows at -V_read
        a = self._drive(a)
        drives, flags = [a], []
        per, ledger = self.periphery_, self.ledger_
        for k, xbar in enumerate(self.layers_):
            z = xbar.read(a) / xbar.unit_current_a
            root = math.sqrt(xbar.rows)
            if k == len(self.layers_) - 1:
                return drives, flags, per.adc(z, 4.0 * root, ledger)
            a = per.threshold(z, self.threshold * root, ledger, ternary=self.activation == "ternary")
            if training:
                flags.append(per.threshold(np.abs(z) - self.ste_width * root, 0.0, ledger,
                                           ternary=False) < 0)
            a = self._drive(a)
            drives.append(a)
        raise AssertionError("unreachable")

    def _logits(self, counts):
        return self.output_scale * counts / math.sqrt(self.layers_[-1].rows)

    def _backward(self, xbar, delta):
        """``Wᵀ δ`` on the array: DAC-driven columns, transposed read, row ADCs."""
        v_max = xbar.device.read_voltage_v
        scale = np.max(np.abs(delta), axis=1, keepdims=True)
        scale[scale == 0] = 1.0
        self.periphery_.digital(delta.size * OPS_SCALE, self.ledger_)
        volts = self.periphery_.dac(delta / scale, 1.0, self.ledger_) * v_max
        rows = xbar.read_back(volts) / (xbar.unit_current_a / v_max)
        full = min(xbar.cols, 4.0 * math.sqrt(xbar.cols))
        return self.periphery_.adc(rows, full, self.ledger_) * scale

    def _train_batch(self, X, onehot, lr):
        drives, flags, counts = self._forward(X, training=True)
        logits = self._logits(counts)
        if self.loss == "hinge":
            t = 2 * onehot - 1
            delta = -t * np.maximum(0.0, 1.0 - t * logits)
        else:
            prob = np.exp(logits - logits.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            delta = prob - onehot
        self.periphery_.digital(delta.size * OPS_SOFTMAX, self.ledger_)
        deltas = [None] * len(self.layers_)
        deltas[-1] = delta
        for k in range(len(self.layers_) - 1, 0, -1):
            back = self._backward(self.layers_[k], deltas[k])
            n_hidden = self.layers_[k].rows - self.bias_rows
            deltas[k - 1] = back[:, :n_hidden] * flags[k - 1]
            self.periphery_.digital(deltas[k - 1].size * OPS_GATE, self.ledger_)
        for xbar, x, d in zip(self.layers_, drives, deltas):
            if self.update == "sample":
                direction, p = transition(d, lr)  # |x_i| = 1 on every driven row
                self.periphery_.digital(d.size * OPS_PROBABILITY, self.ledger_)
                out = xbar.update(x, direction, p)
            else:  # the mini-batch gradient, accumulated in digital, then row by row
                grad = x.T.astype(np.float64) @ d / len(d)
                self.periphery_.digital(x.shape[0] * grad.size + grad.size * OPS_PROBABILITY,
                                        self.ledger_)
                direction, p = transition(grad, lr)
                out = xbar.update_cells(direction, p)
            for key, value in out.items():
                self.training_counts_[key] += value

    # ------------------------------------------------------------------ sklearn API
    def fit(self, X, y):
        """Build fresh arrays and train :attr:`n_iter` epochs."""
        X, y = self._begin(X, y, reset=True)
        epochs = range(self.n_iter)
        if self.verbose:
            from tqdm import tqdm
            epochs = tqdm(epochs, desc="TernaryMLP", unit="epoch")
        for _ in epochs:
            self._epoch(X, y)
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``X`` (building the arrays on the first call; ``classes``
        must then list every label)."""
        first = not hasattr(self, "layers_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        X, y = self._begin(X, y, reset=first, classes=classes)
        self._epoch(X, y)
        return self

    def _begin(self, X, y, reset, classes=None):
        device = self._check_params()
        X = self._check_X(X, reset)
        X, y = np.asarray(X), np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
        check_classification_targets(y)
        if reset:
            self.classes_ = np.unique(y if classes is None else np.asarray(classes))
            if len(self.classes_) < 2:
                raise ValueError("y must hold at least two classes")
            self._build(X.shape[1], len(self.classes_), device)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y holds labels {unknown.tolist()} not in classes_")
        return X, np.searchsorted(self.classes_, y)

    def epoch_batch_size(self, epoch: int, n_samples: int) -> int:
        """Samples per batch in epoch ``epoch`` (0-based) of a set of ``n_samples``."""
        if epoch * math.log(self.batch_growth) >= math.log(max(n_samples, 1) / self.batch_size):
            return int(max(1, n_samples))  # (also keeps growth**epoch from overflowing)
        return int(max(1, min(round(self.batch_size * self.batch_growth ** epoch), n_samples)))

    def _epoch(self, X, y):
        lr = self.learning_rate * self.learning_rate_decay ** self.epochs_done_
        batch = self.epoch_batch_size(self.epochs_done_, len(X))
        order = self._rng.permutation(len(X))
        eye = np.eye(len(self.classes_))
        for start in range(0, len(X), batch):
            idx = order[start:start + batch]
            self._train_batch(X[idx], eye[y[idx]], lr)
        self.n_samples_seen_ += len(X)
        self.epochs_done_ += 1

    def decision_function(self, X):
        """Digitised output counts (XNOR sums of the output columns), ``(n, classes)``."""
        check_is_fitted(self, "layers_")
        X = self._check_X(X, reset=False)
        return self._forward(X, training=False)[2]

    def predict_proba(self, X):
        logits = self._logits(self.decision_function(X))
        prob = np.exp(logits - logits.max(axis=1, keepdims=True))
        return prob / prob.sum(axis=1, keepdims=True)

    def predict(self, X):
        check_is_fitted(self, "layers_")
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    # ------------------------------------------------------------------ reports
    @property
    def coefs_(self) -> list[np.ndarray]:
        """The weights of every array (int8 in {-1, 0, +1}; the last ``bias_rows`` rows
        are the bias cells), read from the device bits."""
        check_is_fitted(self, "layers_")
        return [xbar.weights for xbar in self.layers_]

    def training_operations(self) -> dict:
        """Operations of training per sample, counted as a digital accelerator would:
        2 per multiply-accumulate of the forward and backward passes, 2 per weight of
        the update (a multiply and an add)."""
        check_is_fitted(self, "layers_")
        cells = [x.rows * x.cols for x in self.layers_]
        forward, backward, update = sum(cells), sum(cells[1:]), sum(cells)
        return {"forward_macs": forward, "backward_macs": backward, "update_cells": update,
                "ops_per_sample": 2 * (forward + backward + update)}

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Write the model (device bits, fabricated device parameters, random streams,
        ledger) to a checksummed ``.npz`` archive with JSON metadata; no pickle."""
        check_is_fitted(self, "layers_")
        arrays = {"classes": np.asarray(self.classes_)}
        layers = []
        for k, xbar in enumerate(self.layers_):
            a, m = xbar.state_dict()
            arrays.update({f"layer{k}/{name}": v for name, v in a.items()})
            layers.append(m)
        meta = {"params": _jsonable_params(self.get_params()), "n_features_in": int(self.n_features_in_),
                "layers": layers, "rng": self._rng.bit_generator.state,
                "n_samples_seen": int(self.n_samples_seen_), "epochs_done": int(self.epochs_done_),
                "training_counts": self.training_counts_, "ledger": self.ledger_.as_dict()}
        return write_archive(path, arrays, meta, FORMAT, FORMAT_VERSION)

    @classmethod
    def load(cls, path) -> "TernaryMLP":
        """Read a file written by :meth:`save` (validated; a foreign or altered file raises
        ValueError naming it)."""
        arrays, meta = read_archive(path, FORMAT, FORMAT_VERSION)
        try:
            params = _params_from_json(meta["params"])
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
            params.setdefault("batch_growth", 1.0)  # files from before it existed: constant batch
            model = cls(**params)
            device = model._check_params()
            classes = arrays["classes"]
            sizes = [meta["n_features_in"], *model.hidden_layer_sizes, len(classes)]
            if len(meta["layers"]) != len(sizes) - 1:
                raise ValueError("the number of arrays does not match hidden_layer_sizes")
            model._build(sizes[0], len(classes), device)
            for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                m = meta["layers"][k]
                if (m["rows"], m["cols"]) != (n_in + model.bias_rows, n_out):
                    raise ValueError(f"array {k} has shape {(m['rows'], m['cols'])}, "
                                     f"expected {(n_in + model.bias_rows, n_out)}")
                part = {name.split("/", 1)[1]: v for name, v in arrays.items()
                        if name.startswith(f"layer{k}/")}
                model.layers_[k] = TernaryCrossbar.from_state_dict(part, m, ledger=model.ledger_)
            model.classes_ = classes
            model.n_features_in_ = int(meta["n_features_in"])
            model._rng.bit_generator.state = meta["rng"]
            model.n_samples_seen_ = int(meta["n_samples_seen"])
            model.epochs_done_ = int(meta["epochs_done"])
            model.training_counts_ = {k: int(v) for k, v in meta["training_counts"].items()}
            model.ledger_.load_dict(meta["ledger"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: invalid saved model: {exc}") from None
        return model
