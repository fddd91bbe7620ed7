"""Ternary networks on stochastic MTJ-pair synapses, ``neuromem ternary``.

Trains :class:`networks.TernaryMLP` (or, with ``--model cnn``, :class:`networks.TernaryCNN`)
epoch by epoch (a checkpoint after each; a rerun of
the same command resumes), reports the accuracy (the validation split of the training
set, or the test set with ``--final``), device writes, pulses and energy per training
sample, training operations per joule from the ledger beside the published ~3 TOPs/W,
and, with ``--spreads``, the accuracy against the MTJs' device-to-device spread (one
independent run per spread and chip seed on Dask workers; each finished run is kept in
``spread_runs.json`` and not repeated by a rerun).

Example::

    neuromem ternary --n-iter 5 --spreads 0 0.1 0.2 0.3 --sweep-seeds 3
    neuromem ternary --model cnn --final
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from experiments.checkpoints import refusal, setting_differences, write_json
from neuromem.energy import energy_breakdown

RESULTS, CHECKPOINT, PROGRESS = "results.json", "checkpoint.npz", "progress.json"
SPREAD_RUNS = "spread_runs.json"
#: evaluation images whose straight-through window shares are reported after every epoch,
#: and the share below which an array is reported as no longer learning
WINDOW_SAMPLES, DEAD_WINDOW = 1000, 0.02
#: --model -> estimator class in :mod:`networks`
MODELS = {"mlp": "TernaryMLP", "cnn": "TernaryCNN"}
#: training throughput per watt reported by Greenberg-Toledo et al., Semicond. Sci.
#: Technol. 36, 114003 (2021), and their MNIST accuracy
PUBLISHED_OPS_PER_J, PUBLISHED_ACCURACY = 3e12, 0.9861
#: the parameters that may differ from the run a new one starts from (--start-from): how
#: long and how fast it trains, not what the network or its devices are
SCHEDULE = ("n_iter", "batch_size", "batch_growth", "learning_rate", "learning_rate_decay",
            "learning_rate_decay_after", "learning_rate_batch_exponent")
#: estimator parameters exposed as flags of the same name (type, help)
PARAMS = {
    "conv_layers": (str, "convolution stages as CHANNELSxKERNEL, e.g. 32x5 64x5 (--model cnn)"),
    "hidden_layer_sizes": (int, "hidden layer sizes (zero or more integers)"),
    "activation": (str, "ternary or binary hidden activations"),
    "n_iter": (int, "training epochs"),
    "batch_size": (int, "mini-batch size of the first epoch"),
    "batch_growth": (float, "the batch grows by this factor after every epoch"),
    "learning_rate": (float, "eta of the transition probability tanh(eta |g|)"),
    "learning_rate_decay": (float, "eta is multiplied by this after every epoch once the decay has begun"),
    "learning_rate_decay_after": (int, "epochs at the full eta before the decay begins (default 1)"),
    "learning_rate_batch_exponent": (float, "eta grows as (batch / first batch)**exponent "
                                            "(1: the linear scaling rule; default 0)"),
    "gradient_deadzone": (float, "batch gradients below this move no cell"),
    "cells_per_weight": (int, "ternary cells (MTJ pairs) averaged into one weight: one number for "
                                 "every array or one per array, input side first"),
    "threshold": (float, "ternary activation threshold, units of sqrt(fan-in) (of the column's "
                         "standard deviation with --normalization batch)"),
    "ste_width": (float, "straight-through window, units as --threshold"),
    "output_scale": (float, "softmax inverse temperature, units of 1/sqrt(fan-in)"),
    "backward_gain": (float, "gain of the backward (transposed) read per layer"),
    "bias_rows": (int, "rows driven at +1 (ternary bias cells)"),
    "loss": (str, "softmax or hinge"),
    "update": (str, "batch (mini-batch gradient, row by row) or sample (in-array per sample)"),
    "input_coding": (str, "binary (0/1 rows), signed (-1/+1 rows) or grey (DAC levels of the pixels)"),
    "pulse_probability": (float, "gated writes: cells drawn digitally with p/P, then pulsed at P "
                                 "(e.g. 0.99; default: the pulse width sets p)"),
    "column_write_limit": (float, "most cells per column expected to switch per update, per sample "
                                  "of the batch (e.g. 0.04; default: no limit)"),
    "normalization": (str, "batch (batch normalisation of the hidden columns in the periphery) or "
                           "none (fixed comparator levels)"),
    "normalization_batch": (int, "images per group of the batch statistics"),
    "validation_fraction": (str, "share of the training images held out to pick the best epoch, "
                                 "to which the arrays are programmed back at the end, or none (train "
                                 "on them all and keep the last epoch)"),
    "calibration_samples": (int, "training images whose statistics set the comparator references "
                                 "after every epoch (with --normalization batch; 0: running averages)"),
    "max_shift": (int, "training images are translated by up to this many pixels each way "
                       "(--model cnn; 0: none)"),
    "d2d_delta_rel": (float, "device-to-device spread of the MTJ thermal stability"),
    "min_probability": (float, "transition probabilities below this give no pulse"),
    "max_width_s": (float, "longest write pulse (seconds)"),
    "adc_bits": (int, "ADC resolution"),
    "dac_bits": (int, "DAC resolution"),
}


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="neuromem ternary", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=tuple(MODELS), default="mlp",
                   help="mlp: TernaryMLP; cnn: TernaryCNN (convolution stages, then dense layers)")
    p.add_argument("--dataset", choices=("mnist", "digits"), default="mnist")
    p.add_argument("--data-dir", help="MNIST directory (default: $NEUROMEM_DATA)")
    p.add_argument("--n-validation", type=int, default=None,
                   help="training images held out for validation, without --final "
                        "(default 10000 of MNIST, 288 of the digits)")
    p.add_argument("--n-train", type=int, default=None,
                   help="use only the first N training images (a quicker run)")
    p.add_argument("--final", action="store_true", help="train on all training images, report the test set")
    p.add_argument("--d2d-r-rel", type=float, default=0.05, help="MTJ resistance spread (lognormal sigma)")
    p.add_argument("--spreads", type=float, nargs="*", default=[],
                   help="spreads (sigma of both R and delta) for the accuracy-vs-spread runs")
    p.add_argument("--sweep-epochs", type=int, default=None, help="epochs of each spread run (default --n-iter)")
    p.add_argument("--sweep-seeds", type=int, default=1,
                   help="chips per spread: runs with seeds --seed, --seed + 1, ... (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default results/ternary-s<seed>-<val|final>)")
    p.add_argument("--workers", type=int, default=None, help="local Dask workers for the spread runs")
    p.add_argument("--scheduler", help="address of an existing Dask scheduler")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--start-from", metavar="DIR",
                   help="begin from the checkpoint of the run in DIR (its epochs so far) and train on "
                        "under these flags, which may differ from that run's in the schedule only ("
                        + ", ".join("--" + n.replace("_", "-") for n in SCHEDULE) + ")")
    for name, (kind, text) in PARAMS.items():
        flag = "--" + name.replace("_", "-")
        if name in ("hidden_layer_sizes", "conv_layers"):
            p.add_argument(flag, type=kind, nargs="*", default=None, help=text)
        elif name == "cells_per_weight":
            p.add_argument(flag, type=kind, nargs="+", default=None, help=text)
        else:
            p.add_argument(flag, type=kind, default=None, help=text)
    return p


def conv_stage(text: str) -> tuple[int, int]:
    """``"32x5"`` -> ``(32, 5)`` (channels, kernel)."""
    try:
        channels, kernel = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--conv-layers takes CHANNELSxKERNEL stages such as 32x5, got {text!r}") from None
    return channels, kernel


def estimator_params(args) -> dict:
    params = {k: getattr(args, k) for k in PARAMS if getattr(args, k) is not None}
    if "hidden_layer_sizes" in params:
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    if "cells_per_weight" in params:  # one number for every array, or one per array
        cells = params["cells_per_weight"]
        params["cells_per_weight"] = cells[0] if len(cells) == 1 else tuple(cells)
    if "conv_layers" in params:
        if args.model != "cnn":
            raise ValueError("--conv-layers needs --model cnn")
        params["conv_layers"] = tuple(conv_stage(t) for t in params["conv_layers"])
    if "max_shift" in params and args.model != "cnn":
        raise ValueError("--max-shift needs --model cnn (the dense network has no image layout)")
    if "validation_fraction" in params:
        text = params["validation_fraction"]
        try:
            params["validation_fraction"] = None if text.lower() == "none" else float(text)
        except ValueError:
            raise ValueError("--validation-fraction takes a fraction in (0, 1) or none, "
                             f"got {text!r}") from None
    if params.get("normalization") == "none":
        params["normalization"] = None  # fixed comparator levels
    if args.model == "cnn" and params.get("update") is not None:
        raise ValueError("--update is an option of --model mlp (a kernel's update sums over positions)")
    return params


def model_class(kind: str):
    import networks

    return getattr(networks, MODELS[kind])


def build_model(params: dict, spread: float | None, d2d_r_rel: float, seed: int, kind: str = "mlp"):
    from neuromem.devices import MTJ

    params = dict(params)
    if spread is not None:
        d2d_r_rel = spread
        params["d2d_delta_rel"] = spread
    return model_class(kind)(**params, device=MTJ(d2d_r_rel=d2d_r_rel), random_state=seed)


def changed_params(saved, built) -> list[str]:
    """``"name: checkpoint X, now Y"`` for every parameter (device aside: its spread is
    in the settings) in which a checkpoint's model differs from the one this command
    builds."""
    def params(model):
        return {k: v for k, v in model.get_params().items() if k not in ("device", "verbose")}

    return setting_differences(params(saved), params(built))


def start_from(run: Path, settings: dict, built):
    """The model and progress of the run in ``run``, continued under ``built``'s schedule:
    ``(model, history, train_s)``. The run's settings and its other parameters must be
    this command's (ValueError naming what differs): the epochs it trained are then the
    first epochs of this command, cell for cell, where the schedule of those epochs is
    the same (a rate held constant before a late decay, say)."""
    try:
        progress = json.loads((run / PROGRESS).read_text())
        saved = model_class(settings["model"]).load(run / CHECKPOINT)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"no run to start from in {run}: {str(exc).splitlines()[0]}") from None
    keys = [k for k in settings if k not in ("params", "start_from")]
    differences = setting_differences(progress["settings"], settings, keys) + [
        d for d in changed_params(saved, built) if d.split(":")[0] not in SCHEDULE]
    if differences:
        raise ValueError(f"the run in {run} differs in more than the schedule: " + "; ".join(differences))
    saved.set_params(**{k: v for k, v in built.get_params().items() if k in SCHEDULE})
    return saved, progress["history"], progress["train_s"]


def load_data(args) -> dict:
    from neuromem.data import load_digits_scaled, load_mnist, train_validation_split

    if args.dataset == "digits":
        X, y = load_digits_scaled()
        X_train, X_test, y_train, y_test = train_validation_split(X, y, 0.2)
    else:
        X_train, y_train = load_mnist(args.data_dir, kind="train")
        X_test, y_test = load_mnist(args.data_dir, kind="test")
        X_train, X_test = X_train / 255.0, X_test / 255.0
    if args.n_train:
        X_train, y_train = X_train[:args.n_train], y_train[:args.n_train]
    if not args.final:
        n_val = args.n_validation or (10000 if args.dataset == "mnist" else 288)
        X_train, X_test, y_train, y_test = train_validation_split(X_train, y_train, n_val, seed=0)
    return {"X_train": X_train, "y_train": y_train, "X_eval": X_test, "y_eval": y_test,
            "eval": "test" if args.final else "validation"}


def _warn_dead(windows, epoch):
    """Say so when an array's straight-through window has emptied (it no longer learns)."""
    from tqdm import tqdm

    for k, share in enumerate(windows):
        if share < DEAD_WINDOW:
            tqdm.write(f"epoch {epoch}: hidden array {k} has {100 * share:.1f} % of its pre-activations "
                       "inside the straight-through window; it and the arrays below it have stopped "
                       "learning", file=sys.stderr)


