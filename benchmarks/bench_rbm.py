"""CD-1 training throughput of the memristive RBM against numpy and scikit-learn.

One run measures, on binarised MNIST (784 visible units, pixels > 127 -> 1; the first
``--n-samples`` training images), 500 hidden units and mini-batches of 100, the
samples per second of one training epoch of

* ``memristive``: ``MemristiveRBM(500, device="yflash", update="counter",
  neuron="comparator", batch_size=100).partial_fit(X)`` -- Y-Flash compact model with
  device-to-device and cycle-to-cycle spread, digital counters, comparator neurons;
* ``numpy``: a plain numpy float32 CD-1 doing the same math (written below): binary
  sampled ``h0``, ``v1``, ``h1`` (``u < sigmoid(x)``), float weight and bias update
  ``lr / n (v0^T h0 - v1^T h1)``;
* ``sklearn``: ``BernoulliRBM(n_components=500, batch_size=100, n_iter=1).fit(X)``
  (float32 data stay float32; one epoch per fit, including its validation and
  initialisation, which take well under 1 % of the epoch).

Protocol: every contender first runs one warm-up epoch (numba compilation, crossbar
programming, BLAS start-up excluded); then ``--repeats`` rounds in which the contenders
take turns (rotating order) so that load from other processes hits them alike. The
reported epoch time is the median over rounds; samples/s = n_samples / epoch time.
Ratios are memristive throughput / reference throughput (targets, issue 3: >= 1.0 against
numpy, >= 2.0 against scikit-learn). Everything is measured twice in the same run: with
the BLAS thread pool as the environment configures it, and with one BLAS thread
(steadier on a shared machine; the memristive RBM's numba kernels are serial anyway).

``--profile`` adds a per-piece timing of the memristive ``_fit_batch`` (one BLAS
thread): a replica of the CD-1 counter path that calls the same methods in the same
order with a clock around each piece, checked to produce bit-identical conductances.

    python benchmarks/bench_rbm.py [--n-samples 10000] [--repeats 3] [--profile]
                                   [--data DIR] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import neuromem  # noqa: E402
from networks import MemristiveRBM  # noqa: E402
from neuromem.data import binarize, load_mnist  # noqa: E402

N_VISIBLE, N_HIDDEN, BATCH = 784, 500, 100
LEARNING_RATE = 0.05
TARGET_NUMPY = 1.0
TARGET_SKLEARN = 2.0


# ------------------------------------------------------------------------ references

class NumpyCD1:
    """Plain numpy float32 CD-1 with binary stochastic units and float updates."""

    def __init__(self, n_visible, n_hidden, batch_size=BATCH, learning_rate=LEARNING_RATE,
                 seed=0):
        self.rng = np.random.default_rng(seed)
        self.W = (0.01 * self.rng.standard_normal((n_visible, n_hidden))).astype(np.float32)
        self.b = np.zeros(n_visible, dtype=np.float32)  # visible biases
        self.c = np.zeros(n_hidden, dtype=np.float32)  # hidden biases
        self.batch_size = batch_size
        self.learning_rate = learning_rate

    def _sample(self, x):
        """Binary units: 1 where u < sigmoid(x)."""
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-x))
        return (self.rng.random(x.shape, dtype=np.float32) < p).astype(np.float32)

    def fit_batch(self, v0):
        h0 = self._sample(v0 @ self.W + self.c)
        v1 = self._sample(h0 @ self.W.T + self.b)
        h1 = self._sample(v1 @ self.W + self.c)
        scale = np.float32(self.learning_rate / len(v0))
        self.W += scale * (v0.T @ h0 - v1.T @ h1)
        self.b += scale * (v0.sum(axis=0) - v1.sum(axis=0))
        self.c += scale * (h0.sum(axis=0) - h1.sum(axis=0))

    def epoch(self, X):
        order = self.rng.permutation(len(X))
        for start in range(0, len(X), self.batch_size):
            self.fit_batch(X[order[start: start + self.batch_size]])


# ------------------------------------------------------------------------ timing

def _time_rounds(fns, repeats):
    """Seconds per call of each function (a dict), taking turns in rotating order."""
    names = list(fns)
    for name in names:  # warm-up epoch
        fns[name]()
    times = {name: [] for name in names}
    for rep in range(repeats):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: {"median_s": statistics.median(t), "best_s": min(t), "all_s": t}
            for name, t in times.items()}


def _contenders(X, seed):
    from sklearn.neural_network import BernoulliRBM

    memristive = MemristiveRBM(N_HIDDEN, device="yflash", update="counter", neuron="comparator",
                               batch_size=BATCH, random_state=seed)
    memristive.partial_fit(X[:BATCH])  # build and program the crossbar (excluded)
    reference = NumpyCD1(N_VISIBLE, N_HIDDEN, seed=seed)
    sk = BernoulliRBM(n_components=N_HIDDEN, batch_size=BATCH, n_iter=1,
                      learning_rate=LEARNING_RATE, random_state=seed)
    fns = {
        "memristive": lambda: memristive.partial_fit(X),
        "numpy": lambda: reference.epoch(X),
        "sklearn": lambda: sk.fit(X),
    }
    return fns, memristive


def _blas_threads(n):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas") if n else contextlib.nullcontext()


def _threadpools():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover
        return "threadpoolctl not installed"
    return [{k: i.get(k) for k in ("user_api", "internal_api", "num_threads", "version")}
            for i in threadpool_info()]


def _measure(X, repeats, seed, threads):
    with _blas_threads(threads):
        fns, memristive = _contenders(X, seed)
        pulses_before = (memristive.ledger_.count("potentiate"), memristive.ledger_.count("depress"))
        timings = _time_rounds(fns, repeats)
    n = len(X)
    rate = {k: n / v["median_s"] for k, v in timings.items()}
    epochs = repeats + 1
    up = memristive.ledger_.count("potentiate") - pulses_before[0]
    down = memristive.ledger_.count("depress") - pulses_before[1]
    return {
        "timings": timings,
        "samples_per_s": rate,
        "ratio_memristive_over_numpy": rate["memristive"] / rate["numpy"],
        "ratio_memristive_over_sklearn": rate["memristive"] / rate["sklearn"],
        "ratio_numpy_over_sklearn": rate["numpy"] / rate["sklearn"],
        "memristive_pulses_per_epoch": {"potentiate": up / epochs, "depress": down / epochs},
    }


# ------------------------------------------------------------------------ profile

def _timed_fit_batch(rbm, v0, acc):
    """``MemristiveRBM._fit_batch`` for cd_k=1, counter rule, no PCD, piece by piece.

    Mirrors networks/rbm.py; ``acc`` collects seconds per piece.
    """
    clock = time.perf_counter
    xbar = rbm.crossbar_

    t = clock()
    v0b = rbm._with_bias(v0)
    acc["bias columns"] += clock() - t
    t = clock()
    i_h0 = rbm._hidden_currents(v0b)
    acc["read (v0 -> h0 currents)"] += clock() - t
    t = clock()
    h0 = rbm._sample(i_h0)
    h0b = rbm._with_bias(h0)
    acc["neuron sampling"] += clock() - t
    t = clock()
    i_v1 = rbm._visible_currents(h0b)
    acc["read_back (h0 -> v1 currents)"] += clock() - t
    t = clock()
    v1 = rbm._sample_visible(i_v1)
    v1b = rbm._with_bias(v1)
    acc["neuron sampling"] += clock() - t
    t = clock()
    i_h1 = rbm._hidden_currents(v1b)
    acc["read (v1 -> h1 currents)"] += clock() - t
    t = clock()
    h1 = rbm._sample(i_h1)
    h1b = rbm._with_bias(h1)
    acc["neuron sampling"] += clock() - t
    t = clock()
    cells, pulses = rbm._counter.update_outer(v0b, h0b, v1b, h1b,
                                              skip_from=(rbm._nv, rbm.n_components))
    acc["counters: fused statistics + threshold"] += clock() - t
    t = clock()
    xbar.apply_pulses_at(cells, pulses)
    acc["apply_pulses_at: device kernel, ledger, refresh"] += clock() - t
    return v1


def _profile(X, seed, n_batches=40, passes=3):
    """Per-piece seconds per batch of the memristive CD-1 and of the numpy CD-1 (one
    BLAS thread). Each piece: the smallest of ``passes`` passes over the same
    ``n_batches`` batches (robust to bursts of load from other processes)."""
    n_batches = min(n_batches, len(X) // BATCH)
    with _blas_threads(1):
        rbm = MemristiveRBM(N_HIDDEN, device="yflash", update="counter", neuron="comparator",
                            batch_size=BATCH, random_state=seed)
        rbm.partial_fit(X[: 2 * BATCH])
        if rbm.scheme != "reference" or rbm.cd_k != 1 or rbm.persistent:
            raise RuntimeError("the profile replica covers the reference scheme, CD-1, no PCD")
        twin = copy.deepcopy(rbm)
        batches = [X[i * BATCH:(i + 1) * BATCH] for i in range(n_batches)]
        # fidelity: the replica and the real method leave identical conductances
        for v0 in batches[:3]:
            rbm._fit_batch(v0)
            _timed_fit_batch(twin, v0, _zero_acc())
        identical = bool(np.array_equal(rbm.crossbar_.conductance, twin.crossbar_.conductance))
        runs = {"replica": [], "real": [], "what_if": [], "numpy": []}
        for _ in range(passes):
            acc = _zero_acc()
            t0 = time.perf_counter()
            for v0 in batches:
                _timed_fit_batch(twin, v0, acc)
            acc["__total__"] = time.perf_counter() - t0
            runs["replica"].append(acc)
            t0 = time.perf_counter()
            for v0 in batches:
                rbm._fit_batch(v0)
            runs["real"].append({"__total__": time.perf_counter() - t0})
            runs["what_if"].append(_what_if(twin, batches))
            runs["numpy"].append(_profile_numpy(batches, seed))
    best = {k: {piece: min(r[piece] for r in v) / n_batches for piece in v[0]}
            for k, v in runs.items()}
    replica_total = best["replica"].pop("__total__")
    per_batch = best["replica"]
    per_batch["other (python glue)"] = max(0.0, replica_total - sum(per_batch.values()))
    return {
        "replica_bit_identical": identical,
        "batches": n_batches, "passes": passes,
        "memristive_s_per_batch": per_batch,
        "memristive_replica_total_s_per_batch": replica_total,
        "memristive_real_fit_batch_s_per_batch": best["real"]["__total__"],
        "numpy_s_per_batch": best["numpy"],
        "what_if_s_per_batch": best["what_if"],
    }


def _what_if(rbm, batches):
    """Seconds per batch of a cheaper neuron sampling: numpy float32
    ``u < 1 / (1 + exp(-I / I0))`` with ``Generator.random(dtype=float32)`` instead of
    the numba comparator kernel (same firing probability, different random stream)."""
    clock = time.perf_counter
    gen = np.random.default_rng(0)
    neg_inv_scale = np.float32(-1.0 / rbm.current_scale_a_)
    acc = _zero_acc()
    for v0 in batches:
        v0b = rbm._with_bias(v0)
        i_h0 = rbm._hidden_currents(v0b)
        i_v1 = rbm._visible_currents(rbm._with_bias(rbm._sample(i_h0)))
        t = clock()
        for current in (i_h0, i_v1, i_h0):
            rbm._sample(current)
        acc["sampling x3: rbm._sample (numba comparator)"] += clock() - t
        t = clock()
        for current in (i_h0, i_v1, i_h0):
            with np.errstate(over="ignore"):
                p = 1.0 / (1.0 + np.exp(current * neg_inv_scale))
            (gen.random(current.shape, dtype=np.float32) < p).astype(np.float32)
        acc["sampling x3: numpy float32 exp + Generator.random"] += clock() - t
    return acc


def _zero_acc():
    from collections import defaultdict
    return defaultdict(float)


def _profile_numpy(batches, seed):
    ref = NumpyCD1(N_VISIBLE, N_HIDDEN, seed=seed)
    acc = _zero_acc()
    clock = time.perf_counter
    for v0 in batches:
        t = clock()
        x0 = v0 @ ref.W + ref.c
        acc["matmul v0 W"] += clock() - t
        t = clock()
        h0 = ref._sample(x0)
        acc["sampling"] += clock() - t
        t = clock()
        x1 = h0 @ ref.W.T + ref.b
        acc["matmul h0 W^T"] += clock() - t
        t = clock()
        v1 = ref._sample(x1)
        acc["sampling"] += clock() - t
        t = clock()
        x2 = v1 @ ref.W + ref.c
        acc["matmul v1 W"] += clock() - t
        t = clock()
        h1 = ref._sample(x2)
        acc["sampling"] += clock() - t
        t = clock()
        scale = np.float32(ref.learning_rate / len(v0))
        ref.W += scale * (v0.T @ h0 - v1.T @ h1)
        ref.b += scale * (v0.sum(axis=0) - v1.sum(axis=0))
        ref.c += scale * (h0.sum(axis=0) - h1.sum(axis=0))
        acc["update (2 matmuls + axpy)"] += clock() - t
    return acc


# ------------------------------------------------------------------------ main

def _data_dir(arg):
    candidates = [arg, os.environ.get("NEUROMEM_DATA"), ROOT / "shared" / "data" / "mnist",
                  ROOT.parent / "shared" / "data" / "mnist"]
    for c in candidates:
        if c and Path(c).expanduser().is_dir():
            return Path(c).expanduser()
    return None  # neuromem's default cache directory


def run(n_samples=10_000, repeats=3, seed=0, data=None, profile=False):
    images, _ = load_mnist(_data_dir(data), kind="train")
    X = binarize(images[:n_samples], 127).astype(np.float32)
    report = {
        "task": {"n_visible": N_VISIBLE, "n_hidden": N_HIDDEN, "batch_size": BATCH, "cd_k": 1,
                 "n_samples_per_epoch": int(len(X)), "data": "MNIST train, pixels > 127",
                 "fraction_of_ones": float(X.mean()), "repeats": repeats, "seed": seed,
                 "memristive": "MemristiveRBM(500, device='yflash', update='counter', "
                               "neuron='comparator', batch_size=100)",
                 "sklearn": "BernoulliRBM(n_components=500, batch_size=100, n_iter=1).fit",
                 "numpy": "NumpyCD1 in this file (float32)"},
        "environment_threads": _measure(X, repeats, seed, threads=None),
        "single_blas_thread": _measure(X, repeats, seed, threads=1),
        "targets": {"memristive_over_numpy": TARGET_NUMPY,
                    "memristive_over_sklearn": TARGET_SKLEARN},
    }
    report["meets_targets"] = meets_targets(report)
    if profile:
        report["profile"] = _profile(X, seed)
    report["environment"] = {
        "python": platform.python_version(), "numpy": np.__version__,
        "sklearn": __import__("sklearn").__version__,
        "numba": __import__("numba").__version__, "neuromem": neuromem.__version__,
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "threadpools": _threadpools(),
    }
    return report


def meets_targets(report):
    """Targets per thread setting (on a loaded shared machine, threaded BLAS can make
    every contender equally slow, so the single-thread figures are the steadier ones)."""
    return {key: {"memristive_over_numpy": report[key]["ratio_memristive_over_numpy"] >= TARGET_NUMPY,
                  "memristive_over_sklearn":
                      report[key]["ratio_memristive_over_sklearn"] >= TARGET_SKLEARN}
            for key in ("environment_threads", "single_blas_thread")}


def _print(report):
    task = report["task"]
    print(f"CD-1 throughput, {N_VISIBLE}x{N_HIDDEN}, batch {BATCH}, "
          f"{task['n_samples_per_epoch']} binarised MNIST samples per epoch; median of "
          f"{task['repeats']} epochs after one warm-up epoch")
    for key, label in (("environment_threads", "BLAS threads as configured"),
                       ("single_blas_thread", "one BLAS thread")):
        r = report[key]
        print(f"  [{label}]")
        for name in ("memristive", "numpy", "sklearn"):
            print(f"    {name:11s} {r['samples_per_s'][name]:9.0f} samples/s "
                  f"({r['timings'][name]['median_s']:.2f} s/epoch)")
        print(f"    memristive / numpy   {r['ratio_memristive_over_numpy']:.2f}x "
              f"(target >= {TARGET_NUMPY})")
        print(f"    memristive / sklearn {r['ratio_memristive_over_sklearn']:.2f}x "
              f"(target >= {TARGET_SKLEARN})")
    if "profile" in report:
        p = report["profile"]
        print(f"  profile of the memristive batch (one BLAS thread, replica bit-identical: "
              f"{p['replica_bit_identical']}; real _fit_batch "
              f"{p['memristive_real_fit_batch_s_per_batch'] * 1e3:.2f} ms/batch)")
        total = sum(p["memristive_s_per_batch"].values())
        for k, v in sorted(p["memristive_s_per_batch"].items(), key=lambda kv: -kv[1]):
            print(f"    {k:46s} {v * 1e3:7.3f} ms  {100 * v / total:5.1f} %")
        print("  what if (same batches):")
        for k, v in p["what_if_s_per_batch"].items():
            print(f"    {k:52s} {v * 1e3:7.3f} ms")
        print("  numpy CD-1 batch:")
        for k, v in sorted(p["numpy_s_per_batch"].items(), key=lambda kv: -kv[1]):
            print(f"    {k:46s} {v * 1e3:7.3f} ms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="directory of the MNIST IDX files")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_rbm.json")
    args = parser.parse_args(argv)
    report = run(args.n_samples, args.repeats, args.seed, args.data, args.profile)
    _print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
