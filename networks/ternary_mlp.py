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
   result: ``δ_below = backward_gain · (Wᵀ δ) ⊙ flag``.
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

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._ternary_base import (ACTIVATIONS, CONSTRAINTS, OPS_GATE, OPS_PROBABILITY, TernaryNetwork,
                            check_sizes, transition)

__all__ = ["ACTIVATIONS", "FORMAT", "FORMAT_VERSION", "TernaryMLP", "transition"]

FORMAT, FORMAT_VERSION = "neuromem-ternary-mlp", 1


class TernaryMLP(TernaryNetwork):
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
        ``round(batch_size · batch_growth**e)`` samples, at most the whole set; the
        epoch is cut into batches of equal size near that, so no short remainder batch
        ends it: :meth:`epoch_batches`). A cell
        moves up with probability ``∝ g⁺`` and down ``∝ g⁻`` whatever ``η``, so with a
        constant batch the noise of the batch gradient sets how sharply the weights
        settle and a smaller ``η`` only slows them; a larger batch averages the noise
        away (the way decaying the rate anneals float SGD).
    learning_rate : float
        ``η`` of the transition probability ``tanh(η |x_i δ_j|)``.
    learning_rate_decay : float
        ``η`` is multiplied by this after every epoch once the decay has begun.
    learning_rate_decay_after : int
        Epochs trained at the full ``η`` before the decay begins: epoch ``e`` (from 0)
        trains at ``η · learning_rate_decay**max(0, e + 1 − learning_rate_decay_after)``
        (1: decay from the second epoch on; 8: the ninth epoch is the first decayed).
    learning_rate_batch_exponent : float
        ``η`` grows with the batch as ``(batch / batch_size)**exponent``. A cell's
        expected drift per epoch is ``η · mean(g)`` per update times the updates, so a
        batch that doubles with a constant ``η`` halves the drift every epoch and the
        walk stops before it settles; 1 keeps the drift per epoch (the linear scaling
        rule of float SGD), 0.5 keeps the noise moves per update (square-root scaling).
        0: a constant ``η``. A larger ``η`` moves many cells of a column together, so
        without ``normalization`` the layer leaves its window; with it, on MNIST, the
        extra moves cost more accuracy than the drift gained.
    gradient_deadzone : float
        Gradients smaller than this move nothing: the transition probability is
        ``tanh(η · max(|g| - gradient_deadzone, 0))``.
    cells_per_weight : int or tuple of int
        Ternary cells (MTJ pairs) per weight, in neighbouring columns that share a sense
        amplifier: the weight is their mean (``2k + 1`` levels). One transition
        probability per weight, an independent draw per cell, so the expected step is
        unchanged and its variance falls by ``k``; ``k`` times the cells, reads and
        pulses. A tuple gives each array its own ``k`` (input side first, the output
        array last; :meth:`cells_per_array`).
    threshold : float
        Ternary activation threshold in units of ``√fan_in`` XNOR counts (with
        ``normalization``: of the column's standard deviation).
    ste_width : float
        Half-width of the straight-through window, in the units of ``threshold``.
    output_scale : float
        Softmax inverse temperature in units of ``1/√fan_in``.
    backward_gain : float
        The error handed to the layer below is ``backward_gain · Wᵀ δ`` (the gain of the
        row sense amplifiers of the transposed read), so array ``k`` layers below the
        output learns at ``η · backward_gain**k``. A backward sum over many columns is
        larger than the error it came from; without this gain (1.0) the deep layers
        of 784-1024-1024-1024-10 switch every cell in the first epoch and never learn.
    bias_rows : int
        Rows per array driven at ``+1`` for every sample (their ternary cells act as a
        bias of ``-bias_rows .. +bias_rows``).
    input_threshold : float
        Pixels (scaled to [0, 1]) above this drive their row (binary input, no DAC).
    input_coding : {"binary", "signed", "grey"}
        Pixels at or below ``input_threshold`` leave their row off (``"binary"``: 0/1)
        or drive it at ``-V_read`` (``"signed"``: -1/+1); ``"grey"``: a DAC of
        ``dac_bits`` drives each row at the pixel's level (``x · V_read``, the positive
        half of the signed DAC: ``2**(dac_bits-1)`` levels; booked), so the first array
        sums ``x_i w_ij`` and its gradient is ``x_i δ_j`` (``update="batch"`` only).
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
    pulse_probability : float or None
        None: the width of each cell's pulse sets its switching probability (the MTJ is
        the random source, so the spread of its resistance spreads the rate). A number
        ``p0``: a digital random draw picks each cell with probability ``p / p0`` and the
        picked cells get a pulse aimed at ``p0``; near 1 (0.99) the devices switch almost
        surely, so their spread hardly changes the rate.
    column_write_limit : float or None
        The most cells of one column expected to switch in an update, per sample of the
        batch: where a column's transition probabilities sum beyond
        ``column_write_limit · batch`` the controller scales them down (a digital add
        per cell and a multiply per rescaled cell, booked). It bounds how far one update
        can move a unit's pre-activation; None: no limit.
    normalization : {None, "batch"}
        None: the comparators decide at fixed levels (``threshold`` and ``ste_width``
        in units of ``√fan_in``). ``"batch"``: batch normalisation without a learned
        scale or shift, in the periphery. In training the hidden columns are digitised
        and each group of ``normalization_batch`` images sets every column's mean
        ``μ`` and standard deviation ``σ``; the activation and the window are decided
        on ``(z - μ) / σ`` (so ``threshold`` and ``ste_width`` count in ``σ``) and the
        error passes back through the normalisation. The running averages of ``μ``
        and ``σ`` (:attr:`column_statistics_`, fixed point) set the comparator
        references for inference, where no ADC reads the hidden columns. A layer then
        cannot drift out of its window: its mean and spread are taken out.
    normalization_batch : int
        Images per group of the batch statistics (a convolution's statistics also run
        over the positions).
    calibration_samples : int
        With ``normalization``: after every epoch, :meth:`calibrate` sets the
        comparator references from this many training images of the epoch, evenly
        spaced (all of them if fewer; 0: keep the running averages). The running
        averages lag the weights and follow the last few groups only; the calibration
        pass reads the arrays with the final weights and writes nothing.
    validation_fraction : float or None
        None: :meth:`fit` trains on all of ``(X, y)`` and keeps the last epoch. A
        fraction ``f``: :meth:`fit` holds out ``f`` of the samples (stratified), scores
        them after every epoch and at the end programs the arrays back to the epoch
        that scored best (the states copied to digital memory at that epoch; the
        copies, the scoring reads and the program-and-verify pulses are booked).
        :meth:`partial_fit` ignores it (:meth:`record_validation` and
        :meth:`restore_best` do the same epoch by epoch). The kept epoch is
        ``best_epoch_`` with ``best_validation_score_``; its copies are
        ``best_weights_`` (int8 states per array) and ``best_column_statistics_``.
    verbose : bool
        Progress bar over the epochs of :meth:`fit`.
    random_state : int or None
        Seeds fabrication, initial states, shuffling and the switching noise.

    The defaults normalise the hidden columns (``normalization="batch"``, ``threshold``
    0.25 and ``ste_width`` 0.8 in units of each column's ``σ``) and average four cells
    per weight; on 15 000 MNIST training images scored on 5 000 others they reach
    94.8 % where fixed levels and one cell (``normalization=None, threshold=0.15,
    ste_width=0.5, cells_per_weight=1``, the defaults before) reach 90.3 %, and 95.6 %
    on the 10 000 images held out of all 60 000 (91.2 % with fixed levels).
    """

    _constraints = {**CONSTRAINTS, "update": ("choice", ("batch", "sample"), None)}
    _format = (FORMAT, FORMAT_VERSION)

    def __init__(self, hidden_layer_sizes=(1024, 1024, 1024), *, activation="ternary", n_iter=8,
                 batch_size=100, batch_growth=2.0, learning_rate=0.3, learning_rate_decay=1.0,
                 learning_rate_decay_after=1,
                 learning_rate_batch_exponent=0.0, gradient_deadzone=0.0, cells_per_weight=4,
                 threshold=0.25, ste_width=0.8, output_scale=4.0, backward_gain=0.2, bias_rows=8,
                 input_threshold=0.5,
                 device="mtj", d2d_delta_rel=0.0, max_width_s=20e-9, min_probability=1e-3,
                 adc_bits=8, dac_bits=8, loss="softmax", update="batch", input_coding="binary",
                 pulse_probability=None, column_write_limit=None, normalization="batch",
                 normalization_batch=100, calibration_samples=10000, validation_fraction=None,
                 verbose=False, random_state=None):
        self.normalization = normalization
        self.normalization_batch = normalization_batch
        self.calibration_samples = calibration_samples
        self.validation_fraction = validation_fraction
        self.input_coding = input_coding
        self.loss = loss
        self.update = update
        self.pulse_probability = pulse_probability
        self.column_write_limit = column_write_limit
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.batch_growth = batch_growth
        self.learning_rate = learning_rate
        self.learning_rate_decay = learning_rate_decay
        self.learning_rate_decay_after = learning_rate_decay_after
        self.learning_rate_batch_exponent = learning_rate_batch_exponent
        self.gradient_deadzone = gradient_deadzone
        self.cells_per_weight = cells_per_weight
        self.threshold = threshold
        self.ste_width = ste_width
        self.output_scale = output_scale
        self.backward_gain = backward_gain
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

    def _check_layout(self):
        check_sizes("hidden_layer_sizes", self.hidden_layer_sizes)
        if self.update == "sample" and self.input_coding == "grey":
            raise ValueError("input_coding='grey' needs update='batch': update='sample' gates "
                             "the rows by the sign of a ternary input")
        for name in ("pulse_probability", "column_write_limit"):
            if self.update == "sample" and getattr(self, name) is not None:
                raise ValueError(f"{name} acts on the row-by-row writes of update='batch'; "
                                 "update='sample' times its pulses in the array")

    def _n_arrays(self):
        return len(self.hidden_layer_sizes) + 1

    def _array_shapes(self, n_features, n_classes):
        sizes = [n_features, *self.hidden_layer_sizes, n_classes]
        return [(n_in + self.bias_rows, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])]

    @classmethod
    def _params_from_file(cls, params):
        params = super()._params_from_file(params)
        params.setdefault("batch_growth", 1.0)  # files from before it existed: constant batch
        params.setdefault("backward_gain", 0.2)  # and they scaled the backward by V_read
        params.setdefault("normalization", None)  # fixed comparator levels
        params.setdefault("calibration_samples", 0)  # and kept the running averages
        return params

    # ------------------------------------------------------------------ passes
    def _forward(self, X, training):
        """Activations per layer (the array drives, bias rows included), the STE flags of
        the hidden layers, their normalisation records and the digitised output counts."""
        a = self._drive(self._input_rows(X))
        drives, flags, records = [a], [], []
        for k in range(len(self.layers_) - 1):
            a, flag, record = self._hidden(k, a, training)
            flags.append(flag)
            records.append(record)
            a = self._drive(a)
            drives.append(a)
        return drives, flags, records, self._output(a)

    def _window_flags(self, X):
        return self._forward(X, training=True)[1]

    def _group_statistics(self, X):
        groups = [[] for _ in self.layers_[:-1]]
        for c in self._chunks(len(X), 1000):
            for k, record in enumerate(self._forward(X[c], training=True)[2]):
                groups[k] += record[2]
        return groups

    def _deltas(self, X, onehot, commit=False):
        """The drives and the errors ``δ`` of every array for one batch (``commit``: fold
        the batch's column statistics into the running ones)."""
        drives, flags, records, counts = self._forward(X, training=True)
        if commit:
            for k, record in enumerate(records):
                self._commit_statistics(k, record)
        deltas = [None] * len(self.layers_)
        deltas[-1] = self._error(counts, onehot)
        for k in range(len(self.layers_) - 1, 0, -1):
            back = self._backward(k, deltas[k])
            n_hidden = self.layers_[k].rows - self.bias_rows
            deltas[k - 1] = self._normalized_delta(k - 1, back[:, :n_hidden] * flags[k - 1], records[k - 1])
            self.periphery_.digital(deltas[k - 1].size * OPS_GATE, self.ledger_)
        return drives, deltas

    def _batch_gradients(self, X, onehot):
        drives, deltas = self._deltas(X, onehot)
        return [self._accumulate(x, d) / len(d) for x, d in zip(drives, deltas)]

    def _train_batch(self, X, onehot, lr):
        drives, deltas = self._deltas(X, onehot, commit=True)
        for layer, (xbar, x, d) in enumerate(zip(self.layers_, drives, deltas)):
            if self.update == "sample":
                # |x_i| = 1 on every driven row
                direction, p = self._per_cell(*transition(d, lr, self.gradient_deadzone), layer)
                self.periphery_.digital(d.size * OPS_PROBABILITY, self.ledger_)
                self._count(xbar.update(x, direction, p))
            else:  # the mini-batch gradient, accumulated in digital, then row by row
                self._write(layer, self._accumulate(x, d) / len(d), lr, len(X))

    # ------------------------------------------------------------------ reports
    def training_operations(self) -> dict:
        """Operations of training per sample, counted as a digital accelerator would:
        2 per multiply-accumulate of the forward and backward passes, 2 per weight of
        the update (a multiply and an add)."""
        check_is_fitted(self, "layers_")
        cells = [x.rows * x.cols // k for x, k in zip(self.layers_, self.cells_per_array_)]
        forward, backward, update = sum(cells), sum(cells[1:]), sum(cells)
        return {"forward_macs": forward, "backward_macs": backward, "update_cells": update,
                "ops_per_sample": 2 * (forward + backward + update)}
