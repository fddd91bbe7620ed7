"""Numba kernels behind :class:`neuromem.Crossbar` (kept flat so they cache and test alone)."""

import numpy as np
from numba import njit


@njit(cache=True)
def effective_conductance(g_plus, g_minus, sign_minus, out32, row_sum, col_sum):
    """``out32 = g_plus - sign_minus * g_minus`` (float32) and per-line total conductance.

    ``row_sum[i]`` (``col_sum[j]``) is the sum over the row (column) of every device's
    conductance, both arrays: what driving that line dissipates per volt squared.
    """
    flat = out32.ravel()
    cols = col_sum.size
    col_sum[:] = 0.0
    for i in range(row_sum.size):
        total = 0.0
        base = i * cols
        for j in range(cols):
            k = base + j
            gp = g_plus[k]
            gm = g_minus[k]
            flat[k] = gp - sign_minus * gm
            both = gp + abs(sign_minus) * gm
            total += both
            col_sum[j] += both
        row_sum[i] = total


@njit(cache=True)
def override(g, fault_g):
    """Faulty cells read their fault value (NaN marks a healthy cell)."""
    for k in range(g.size):
        f = fault_g[k]
        if not np.isnan(f):
            g[k] = f


@njit(cache=True)
def outer_counts(row_signs, col_pulses, counts):
    """Counts of the in-array outer-product update: ``counts[i, j] = s_i * n_j``."""
    rows = row_signs.size
    cols = col_pulses.size
    for i in range(rows):
        s = row_signs[i]
        for j in range(cols):
            counts[i * cols + j] = s * col_pulses[j]


@njit(cache=True)
def pulse_totals(counts):
    """Number of potentiating pulses, depressing pulses and the largest |count|."""
    up = 0
    down = 0
    longest = 0
    for k in range(counts.size):
        n = counts[k]
        if n > 0:
            up += n
        elif n < 0:
            down -= n
        a = abs(n)
        if a > longest:
            longest = a
    return up, down, longest


@njit(cache=True)
def tally_pulses(cells, counts, tally):
    """``tally[cells] += |counts|``; returns ``pulse_totals(counts)`` (one pass)."""
    up = 0
    down = 0
    longest = 0
    for m in range(cells.size):
        n = counts[m]
        a = abs(n)
        if n > 0:
            up += n
        else:
            down += a
        if a > longest:
            longest = a
        tally[cells[m]] += a
    return up, down, longest


@njit(cache=True)
def strictly_increasing_within(cells, size):
    """True when ``0 <= cells[0] < cells[1] < ... < size`` (distinct, sorted, in range)."""
    last = -1
    for m in range(cells.size):
        k = cells[m]
        if k <= last:
            return False
        last = k
    return last < size


# A fixed table of standard-normal samples that read noise indexes at random: drawing
# an index costs a few integer operations, far less than a Gaussian variate, and a
# 2**16-entry table reproduces the normal law to well within any read-noise model's
# own accuracy. The table is a constant; the per-read seed gives reproducibility.
NOISE_TABLE_BITS = 16
NOISE_TABLE = np.random.default_rng(0x5EED).standard_normal(2**NOISE_TABLE_BITS).astype(np.float32)


@njit(cache=True)
def add_read_noise(currents, rel, absolute, seed, table):
    """``I += (rel * |I| + absolute) * z`` in place, z from ``table`` at xorshift64* indices."""
    state = np.uint64(seed) | np.uint64(1)
    shift = np.uint64(64 - NOISE_TABLE_BITS)
    mult = np.uint64(0x2545F4914F6CDD1D)
    c = currents.ravel()
    for k in range(c.size):
        state ^= state >> np.uint64(12)
        state ^= state << np.uint64(25)
        state ^= state >> np.uint64(27)
        z = table[(state * mult) >> shift]
        c[k] += (rel * abs(c[k]) + absolute) * z


@njit(cache=True)
def line_conductance_at(cells, g_plus, g_minus, sign_minus):
    """Conductance both devices of each listed cell put on its lines (for sparse refresh)."""
    out = np.empty(cells.size)
    for n in range(cells.size):
        k = cells[n]
        out[n] = g_plus[k] + abs(sign_minus) * g_minus[k]
    return out


