"""What the missing ADC saves: DBN (comparators, counters) vs ADC MLP vs float (``neuromem adc``).

Trains :class:`networks.CrossbarMLP` (in-situ backpropagation through DACs and ADCs) for
every device and ADC resolution asked for, a float MLP (scikit-learn) as the software
reference, and, given a DBN saved by ``neuromem dbn`` (``--dbn-model``), evaluates its
hardware-native ``sampling`` inference against the number of samples. Each MLP run is
an independent task on dask.distributed (a LocalCluster, or ``--scheduler ADDRESS``) and
checkpoints after every epoch (a rerun of the same command resumes). Writes to
``--out``: ``results.json`` (every row, energy by component, the command), ``table.md``
and ``accuracy_vs_energy.png``.

Energy columns: *per training sample* = the whole training run (initial programming
included) divided by the number of training images; *per inference* = one forward
classification. The float model is not simulated hardware: its energy is an estimate
from digital operation counts (see :data:`FP32_MAC_J`).

Without ``--final`` the models train on the training split less ``--n-validation``
images and report that validation split (for tuning); with ``--final`` they train on
the whole training set and report the test set.

Examples::

    neuromem adc --dataset digits --epochs 3                    # the digits, quick
    neuromem adc --final --adc-bits 4 6 8 --devices ideal yflash --epochs 2 \\
        --dbn-model results/dbn-headline/model.npz --out results/adc-mnist
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from experiments.checkpoints import write_json
from experiments.dbn_report import git_commit, versions

__all__ = ["build_parser", "main", "run_mlp", "run_float", "run_dbn"]

#: per-device CrossbarMLP settings that differ from the estimator's defaults: Y-Flash
#: moves 6x further per pulse than the ideal device, so its pulses are 10x shorter
#: (1.2e-3 of the weight range per pulse; shorter ones are slower to simulate than the
#: machine allowed)
DEVICE_DEFAULTS = {"yflash": {"pulse_width": 0.01}}
#: one float32 multiply-accumulate and the weight fetch it needs, 45 nm (Horowitz, ISSCC
#: 2014: fp32 multiply 3.7 pJ, add 0.9 pJ; 8 kB SRAM read ~10 pJ per 64-bit word, so
#: ~5 pJ per 32-bit weight). Training is assumed to cost 3 forward passes per sample.
FP32_MAC_J = 3.7e-12 + 0.9e-12
SRAM_WEIGHT_J = 5e-12
TRAIN_PASSES = 3


class Parser(argparse.ArgumentParser):
    """One line on stderr and exit status 2 for bad input."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _key_value(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    for cast in (int, float):
        try:
            return key.strip(), cast(value)
        except ValueError:
            pass
    return key.strip(), value


