"""Cloning a trained chip (``neuromem clone``).

The original: the recipe's network trained in situ (``--seed``). Its conductances are
read out as weights and written by program-and-verify into another chip: the same
design with its own device-to-device spread, its own neurons and its own noise (seed
``--seed + 1000``). Measured on the evaluation split:

``original``
    the trained chip;
``clone``
    the copy, right after writing;
``clone_refresh_<k>``
    the copy after ``k`` in-situ epochs of its top RBM on the training data
    (``k = 1 .. --refresh-epochs``), the repair a clone can make on its own.

How the copy's arrays come to exist: its lower layers are built and trained for one
epoch each and then overwritten with the original's weights; its top RBM is built by
one epoch (on features of the written lower layers) and then overwritten; the refresh
epochs continue training from there.

Writes ``results.json`` (settings and the accuracies under ``metrics``) into ``--out``.

Example::

    neuromem clone --recipe digits --seed 1 --refresh-epochs 5
"""

from __future__ import annotations

import sys
import time

from experiments.study import (check_network, resolve_network, run_study, study_parser,
                               write_results)

CLONE_SEED_OFFSET = 1000


def build_parser():
    p = study_parser("neuromem clone", "Copy a trained chip's conductances into another chip "
                     "by program-and-verify; accuracy of the copy, before and after in-situ "
                     "refresh epochs.")
    p.add_argument("--refresh-epochs", type=int, default=3,
                   help="in-situ epochs of the copy's top RBM after writing")
    return p


def check_argv(argv) -> dict:
    """Parse and check ``argv`` (exit status 2 and one line when bad); the settings."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.refresh_epochs < 0:
        parser.error(f"--refresh-epochs must be >= 0, got {args.refresh_epochs}")
    recipe, params = resolve_network(args, parser)
    copy = {**params, "random_state": args.seed + CLONE_SEED_OFFSET, "n_iter": 1,
            "n_top_iter": 1 + args.refresh_epochs, "top_anneal_epochs": (), "n_finetune": 0}
    check_network(parser, f"original chip of recipe {args.recipe}", params)
    check_network(parser, f"copy of recipe {args.recipe}", copy)
    return {"args": args, "recipe": recipe, "original": params, "copy": copy, "parser": parser}


def main(argv=None) -> int:
    s = check_argv(argv)
    return run_study(s, lambda settings, data, out: _main(argv, settings, data, out),
                     f"results/clone-{s['recipe']['name']}-s{s['args'].seed}")


def _main(argv, settings, data, out) -> int:
    from experiments.faults import transfer
    from networks import MemristiveDBN

    t_start = time.perf_counter()
    args, recipe = settings["args"], settings["recipe"]
    X, y, Xe, ye = data["X_train"], data["y_train"], data["X_eval"], data["y_eval"]

    t0 = time.perf_counter()
    original = MemristiveDBN(**settings["original"]).fit(X, y)
    train_s = time.perf_counter() - t0
    metrics = {"original": float(original.score(Xe, ye))}
    print(f"original: {100 * metrics['original']:.2f} %", file=sys.stderr)

    t0 = time.perf_counter()
    copy = MemristiveDBN(**settings["copy"])
    Xc, yc = copy.begin(X, y)
    written = {"programming_pulses": 0, "cells": 0}
    lower_done = False
    while not copy.done_:
        stage, _ = copy.train_epoch(Xc, yc)
        if not lower_done and copy.stages_[copy.progress_["stage"]][0] == "top":
            # the lower layers are built: overwrite them before the top stage reads them
            w = transfer(original, copy, top=False)
            written = {k: written[k] + w[k] for k in written}
            lower_done = True
        if stage == "top" and "clone" not in metrics:
            w = transfer(original, copy, lower=False)
            written = {k: written[k] + w[k] for k in written}
            metrics["clone"] = float(copy.score(Xe, ye))
            print(f"clone: {100 * metrics['clone']:.2f} %", file=sys.stderr)
        elif stage == "top":
            k = sum(1 for key in metrics if key.startswith("clone_refresh_")) + 1
            metrics[f"clone_refresh_{k}"] = float(copy.score(Xe, ye))
            print(f"clone after {k} refresh epoch(s): {100 * metrics[f'clone_refresh_{k}']:.2f} %",
                  file=sys.stderr)
    clone_s = time.perf_counter() - t0

    results = {
        "experiment": "cloning: a trained chip's weights written into another chip",
        "recipe": recipe["name"], "seed": args.seed,
        "copy_seed": args.seed + CLONE_SEED_OFFSET, "refresh_epochs": args.refresh_epochs,
        "eval_set": data["eval_set"], "dataset": data["info"],
        "networks": {"original": settings["original"], "copy": settings["copy"]},
        "metrics": metrics, "transfer": written,
        "wall_time_s": {"original_training": train_s, "clone": clone_s,
                        "total": time.perf_counter() - t_start},
    }
    path = write_results(out, results, "clone", argv)
    print(f"{data['eval_set']} accuracy: original {100 * metrics['original']:.2f} %, clone "
          f"{100 * metrics['clone']:.2f} %"
          + (f", after {args.refresh_epochs} refresh epochs "
             f"{100 * metrics[f'clone_refresh_{args.refresh_epochs}']:.2f} %"
             if args.refresh_epochs else "") + f" | {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
