"""Song, Miller & Abbott 2000 on memristive synapses, ``neuromem stdp``.

1000 Poisson inputs at 15 Hz drive one LIF neuron through excitatory synapses with
additive pair STDP (Brian2's ``examples/synapses/STDP.py`` parameters). The same
network runs with plain Brian2 STDP (software reference) and with its synapses on a
crossbar of each ``--devices`` entry (default: ideal, yflash, softbounds), from the
same seed and initial weight targets. Writes ``results.json`` (weight statistics,
bimodality, output rate, pulses and energy per device) and ``song2000.png`` (final
weight distributions and output rate over time).

Example::

    python -m experiments.stdp_song2000 --duration 100 --out results/song2000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEVICES = ("ideal", "yflash", "softbounds")


def _parser():
    ap = argparse.ArgumentParser(prog="neuromem stdp", description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=100.0, help="simulated seconds (100)")
    ap.add_argument("--devices", nargs="+", default=list(DEVICES),
                    help=f"device families to run (default: {' '.join(DEVICES)})")
    ap.add_argument("--no-plain", action="store_true", help="skip the plain Brian2 reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sync-ms", type=float, default=1.0, help="pulse flush interval in ms (1)")
    ap.add_argument("--bin", type=float, default=None,
                    help="bin of the output-rate curve in s (default duration/50)")
    ap.add_argument("--out", default="results/song2000", help="output directory")
    ap.add_argument("--numpy-target", action="store_true", help="Brian2 numpy target (slow)")
    return ap


def run_one(device, args, w_init=None):
    """Run one network; returns (summary dict, final weights / gmax, rate curve)."""
    from brian2 import ms, second

    from networks.stdp import bimodality, rate_over_time, song2000

    t0 = time.time()
    net = song2000(device, seed=args.seed, w_init=w_init, sync_interval=args.sync_ms * ms)
    gmax = net.params.gmax
    w_start = np.asarray(net.synapses.w[:]).copy()
    start = bimodality(w_start, gmax)
    ledger0 = net.crossbar.ledger.as_dict() if net.crossbar is not None else None
    t_build = time.time() - t0
    t0 = time.time()
    net.network.run(args.duration * second)
    t_run = time.time() - t0
    w = np.asarray(net.synapses.w[:])
    times = np.asarray(net.spikes.t_[:])
    centres, rate = rate_over_time(times, args.duration, args.bin)
    summary = {
        "device": None if net.crossbar is None else net.crossbar.device.describe(),
        "label": "plain Brian2" if device is None else device,
        "bimodality_start": start,
        "bimodality": bimodality(w, gmax),
        "w_over_gmax": {"mean": float(w.mean() / gmax), "min": float(w.min() / gmax),
                        "max": float(w.max() / gmax),
                        "frac_below_0.1": float(np.mean(w < 0.1 * gmax)),
                        "frac_above_0.9": float(np.mean(w > 0.9 * gmax))},
        "output_spikes": int(times.size),
        "output_rate_hz": {"whole_run": times.size / args.duration,
                           "first_bin": float(rate[0]), "last_5_bins": float(rate[-5:].mean())},
        "build_s": t_build, "run_s": t_run,
    }
    if net.crossbar is not None:
        sync = net.synapses.sync
        ledger = net.crossbar.ledger.as_dict()
        summary.update({
            "initial_programming": {"missed": net.program_result.n_missed,
                                    "pulses": int(net.program_result.pulses.sum())},
            "stdp_pulses": dict(sync.requested),
            "synaptic_events": sync.synaptic_events,
            "dw_per_pulse_over_gmax": [d / gmax for d in net.synapses.dw_per_pulse],
            "ledger_after_programming": ledger0, "ledger": ledger,
            "stdp_energy_j": sum(ledger[k]["energy_j"] - ledger0.get(k, {}).get("energy_j", 0.0)
                                 for k in ("potentiate", "depress") if k in ledger),
        })
    return summary, w / gmax, w_start / gmax, (centres, rate)


def plot(runs, path, duration):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(runs)
    fig, axes = plt.subplots(2, n, figsize=(3.3 * n, 5.6), squeeze=False)
    for k, (name, summary, w, w0, (c, r)) in enumerate(runs):
        ax = axes[0, k]
        bins = np.linspace(0, max(1.0, float(w.max())), 41)
        ax.hist(w0, bins=bins, color="0.8", label="start")
        ax.hist(w, bins=bins, color="C0", alpha=0.85, label="end")
        b = summary["bimodality"]
        ax.set_title(f"{name}\nBC {b['coefficient']:.2f}, near bounds {b['near_bounds']:.0%}",
                     fontsize=9)
        ax.set_xlabel("w / gmax")
        if k == 0:
            ax.set_ylabel("synapses")
            ax.legend(fontsize=7)
        ax = axes[1, k]
        ax.plot(c, r, color="C3")
        ax.set_xlabel("time (s)")
        ax.set_ylim(bottom=0)
        if k == 0:
            ax.set_ylabel("output rate (Hz)")
    fig.suptitle(f"Song 2000: 1000 Poisson inputs at 15 Hz -> 1 LIF, additive STDP, {duration:g} s",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    ap = _parser()
    args = ap.parse_args(argv)
    if not args.duration > 0:
        ap.error("--duration must be > 0")
    if not args.sync_ms > 0:
        ap.error("--sync-ms must be > 0")
    if args.bin is None:
        args.bin = args.duration / 50
    if not 0 < args.bin <= args.duration:
        ap.error("--bin must lie in (0, duration]")

    from brian2 import prefs

    from neuromem.brian import use_cython
    from networks.stdp import make_device

    for name in args.devices:
        try:
            make_device(name)
        except (ValueError, TypeError) as exc:
            ap.error(str(exc))
    if args.numpy_target:
        prefs.codegen.target = "numpy"
    else:
        use_cython()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    runs, results = [], {}
    w_target = np.random.default_rng(args.seed).uniform(0.0, 0.01, 1000)  # U(0, gmax)
    for name in args.devices:
        print(f"[{name}] {args.duration:g} s ...", flush=True)
        summary, w, w0, curve = run_one(name, args, w_init=w_target)
        results[name] = summary
        runs.append((name, summary, w, w0, curve))
        if name == "ideal" and not args.no_plain:
            # plain Brian2 from the weights the ideal devices actually reached
            print("[plain Brian2] ...", flush=True)
            s_p, w_p, w0_p, c_p = run_one(None, args, w_init=w0 * 0.01)
            results["plain_brian2"] = s_p
            runs.insert(len(runs) - 1, ("plain Brian2", s_p, w_p, w0_p, c_p))
        print(f"  bimodality {summary['bimodality']}, rate {summary['output_rate_hz']}", flush=True)
    if "ideal" not in args.devices and not args.no_plain:
        s_p, w_p, w0_p, c_p = run_one(None, args, w_init=w_target)
        results["plain_brian2"] = s_p
        runs.insert(0, ("plain Brian2", s_p, w_p, w0_p, c_p))
    payload = {
        "experiment": "Song, Miller & Abbott 2000 on memristive synapses",
        "command": "neuromem stdp " + " ".join(argv if argv is not None else sys.argv[1:]),
        "duration_s": args.duration, "seed": args.seed, "sync_interval_ms": args.sync_ms,
        "rate_bin_s": args.bin,
        "bimodality_note": "coefficient: Sarle's (5/9 uniform, > 5/9 bimodal); near_bounds: "
                           "fraction within 10 % of gmax of 0 or gmax (0.2 uniform)",
        "runs": results,
    }
    (out / "results.json").write_text(json.dumps(payload, indent=1))
    plot(runs, out / "song2000.png", args.duration)
    print(f"results in {out}")
    return payload


if __name__ == "__main__":
    main()
