"""Accuracy after every epoch of several runs in one figure.

``python -m experiments.plot_epochs --out FIG.png RUN.json [RUN.json ...]`` reads the
``results.json`` (or ``progress.json``) files that ``neuromem ternary`` writes and draws
one line per run; ``--label`` names them (default: the file names) and ``--style``
gives each a matplotlib format (e.g. ``o--`` for runs before a change, ``o-`` after).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["epoch_curve", "plot_epochs", "main"]


def epoch_curve(path) -> tuple[list[int], list[float], str]:
    """``(epochs, accuracy in %, evaluation set)`` of a results or progress file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        history = data.get("epochs", data.get("history"))
        epochs = [int(e["epoch"]) for e in history]
        accuracy = [100.0 * float(e["accuracy"]) for e in history]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: not a results or progress file with an accuracy per "
                         f"epoch ({type(exc).__name__}: {exc})") from None
    if not epochs:
        raise ValueError(f"{path}: no epoch has finished")
    evaluated = data.get("eval") or ("test" if data.get("settings", {}).get("final") else "validation")
    return epochs, accuracy, evaluated


def plot_epochs(paths, out, labels=None, styles=None, title=None, reference=None, ylim=None):
    """Draw the accuracy after every epoch of the runs in ``paths`` to ``out``;
    ``reference`` (a percentage, optional) is drawn as a dotted line, ``ylim`` (low,
    high) fixes the accuracy axis (a point below it is drawn on its edge)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = list(paths)
    labels = list(labels) if labels else [Path(p).parent.name or Path(p).name for p in paths]
    styles = list(styles) if styles else ["o-"] * len(paths)
    for name, given in (("labels", labels), ("styles", styles)):
        if len(given) != len(paths):
            raise ValueError(f"{name} must give one entry per run: {len(given)} for {len(paths)} runs")
    curves = [epoch_curve(p) for p in paths]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (epochs, accuracy, _), label, style in zip(curves, labels, styles):
        if ylim is not None:  # a fall far below the range stays visible on the axis
            accuracy = [max(a, ylim[0]) for a in accuracy]
        ax.plot(epochs, accuracy, style, label=label, markersize=4)
    if reference is not None:
        ax.axhline(reference, color="k", linestyle=":", linewidth=1, label=f"{reference:g} %")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{curves[0][2]} accuracy (%)")
    if title:
        ax.set_title(title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.plot_epochs", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="results.json or progress.json files")
    p.add_argument("--out", required=True, help="the figure (PNG)")
    p.add_argument("--label", action="append", help="a run's name (repeat, in order)")
    p.add_argument("--style", action="append", help="a run's matplotlib format (repeat, in order)")
    p.add_argument("--title")
    p.add_argument("--ylim", type=float, nargs=2, metavar=("LOW", "HIGH"), help="accuracy axis range (%%)")
    p.add_argument("--reference", type=float, help="a published accuracy (%%) drawn as a dotted line")
    args = p.parse_args(argv)
    try:
        plot_epochs(args.runs, args.out, args.label, args.style, args.title, args.reference,
                    args.ylim)
    except ValueError as exc:
        p.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
