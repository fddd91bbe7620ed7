"""What the ternary MTJ-pair classifiers share: parameter checks, the scikit-learn
methods, the output and backward passes, the batch schedule and save/load.

A subclass says which arrays it needs (:meth:`TernaryNetwork._array_shapes`), how a
batch flows through them (:meth:`TernaryNetwork._forward` for inference and
:meth:`TernaryNetwork._train_batch`) and how many operations a training sample costs.
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

from ._archive import params_from_json, params_to_json, read_archive, write_archive

ACTIVATIONS = ("ternary", "binary")
#: digital operations booked per value: the softmax error per output (exp, sum, divide,
#: subtract), the transition probability per column (a table look-up), the gate per
#: backward value, the DAC scaling per driven column
OPS_SOFTMAX, OPS_PROBABILITY, OPS_GATE, OPS_SCALE = 4, 1, 1, 1
#: digital operations per value of a normalised hidden column: in the forward pass the
#: mean and variance sums, the shift and scale and the activation and window compares;
#: in the backward pass the two group means and the projection
OPS_NORMALIZE, OPS_NORMALIZE_BACK = 6, 5
#: the column statistics kept for inference (comparator references) are fixed-point
#: numbers with this many fractional bits of one XNOR count, updated after every
#: statistics group by an exponential average of this momentum
STATISTICS_FRACTION_BITS, STATISTICS_MOMENTUM = 4, 0.1
#: the most ternary cells one weight may have (they share one sense line)
MAX_CELLS_PER_WEIGHT = 64

#: parameter limits shared by the ternary networks: name -> (kind, low, high); "int",
#: "real" (closed), "real>" (low open), "choice" (allowed values)
CONSTRAINTS = {
    "n_iter": ("int", 0, None),
    "batch_size": ("int", 1, None),
    "batch_growth": ("real", 1.0, None),
    "learning_rate": ("real>", 0.0, None),
    "learning_rate_decay": ("real>", 0.0, 1.0),
    "learning_rate_decay_after": ("int", 0, None),
    "learning_rate_batch_exponent": ("real", 0.0, None),
    "gradient_deadzone": ("real", 0.0, None),
    "threshold": ("real", 0.0, None),
    "ste_width": ("real>", 0.0, None),
    "output_scale": ("real>", 0.0, None),
    "backward_gain": ("real>", 0.0, None),
    "bias_rows": ("int", 0, None),
    "input_threshold": ("real", 0.0, 1.0),
    "d2d_delta_rel": ("real", 0.0, None),
    "max_width_s": ("real>", 0.0, None),
    "min_probability": ("real>", 0.0, 1.0),
    "adc_bits": ("int", 1, 16),
    "dac_bits": ("int", 1, 16),
    "activation": ("choice", ACTIVATIONS, None),
    "loss": ("choice", ("softmax", "hinge"), None),
    "input_coding": ("choice", ("binary", "signed", "grey"), None),
    "normalization": ("choice", (None, "batch"), None),
    "normalization_batch": ("int", 2, None),
    "calibration_samples": ("int", 0, None),
}


def calibration_indices(n_samples, n):
    """``n`` evenly spaced indices of ``n_samples`` images (the calibration set of an
    epoch: no random draw, so it does not change the training stream)."""
    return np.linspace(0, n_samples - 1, n).round().astype(np.intp)


def transition(gradient, learning_rate, deadzone=0.0):
    """GXNOR-Net's discrete step for ``gradient``: ``(direction, probability)``.

    A weight moves one level towards ``direction = -sign(gradient)`` with probability
    ``tanh(learning_rate · |gradient|)`` (0 where the gradient is 0), so its expected
    step is ``-sign(g) tanh(η |g|)`` away from the bounds. With a ``deadzone`` ``g0``
    the probability is ``tanh(η · max(|g| - g0, 0))``: gradients below ``g0`` move
    nothing.
    """
    g = np.asarray(gradient, dtype=float)
    return (-np.sign(g)).astype(np.int8), np.tanh(learning_rate * np.maximum(np.abs(g) - deadzone, 0.0))


def gate(direction, probability, pulse_probability, rng):
    """Digitally gated writes: each cell is picked with probability
    ``probability / pulse_probability`` by a random draw, and only picked cells are
    pulsed, aiming at ``pulse_probability``. The expected step is unchanged; the
    devices then switch near-certainly, where their spread hardly moves the
    probability. Returns the gated ``(direction, probability)``."""
    picked = rng.random(np.shape(probability)) * pulse_probability < probability
    return (direction * picked).astype(np.int8), np.where(picked, pulse_probability, 0.0)


def column_budget(probability, limit):
    """Scale each column's transition probabilities so that their sum, the number of
    its cells expected to switch, is at most ``limit``; returns the scaled
    probabilities and the number of cells in columns that were over the limit."""
    load = probability.sum(axis=0)
    over = load > limit
    if not over.any():
        return probability, 0
    factor = np.ones_like(load)
    factor[over] = limit / load[over]
    return probability * factor, int(np.count_nonzero(probability[:, over]))


def check_table(est, table: dict) -> None:
    """Raise ValueError naming the first parameter of ``est`` outside ``table``."""
    for name, (kind, low, high) in table.items():
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


def check_sizes(name, sizes, allow_empty=True):
    if not isinstance(sizes, (tuple, list)) or (not sizes and not allow_empty) or not all(
            isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in sizes):
        raise ValueError(f"{name} must be a tuple of integers >= 1, got {sizes!r}")


def accumulate(x, d):
    """``xᵀ d``, the digital accumulator's sums of drive times error, in double precision.

    Single precision is faster, but its sums round differently with the BLAS kernel a CPU
    selects, and a difference that flips one stochastic update changes the rest of a seeded
    run; in double precision the differences stay near 1e-16 of the sum.
    """
    return x.T.astype(np.float64) @ np.asarray(d, dtype=np.float64)


class TernaryNetwork(ClassifierMixin, BaseEstimator):
    """Base of the classifiers whose weights are ternary MTJ-pair cells (not for direct use)."""

    _constraints = CONSTRAINTS
    _format = None  # (name, version) of the saved file

    # ------------------------------------------------------------------ checks
    def check_params(self) -> None:
        """Raise ValueError naming the first parameter outside its limits (fit does too)."""
        self._check_params()

    def _check_params(self):
        check_table(self, self._constraints)
        self._check_layout()
        self.cells_per_array()  # raises on a bad cells_per_weight
        try:
            device = get_device(self.device)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"device: {exc}") from None
        if device.name != "mtj":
            raise ValueError(f"device must be an MTJ (name 'mtj' or an MTJ instance), got {device.name!r}")
        limit = self.column_write_limit
        if limit is not None and (not isinstance(limit, Real) or isinstance(limit, bool)
                                  or not math.isfinite(limit) or limit <= 0):
            raise ValueError(f"column_write_limit must be None or a number > 0, got {limit!r}")
        p0 = self.pulse_probability
        if p0 is not None and (not isinstance(p0, Real) or isinstance(p0, bool) or not 0 < p0 <= 1):
            raise ValueError(f"pulse_probability must be None or a probability in (0, 1], got {p0!r}")
        f = self.validation_fraction
        if f is not None and (not isinstance(f, Real) or isinstance(f, bool) or not 0 < f < 1):
            raise ValueError(f"validation_fraction must be None or a fraction in (0, 1), got {f!r}")
        return device

    def _check_layout(self):
        """Check the layer parameters (subclasses)."""

    def _n_arrays(self) -> int:
        """How many arrays the layer parameters make, output array included (subclasses)."""
        raise NotImplementedError

    def cells_per_array(self) -> list[int]:
        """The ternary cells (MTJ pairs) per weight of every array, input side first,
        from :attr:`cells_per_weight` (one number for all, or one per array); raises
        ValueError naming the parameter when it is neither."""
        cells, n = self.cells_per_weight, self._n_arrays()

        def fits(c):
            return isinstance(c, Integral) and not isinstance(c, bool) and 1 <= c <= MAX_CELLS_PER_WEIGHT

        if isinstance(cells, (tuple, list)):
            if len(cells) == n and all(fits(c) for c in cells):
                return [int(c) for c in cells]
        elif fits(cells):
            return [int(cells)] * n
        raise ValueError(f"cells_per_weight must be an integer in 1..{MAX_CELLS_PER_WEIGHT} or a tuple of {n} "
                         f"such integers, one per array (input side first), got {cells!r}")

    def _check_X(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=np.float64)
        if X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError("X must hold pixel values scaled to [0, 1] "
                             f"(got values in [{X.min():g}, {X.max():g}])")
        return X

    # ------------------------------------------------------------------ build
    def _array_shapes(self, n_features, n_classes) -> list[tuple[int, int]]:
        """``(rows, cols)`` of every array, bias rows included (subclasses)."""
        raise NotImplementedError

    def _build(self, n_features, n_classes, device):
        shapes = self._array_shapes(n_features, n_classes)
        rng = check_random_state(self.random_state)
        seeds = rng.randint(0, 2**31 - 1, size=len(shapes) + 1)
        self.ledger_ = EnergyLedger()
        self.periphery_ = TernaryPeriphery(adc_bits=self.adc_bits, dac_bits=self.dac_bits)
        self.cells_per_array_ = self.cells_per_array()
        self.layers_ = [
            TernaryCrossbar(rows, cols * cells, device, d2d_delta_rel=self.d2d_delta_rel,
                            max_width_s=self.max_width_s, min_probability=self.min_probability,
                            seed=int(seeds[k]), ledger=self.ledger_)
            for k, ((rows, cols), cells) in enumerate(zip(shapes, self.cells_per_array_))]
        self._rng = np.random.default_rng(int(seeds[-1]))
        self.n_samples_seen_ = 0
        self.epochs_done_ = 0
        self.validation_scores_, self.best_validation_score_, self.best_epoch_ = [], None, 0
        self.best_weights_, self.best_column_statistics_ = [], []
        self.training_counts_ = {"set_pulses": 0, "reset_pulses": 0, "switches": 0, "saturated": 0}
        # the comparator references of every hidden array (mean, standard deviation of
        # each column, fixed point); they start at the unnormalised scale, 0 ± √fan_in
        one = 2**STATISTICS_FRACTION_BITS
        self.column_statistics_ = [
            np.stack([np.zeros(cols), np.full(cols, round(one * math.sqrt(rows)))]).astype(np.int32)
            for rows, cols in shapes[:-1]]

    # ------------------------------------------------------------------ hardware passes
    def _drive(self, a):
        """``a`` with the bias rows (always at +1) appended on its last axis."""
        if not self.bias_rows:
            return a
        ones = np.ones(a.shape[:-1] + (self.bias_rows,), np.int8)
        return np.concatenate([a, ones], axis=-1)

    def _input_rows(self, X):
        if self.input_coding == "grey":
            # the periphery's signed DACs on their positive half (2**(dac_bits-1) levels);
            # one conversion per pixel, held while the array (or every patch) is read
            return self.periphery_.dac(X, 1.0, self.ledger_)
        a = (X > self.input_threshold).astype(np.int8)
        if self.input_coding == "signed":
            a = 2 * a - 1  # dark pixels drive their rows at -V_read
        return a

    def _hidden(self, k, a, training, per_image=1):
        """Read hidden array ``k`` with the drives ``a`` (``per_image`` rows of ``a`` per
        image): the column counts go to the comparators (ternary or binary activation)
        and, when training, to the window pair (the straight-through flags).

        Returns the activations, the flags (None unless training) and, for a
        normalised network in training, the record the backward pass needs
        (:meth:`_normalized_delta`)."""
        xbar = self.layers_[k]
        z = self._read(k, a)
        if self.normalization is not None:
            return self._hidden_normalized(k, z, training, per_image)
        root = math.sqrt(xbar.rows)
        per, ledger = self.periphery_, self.ledger_
        out = per.threshold(z, self.threshold * root, ledger, ternary=self.activation == "ternary")
        flags = None
        if training:
            flags = per.threshold(np.abs(z) - self.ste_width * root, 0.0, ledger, ternary=False) < 0
        return out, flags, None

    def _hidden_normalized(self, k, z, training, per_image):
        """Batch normalisation without learned scale or shift, in the periphery.

        Training: the columns are digitised and every group of ``normalization_batch``
        images gives each column's mean ``μ`` and standard deviation ``σ`` (over the
        images and, in a convolution, their positions); the activation and the window
        are decided on ``ẑ = (z - μ) / σ`` (``threshold`` and ``ste_width`` then count
        in ``σ``). Inference: the comparators compare ``z`` with references set from
        the running averages of ``μ`` and ``σ`` (:attr:`column_statistics_`), no ADC.
        """
        per, ledger = self.periphery_, self.ledger_
        ternary = self.activation == "ternary"
        if not training:
            mean, std = self.column_statistics_[k] / 2**STATISTICS_FRACTION_BITS
            if ternary:
                return per.threshold(z - mean, self.threshold * std, ledger, ternary=True), None, None
            return per.threshold(z - mean, 0.0, ledger, ternary=False), None, None
        z = per.adc(z, 4.0 * math.sqrt(self.layers_[k].rows), ledger)
        per.digital(z.size * OPS_NORMALIZE, ledger)
        bounds = [(s * per_image, e * per_image) for s, e in self._groups(len(z) // per_image)]
        zhat = np.empty(z.shape)
        stats = []
        for s, e in bounds:
            part = z[s:e]
            mean, var = part.mean(axis=0), part.var(axis=0)
            std = np.sqrt(var + 1.0)  # + one count²: a column constant over the group stays finite
            zhat[s:e] = (part - mean) / std
            stats.append((mean, std))
        if ternary:
            out = (zhat > self.threshold).astype(np.int8) - (zhat < -self.threshold).astype(np.int8)
        else:
            out = np.where(zhat >= 0, 1, -1).astype(np.int8)
        flags = np.abs(zhat) < self.ste_width
        return out, flags, (zhat, bounds, stats)

    def _normalized_delta(self, k, delta, record):
        """The error at the counts of hidden array ``k`` from the error ``delta`` at its
        normalised values (digital): per group, ``(√fan_in / σ) (δ - mean(δ) - ẑ
        mean(δ ẑ))``, the backward pass of the normalisation. The error keeps no part
        that would move a column's mean or spread, and the factor keeps the scale of
        the unnormalised network (whose counts are read in units of ``√fan_in``)."""
        if record is None:
            return delta
        zhat, bounds, stats = record
        root = math.sqrt(self.layers_[k].rows)
        out = np.empty(delta.shape)
        for (s, e), (_, std) in zip(bounds, stats):
            d, zh = delta[s:e], zhat[s:e]
            out[s:e] = (d - d.mean(axis=0) - zh * (d * zh).mean(axis=0)) * (root / std)
        self.periphery_.digital(delta.size * OPS_NORMALIZE_BACK, self.ledger_)
        return out

    def _commit_statistics(self, k, record):
        """Fold the group statistics of a training pass into the running averages of
        hidden array ``k`` (fixed point), in the order the groups came."""
        if record is None:
            return
        one = 2**STATISTICS_FRACTION_BITS
        running = self.column_statistics_[k] / one
        for mean, std in record[2]:
            running[0] += STATISTICS_MOMENTUM * (mean - running[0])
            running[1] += STATISTICS_MOMENTUM * (std - running[1])
            running = np.rint(running * one) / one
        self.column_statistics_[k] = np.rint(running * one).astype(np.int32)
        self.periphery_.digital(4 * running.size * len(record[2]), self.ledger_)

    def _group_statistics(self, X) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """``(μ, σ)`` of every statistics group of ``X``, per hidden array, from a
        training-mode read (subclasses)."""
        raise NotImplementedError

    def calibrate(self, X):
        """Set the comparator references (:attr:`column_statistics_`) from ``X``: the
        arrays are read as in training, the hidden columns digitised, and each column's
        reference is the mean of its groups' ``μ`` and ``σ`` (digital, booked). Nothing
        is written to the devices. Needs ``normalization="batch"``; ``fit`` calls it
        after every epoch on ``calibration_samples`` training images."""
        check_is_fitted(self, "layers_")
        if self.normalization is None:
            raise ValueError("calibrate sets the references of the batch normalisation: "
                             "it needs normalization='batch'")
        self._calibrate(self._check_X(X, reset=False))
        return self

    def _calibrate(self, X):
        one = 2**STATISTICS_FRACTION_BITS
        for k, groups in enumerate(self._group_statistics(X)):
            mean = np.mean([m for m, _ in groups], axis=0)
            std = np.mean([s for _, s in groups], axis=0)
            self.column_statistics_[k] = np.rint(np.stack([mean, std]) * one).astype(np.int32)
            self.periphery_.digital(2 * mean.size * (len(groups) + 1), self.ledger_)

    def _groups(self, n):
        """``(start, end)`` of the statistics groups of ``n`` images: ``normalization_batch``
        each, the last one taking the rest (so every group of a batch at least that large
        has ``normalization_batch`` images or more)."""
        starts = list(range(0, n, self.normalization_batch)) or [0]
        if len(starts) > 1 and n - starts[-1] < self.normalization_batch:
            starts.pop()
        return list(zip(starts, starts[1:] + [n]))

    def _chunks(self, n, size):
        """Slices of about ``size`` images covering ``n``; when the network normalises
        they follow the statistics groups, so the result does not depend on ``size``."""
        if self.normalization is None or n == 0:
            return [slice(s, s + size) for s in range(0, n, size)]
        groups = self._groups(n)
        per = max(1, size // self.normalization_batch)
        return [slice(groups[i][0], groups[min(i + per, len(groups)) - 1][1])
                for i in range(0, len(groups), per)]

    def _read(self, layer, a):
        """The column counts of array ``layer`` for the drives ``a``, in XNORs per weight:
        the columns of a weight's cells share one sense amplifier, which averages their
        currents."""
        xbar, k = self.layers_[layer], self.cells_per_array_[layer]
        return xbar.read(a, group=k) / (k * xbar.unit_current_a)

    def _output(self, a):
        """The output columns, digitised (counts of XNORs)."""
        z = self._read(len(self.layers_) - 1, a)
        return self.periphery_.adc(z, 4.0 * math.sqrt(self.layers_[-1].rows), self.ledger_)

    def _logits(self, counts):
        return self.output_scale * counts / math.sqrt(self.layers_[-1].rows)

    def _error(self, counts, onehot):
        """The output error ``δ`` (digital)."""
        logits = self._logits(counts)
        if self.loss == "hinge":
            t = 2 * onehot - 1
            delta = -t * np.maximum(0.0, 1.0 - t * logits)
        else:
            prob = np.exp(logits - logits.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            delta = prob - onehot
        self.periphery_.digital(delta.size * OPS_SOFTMAX, self.ledger_)
        return delta

    def _accumulate(self, x, d):
        """The digital accumulator's ``xᵀ d`` over a batch of drives ``x`` and errors
        ``d``, booked (:meth:`TernaryPeriphery.accumulate`)."""
        self.periphery_.accumulate(x, d.shape[1], self.ledger_)
        return accumulate(x, d)

    def _backward(self, layer, delta):
        """``backward_gain · Wᵀ δ`` on array ``layer``: DAC-driven columns, transposed
        read, row ADCs (the gain is that of the row sense amplifiers)."""
        xbar = self.layers_[layer]
        v_max = xbar.device.read_voltage_v
        scale = np.max(np.abs(delta), axis=1, keepdims=True)
        scale[scale == 0] = 1.0
        self.periphery_.digital(delta.size * OPS_SCALE, self.ledger_)
        volts = self.periphery_.dac(delta / scale, 1.0, self.ledger_) * v_max
        k = self.cells_per_array_[layer]  # a DAC drives the k columns of its weight
        rows = xbar.read_back(volts, group=k) / (k * xbar.unit_current_a)
        cols = xbar.cols // k
        full = min(cols, 4.0 * math.sqrt(cols))
        return self.periphery_.adc(rows, full, self.ledger_) * (scale * self.backward_gain)

    def _write(self, layer, grad, lr, n_samples):
        """Write a digitally accumulated gradient of ``n_samples`` row by row (each cell
        its own width, or, with ``pulse_probability``, the digitally picked cells at that
        aim), each column within ``column_write_limit · n_samples`` expected switches."""
        self.periphery_.digital(grad.size * OPS_PROBABILITY, self.ledger_)
        direction, p = self._per_cell(*transition(grad, lr, self.gradient_deadzone), layer)
        if self.column_write_limit is not None:
            p, scaled = column_budget(p, self.column_write_limit * n_samples)
            self.periphery_.digital(p.size + scaled, self.ledger_)  # the column sums, the rescaled cells
        if self.pulse_probability is not None:
            self.periphery_.digital(np.count_nonzero(p), self.ledger_)  # one random draw per cell
            direction, p = gate(direction, p, self.pulse_probability, self._rng)
        self._count(self.layers_[layer].update_cells(direction, p))

    def _per_cell(self, direction, p, layer):
        """A weight's transition repeated on each of its cells in array ``layer``: each
        cell moves on its own draw."""
        k = self.cells_per_array_[layer]
        if k == 1:
            return direction, p
        return np.repeat(direction, k, axis=1), np.repeat(p, k, axis=1)

    def _count(self, tally):
        for key, value in tally.items():
            self.training_counts_[key] += value

    def _forward(self, X, training):
        raise NotImplementedError

    def _batch_gradients(self, X, onehot):
        raise NotImplementedError

    def _train_batch(self, X, onehot, lr):
        raise NotImplementedError

    def gradients(self, X, y) -> list[np.ndarray]:
        """The mini-batch gradient the hardware passes compute for every array on
        ``(X, y)``, as in a batch update (the arrays are read and the reads booked;
        nothing is written)."""
        check_is_fitted(self, "layers_")
        X = self._check_X(X, reset=False)
        y = self._encode(X, y)
        return self._batch_gradients(X, np.eye(len(self.classes_))[y])

    def _window_flags(self, X) -> list[np.ndarray]:
        """The straight-through flags of every hidden array for ``X`` (subclasses)."""
        raise NotImplementedError

    def window_fractions(self, X) -> list[float]:
        """Share of the hidden pre-activations of ``X`` inside the straight-through
        window, one value per hidden array (the convolutions first).

        The error passes back only through units inside the window, so an array whose
        share falls near 0 has stopped learning, and so has every array below it. The
        arrays are read (and the reads booked); nothing is written.
        """
        check_is_fitted(self, "layers_")
        X = self._check_X(X, reset=False)
        return [float(np.mean(f)) for f in self._window_flags(X)]  # X holds >= 1 sample

    # ------------------------------------------------------------------ sklearn API
    def fit(self, X, y):
        """Build fresh arrays and train :attr:`n_iter` epochs. With
        :attr:`validation_fraction`, that share of ``(X, y)`` is held out
        (:meth:`validation_split`), scored after every epoch (:meth:`record_validation`)
        and the arrays are programmed back to the best epoch at the end
        (:meth:`restore_best`)."""
        if self.validation_fraction is None:
            X_fit, y_fit, held = X, y, None
        else:
            self._check_params()
            X_fit, X_held, y_fit, y_held = self.validation_split(X, y)
            held = (X_held, y_held)
        X_fit, y_fit = self._begin(X_fit, y_fit, reset=True)
        epochs = range(self.n_iter)
        if self.verbose:
            from tqdm import tqdm
            epochs = tqdm(epochs, desc=type(self).__name__, unit="epoch")
        for _ in epochs:
            self._epoch(X_fit, y_fit)
            if held is not None:
                self.record_validation(*held)
        if held is not None and self.n_iter:
            self.restore_best()
        return self

    # ------------------------------------------------------------------ the best epoch
    def validation_split(self, X, y):
        """``(X_fit, X_held, y_fit, y_held)``: :attr:`validation_fraction` of the samples
        held out, stratified by class, drawn from :attr:`random_state` alone (the same
        split on every call with an integer seed; the training streams are not touched)."""
        from sklearn.model_selection import train_test_split

        f = self.validation_fraction
        if f is None:
            raise ValueError("validation_split needs validation_fraction (a fraction in (0, 1))")
        X, y = np.asarray(X), np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
        classes, counts = np.unique(y, return_counts=True)
        n_held = math.ceil(f * len(y))
        if counts.min() < 2 or not len(classes) <= n_held <= len(y) - len(classes):
            raise ValueError(
                f"validation_fraction={f:g} of {len(y)} samples holds out {n_held}: a stratified "
                f"split of {len(classes)} classes needs at least one sample of every class on "
                "each side (at least two per class)")
        seed = check_random_state(self.random_state).randint(0, 2**31 - 1)
        return train_test_split(X, y, test_size=n_held, stratify=y, random_state=seed)

    def record_validation(self, X, y) -> float:
        """Score the held-out ``(X, y)`` (the reads are booked: they are part of training)
        and append it to :attr:`validation_scores_`; if it beats every earlier score,
        copy the states of every array (:meth:`TernaryCrossbar.read_states`, booked)
        and the comparator references to digital memory as the best epoch
        (:attr:`best_epoch_`). Returns the score."""
        check_is_fitted(self, "layers_")
        score = float(self.score(X, y))
        self.validation_scores_.append(score)
        if self.best_epoch_ == 0 or score > self.best_validation_score_:
            self.best_validation_score_ = score
            self.best_epoch_ = self.epochs_done_
            self.best_weights_ = [xbar.read_states() for xbar in self.layers_]
            self.best_column_statistics_ = [s.copy() for s in self.column_statistics_]
        return score

    def restore_best(self) -> dict:
        """Program every array back to the states kept by :meth:`record_validation`
        (program-and-verify, pulses and reads booked) and restore that epoch's
        comparator references. Returns the pulses and switches it took."""
        check_is_fitted(self, "layers_")
        if self.best_epoch_ == 0:
            raise ValueError("restore_best needs a best epoch: call record_validation after an epoch first")
        done = {"set_pulses": 0, "reset_pulses": 0, "switches": 0}
        for xbar, target in zip(self.layers_, self.best_weights_):
            moved = xbar.program(target)
            for key in done:
                done[key] += moved[key]
        self.column_statistics_ = [s.copy() for s in self.best_column_statistics_]
        return done

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
        return X, self._encode(X, y)

    def _encode(self, X, y):
        """``y`` as indices into ``classes_`` (one known label per sample of ``X``)."""
        y = np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y holds labels {unknown.tolist()} not in classes_")
        return np.searchsorted(self.classes_, y)

    def epoch_batch_size(self, epoch: int, n_samples: int) -> int:
        """Samples per batch in epoch ``epoch`` (0-based) of a set of ``n_samples``."""
        if epoch * math.log(self.batch_growth) >= math.log(max(n_samples, 1) / self.batch_size):
            return int(max(1, n_samples))  # (also keeps growth**epoch from overflowing)
        return int(max(1, min(round(self.batch_size * self.batch_growth ** epoch), n_samples)))

    def epoch_batches(self, epoch: int, n_samples: int) -> list[int]:
        """Sizes of the batches of epoch ``epoch`` over ``n_samples``: the epoch is cut
        into ``round(n_samples / epoch_batch_size)`` batches (at least one) of equal
        size, give or take one sample. A short remainder batch (39 images after 79
        batches of 759) would end the epoch with the noisiest update of all, and its
        statistics group of a few dozen images with the worst normalisation, just
        before the references are calibrated and the network is used."""
        n_samples = int(n_samples)
        if n_samples <= 0:
            return []
        count = max(1, round(n_samples / self.epoch_batch_size(epoch, n_samples)))
        size, extra = divmod(n_samples, count)
        return [size + 1] * extra + [size] * (count - extra)

    def epoch_learning_rate(self, epoch: int, batch: float) -> float:
        """``η`` of epoch ``epoch`` (0-based) with batches of ``batch`` samples (training
        passes the mean size of the epoch's :meth:`epoch_batches`):
        ``learning_rate · learning_rate_decay**max(0, epoch + 1 − learning_rate_decay_after)
        · (batch / batch_size)**learning_rate_batch_exponent``."""
        decays = max(0, epoch + 1 - self.learning_rate_decay_after)
        return (self.learning_rate * self.learning_rate_decay ** decays
                * (batch / self.batch_size) ** self.learning_rate_batch_exponent)

    def _epoch(self, X, y):
        sizes = self.epoch_batches(self.epochs_done_, len(X))
        # the rate follows the batches actually trained (the equal ones, not the nominal size)
        lr = self.epoch_learning_rate(self.epochs_done_, len(X) / max(len(sizes), 1))
        order = self._rng.permutation(len(X))
        eye = np.eye(len(self.classes_))
        for idx in np.split(order, np.cumsum(sizes)[:-1]) if sizes else []:
            self._train_batch(X[idx], eye[y[idx]], lr)
        n = min(len(X), self.calibration_samples)
        if self.normalization is not None and n:
            self._calibrate(X[calibration_indices(len(X), n)])
        self.n_samples_seen_ += len(X)
        self.epochs_done_ += 1

    def decision_function(self, X):
        """Digitised output counts (XNOR sums of the output columns), ``(n, classes)``."""
        check_is_fitted(self, "layers_")
        X = self._check_X(X, reset=False)
        return self._forward(X, training=False)[-1]

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
        """The weights of every array, read from the device bits: int8, the sum of each
        weight's ternary cells (:meth:`cells_per_array`; in {-1, 0, +1} for one cell);
        the last ``bias_rows`` rows are the bias cells."""
        check_is_fitted(self, "layers_")
        return [xbar.weights.reshape(xbar.rows, -1, k).sum(axis=2, dtype=np.int8)
                for xbar, k in zip(self.layers_, self.cells_per_array_)]

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Write the model (device bits, fabricated device parameters, random streams,
        ledger) to a checksummed ``.npz`` archive with JSON metadata; no pickle."""
        check_is_fitted(self, "layers_")
        arrays = {"classes": np.asarray(self.classes_)}
        layers = []
        for k, stats in enumerate(self.column_statistics_):
            arrays[f"statistics{k}"] = stats
        for k, xbar in enumerate(self.layers_):
            a, m = xbar.state_dict()
            arrays.update({f"layer{k}/{name}": v for name, v in a.items()})
            layers.append(m)
        arrays.update({f"best/layer{k}": w for k, w in enumerate(self.best_weights_)})
        arrays.update({f"best/statistics{k}": st for k, st in enumerate(self.best_column_statistics_)})
        meta = {"params": params_to_json(self.get_params()), "n_features_in": int(self.n_features_in_),
                "validation_scores": list(self.validation_scores_), "best_epoch": int(self.best_epoch_),
                "best_validation_score": self.best_validation_score_,
                "layers": layers, "rng": self._rng.bit_generator.state,
                "n_samples_seen": int(self.n_samples_seen_), "epochs_done": int(self.epochs_done_),
                "training_counts": self.training_counts_, "ledger": self.ledger_.as_dict()}
        return write_archive(path, arrays, meta, *self._format)

    def _load_best(self, arrays, meta, shapes):
        """The best epoch's scores and states from a saved file (absent in files from
        before :attr:`validation_fraction`: none kept)."""
        self.validation_scores_ = [float(v) for v in meta.get("validation_scores", [])]
        self.best_epoch_ = int(meta.get("best_epoch", 0))
        score = meta.get("best_validation_score")
        self.best_validation_score_ = None if score is None else float(score)
        if not 0 <= self.best_epoch_ <= self.epochs_done_ or (self.best_epoch_ > 0) != (score is not None):
            raise ValueError(f"best_epoch {self.best_epoch_} does not fit {self.epochs_done_} epochs "
                             f"and a best score of {score!r}")
        weights = [arrays.get(f"best/layer{k}") for k in range(len(shapes))]
        stats = [arrays.get(f"best/statistics{k}") for k in range(len(self.column_statistics_))]
        if self.best_epoch_ == 0:
            if any(w is not None for w in weights):
                raise ValueError("best-epoch states saved without a best epoch")
            return
        for k, (w, xbar) in enumerate(zip(weights, self.layers_)):
            if w is None or w.shape != xbar.shape or w.dtype != np.int8 or (
                    w.size and (w.min() < -1 or w.max() > 1)):
                raise ValueError(f"best/layer{k} must be int8 in {{-1, 0, +1}} of shape {xbar.shape}")
        for k, (st, ref) in enumerate(zip(stats, self.column_statistics_)):
            if st is None or st.shape != ref.shape or st.dtype.kind != "i":
                raise ValueError(f"best/statistics{k} must be integers of shape {ref.shape}")
        self.best_weights_ = weights
        self.best_column_statistics_ = [st.astype(np.int32) for st in stats]

    @classmethod
    def _params_from_file(cls, params: dict) -> dict:
        """Turn saved parameters back into constructor arguments (subclasses add theirs):
        JSON lists back to tuples; files from before several cells per weight: one."""
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        cells = params.setdefault("cells_per_weight", 1)
        if isinstance(cells, list):  # one number per array
            params["cells_per_weight"] = tuple(cells)
        return params

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save` (validated; a foreign or altered file raises
        ValueError naming it)."""
        arrays, meta = read_archive(path, *cls._format)
        try:
            model = cls(**cls._params_from_file(params_from_json(meta["params"])))
            device = model._check_params()
            classes = arrays["classes"]
            shapes = model._array_shapes(meta["n_features_in"], len(classes))
            if len(meta["layers"]) != len(shapes):
                raise ValueError("the number of arrays does not match the layer parameters")
            model._build(meta["n_features_in"], len(classes), device)
            for k, ((rows, cols), cells) in enumerate(zip(shapes, model.cells_per_array_)):
                shape = (rows, cols * cells)
                m = meta["layers"][k]
                if (m["rows"], m["cols"]) != shape:
                    raise ValueError(f"array {k} has shape {(m['rows'], m['cols'])}, expected {shape}")
                part = {name.split("/", 1)[1]: v for name, v in arrays.items()
                        if name.startswith(f"layer{k}/")}
                model.layers_[k] = TernaryCrossbar.from_state_dict(part, m, ledger=model.ledger_)
            for k, expected in enumerate(model.column_statistics_):
                stats = arrays.get(f"statistics{k}")
                if stats is None:
                    continue  # a file from before the statistics were saved: the start values
                if stats.shape != expected.shape or stats.dtype.kind != "i":
                    raise ValueError(f"statistics{k} must be integers of shape {expected.shape}, "
                                     f"got {stats.dtype} {stats.shape}")
                model.column_statistics_[k] = stats.astype(np.int32)
            model.classes_ = classes
            model.n_features_in_ = int(meta["n_features_in"])
            model._rng.bit_generator.state = meta["rng"]
            model.n_samples_seen_ = int(meta["n_samples_seen"])
            model.epochs_done_ = int(meta["epochs_done"])
            model.training_counts_ = {k: int(v) for k, v in meta["training_counts"].items()}
            model._load_best(arrays, meta, shapes)
            model.ledger_.load_dict(meta["ledger"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: invalid saved model: {exc}") from None
        return model
