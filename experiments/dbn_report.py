"""Reporting for ``neuromem dbn``: per-epoch evaluation, pulses per device, energy by
operation, figures and the run's provenance (commit, versions)."""

from __future__ import annotations

import math
import platform
import subprocess
from pathlib import Path

import numpy as np

FIGURES = ("receptive_fields.png", "conductance_histogram.png", "accuracy.png")


# ---------------------------------------------------------------------------- evaluation

def evaluate_epoch(dbn, data, stage: str) -> dict:
    """Per-epoch curve point on the evaluation split (freeze mode; no randomness used)."""
    entry = {}
    if dbn.top_ is not None:
        entry["accuracy_freeze"] = float(dbn.score(data["X_eval"], data["y_eval"]))
    if stage.startswith("layer"):
        i = int(stage[5:])
        h = data["X_eval"]
        for rbm in dbn.layers_[:i]:
            h = rbm.transform(h)
        entry["reconstruction_error"] = float(dbn.layers_[i].reconstruction_error(h))
    return entry


def final_accuracy(dbn, data) -> dict:
    X, y = data["X_eval"], data["y_eval"]
    out = {}
    for mode in ("freeze", "sampling"):
        out[mode] = float(np.mean(dbn.predict(X, inference=mode) == y))
    return out


# ---------------------------------------------------------------------------- figures

def make_figures(out: Path, dbn, history: list, image_shape, s: dict) -> list[str]:
    from matplotlib.figure import Figure

    written = []
    layer0 = dbn.layers_[0]
    if len(image_shape) == 1:  # flat feature vectors: square when they can be, else a strip
        side = math.isqrt(image_shape[0])
        image_shape = (side, side) if side * side == image_shape[0] else (1, image_shape[0])
    # receptive fields: first 100 hidden units of layer 0
    w = layer0.components_[:100]
    n = len(w)
    cols = min(10, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * 0.9 + 0.6, rows * 0.9 + 0.8))
    lim = float(np.percentile(np.abs(w), 99.5)) or 1.0
    axes = fig.subplots(rows, cols, squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k < n:
            im = ax.imshow(w[k].reshape(image_shape), cmap="RdBu_r", vmin=-lim, vmax=lim,
                           interpolation="nearest")
    fig.suptitle(f"Layer-1 receptive fields (first {n} of {layer0.n_components} units), "
                 f"{s['device']}, {s['update']} rule")
    fig.subplots_adjust(left=0.02, right=0.88, bottom=0.02, top=0.9, wspace=0.08, hspace=0.08)
    cax = fig.add_axes([0.9, 0.1, 0.02, 0.75])
    fig.colorbar(im, cax=cax, label="weight (RBM units, I / I0)")
    fig.savefig(out / FIGURES[0], dpi=110)
    written.append(FIGURES[0])

    # conductance histograms of the pulsed G+ array of layer 0, before and after
    g0 = np.asarray(layer0.initial_conductance_, dtype=np.float64)
    g1 = np.asarray(layer0.crossbar_.conductance, dtype=np.float64)
    mask = _device_mask(layer0)
    g0, g1 = g0[mask], g1[mask]
    dev = layer0.crossbar_.device
    lo = max(min(g0.min(), g1.min()), dev.g_min_s, 1e-15)
    hi = max(g0.max(), g1.max(), lo * 10)
    bins = np.geomspace(lo, hi * 1.0001, 80)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.hist(np.clip(g0, lo, None), bins=bins, alpha=0.6, label="before training (programmed)")
    ax.hist(np.clip(g1, lo, None), bins=bins, alpha=0.6, label="after training")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("G+ conductance (S)")
    ax.set_ylabel("devices")
    ax.set_title(f"Layer-1 G+ conductances, {s['device']} ({mask.sum()} devices)")
    ax.axvline(dev.g_min_s, color="k", lw=0.8, ls=":")
    ax.axvline(dev.g_max_s, color="k", lw=0.8, ls=":", label="device range")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / FIGURES[1], dpi=110)
    written.append(FIGURES[1])

    # accuracy per epoch (freeze inference on the evaluation split) + reconstruction error
    fig = Figure(figsize=(8, 4))
    ax1, ax2 = fig.subplots(1, 2)
    idx = [h["index"] for h in history if h.get("accuracy_freeze") is not None]
    acc = [100 * h["accuracy_freeze"] for h in history if h.get("accuracy_freeze") is not None]
    ax1.plot(idx, acc, marker=".", lw=1)
    ax1.set_xlabel("epoch (over the whole plan)")
    ax1.set_ylabel(f"{history[-1]['eval_set'] if history else ''} accuracy, freeze (%)")
    ax1.set_title("Classification accuracy")
    ax1.grid(alpha=0.3)
    if acc:
        ax1.set_xlim(left=min(ax1.get_xlim()[0], idx[0] - 0.6))  # show where the top stage starts
        ax1.annotate(f"{acc[-1]:.2f} %", (idx[-1], acc[-1]), xytext=(-40, -15),
                     textcoords="offset points", fontsize=8)
    stages = sorted({h["stage"] for h in history if "reconstruction_error" in h})
    for st in stages:
        pts = [(h["index"], h["reconstruction_error"]) for h in history
               if h["stage"] == st and "reconstruction_error" in h]
        ax2.plot(*zip(*pts), marker=".", lw=1, label=st)
    ax2.set_xlabel("epoch (over the whole plan)")
    ax2.set_ylabel("reconstruction error (MSE)")
    ax2.set_title("Greedy pre-training")
    ax2.grid(alpha=0.3)
    if stages:
        ax2.legend(fontsize=8)
    for ax in (ax1, ax2):  # stage boundaries, labelled where they fall inside the axes
        lo, hi = ax.get_xlim()
        for h in history:
            x = h["index"] - 0.5
            if h["epoch"] == 0 and lo <= x <= hi:
                if h["index"] > 1:
                    ax.axvline(x, color="grey", lw=0.6, ls="--")
                ax.annotate(h["stage"], (x, 1.0), xycoords=("data", "axes fraction"),
                            xytext=(2, -10), textcoords="offset points", fontsize=7, color="grey")
    fig.tight_layout()
    fig.savefig(out / FIGURES[2], dpi=110)
    written.append(FIGURES[2])
    return written


