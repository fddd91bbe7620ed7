"""Deep belief network trained in situ on simulated memristive crossbars (``neuromem dbn``).

Every setting comes from a recipe (:mod:`networks.recipes`: TOML files whose ``[dbn]``
keys are :class:`networks.MemristiveDBN`'s own parameters); flags override single keys.
Each estimator parameter is a flag of its own name (``--n-top-iter 40``,
``--paired-noise``), plus ``--rbm-param`` / ``--top-rbm-param KEY=VALUE`` for the RBMs
and a few short names (``--layers``, ``--top``, ``--epochs``, ``--top-epochs``,
``--finetune-epochs``, ``--seed``). Writes to ``--out``:

``checkpoint.npz``
    the network after every epoch (atomic, checksummed); a rerun of the same command
    resumes from it and ends with the same result as an uninterrupted run; Ctrl-C
    keeps the last epoch's checkpoint and exits with status 130;
``run.json``
    the resolved recipe the checkpoint was trained with (a resume with other settings
    is an error);
``results.json``
    the resolved recipe (``--recipe results.json`` reruns it), the data set (with the
    SHA-256 of files that are not a known set), accuracy (``freeze`` and ``sampling``
    inference), per-epoch curves, pulses per device, energy by operation, wall time,
    commit and versions;
``model.npz``
    the trained network, enough to predict (``MemristiveDBN.load``);
``receptive_fields.png``, ``conductance_histogram.png``, ``accuracy.png``.

Without ``final`` the network trains on the training split and reports a validation
split of it, so tuning never touches the test set; with ``--final`` it trains on the
whole training set and reports the test set.

Examples::

    neuromem dbn                                   # the default network on the digits
    neuromem dbn --recipe yflash-headline          # the README's Y-Flash MNIST result
    neuromem dbn --recipe yflash-headline --no-final --seed 1
    neuromem dbn --recipe wang2022 --neuron mtj --rbm-param weight_range=5
    neuromem dbn --dataset path/to/idx-folder --binarize stochastic
    neuromem dbn --recipe results/some-run/results.json   # rerun a finished run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from experiments.checkpoints import refusal, setting_differences, write_json
from experiments.dbn_report import (FIGURES, evaluate_epoch, final_accuracy, git_commit,
                                    git_record, ledger_ops, make_figures, ops_add, ops_diff,
                                    pulse_count, pulse_summary, versions, with_total)
from neuromem.energy import energy_breakdown

__all__ = ["FIGURES", "build_parser", "check_argv", "key_value", "main", "resolve_recipe"]

DEFAULT_RECIPE = "default"
CHECKPOINT = "checkpoint.npz"
MODEL = "model.npz"
RUN_FILE = "run.json"
RESULTS = "results.json"
SPLIT_SEED = 0
EXIT_INTERRUPTED = 130
#: short flags kept from earlier versions -> estimator parameter
ALIASES = {"layers": "hidden_layer_sizes", "top": "n_top", "epochs": "n_iter",
           "top_epochs": "n_top_iter", "finetune_epochs": "n_finetune", "seed": "random_state"}
#: flag types of parameters whose default ("auto") does not show them
_FLAG_KINDS = {"paired_noise": bool, "top_anneal_epochs": tuple, "hidden_layer_sizes": tuple}
#: estimator parameters that do not change training (a checkpoint resumes under other values)
_NOT_TRAINING = ("inference", "n_samples", "verbose")
#: RBM parameters the DBN sets for every layer, with the flag that sets them
_SET_BY_DBN = {"n_components": "--hidden-layer-sizes/--n-top", "device": "--device",
               "neuron": "--neuron", "update": "--update", "cd_k": "--cd-k",
               "batch_size": "--batch-size", "n_iter": "--n-iter", "random_state": "--seed"}


class Parser(argparse.ArgumentParser):
    """One line on stderr and exit status 2 for bad input (argparse's own rule), without
    the long usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------------- options

def _parse_value(text: str):
    """A flag's value: bool, None, int, float or the string itself."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def key_value(text: str) -> tuple[str, object]:
    """``"KEY=VALUE"`` -> ``(KEY, value)`` with the value parsed as a flag's (an argparse
    type: a bad word is an ArgumentTypeError)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, _parse_value(value)


