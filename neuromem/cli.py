"""The ``neuromem`` command.

    neuromem dbn  [ARGS...]   experiments/mnist_dbn.py       (DBN from a recipe, any data set)
    neuromem stdp [ARGS...]   experiments/stdp_song2000.py   (STDP, Song et al. 2000)
    neuromem snn  [ARGS...]   experiments/mnist_stdp.py      (unsupervised STDP on MNIST)
    neuromem sweep SPEC       experiments/sweep.py           (settings x seeds on Dask)
    neuromem faults [ARGS...] experiments/faults.py          (stuck-at faults study)
    neuromem clone [ARGS...]  experiments/clone.py           (cloning a trained chip)
    neuromem lifetime [ARGS...] experiments/lifetime.py      (drift after training, refresh)
    neuromem adc  [ARGS...]   experiments/adc_comparison.py  (DBN vs ADC MLP vs float, energy)
    neuromem ternary [ARGS...] experiments/mnist_ternary.py  (ternary MLP on MTJ pairs)
    neuromem recipes [--json] the named training recipes of neuromem dbn (and, without --json,
                              of neuromem snn), with their results
    neuromem data [--dir DIR] download and verify MNIST (for users who are online)
    neuromem devices [--json] the registered device families, their sources and parameters
    neuromem devices --export DEVICE --out FILE.csv   a device's pulse table (measured devices)
    neuromem info             versions of neuromem and the libraries it runs on

Experiment subcommands hand every argument after their name to the experiment's own
``main(argv)`` (so ``neuromem dbn --help`` is the experiment's help). The ``experiments``
package is imported lazily, only for those subcommands; when it is not installed (a
plain checkout), the repository root next to this package is put on ``sys.path``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from pathlib import Path

#: subcommand -> (module, one-line description)
EXPERIMENTS: dict[str, tuple[str, str]] = {
    "dbn": ("experiments.mnist_dbn", "deep belief network on memristive crossbars (counters, no ADC)"),
    "stdp": ("experiments.stdp_song2000", "pair-based STDP reproduction (Song et al. 2000)"),
    "snn": ("experiments.mnist_stdp", "unsupervised STDP spiking network on MNIST"),
    "faults": ("experiments.faults", "stuck-at faults: in situ vs software written into the same array"),
    "clone": ("experiments.clone", "a trained chip's weights written into another chip"),
    "lifetime": ("experiments.lifetime", "accuracy against time after training (drift), and refresh"),
    "sweep": ("experiments.sweep", "an experiment over settings x seeds on Dask, one table"),
    "adc": ("experiments.adc_comparison", "DBN vs in-situ backprop with ADCs vs float: accuracy and energy"),
    "ternary": ("experiments.mnist_ternary", "ternary MLP trained by stochastic MTJ-pair pulses"),
}

EXIT_MISSING = 2
_REPO_ROOT = Path(__file__).resolve().parents[1]


class ExperimentNotFound(ImportError):
    """The module behind an experiment subcommand does not exist."""


def _is_missing(exc: ModuleNotFoundError, module: str) -> bool:
    """True when ``exc`` is about ``module`` or one of its parent packages (not a
    dependency the experiment itself imports)."""
    parts = module.split(".")
    return exc.name in {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def import_experiment(module: str):
    """Import an experiment module, falling back to the repository root on sys.path."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if not _is_missing(exc, module):
            raise
        first = exc
    root = str(_REPO_ROOT)
    if (_REPO_ROOT / module.split(".")[0]).is_dir() and root not in sys.path:
        sys.path.append(root)
        importlib.invalidate_caches()
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not _is_missing(exc, module):
                raise
            first = exc
    raise ExperimentNotFound(f"cannot import {module} ({first})") from first


def run_experiment(command: str, argv: list[str]) -> int:
    module, _ = EXPERIMENTS[command]
    try:
        mod = import_experiment(module)
    except ExperimentNotFound as exc:
        print(f"neuromem {command}: experiment not available: {exc}.\n"
              f"Expected a module {module} with a main(argv) function "
              f"(file {module.replace('.', '/')}.py in the repository).", file=sys.stderr)
        return EXIT_MISSING
    entry = getattr(mod, "main", None)
    if not callable(entry):
        print(f"neuromem {command}: {module} has no main(argv) function", file=sys.stderr)
        return EXIT_MISSING
    result = entry(argv)
    return result if isinstance(result, int) else 0


# ---------------------------------------------------------------------------- devices, info

