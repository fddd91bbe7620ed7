"""Unsupervised MNIST with STDP on memristive synapses (Diehl & Cook 2015), ``neuromem snn``.

The paper's protocol: the input->excitatory synapses (a crossbar) learn by STDP from
``--n-train`` training images shown once; then, with learning off, the neurons' mean
responses to each class are measured on ``--n-label`` training images, and images are
classified from their spike counts: by likelihood (``--vote likelihood``, the default,
each neuron's count Poisson with its class means) or as the paper does (``--vote
mean``: each neuron labelled with its best class, the label of the highest mean spike
count wins). Without ``--final``
the last ``--n-validation`` training images are held out and the accuracy is measured
on them (choose settings this way); with ``--final`` training uses all 60 000 images
and the accuracy is measured on the first ``--n-test`` test images.

The network's parameters come from a recipe (``--recipe``; data files in
``networks/recipes/snn/``): ``tuned`` (the default: no depression at input spikes, four
times the paper's potentiation, chosen on the validation split) or ``diehl-cook-2015``
(the paper's rule); ``--param NAME=VALUE`` overrides one field of
:class:`networks.stdp.DiehlCookParams`.

The network runs in the compiled engine (:class:`networks.DiehlCookEngine`, which a
test holds to the Brian2 model :class:`networks.stdp.DiehlCook2015` spike for spike).
Labelling and testing have frozen weights and are split into shards on Dask workers
(``--workers``, a local cluster; ``--scheduler ADDRESS`` for an existing one).

Writes ``results.json`` (settings, accuracy by either vote, confusion matrix, pulses per
device, energy by operation, wall times), ``counts.npz`` (the spike counts behind the
votes), ``receptive_fields.png``, ``confusion.png`` and a
checkpoint (``checkpoint.npz`` + ``checkpoint.json``, no pickle) every
``--checkpoint-every`` training images and on Ctrl-C. A rerun of the same command
resumes (``--no-resume`` starts over); a checkpoint made with other settings is refused.

Example::

    neuromem snn --device yflash --final
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from experiments.checkpoints import refusal, setting_differences
from neuromem.energy import energy_breakdown

CHECKPOINT, CHECKPOINT_INFO, RESULTS = "checkpoint.npz", "checkpoint.json", "results.json"
#: the spike counts of the labelling and evaluation images (for other readouts later)
COUNTS = "counts.npz"
N_MNIST_TRAIN, N_MNIST_TEST = 60000, 10000
#: seeds of the Poisson input streams of the three phases (independent of each other)
STREAM_TRAIN, STREAM_LABEL, STREAM_EVAL = 0, 1, 2
#: paper results with 100 / 400 excitatory neurons (Diehl & Cook 2015, Table 1)
PAPER_ACCURACY = {100: 0.829, 400: 0.870, 1600: 0.919, 6400: 0.950}

#: settings that change what training does: a checkpoint must agree on all of them
TRAINING_SETTINGS = ("device", "neuron", "n_neurons", "n_train", "epochs", "anneal", "seed",
                     "sync_ms", "rounding",
                     "between_images", "pulse_width", "step_calibration", "dt_ms", "final",
                     "n_validation", "input_delay_ms", "params")
#: settings added after checkpoints were first written: what older ones ran with
_SETTINGS_BEFORE = {"input_delay_ms": 0.0, "params": {}, "epochs": 1, "anneal": 1.0}
#: network parameters the command sets from its own flags (not through --param)
_PARAMS_FROM_FLAGS = ("n_neurons", "dt_ms", "input_delay_max_ms", "n_input")


def _parser() -> argparse.ArgumentParser:
    from networks.stdp import VOTES

    ap = argparse.ArgumentParser(prog="neuromem snn", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = ap.add_argument_group("network")
    g.add_argument("--device", default="yflash",
                   help="device of the input->excitatory synapses (neuromem devices lists "
                        "them), or 'none' for plain software STDP")
    g.add_argument("--n-neurons", type=int, default=100, help="excitatory neurons")
    g.add_argument("--neuron", choices=("lif", "diffusive"), default="lif",
                   help="excitatory neurons: the paper's LIF, or diffusive (volatile) "
                        "memristor neurons with device spread")
    g.add_argument("--dt-ms", type=float, default=0.5, help="simulation step (ms)")
    g.add_argument("--recipe", default="tuned",
                   help="named network parameters (networks/recipes/snn/: 'tuned', chosen on "
                        "the validation split; 'diehl-cook-2015', the paper's rule) or a "
                        "TOML file with a [params] table")
    g.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set one network parameter of networks.stdp.DiehlCookParams over the "
                        "recipe's (e.g. theta_plus_mv=0.1); repeat for more")
    g.add_argument("--input-delay-ms", type=float, default=0.0,
                   help="input->excitatory delays drawn per synapse from U(0, this) ms "
                        "(the published code: 10); 0 for none")
    g.add_argument("--between-images", choices=("reset", "rest"), default="reset",
                   help="jump over the 150 ms rest between images (state set to rest) or "
                        "simulate it as the paper does")
    g = ap.add_argument_group("pulses")
    g.add_argument("--sync-ms", type=float, default=10.0,
                   help="interval between pulse flushes to the crossbar (ms)")
    g.add_argument("--rounding", choices=("residual", "stochastic"), default="residual",
                   help="how desired weight changes become whole pulses")
    g.add_argument("--pulse-width", type=float, default=1.0,
                   help="programming pulse duration relative to the device's nominal pulse")
    g.add_argument("--step-calibration", choices=("swing", "operating"), default="operating",
                   help="measure the pulse step the conversion assumes over the device's "
                        "whole swing, or at the weights' operating point")
    g = ap.add_argument_group("protocol")
    g.add_argument("--n-train", type=int, default=None,
                   help="training images (default: all of the training split)")
    g.add_argument("--epochs", type=int, default=1,
                   help="passes over the --n-train images (the paper's 100- and 400-neuron "
                        "networks: one)")
    g.add_argument("--anneal", type=float, default=1.0, metavar="RATIO",
                   help="STDP rates fall geometrically over training to RATIO times the "
                        "recipe's (1: constant rates, as the paper)")
    g.add_argument("--n-label", type=int, default=None,
                   help="training images whose responses (learning off) label the neurons "
                        "(default: all of the training split, as the paper)")
    g.add_argument("--n-test", type=int, default=10000,
                   help="images the accuracy is measured on (test set with --final, else "
                        "the validation split)")
    g.add_argument("--n-validation", type=int, default=10000,
                   help="last training images held out for validation (without --final)")
    g.add_argument("--vote", choices=VOTES, default="likelihood",
                   help="how the labelled neurons' spike counts pick a class: 'likelihood' "
                        "(each neuron's count Poisson with its mean response to each class; "
                        "chosen on the validation split) or 'mean' (the paper: the class of "
                        "the highest mean count of the neurons labelled with it). "
                        "results.json holds the accuracy of both")
    g.add_argument("--final", action="store_true",
                   help="train on all 60 000 training images and report on the test set")
    g.add_argument("--seed", type=int, default=0)
    g = ap.add_argument_group("running")
    g.add_argument("--data-dir", help="MNIST directory (default $NEUROMEM_DATA)")
    g.add_argument("--out", default=None, help="output directory (default results/snn-<settings>)")
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from the checkpoint in --out")
    g.add_argument("--checkpoint-every", type=int, default=5000, help="training images")
    g.add_argument("--workers", type=int, default=None,
                   help="Dask worker processes for labelling and testing (default: the "
                        "machine's cores; 0: run here; with --between-images rest they "
                        "run here)")
    g.add_argument("--scheduler", default=None,
                   help="address of an existing Dask scheduler (instead of a local cluster)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def resolve_settings(args, ap) -> dict:
    """Validated settings from the command line (errors name the flag; nothing is created)."""
    from networks.stdp import make_device

    def need(cond, msg):
        if not cond:
            ap.error(msg)

    need(args.n_neurons >= 2, f"--n-neurons must be >= 2 (lateral inhibition), got {args.n_neurons}")
    need(args.dt_ms > 0 and (50.0 / args.dt_ms).is_integer(),
         f"--dt-ms must divide 50 ms (e.g. 0.5 or 0.25), got {args.dt_ms}")
    need(args.dt_ms < 1.0, f"--dt-ms must be below 1 ms, the synapses' time constant "
                           f"(forward Euler silences them at dt = tau), got {args.dt_ms}")
    need(args.sync_ms > 0 and abs(args.sync_ms / args.dt_ms - round(args.sync_ms / args.dt_ms)) < 1e-9,
         f"--sync-ms must be a positive multiple of --dt-ms, got {args.sync_ms}")
    need(args.pulse_width > 0, f"--pulse-width must be > 0, got {args.pulse_width}")
    need(0 <= args.input_delay_ms <= 100, f"--input-delay-ms must lie in [0, 100] ms, got "
                                         f"{args.input_delay_ms}")
    need(args.seed >= 0, f"--seed must be >= 0, got {args.seed}")
    need(args.checkpoint_every >= 1, "--checkpoint-every must be >= 1")
    need(args.workers is None or args.workers >= 0, "--workers must be >= 0")
    n_validation = 0 if args.final else args.n_validation
    need(0 <= n_validation < N_MNIST_TRAIN, f"--n-validation must lie in [0, {N_MNIST_TRAIN})")
    need(args.final or n_validation > 0, "--n-validation must be > 0 without --final")
    n_split = N_MNIST_TRAIN - n_validation
    n_train = n_split if args.n_train is None else args.n_train
    need(1 <= n_train <= n_split, f"--n-train must lie in [1, {n_split}] (the training split), got {n_train}")
    need(args.epochs >= 1, f"--epochs must be >= 1, got {args.epochs}")
    need(0 < args.anneal <= 1, f"--anneal must lie in (0, 1], got {args.anneal}")
    n_label = n_split if args.n_label is None else args.n_label
    need(1 <= n_label <= n_split, f"--n-label must lie in [1, {n_split}], got {n_label}")
    n_eval_max = N_MNIST_TEST if args.final else n_validation
    need(1 <= args.n_test <= n_eval_max, f"--n-test must lie in [1, {n_eval_max}], got {args.n_test}")
    from networks.recipes import load_snn_recipe

    try:
        recipe = load_snn_recipe(args.recipe)
    except (ValueError, FileNotFoundError) as exc:
        ap.error(f"--recipe: {exc}")
    from_flags = sorted(set(recipe["params"]) & set(_PARAMS_FROM_FLAGS))
    need(not from_flags, f"--recipe {args.recipe}: {from_flags} are set by their own flags, "
                         "not by a recipe")
    params = dict(sorted({**recipe["params"], **_parse_params(args.param, ap)}.items()))
    device = None if args.device.lower() == "none" else args.device
    if device is not None:
        try:
            device = make_device(device).name
        except ValueError as exc:
            ap.error(f"--device: {exc}")
    return {"device": device or "none", "neuron": args.neuron, "n_neurons": args.n_neurons,
            "n_train": n_train, "epochs": args.epochs, "anneal": args.anneal,
            "n_label": n_label, "n_test": args.n_test, "n_validation": n_validation,
            "final": bool(args.final), "seed": args.seed, "sync_ms": args.sync_ms,
            "rounding": args.rounding, "between_images": args.between_images,
            "pulse_width": args.pulse_width, "step_calibration": args.step_calibration,
            "dt_ms": args.dt_ms, "input_delay_ms": args.input_delay_ms, "recipe": recipe["name"],
            "params": params, "vote": args.vote}


def _parse_params(items, ap) -> dict:
    """``--param NAME=VALUE`` pairs as a dict of DiehlCookParams fields (checked)."""
    from dataclasses import fields

    from networks.stdp import DiehlCookParams

    types = {f.name: f.type for f in fields(DiehlCookParams) if f.name not in _PARAMS_FROM_FLAGS}
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or name not in types:
            ap.error(f"--param takes NAME=VALUE with NAME one of {', '.join(sorted(types))}; "
                     f"got {item!r}")
        try:
            value = int(text) if "int" in str(types[name]) else float(text)
        except ValueError:
            ap.error(f"--param {name}: expected a number, got {text!r}")
        out[name] = value
    try:
        DiehlCookParams(**out)
    except (TypeError, ValueError) as exc:
        ap.error(f"--param: {exc}")
    return dict(sorted(out.items()))


def _train_counts(s: dict) -> np.ndarray:
    """Spike counts per training presentation (uint16: a neuron spikes < 200 times per image)."""
    return np.zeros((s["n_train"] * s["epochs"], s["n_neurons"]), np.uint16)


def run_name(s: dict) -> str:
    parts = ["snn", s["device"], f"n{s['n_neurons']}", f"t{s['n_train']}"]
    if s["epochs"] != 1:
        parts.append(f"e{s['epochs']}")
    if s["anneal"] != 1.0:
        parts.append(f"anneal{s['anneal']:g}")
    if s["neuron"] != "lif":
        parts.append(s["neuron"])
    if s["pulse_width"] != 1.0:
        parts.append(f"pw{s['pulse_width']:g}")
    if s["step_calibration"] != "operating":
        parts.append(s["step_calibration"])
    if s["rounding"] != "residual":
        parts.append(s["rounding"])
    if s["between_images"] != "reset":
        parts.append(s["between_images"])
    if s["dt_ms"] != 0.5:
        parts.append(f"dt{s['dt_ms']:g}")
    if s["input_delay_ms"]:
        parts.append(f"delay{s['input_delay_ms']:g}")
    for name, value in s["params"].items():
        parts.append(f"{name}{value:g}")
    parts.append("final" if s["final"] else "val")
    if s["seed"]:
        parts.append(f"s{s['seed']}")
    return "-".join(parts)


def build_engine(s: dict):
    """The network the settings describe (fresh)."""
    from neuromem.volatile import DiffusiveMemristor
    from networks import DiehlCookEngine
    from networks.stdp import DiehlCookParams

    params = DiehlCookParams(n_neurons=s["n_neurons"], dt_ms=s["dt_ms"],
                             input_delay_max_ms=s["input_delay_ms"], **s["params"])
    return DiehlCookEngine(None if s["device"] == "none" else s["device"], params=params,
                           seed=s["seed"], sync_interval_ms=s["sync_ms"], rounding=s["rounding"],
                           between_images=s["between_images"], pulse_width=s["pulse_width"],
                           neuron=DiffusiveMemristor() if s["neuron"] == "diffusive" else None,
                           step_calibration=s["step_calibration"])


# ---------------------------------------------------------------------- data
def load_split(s: dict, data_dir):
    """(train images, train labels, evaluation images, evaluation labels) of the settings."""
    from neuromem.data import load_mnist

    x_train, y_train = load_mnist(data_dir, kind="train")
    if s["final"]:
        x_eval, y_eval = load_mnist(data_dir, kind="test")
    else:
        x_eval, y_eval = x_train[N_MNIST_TRAIN - s["n_validation"]:], y_train[N_MNIST_TRAIN - s["n_validation"]:]
        x_train, y_train = x_train[:N_MNIST_TRAIN - s["n_validation"]], y_train[:N_MNIST_TRAIN - s["n_validation"]]
    return x_train, y_train, x_eval[:s["n_test"]], y_eval[:s["n_test"]]


# ---------------------------------------------------------------------- checkpoints
def save_checkpoint(out: Path, engine, n_done: int, s: dict, train_counts, elapsed_s: float,
                    pulses_at_start) -> None:
    """Atomic: a crash while writing leaves the previous checkpoint in place."""
    arrays, meta = engine.state_dict()
    arrays["train_counts"] = train_counts[:n_done]
    if pulses_at_start is not None:
        arrays["pulses_at_start"] = pulses_at_start
    tmp = out / (CHECKPOINT + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    info = {"n_done": n_done, "settings": {k: s[k] for k in TRAINING_SETTINGS},
            "engine": meta, "train_s": elapsed_s, "saved": time.strftime("%Y-%m-%d %H:%M:%S")}
    tmp_info = out / (CHECKPOINT_INFO + ".tmp")
    tmp_info.write_text(json.dumps(info, indent=1))
    tmp.replace(out / CHECKPOINT)
    tmp_info.replace(out / CHECKPOINT_INFO)


def resume(out: Path, s: dict, ap):
    """(engine, n_done, train_counts, train_s, pulses at the start of training) from
    ``out``'s checkpoint, after checking its settings."""
    info = json.loads((out / CHECKPOINT_INFO).read_text())
    saved = info.get("settings", {})
    saved = {**_SETTINGS_BEFORE, **saved}
    diff = setting_differences(saved, s, TRAINING_SETTINGS)
    if diff:
        ap.error(refusal(out, diff))
    engine = build_engine(s)
    with np.load(out / CHECKPOINT, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    try:
        engine.load_state_dict(arrays, info["engine"])
    except (KeyError, ValueError) as exc:
        ap.error(f"cannot resume from {out / CHECKPOINT} ({exc}); rerun with --no-resume")
    n_done = int(info["n_done"])
    counts = _train_counts(s)
    counts[:n_done] = arrays["train_counts"][:n_done]
    return (engine, n_done, counts, float(info.get("train_s", 0.0)),
            arrays.get("pulses_at_start"))


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
    for r in range(cm.shape[0]):
        for c in range(cm.shape[1]):
            if cm[r, c]:
                ax.text(c, r, str(cm[r, c]), ha="center", va="center", fontsize=6,
                        color="white" if norm[r, c] > 0.5 else "black")
    ax.set_xticks(range(cm.shape[1]))
    ax.set_yticks(range(cm.shape[0]))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------- phases
@contextlib.contextmanager
def _deferred_interrupt():
    """Ctrl-C sets a flag (read by calling the yielded function) instead of raising, so
    training stops between images with a consistent state to save."""
    hit = []

    def handler(signum, frame):
        if hit:  # a second Ctrl-C: the user insists
            raise KeyboardInterrupt
        hit.append(signum)
        print("\nCtrl-C: saving a checkpoint after the current image...", file=sys.stderr)

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no handler, plain KeyboardInterrupt
        yield lambda: False
        return
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, previous)


