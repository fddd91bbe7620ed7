"""A multilayer perceptron trained in situ by backpropagation, with DACs and ADCs.

The design the counter-based DBN is compared with: every layer is one
:class:`neuromem.Crossbar` (one row per input plus a bias row, one column per unit);

* **forward**: inputs in [0, 1] go through a DAC to row voltages, the column currents
  through sample-and-hold and a shared ADC (:class:`neuromem.ConverterChain`); the
  activation (``clip(z, 0, 1)``, a clipped ReLU) is the range of an unsigned ADC, the output softmax is digital;
* **backward**: the output error drives the *columns* of the next layer's array
  through a signed DAC and the row currents, read by ADCs, are ``W delta`` (the
  transposed read, :meth:`neuromem.Crossbar.read_back`);
* **update**: ``Delta w_ij = -eta x_i delta_j`` in the array, as one outer product per
  sample: column ``j`` gets a pulse train ``round(eta |delta_j| / Delta w_pulse)``
  pulses long, and row ``i`` is driven (with the polarity ``-sign(delta_j)`` of the
  column's phase) with probability ``x_i`` (stochastic rounding, so the expected change
  is exact); nothing is stored between samples;
* **momentum** (optional): the velocity ``v = mu v - eta x delta^T`` lives in digital
  memory (each value read and written once per sample, booked as ``sram_read`` /
  ``sram_write``), and the array takes ``round(v / Delta w_pulse)`` pulses cell by cell.

``Delta w_pulse`` is measured once on a spare array of the same device (the mean weight
change of one pulse each way). The weight of a cell is ``weight_range *
crossbar.weights``. Everything lands in one :class:`neuromem.EnergyLedger`.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from neuromem import ADC, DAC, ConverterChain, Crossbar, EnergyLedger, get_device
from neuromem.energy import ADD_16BIT_J, SRAM_LOAD_J

from . import _mlp_kernels as kern
from ._archive import params_from_json, params_to_json, read_archive, write_archive

__all__ = ["CrossbarMLP"]

FORMAT = "neuromem-crossbar-mlp"
FORMAT_VERSION = 1
#: energy of one digital operation after the ADC (activation, softmax term, pulse length):
#: assumed one 16-bit add (Horowitz, ISSCC 2014, 45 nm)
DIGITAL_OP_J = ADD_16BIT_J
#: energy of one velocity value read or written (assumed: one SRAM access, Horowitz 2014)
SRAM_ACCESS_J = SRAM_LOAD_J


def _int_in(lo, hi=None):
    def check(v):
        return isinstance(v, Integral) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
    return check, f"an integer in [{lo}, {hi if hi is not None else 'inf'})"


def _real(lo, hi=None, *, lo_open=False):
    def check(v):
        if not isinstance(v, Real) or isinstance(v, bool) or not math.isfinite(v):
            return False
        return (v > lo if lo_open else v >= lo) and (hi is None or v <= hi)
    return check, f"a finite number {'>' if lo_open else '>='} {lo}" + (f" and <= {hi}" if hi else "")


def _choice(*options):
    return (lambda v: v in options), f"one of {options}"


def _sizes(v):
    return (isinstance(v, (tuple, list)) and len(v) >= 1
            and all(isinstance(n, Integral) and not isinstance(n, bool) and n >= 1 for n in v))


#: parameter -> (check, what is expected): the one table of limits
_CONSTRAINTS = {
    "hidden_layer_sizes": (_sizes, "a non-empty tuple of integers >= 1"),
    "scheme": _choice("differential", "reference"),
    "dac_bits": _int_in(2, 16), "adc_bits": _int_in(2, 16),
    "dac_bits_per_cycle": _int_in(1, 16),
    "adc_range": _real(0, lo_open=True), "adc_range_back": _real(0, lo_open=True),
    "weight_range": _real(0, lo_open=True), "learning_rate": _real(0, lo_open=True),
    "momentum": _real(0, 0.999), "batch_size": _int_in(1), "n_iter": _int_in(0),
    "pulse_width": _real(0, 1, lo_open=True), "max_pulses": _int_in(1),
    "rounding": _choice("stochastic", "nearest"), "init_scale": _real(0),
    "verbose": ((lambda v: isinstance(v, bool)), "True or False"),
}


def _state_json(rs: np.random.RandomState) -> list:
    name, key, pos, has_gauss, cached = rs.get_state()
    return [name, key.tolist(), int(pos), int(has_gauss), float(cached)]


def _state_from_json(state) -> np.random.RandomState:
    rs = np.random.RandomState()
    name, key, pos, has_gauss, cached = state
    rs.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached))
    return rs


class CrossbarMLP(ClassifierMixin, BaseEstimator):
    """MLP classifier trained in situ by backpropagation on crossbars of any device.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Units of each hidden layer (activation ``clip(z, 0, 1)``).
    device : str or neuromem.devices.Device
        Device family of every array (``"ideal"``, ``"yflash"``, ...).
    scheme : {"differential", "reference"}
        Signed weights as ``G+ - G-``: both pulsed push-pull, or ``G-`` a fixed reference.
    dac_bits, adc_bits : int
        Converter resolutions (the backward pass uses the same ones, signed DACs).
    dac_bits_per_cycle : int
        DAC bits per crossbar cycle (1: ISAAC's bit-serial inputs, one ADC conversion per
        column per input bit).
    adc_range, adc_range_back : float
        ADC full scale in weight units: the output logits ``|z| <= adc_range``, the
        backward sums ``|W delta| <= adc_range_back``; beyond it the ADC clips. Hidden
        layers convert over ``[0, 1]`` with an unsigned ADC, whose clipping is the
        activation ``clip(z, 0, 1)``.
    weight_range : float
        Network weight of one unit of ``Crossbar.weights`` (the device's range).
    learning_rate : float
        ``eta`` of the per-sample update ``Delta w = -eta x delta``.
    momentum : float
        ``mu`` in [0, 0.999]; 0 is plain SGD (an outer product per sample, no memory).
    batch_size : int
        Samples read forward and backward together; their updates are then applied one
        sample after the other (each one outer product).
    n_iter : int
        Epochs of :meth:`fit`.
    pulse_width : float
        Programming pulse duration as a fraction of the device's nominal one (finer steps).
    max_pulses : int
        Longest column pulse train per update, in pulses.
    rounding : {"stochastic", "nearest"}
        How pulse trains and row drives round (stochastic: unbiased).
    init_scale : float
        Initial weights are ``U(-a, a)``, ``a = init_scale sqrt(6 / (fan_in + fan_out))``,
        programmed by pulses (not booked as training: see ``init_energy_``).
    random_state : int, RandomState or None
    verbose : bool
    """

    def __init__(self, hidden_layer_sizes=(100,), device="ideal", *, scheme="differential",
                 dac_bits=8, adc_bits=8, dac_bits_per_cycle=1, adc_range=16.0,
                 adc_range_back=1.0, weight_range=1.0, learning_rate=0.02, momentum=0.0,
                 batch_size=10, n_iter=5, pulse_width=0.1, max_pulses=63,
                 rounding="stochastic", init_scale=1.0, random_state=None, verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.device = device
        self.scheme = scheme
        self.dac_bits = dac_bits
        self.adc_bits = adc_bits
        self.dac_bits_per_cycle = dac_bits_per_cycle
        self.adc_range = adc_range
        self.adc_range_back = adc_range_back
        self.weight_range = weight_range
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.pulse_width = pulse_width
        self.max_pulses = max_pulses
        self.rounding = rounding
        self.init_scale = init_scale
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        for name, (check, expected) in _CONSTRAINTS.items():
            value = getattr(self, name)
            if not check(value):
                raise ValueError(f"CrossbarMLP: {name} must be {expected}, got {value!r}")
        if self.dac_bits_per_cycle > self.dac_bits:
            raise ValueError(f"CrossbarMLP: dac_bits_per_cycle ({self.dac_bits_per_cycle}) must "
                             f"not exceed dac_bits ({self.dac_bits})")
        try:
            get_device(self.device)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"CrossbarMLP: device {self.device!r} is not a device: {exc}") from None

    def _check_X(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=np.float64)
        if X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError(f"X must lie in [0, 1] (row drives of a DAC), got values in "
                             f"[{X.min():g}, {X.max():g}]")
        return X

    # ------------------------------------------------------------------ build
    def _build(self, n_features, classes, rng):
        self._check_params()
        device = get_device(self.device)
        self.classes_ = np.asarray(classes)
        if self.classes_.size < 2:
            raise ValueError(f"y must hold at least 2 classes, got {self.classes_.size}")
        sizes = [n_features, *map(int, self.hidden_layer_sizes), self.classes_.size]
        self.ledger_ = EnergyLedger()
        seeds = rng.randint(0, 2**31 - 1, size=len(sizes) + 1)
        self.crossbars_ = [Crossbar(n_in + 1, n_out, device, scheme=self.scheme,
                                    seed=int(seeds[k]), ledger=self.ledger_)
                           for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]))]
        self.pulse_weight_ = [self._measure_pulse(device, int(seeds[-1]))] * len(self.crossbars_)
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            a = self.init_scale * math.sqrt(6.0 / (n_in + n_out))
            target = rng.uniform(-a, a, size=(n_in + 1, n_out))
            target[-1] = 0.0  # biases start at zero
            self._program(k, target)
        self.init_energy_ = self.ledger_.as_dict()
        self.ledger_.reset()
        self.velocity_ = [np.zeros(x.shape) for x in self.crossbars_] if self.momentum > 0 else None
        self.n_features_in_ = n_features
        self.n_samples_seen_ = 0
        self.history_ = []
        self._seed_stream = np.random.RandomState(int(seeds[0]))

    def _measure_pulse(self, device, seed):
        """Mean network-weight change of one pulse each way, on a spare array."""
        moves = []
        for sign in (1, -1):
            probe = Crossbar(1, 256, device, scheme=self.scheme, seed=seed)
            before = probe.weights.astype(np.float64)
            probe.apply_pulses(np.full(probe.shape, sign, dtype=np.int64), width=self.pulse_width)
            moves.append(float(np.mean(np.abs(probe.weights - before))))
        step = 0.5 * sum(moves) * self.weight_range
        if not step > 0:
            raise ValueError(f"device {self.device!r}: a pulse of width {self.pulse_width} does "
                             "not move the weight; choose a longer pulse_width")
        return step

    def _program(self, k, target):
        """Move layer ``k``'s weights towards ``target`` by rounded pulse counts (open loop)."""
        xbar = self.crossbars_[k]
        now = self.weight_range * xbar.weights.astype(np.float64)
        counts = np.rint((target - now) / self.pulse_weight_[k]).astype(np.int64)
        xbar.apply_pulses(counts, width=self.pulse_width)

    def _chains(self):
        """Converter chains: hidden layers (unsigned ADC over [0, 1]: the clipped ReLU is
        the ADC's own range), the output layer (signed, +-adc_range) and the backward
        pass (signed DAC on the errors, signed ADC)."""
        cycle = self.dac_bits_per_cycle
        dac = DAC(bits=self.dac_bits, bits_per_cycle=cycle)
        hidden = ConverterChain(dac=dac, adc=ADC(bits=self.adc_bits, signed=False))
        out = ConverterChain(dac=dac, adc=ADC(bits=self.adc_bits))
        back = ConverterChain(dac=DAC(bits=self.dac_bits, bits_per_cycle=cycle, signed=True),
                              adc=ADC(bits=self.adc_bits))
        return hidden, out, back

    # ------------------------------------------------------------------ passes
    def _volts_to_weight(self, xbar):
        """Column current per unit of ``sum_i x_i W_ij`` (amperes)."""
        return xbar.device.read_voltage_v * xbar.weight_unit_s / self.weight_range

    def _forward(self, X):
        """Inputs (with the bias 1) and pre-activations of every layer, and the output
        probabilities, all through the converters."""
        hidden, output, _ = self._chains()
        ledger = self.ledger_
        xs, zs = [], []
        a = X
        last = len(self.crossbars_) - 1
        for k, xbar in enumerate(self.crossbars_):
            fwd = output if k == last else hidden
            x = np.empty((a.shape[0], a.shape[1] + 1))
            x[:, :-1] = fwd.input(a, 1.0, ledger)  # the bias row: a fixed drive, no DAC
            x[:, -1] = 1.0
            amps = self._volts_to_weight(xbar)
            current = xbar.read((x * xbar.device.read_voltage_v).astype(np.float32), binary=False)
            full_scale = self.adc_range if k == last else 1.0
            z = fwd.output(current, full_scale * amps, ledger) / amps
            xs.append(x)
            zs.append(z)
            a = z  # hidden: the unsigned ADC's clipping to [0, 1] is the activation
        z = zs[-1]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        proba = e / e.sum(axis=1, keepdims=True)
        ledger.record("digital_op", 3 * z.size, 3 * z.size * DIGITAL_OP_J)  # exp, sum, divide
        return xs, zs, proba

    def _backward(self, zs, proba, Y):
        """Errors ``delta`` of every layer (output: ``p - y``; hidden: transposed reads)."""
        _, _, back = self._chains()
        ledger = self.ledger_
        delta = proba - Y
        ledger.record("digital_op", delta.size, delta.size * DIGITAL_OP_J)
        deltas = [delta]
        for k in range(len(self.crossbars_) - 1, 0, -1):
            xbar = self.crossbars_[k]
            v = back.input(delta, 1.0, ledger) * xbar.device.read_voltage_v
            amps = self._volts_to_weight(xbar)
            rows = xbar.read_back(v.astype(np.float32), binary=False)[:, :-1]  # no bias row
            err = back.output(rows, self.adc_range_back * amps, ledger) / amps
            z = zs[k - 1]  # clip(z, 0, 1) as converted: slope 1 strictly inside
            delta = err * ((z > 0.0) & (z < 1.0))
            ledger.record("digital_op", delta.size, delta.size * DIGITAL_OP_J)
            deltas.insert(0, delta)
        return deltas

    def _update(self, xs, deltas):
        """Apply every sample's update to every array; returns pulses fired."""
        ledger = self.ledger_
        stochastic = self.rounding == "stochastic"
        fired = 0
        for k, xbar in enumerate(self.crossbars_):
            x, delta = np.ascontiguousarray(xs[k]), np.ascontiguousarray(deltas[k])
            batch, rows = x.shape
            cols = delta.shape[1]
            cells = np.empty(batch * rows * cols, dtype=np.int64)
            counts = np.empty(batch * rows * cols, dtype=np.int64)
            offsets = np.empty(batch + 1, dtype=np.int64)
            seed = int(self._seed_stream.randint(0, 2**31 - 1))
            if self.velocity_ is None:
                row_on = np.empty((batch, rows), dtype=np.int8)
                col_pulses = np.empty((batch, cols), dtype=np.int64)
                kern.outer_plan(x, delta, self.learning_rate / self.pulse_weight_[k],
                                self.max_pulses, stochastic, seed, row_on, col_pulses,
                                cells, counts, offsets)
                ops = batch * (rows + cols)  # a random drive per row, a train length per column
                ledger.record("digital_op", ops, ops * DIGITAL_OP_J)
            else:
                kern.momentum_plan(x, delta, self.velocity_[k], float(self.momentum),
                                   float(self.learning_rate), self.pulse_weight_[k],
                                   self.max_pulses, stochastic, seed, cells, counts, offsets)
                n = batch * rows * cols
                ledger.record("sram_read", n, n * SRAM_ACCESS_J)
                ledger.record("sram_write", n, n * SRAM_ACCESS_J)
                ledger.record("digital_op", 3 * n, 3 * n * DIGITAL_OP_J)  # mu v, eta x d, add
            for s in range(batch):
                lo, hi = offsets[s], offsets[s + 1]
                if hi > lo:
                    xbar.apply_pulses_at(cells[lo:hi], counts[lo:hi], width=self.pulse_width)
                    fired += int(np.abs(counts[lo:hi]).sum())
        return fired

    # ------------------------------------------------------------------ public API
    def fit(self, X, y):
        """Initialise the arrays and train ``n_iter`` epochs in situ."""
        self._check_params()
        X, y = validate_data(self, X, y, reset=True, dtype=np.float64)
        self._check_X(X, reset=False)
        check_classification_targets(y)
        rng = check_random_state(self.random_state)
        self._build(X.shape[1], np.unique(y), rng)
        self._rng = rng
        for _ in range(self.n_iter):
            self._epoch(X, y)
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``X`` (initialising on the first call, ``classes`` required then)."""
        first = not hasattr(self, "crossbars_")
        if first:
            self._check_params()
            if classes is None:
                raise ValueError("classes must be given on the first call to partial_fit")
            X, y = validate_data(self, X, y, reset=True, dtype=np.float64)
            self._check_X(X, reset=False)
            check_classification_targets(y)
            rng = check_random_state(self.random_state)
            self._build(X.shape[1], np.unique(classes), rng)
            self._rng = rng
        else:
            X, y = validate_data(self, X, y, reset=False, dtype=np.float64)
            self._check_X(X, reset=False)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y holds labels {unknown.tolist()} not in classes {self.classes_.tolist()}")
        self._epoch(X, y)
        return self

    def _epoch(self, X, y):
        order = self._rng.permutation(X.shape[0])
        Y = (y[:, None] == self.classes_[None, :]).astype(np.float64)
        before = self.ledger_.as_dict()
        fired = 0
        loss = 0.0
        for lo in range(0, X.shape[0], self.batch_size):
            idx = order[lo:lo + self.batch_size]
            xs, zs, proba = self._forward(X[idx])
            loss -= float(np.sum(np.log(np.maximum(proba[Y[idx] > 0], 1e-12))))
            fired += self._update(xs, self._backward(zs, proba, Y[idx]))
        self.n_samples_seen_ += X.shape[0]
        after = self.ledger_.as_dict()
        entry = {"epoch": len(self.history_) + 1, "loss": loss / max(X.shape[0], 1),
                 "pulses": fired, "energy_j": after["total_j"] - before["total_j"]}
        self.history_.append(entry)
        if self.verbose:
            print(f"CrossbarMLP epoch {entry['epoch']}: loss {entry['loss']:.4f}, "
                  f"{fired / max(X.shape[0], 1):.1f} pulses per sample")

    def gradients(self, X, y) -> list[np.ndarray]:
        """Mean cross-entropy gradient of every layer's weights (bias row last), as the
        hardware computes it (converters and reads), without updating anything."""
        check_is_fitted(self, "crossbars_")
        X, y = validate_data(self, X, y, reset=False, dtype=np.float64)
        self._check_X(X, reset=False)
        Y = (y[:, None] == self.classes_[None, :]).astype(np.float64)
        xs, zs, proba = self._forward(X)
        deltas = self._backward(zs, proba, Y)
        return [x.T @ d / X.shape[0] for x, d in zip(xs, deltas)]

    @property
    def weights_(self) -> list[np.ndarray]:
        """Network weights of every layer, ``(n_in + 1, n_out)``, bias row last."""
        check_is_fitted(self, "crossbars_")
        return [self.weight_range * x.weights.astype(np.float64) for x in self.crossbars_]

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "crossbars_")
        X = self._check_X(X, reset=False)
        out = np.empty((X.shape[0], self.classes_.size))
        for lo in range(0, X.shape[0], 1000):
            out[lo:lo + 1000] = self._forward(X[lo:lo + 1000])[2]
        return out

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "crossbars_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def energy_report(self) -> dict:
        """Operation counts and energy since initialisation (training and inference)."""
        check_is_fitted(self, "crossbars_")
        return self.ledger_.as_dict()

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write an ``.npz`` archive: device states and velocities plus JSON metadata
        (parameters, classes, history, ledger, random streams) with SHA-256 per array
        and of the metadata."""
        check_is_fitted(self, "crossbars_")
        path = Path(path)
        arrays = {"classes": np.asarray(self.classes_)}
        layers = []
        for k, xbar in enumerate(self.crossbars_):
            a, m = xbar.state_dict()
            arrays.update({f"layer{k}/{key}": v for key, v in a.items()})
            layers.append(m)
            if self.velocity_ is not None:
                arrays[f"velocity{k}"] = self.velocity_[k]
        meta = {"params": params_to_json(self.get_params()),
                "n_features_in": int(self.n_features_in_), "n_samples_seen": self.n_samples_seen_,
                "pulse_weight": list(self.pulse_weight_), "history": self.history_,
                "init_energy": self.init_energy_, "ledger": self.ledger_.as_dict(),
                "layers": layers, "rng": _state_json(self._rng), "seed_stream": _state_json(self._seed_stream)}
        write_archive(path, arrays, meta, FORMAT, FORMAT_VERSION)
        return path

    @classmethod
    def load(cls, path) -> "CrossbarMLP":
        """Read a file written by :meth:`save`; a damaged or foreign file raises ValueError."""
        path = Path(path)
        arrays, meta = read_archive(path, FORMAT, FORMAT_VERSION, what="a CrossbarMLP archive")
        try:
            params = params_from_json(meta["params"])
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
            model = cls(**params)
            model._check_params()
            model.classes_ = arrays["classes"]
            model.n_features_in_ = int(meta["n_features_in"])
            model.n_samples_seen_ = int(meta["n_samples_seen"])
            model.pulse_weight_ = [float(p) for p in meta["pulse_weight"]]
            model.history_ = list(meta["history"])
            model.init_energy_ = dict(meta["init_energy"])
            model.ledger_ = EnergyLedger.from_dict(meta["ledger"])
            sizes = [model.n_features_in_, *model.hidden_layer_sizes, model.classes_.size]
            model.crossbars_ = []
            for k, m in enumerate(meta["layers"]):
                sub = {key.split("/", 1)[1]: v for key, v in arrays.items()
                       if key.startswith(f"layer{k}/")}
                xbar = Crossbar.from_state_dict(sub, m, ledger=model.ledger_)
                if xbar.shape != (sizes[k] + 1, sizes[k + 1]):
                    raise ValueError(f"layer {k} has shape {xbar.shape}, expected "
                                     f"{(sizes[k] + 1, sizes[k + 1])}")
                model.crossbars_.append(xbar)
            if len(model.crossbars_) != len(sizes) - 1:
                raise ValueError(f"{len(model.crossbars_)} layers saved, {len(sizes) - 1} expected")
            model.velocity_ = None
            if model.momentum > 0:
                model.velocity_ = [np.array(arrays[f"velocity{k}"], dtype=np.float64)
                                   for k in range(len(model.crossbars_))]
                for v, x in zip(model.velocity_, model.crossbars_):
                    if v.shape != x.shape:
                        raise ValueError(f"velocity of shape {v.shape}, expected {x.shape}")
            model._rng = _state_from_json(meta["rng"])
            model._seed_stream = _state_from_json(meta["seed_stream"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: invalid CrossbarMLP archive: {exc}") from None
        return model
