"""Full program / erase cycles with a stride against every cycle simulated (Y-Flash).

``--cells`` population devices with charges spread over the window (as a trained chip
leaves them) go through ``--cycles`` full cycles (``Crossbar.full_cycles``' kernel,
``YFlash.full_cycles_at``) once for each stride; stride 1 simulates every cycle. For
each stride: the ratio of its best of ``--repeats`` wall times to stride 1's, the error of
the total pulses, of the mean ``V_a`` and ``beta`` (relative to their change), and the
rms and largest error of a single device's ``V_a`` and ``beta``. Two exact runs with
different noise seeds give the noise floor of the per-device errors. Then the seconds
per cycle of one 785 x 200 array: a verify loop of ``Crossbar.program`` (what the
lifetime study used before) against ``Crossbar.full_cycles``. Results go to
``benchmarks/results/bench_wear.json``.

    python benchmarks/bench_wear.py [--cells 5000] [--cycles 40] [--strides 1 2 5 10 20 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from neuromem import Crossbar  # noqa: E402
from neuromem.devices import YFlash  # noqa: E402


def _run(dev, start, n_cycles, stride, seed, repeats):
    best = float("inf")
    for _ in range(repeats):
        state = start.copy()
        g = np.empty(state.shape[1])
        t0 = time.perf_counter()
        n_prog, n_erase, _ = dev.full_cycles_at(state, np.arange(state.shape[1]), n_cycles,
                                                seed, g, stride=stride, max_pulses=200)
        best = min(best, time.perf_counter() - t0)
    return state, int((n_prog + n_erase).sum()), best


def _errors(state, ref, start, pulses, ref_pulses):
    out = {"pulses_rel_error": pulses / ref_pulses - 1}
    for row, name in ((1, "va_v"), (2, "beta_v")):
        change = ref[row].mean() - start[row].mean()
        diff = state[row] - ref[row]
        out[f"{name}_mean_error_of_change"] = float(diff.mean() / change)
        out[f"{name}_cell_rms_error"] = float(np.sqrt(np.mean(diff**2)))
        out[f"{name}_cell_max_error"] = float(np.abs(diff).max())
    return out


def _crossbar(n_cycles):
    """Seconds per full cycle of one fresh 785 x 200 Y-Flash array: one cycle as a verify
    loop of ``Crossbar.program`` (down to the low level, then up to the high one, 5 %
    tolerance), and ``n_cycles`` of ``Crossbar.full_cycles`` with stride 1 and 10; and
    the pulses per device of one cycle each way."""
    def fresh():
        return Crossbar(785, 200, "yflash", seed=0)

    out = {}
    xbar = fresh()
    low, high = xbar.device.full_cycle_levels_s
    t0 = time.perf_counter()
    xbar.program(low, tolerance=0.05, max_pulses=200)
    xbar.program(high, tolerance=0.05, max_pulses=200)
    out["program_verify_loop"] = time.perf_counter() - t0
    pulses = {"program_verify_loop": float(xbar.pulse_count.mean())}
    for stride in (1, 10):
        xbar = fresh()
        t0 = time.perf_counter()
        xbar.full_cycles(n_cycles, stride=stride)
        out[f"full_cycles_stride_{stride}"] = (time.perf_counter() - t0) / n_cycles
    xbar = fresh()
    xbar.full_cycles(1)
    pulses["full_cycles"] = float(xbar.pulse_count.mean())
    return {"seconds_per_cycle": out, "pulses_per_device_in_one_cycle": pulses}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=5000)
    p.add_argument("--cycles", type=int, default=40)
    p.add_argument("--strides", type=int, nargs="+", default=[1, 2, 5, 10, 20, 40])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    if args.cells < 1 or args.cycles < 1 or args.repeats < 1 or min(args.strides) < 1:
        p.error("--cells, --cycles, --repeats and --strides must be >= 1")

    dev = YFlash()
    rng = np.random.default_rng(0)
    start = dev.init_state(args.cells, rng)
    start[0] = rng.uniform(dev.q_fg_min_c, dev.q_fg_max_c, args.cells)
    _run(dev, start[:, :2], 1, 1, 0, 1)  # compile
    ref, ref_pulses, _ = _run(dev, start, args.cycles, 1, 1, 1)
    floor, floor_pulses, _ = _run(dev, start, args.cycles, 1, 2, 1)
    rows = {"exact, other seed": _errors(floor, ref, start, floor_pulses, ref_pulses)}
    seconds = {}
    for stride in sorted(set(args.strides) | {1}):
        state, pulses, seconds[stride] = _run(dev, start, args.cycles, stride, 1, args.repeats)
        rows[f"stride {stride}"] = _errors(state, ref, start, pulses, ref_pulses)
    for stride in seconds:  # against the best time of stride 1, measured in the same loop
        rows[f"stride {stride}"]["time_ratio_to_stride_1"] = seconds[stride] / seconds[1]
    results = {"benchmark": "Y-Flash full cycles: stride against every cycle simulated",
               "cells": args.cells, "cycles": args.cycles, "repeats": args.repeats,
               "pulses_per_cell_per_cycle": ref_pulses / args.cells / args.cycles,
               "mean_change_v": {"va_v": float(ref[1].mean() - start[1].mean()),
                                 "beta_v": float(ref[2].mean() - start[2].mean())},
               "rows": rows, "crossbar_785x200": _crossbar(args.cycles)}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_wear.json").write_text(json.dumps(results, indent=2) + "\n")
    for name, row in rows.items():
        print(f"{name:18s} " + "  ".join(f"{k} {v:.4g}" for k, v in row.items()))
    for key, values in results["crossbar_785x200"].items():
        print(f"785 x 200 array, {key}: " + "  ".join(f"{k} {v:.4g}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
