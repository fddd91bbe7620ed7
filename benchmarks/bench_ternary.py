"""Grouped against per-column reads of a ternary MTJ-pair array with four cells per weight.

The networks average ``k`` cells per weight; their ``k`` adjacent columns share one sense
line, so :meth:`TernaryCrossbar.read` with ``group=k`` returns the wired sum of the
``k`` currents, and ``read_back`` with ``group=k`` lets one driver set the ``k``
columns. One run measures, on the second convolution array of ``TernaryCNN`` with
four cells per weight (804 rows, 64 weights of 4 cells = 256 columns) with the patch
drives of ``--images`` images (64 positions each, ternary):

* ``read(a, group=4)`` against ``read(a)`` followed by the sum of each run of 4 columns;
* ``read_back(v, group=4)`` against ``read_back`` of the voltages repeated on every
  column of a run.

Both contenders give the same currents (checked) and book the same energy. Timings take
turns as in ``bench_read.py`` (median of the best block); the ratio is per-column time
over grouped time (higher: the grouped read is faster). Results go to
``benchmarks/results/bench_ternary.json``.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_ternary.py [--images 250] [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, Path(__file__).resolve().parent):  # run from a checkout without installing
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import neuromem  # noqa: E402
from bench_read import time_interleaved  # noqa: E402
from neuromem.ternary import TernaryCrossbar  # noqa: E402

ROWS, WEIGHTS, CELLS, POSITIONS = 804, 64, 4, 64


def run(images=250, repeats=20, warmup=2, seed=0):
    rng = np.random.default_rng(seed)
    xbar = TernaryCrossbar(ROWS, WEIGHTS * CELLS, seed=seed)
    a = rng.integers(-1, 2, size=(images * POSITIONS, ROWS)).astype(np.int8)
    v = rng.uniform(-0.2, 0.2, size=(images * POSITIONS, WEIGHTS))

    def per_column_read():
        return xbar.read(a).reshape(len(a), WEIGHTS, CELLS).sum(axis=2)

    def per_column_read_back():
        return xbar.read_back(np.repeat(v, CELLS, axis=1))

    np.testing.assert_allclose(xbar.read(a, group=CELLS), per_column_read(), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(xbar.read_back(v, group=CELLS), per_column_read_back(), rtol=1e-9, atol=1e-15)
    fns = {"read_grouped": lambda: xbar.read(a, group=CELLS), "read_per_column": per_column_read,
           "read_back_grouped": lambda: xbar.read_back(v, group=CELLS),
           "read_back_per_column": per_column_read_back}
    timings = time_interleaved(fns, repeats, warmup, blocks=min(5, repeats))
    stat = "best_block_median_s"
    return {
        "array": {"rows": ROWS, "weights": WEIGHTS, "cells_per_weight": CELLS},
        "drives": {"images": images, "positions": POSITIONS, "batch": images * POSITIONS},
        "timings": timings,
        "speedup_grouped": {
            "read": timings["read_per_column"][stat] / timings["read_grouped"][stat],
            "read_back": timings["read_back_per_column"][stat] / timings["read_back_grouped"][stat],
        },
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "neuromem": neuromem.__version__, "processor": platform.processor()},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=250, help="images whose patches drive the array")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_ternary.json"))
    args = p.parse_args(argv)
    if args.images < 1 or args.repeats < 1:
        p.error("--images and --repeats must be >= 1")
    result = run(args.images, args.repeats)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    s = result["speedup_grouped"]
    print(f"grouped read {s['read']:.2f}x, grouped read_back {s['read_back']:.2f}x faster than per column; "
          f"written to {out}")


if __name__ == "__main__":
    main()