@njit(cache=True)
def refresh_cells(cells, g_plus, g_minus, fault_plus, fault_minus, sign_minus, out32,
                  row_sum, col_sum, old_line):
    """Sparse version of ``override`` + ``effective_conductance`` for the listed cells.

    Only pulsed cells change, so the float32 copy and the line sums are patched there
    instead of swept over the whole array. ``fault_minus`` may be empty (no G- faults).
    """
    flat = out32.ravel()
    cols = col_sum.size
    for n in range(cells.size):
        k = cells[n]
        f = fault_plus[k]
        if not np.isnan(f):
            g_plus[k] = f
        if fault_minus.size:
            f = fault_minus[k]
            if not np.isnan(f):
                g_minus[k] = f
        flat[k] = g_plus[k] - sign_minus * g_minus[k]
        change = g_plus[k] + abs(sign_minus) * g_minus[k] - old_line[n]
        row_sum[k // cols] += change
        col_sum[k % cols] += change


@njit(cache=True)
def _add_rows(w, idx, start, stop, o):
    """``o += sum_t w[idx[t]]`` for ``t`` in ``[start, stop)``, eight rows per sweep of ``o``."""
    cols = o.size
    t = start
    while t + 8 <= stop:
        w0, w1, w2, w3 = w[idx[t]], w[idx[t + 1]], w[idx[t + 2]], w[idx[t + 3]]
        w4, w5, w6, w7 = w[idx[t + 4]], w[idx[t + 5]], w[idx[t + 6]], w[idx[t + 7]]
        for j in range(cols):
            o[j] += ((w0[j] + w1[j]) + (w2[j] + w3[j])) + ((w4[j] + w5[j]) + (w6[j] + w7[j]))
        t += 8
    while t < stop:
        wt = w[idx[t]]
        for j in range(cols):
            o[j] += wt[j]
        t += 1


@njit(cache=True)
def binary_drive(x, line_sum):
    """Checks a 0/1 drive ``x`` (batch, n) and sums what it drives, in one pass.

    Returns ``(ok, ones, drive)``: ``ok`` is False when ``x`` holds anything but 0
    and 1; ``ones`` counts the driven lines; ``drive`` sums ``line_sum`` over every
    driven line (the read energy per volt squared and second).
    """
    batch, n = x.shape
    bad = 0
    per_line = np.zeros(n, dtype=np.int64)
    for s in range(batch):  # branch-free integer counts: vectorises over the lines
        for i in range(n):
            v = x[s, i]
            per_line[i] += np.int64(v == 1)
            bad += np.int64((v != 0) & (v != 1))
    ones = 0
    drive = 0.0
    for i in range(n):
        ones += per_line[i]
        drive += per_line[i] * line_sum[i]
    return bad == 0, ones, drive


@njit(cache=True)
def binary_read(x, w, out):
    """Read with a 0/1 drive: ``out[s] = sum of the rows w[i] with x[s, i] == 1``.

    ``x`` (batch, n) holds 0/1 (checked by :func:`binary_drive`), ``w`` is (n, m)
    float32, ``out`` (batch, m) float32. A driven row adds its conductances to every
    column, so ``x @ w`` is a sum of selected rows: work proportional to the ones,
    not to ``x.size``.
    """
    batch, n = x.shape
    idx = np.empty(n, dtype=np.int64)
    for s in range(batch):
        xs = x[s]
        count = 0
        for i in range(n):  # branch-free: a zero is overwritten by the next one
            idx[count] = i
            count += np.int64(xs[i] == 1)
        o = out[s]
        for j in range(o.size):
            o[j] = 0.0
        _add_rows(w, idx, 0, count, o)


@njit(cache=True)
def patch_transposed(cells, w32, w32t):
    """``w32t[j, i] = w32[i, j]`` for the listed flat cells ``i * cols + j``."""
    cols = w32.shape[1]
    for n in range(cells.size):
        k = cells[n]
        i = k // cols
        j = k - i * cols
        w32t[j, i] = w32[i, j]