# ---------------------------------------------------------------------------- per-cell pulses

def _named_modules(dbn) -> list[tuple[str, object]]:
    named = [(f"layer{i}", r) for i, r in enumerate(getattr(dbn, "layers_", []))]
    if getattr(dbn, "top_", None) is not None:
        named.append(("top", dbn.top_))
    named += [(f"gen{i}", g) for i, g in enumerate(getattr(dbn, "generative_", []))]
    return named


def _cell_counts(rbm) -> np.ndarray:
    return rbm.training_pulse_count_


def _device_mask(rbm) -> np.ndarray:
    """Cells holding a device (the bias-row x bias-column corner holds none)."""
    mask = np.ones(rbm.crossbar_.shape, dtype=bool)
    mask[rbm.n_features_in_:, rbm.n_components:] = False
    return mask


def pulse_summary(dbn) -> dict:
    """Pulses per device: per-cell training counts (mean, max) and the ledger's mean."""
    per_module, total, n_dev, peak = {}, 0, 0, 0
    for name, rbm in _named_modules(dbn):
        mask = _device_mask(rbm)
        counts = _cell_counts(rbm)[mask]
        per_module[name] = {"n_devices": int(mask.sum()), "total": int(counts.sum()),
                            "mean": float(counts.mean()), "max": int(counts.max())}
        total += int(counts.sum())
        n_dev += int(mask.sum())
        peak = max(peak, int(counts.max()))
    # the ledger counts every pulse (incl. initial program-and-verify) on every array
    report = dbn.energy_report()
    ledger_pulses = report.get("potentiate", {}).get("count", 0) + report.get("depress", {}).get("count", 0)
    n_all = sum(int(_device_mask(r).sum()) * (2 if r.crossbar_.scheme == "differential" else 1)
                for _, r in _named_modules(dbn))
    n_ref = sum(int(_device_mask(r).sum()) for _, r in _named_modules(dbn)
                if r.crossbar_.scheme == "reference")
    return {
        "training": {
            "description": "counter-fired training pulses per G+ device (per-cell counts; "
                           "the differential scheme's G- devices get the same number)",
            "n_devices": n_dev, "total": total,
            "mean": total / n_dev if n_dev else None,
            "max": peak,
            "per_module": per_module,
        },
        "ledger": {
            "description": "all potentiate + depress pulses in the ledger (training and initial "
                           "program-and-verify) over all devices (G+, G- and reference G-)",
            "total": int(ledger_pulses), "n_devices": n_all + n_ref,
            "mean": ledger_pulses / (n_all + n_ref) if n_all + n_ref else None,
        },
    }


# ---------------------------------------------------------------------------- energy helpers

def ledger_ops(report: dict) -> dict:
    """``{operation: {count, energy_j}}`` of an energy report, without its total."""
    return {k: {"count": int(v["count"]), "energy_j": float(v["energy_j"])}
            for k, v in report.items() if k != "total_j"}


def ops_diff(after: dict, before: dict) -> dict:
    """The operations booked between two energy reports (``after`` minus ``before``)."""
    out = {}
    for op, v in ledger_ops(after).items():
        b = before.get(op, {"count": 0, "energy_j": 0.0})
        dc, de = v["count"] - b["count"], v["energy_j"] - b["energy_j"]
        if dc or de:
            out[op] = {"count": dc, "energy_j": de}
    return out


def ops_add(a: dict, b: dict, sign=1) -> dict:
    """``a + sign · b`` operation by operation."""
    out = {k: dict(v) for k, v in a.items()}
    for op, v in b.items():
        acc = out.setdefault(op, {"count": 0, "energy_j": 0.0})
        acc["count"] += sign * v["count"]
        acc["energy_j"] += sign * v["energy_j"]
    return out


def with_total(ops: dict) -> dict:
    """``ops`` sorted by name, with their summed energy as ``total_j``."""
    out = {k: dict(v) for k, v in sorted(ops.items())}
    out["total_j"] = sum(v["energy_j"] for v in ops.values())
    return out


def pulse_count(report: dict) -> int:
    """Programming pulses (potentiating and depressing) booked in an energy report."""
    return int(report.get("potentiate", {}).get("count", 0) + report.get("depress", {}).get("count", 0))


# ---------------------------------------------------------------------------- run bookkeeping

def git_commit() -> dict:
    """The checkout's commit and whether tracked files differ from it (None outside git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty if commit else None}


def git_record(at_start: dict, at_end: dict) -> dict:
    """The commit this invocation started from; where the checkout changed while it ran,
    also the commit at the end (the code in memory is still the first one)."""
    record = dict(at_start)
    if at_end != at_start:
        record["at_end"] = at_end
    return record


def versions() -> dict:
    """Python, platform and the versions of neuromem and its main dependencies."""
    from importlib import metadata

    import neuromem

    out = {"python": platform.python_version(), "platform": platform.platform(),
           "neuromem": neuromem.__version__}
    for dist in ("numpy", "numba", "scikit-learn", "scipy", "matplotlib", "tqdm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


