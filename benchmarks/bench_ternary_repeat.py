"""Does a seeded TernaryCNN run repeat under another BLAS kernel?

OpenBLAS picks its matrix kernels by CPU (``DYNAMIC_ARCH``); ``OPENBLAS_CORETYPE`` forces
one, which stands in for running on another machine. The CNN defaults are trained on the
first ``--n-train`` MNIST training images for ``--epochs`` epochs, once per core type, each
in a fresh interpreter with one thread, and the trained cells and comparator statistics
are compared bit for bit. ``--accumulator single`` swaps in the single-precision gradient
sums the CNN used before (for comparison; the package sums in double precision). Results
go to ``benchmarks/results/bench_ternary_repeat.json`` and ``.md``.

    python benchmarks/bench_ternary_repeat.py [--accumulator double] [--n-train 3000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


def _train(args) -> None:
    """One training run in this interpreter (the worker side)."""
    import networks._ternary_base as ternary_base
    from networks import TernaryCNN
    from neuromem.data import load_mnist

    if args.accumulator == "single":
        def single(x, d):
            return (x.T.astype(np.float32) @ d.astype(np.float32)).astype(np.float64)
        ternary_base.accumulate = single  # the sums as the CNN made them before
    X, y = load_mnist(args.data_dir, kind="train")
    X, y = X[:args.n_train] / 255.0, y[:args.n_train]
    model = TernaryCNN(n_iter=args.epochs, calibration_samples=min(500, args.n_train), random_state=0)
    model.fit(X, y)
    model.save(args.worker)
    print(json.dumps({"training_accuracy": float(model.score(X, y))}))


def _fingerprint(path) -> tuple[str, dict]:
    with np.load(path) as saved:
        keys = sorted(k for k in saved.files if k.startswith(("layer", "statistics")))
        digest = hashlib.sha256()
        for k in keys:
            digest.update(np.ascontiguousarray(saved[k]).tobytes())
        return digest.hexdigest()[:16], {k: saved[k] for k in keys}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accumulator", choices=["double", "single"], default="double")
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--coretypes", nargs="+", default=["Haswell", "Sandybridge"],
                    help="OpenBLAS core types to compare (the CPU must support them)")
    ap.add_argument("--data-dir", default=os.environ.get("NEUROMEM_DATA"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_ternary_repeat.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.n_train < 100 or args.epochs < 1:
        ap.error("--n-train must be >= 100 and --epochs >= 1")
    if len(args.coretypes) < 2:
        ap.error("--coretypes needs at least two core types to compare")
    if args.worker:
        _train(args)
        return {}

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for core in args.coretypes:
            path = Path(tmp) / f"{core}.npz"
            env = dict(os.environ, OPENBLAS_CORETYPE=core, OPENBLAS_NUM_THREADS="1",
                       OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
            cmd = [sys.executable, __file__, "--worker", str(path), "--accumulator", args.accumulator,
                   "--n-train", str(args.n_train), "--epochs", str(args.epochs)]
            if args.data_dir:
                cmd += ["--data-dir", args.data_dir]
            done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            digest, arrays = _fingerprint(path)
            runs[core] = {"digest": digest, "arrays": arrays,
                          **json.loads(done.stdout.strip().splitlines()[-1])}
    first, *others = args.coretypes
    for core in others:
        a, b = runs[first]["arrays"], runs[core]["arrays"]
        runs[core]["cells_differing_from_" + first] = int(sum(
            np.count_nonzero(a[k] != b[k]) for k in a if k.endswith(("/plus", "/minus"))))
    result = {"accumulator": args.accumulator, "n_train": args.n_train, "epochs": args.epochs,
              "runs": {core: {k: v for k, v in r.items() if k != "arrays"} for core, r in runs.items()},
              "identical": len({r["digest"] for r in runs.values()}) == 1}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    lines = [f"# TernaryCNN repeat across BLAS kernels ({args.accumulator} precision sums)", "",
             "| core type | trained-state digest | cells differing | training accuracy |", "| --- | --- | --- | --- |"]
    for core, r in result["runs"].items():
        differing = r.get("cells_differing_from_" + first, "(reference)")
        lines.append(f"| {core} | {r['digest']} | {differing} | {100 * r['training_accuracy']:.2f} % |")
    lines += ["", f"identical: {result['identical']}"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
