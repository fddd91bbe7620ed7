"""What the hardware studies (``neuromem faults``, ``clone``, ``lifetime``) share: the
network flags, a recipe resolved into estimator parameters, the data, the results file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments.mnist_dbn import Parser, key_value

__all__ = ["Parser", "study_parser", "resolve_network", "check_network", "load_study_data",
           "blas_threads", "run_study", "write_results"]

RESULTS = "results.json"


def study_parser(prog: str, description: str, *, device: bool = True) -> argparse.ArgumentParser:
    """A parser with the flags every study takes: recipe, device, seed, epochs, data, out."""
    p = Parser(prog=prog, description=description)
    p.add_argument("--recipe", default="digits", help="DBN recipe (neuromem recipes lists them)")
    if device:
        p.add_argument("--device", help="device (default: the recipe's)")
    p.add_argument("--device-param", action="append", type=key_value, metavar="KEY=VALUE",
                   help="a parameter of the device's dataclass (repeatable), e.g. "
                        "va_std_v=1.6 for twice Y-Flash's device-to-device spread")
    p.add_argument("--seed", type=int, default=0, help="seed of the network and devices")
    p.add_argument("--epochs", type=int, help="epochs per lower layer (default: the recipe's)")
    p.add_argument("--top-epochs", type=int, help="epochs of the top RBM (default: the recipe's)")
    p.add_argument("--final", action=argparse.BooleanOptionalAction, default=None,
                   help="report the test set (default: the recipe's choice; tune without)")
    p.add_argument("--data-dir", help="where the MNIST files are (default $NEUROMEM_DATA)")
    p.add_argument("--out", help="output folder")
    return p


def resolve_network(args, parser) -> tuple[dict, dict]:
    """``(recipe, estimator parameters)`` from the study flags; bad values end in
    ``parser.error`` (exit status 2, one line)."""
    from networks.recipes import load_recipe, recipe_estimator_params

    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
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
                       ("device", getattr(args, "device", None))):
        if value is not None:
            params[key] = value
    if args.device_param:
        from neuromem.devices import get_device

        try:
            params["device"] = get_device(params.get("device", "yflash"), **dict(args.device_param))
        except (TypeError, ValueError) as exc:
            parser.error(f"--device-param: {exc}")
    return recipe, params


def check_network(parser, name: str, params: dict) -> None:
    """``parser.error`` naming the network when MemristiveDBN refuses ``params``."""
    from networks import MemristiveDBN

    try:
        MemristiveDBN(**params)._check_params()
    except (TypeError, ValueError) as exc:
        parser.error(f"the {name}: {exc}")


def load_study_data(recipe: dict, args, parser) -> dict:
    """The recipe's data set (training and evaluation split); ``parser.error`` when it
    cannot be read."""
    from experiments.mnist_dbn import load_data

    try:
        return load_data(recipe["run"], args.data_dir)
    except (OSError, ValueError) as exc:
        parser.error(f"--recipe {args.recipe}: data set {recipe['run']['dataset']}: "
                     f"{getattr(exc, 'problem', exc)}")


def blas_threads(recipe: dict):
    """A context that holds BLAS to the recipe's ``threads`` (one by default), so that
    single-threaded Dask workers do not oversubscribe the machine."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=recipe["run"]["threads"], user_api="blas")


def run_study(settings: dict, body, default_out: str) -> int:
    """Run ``body(settings, data, out)`` with BLAS held to the recipe's threads, the
    recipe's data loaded and the output folder (``--out``, else ``default_out``) made."""
    args, recipe = settings["args"], settings["recipe"]
    with blas_threads(recipe):
        data = load_study_data(recipe, args, settings["parser"])
        out = Path(args.out or default_out)
        out.mkdir(parents=True, exist_ok=True)
        return body(settings, data, out)


def write_results(out: Path, results: dict, command: str, argv) -> Path:
    """``out/results.json`` with the command line that made it."""
    words = sys.argv[1:] if argv is None else argv
    results = {"command": f"neuromem {command} " + " ".join(words), **results}
    path = Path(out) / RESULTS
    path.write_text(json.dumps(results, indent=1, default=str))
    return path