_rbm_param = key_value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    from networks import MemristiveDBN
    from networks.recipes import available_recipes

    names = ", ".join(available_recipes())
    p = Parser(
        prog="neuromem dbn",
        description="Train a deep belief network in situ on simulated memristive crossbars "
                    "(counters, binary stochastic neurons, no ADC) and report accuracy, "
                    "pulses and energy. Settings come from a recipe; flags override it.",
        epilog=f"Recipes: {names} ('neuromem recipes' describes them). Without --recipe: "
               f"'{DEFAULT_RECIPE}', MemristiveDBN's own defaults on the bundled 8x8 digits.")
    p.add_argument("--recipe", metavar="NAME|FILE",
                   help=f"a shipped recipe ({names}), a recipe TOML file, or the results.json "
                        f"of an earlier run (default: {DEFAULT_RECIPE})")
    g = p.add_argument_group("data (the recipe's [run] table)")
    g.add_argument("--dataset", metavar="SET",
                   help="mnist, digits, a directory of IDX files (standard MNIST names, any "
                        "image size and number of classes) or an .npz file with X_train, "
                        "y_train, X_test, y_test")
    g.add_argument("--data-dir", help="where the MNIST files are (default $NEUROMEM_DATA)")
    g.add_argument("--n-validation", type=_parse_value, metavar="N",
                   help="validation split of the training set: a count or a fraction "
                        "(default 10000 for mnist, 0.2 otherwise)")
    g.add_argument("--final", action=argparse.BooleanOptionalAction, default=None,
                   help="train on the whole training set and report the test set "
                        "(--no-final: report a validation split; tune with that)")
    g.add_argument("--binarize", choices=("threshold", "stochastic"),
                   help="grey levels to row drive: threshold at half range, or stochastic "
                        "(each pixel drives its row with probability equal to its intensity, "
                        "a new draw each presentation)")
    g.add_argument("--threads", type=int, help="BLAS threads")
    g = p.add_argument_group("network (MemristiveDBN parameters, the recipe's [dbn] table)")
    docs = _parameter_docs(MemristiveDBN)
    for name, default in MemristiveDBN().get_params().items():
        if name in ("verbose", "rbm_params", "top_rbm_params"):
            continue
        kind = _FLAG_KINDS.get(name, type(default))
        text = docs.get(name, "").replace("%", "%%")
        if kind is bool:
            g.add_argument(_flag(name), action=argparse.BooleanOptionalAction, default=None,
                           help=text)
        elif kind in (tuple, list):
            g.add_argument(_flag(name), type=_parse_value, nargs="+", metavar="N", help=text)
        else:
            g.add_argument(_flag(name), type=_parse_value, metavar="VALUE", help=text)
    g.add_argument("--rbm-param", action="append", type=_rbm_param, metavar="KEY=VALUE",
                   help="MemristiveRBM parameter of every layer (repeatable), e.g. "
                        "weight_range=5 scheme=differential persistent=true")
    g.add_argument("--top-rbm-param", action="append", type=_rbm_param, metavar="KEY=VALUE",
                   help="MemristiveRBM parameter of the top RBM only, over --rbm-param")
    g = p.add_argument_group("short names")
    g.add_argument("--layers", type=_parse_value, nargs="+", metavar="N", help="= --hidden-layer-sizes")
    g.add_argument("--top", type=_parse_value, metavar="N", help="= --n-top")
    g.add_argument("--epochs", type=_parse_value, metavar="N", help="= --n-iter")
    g.add_argument("--top-epochs", type=_parse_value, metavar="N", help="= --n-top-iter")
    g.add_argument("--finetune-epochs", type=_parse_value, metavar="N", help="= --n-finetune")
    g.add_argument("--seed", type=_parse_value, metavar="N", help="= --random-state")
    g.add_argument("--preset", help=argparse.SUPPRESS)
    g = p.add_argument_group("output")
    g.add_argument("--out", help="output directory (default results/<recipe>-s<seed>-<val|final>)")
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from OUT/checkpoint.npz when it exists (default: on)")
    g.add_argument("--stop-after", type=int, metavar="EPOCHS",
                   help="stop this invocation after EPOCHS epochs, leaving a checkpoint "
                        "(run in slices; rerun the command to continue)")
    g.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _parameter_docs(cls) -> dict:
    """First sentence of each parameter in a numpydoc ``Parameters`` section."""
    docs, names, lines = {}, [], []
    text = (cls.__doc__ or "").split("Parameters\n    ----------\n", 1)[-1]
    for line in text.splitlines():
        head = re.match(r"    (\w[\w, ]*) :( |$)", line)
        if head:
            for name in names:
                docs[name] = " ".join(lines).split(". ")[0].strip().rstrip(".")
            names, lines = [n.strip() for n in head.group(1).split(",")], []
        elif line.startswith("        "):
            lines.append(line.strip())
    for name in names:
        docs[name] = " ".join(lines).split(". ")[0].strip().rstrip(".")
    return docs


