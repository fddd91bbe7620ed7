"""Numba kernels of the Diehl & Cook 2015 network (:class:`networks.DiehlCookEngine`).

Flat functions over flat arrays, so they cache and can be tested alone. Units are SI
(volts, seconds); time is counted in steps of ``dt``. The step order is Brian2's
default schedule, so a step here is a step of :class:`networks.stdp.DiehlCook2015`:
state update of both populations (forward Euler), thresholds, synaptic propagation
(excitatory->inhibitory, inhibitory->excitatory, the STDP post pathway, then the input
pathway), resets.

Plasticity does not write weights. Each desired change ``dw`` goes through the pulse
conversion of :class:`neuromem.brian.CrossbarSynapses` (``RULE_RESIDUAL``: carried
remainder, ``RULE_STOCHASTIC``: stochastic rounding) into a per-cell pending pulse
count, and the caller hands pending pulses to the crossbar at sync points
(``RULE_CLIP`` is plain software STDP, ``w = clip(w + dw, 0, w_max)``).
"""

import numpy as np
from numba import njit

# rows of the parameter vector (see DiehlCookEngine._parameter_vector)
# (rates dt/tau instead of time constants: the kernels multiply, they never divide)
# (the excitatory thresholds are per neuron: an array argument of simulate)
DT, V_REST_E, V_RESET_E, RATE_E, E_INH_E, RATE_GE, RATE_GI, RATE_THETA, \
    THETA_PLUS, V_REST_I, V_RESET_I, V_THRESH_I, RATE_I, E_INH_I, W_EI, W_IE, NU_PRE, \
    NU_POST, W_MAX, DW_UP, DW_DOWN, PER_DW_UP, PER_DW_DOWN = range(23)
N_PARAMETERS = 23

#: traces below this are dropped: adding less than 1e-20 of a step to an accumulator
#: that holds a remainder of the order of one step changes no bit of it
TRACE_FLOOR = 1e-20

RULE_CLIP, RULE_RESIDUAL, RULE_STOCHASTIC = 0, 1, 2


@njit(cache=True)
def poisson_raster(rates_hz, n_steps, dt_s, seed):
    """Poisson spikes of every input over ``n_steps``: ``(ptr, idx)`` in CSR form.

    Input ``i`` spikes in a step with probability ``p = rates_hz[i] * dt_s`` (Brian2's
    ``PoissonGroup``); the gaps between spikes are drawn as ``Geometric(p)``, so the
    cost follows the number of spikes, not of steps. ``idx[ptr[n]:ptr[n + 1]]`` are the
    inputs spiking in step ``n``, in increasing order.
    """
    np.random.seed(seed)
    n_in = rates_hz.size
    cap = 1024
    steps = np.empty(cap, np.int64)
    who = np.empty(cap, np.int64)
    m = 0
    for i in range(n_in):
        p = rates_hz[i] * dt_s
        if p <= 0.0:
            continue
        s = -1
        while True:
            s += 1 if p >= 1.0 else np.random.geometric(p)
            if s >= n_steps:
                break
            if m == cap:
                cap *= 2
                steps2 = np.empty(cap, np.int64)
                who2 = np.empty(cap, np.int64)
                steps2[:m] = steps[:m]
                who2[:m] = who[:m]
                steps, who = steps2, who2
            steps[m] = s
            who[m] = i
            m += 1
    ptr = np.zeros(n_steps + 1, np.int64)
    for k in range(m):
        ptr[steps[k] + 1] += 1
    for n in range(n_steps):
        ptr[n + 1] += ptr[n]
    fill = ptr[:-1].copy()
    idx = np.empty(m, np.int64)
    for k in range(m):  # inputs were visited in increasing order: stays sorted per step
        idx[fill[steps[k]]] = who[k]
        fill[steps[k]] += 1
    return ptr, idx