def _client(args):
    """A Dask client for the frozen phases, or None to run them here."""
    from experiments.cluster import dask_client

    return dask_client(args.workers, args.scheduler)


def label_and_classify(engine, x_label, y_label, x_eval, *, client=None, bar=None):
    """Label neurons from the training responses, then classify ``x_eval`` by every vote.

    Returns (class rates of the neurons, ``{vote: eval predictions}`` for every vote of
    ``networks.stdp.VOTES``, label counts, eval counts). The evaluation labels are not
    an argument: nothing about them can reach the classifier.
    """
    from tqdm import tqdm

    from networks.stdp import VOTES, class_rates, vote

    bar = bar or {"disable": True}
    with tqdm(total=len(x_label), desc="label", **bar) as progress:
        label_counts = engine.respond(x_label, stream=STREAM_LABEL, client=client, progress=progress)
    rates = class_rates(label_counts, y_label)
    with tqdm(total=len(x_eval), desc="test", **bar) as progress:
        eval_counts = engine.respond(x_eval, stream=STREAM_EVAL, client=client, progress=progress)
    return rates, {v: vote(eval_counts, rates, v) for v in VOTES}, label_counts, eval_counts


# ---------------------------------------------------------------------- main
def main(argv=None, *, on_checkpoint=None) -> dict:
    """Run the protocol; returns the results dict. ``on_checkpoint(n_done)`` is called after
    every training checkpoint (tests raise from it to simulate an interruption)."""
    t_start = time.time()
    ap = _parser()
    args = ap.parse_args(argv)
    s = resolve_settings(args, ap)
    try:
        x_train, y_train, x_eval, y_eval = load_split(s, args.data_dir)
    except (FileNotFoundError, ValueError) as exc:
        ap.error(f"MNIST: {exc} (give --data-dir DIR or set NEUROMEM_DATA to the folder "
                 "holding the four IDX files)")
    out = Path(args.out) if args.out else Path("results") / run_name(s)
    resuming = args.resume and (out / CHECKPOINT).exists() and (out / CHECKPOINT_INFO).exists()
    if resuming:
        engine, n_done, train_counts, train_s, pulses_at_start = resume(out, s, ap)
        print(f"resuming from {out / CHECKPOINT} after {n_done} training images", file=sys.stderr)
    else:
        engine = build_engine(s)
        n_done, train_s = 0, 0.0
        train_counts = _train_counts(s)
        pulses_at_start = None if engine.crossbar is None else engine.crossbar.pulse_count
    out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    from networks.stdp import annealed_scale

    bar = dict(disable=args.no_progress, file=sys.stderr, mininterval=2.0)
    xbar = engine.crossbar
    n_shown = s["n_train"] * s["epochs"]
    t0 = time.time()
    with _deferred_interrupt() as interrupted, \
            tqdm(total=n_shown, initial=n_done, desc="train", **bar) as progress:
        while n_done < n_shown and not interrupted():
            # small chunks: a Ctrl-C is honoured between images, within a second
            boundary = (n_done // args.checkpoint_every + 1) * args.checkpoint_every
            stop = min(n_done + 50, boundary, n_shown)
            engine.set_learning_rate_scale(annealed_scale(s["anneal"], n_done, n_shown))
            # presentation i shows training image i mod n_train (epoch after epoch)
            train_counts[n_done:stop] = engine.present(
                x_train[np.arange(n_done, stop) % s["n_train"]], learn=True, progress=progress,
                start_index=n_done, stream=STREAM_TRAIN)
            previous, n_done = n_done, stop
            if (n_done // args.checkpoint_every > previous // args.checkpoint_every
                    or n_done == n_shown or interrupted()):
                save_checkpoint(out, engine, n_done, s, train_counts, train_s + time.time() - t0,
                                pulses_at_start)
                if on_checkpoint is not None:
                    on_checkpoint(n_done)
    if interrupted():
        print(f"\ninterrupted: {n_done} training images are saved in {out / CHECKPOINT}; "
              "rerun the same command to resume", file=sys.stderr)
        raise SystemExit(130)
    train_s += time.time() - t0
    ledger_train = None if xbar is None else xbar.ledger.as_dict()

    t0 = time.time()
    client = None
    try:
        # shards need every image to start from the same state: with a simulated rest
        # the state carries from image to image, so the frozen phases run here
        client = _client(args) if s["between_images"] == "reset" else None
        rates, preds, label_counts, eval_counts = label_and_classify(
            engine, x_train[:s["n_label"]], y_train[:s["n_label"]], x_eval, client=client, bar=bar)
    finally:
        from experiments.cluster import close_client

        close_client(client)
    eval_s = time.time() - t0
    np.savez_compressed(out / COUNTS, label_counts=label_counts, label_classes=y_train[:s["n_label"]],
                        eval_counts=eval_counts)
    pred = preds[s["vote"]]
    accuracy = float(np.mean(pred == y_eval))
    cm = np.zeros((10, 10), dtype=np.int64)
    np.add.at(cm, (y_eval, pred), 1)
    weights = engine.weights()
    n_images = n_shown + s["n_label"] + s["n_test"]
    results = {
        "experiment": "Diehl & Cook 2015 unsupervised MNIST, STDP on memristive synapses",
        "command": "neuromem snn " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": s,
        "neuron_device": (None if engine.neuron is None else engine.neuron.describe()),
        "evaluated_on": (f"first {s['n_test']} MNIST test images" if s["final"] else
                         f"first {s['n_test']} of the last {s['n_validation']} training images (validation)"),
        "accuracy": accuracy,
        "accuracy_by_vote": {v: float(np.mean(p == y_eval)) for v, p in preds.items()},
        "paper_accuracy": PAPER_ACCURACY.get(s["n_neurons"]),
        "neurons_per_label": np.bincount(rates.argmax(axis=0), minlength=10).tolist(),
        "silent_eval_images": int(np.sum(eval_counts.sum(axis=1) == 0)),
        "mean_spikes_per_eval_image": float(eval_counts.sum(axis=1).mean()),
        "mean_spikes_per_train_image": float(train_counts.sum(axis=1).mean()),
        "confusion": cm.tolist(),
        "theta_mv": {"mean": float(engine.theta_v.mean() * 1e3), "max": float(engine.theta_v.max() * 1e3)},
        "weights": {"mean": float(weights.mean()), "max": float(weights.max()),
                    "column_sum_mean": float(weights.sum(axis=0).mean())},
        "timings_s": {"train": train_s, "label_and_test": eval_s},
        "images_per_s_train": n_shown / max(train_s, 1e-9),
        "wall_s_this_invocation": time.time() - t_start,
        "total_images": n_images,
        "resumed": bool(resuming),
        "dask": ("none: with the rest simulated the frozen phases run here"
                 if s["between_images"] == "rest" else
                 ("scheduler " + args.scheduler) if args.scheduler else
                 f"local cluster, {args.workers if args.workers is not None else os.cpu_count()} workers"),
        "machine": {"cpus": os.cpu_count()},
    }
    if xbar is not None:
        trained = xbar.pulse_count - pulses_at_start
        results["device"] = xbar.device.describe()
        results["training_pulses"] = {
            "potentiate": engine.requested["potentiate"], "depress": engine.requested["depress"],
            "per_device_mean": float(trained.mean()), "per_device_max": int(trained.max())}
        results["initial_programming"] = (None if engine.program_result is None else
                                          {"missed": int(engine.program_result.n_missed),
                                           "pulses": int(engine.program_result.pulses.sum())})
        results["ledger_after_training"] = ledger_train
        results["ledger"] = xbar.ledger.as_dict()
        results["energy_j"] = {"total": xbar.ledger.total_j,
                               "by_component": energy_breakdown(xbar.ledger)}
    (out / RESULTS).write_text(json.dumps(results, indent=1))
    name = s["device"] if xbar is None else type(xbar.device).__name__
    epochs_note = f" x {s['epochs']}" if s["epochs"] > 1 else ""
    plot_receptive_fields(weights, out / "receptive_fields.png",
                          f"{name}: receptive fields after {s['n_train']} images" + epochs_note)
    plot_confusion(cm, out / "confusion.png",
                   f"{name}, {s['n_neurons']} neurons, {s['n_train']} training images{epochs_note}: "
                   f"{accuracy:.2%} on {s['n_test']} {'test' if s['final'] else 'validation'} images")
    print(f"accuracy {accuracy:.4f} on {results['evaluated_on']}; results in {out}")
    return results


if __name__ == "__main__":
    main()