def _cli_words(message: str, params) -> str:
    """An estimator's error in flag names: ``n_top_iter=5`` -> ``--n-top-iter 5``."""
    for name in sorted(params, key=len, reverse=True):
        message = re.sub(rf"\b{name}='?([^'\s,;)]*)'?", lambda m, n=name: f"{_flag(n)} {m.group(1)}",
                         message)
        message = re.sub(rf"(?<![-\w]){name}(?= must | cannot | holds )", _flag(name), message)
    return message


def resolve_recipe(args, parser) -> dict:
    """The recipe with every flag applied and every estimator parameter filled in.

    Returns ``{"name", "description", "results", "run", "dbn", "overrides"}``; bad input
    ends in ``parser.error`` (exit status 2, one line).
    """
    from networks import MemristiveDBN, MemristiveRBM
    from networks.recipes import load_recipe, recipe_estimator_params

    if args.preset is not None:
        parser.error("--preset was replaced by --recipe (paper: --recipe wang2022, "
                     "quick: --recipe digits; 'neuromem recipes' lists them)")
    try:
        recipe = load_recipe(args.recipe or DEFAULT_RECIPE)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(f"--recipe: {exc}")
    run, params = dict(recipe["run"]), recipe_estimator_params(recipe)
    overrides = []
    for key in run:
        value = getattr(args, key, None)
        if value is not None:
            run[key], _ = value, overrides.append(_flag(key))
    given = dict(vars(args))
    for short, name in ALIASES.items():
        if given.get(short) is not None:
            if given.get(name) is not None:
                parser.error(f"{_flag(short)} and {_flag(name)} set the same parameter")
            given[name] = given[short]
    defaults = MemristiveDBN().get_params()
    for name in defaults:
        value = given.get(name)
        if value is not None and name not in ("rbm_params", "top_rbm_params", "verbose"):
            if isinstance(value, list):  # N N ... or the single word auto
                value = value[0] if value in (["auto"], ["none"]) else tuple(value)
                value = None if value == "none" else value
            params[name] = value
            overrides.append(_flag(name))
    allowed = set(MemristiveRBM().get_params()) - set(_SET_BY_DBN) - {"verbose"}
    for option, key in (("--rbm-param", "rbm_params"), ("--top-rbm-param", "top_rbm_params")):
        extra = dict(given.get(key.replace("_params", "_param")) or [])
        for name, value in extra.items():
            if name in _SET_BY_DBN:
                parser.error(f"{option} {name} is set by the network; use {_SET_BY_DBN[name]}")
            if name not in allowed:
                parser.error(f"{option} {name}: not a MemristiveRBM parameter; choose from "
                             f"{', '.join(sorted(allowed))}")
            try:
                MemristiveRBM(**{name: value})._check_params()
            except (TypeError, ValueError) as exc:
                parser.error(f"{option} {name}={value}: {exc}")
        if extra:
            params[key] = {**(params.get(key) or {}), **extra}
            overrides.append(option)
    if params.get("random_state") is None:
        params["random_state"] = 0  # a command-line run is always seeded (--seed N)
    # every RBM parameter written out, so the recorded recipe reruns the same network
    # whatever later versions choose as defaults
    rbm_defaults = {k: v for k, v in MemristiveRBM().get_params().items() if k in allowed}
    params["rbm_params"] = {**rbm_defaults, **(params.get("rbm_params") or {})}
    dbn = MemristiveDBN(**params)
    try:
        dbn._check_params()
    except (TypeError, ValueError) as exc:
        parser.error(_cli_words(str(exc), defaults))
    if run["binarize"] not in ("threshold", "stochastic"):
        parser.error(f"binarize must be 'threshold' or 'stochastic', got {run['binarize']!r}")
    nv = run["n_validation"]
    if nv is not None and (isinstance(nv, bool) or not isinstance(nv, (int, float))
                           or (isinstance(nv, float) and not 0 < nv < 1)
                           or (isinstance(nv, int) and nv < 1)):
        parser.error(f"--n-validation must be a count >= 1 or a fraction in (0, 1), got {nv!r}")
    if not isinstance(run["threads"], int) or run["threads"] < 1:
        parser.error(f"--threads must be a whole number >= 1, got {run['threads']!r}")
    if args.stop_after is not None and args.stop_after < 1:
        parser.error(f"--stop-after must be >= 1, got {args.stop_after}")
    full = {k: v for k, v in dbn.get_params().items() if k != "verbose"}
    out = {"name": recipe["name"], "description": recipe["description"],
           "results": recipe["results"], "run": run,
           "dbn": json.loads(json.dumps(full, default=_jsonable)), "overrides": overrides}
    return out


