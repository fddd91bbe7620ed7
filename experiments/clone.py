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

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = "results.json"
CLONE_SEED_OFFSET = 1000


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="neuromem clone",
               description="Copy a trained chip's conductances into another chip by "
                           "program-and-verify; accuracy of the copy, before and after "
                           "in-situ refresh epochs.")
    p.add_argument("--recipe", default="digits", help="DBN recipe (neuromem recipes lists them)")
    p.add_argument("--device", help="device of both chips (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the original chip")
    p.add_argument("--refresh-epochs", type=int, default=3,
                   help="in-situ epochs of the copy's top RBM after writing")
    p.add_argument("--epochs", type=int, help="epochs per lower layer (default: the recipe's)")
    p.add_argument("--top-epochs", type=int, help="epochs of the top RBM (default: the recipe's)")
    p.add_argument("--final", action=argparse.BooleanOptionalAction, default=None,
                   help="report the test set (default: the recipe's choice; tune without)")
    p.add_argument("--data-dir", help="where the MNIST files are (default $NEUROMEM_DATA)")
    p.add_argument("--out", help="output folder (default results/clone-<recipe>-s<seed>)")
    return p


def check_argv(argv) -> dict:
    """Parse and check ``argv`` (exit status 2 and one line when bad); the settings."""
    from networks import MemristiveDBN
    from networks.recipes import load_recipe, recipe_estimator_params

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.refresh_epochs < 0:
        parser.error(f"--refresh-epochs must be >= 0, got {args.refresh_epochs}")
    for flag, value in (("--epochs", args.epochs), ("--top-epochs", args.top_epochs)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    try:
        recipe = load_recipe(args.recipe)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(f"--recipe: {exc}")
    if args.final is not None:
        recipe["run"]["final"] = args.final
    params = recipe_estimator_params(recipe)
    params["random_state"] = args.seed
    for key, value in (("n_iter", args.epochs), ("n_top_iter", args.top_epochs),
                       ("device", args.device)):
        if value is not None:
            params[key] = value
    copy = {**params, "random_state": args.seed + CLONE_SEED_OFFSET, "n_iter": 1,
            "n_top_iter": 1 + args.refresh_epochs, "top_anneal_epochs": (), "n_finetune": 0}
    for name, p in (("original", params), ("copy", copy)):
        try:
            MemristiveDBN(**p)._check_params()
        except (TypeError, ValueError) as exc:
            parser.error(f"the {name} chip of recipe {args.recipe}: {exc}")
    return {"args": args, "recipe": recipe, "original": params, "copy": copy}


def main(argv=None) -> int:
    from experiments.faults import transfer
    from experiments.mnist_dbn import load_data
    from networks import MemristiveDBN

    t_start = time.perf_counter()
    settings = check_argv(argv)
    args, recipe = settings["args"], settings["recipe"]
    try:
        data = load_data(recipe["run"], args.data_dir)
    except (OSError, ValueError) as exc:
        build_parser().error(f"--recipe {args.recipe}: data set {recipe['run']['dataset']}: "
                             f"{getattr(exc, 'problem', exc)}")
    out = Path(args.out or f"results/clone-{recipe['name']}-s{args.seed}")
    X, y, Xe, ye = data["X_train"], data["y_train"], data["X_eval"], data["y_eval"]
    out.mkdir(parents=True, exist_ok=True)

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
        "command": "neuromem clone " + " ".join(sys.argv[1:] if argv is None else argv),
        "recipe": recipe["name"], "seed": args.seed,
        "copy_seed": args.seed + CLONE_SEED_OFFSET, "refresh_epochs": args.refresh_epochs,
        "eval_set": data["eval_set"], "dataset": data["info"],
        "networks": json.loads(json.dumps({"original": settings["original"],
                                           "copy": settings["copy"]}, default=str)),
        "metrics": metrics, "transfer": written,
        "wall_time_s": {"original_training": train_s, "clone": clone_s,
                        "total": time.perf_counter() - t_start},
    }
    (out / RESULTS).write_text(json.dumps(results, indent=1))
    print(f"{data['eval_set']} accuracy: original {100 * metrics['original']:.2f} %, clone "
          f"{100 * metrics['clone']:.2f} %"
          + (f", after {args.refresh_epochs} refresh epochs "
             f"{100 * metrics[f'clone_refresh_{args.refresh_epochs}']:.2f} %"
             if args.refresh_epochs else "") + f" | {out / RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
