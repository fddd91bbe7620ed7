"""A ternary convolutional network trained in situ on MTJ-pair crossbars.

The convolution kernels are ternary cells of :class:`neuromem.ternary.TernaryCrossbar`
like the dense layers: the kernel of output channel ``c`` is column ``c`` of an array
whose ``K·K·C_in`` rows take one input patch (the unrolled mapping of kernels onto a
crossbar), so an image is convolved by reading the array once per output position.
The layout after GXNOR-Net (Deng et al., *Neural Networks* 100, 49, 2018):
``[conv K×K, C] → comparators → 2×2 max pool`` repeated, then dense layers as in
:class:`networks.TernaryMLP`.

One training batch:

1. **forward**: each patch of binarised pixels (or of the ternary activations below)
   drives the rows; the column counts go to the comparators (ternary activation and
   the straight-through window, as in the MLP); the pool takes the largest ternary
   value of each ``pool_size × pool_size`` window (digital) and remembers which
   position gave it.
2. **backward**: dense layers as in the MLP; the error reaching a pooled value goes
   back to the position that gave it, gated by its window flag; for the layer below,
   the transposed read of every position's error (DAC columns, row ADCs) is summed
   over the patches that share an input (digital adds).
3. **update**: the gradient of a kernel cell is the mean over samples and positions of
   ``x δ`` (digital accumulation), written row by row with GXNOR-Net's transition
   probability ``tanh(η |g|)`` through the pulse width, like the MLP's batch update.

Large batches are processed in chunks of ``chunk_size`` images (the weights do not
change within a batch, so this only bounds the memory). Every read, conversion,
comparator decision, pulse and digital operation is booked in :attr:`ledger_`.
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.utils.validation import check_is_fitted

from ._ternary_base import CONSTRAINTS, OPS_GATE, TernaryNetwork, check_sizes

__all__ = ["FORMAT", "FORMAT_VERSION", "TernaryCNN"]

FORMAT, FORMAT_VERSION = "neuromem-ternary-cnn", 1


def patches(a, kernel):
    """Every ``kernel × kernel`` patch of ``a`` ``(n, H, W, C)``: ``(n, h, w, K·K·C)``
    with ``h = H - K + 1`` (valid convolution; the patch is ordered row, column, channel)."""
    view = sliding_window_view(a, (kernel, kernel), axis=(1, 2))  # n, h, w, C, K, K
    n, h, w = view.shape[:3]
    return view.transpose(0, 1, 2, 4, 5, 3).reshape(n, h, w, -1)


def unpatch(d, kernel, channels):
    """Adjoint of :func:`patches`: sum every patch's values back onto the input grid."""
    n, h, w, _ = d.shape
    d = d.reshape(n, h, w, kernel, kernel, channels)
    out = np.zeros((n, h + kernel - 1, w + kernel - 1, channels), dtype=d.dtype)
    for i in range(kernel):
        for j in range(kernel):
            out[:, i:i + h, j:j + w] += d[:, :, :, i, j]
    return out