def check_argv(argv) -> None:
    """Exit with status 2 and one line when ``argv`` is not a valid run (its flags and
    recipe; the data set is read only by the run). ``neuromem sweep`` calls it for
    every point before it starts any."""
    parser = build_parser()
    resolve_recipe(parser.parse_args(argv), parser)


def _jsonable(obj):
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "describe"):
        return obj.describe()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def build_dbn(recipe: dict):
    """The estimator of a resolved recipe."""
    from networks import MemristiveDBN

    return MemristiveDBN.from_recipe(recipe)


def run_name(recipe: dict) -> str:
    seed = recipe["dbn"]["random_state"]
    return f"{recipe['name']}-s{seed}-{'final' if recipe['run']['final'] else 'val'}"


# ---------------------------------------------------------------------------- data

def load_data(run: dict, data_dir=None) -> dict:
    """Training and evaluation arrays for the ``[run]`` settings (pixels in [0, 1])."""
    from neuromem.data import load_dataset, train_validation_split

    ds = load_dataset(run["dataset"], data_dir=data_dir)
    X, y = ds["X_train"], ds["y_train"]
    if run["final"]:
        X_train, y_train, X_eval, y_eval, eval_set = X, y, ds["X_test"], ds["y_test"], "test"
    else:
        nv = run["n_validation"]
        if nv is None:
            nv = 10000 if run["dataset"] == "mnist" else 0.2
        X_train, X_eval, y_train, y_eval = train_validation_split(X, y, nv, SPLIT_SEED)
        eval_set = "validation"
    if run["binarize"] == "threshold":
        X_train, X_eval = ((a > 0.5).astype(np.float32) for a in (X_train, X_eval))
    info = dict(ds["info"])
    info.update({"n_train": int(len(y_train)), "n_eval": int(len(y_eval)), "eval_set": eval_set,
                 "n_validation": 0 if run["final"] else int(len(y_eval)),
                 "n_test": int(len(y_eval)) if run["final"] else None,
                 "n_features": int(X_train.shape[1]), "split_seed": SPLIT_SEED,
                 "binarize": ("threshold: x > 0.5 of the pixel range (uint8: x > 127)"
                              if run["binarize"] == "threshold" else
                              "stochastic: each presentation drives a row with probability x")})
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    return {"X_train": f32(X_train), "y_train": y_train, "X_eval": f32(X_eval), "y_eval": y_eval,
            "eval_set": eval_set, "image_shape": ds["image_shape"], "info": info}


def _data_error(parser, run, exc):
    if isinstance(exc, FileNotFoundError):
        hint = ("; give --data-dir DIR or set NEUROMEM_DATA to the folder with the MNIST "
                "files, or run 'neuromem data' to download them" if run["dataset"] == "mnist" else "")
        parser.error(f"--dataset {run['dataset']}: {exc}{hint}")
    problem = getattr(exc, "problem", str(exc))
    hint = ("; delete the file and run 'neuromem data' to fetch it again"
            if run["dataset"] == "mnist" else "")
    parser.error(f"--dataset {run['dataset']}: {problem}{hint}")


# ---------------------------------------------------------------------------- resume

def _training_part(recipe: dict) -> dict:
    dbn = {k: v for k, v in recipe["dbn"].items() if k not in _NOT_TRAINING}
    run = {k: v for k, v in recipe["run"].items() if k != "threads"}
    return {"run": run, "dbn": dbn}


