"""Stuck-at faults: trained in situ against trained in software and written into the
same faulty array (``neuromem faults``).

One run, one stuck-at rate, one seed, three accuracies on the evaluation split:

``in_situ``
    the recipe's network trained on arrays in which ``--stuck-rate`` of the cells are
    stuck (half at the device's lowest conductance, half at its highest; an
    assumption: the split is not measured), so training sees and works around them;
``software``
    the same network trained in software (ideal analogue device, float contrastive
    divergence: ``device="ideal"``, ``update="ideal"``), no faults;
``transferred``
    the software network's weights written by program-and-verify into the in-situ
    network's arrays rebuilt fresh from the same seed: the same devices with the same
    stuck cells (the software weights the array cannot hold are clipped at its range).

``neuromem sweep experiments/sweeps/faults-digits.toml`` runs it over stuck-at rates
and seeds and draws the accuracies against the rate.

Writes ``results.json`` (settings, the three accuracies under ``metrics``, fault
counts, programming pulses and misses, wall times) into ``--out``.

Example::

    neuromem faults --recipe digits --stuck-rate 0.1 --seed 1
"""

from __future__ import annotations

import sys
import time

import numpy as np

from experiments.study import (check_network, resolve_network, run_study, study_parser,
                               write_results)


def build_parser():
    p = study_parser("neuromem faults", "Accuracy under stuck-at faults: trained in situ "
                     "against trained in software and written into the same faulty arrays.",
                     device=False)
    p.add_argument("--stuck-rate", type=float, default=0.0,
                   help="fraction of cells stuck (half low, half high), in [0, 1]")
    return p


def check_argv(argv) -> dict:
    """Parse and check ``argv``; exit status 2 and one line when it is bad. Returns the
    resolved settings (recipe, estimator parameters of both networks)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.stuck_rate <= 1.0:
        parser.error(f"--stuck-rate must lie in [0, 1], got {args.stuck_rate}")
    recipe, params = resolve_network(args, parser)
    half = args.stuck_rate / 2
    faulty = {**params, "rbm_params": {**(params.get("rbm_params") or {}),
                                       "stuck_low_rate": half, "stuck_high_rate": half}}
    software = {**params, "device": "ideal", "update": "ideal"}
    check_network(parser, f"in-situ network of recipe {args.recipe}", faulty)
    check_network(parser, f"software network of recipe {args.recipe}", software)
    return {"args": args, "recipe": recipe, "in_situ": faulty, "software": software,
            "parser": parser}


def transfer(source, target, *, lower: bool = True, top: bool = True) -> dict:
    """Write the layers of ``source`` (a trained MemristiveDBN) into ``target``'s arrays,
    rebuilt fresh from their own seeds (same devices, same faults), by program-and-verify:
    the lower layers and / or the top RBM. Returns the programming pulses and the number
    of cells written."""
    pulses, cells = 0, 0
    pairs = (list(zip(source.layers_, target.layers_)) if lower else []) + \
        ([(source.top_, target.top_)] if top else [])
    for src, dst in pairs:
        dst.program(dst.n_features_in_, src.weights())  # a fresh array: its pulses are these
        pulses += int(np.sum(dst.crossbar_.pulse_count))
        cells += dst.crossbar_.rows * dst.crossbar_.cols
    return {"programming_pulses": pulses, "cells": cells}


def _fault_counts(dbn) -> dict:
    out = {"stuck_low": 0, "stuck_high": 0, "cells": 0}
    for layer in list(dbn.layers_) + [dbn.top_]:
        faults = layer.crossbar_.faults
        out["stuck_low"] += int(faults["stuck_low"].sum())
        out["stuck_high"] += int(faults["stuck_high"].sum())
        out["cells"] += int(faults["stuck_low"].size)
    return out


def main(argv=None) -> int:
    s = check_argv(argv)
    return run_study(s, lambda settings, data, out: _main(argv, settings, data, out),
                     f"results/faults-{s['recipe']['name']}-r{s['args'].stuck_rate:g}-s{s['args'].seed}")


def _main(argv, settings, data, out) -> int:
    from networks import MemristiveDBN

    t_start = time.perf_counter()
    args, recipe = settings["args"], settings["recipe"]
    X, y, Xe, ye = data["X_train"], data["y_train"], data["X_eval"], data["y_eval"]

    times = {}
    t0 = time.perf_counter()
    in_situ = MemristiveDBN(**settings["in_situ"]).fit(X, y)
    times["in_situ_training"] = time.perf_counter() - t0
    acc_in_situ = float(in_situ.score(Xe, ye))
    faults = _fault_counts(in_situ)
    print(f"in situ, {faults['stuck_low'] + faults['stuck_high']} of {faults['cells']} cells "
          f"stuck: {100 * acc_in_situ:.2f} %", file=sys.stderr)

    t0 = time.perf_counter()
    software = MemristiveDBN(**settings["software"]).fit(X, y)
    times["software_training"] = time.perf_counter() - t0
    acc_software = float(software.score(Xe, ye))
    print(f"software: {100 * acc_software:.2f} %", file=sys.stderr)

    t0 = time.perf_counter()
    written = transfer(software, in_situ)
    times["transfer"] = time.perf_counter() - t0
    acc_transferred = float(in_situ.score(Xe, ye))
    print(f"software weights in the faulty arrays: {100 * acc_transferred:.2f} %", file=sys.stderr)

    results = {
        "experiment": "stuck-at faults: in situ against software + program-and-verify",
        "recipe": recipe["name"], "stuck_rate": args.stuck_rate, "seed": args.seed,
        "stuck_split": "half stuck at the lowest conductance, half at the highest (assumed)",
        "eval_set": data["eval_set"], "dataset": data["info"],
        "networks": {"in_situ": settings["in_situ"], "software": settings["software"]},
        "metrics": {"in_situ": acc_in_situ, "software": acc_software,
                    "transferred": acc_transferred},
        "faults": faults, "transfer": written,
        "wall_time_s": {**times, "total": time.perf_counter() - t_start},
    }
    path = write_results(out, results, "faults", argv)
    print(f"{data['eval_set']} accuracy: in situ {100 * acc_in_situ:.2f} %, software "
          f"{100 * acc_software:.2f} %, transferred {100 * acc_transferred:.2f} % | {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