def shift_images(images, shifts):
    """Translate each image of ``images`` ``(n, H, W)`` by its whole-pixel ``shifts[i] =
    (down, right)`` (negative: up, left); pixels moved in from outside the image are 0."""
    images = np.asarray(images)
    shifts = np.asarray(shifts, dtype=np.int64).reshape(-1, 2)
    if len(shifts) != len(images):
        raise ValueError(f"shifts holds {len(shifts)} pairs for {len(images)} images")
    out = np.zeros_like(images)
    H, W = images.shape[1:3]
    for dy, dx in np.unique(shifts, axis=0):
        rows = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
        if abs(dy) >= H or abs(dx) >= W:
            continue  # the image leaves the frame entirely
        out[rows, max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
            images[rows, max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
    return out


def _windows(a, size):
    n, H, W, C = a.shape
    h, w = H // size, W // size
    a = a[:, :h * size, :w * size]
    return a.reshape(n, h, size, w, size, C).transpose(0, 1, 3, 5, 2, 4).reshape(n, h, w, C, size * size)


def max_pool(a, size):
    """Largest value of each ``size × size`` window of ``a`` ``(n, H, W, C)`` (a ragged
    edge is dropped) and the index of the first position holding it."""
    win = _windows(a, size)
    where = np.argmax(win, axis=-1)
    return np.take_along_axis(win, where[..., None], axis=-1)[..., 0], where


def unpool(d, where, size, shape):
    """Send each pooled value's error ``d`` back to the position ``where`` that gave it;
    ``shape`` is the unpooled ``(n, H, W, C)``."""
    n, h, w, C = d.shape
    win = np.zeros((n, h, w, C, size * size), dtype=d.dtype)
    np.put_along_axis(win, where[..., None], d[..., None], axis=-1)
    full = win.reshape(n, h, w, C, size, size).transpose(0, 1, 4, 2, 5, 3).reshape(n, h * size, w * size, C)
    out = np.zeros(shape, dtype=d.dtype)
    out[:, :h * size, :w * size] = full
    return out


class TernaryCNN(TernaryNetwork):
    """Convolutional classifier whose kernels and weights are ternary MTJ-pair cells.

    Parameters
    ----------
    conv_layers : tuple of (channels, kernel) pairs
        The convolution stages, each followed by the comparators and a max pool.
    hidden_layer_sizes : tuple of int
        Dense hidden layers after the last pool (``()``: straight to the outputs).
    image_shape : (int, int) or None
        Height and width of the images whose pixels are the rows of ``X`` (row-major);
        None: square.
    pool_size : int
        Side of the max-pool windows.
    chunk_size : int
        Images processed at once (memory only; results do not depend on it: with
        ``normalization`` a chunk holds whole statistics groups).
    max_shift : int
        Each training image of a batch is translated by a random whole number of pixels
        between ``-max_shift`` and ``max_shift`` down and across (zeros moved in; drawn
        from the training stream) before it drives the arrays: in hardware an offset of
        the address the input buffer is read from, so nothing is booked. The comparator
        references are calibrated on the images as given, and prediction never shifts.
        0: no translation.

    The other parameters are those of :class:`networks.TernaryMLP` (``backward_gain``
    1, ``bias_rows`` 4, ``cells_per_weight`` 16, 12 epochs with the batch growing
    1.5-fold per epoch, and a tenth of the training images held out to keep the best
    epoch, ``validation_fraction`` 0.1, by default here), with the same
    batch normalisation in the periphery (``normalization="batch"``, so ``threshold``
    0.25 and ``ste_width`` 0.8 count in each column's standard deviation); on MNIST
    they lift validation accuracy from 94.8 % (fixed levels, one cell) to 98.2 % (mean
    of three chips, without shifts or the held-out tenth; eight cells, 8 epochs with the
    batch doubling: 97.7 %, with 0.7 times the energy per training sample, measured
    before the batches of an epoch were made equal) and, with ``max_shift`` 1 and the
    held-out tenth, to 98.55 % (mean of three chips); test accuracy 98.67 % (mean of
    three chips; without the shifts and the held-out tenth 98.4 %).
    Always
    a batch update (a kernel's gradient sums over positions, so there is no per-sample
    in-array rule).
    The kernels' gradient is the mean over positions, so the convolution arrays learn at
    the same rate as a dense layer without a smaller ``backward_gain``.
    """

    _constraints = {**CONSTRAINTS, "pool_size": ("int", 1, None), "chunk_size": ("int", 1, None),
                    "max_shift": ("int", 0, None)}
    _format = (FORMAT, FORMAT_VERSION)

    def __init__(self, conv_layers=((32, 5), (64, 5)), hidden_layer_sizes=(512,), *, image_shape=None,
                 pool_size=2, activation="ternary", n_iter=12, batch_size=100, batch_growth=1.5,
                 learning_rate=0.3, learning_rate_decay=1.0, learning_rate_batch_exponent=0.0,
                 learning_rate_decay_after=1,
                 gradient_deadzone=0.0, cells_per_weight=16, threshold=0.25, ste_width=0.8,
                 output_scale=4.0, backward_gain=1.0, bias_rows=4, input_threshold=0.5, device="mtj",
                 d2d_delta_rel=0.0, max_width_s=20e-9, min_probability=1e-3, adc_bits=8, dac_bits=8,
                 loss="softmax", input_coding="binary", chunk_size=250, pulse_probability=None,
                 column_write_limit=None, normalization="batch", normalization_batch=100,
                 calibration_samples=10000, validation_fraction=0.1, max_shift=1, verbose=False,
                 random_state=None):
        self.conv_layers = conv_layers
        self.hidden_layer_sizes = hidden_layer_sizes
        self.image_shape = image_shape
        self.pool_size = pool_size
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
        self.loss = loss
        self.input_coding = input_coding
        self.chunk_size = chunk_size
        self.pulse_probability = pulse_probability
        self.column_write_limit = column_write_limit
        self.normalization = normalization
        self.normalization_batch = normalization_batch
        self.calibration_samples = calibration_samples
        self.validation_fraction = validation_fraction
        self.max_shift = max_shift
        self.verbose = verbose
        self.random_state = random_state

    # ------------------------------------------------------------------ layout
    def _check_layout(self):
        check_sizes("hidden_layer_sizes", self.hidden_layer_sizes)
        layers = self.conv_layers
        if not isinstance(layers, (tuple, list)) or not layers or not all(
                isinstance(s, (tuple, list)) and len(s) == 2 and all(
                    isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in s)
                for s in layers):
            raise ValueError("conv_layers must be a non-empty tuple of (channels, kernel) pairs of "
                             f"integers >= 1, got {layers!r}")
        shape = self.image_shape
        if shape is not None and not (isinstance(shape, (tuple, list)) and len(shape) == 2 and all(
                isinstance(v, Integral) and not isinstance(v, bool) and v >= 1 for v in shape)):
            raise ValueError(f"image_shape must be None or (height, width) of integers >= 1, got {shape!r}")

    def _image(self, n_features):
        if self.image_shape is not None:
            h, w = self.image_shape
            if h * w != n_features:
                raise ValueError(f"image_shape {tuple(self.image_shape)} holds {h * w} pixels, "
                                 f"X has {n_features} features")
            return int(h), int(w)
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(f"X has {n_features} features, not a square image: pass image_shape")
        return side, side

    def feature_maps(self, n_features) -> list[tuple[int, int, int]]:
        """``(height, width, channels)`` after each convolution and pool, from the input
        image of ``n_features`` pixels; raises ValueError where a map would vanish."""
        return [(h // self.pool_size, w // self.pool_size, c) for h, w, c in self._conv_maps(n_features)]

    def _conv_maps(self, n_features):
        """``(height, width, channels)`` of each convolution's output, before its pool."""
        h, w = self._image(n_features)
        maps = []
        for k, (channels, kernel) in enumerate(self.conv_layers):
            h, w = h - kernel + 1, w - kernel + 1
            if h < self.pool_size or w < self.pool_size:
                raise ValueError(f"conv_layers[{k}] leaves no feature map (kernel {kernel} and pool "
                                 f"{self.pool_size} on the image {self._image(n_features)})")
            maps.append((h, w, channels))
            h, w = h // self.pool_size, w // self.pool_size
        return maps

    def _n_arrays(self):
        return len(self.conv_layers) + len(self.hidden_layer_sizes) + 1

    def _array_shapes(self, n_features, n_classes):
        shapes, c_in = [], 1
        for channels, kernel in self.conv_layers:
            shapes.append((kernel * kernel * c_in + self.bias_rows, channels))
            c_in = channels
        h, w, c = self.feature_maps(n_features)[-1]
        sizes = [h * w * c, *self.hidden_layer_sizes, n_classes]
        return shapes + [(n_in + self.bias_rows, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:])]

    @classmethod
    def _params_from_file(cls, params):
        params = super()._params_from_file(params)
        params["conv_layers"] = tuple(tuple(s) for s in params["conv_layers"])
        # files from before these parameters existed: fixed comparator levels
        params.setdefault("normalization", None)
        params.setdefault("calibration_samples", 0)  # and kept the running averages
        params.setdefault("max_shift", 0)
        params.setdefault("validation_fraction", None)  # the last epoch kept
        if params.get("image_shape") is not None:
            params["image_shape"] = tuple(params["image_shape"])
        return params

    # ------------------------------------------------------------------ passes
    def _forward_chunk(self, X, training):
        """One chunk: the convolution records (patch drives, STE flags, pool positions,
        map shapes, normalisation records), the dense drives, flags and normalisation
        records, and the output counts."""
        n = len(X)
        a = self._input_rows(X).reshape(n, *self._image(X.shape[1]), 1)
        per, ledger = self.periphery_, self.ledger_
        convs = []
        for k, (channels, kernel) in enumerate(self.conv_layers):
            drive = self._drive(patches(a, kernel))
            h, w = drive.shape[1:3]
            act, flag, record = self._hidden(k, drive.reshape(n * h * w, -1), training, per_image=h * w)
            act = act.reshape(n, h, w, channels)
            a, where = max_pool(act, self.pool_size)
            per.digital(act.size, ledger)  # one comparison per pooled value
            if training:
                convs.append((drive, flag.reshape(n, h, w, channels), where, act.shape, record))
        a = self._drive(a.reshape(n, -1))
        drives, flags, records = [a], [], []
        for k in range(len(self.conv_layers), len(self.layers_) - 1):
            a, flag, record = self._hidden(k, a, training)
            flags.append(flag)
            records.append(record)
            a = self._drive(a)
            drives.append(a)
        return convs, (drives, flags, records), self._output(a)

    def _forward(self, X, training=False):
        counts = [self._forward_chunk(X[c], False)[-1] for c in self._chunks(len(X), self.chunk_size)]
        return (np.concatenate(counts) if counts else np.zeros((0, len(self.classes_))),)

    def _window_flags(self, X):
        parts = []
        for c in self._chunks(len(X), self.chunk_size):
            convs, (_, flags, _), _ = self._forward_chunk(X[c], training=True)
            parts.append([conv[1] for conv in convs] + flags)
        return [np.concatenate([p[k].reshape(-1) for p in parts]) for k in range(len(parts[0]))]

    def _group_statistics(self, X):
        groups = [[] for _ in self.layers_[:-1]]
        for c in self._chunks(len(X), self.chunk_size):
            convs, (_, _, records), _ = self._forward_chunk(X[c], training=True)
            for k, record in enumerate([conv[4] for conv in convs] + records):
                groups[k] += record[2]
        return groups

    def _chunk_gradients(self, X, onehot, commit=False):
        """Sums over the chunk of every array's gradient ``x δ`` (conv: and over positions);
        ``commit``: fold the chunk's column statistics into the running ones."""
        convs, (drives, flags, records), counts = self._forward_chunk(X, training=True)
        per, ledger = self.periphery_, self.ledger_
        n_conv = len(self.conv_layers)
        if commit:
            for k, record in enumerate([c[4] for c in convs] + records):
                self._commit_statistics(k, record)
        dense = self.layers_[n_conv:]
        deltas = [None] * len(dense)
        deltas[-1] = self._error(counts, onehot)
        for k in range(len(dense) - 1, -1, -1):
            back = self._backward(n_conv + k, deltas[k])[:, :dense[k].rows - self.bias_rows]
            if k > 0:
                deltas[k - 1] = self._normalized_delta(n_conv + k - 1, back * flags[k - 1], records[k - 1])
                per.digital(back.size * OPS_GATE, ledger)
        grads = [None] * len(self.layers_)
        for k, (x, d) in enumerate(zip(drives, deltas)):
            grads[n_conv + k] = self._accumulate(x, d)
        n = len(X)
        d_map = back.reshape(n, *convs[-1][2].shape[1:3], -1)  # error of the last pooled map
        for k in range(n_conv - 1, -1, -1):
            drive, flag, where, shape, record = convs[k]
            channels, kernel = self.conv_layers[k]
            d = unpool(d_map, where, self.pool_size, shape) * flag
            per.digital(d.size * OPS_GATE, ledger)
            h, w = shape[1:3]
            d = self._normalized_delta(k, d.reshape(n * h * w, channels), record)
            x = drive.reshape(n * h * w, -1)
            grads[k] = self._accumulate(x, d) / (h * w)  # the mean over positions: a shared kernel
            if k > 0:
                back = self._backward(k, d)
                back = back[:, :self.layers_[k].rows - self.bias_rows].reshape(n, h, w, -1)
                d_map = unpatch(back, kernel, self.conv_layers[k - 1][0])
                per.digital(back.size, ledger)  # the adds of overlapping patches
        return grads

    def _batch_gradients(self, X, onehot, commit=False):
        total = None
        for c in self._chunks(len(X), self.chunk_size):
            grads = self._chunk_gradients(X[c], onehot[c], commit)
            total = grads if total is None else [t + g for t, g in zip(total, grads)]
        return [g / len(X) for g in total]

    def shifted(self, X):
        """The training images ``X`` (rows of pixels), each translated by its own random
        shift of at most :attr:`max_shift` pixels each way (see the parameter); ``X``
        itself when ``max_shift`` is 0 (and no random number is drawn). The shifts come
        from the training stream, so a call moves the draws of later training."""
        check_is_fitted(self, "layers_")
        if not self.max_shift:
            return X
        n, shape = len(X), self._image(X.shape[1])
        shifts = self._rng.integers(-self.max_shift, self.max_shift + 1, size=(n, 2))
        return shift_images(X.reshape(n, *shape), shifts).reshape(n, -1)

    def _train_batch(self, X, onehot, lr):
        X = self.shifted(X)
        for layer, g in enumerate(self._batch_gradients(X, onehot, commit=True)):
            self._write(layer, g, lr, len(X))

    # ------------------------------------------------------------------ reports
    def training_operations(self) -> dict:
        """Operations of training per sample, counted as a digital accelerator would:
        2 per multiply-accumulate of the forward and backward passes (a convolution once
        per output position), 2 per weight of the update."""
        check_is_fitted(self, "layers_")
        positions = [h * w for h, w, _ in self._conv_maps(self.n_features_in_)]
        cells = [x.rows * x.cols // k for x, k in zip(self.layers_, self.cells_per_array_)]
        macs = [p * c for p, c in zip(positions, cells)] + cells[len(positions):]
        forward, backward = sum(macs), sum(macs[1:])
        update = sum(macs)  # a kernel's gradient sums over its positions
        return {"forward_macs": forward, "backward_macs": backward, "update_macs": update,
                "ops_per_sample": 2 * (forward + backward + update)}