def _resume(out: Path, recipe: dict, parser):
    from networks import MemristiveDBN

    run_file = out / RUN_FILE
    try:
        saved = json.loads(run_file.read_text())["recipe"]
    except (OSError, ValueError, KeyError, TypeError):
        parser.error(f"{out / CHECKPOINT} exists but {run_file} does not name its recipe; use "
                     "--no-resume to start over or choose another --out")
    before, now = _training_part(saved), _training_part(recipe)
    diff = [d for t in ("run", "dbn") for d in setting_differences(before[t], now[t])]
    if diff:
        parser.error(refusal(out, diff))
    try:
        dbn = MemristiveDBN.load(out / CHECKPOINT)
    except (ValueError, OSError) as exc:
        parser.error(f"cannot resume: {exc}; use --no-resume to start over")
    dbn.set_params(inference=recipe["dbn"]["inference"], n_samples=recipe["dbn"]["n_samples"])
    return dbn


# ---------------------------------------------------------------------------- main

def _threads(n):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas") if n else contextlib.nullcontext()


def main(argv=None, *, on_epoch=None) -> int:
    """Run the experiment; returns 0 (also when ``--stop-after`` ended it early), 130
    after Ctrl-C. ``on_epoch(dbn, entry)`` runs after each epoch's checkpoint."""
    try:
        return _main(argv, on_epoch)
    except KeyboardInterrupt:  # before training began (or while the results were written)
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv, on_epoch) -> int:
    t_start = time.perf_counter()
    git_at_start = git_commit()  # the code this invocation runs, even if HEAD moves meanwhile
    parser = build_parser()
    args = parser.parse_args(argv)
    recipe = resolve_recipe(args, parser)
    run = recipe["run"]
    out = Path(args.out) if args.out else Path("results") / run_name(recipe)
    try:
        data = load_data(run, args.data_dir)
    except (OSError, ValueError) as exc:
        _data_error(parser, run, exc)

    done_before = 0
    try:
        with _threads(run["threads"]):
            resumed = args.resume and (out / CHECKPOINT).exists()
            if resumed:
                dbn = _resume(out, recipe, parser)
                X, y = data["X_train"], data["y_train"]
                done_before = len(dbn.history_)
                print(f"resuming from {out / CHECKPOINT}: {done_before} epochs done",
                      file=sys.stderr)
            else:
                dbn = build_dbn(recipe)
                try:
                    X, y = dbn.begin(data["X_train"], data["y_train"])
                except (ValueError, TypeError) as exc:
                    parser.error(f"--dataset {run['dataset']}: {exc}")
                out.mkdir(parents=True, exist_ok=True)  # only now: the input is valid
                for stale in (CHECKPOINT, RESULTS, MODEL):
                    (out / stale).unlink(missing_ok=True)
                write_json(out / RUN_FILE, {"recipe": recipe,
                                            "created": time.strftime("%Y-%m-%d %H:%M:%S")})
            if _train(dbn, X, y, data, out, args, on_epoch):
                print(f"stopped after {args.stop_after} epoch(s) of this run; checkpoint in "
                      f"{out / CHECKPOINT}; rerun the same command to continue", file=sys.stderr)
                return 0
            report_train = dbn.energy_report()
            eval_ops = {}
            for h in dbn.history_:
                eval_ops = ops_add(eval_ops, h.get("eval_ops", {}))
            t_eval = time.perf_counter()
            accuracy = final_accuracy(dbn, data)
            eval_wall = time.perf_counter() - t_eval
            final_ops = ops_diff(dbn.energy_report(), report_train)
            training_ops = ops_add(ledger_ops(report_train), eval_ops, sign=-1)
            pulses = pulse_summary(dbn)
            dbn.save(out / MODEL, training_state=False)
    except KeyboardInterrupt:
        done = _epochs_in(out / CHECKPOINT)
        where = (f"the checkpoint {out / CHECKPOINT} holds {done} finished epoch(s); rerun the "
                 "same command to resume" if done else "no epoch had finished, nothing to resume")
        print(f"\ninterrupted: {where}", file=sys.stderr)
        return EXIT_INTERRUPTED

    figures = ([] if args.no_figures else
               make_figures(out, dbn, dbn.history_, data["image_shape"], recipe["dbn"]))
    epoch_wall = sum(h["wall_s"] for h in dbn.history_)
    recipe_out = {k: v for k, v in recipe.items() if k != "overrides"}
    results = {
        "recipe": recipe_out,
        "overrides": recipe["overrides"],
        "argv": list(sys.argv[1:] if argv is None else argv),
        "data_dir": args.data_dir,
        "git": git_record(git_at_start, git_commit()),
        "dataset": data["info"],
        "accuracy": {data["eval_set"]: accuracy},
        "curves": dbn.history_,
        "pulses_per_device": pulses,
        "energy": {
            "training": with_total(training_ops),
            "evaluation": with_total(ops_add(eval_ops, final_ops)),
            "total": dbn.energy_report(),
        },
        "energy_by_component": {"training": energy_breakdown(with_total(training_ops)),
                                "total": energy_breakdown(dbn.energy_report())},
        "wall_time_s": {"training": epoch_wall, "final_evaluation": eval_wall,
                        "total": epoch_wall + eval_wall,
                        "this_invocation": time.perf_counter() - t_start},
        "resumed": bool(resumed),
        "versions": versions(),
        "figures": figures,
        "checkpoint": CHECKPOINT,
        "model": MODEL,
    }
    write_json(out / RESULTS, results)
    print(f"{data['eval_set']} accuracy: freeze {100 * accuracy['freeze']:.2f} %, sampling "
          f"{100 * accuracy['sampling']:.2f} % | training pulses per device "
          f"{_fmt(pulses['training']['mean'])} (max {pulses['training']['max']}) | training energy "
          f"{results['energy']['training']['total_j']:.3g} J | {epoch_wall + eval_wall:.1f} s | "
          f"{out / RESULTS}")
    return 0


