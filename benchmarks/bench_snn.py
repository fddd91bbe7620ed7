"""Diehl & Cook 2015 on MNIST: images per second, memristive against plain Brian2 STDP.

Four ways to run the same 784 -> n network on the same training images, built once,
warmed up (code generation, compilation) and then timed in turns ``--repeats`` times so
that load from other processes hits all alike:

* ``brian2_plain``: the Brian2 model with the paper's plain STDP synapses (the
  reference the target is set against);
* ``brian2_memristive``: the Brian2 model with its synapses on a ``--device`` crossbar
  (``CrossbarSynapses``), simulating the 150 ms rest as the paper does;
* ``engine_memristive``: the compiled engine on the same device, with the rest skipped
  (the default of ``neuromem snn``);
* ``engine_memristive_rest``: the compiled engine simulating the rest.

Reported: images per second (median over repeats) and the time per image of each
relative to ``brian2_plain`` (target for the memristive network: <= 1.3). Results go to
``benchmarks/results/bench_snn.json`` and ``.md``.

    python benchmarks/bench_snn.py [--device yflash] [--n-neurons 100] [--repeats 3]
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
    ap.add_argument("--n-neurons", type=int, default=100)
    ap.add_argument("--brian-images", type=int, default=10, help="images per repeat (Brian2)")
    ap.add_argument("--engine-images", type=int, default=200, help="images per repeat (engine)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-dir", default=None, help="MNIST directory (default $NEUROMEM_DATA)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_snn.json"))
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.brian_images < 1 or args.engine_images < 1 or args.n_neurons < 2:
        ap.error("--repeats, --brian-images, --engine-images must be >= 1, --n-neurons >= 2")

    from brian2 import ms

    from neuromem.brian import use_cython
    from neuromem.data import load_mnist
    from networks import DiehlCookEngine
    from networks.stdp import DiehlCook2015, DiehlCookParams

    target = use_cython()
    x, _ = load_mnist(args.data_dir, kind="train")
    params = DiehlCookParams(n_neurons=args.n_neurons)
    runners = {
        "brian2_plain": (DiehlCook2015(None, params=params, seed=1), args.brian_images),
        "brian2_memristive": (DiehlCook2015(args.device, params=params, seed=1,
                                            sync_interval=10 * ms), args.brian_images),
        "engine_memristive": (DiehlCookEngine(args.device, params=params, seed=1),
                              args.engine_images),
        "engine_memristive_rest": (DiehlCookEngine(args.device, params=params, seed=1,
                                                   between_images="rest"), args.engine_images),
    }
    for model, _ in runners.values():  # warm-up: code generation and compilation
        model.present(x[:2], learn=True)
    per_image = {k: [] for k in runners}
    presented = {k: 0 for k in runners}
    start = 2
    for _ in range(args.repeats):
        for name, (model, n) in runners.items():
            images = x[start:start + n]
            t0 = time.perf_counter()
            model.present(images, learn=True)
            per_image[name].append((time.perf_counter() - t0) / n)
            presented[name] += n
        start += max(n for _, n in runners.values())
    med = {k: statistics.median(v) for k, v in per_image.items()}
    results = {
        "benchmark": "Diehl & Cook 2015 training on MNIST: memristive vs plain Brian2 STDP",
        "device": args.device, "n_neurons": args.n_neurons, "repeats": args.repeats,
        "images_per_repeat": {k: n for k, (_, n) in runners.items()},
        "codegen_target": target,
        "images_per_s_median": {k: 1.0 / v for k, v in med.items()},
        "time_per_image_ratio_to_brian2_plain": {k: med[k] / med["brian2_plain"] for k in med},
        "target_ratio": 1.3,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg": os.getloadavg()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    lines = ["# bench_snn: Diehl & Cook 2015 training, memristive synapses vs plain Brian2", "",
             f"Device {args.device}, {args.n_neurons} neurons, {args.repeats} repeats "
             f"(interleaved), Brian2 target {target}, load average {os.getloadavg()[0]:.1f} "
             f"on {os.cpu_count()} CPUs, {results['date']}.", "",
             "| network | images / s (median) | time per image / brian2_plain |",
             "| --- | --- | --- |"]
    for k in runners:
        lines.append(f"| {k} | {1.0 / med[k]:.2f} | {med[k] / med['brian2_plain']:.3f} |")
    lines += ["", "Target: memristive / plain <= 1.3."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return results


if __name__ == "__main__":
    main()