def device_table() -> list[dict]:
    """Every registered device family: name, class, source and default parameters."""
    from neuromem.devices import device_classes

    rows = []
    for name, cls in sorted(device_classes().items()):
        if name.startswith("_"):
            continue
        entry = {"name": name, "class": f"{cls.__module__}.{cls.__qualname__}",
                 "source": getattr(cls, "source", "")}
        try:
            described = cls().describe()
            described.pop("device", None)
            described.pop("source", None)
            entry["parameters"] = described
        except Exception as exc:  # a family that cannot build with defaults still lists
            entry["parameters"] = {}
            entry["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(entry)
    return rows


def export_pulse_table(args) -> int:
    """``neuromem devices --export DEVICE --out FILE``: a device's pulse table as CSV."""
    from neuromem.devices import get_device
    from neuromem.devices.measured import write_pulse_table

    def fail(message):
        print(f"neuromem devices: error: {message}", file=sys.stderr)
        return EXIT_MISSING

    if not args.out:
        return fail("--export needs --out FILE.csv")
    for flag, value in (("--n-devices", args.n_devices), ("--n-pulses", args.n_pulses)):
        if value < 1:
            return fail(f"{flag} must be >= 1, got {value}")
    try:
        device = get_device(args.export)
    except (ValueError, TypeError, OSError) as exc:
        return fail(f"--export: {exc}")
    path = write_pulse_table(args.out, device, n_devices=args.n_devices, n_cycles=2,
                             n_pulses=args.n_pulses, seed=args.seed)
    print(f"{path}: {args.n_devices} devices x 2 cycles x {args.n_pulses} pulses up and down "
          f"of {device.name}")
    return 0


def cmd_devices(args) -> int:
    if args.export:
        return export_pulse_table(args)
    table = device_table()
    if args.json:
        print(json.dumps(table, indent=2, default=str))
        return 0
    for entry in table:
        print(f"{entry['name']}  ({entry['class']})")
        print(f"  source: {entry['source']}")
        if "error" in entry:
            print(f"  cannot build with defaults: {entry['error']}")
        for key, value in entry["parameters"].items():
            print(f"  {key} = {value!r}")
        print()
    return 0


def cmd_recipes(args) -> int:
    import textwrap

    from networks.recipes import available_recipes

    recipes = available_recipes()
    if args.json:
        print(json.dumps(recipes, indent=2))
        return 0
    for name, recipe in recipes.items():
        run = recipe["run"]
        print(f"{name}  (neuromem dbn --recipe {name}; data: {run['dataset']}"
              f"{', test set' if run['final'] else ', validation split'})")
        print(textwrap.fill(recipe["description"], 88, initial_indent="  ",
                            subsequent_indent="  "))
        print(f"  measured: {recipe['results']}")
        print()
    from networks.recipes import available_snn_recipes

    for name, recipe in available_snn_recipes().items():
        print(f"{name}  (neuromem snn --recipe {name}; {recipe['params'] or 'the paper parameters'})")
        print(textwrap.fill(recipe["description"], 88, initial_indent="  ",
                            subsequent_indent="  "))
        print(f"  measured: {recipe['results']}")
        print()
    return 0


def cmd_data(args) -> int:
    from neuromem.data import default_data_dir, load_mnist

    target = args.dir
    try:
        for kind in ("train", "test"):
            X, _ = load_mnist(target, kind=kind, download=True, url=args.url)
            print(f"MNIST {kind}: {len(X)} images, checksums verified")
    except (ConnectionError, OSError, ValueError) as exc:
        problem = getattr(exc, "problem", str(exc)).split(" Place the MNIST files")[0]
        hint = " (--url takes another mirror)" if isinstance(exc, ConnectionError) else ""
        print(f"neuromem data: error: {problem}{hint}", file=sys.stderr)
        return 1
    where = target or "$NEUROMEM_DATA or " + str(default_data_dir())
    print(f"ready in {where}; neuromem dbn --dataset mnist finds it there")
    return 0


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def info() -> dict:
    import neuromem

    out = {"neuromem": neuromem.__version__, "python": platform.python_version(),
           "platform": platform.platform()}
    for dist in ("numpy", "numba", "brian2", "scipy", "scikit-learn"):
        out[dist] = _version(dist)
    out["neuromem_path"] = str(Path(neuromem.__file__).parent)
    return out


def cmd_info(args) -> int:
    data = info()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        width = max(map(len, data))
        for key, value in data.items():
            print(f"{key:<{width}}  {value}")
    return 0


# ---------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    import neuromem

    parser = argparse.ArgumentParser(
        prog="neuromem",
        description="On-device learning on simulated memristive neuromorphic hardware.",
        epilog="Experiment commands pass their arguments on: 'neuromem dbn --help'.")
    parser.add_argument("--version", action="version", version=f"neuromem {neuromem.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, text) in EXPERIMENTS.items():
        sub.add_parser(name, help=f"{text} [{module}]", add_help=False)
    p = sub.add_parser("recipes", help="list the training recipes of 'neuromem dbn' and 'neuromem snn'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_recipes)
    p = sub.add_parser("data", help="download and verify MNIST")
    p.add_argument("--dir", help="target directory (default: $NEUROMEM_DATA, else the cache)")
    p.add_argument("--url", help="base URL of a mirror holding the four .gz files")
    p.set_defaults(func=cmd_data)
    p = sub.add_parser("devices", help="list the registered device families")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--export", metavar="DEVICE",
                   help="write DEVICE's potentiation/depression curves as a pulse table "
                        "(the CSV a measured device is fitted to) to --out")
    p.add_argument("--out", metavar="FILE", help="the pulse table to write (with --export)")
    p.add_argument("--n-devices", type=int, default=16, help="devices in the table")
    p.add_argument("--n-pulses", type=int, default=100, help="pulses per curve")
    p.add_argument("--seed", type=int, default=0, help="seed of the population and noise")
    p.set_defaults(func=cmd_devices)
    p = sub.add_parser("info", help="versions of neuromem, numpy, numba, brian2")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``neuromem`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in EXPERIMENTS:
        return run_experiment(argv[0], argv[1:])
    args = build_parser().parse_args(argv)  # exits 2 with a message on bad input
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
