"""Song 2000 with memristive synapses against the same network with plain Brian2 STDP.

Both networks (1000 Poisson inputs at 15 Hz -> 1 LIF neuron, pair STDP, Cython target,
dt = 0.1 ms) are built once and warmed up (compilation, first flush) with a short run;
then, ``--repeats`` times, each runs ``--duration`` simulated seconds, taking turns so
that load from other processes hits both alike. The memristive one keeps its weights on
a ``--device`` crossbar: STDP becomes pulses in generated code and is flushed to the
devices every ``--sync-ms``. Reported: median and best wall time of each, and the ratio
memristive / plain of the medians (target: <= 1.3). Results go to
``benchmarks/results/bench_brian.json`` and ``.md``.

    python benchmarks/bench_brian.py [--device yflash] [--duration 5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="yflash")
    ap.add_argument("--duration", type=float, default=5.0, help="simulated s per repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sync-ms", type=float, nargs="+", default=[1.0, 5.0],
                    help="flush intervals to measure (ms)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_brian.json"))
    args = ap.parse_args(argv)
    if args.duration <= 0 or args.repeats < 1:
        ap.error("--duration must be > 0 and --repeats >= 1")

    from brian2 import ms, second

    from neuromem.brian import use_cython
    from networks.stdp import song2000

    target = use_cython()
    nets = {"plain": song2000(None, seed=1)}
    for sync in args.sync_ms:
        nets[f"memristive_sync_{sync:g}ms"] = song2000(args.device, seed=1,
                                                       sync_interval=sync * ms)
    for net in nets.values():  # warm-up: code generation and compilation
        net.network.run(0.2 * second)
    times = {k: [] for k in nets}
    for _ in range(args.repeats):
        for name, net in nets.items():
            t0 = time.perf_counter()
            net.network.run(args.duration * second)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    results = {
        "benchmark": "Song 2000 (1000 Poisson -> 1 LIF, pair STDP): memristive vs plain Brian2",
        "device": args.device, "simulated_s_per_repeat": args.duration,
        "repeats": args.repeats, "codegen_target": target,
        "median_s": med, "best_s": {k: min(v) for k, v in times.items()},
        "ratio_median": {k: med[k] / med["plain"] for k in med if k != "plain"},
        "ratio_best": {k: min(times[k]) / min(times["plain"]) for k in med if k != "plain"},
        "target_ratio": 1.3,
        "realtime_factor_plain": med["plain"] / args.duration,
        "pulses": {k: dict(n.synapses.sync.requested) for k, n in nets.items() if k != "plain"},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg": os.getloadavg()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    lines = ["# bench_brian: Song 2000, memristive synapses vs plain Brian2 STDP", "",
             f"Device {args.device}, {args.duration:g} s simulated per repeat, {args.repeats} "
             f"repeats (interleaved), Brian2 target {target}, load average "
             f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, {results['date']}.", "",
             "| network | median s | best s | ratio (median) | ratio (best) |",
             "| --- | --- | --- | --- | --- |"]
    for k in nets:
        rm = results["ratio_median"].get(k, 1.0)
        rb = results["ratio_best"].get(k, 1.0)
        lines.append(f"| {k} | {med[k]:.2f} | {min(times[k]):.2f} | {rm:.2f} | {rb:.2f} |")
    lines += ["", "Target: ratio <= 1.3."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return results


if __name__ == "__main__":
    main()
