"""Circuits around the array: binary stochastic neurons and digital counters.

Nothing here needs an ADC or an analogue nonlinear function:

* :class:`ComparatorNeuron` fires when its column current beats a logistic-distributed
  random reference, ``1[I > I0 ln(u / (1 - u))]``, which fires with probability
  ``sigmoid(I / I0)`` (Wang et al., Nat. Electron. 5, 870, 2022; docs/hardware.md §2).
* :class:`PBitNeuron` is the stochastic-MTJ p-bit, ``m = sgn(tanh(x / 2) - r)`` with
  ``r ~ U(-1, 1)`` and ``x = I / I0``, so ``P(m = +1) = sigmoid(x)``
  (Camsari et al., Appl. Phys. Rev. 6, 011305, 2019).
* :class:`DigitalCounter` accumulates integer contrastive-divergence statistics per cell
  and emits a pulse when the count crosses a threshold (the "CDacc" rule of Wang 2022).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .energy import ADD_16BIT_J, EnergyLedger

# ---------------------------------------------------------------------------- kernels


@njit(cache=True)
def wta_kernel(current, current_scale, seed, out):
    """One-hot winner per row of ``current + I0 * Gumbel noise`` (Gumbel-max sampling).

    ``argmax_k(I_k / I0 + g_k)`` with ``g = -ln(-ln u)`` picks ``k`` with probability
    ``softmax(I / I0)_k``: a softmax unit from a winner-take-all and random offsets.
    """
    np.random.seed(seed)
    rows, cols = current.shape
    for r in range(rows):
        best = -np.inf
        winner = 0
        for k in range(cols):
            u = np.random.random()
            while u <= 0.0:
                u = np.random.random()
            score = current[r, k] / current_scale - math.log(-math.log(u))
            if score > best:
                best = score
                winner = k
            out[r, k] = 0
        out[r, winner] = 1


@njit(cache=True)
def all_integral(values):
    """True when every value is a finite integer (one pass, no temporaries)."""
    for v in values.ravel():
        if not (v == math.floor(v) and math.isfinite(v)):
            return False
    return True


@njit(cache=True)
def _fire(value, threshold, max_pulses):
    """Accumulate-and-threshold (Wang 2022's "CDacc"; docs/hardware.md §3) on one counter value ``C``.

    ``n = trunc(C / threshold)``; returns ``(C - n * threshold, sign(n) *
    min(|n|, max_pulses))``. ``max_pulses = 1`` is the published rule (one pulse even
    when ``|n| >= 2``). Call only when ``|C| >= threshold`` (so ``n != 0``).
    """
    n = int(value / threshold)  # truncation toward zero, as C's trunc
    value -= n * threshold
    if n > max_pulses:
        n = max_pulses
    elif n < -max_pulses:
        n = -max_pulses
    return value, n


@njit(cache=True)
def counter_sparse_kernel(count, delta, threshold, max_pulses, cells, pulses):
    """``C += delta`` and :func:`_fire` on every counter, emitting only the cells that
    fire, in one pass.

    Writes the flat index of each firing cell to ``cells[m]`` and its signed pulse
    count to ``pulses[m]`` (increasing index order); returns ``(m_total, sum |delta|)``.
    ``count`` and ``delta`` are C-contiguous; ``delta`` holds integers (the caller
    checks float input).
    """
    c = count.ravel()
    d = delta.ravel()
    m = 0
    total = 0
    for k in range(c.size):
        step = int(d[k])
        total += abs(step)
        value = c[k] + step
        if -threshold < value < threshold:  # the common case: no crossing
            c[k] = value
            continue
        c[k], n = _fire(value, threshold, max_pulses)
        cells[m] = k
        pulses[m] = n
        m += 1
    return m, total


@njit(cache=True)
def is_binary(x):
    """True when every entry of ``x`` is 0 or 1 (one branch-free pass)."""
    flat = x.ravel()
    bad = 0
    for k in range(flat.size):
        v = flat[k]
        bad += np.int64((v != 0) & (v != 1))
    return bad == 0


@njit(cache=True)
def binary_to_int8(x, out, sums):
    """``out = x`` as int8 and ``sums[s]`` = ones in row ``s``; False (``out`` and
    ``sums`` unspecified) when ``x`` holds anything but 0 and 1."""
    batch, n = x.shape
    bad = 0
    for s in range(batch):
        total = 0
        for j in range(n):
            v = x[s, j]
            one = np.int8(v == 1)
            out[s, j] = one
            total += np.int64(one)
            bad += np.int64((v != 0) & (v != 1))
        sums[s] = total
    return bad == 0


@njit(cache=True)
def _ones(x, idx):
    """Indices of the ones of the 0/1 vector ``x`` into ``idx``; returns how many."""
    n = 0
    for s in range(x.size):  # branch-free: a zero is overwritten by the next one
        idx[n] = s
        n += np.int64(x[s] == 1)
    return n


@njit(cache=True)
def _add_rows_int8(h, idx, n, acc, sign):
    """``acc += sign * sum_t h[idx[t]]`` (int8 0/1 rows), four rows per sweep."""
    cols = acc.size
    t = 0
    while t + 4 <= n:
        h0, h1, h2, h3 = h[idx[t]], h[idx[t + 1]], h[idx[t + 2]], h[idx[t + 3]]
        if sign > 0:
            for j in range(cols):
                acc[j] += (h0[j] + h1[j]) + (h2[j] + h3[j])
        else:
            for j in range(cols):
                acc[j] -= (h0[j] + h1[j]) + (h2[j] + h3[j])
        t += 4
    while t < n:
        hr = h[idx[t]]
        if sign > 0:
            for j in range(cols):
                acc[j] += hr[j]
        else:
            for j in range(cols):
                acc[j] -= hr[j]
        t += 1


@njit(cache=True)
def counter_outer_kernel(count, v_pos_t, h_pos, v_neg_t, h_neg, h_pos_sums, h_neg_sums,
                         row0, col0, threshold, max_pulses, acc, cells, pulses):
    """Contrastive statistics and counters fused, row by row, with sparse output.

    ``v_*_t`` are the transposed visible states (rows, batch), ``h_*`` the hidden
    states as int8 (batch, cols) with their row sums (:func:`binary_to_int8`); all 0/1.
    For each counter row ``i`` the batch statistic
    ``delta[i, :] = sum_{s: v+[s,i]=1} h+[s, :] - sum_{s: v-[s,i]=1} h-[s, :]``
    (``= (v+^T h+ - v-^T h-)[i, :]``) is built in the integer row ``acc`` (wide enough
    for the batch); cells with ``i >= row0`` and ``j >= col0`` get ``delta = 0``. Each
    counter then takes its ``delta`` by the accumulate-and-threshold rule of
    :func:`_fire`, and the firing cells go to ``cells`` / ``pulses`` as in
    :func:`counter_sparse_kernel`. Returns ``(m_total, n_increments)``, the latter
    ``sum_s |v+_s| |h+_s| + |v-_s| |h-_s|`` (every product a unit increment, the masked
    corner included).
    """
    rows = v_pos_t.shape[0]
    cols = acc.size
    idx = np.empty(max(v_pos_t.shape[1], v_neg_t.shape[1]), dtype=np.int64)
    m = 0
    n_incr = 0
    # |value| >= threshold  <=>  (value + threshold - 1) as unsigned >= 2 threshold - 1
    offset = np.int64(threshold - 1)
    limit = np.uint64(2 * threshold - 1)
    for i in range(rows):
        for j in range(cols):
            acc[j] = 0
        n = _ones(v_pos_t[i], idx)
        for t in range(n):
            n_incr += h_pos_sums[idx[t]]
        _add_rows_int8(h_pos, idx, n, acc, 1)
        n = _ones(v_neg_t[i], idx)
        for t in range(n):
            n_incr += h_neg_sums[idx[t]]
        _add_rows_int8(h_neg, idx, n, acc, -1)
        if i >= row0:
            for j in range(col0, cols):
                acc[j] = 0
        row = count[i]
        hits = 0
        for j in range(cols):  # vectorised: add, and count the cells that cross
            value = row[j] + np.int64(acc[j])
            row[j] = value
            hits += np.uint64(value + offset) >= limit
        if hits == 0:
            continue
        for j in range(cols):
            value = row[j]
            if -threshold < value < threshold:
                continue
            row[j], q = _fire(value, threshold, max_pulses)
            cells[m] = i * cols + j
            pulses[m] = q
            m += 1
    return m, n_incr


# ---------------------------------------------------------------------------- classes


def _check_scale(current_scale_a):
    if not isinstance(current_scale_a, (int, float)) or isinstance(current_scale_a, bool):
        raise TypeError(f"current_scale_a must be a number, got {type(current_scale_a).__name__}")
    if not (current_scale_a > 0 and math.isfinite(current_scale_a)):
        raise ValueError(f"current_scale_a must be finite and > 0, got {current_scale_a!r}")


def _as_currents(current):
    arr = np.asarray(current, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("current must be finite (no NaN or inf)")
    return arr


class _StochasticNeuron:
    """Shared plumbing: RNG, ledger, validation. Subclasses decide from (current, u)."""

    operation = "neuron"

    def __init__(self, current_scale_a=1e-6, *, decision_energy_j=50e-15, seed=None,
                 ledger: EnergyLedger | None = None):
        _check_scale(current_scale_a)
        if not decision_energy_j >= 0:
            raise ValueError(f"decision_energy_j must be >= 0, got {decision_energy_j!r}")
        self.current_scale_a = float(current_scale_a)
        self.decision_energy_j = float(decision_energy_j)
        self.rng = np.random.default_rng(seed)
        self.ledger = ledger if ledger is not None else EnergyLedger()

    def probability(self, current) -> np.ndarray:
        """Firing probability ``sigmoid(I / I0)``."""
        x = _as_currents(current) / self.current_scale_a
        return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic

    def _checked(self, current, out, dtype=np.uint8):
        current = np.asarray(current)
        if current.dtype not in (np.float32, np.float64):
            current = current.astype(np.float64)
        # one pass: a sum is finite only if every term is (currents are far below overflow)
        if not np.isfinite(np.sum(current, dtype=np.float64)):
            raise ValueError("current must be finite (no NaN or inf)")
        if out is None:
            out = np.empty(current.shape, dtype=dtype)
        elif out.shape != current.shape:
            raise ValueError(f"out has shape {out.shape}, current has {current.shape}")
        self.ledger.record(self.operation, current.size, current.size * self.decision_energy_j)
        return current, out

    def sample(self, current, out=None) -> np.ndarray:
        """One binary decision per current (uint8 0/1, or into ``out``)."""
        current, out = self._checked(current, out)
        u = self.rng.random(current.shape, dtype=np.float32)
        out[...] = self._decide(current, u)
        return out

    def sample_paired(self, current_a, current_b) -> tuple[np.ndarray, np.ndarray]:
        """Decisions for two reads of the same units that share one random draw.

        Each output alone fires with ``probability`` of its current, as :meth:`sample`;
        together they differ only where the two currents straddle the draw, so their
        difference has the expected value of two independent samples and far less
        variance (common random numbers). In hardware the random reference (or the
        magnet's fluctuation) is held over the two reads.
        """
        if np.shape(current_a) != np.shape(current_b):  # checked before any decision is booked
            raise ValueError(f"current_a has shape {np.shape(current_a)}, current_b has "
                             f"{np.shape(current_b)}; paired reads need the same units")
        current_a, out_a = self._checked(current_a, None)
        current_b, out_b = self._checked(current_b, None)
        u = self.rng.random(current_a.shape, dtype=np.float32)
        out_a[...] = self._decide(current_a, u.copy())  # _decide may work in u's place
        out_b[...] = self._decide(current_b, u)
        return out_a, out_b


class ComparatorNeuron(_StochasticNeuron):
    """Binary stochastic neuron: one comparator against a logistic random reference.

    Fires when ``I > I0 ln(u / (1 - u))``, ``u ~ U(0, 1)``, i.e. with probability
    ``sigmoid(I / I0)``. ``current_scale_a`` is ``I0`` (Wang 2022 code:
    ``I0 = I_max / (W_max - W_min) = 1 µA``). ``decision_energy_j`` is assumed (50 fJ,
    a dynamic comparator in a deep-submicron node). The simulation evaluates the
    equivalent test ``u (1 + exp(-I / I0)) < 1`` in vectorised float32.
    """

    operation = "comparator"

    def _decide(self, current, u):
        x = np.multiply(current, np.float32(-1.0 / self.current_scale_a), dtype=np.float32)
        with np.errstate(over="ignore"):  # exp overflow -> inf -> never fires, as the limit
            np.exp(x, out=x)
        x += np.float32(1.0)
        x *= u
        return x < np.float32(1.0)


class PBitNeuron(_StochasticNeuron):
    """Stochastic-MTJ p-bit neuron, ``m = sgn(tanh((I - I_off) / (2 g I0)) - r)``.

    ``r ~ U(-1, 1)`` is the thermal fluctuation of a low-barrier magnet (Camsari et
    al., Appl. Phys. Rev. 6, 011305, 2019). An ideal p-bit fires with
    ``sigmoid(I / I0)``, like the comparator; real ones differ from neuron to neuron,
    so each unit draws a gain ``g ~ 1 + gain_spread_rel N(0, 1)`` and an offset
    ``I_off ~ offset_spread_rel I0 N(0, 1)`` once (spreads assumed: 5 % each).
    A unit is identified by its position along the last axis of the currents.
    ``decision_energy_j`` is assumed (50 fJ).
    """

    operation = "mtj_sample"

    def __init__(self, current_scale_a=1e-6, *, gain_spread_rel=0.05, offset_spread_rel=0.05,
                 decision_energy_j=50e-15, seed=None, ledger: EnergyLedger | None = None):
        super().__init__(current_scale_a, decision_energy_j=decision_energy_j, seed=seed,
                         ledger=ledger)
        for name, value in (("gain_spread_rel", gain_spread_rel),
                            ("offset_spread_rel", offset_spread_rel)):
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
        self.gain_spread_rel = float(gain_spread_rel)
        self.offset_spread_rel = float(offset_spread_rel)
        # fabrication draws depend on the seed and the layer width only, so a restored
        # model gets the same devices whatever its call order
        self._fabrication_seed = int(np.random.default_rng(seed).integers(2**63 - 1)) if seed is not None \
            else int(self.rng.integers(2**63 - 1))
        self._units: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def unit_parameters(self, n_units: int) -> tuple[np.ndarray, np.ndarray]:
        """``(gain, offset_a)`` of the ``n_units`` p-bits of a layer that wide."""
        if n_units not in self._units:
            gen = np.random.default_rng([self._fabrication_seed, n_units])
            gain = np.maximum(1.0 + self.gain_spread_rel * gen.standard_normal(n_units), 0.05)
            offset = self.offset_spread_rel * self.current_scale_a * gen.standard_normal(n_units)
            self._units[n_units] = (gain, offset)
        return self._units[n_units]

    def probability(self, current) -> np.ndarray:
        current = _as_currents(current)
        gain, offset = self.unit_parameters(current.shape[-1])
        return 0.5 * (1.0 + np.tanh((current - offset) / (2.0 * self.current_scale_a * gain)))

    def _decide(self, current, u):
        gain, offset = self.unit_parameters(current.shape[-1])
        x = np.subtract(current, offset.astype(np.float32), dtype=np.float32)
        x *= (0.5 / (self.current_scale_a * gain)).astype(np.float32)
        np.tanh(x, out=x)
        u *= np.float32(2.0)
        u -= np.float32(1.0)
        return x > u


class SoftmaxWTA(_StochasticNeuron):
    """Softmax (one-hot) unit group: winner-take-all over currents with random offsets.

    Each row of currents ``(batch, k)`` yields a one-hot vector whose index is
    distributed as ``softmax(I / I0)`` (Gumbel-max trick), so label units of a DBN need
    neither an ADC nor an exponential circuit. ``decision_energy_j`` is per unit
    (assumed 50 fJ).
    """

    operation = "wta"

    def probability(self, current) -> np.ndarray:
        x = _as_currents(current) / self.current_scale_a
        x = x - x.max(axis=-1, keepdims=True)
        e = np.exp(x)
        return e / e.sum(axis=-1, keepdims=True)

    def sample(self, current, out=None) -> np.ndarray:
        current = np.asarray(current)
        if current.ndim != 2:
            raise ValueError(f"current must have shape (batch, units), got {current.shape}")
        current, out = self._checked(current, out)
        seed = int(self.rng.integers(0, 2**32 - 1))
        wta_kernel(np.ascontiguousarray(current), self.current_scale_a, seed, out)
        return out

    def sample_paired(self, current_a, current_b):
        raise NotImplementedError("SoftmaxWTA draws one random offset per unit inside its "
                                  "kernel; paired sampling is for comparator and p-bit units")


class DigitalCounter:
    """One signed integer counter per cell with the accumulate-and-threshold rule.

    Parameters
    ----------
    shape : tuple of int
        Shape of the counter array (that of the crossbar it drives).
    threshold : int
        ``CD_min`` of docs/hardware.md §3 (the batch size, 100, in Wang 2022).
    max_pulses : int
        Largest pulse count emitted per cell per update. 1 is the published rule;
        larger values give pulses proportional to the count (still no ADC).
    increment_energy_j : float
        Energy of one counter increment (default: a 16-bit add at 45 nm, 0.18 pJ).
    """

    operation = "counter_increment"

    def __init__(self, shape, threshold: int = 100, *, max_pulses: int = 1,
                 increment_energy_j: float = ADD_16BIT_J, ledger: EnergyLedger | None = None):
        shape = tuple(int(s) for s in np.atleast_1d(shape))
        if any(s <= 0 for s in shape):
            raise ValueError(f"shape must be positive, got {shape}")
        for name, value in (("threshold", threshold), ("max_pulses", max_pulses)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not increment_energy_j >= 0:
            raise ValueError(f"increment_energy_j must be >= 0, got {increment_energy_j!r}")
        self.shape = shape
        self.threshold = int(threshold)
        self.max_pulses = int(max_pulses)
        self.increment_energy_j = float(increment_energy_j)
        self.count = np.zeros(shape, dtype=np.int64)
        self._pulses = np.zeros(shape, dtype=np.int64)
        self._cells_buf = self._pulses_buf = None  # sparse output, allocated on first use
        self.ledger = ledger if ledger is not None else EnergyLedger()

    def _checked_delta(self, delta):
        delta = np.asarray(delta)
        if delta.shape != self.shape:
            raise ValueError(f"delta has shape {delta.shape}, counter has {self.shape}")
        if delta.dtype.kind not in "iuf":
            raise TypeError(f"delta must be a numeric array, got dtype {delta.dtype}")
        if delta.dtype.kind == "u":
            delta = delta.astype(np.int64)
        elif delta.dtype.kind == "f" and not all_integral(delta):
            # checked before the kernel runs, so a rejected update leaves every counter as it was
            raise ValueError("delta must hold finite integers (counters are digital)")
        return np.ascontiguousarray(delta)

    def _buffers(self):
        if self._cells_buf is None:
            self._cells_buf = np.empty(self.count.size, dtype=np.int64)
            self._pulses_buf = np.empty(self.count.size, dtype=np.int64)
        return self._cells_buf, self._pulses_buf

    def _record(self, n_increments):
        self.ledger.record(self.operation, n_increments, n_increments * self.increment_energy_j)

    def update(self, delta, n_increments: int | None = None) -> np.ndarray:
        """Add integer ``delta`` to the counters; return the signed pulses to apply.

        ``n_increments`` is how many unit increments the hardware performed to build
        ``delta`` (each ``v h`` product of the batch is one); it defaults to
        ``sum(|delta|)``, a lower bound. The returned array is reused by the next call.
        :meth:`update_sparse` returns only the firing cells.
        """
        cells, pulses = self.update_sparse(delta, n_increments)
        flat = self._pulses.reshape(-1)
        flat[:] = 0
        flat[cells] = pulses
        return self._pulses

    def update_sparse(self, delta, n_increments: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`update` returning ``(cells, pulses)``: the flat indices (increasing)
        of the counters that fire and their signed pulse counts, as
        :meth:`neuromem.Crossbar.apply_pulses_at` takes them. One pass, no dense output."""
        delta = self._checked_delta(delta)
        cells, pulses = self._buffers()
        m, total = counter_sparse_kernel(self.count, delta, self.threshold, self.max_pulses,
                                         cells, pulses)
        self._record(total if n_increments is None else n_increments)
        return cells[:m].copy(), pulses[:m].copy()

    def update_outer(self, v_pos, h_pos, v_neg, h_neg, *, skip_from=None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Counters of a 2-D array take ``v_pos^T h_pos - v_neg^T h_neg``; sparse pulses.

        ``v_*`` are ``(batch, rows)`` and ``h_*`` ``(batch_*, cols)`` arrays of 0/1 (the
        binary states of a contrastive-divergence batch: data and reconstruction). The
        statistics are accumulated row by row straight into the counters, never
        stored whole, and the firing cells come back as in :meth:`update_sparse`.
        ``skip_from=(r0, c0)``: counters with row >= r0 and column >= c0 take nothing
        (cells without a device, such as bias row x bias column). Every ``v h``
        product is one counter increment on the ledger. Raises ValueError, changing
        nothing, unless every state is 0 or 1.
        """
        if len(self.shape) != 2:
            raise ValueError(f"update_outer needs a 2-D counter array, this one is {self.shape}")
        rows, cols = self.shape
        arrays = []
        for name, x, width in (("v_pos", v_pos, rows), ("h_pos", h_pos, cols),
                               ("v_neg", v_neg, rows), ("h_neg", h_neg, cols)):
            x = np.asarray(x)
            if x.ndim != 2 or x.shape[1] != width:
                raise ValueError(f"{name} must have shape (batch, {width}), got {x.shape}")
            if x.dtype.kind not in "biuf":
                raise TypeError(f"{name} must be a numeric array, got dtype {x.dtype}")
            if x.dtype.kind != "f":
                x = x.astype(np.float32)
            arrays.append(np.ascontiguousarray(x))
        vp, hp, vn, hn = arrays
        if vp.shape[0] != hp.shape[0] or vn.shape[0] != hn.shape[0]:
            raise ValueError("v_pos/h_pos and v_neg/h_neg must have matching batch sizes")
        r0, c0 = (rows, cols) if skip_from is None else (int(skip_from[0]), int(skip_from[1]))
        hp8 = np.empty(hp.shape, dtype=np.int8)
        hn8 = np.empty(hn.shape, dtype=np.int8)
        hp_sums = np.empty(hp.shape[0], dtype=np.int64)
        hn_sums = np.empty(hn.shape[0], dtype=np.int64)
        if not (is_binary(vp) and is_binary(vn)
                and binary_to_int8(hp, hp8, hp_sums) and binary_to_int8(hn, hn8, hn_sums)):
            raise ValueError("update_outer needs binary states (only 0 and 1)")
        cells, pulses = self._buffers()
        # |statistic| <= batch size: 16-bit rows (twice the SIMD width of 32-bit ones)
        acc = np.empty(cols, dtype=np.int16 if max(len(vp), len(vn)) < 2**15 else np.int64)
        m, n_incr = counter_outer_kernel(self.count, np.ascontiguousarray(vp.T), hp8,
                                         np.ascontiguousarray(vn.T), hn8, hp_sums, hn_sums,
                                         r0, c0, self.threshold, self.max_pulses, acc,
                                         cells, pulses)
        self._record(n_incr)
        return cells[:m].copy(), pulses[:m].copy()

    def reset(self) -> None:
        self.count[...] = 0