def _spread_run(model, spread, data, threads):
    """One independent accuracy-vs-spread run (a Dask task). The unfitted model travels
    as an argument, so the worker imports its classes while unpacking the task (in its
    main thread, where Brian2 may install its signal handler)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        model.fit(data["X_train"], data["y_train"])
        return {"spread": spread, "seed": model.random_state,
                "accuracy": float(model.score(data["X_eval"], data["y_eval"])),
                "switches_per_sample": model.training_counts_["switches"] / model.n_samples_seen_,
                "window_fractions": model.window_fractions(data["X_eval"][:WINDOW_SAMPLES])}


def spread_sweep(args, params, data, out: Path, epochs: int) -> dict:
    """The accuracy-vs-spread runs, one Dask task per (spread, seed); finished runs are
    kept in ``out/spread_runs.json`` so that a rerun only does the missing ones."""
    from tqdm import tqdm

    sweep_epochs = args.sweep_epochs or epochs
    keep = out / SPREAD_RUNS
    done = json.loads(keep.read_text()) if keep.exists() else []
    done = [r for r in done if r.get("epochs") == sweep_epochs]  # runs of other lengths are not reused
    have = {(r["spread"], r["seed"]) for r in done}
    todo = [(s, args.seed + k) for s in dict.fromkeys(args.spreads) for k in range(args.sweep_seeds)
            if (s, args.seed + k) not in have]
    if todo:
        client = _client(args)
        try:
            from dask.distributed import as_completed

            shared = client.scatter(data, broadcast=True)
            futures = [client.submit(_spread_run, build_model(dict(params, n_iter=sweep_epochs), s,
                                                              args.d2d_r_rel, seed, args.model),
                                     s, shared, max(args.threads, 1), pure=False)
                       for s, seed in todo]
            for future in tqdm(as_completed(futures), total=len(futures), desc="spread runs"):
                done.append(dict(future.result(), epochs=sweep_epochs))
                write_json(keep, done)
        finally:
            client.close()
    wanted = {(s, args.seed + k) for s in args.spreads for k in range(args.sweep_seeds)}
    rows = sorted((r for r in done if (r["spread"], r["seed"]) in wanted),
                  key=lambda r: (r["spread"], r["seed"]))
    return {"spread_sweep": rows, "sweep_epochs": sweep_epochs}


def _client(args):
    if args.scheduler:
        from dask.distributed import Client
        return Client(args.scheduler)
    import logging

    from dask.distributed import Client, LocalCluster
    workers = args.workers or min(2, os.cpu_count() or 1)
    return Client(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR))


def summarise(model, ledger: dict, n_samples: int) -> dict:
    """Writes, pulses, energy and operations per training sample; ops per joule."""
    counts = model.training_counts_
    ops = model.training_operations()
    energy = ledger["total_j"]
    pulses = counts["set_pulses"] + counts["reset_pulses"]
    array_j = sum(ledger.get(k, {}).get("energy_j", 0.0) for k in
                  ("read", "read_back", "pulse_set", "pulse_reset"))
    return {
        "training_samples": n_samples,
        "device_writes_per_sample": counts["switches"] / n_samples,
        "pulses_per_sample": pulses / n_samples,
        "energy_per_sample_j": energy / n_samples,
        "array_energy_per_sample_j": array_j / n_samples,
        "ops_per_sample": ops["ops_per_sample"],
        "ops_per_j": ops["ops_per_sample"] * n_samples / energy,
        "ops_per_j_array_only": ops["ops_per_sample"] * n_samples / array_j,
        "published_ops_per_j": PUBLISHED_OPS_PER_J,
        "energy_by_operation_per_sample_j": {
            k: v["energy_j"] / n_samples for k, v in ledger.items() if k != "total_j"},
        "energy_by_component_per_sample_j": {
            k: v / n_samples for k, v in energy_breakdown(ledger).items()},
    }


def plot(results: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.plot_epochs import plot_epochs

    plot_epochs([out / RESULTS], out / "accuracy.png", labels=[f"seed {results['settings']['seed']}"],
                title=f"{results['estimator']} on MTJ pairs", reference=100 * PUBLISHED_ACCURACY)
    if results.get("spread_sweep"):
        sweep = results["spread_sweep"]
        spreads = sorted({r["spread"] for r in sweep})
        median = [np.median([r["accuracy"] for r in sweep if r["spread"] == s]) for s in spreads]
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ax.plot([100 * s for s in spreads], [100 * m for m in median], "-", color="C0",
                label="median" if len(sweep) > len(spreads) else None)
        ax.plot([100 * r["spread"] for r in sweep], [100 * r["accuracy"] for r in sweep], "o",
                color="C0", alpha=0.6, label="one chip (seed)" if len(sweep) > len(spreads) else None)
        if len(sweep) > len(spreads):
            ax.legend(frameon=False)
        ax.set_ylim(0, 100)  # the whole range: a collapse to chance and a drift of a point read apart
        ax.set_xlabel("MTJ device-to-device spread, sigma of R and delta (%)")
        ax.set_ylabel(f"{results['eval']} accuracy (%)")
        resolved = results["resolved_params"]
        writes = "gated writes" if resolved.get("pulse_probability") is not None else "pulse-width writes"
        if resolved.get("column_write_limit") is not None:
            writes += f", write limit {resolved['column_write_limit']:g}"
        if resolved.get("normalization") is not None:
            writes += f", {resolved['normalization']}-normalised"
        cells = resolved.get("cells_per_weight", 1)
        if isinstance(cells, list):
            writes += f", {'/'.join(map(str, cells))} cells per weight"
        elif cells > 1:
            writes += f", {cells} cells per weight"
        ax.set_title(f"{results['estimator']}, {results['sweep_epochs']} epochs per run\n{writes}",
                     fontsize=9)
        fig.tight_layout()
        fig.savefig(out / "accuracy_vs_spread.png", dpi=120)
        plt.close(fig)


def main(argv=None) -> int:
    from threadpoolctl import threadpool_limits

    from neuromem.data import DataError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        params = estimator_params(args)
        build_model(params, None, args.d2d_r_rel, args.seed, args.model).check_params()
    except ValueError as exc:
        parser.error(str(exc).replace("_", "-"))
    for name in ("n_validation", "n_train", "sweep_epochs", "sweep_seeds", "threads", "workers"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "threads" else 1):
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.n_iter is not None and args.n_iter < 1:
        parser.error(f"--n-iter must be >= 1 for an experiment, got {args.n_iter}")
    if any(s < 0 for s in args.spreads) or args.d2d_r_rel < 0:
        parser.error("--spreads and --d2d-r-rel must be >= 0")
    try:
        data = load_data(args)
    except (DataError, OSError, ValueError) as exc:
        parser.error(f"cannot load {args.dataset}: {str(exc).splitlines()[0]}")
    if args.model == "cnn":  # the layers must fit the images
        try:
            build_model(params, None, args.d2d_r_rel, args.seed, args.model).feature_maps(
                data["X_train"].shape[1])
        except ValueError as exc:
            parser.error(str(exc).replace("conv_layers", "--conv-layers"))
    prefix = "ternary" if args.model == "mlp" else f"ternary-{args.model}"
    out = Path(args.out or f"results/{prefix}-s{args.seed}-{'final' if args.final else 'val'}")
    settings = {"model": args.model, "params": params, "d2d_r_rel": args.d2d_r_rel, "seed": args.seed,
                "dataset": args.dataset, "final": args.final, "n_train": args.n_train,
                "n_validation": args.n_validation}
    if args.start_from:
        settings["start_from"] = str(args.start_from)
    model = build_model(params, None, args.d2d_r_rel, args.seed, args.model)
    epochs = model.n_iter
    history, train_s, restored = [], 0.0, False
    if not (out / CHECKPOINT).exists() or args.no_resume:
        (out / SPREAD_RUNS).unlink(missing_ok=True)  # kept spread runs belong to the run started over
        if args.start_from:
            try:
                model, history, train_s = start_from(Path(args.start_from), settings, model)
            except ValueError as exc:
                parser.error(f"--start-from: {exc}")
            print(f"starting after epoch {model.epochs_done_} of {args.start_from}", file=sys.stderr)
    else:
        progress = json.loads((out / PROGRESS).read_text())
        # the flags may differ (a default given explicitly): the parameters are compared below
        differences = setting_differences(
            {k: v for k, v in progress["settings"].items() if k != "params"},
            {k: v for k, v in settings.items() if k != "params"})
        if not differences:  # same flags, but the estimator's defaults may have moved since
            saved = model_class(args.model).load(out / CHECKPOINT)
            differences = changed_params(saved, model)
        if differences:
            parser.error(refusal(out, differences))
        model = saved
        history, train_s = progress["history"], progress["train_s"]
        restored = progress.get("restored", False)  # programmed back to the best epoch already
        print(f"resuming after epoch {model.epochs_done_}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    classes = np.unique(data["y_train"])
    X_fit, y_fit, held = data["X_train"], data["y_train"], None
    if model.validation_fraction is not None:  # the estimator's own split, as its fit makes it
        X_fit, X_held, y_fit, y_held = model.validation_split(X_fit, y_fit)
        held = (X_held, y_held)

    def evaluate():
        training_ledger = model.ledger_.as_dict()
        acc = float(model.score(data["X_eval"], data["y_eval"]))
        windows = model.window_fractions(data["X_eval"][:WINDOW_SAMPLES])
        model.ledger_.load_dict(training_ledger)  # the evaluation is not training
        return acc, windows

    with threadpool_limits(limits=args.threads or None, user_api="blas"):
        done = model.epochs_done_ if hasattr(model, "layers_") else 0
        for epoch in tqdm(range(done, epochs), desc="ternary", unit="epoch", initial=done, total=epochs):
            t0 = time.perf_counter()
            model.partial_fit(X_fit, y_fit, classes=classes)
            if held is not None:
                model.record_validation(*held)  # training cost: booked
            train_s += time.perf_counter() - t0
            acc, windows = evaluate()
            history.append({"epoch": epoch + 1, "accuracy": acc,
                            "switches": model.training_counts_["switches"],
                            "window_fractions": windows})
            if held is not None:
                history[-1]["held_out_accuracy"] = model.validation_scores_[-1]
            _warn_dead(windows, epoch + 1)
            model.save(out / CHECKPOINT)
            write_json(out / PROGRESS, {"settings": settings, "history": history, "train_s": train_s})
        accuracy = history[-1]["accuracy"]
        if held is not None:
            if not restored:  # (a rerun of a finished run neither programs nor books it again)
                restore = model.restore_best()  # nothing to program when the last epoch is the best
                model.save(out / CHECKPOINT)
                write_json(out / PROGRESS, {"settings": settings, "history": history, "train_s": train_s,
                                            "restored": True})
                print(f"programmed back to epoch {model.best_epoch_} (held-out "
                      f"{100 * model.best_validation_score_:.2f} %): {restore['switches']} switches",
                      file=sys.stderr)
            accuracy = evaluate()[0]
    ledger = model.ledger_.as_dict()
    results = {"settings": settings, "estimator": type(model).__name__,
               "resolved_params": {k: v for k, v in model.get_params().items() if k != "device"},
               "device": model.device.describe(), "eval": data["eval"],
               "n_train": int(len(X_fit)), "n_eval": int(len(data["X_eval"])),
               "accuracy": accuracy, "epochs": history,
               "published_accuracy": PUBLISHED_ACCURACY, "training": summarise(
                   model, ledger, model.n_samples_seen_),
               "training_ledger": ledger, "train_seconds": train_s,
               "assumptions": [
                   "ops: 2 per multiply-accumulate of the forward and backward passes and 2 per "
                   "weight update, as a digital accelerator counts them",
                   "energy: the ledger of training (array reads, pulses, ADC/DAC/comparators at a "
                   "Walden figure of merit of 10 fJ per step, digital ops at 1.5 pJ, the gradient "
                   "accumulator's adds at 0.4 pJ where a ternary drive selects the error, 45 nm)",
                   "MTJ read at the device's read voltage and read time; no driver, wire or "
                   "control overhead"]}
    if held is not None:
        results.update({"n_held_out": int(len(held[1])), "best_epoch": model.best_epoch_,
                        "held_out_accuracy": model.best_validation_score_})
    if args.spreads:
        results.update(spread_sweep(args, params, data, out, epochs))
    write_json(out / RESULTS, results)
    plot(results, out)
    t = results["training"]
    print(f"{data['eval']} accuracy {100 * results['accuracy']:.2f} % after {epochs} epochs; "
          f"{t['device_writes_per_sample']:.1f} device writes and {t['energy_per_sample_j']:.3g} J "
          f"per training sample; {t['ops_per_j'] / 1e12:.3g} TOPS/W (published ~3); "
          f"results in {out / RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