@njit(cache=True, inline="always")
def uniform(rng_state):
    """A uniform draw in [0, 1) from a SplitMix64 stream held in ``rng_state[0]``.

    (Numba's own generator is slower here: touching it in an inlined helper keeps
    the whole loop around it from being optimised.)
    """
    rng_state[0] += np.uint64(0x9E3779B97F4A7C15)
    z = rng_state[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def request(cell, dw, rule, steps, w, acc, pending, listed, cells, n_listed, rng_state):
    """Turn a desired change ``dw`` of one cell into pending pulses (or write it, clip rule).

    ``steps`` is ``(dw_up, dw_down, 1 / dw_up, 1 / dw_down, w_max)`` as scalars: read
    from an array inside the loops, they could alias the arrays written here, and the
    compiled loop reloads them every time (several times slower).
    """
    up, down, per_up, per_down, w_max = steps
    n = 0
    if rule == RULE_RESIDUAL:
        a = acc[cell] + dw
        # divide, as the Brian2 synapses do: a product with the reciprocal can differ
        # in the last bit and move a pulse
        if a > 0.0:
            n = int(a / up)
            a -= n * up
        elif a < 0.0:
            n = int(a / down)
            a -= n * down
        acc[cell] = a
    elif rule == RULE_STOCHASTIC:
        x = dw * per_up if dw > 0.0 else dw * per_down
        n = int(np.floor(x + uniform(rng_state)))
    else:
        x = w[cell] + dw
        w[cell] = 0.0 if x < 0.0 else (w_max if x > w_max else x)
    if n != 0:
        pending[cell] += n
        if listed[cell] == 0:
            listed[cell] = 1
            cells[n_listed[0]] = cell
            n_listed[0] += 1


@njit(cache=True, inline="always")
def pulse_steps(p):
    """The scalars :func:`request` takes, from the parameter vector."""
    return (p[DW_UP], p[DW_DOWN], p[PER_DW_UP], p[PER_DW_DOWN], p[W_MAX])


@njit(cache=True)
def trace_table(dt_s, tau_s):
    """``table[n] = exp(-n dt / tau)`` down to :data:`TRACE_FLOOR` (a trace ``n`` steps
    after it was set to 1; later it counts as 0)."""
    n = int(np.ceil(tau_s / dt_s * np.log(1.0 / TRACE_FLOOR))) + 1
    table = np.empty(n)
    for k in range(n):
        table[k] = np.exp(-(k * dt_s) / tau_s)
    return table


@njit(cache=True, inline="always")
def _trace(value, since, table):
    """An event-driven trace set to ``value`` ``since`` steps ago."""
    if since >= table.size:
        return 0.0
    return value * table[since]


@njit(cache=True)
def simulate(first, stop, step_offset, sync_every, on_steps, ptr, idx, delay_order,
             delay_start, n_delays, p, learn, rule, w, acc, pending, listed, cells, n_listed,
             v_e, ge_e, gi_e, theta, last_e, v_i, ge_i, gi_i, last_i,
             pre, pre_t, post1, post2, post_t, counts, events, thresh_e, refrac_e,
             refrac_e_base, refrac_e_jitter, spike_block_e, refrac_i,
             table_pre, table_post1, table_post2, rng_state):
    """Steps ``first .. stop - 1`` of one presentation; returns the next step to run.

    Input spikes come from ``(ptr, idx)`` for steps below ``on_steps`` (then rest).
    A spike of input ``i`` sent in step ``n`` reaches the synapses of delay ``d`` in
    step ``n + d``: ``delay_order[i * n_e + k]`` for ``k`` in
    ``delay_start[i * (n_delays + 1) + d]`` up to the next start (synapses of one input
    sorted by delay, see :func:`delay_tables`). The pre trace lives on each synapse
    (``pre``, ``pre_t``: ``n_in * n_e``), set when a spike arrives there.
    Spike and trace times are absolute steps (``step_offset`` + local step), so the
    state can carry from one presentation to the next; traces are exact exponentials
    read from ``trace_table``. After a step whose absolute index is a multiple of
    ``sync_every`` the kernel returns early when pulses are pending, for the caller to
    apply them. ``counts[j]`` counts the spikes of excitatory neuron ``j``;
    ``events[i]`` the spikes of input ``i`` (synaptic reads). Excitatory neuron ``j``
    fires above ``theta[j] + thresh_e[j]``, its membrane is clamped for ``refrac_e[j]``
    steps and it cannot fire again for ``spike_block_e`` steps;
    with ``refrac_e_jitter > 0`` each spike draws its refractory period uniformly
    within ``refrac_e_base[j] * (1 +- refrac_e_jitter)`` (volatile-memristor neurons).
    """
    n_e = v_e.size
    n_in = pre.size // n_e
    keep_ge = 1.0 - p[RATE_GE]
    keep_gi = 1.0 - p[RATE_GI]
    keep_theta = 1.0 - p[RATE_THETA]
    rate_e = p[RATE_E]
    rate_i = p[RATE_I]
    steps = pulse_steps(p)
    nu_post = p[NU_POST]
    nu_pre = p[NU_PRE]
    fired_e = np.empty(n_e, np.int64)
    fired_i = np.empty(n_e, np.int64)
    post1_now = np.empty(n_e)
    for s in range(first, stop):
        t = step_offset + s
        # -- state update (Euler; every right-hand side from the old values)
        for j in range(n_e):
            if t - last_e[j] >= refrac_e[j]:
                v = v_e[j]
                v_e[j] = v + rate_e * ((p[V_REST_E] - v) + ge_e[j] * (-v)
                                       + gi_e[j] * (p[E_INH_E] - v))
            ge_e[j] *= keep_ge
            gi_e[j] *= keep_gi
            if learn:  # the paper holds thresholds fixed while testing
                theta[j] *= keep_theta
            if t - last_i[j] >= refrac_i:
                v = v_i[j]
                v_i[j] = v + rate_i * ((p[V_REST_I] - v) + ge_i[j] * (-v)
                                       + gi_i[j] * (p[E_INH_I] - v))
            ge_i[j] *= keep_ge
            gi_i[j] *= keep_gi
        # -- thresholds
        n_fe = 0
        n_fi = 0
        for j in range(n_e):
            since = t - last_e[j]
            if since >= refrac_e[j] and since >= spike_block_e and v_e[j] > theta[j] + thresh_e[j]:
                fired_e[n_fe] = j
                n_fe += 1
                last_e[j] = t
                if refrac_e_jitter > 0.0:  # cycle-to-cycle spread of a volatile device
                    x = refrac_e_base[j] * (1.0 + refrac_e_jitter * (2.0 * uniform(rng_state) - 1.0))
                    refrac_e[j] = max(1, int(x + 0.5))
            if t - last_i[j] >= refrac_i and v_i[j] > p[V_THRESH_I]:
                fired_i[n_fi] = j
                n_fi += 1
                last_i[j] = t
        # -- synapses: excitatory -> inhibitory (one to one), inhibitory -> excitatory
        for f in range(n_fe):
            ge_i[fired_e[f]] += p[W_EI]
        for f in range(n_fi):
            k = fired_i[f]
            for j in range(n_e):
                if j != k:
                    gi_e[j] += p[W_IE]
        # -- STDP, post pathway: potentiation by the pre trace and the slow post trace
        if learn:
            for f in range(n_fe):
                j = fired_e[f]
                slow = _trace(post2[j], t - post_t[j], table_post2)
                if slow > 0.0:
                    for i in range(n_in):
                        c = i * n_e + j
                        x = _trace(pre[c], t - pre_t[c], table_pre)
                        if x > 0.0:
                            request(c, nu_post * x * slow, rule, steps, w, acc,
                                    pending, listed, cells, n_listed, rng_state)
                post1[j] = 1.0
                post2[j] = 1.0
                post_t[j] = t
        # -- input pathway: spikes arriving now drive, depress by the fast post
        #    trace, and set the synapse's pre trace
        traced = False
        for d in range(n_delays - 1, -1, -1):  # Brian2's order: the earliest sent first
            sent = s - d
            if sent < 0 or sent >= on_steps or ptr[sent + 1] == ptr[sent]:
                continue
            if learn and not traced:
                for j in range(n_e):
                    post1_now[j] = _trace(post1[j], t - post_t[j], table_post1)
                traced = True
            for m in range(ptr[sent], ptr[sent + 1]):
                i = idx[m]
                base = i * n_e
                if d == 0:
                    events[i] += 1  # one read of row i per input spike
                row = i * (n_delays + 1) + d
                for k in range(delay_start[row], delay_start[row + 1]):
                    j = delay_order[base + k]
                    c = base + j
                    ge_e[j] += w[c]
                    if learn:
                        if post1_now[j] > 0.0:
                            request(c, -nu_pre * post1_now[j], rule, steps, w, acc,
                                    pending, listed, cells, n_listed, rng_state)
                        pre[c] = 1.0
                        pre_t[c] = t
        # -- resets
        for f in range(n_fe):
            j = fired_e[f]
            v_e[j] = p[V_RESET_E]
            if learn:
                theta[j] += p[THETA_PLUS]
            counts[j] += 1
        for f in range(n_fi):
            v_i[fired_i[f]] = p[V_RESET_I]
        if n_listed[0] > 0 and t % sync_every == 0:
            return s + 1
    return stop


def delay_tables(delay_steps):
    """``(delay_order, delay_start, n_delays)`` for :func:`simulate` from per-synapse
    delays ``(n_in, n_e)`` in steps: each input's synapses sorted by delay (stable, so
    by neuron within a delay), and where each delay's run of them starts."""
    delay_steps = np.asarray(delay_steps, dtype=np.int64)
    n_in, n_e = delay_steps.shape
    n_delays = int(delay_steps.max()) + 1 if delay_steps.size else 1
    order = np.argsort(delay_steps, axis=1, kind="stable").astype(np.int64)
    per_delay = np.zeros((n_in, n_delays), np.int64)
    np.add.at(per_delay, (np.repeat(np.arange(n_in), n_e), delay_steps.ravel()), 1)
    start = np.zeros((n_in, n_delays + 1), np.int64)
    np.cumsum(per_delay, axis=1, out=start[:, 1:])
    return order.ravel(), start.ravel(), n_delays


@njit(cache=True)
def normalise_columns(w, total, n_in, n_e, rule, p, acc, pending, listed, cells, n_listed,
                      rng_state):
    """Request ``w[:, j] *= total / sum_i w[i, j]`` for every column with a positive sum."""
    col = np.zeros(n_e)
    for i in range(n_in):
        for j in range(n_e):
            col[j] += w[i * n_e + j]
    for j in range(n_e):
        col[j] = total / col[j] - 1.0 if col[j] > 0.0 else 0.0
    if rule == RULE_CLIP:
        for i in range(n_in):
            for j in range(n_e):
                w[i * n_e + j] *= 1.0 + col[j]
        return
    dw = np.empty(n_in * n_e)
    for i in range(n_in):
        for j in range(n_e):
            dw[i * n_e + j] = w[i * n_e + j] * col[j]
    request_all(dw, rule, p, acc, pending, listed, cells, n_listed, rng_state)


@njit(cache=True)
def request_all(dw, rule, p, acc, pending, listed, cells, n_listed, rng_state):
    """:func:`request` for every cell at once (no clip rule), in two passes: the pulse
    counts first (a tight loop over contiguous arrays), then the bookkeeping of the
    few cells that got pulses."""
    up, down, per_up, per_down, _ = pulse_steps(p)
    n = np.zeros(dw.size, np.int64)
    if rule == RULE_RESIDUAL:
        for k in range(dw.size):
            a = acc[k] + dw[k]
            if a > 0.0:
                n[k] = int(a / up)
                a -= n[k] * up
            elif a < 0.0:
                n[k] = int(a / down)
                a -= n[k] * down
            acc[k] = a
    else:
        for k in range(dw.size):
            x = dw[k] * per_up if dw[k] > 0.0 else dw[k] * per_down
            n[k] = int(np.floor(x + uniform(rng_state)))
    for k in range(dw.size):
        if n[k] != 0:
            pending[k] += n[k]
            if listed[k] == 0:
                listed[k] = 1
                cells[n_listed[0]] = k
                n_listed[0] += 1