def _epochs_in(checkpoint: Path) -> int:
    """Finished epochs recorded in a checkpoint (0 when there is none)."""
    if not checkpoint.exists():
        return 0
    from networks import MemristiveDBN

    try:
        return len(MemristiveDBN.load(checkpoint).history_)
    except (ValueError, OSError):
        return 0


def _fmt(x):
    return "n/a" if x is None else f"{x:.3g}"


def _train(dbn, X, y, data, out, args, on_epoch) -> bool:
    """Train to the end of the plan, checkpointing each epoch; True if stopped early."""
    from tqdm.auto import tqdm

    total = sum(e for _, e in dbn.stages_)
    bar = tqdm(total=total, initial=len(dbn.history_), unit="epoch",
               disable=args.no_progress or None, dynamic_ncols=True, leave=False)
    n_this_run = 0
    try:
        while not dbn.done_:
            name, epochs = dbn.stages_[dbn.progress_["stage"]]
            bar.set_description(f"{name} {dbn.progress_['epoch'] + 1}/{epochs}")
            t0 = time.perf_counter()
            stage, epoch = dbn.train_epoch(X, y)
            before = dbn.energy_report()
            entry = {"index": len(dbn.history_) + 1, "stage": stage, "epoch": epoch,
                     "eval_set": data["eval_set"]}
            entry.update(evaluate_epoch(dbn, data, stage))
            entry["eval_ops"] = ops_diff(dbn.energy_report(), before)
            eval_so_far = {}
            for h in dbn.history_:
                eval_so_far = ops_add(eval_so_far, h.get("eval_ops", {}))
            train_ops = ops_add(ledger_ops(before), eval_so_far, sign=-1)
            entry["pulses"] = pulse_count(before)
            entry["training_energy_j"] = sum(v["energy_j"] for v in train_ops.values())
            entry["wall_s"] = time.perf_counter() - t0
            dbn.history_.append(entry)
            dbn.save(out / CHECKPOINT)
            bar.update(1)
            parts = [f"[{stage} {epoch + 1}/{epochs}]"]
            if "reconstruction_error" in entry:
                parts.append(f"recon {entry['reconstruction_error']:.4f}")
            if "accuracy_freeze" in entry:
                parts.append(f"{data['eval_set']} acc (freeze) {100 * entry['accuracy_freeze']:.2f} %")
            parts += [f"pulses {entry['pulses']:.4g}", f"{entry['wall_s']:.2f} s"]
            tqdm.write(parts[0] + " " + " | ".join(parts[1:]), file=sys.stderr)
            if on_epoch is not None:
                on_epoch(dbn, entry)
            n_this_run += 1
            if args.stop_after is not None and n_this_run >= args.stop_after and not dbn.done_:
                return True
    finally:
        bar.close()
    return False


if __name__ == "__main__":
    sys.exit(main())