def build_parser() -> Parser:
    p = Parser(prog="neuromem adc", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist", help="mnist, digits, an IDX folder or an .npz")
    p.add_argument("--data-dir", default=None, help="where MNIST lives (default NEUROMEM_DATA)")
    p.add_argument("--devices", nargs="*", default=["ideal", "yflash"], help="device families")
    p.add_argument("--adc-bits", nargs="+", type=_positive_int, default=[4, 6, 8])
    p.add_argument("--dac-bits", type=_positive_int, default=None,
                   help="DAC resolution (default: that of the ADC)")
    p.add_argument("--hidden", nargs="+", type=_positive_int, default=[256], help="hidden layer sizes")
    p.add_argument("--epochs", type=_positive_int, default=2)
    p.add_argument("--float-epochs", type=_positive_int, default=20)
    p.add_argument("--mlp-param", type=_key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="a CrossbarMLP parameter for every run")
    p.add_argument("--n-train", type=_positive_int, default=None,
                   help="use only this many training images (a random subset)")
    p.add_argument("--n-validation", type=_positive_int, default=10000)
    p.add_argument("--final", action="store_true", help="train on all, report the test set")
    p.add_argument("--no-float", action="store_true", help="skip the float reference")
    p.add_argument("--dbn-model", default=None, help="a model.npz written by 'neuromem dbn'")
    p.add_argument("--dbn-results", default=None,
                   help="a results JSON of 'neuromem dbn' (a full run) for the DBN's training "
                        "energy, writes and accuracy; default: results.json beside --dbn-model")
    p.add_argument("--dbn-samples", nargs="+", type=_positive_int, default=[1, 2, 5, 10, 20, 50])
    p.add_argument("--include", action="append", default=[], metavar="RESULTS_JSON",
                   help="add the rows of an earlier 'neuromem adc' results.json (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="LocalCluster workers (1: run here)")
    p.add_argument("--scheduler", default=None, help="address of a running dask scheduler")
    p.add_argument("--out", default="results/adc-comparison")
    return p


# ---------------------------------------------------------------------------- data

def load_split(dataset, data_dir, *, final, n_validation, n_train, seed):
    """Training and evaluation arrays (float64 in [0, 1]) and a description."""
    from neuromem.data import load_dataset, train_validation_split

    data = load_dataset(dataset, data_dir=data_dir)
    X, y = data["X_train"].astype(np.float64), data["y_train"]
    if final:
        X_eval, y_eval, eval_set = data["X_test"].astype(np.float64), data["y_test"], "test"
    else:
        n_val = min(n_validation, len(X) // 5)
        X, X_eval, y, y_eval = train_validation_split(X, y, n_val, seed=seed)
        eval_set = "validation"
    if n_train is not None and n_train < len(X):
        pick = np.sort(np.random.default_rng(seed).choice(len(X), n_train, replace=False))
        X, y = X[pick], y[pick]
    info = {"dataset": str(dataset), "n_train": int(len(X)), "n_eval": int(len(X_eval)),
            "eval_set": eval_set}
    return X, y, X_eval, y_eval, info


# ---------------------------------------------------------------------------- runs

def _ops_count(report, *names):
    return int(sum(report.get(n, {}).get("count", 0) for n in names))


def _diff(after: dict, before: dict) -> dict:
    out = {}
    for op, entry in after.items():
        if op == "total_j":
            continue
        prev = before.get(op, {"count": 0, "energy_j": 0.0})
        out[op] = {"count": entry["count"] - prev["count"],
                   "energy_j": entry["energy_j"] - prev["energy_j"]}
    out["total_j"] = sum(v["energy_j"] for v in out.values())
    return out


def run_mlp(config: dict, data: tuple, out_dir: str) -> dict:
    """Train one CrossbarMLP epoch by epoch (checkpoint after each), evaluate it."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one core per run: threaded BLAS only spin-waits here
        return _run_mlp(config, data, out_dir)


def _run_mlp(config, data, out_dir):
    from neuromem.energy import energy_breakdown, sum_reports
    from networks import CrossbarMLP

    X, y, X_eval, y_eval, info = data
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.npz"
    params = dict(config["params"])
    t0 = time.perf_counter()
    model = None
    if ckpt.exists():
        model = CrossbarMLP.load(ckpt)
        if model.get_params() != CrossbarMLP(**params).get_params():
            model = None  # other settings: start again
    while model is None or len(model.history_) < config["epochs"]:
        if model is None:  # the first epoch initialises the arrays
            model = CrossbarMLP(**params).partial_fit(X, y, classes=np.unique(y))
        else:
            model.partial_fit(X, y)
        model.save(ckpt)
        print(f"  {config['name']}: epoch {len(model.history_)}/{config['epochs']}, "
              f"loss {model.history_[-1]['loss']:.4f}", flush=True)
    train_report = sum_reports(model.init_energy_, model.energy_report())
    before = model.energy_report()
    accuracy = float(model.score(X_eval, y_eval))
    infer = _diff(model.energy_report(), before)
    n_train = len(X)
    writes = _ops_count(train_report, "potentiate", "depress")
    return {
        "name": config["name"], "model": "adc-mlp", "device": params["device"],
        "adc_bits": params["adc_bits"], "dac_bits": params["dac_bits"], "params": params,
        "epochs": len(model.history_), "accuracy": accuracy,
        "energy_per_training_sample_j": train_report["total_j"] / n_train,
        "energy_per_inference_j": infer["total_j"] / len(X_eval),
        "device_writes_per_training_sample": writes / n_train,
        "training_breakdown_j": energy_breakdown(train_report),
        "inference_breakdown_per_sample_j": {k: v / len(X_eval) for k, v in
                                             energy_breakdown(infer).items()},
        "training_ledger": train_report, "history": model.history_,
        "wall_s": time.perf_counter() - t0,
    }


def run_float(hidden, epochs, seed, data) -> dict:
    """scikit-learn MLP (same hidden layers, ReLU, Adam); energy estimated digitally."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from neuromem.energy import EnergyLedger, energy_breakdown

    X, y, X_eval, y_eval, info = data
    t0 = time.perf_counter()
    clf = MLPClassifier(tuple(hidden), max_iter=epochs, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    sizes = [X.shape[1], *hidden, len(clf.classes_)]
    macs = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    infer = EnergyLedger()
    infer.record("digital_op", macs, macs * FP32_MAC_J)
    infer.record("sram_read", macs, macs * SRAM_WEIGHT_J)
    per_inference = infer.as_dict()
    per_train = {k: ({"count": v["count"] * TRAIN_PASSES * epochs,
                      "energy_j": v["energy_j"] * TRAIN_PASSES * epochs} if k != "total_j" else None)
                 for k, v in per_inference.items()}
    per_train.pop("total_j")
    per_train["total_j"] = sum(v["energy_j"] for v in per_train.values())
    return {
        "name": "float", "model": "float-mlp", "device": "digital (estimate)",
        "adc_bits": None, "epochs": epochs, "accuracy": float(clf.score(X_eval, y_eval)),
        "energy_per_training_sample_j": per_train["total_j"],
        "energy_per_inference_j": per_inference["total_j"],
        "device_writes_per_training_sample": 0.0,
        "training_breakdown_j": energy_breakdown(per_train),
        "inference_breakdown_per_sample_j": energy_breakdown(per_inference),
        "energy_note": f"estimate: {macs} fp32 MACs per inference at {FP32_MAC_J:.3g} J plus "
                       f"one weight fetch each at {SRAM_WEIGHT_J:.3g} J; training "
                       f"{TRAIN_PASSES} passes per sample per epoch",
        "wall_s": time.perf_counter() - t0,
    }


def sampling_pass(dbn, X):
    """One hardware-native ``sampling`` pass (binary drive, comparator neurons, label
    winner-take-all), through the DBN's public layer steps; returns one-hot labels.

    The same steps as ``MemristiveDBN.predict(inference="sampling")``, which restores
    the ledgers afterwards; here they stay booked, so the energy can be read."""
    top = dbn.top_
    h = dbn.layers_[0].binary_drive(X)
    for rbm in dbn.layers_:
        h = rbm.up(h)
    vis = np.hstack([h, np.zeros((len(X), top.n_features_in_ - top.n_data_), np.float32)])
    for _ in range(2):
        label = top.sample_labels(top.up(vis))
        vis[:, top.n_data_:] = top.expand_labels(label)
    return label


def _dbn_training(results_file: Path) -> tuple[dict, dict]:
    """Training energy and writes per training image of a finished ``neuromem dbn`` run,
    and its reported accuracies."""
    from neuromem.energy import energy_breakdown

    saved = json.loads(results_file.read_text())
    train_energy = saved["energy"]["training"]
    n_train = saved["dataset"]["n_train"]
    training = {"energy_per_training_sample_j": train_energy["total_j"] / n_train,
                "device_writes_per_training_sample":
                    _ops_count(train_energy, "potentiate", "depress") / n_train,
                "training_breakdown_j": energy_breakdown(train_energy),
                "training_source": str(results_file)}
    return training, saved["accuracy"]


def run_dbn(model_path, samples, data, results_file=None, n_energy=1000) -> list[dict]:
    """Rows for a saved DBN: ``sampling`` with each number of samples, and ``freeze``;
    with a finished run's results JSON, also that run's row (its own accuracy and
    training energy, the sampling energy per pass measured here)."""
    from neuromem.energy import energy_breakdown
    from networks import MemristiveDBN

    X, y, X_eval, y_eval, info = data
    dbn = MemristiveDBN.load(model_path)
    own_file = Path(model_path).with_name("results.json")
    results_file = Path(results_file or own_file)
    reported_training, reported = (_dbn_training(results_file) if results_file.exists()
                                   else ({}, {}))
    # the model's own rows carry training numbers only when they are its own run's
    training = reported_training if results_file.resolve() == own_file.resolve() else {}
    before = dbn.energy_report()
    n = min(n_energy, len(X_eval))
    sampling_pass(dbn, X_eval[:n])
    one = _diff(dbn.energy_report(), before)
    per_pass = {k: v / n for k, v in energy_breakdown(one).items()}
    rows = []
    for k in samples:
        acc = float(np.mean(dbn.predict(X_eval, inference="sampling", n_samples=k) == y_eval))
        rows.append({"name": f"dbn-sampling-{k}", "model": "dbn", "device": str(dbn.device),
                     "adc_bits": None, "inference": "sampling", "n_samples": k,
                     "accuracy": acc, "energy_per_inference_j": k * one["total_j"] / n,
                     "inference_breakdown_per_sample_j": {c: k * v for c, v in per_pass.items()},
                     **training})
    freeze = float(np.mean(dbn.predict(X_eval, inference="freeze") == y_eval))
    rows.append({"name": "dbn-freeze", "model": "dbn", "device": str(dbn.device), "adc_bits": None,
                 "inference": "freeze", "accuracy": freeze, "energy_per_inference_j": None,
                 "energy_note": "freeze reads mean activations: analogue sigmoids or ADCs, "
                                "not the comparator hardware; its energy is not modelled",
                 **training})
    for eval_set, acc in reported.items():
        k = dbn.n_samples
        rows.append({"name": f"dbn-reported-sampling-{k}", "model": "dbn", "device": str(dbn.device),
                     "adc_bits": None, "inference": "sampling", "n_samples": k,
                     "accuracy": acc["sampling"], "accuracy_freeze": acc["freeze"],
                     "eval_set": eval_set, "accuracy_source": str(results_file),
                     "energy_per_inference_j": k * one["total_j"] / n,
                     "inference_breakdown_per_sample_j": {c: k * v for c, v in per_pass.items()},
                     **reported_training})
    return rows


# ---------------------------------------------------------------------------- report

def _fmt(x, unit=""):
    return "n/a" if x is None else f"{x:.3g}{unit}"


def write_table(rows, path: Path, info) -> str:
    lines = [f"{info['dataset']}, {info['eval_set']} set ({info['n_eval']} images), "
             f"{info['n_train']} training images", "",
             "| model | device | ADC bits | epochs / samples | training images | accuracy | "
             "energy / training sample | energy / inference | device writes / training sample | "
             "largest share (training) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        parts = r.get("training_breakdown_j")
        top = "n/a"
        if parts and parts.get("total_j"):
            name = max((k for k in parts if k != "total_j"), key=lambda k: parts[k])
            top = f"{name} {100 * parts[name] / parts['total_j']:.0f} %"
        when = r.get("epochs", r.get("n_samples", ""))
        if r["model"] == "dbn":
            when = f"{r['inference']} {r.get('n_samples', '')}".strip()
        n_train = r.get("data", info)["n_train"]
        if "accuracy_source" in r:
            n_train = f"{n_train} (reported: {Path(r['accuracy_source']).name})"
        lines.append(f"| {r['model']} | {r['device']} | {r['adc_bits'] or '-'} | {when} | "
                     f"{n_train} | {100 * r['accuracy']:.2f} % | {_fmt(r.get('energy_per_training_sample_j'), ' J')} | "
                     f"{_fmt(r.get('energy_per_inference_j'), ' J')} | "
                     f"{_fmt(r.get('device_writes_per_training_sample'))} | {top} |")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def make_figure(rows, path: Path, info) -> None:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    styles = {"adc-mlp": ("o", "tab:blue"), "dbn": ("s", "tab:red"), "float-mlp": ("*", "tab:green")}
    for ax, key, title in ((axes[0], "energy_per_inference_j", "per inference"),
                           (axes[1], "energy_per_training_sample_j", "per training sample")):
        for r in rows:
            e = r.get(key)
            if not e:
                continue
            label = r["name"]
            marker, colour = styles.get(r["model"], ("x", "k"))
            ax.scatter(e, 100 * r["accuracy"], marker=marker, color=colour, s=50)
            ax.annotate(label, (e, 100 * r["accuracy"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(f"energy {title} (J)")
        ax.set_ylabel(f"{info['eval_set']} accuracy (%)")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"Accuracy against energy, {info['dataset']} "
                 "(squares: DBN, circles: ADC MLP, star: float estimate)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# ---------------------------------------------------------------------------- main

def _client(args):
    if args.scheduler:
        from dask.distributed import Client
        return Client(args.scheduler)
    if args.workers <= 1:
        return None
    from dask.distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from networks import CrossbarMLP
    from neuromem import get_device

    for dev in args.devices:
        try:
            get_device(dev)
        except (KeyError, ValueError, TypeError) as exc:
            parser.error(f"--devices {dev}: {exc}")
    for flag, value in (("--dbn-model", args.dbn_model), ("--dbn-results", args.dbn_results),
                        *(("--include", v) for v in args.include)):
        if value and not Path(value).is_file():
            parser.error(f"{flag} {value}: no such file")
    included = []
    for path in args.include:
        try:
            earlier = json.loads(Path(path).read_text())
            for row in earlier["rows"]:
                row.setdefault("data", earlier["data"])
                row.setdefault("source", str(path))
                included.append(row)
        except (ValueError, KeyError, TypeError) as exc:
            parser.error(f"--include {path}: not a results.json of 'neuromem adc' ({exc})")
    configs = []
    for dev in args.devices:
        for bits in args.adc_bits:
            params = CrossbarMLP().get_params()
            params.update(hidden_layer_sizes=tuple(args.hidden), device=dev, adc_bits=bits,
                          dac_bits=args.dac_bits or bits, random_state=args.seed)
            params.update(DEVICE_DEFAULTS.get(dev, {}))
            params.update(dict(args.mlp_param))
            try:
                CrossbarMLP(**params)._check_params()
            except (TypeError, ValueError) as exc:
                parser.error(f"--mlp-param/--adc-bits: {exc}")
            configs.append({"name": f"mlp-{dev}-adc{bits}", "params": params,
                            "epochs": args.epochs})
    try:
        data = load_split(args.dataset, args.data_dir, final=args.final,
                          n_validation=args.n_validation, n_train=args.n_train, seed=args.seed)
    except (OSError, ValueError) as exc:
        parser.error(f"--dataset {args.dataset}: {exc}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # only now: every argument is valid
    t0 = time.perf_counter()
    info = data[4]
    print(f"{info['dataset']}: {info['n_train']} training, {info['n_eval']} {info['eval_set']} images",
          flush=True)
    client = _client(args)
    rows = []
    try:
        if client is None:
            for c in configs:
                rows.append(run_mlp(c, data, str(out / "points" / c["name"])))
        else:
            shared = client.scatter(data, broadcast=True)
            futures = [client.submit(run_mlp, c, shared, str(out / "points" / c["name"]),
                                     pure=False) for c in configs]
            rows += client.gather(futures)
    finally:
        if client is not None:
            client.close()
    if not args.no_float:
        rows.append(run_float(args.hidden, args.float_epochs, args.seed, data))
    if args.dbn_model:
        rows += run_dbn(args.dbn_model, args.dbn_samples, data, args.dbn_results)
    for row in rows:
        row.setdefault("data", info)
    rows += included
    table = write_table(rows, out / "table.md", info)
    make_figure(rows, out / "accuracy_vs_energy.png", info)
    write_json(out / "results.json", {
        "argv": list(sys.argv[1:] if argv is None else argv), "data": info, "rows": rows,
        "git": git_commit(), "versions": versions(),
        "wall_time_s": time.perf_counter() - t0,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "figures": ["accuracy_vs_energy.png"], "table": "table.md"})
    print(table)
    print(f"results in {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
