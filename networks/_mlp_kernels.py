"""Numba kernels behind :class:`networks.CrossbarMLP` (pulse plans of the in-array update)."""

import numpy as np
from numba import njit


@njit(cache=True)
def _round(x, stochastic):
    """``floor(x + u)``, ``u ~ U(0, 1)`` (unbiased) or ``floor(x + 0.5)`` (nearest)."""
    if stochastic:
        return np.floor(x + np.random.random())
    return np.floor(x + 0.5)


@njit(cache=True)
def outer_plan(x, delta, scale, max_pulses, stochastic, seed, row_on, col_pulses, cells, counts,
               offsets):
    """Pulse plan of one rank-1 update per sample: ``Delta w_ij = -eta x_i delta_j``.

    Row ``i`` of sample ``s`` is driven (``row_on[s, i] = 1``) with probability ``x_i``
    (``x`` in [0, 1]: always for 1, never for 0); column ``j`` gets a pulse train of
    ``n_j = round(scale |delta_j|)`` pulses (``scale = eta / Delta w_pulse``, at most
    ``max_pulses``), and its polarity sets the row-voltage sign, so cell ``(i, j)``
    receives ``-sign(delta_j) n_j`` pulses where row ``i`` is driven. The expected change
    is ``-eta x_i delta_j``. ``col_pulses[s, j]`` holds the signed trains
    ``-sign(delta_j) n_j``; the nonzero cells of sample ``s`` are written to
    ``cells[offsets[s]:offsets[s + 1]]`` (flat, increasing) with their ``counts``.
    """
    np.random.seed(seed)
    batch, rows = x.shape
    cols = delta.shape[1]
    m = 0
    offsets[0] = 0
    for s in range(batch):
        for i in range(rows):
            xi = x[s, i]
            if xi >= 1.0:
                row_on[s, i] = 1
            elif xi <= 0.0:
                row_on[s, i] = 0
            elif stochastic:
                row_on[s, i] = 1 if np.random.random() < xi else 0
            else:
                row_on[s, i] = 1 if xi >= 0.5 else 0
        for j in range(cols):
            n = _round(scale * abs(delta[s, j]), stochastic)
            if n > max_pulses:
                n = max_pulses
            col_pulses[s, j] = -int(n) if delta[s, j] > 0 else int(n)
        for i in range(rows):
            if row_on[s, i] == 0:
                continue
            base = i * cols
            for j in range(cols):
                c = col_pulses[s, j]
                if c != 0:
                    cells[m] = base + j
                    counts[m] = c
                    m += 1
        offsets[s + 1] = m


@njit(cache=True)
def momentum_plan(x, delta, velocity, momentum, eta, pulse_w, max_pulses, stochastic, seed,
                  cells, counts, offsets):
    """Pulse plan with momentum; one sample after the other.

    ``v = momentum v - eta x delta^T`` (``velocity`` updated in place, digital memory),
    then every cell gets ``round(v_ij / pulse_w)`` pulses (at most ``max_pulses`` in
    magnitude), cell by cell: ``v`` is not an outer product, so the array is written
    row by row. Nonzero cells of sample ``s`` go to ``cells[offsets[s]:offsets[s+1]]``.
    """
    np.random.seed(seed)
    batch, rows = x.shape
    cols = delta.shape[1]
    m = 0
    offsets[0] = 0
    for s in range(batch):
        for i in range(rows):
            xi = x[s, i]
            base = i * cols
            for j in range(cols):
                v = momentum * velocity[i, j] - eta * xi * delta[s, j]
                velocity[i, j] = v
                n = _round(abs(v) / pulse_w, stochastic)
                if n > max_pulses:
                    n = max_pulses
                if n != 0:
                    cells[m] = base + j
                    counts[m] = int(n) if v > 0 else -int(n)
                    m += 1
        offsets[s + 1] = m
