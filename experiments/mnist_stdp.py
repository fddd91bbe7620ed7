"""Unsupervised MNIST with STDP on memristive synapses (Diehl & Cook 2015), ``neuromem snn``.

Train the input->excitatory crossbar on ``--n-train`` training images, label each
neuron by its mean response to ``--n-label`` training images (learning off), then
classify ``--n-test`` test images (the first ones of the MNIST test set) by the mean
spike count of the neurons of each label. Writes ``results.json``,
``receptive_fields.png``, ``confusion.png`` and checkpoints (``checkpoint.npz`` +
``checkpoint.json``: crossbar state, thresholds, pulse accumulators, position; no
pickle) every ``--checkpoint-every`` images; ``--resume`` continues from one (the
membrane state restarts at rest).

Example::

    python -m experiments.mnist_stdp --device yflash --n-train 2000 --n-test 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="neuromem snn", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="yflash",
                    help="device family: ideal, yflash, softbounds, ... (default yflash)")
    ap.add_argument("--n-neurons", type=int, default=100, help="excitatory neurons (100)")
    ap.add_argument("--n-train", type=int, default=1000, help="training images (1000)")
    ap.add_argument("--n-label", type=int, default=None,
                    help="training images used to label neurons (default min(n_train, 1000))")
    ap.add_argument("--n-test", type=int, default=1000, help="test images (first of the test set)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sync-ms", type=float, default=10.0,
                    help="interval between pulse flushes to the crossbar in ms (10)")
    ap.add_argument("--checkpoint-every", type=int, default=500, help="images between checkpoints")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.*")
    ap.add_argument("--out", default="results/mnist_stdp", help="output directory")
    ap.add_argument("--data", default=None, help="MNIST directory (default NEUROMEM_DATA)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--numpy-target", action="store_true",
                    help="Brian2 numpy target instead of Cython (slow; debugging)")
    return ap


def _check_args(args, ap):
    for name in ("n_neurons", "n_train", "n_test", "checkpoint_every"):
        if getattr(args, name) < (2 if name == "n_neurons" else 1):
            ap.error(f"--{name.replace('_', '-')} must be positive")
    if args.n_label is None:
        args.n_label = min(args.n_train, 1000)
    if not 1 <= args.n_label <= 60000 or args.n_train > 60000 or args.n_test > 10000:
        ap.error("MNIST has 60000 training and 10000 test images; --n-label must be >= 1")
    if not args.sync_ms > 0:
        ap.error("--sync-ms must be > 0")


# ---------------------------------------------------------------------- checkpoints
def save_checkpoint(out: Path, model, n_done: int, args, train_counts) -> None:
    arrays, meta = model.crossbar.state_dict()
    payload = {f"xbar_{k}": v for k, v in arrays.items()}
    payload["theta_v"] = np.asarray(model.exc.theta_[:])
    payload["xbar_acc"] = np.asarray(model.xe.xbar_acc_[:])
    payload["train_counts"] = train_counts[:n_done]
    tmp = out / "checkpoint.tmp.npz"
    np.savez(tmp, **payload)
    tmp.replace(out / "checkpoint.npz")
    info = {"n_done": n_done, "args": vars(args), "crossbar": meta,
            "saved": time.strftime("%Y-%m-%d %H:%M:%S")}
    (out / "checkpoint.json").write_text(json.dumps(info, indent=1))


def load_checkpoint(out: Path):
    npz, js = out / "checkpoint.npz", out / "checkpoint.json"
    if not (npz.exists() and js.exists()):
        raise FileNotFoundError(f"no checkpoint in {out} (checkpoint.npz + checkpoint.json)")
    info = json.loads(js.read_text())
    with np.load(npz, allow_pickle=False) as data:
        arrays = {k[5:]: data[k] for k in data.files if k.startswith("xbar_") and k != "xbar_acc"}
        return info, arrays, data["theta_v"], data["xbar_acc"], data["train_counts"]


# ---------------------------------------------------------------------- figures
def plot_receptive_fields(weights, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = weights.shape[1]
    side = int(np.ceil(np.sqrt(n)))
    grid = np.full((side * 28, side * 28), np.nan)
    for k in range(n):
        r, c = divmod(k, side)
        grid[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28] = weights[:, k].reshape(28, 28)
    fig, ax = plt.subplots(figsize=(7, 7))
    im = ax.imshow(grid, cmap="hot_r", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="w (input -> excitatory)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(cm, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for r in range(10):
        for c in range(10):
            if cm[r, c]:
                ax.text(c, r, str(cm[r, c]), ha="center", va="center", fontsize=6,
                        color="white" if norm[r, c] > 0.5 else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------- main
def main(argv=None) -> dict:
    ap = _parser()
    args = ap.parse_args(argv)
    _check_args(args, ap)

    import brian2
    from brian2 import ms, prefs
    from tqdm import tqdm

    from neuromem import Crossbar
    from neuromem.brian import use_cython
    from neuromem.data import load_mnist
    from networks.stdp import DiehlCook2015, DiehlCookParams, assign_labels, predict

    if args.numpy_target:
        prefs.codegen.target = "numpy"
    else:
        use_cython()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train = load_mnist(args.data, kind="train")
    x_test, y_test = load_mnist(args.data, kind="test")

    params = DiehlCookParams(n_neurons=args.n_neurons)
    train_counts = np.zeros((args.n_train, args.n_neurons), dtype=np.int64)
    n_done = 0
    t_start = time.time()
    if args.resume:
        info, arrays, theta, acc, done_counts = load_checkpoint(out)
        if info["args"]["device"] != args.device or info["args"]["n_neurons"] != args.n_neurons:
            raise SystemExit("checkpoint was made with another --device or --n-neurons")
        crossbar = Crossbar.from_state_dict(arrays, info["crossbar"])
        model = DiehlCook2015(args.device, params=params, seed=args.seed, crossbar=crossbar,
                              theta=theta * brian2.volt, sync_interval=args.sync_ms * ms)
        model.xe.xbar_acc_[:] = acc
        n_done = min(int(info["n_done"]), args.n_train)
        train_counts[:n_done] = done_counts[:n_done]
        print(f"resumed from {out / 'checkpoint.npz'} after {n_done} images")
    else:
        model = DiehlCook2015(args.device, params=params, seed=args.seed,
                              sync_interval=args.sync_ms * ms)
    prog_info = None
    if model.program_result is not None:
        prog_info = {"missed": model.program_result.n_missed,
                     "pulses": int(model.program_result.pulses.sum())}
    ledger0 = model.crossbar.ledger.as_dict()

    bar = dict(disable=args.no_progress, file=sys.stdout, mininterval=5.0)
    timings = {}
    t0 = time.time()
    with tqdm(total=args.n_train, initial=n_done, desc="train", **bar) as progress:
        while n_done < args.n_train:
            stop = min(n_done + args.checkpoint_every, args.n_train)
            brian2.seed(args.seed * 1_000_003 + n_done)  # same stream with or without resume
            train_counts[n_done:stop] = model.present(x_train[n_done:stop], learn=True,
                                                      progress=progress)
            n_done = stop
            save_checkpoint(out, model, n_done, args, train_counts)
    timings["train_s"] = time.time() - t0

    t0 = time.time()
    brian2.seed(args.seed + 7)
    with tqdm(total=args.n_label, desc="label", **bar) as progress:
        label_counts = model.present(x_train[:args.n_label], learn=False, progress=progress)
    assignments = assign_labels(label_counts, y_train[:args.n_label])
    timings["label_s"] = time.time() - t0

    t0 = time.time()
    with tqdm(total=args.n_test, desc="test", **bar) as progress:
        test_counts = model.present(x_test[:args.n_test], learn=False, progress=progress)
    pred = predict(test_counts, assignments)
    timings["test_s"] = time.time() - t0
    y = y_test[:args.n_test]
    accuracy = float(np.mean(pred == y))
    cm = np.zeros((10, 10), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)

    weights = model.weights()
    ledger = model.crossbar.ledger.as_dict()
    n_images = args.n_train + args.n_label + args.n_test
    results = {
        "experiment": "Diehl & Cook 2015 unsupervised MNIST on memristive synapses",
        "command": "neuromem snn " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": model.crossbar.device.describe(),
        "n_neurons": args.n_neurons, "n_train": args.n_train, "n_label": args.n_label,
        "n_test": args.n_test, "test_images": f"first {args.n_test} of the MNIST test set",
        "seed": args.seed, "sync_interval_ms": args.sync_ms,
        "accuracy": accuracy,
        "reference_accuracy_diehl_cook_100": 0.829,
        "neurons_per_label": np.bincount(assignments, minlength=10).tolist(),
        "silent_test_images": int(np.sum(test_counts.sum(axis=1) == 0)),
        "mean_spikes_per_test_image": float(test_counts.sum(axis=1).mean()),
        "confusion": cm.tolist(),
        "theta_mv": {"mean": float(np.mean(model.exc.theta_[:]) * 1e3),
                     "max": float(np.max(model.exc.theta_[:]) * 1e3)},
        "weights": {"mean": float(weights.mean()), "max": float(weights.max()),
                    "column_sum_mean": float(weights.sum(axis=0).mean())},
        "initial_programming": prog_info,
        "ledger_start": ledger0, "ledger": ledger,
        "timings_s": timings,
        "seconds_per_image": (timings["train_s"] + timings["label_s"] + timings["test_s"]) / n_images,
        "resumed": bool(args.resume),
        "wall_s": time.time() - t_start,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    name = type(model.crossbar.device).__name__
    plot_receptive_fields(weights, out / "receptive_fields.png",
                          f"{name}: receptive fields after {args.n_train} images")
    plot_confusion(cm, out / "confusion.png",
                   f"{name}, {args.n_neurons} neurons, {args.n_train} train: "
                   f"accuracy {accuracy:.1%} on {args.n_test} test images")
    print(f"accuracy {accuracy:.4f} on {args.n_test} test images "
          f"({args.n_train} training, {args.n_label} labelling images); results in {out}")
    return results


if __name__ == "__main__":
    main()
