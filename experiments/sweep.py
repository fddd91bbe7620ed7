"""Sweeps: one experiment over a grid or a random sample of settings x seeds, on Dask
(``neuromem sweep SPEC``).

A SPEC is a TOML file::

    description = "what the sweep asks"
    experiment = "dbn"              # a neuromem experiment command, or "module:function"
    seeds = [0, 1, 2]               # every point runs once per seed ...
    seed_flag = "seed"              # ... as --seed N (the default)
    metrics = ["accuracy.validation.freeze"]   # optional: dotted paths into results.json

    [base]                          # flags every point gets (names without the --)
    recipe = "digits"
    no-figures = true               # true: --no-figures; false: --no-no-figures
    rbm-param = {weight_range = 5}  # a table: the flag once per key (--rbm-param weight_range=5)

    [grid]                          # every combination of these values
    device = ["yflash", "pcm"]

    [random]                        # and/or: n points drawn from these (seed: the draw's)
    n = 8
    seed = 0
    params = {learning-rate = {low = 0.01, high = 0.1, log = true}, cd-k = [1, 3]}

    [[cases]]                       # and/or: named bundles of flags set together, for
    label = "defaults"              # comparing whole configurations chip for chip; every
    [[cases]]                       # grid / random combination runs once per case
    label = "slow"
    n-iter = 12
    batch-growth = 1.5

Each point (settings + seed) runs the experiment's ``main(argv)`` with ``--out`` set to
its own folder ``OUT/points/<name>``, where the experiment writes its ``results.json``
and the sweep its ``point.json`` (argv, status, attempts, metrics, wall time) and
``log.txt``. Points run on a local cluster of worker processes (``--workers``, default
the machine's cores) or on an existing cluster (``--scheduler ADDRESS``; then OUT must
be a folder every worker can write to, such as a shared file system). A rerun skips
points whose ``point.json`` says done with the same argv. A worker that dies in a point
(out of memory, killed) is replaced by the cluster and its point is run again (the
scheduler allows ``distributed.scheduler.allowed-failures`` deaths per point, 3 by
default); finished points are on disk and are not run again. A point that fails
(non-zero exit, exception) is recorded as failed and the sweep goes on; a rerun retries
it.

The sweep writes ``table.csv`` (one row per point: settings, seed, status, metrics,
wall time), ``summary.csv`` (mean, standard deviation and count of each metric over
the seeds of each setting), ``sweep.json`` (the resolved spec, every point's record,
the cluster, and the time and points run of every invocation) and one figure per
metric, ``<metric>.png``: mean +- standard deviation over seeds against the first
varied setting, one line per combination of the others (and ``all_metrics.png``, every
metric on one plot).

Example::

    neuromem sweep experiments/sweeps/faults-digits.toml --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import hashlib
import importlib
import io
import itertools
import json
import math
import os
import re
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from experiments.checkpoints import write_json

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Point", "load_spec", "expand_points", "run_sweep", "run_point", "collect", "main"]

POINT_FILE, LOG_FILE, RESULTS = "point.json", "log.txt", "results.json"
TABLE, SUMMARY, SWEEP_FILE = "table.csv", "summary.csv", "sweep.json"
_SPEC_KEYS = {"description", "experiment", "seeds", "seed_flag", "metrics", "base", "grid",
              "random", "cases"}
_RANDOM_KEYS = {"n", "seed", "params"}
_FLAG = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class SpecError(ValueError):
    """A sweep spec that cannot run; the message names the key."""


@dataclass(frozen=True)
class Point:
    """One run of a sweep: the varied settings, the seed, the folder and the argv
    (``case``: the label of the spec's case it belongs to, None without cases)."""

    name: str
    settings: dict
    seed: int
    argv: tuple
    out: str
    experiment: str
    case: str | None = None

    def record(self) -> dict:
        return {"name": self.name, "settings": self.settings, "seed": self.seed,
                "argv": list(self.argv), "out": self.out, "experiment": self.experiment,
                "case": self.case}


# ---------------------------------------------------------------------------- spec

def load_spec(path) -> dict:
    """Read and check a sweep spec (a TOML file); raises SpecError naming the key."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from None
    spec = check_spec(raw, where=str(path))
    spec["name"] = path.stem
    return spec


def check_spec(raw: dict, where: str = "spec") -> dict:
    """A spec dict with defaults filled in; raises SpecError naming the bad key."""
    def bad(msg):
        raise SpecError(f"{where}: {msg}")

    unknown = set(raw) - _SPEC_KEYS
    if unknown:
        bad(f"unknown keys {sorted(unknown)}; a spec holds {sorted(_SPEC_KEYS)}")
    spec = {"description": raw.get("description", ""), "experiment": raw.get("experiment"),
            "seeds": raw.get("seeds", [0]), "seed_flag": raw.get("seed_flag", "seed"),
            "metrics": raw.get("metrics"), "base": raw.get("base", {}),
            "grid": raw.get("grid", {}), "random": raw.get("random"),
            "cases": raw.get("cases")}
    if not isinstance(spec["experiment"], str) or not spec["experiment"]:
        bad("'experiment' must name a neuromem experiment command or 'module:function'")
    if spec["experiment"] == "sweep":
        bad("'experiment' cannot be 'sweep' itself")
    seeds = spec["seeds"]
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)
            or len(set(seeds)) != len(seeds)):
        bad(f"'seeds' must be a non-empty list of distinct integers >= 0, got {seeds!r}")
    if spec["seed_flag"] is not None and (not isinstance(spec["seed_flag"], str)
                                          or not _FLAG.match(spec["seed_flag"])):
        bad(f"'seed_flag' must be a flag name like 'seed', got {spec['seed_flag']!r}")
    metrics = spec["metrics"]
    if metrics is not None and (not isinstance(metrics, list) or not metrics
                                or not all(isinstance(m, str) and m for m in metrics)):
        bad(f"'metrics' must be a non-empty list of dotted paths, got {metrics!r}")
    for table in ("base", "grid"):
        if not isinstance(spec[table], dict):
            bad(f"[{table}] must be a table of flag = value")
        for key in spec[table]:
            _check_flag(key, f"[{table}]", bad)
    for key, values in spec["grid"].items():
        if not isinstance(values, list) or not values:
            bad(f"[grid] {key} must be a non-empty list of values, got {values!r}")
    rnd = spec["random"]
    if rnd is not None:
        if not isinstance(rnd, dict):
            bad("[random] must be a table with n, seed and params")
        unknown = set(rnd) - _RANDOM_KEYS
        if unknown:
            bad(f"[random] unknown keys {sorted(unknown)}; it holds {sorted(_RANDOM_KEYS)}")
        n = rnd.get("n")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            bad(f"[random] n must be an integer >= 1, got {n!r}")
        if not isinstance(rnd.get("seed", 0), int):
            bad(f"[random] seed must be an integer, got {rnd.get('seed')!r}")
        params = rnd.get("params")
        if not isinstance(params, dict) or not params:
            bad("[random] params must be a table of flag = [choices] or {low, high, log}")
        for key, dist in params.items():
            _check_flag(key, "[random.params]", bad)
            _check_distribution(key, dist, bad)
        if set(params) & set(spec["grid"]):
            bad(f"{sorted(set(params) & set(spec['grid']))} are both in [grid] and [random.params]")
    varied = set(spec["grid"]) | set((rnd or {}).get("params", {}))
    cases = spec["cases"]
    if cases is not None:
        if not isinstance(cases, list) or not cases or not all(isinstance(c, dict) for c in cases):
            bad("[[cases]] must be one or more tables, each with a label and its flags")
        labels = [c.get("label") for c in cases]
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not _FLAG.match(label):
                bad(f"[[cases]] number {i + 1} needs label = \"name\" (letters, digits, - and _), "
                    f"got {label!r}")
        if len(set(labels)) != len(labels):
            bad(f"[[cases]] labels must differ, got {labels}")
        for case in cases:
            flags = {k: v for k, v in case.items() if k != "label"}
            for key in flags:
                _check_flag(key, f"[[cases]] {case['label']!r}", bad)
            if set(flags) & varied:
                bad(f"[[cases]] {case['label']!r} sets {sorted(set(flags) & varied)}, which "
                    f"[grid] or [random] varies")
        varied |= {k for c in cases for k in c if k != "label"}
    if spec["seed_flag"] is not None:
        taken = {spec["seed_flag"]} & (varied | set(spec["base"]))
        if taken:
            bad(f"{sorted(taken)} is the seed flag: list seeds under 'seeds', not as a flag")
    if "out" in varied | set(spec["base"]):
        bad("'out' is set by the sweep (each point gets its own folder)")
    return spec


def _check_flag(key, table, bad):
    if not isinstance(key, str) or not _FLAG.match(key):
        bad(f"{table} key {key!r} is not a flag name (letters, digits, - and _)")


def _check_distribution(key, dist, bad):
    if isinstance(dist, list):
        if not dist:
            bad(f"[random.params] {key}: an empty list of choices")
        return
    if not isinstance(dist, dict) or set(dist) - {"low", "high", "log", "integer"} \
            or not {"low", "high"} <= set(dist):
        bad(f"[random.params] {key} must be a list of choices or {{low, high, log, integer}}, "
            f"got {dist!r}")
    lo, hi = dist["low"], dist["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) \
            or not lo < hi:
        bad(f"[random.params] {key}: low and high must be numbers with low < high")
    if dist.get("log") and lo <= 0:
        bad(f"[random.params] {key}: log sampling needs low > 0")


# ---------------------------------------------------------------------------- points

def _draw(dist, rng):
    if isinstance(dist, list):
        return copy.deepcopy(dist[int(rng.integers(len(dist)))])
    lo, hi = float(dist["low"]), float(dist["high"])
    if dist.get("log"):
        value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    else:
        value = rng.uniform(lo, hi)
    if dist.get("integer"):
        return int(round(value))
    return float(f"{value:.6g}")


def setting_combinations(spec: dict) -> list[dict]:
    """The varied settings of every point, grid x random sample, in a fixed order
    (without the cases: see :func:`case_settings`)."""
    import numpy as np

    grid = spec["grid"]
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] or [{}]
    rnd = spec["random"]
    if rnd is None:
        return combos
    rng = np.random.default_rng(rnd.get("seed", 0))
    drawn = [{k: _draw(d, rng) for k, d in rnd["params"].items()} for _ in range(rnd["n"])]
    return [{**c, **d} for c in combos for d in drawn]


def case_settings(spec: dict) -> list[tuple[str | None, dict]]:
    """``(label, flags)`` of every case of the spec; ``[(None, {})]`` without cases."""
    if not spec.get("cases"):
        return [(None, {})]
    return [(c["label"], {k: v for k, v in c.items() if k != "label"}) for c in spec["cases"]]


def flag_argv(settings: dict) -> list[str]:
    """Command-line words for ``{flag: value}``: ``true`` -> ``--flag``, ``false`` ->
    ``--no-flag``, a list -> ``--flag a b``, a table -> ``--flag k=v`` once per key."""
    argv = []
    for key, value in settings.items():
        flag = "--" + key
        if value is True:
            argv.append(flag)
        elif value is False:
            argv.append("--no-" + key)
        elif isinstance(value, dict):
            for k, v in value.items():
                argv += [flag, f"{k}={_word(v)}"]
        elif isinstance(value, list):
            argv += [flag] + [_word(v) for v in value]
        else:
            argv += [flag, _word(value)]
    return argv


def _word(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _flat(settings: dict) -> dict:
    """``{"rbm-param": {"weight_range": 5}}`` -> ``{"rbm-param.weight_range": 5}``."""
    out = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        elif isinstance(value, list):
            out[key] = " ".join(_word(v) for v in value)
        else:
            out[key] = value
    return out


def _slug(settings: dict, seed: int) -> str:
    parts = [f"{k}={_word(v)}" for k, v in _flat(settings).items()]
    text = re.sub(r"[^A-Za-z0-9.=+-]+", "-", "_".join(parts)).strip("-")
    if len(text) > 80:
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
        text = f"{text[:70]}-{digest}"
    return f"{text}_s{seed}" if text else f"s{seed}"


def expand_points(spec: dict, out) -> list[Point]:
    """Every point of a spec: settings combinations x seeds, each with its folder."""
    out = Path(out)
    points, names = [], set()
    for case, flags, combo in ((c, f, s) for c, f in case_settings(spec)
                               for s in setting_combinations(spec)):
        settings = {**flags, **combo}
        for seed in spec["seeds"]:
            name = _slug(combo, seed) if case is None else f"{case}_{_slug(combo, seed)}"
            if name in names:
                digest = hashlib.sha1(json.dumps([settings, seed], sort_keys=True,
                                                 default=str).encode()).hexdigest()[:8]
                name = f"{name}-{digest}"
            names.add(name)
            folder = out / "points" / name
            argv = flag_argv(_merge(spec["base"], settings))
            if spec["seed_flag"] is not None:
                argv += ["--" + spec["seed_flag"], str(seed)]
            argv += ["--out", str(folder)]
            points.append(Point(name, settings, seed, tuple(argv), str(folder),
                                spec["experiment"], case))
    return points


# ---------------------------------------------------------------------------- one point

def experiment_entry(experiment: str):
    """The ``main(argv)`` of a neuromem experiment command or of ``module:function``."""
    from neuromem.cli import EXPERIMENTS, import_experiment

    if ":" in experiment:
        module, _, func = experiment.partition(":")
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise SpecError(f"experiment {experiment!r}: cannot import {module} ({exc})") from None
    else:
        if experiment not in EXPERIMENTS:
            raise SpecError(f"unknown experiment {experiment!r}; the neuromem experiment commands "
                            f"are {sorted(EXPERIMENTS)} (or give 'module:function')")
        mod, func = import_experiment(EXPERIMENTS[experiment][0]), "main"
    entry = getattr(mod, func, None)
    if not callable(entry):
        raise SpecError(f"experiment {experiment!r}: {mod.__name__} has no function {func}(argv)")
    return entry


def check_argv(experiment: str, argv) -> None:
    """Raise SpecError when the experiment's own parser refuses ``argv`` (when the
    experiment module offers ``check_argv(argv)`` or ``build_parser()``)."""
    if ":" in experiment:
        return
    from neuromem.cli import EXPERIMENTS, import_experiment

    mod = import_experiment(EXPERIMENTS[experiment][0])
    check = getattr(mod, "check_argv", None)
    if check is None and hasattr(mod, "build_parser"):
        check = mod.build_parser().parse_args
    if check is None:
        return
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            check(list(argv))
    except SystemExit as exc:
        if exc.code not in (0, None):
            lines = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
            raise SpecError(lines[-1] if lines else f"exit status {exc.code}") from None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _settings_argv(argv) -> list:
    """``argv`` without its ``--out DIR`` (a folder that moved holds the same point)."""
    argv = list(argv or [])
    i = len(argv) - 1 - argv[::-1].index("--out") if "--out" in argv else None
    return argv if i is None else argv[:i] + argv[i + 2:]


def finished(point: dict) -> dict | None:
    """The record of a point that already ran to the end with the same argv, else None."""
    record = _read_json(Path(point["out"]) / POINT_FILE)
    if (isinstance(record, dict) and record.get("status") == "done"
            and _settings_argv(record.get("argv")) == _settings_argv(point["argv"])):
        return record
    return None


def lookup(data, path: str):
    """``data["a"]["b"]`` for ``path == "a.b"``; keys may hold dots themselves
    (``"metrics.t_3.6e+03"`` finds ``data["metrics"]["t_3.6e+03"]``). None when missing."""
    parts = path.split(".")
    if not parts or not isinstance(data, dict):
        return None
    for i in range(len(parts), 0, -1):  # the longest key first
        key = ".".join(parts[:i])
        if key in data:
            rest = ".".join(parts[i:])
            found = lookup(data[key], rest) if rest else data[key]
            if found is not None:
                return found
    return None


def extract_metrics(results, metrics=None) -> dict:
    """Numbers of a results.json: the dotted ``metrics`` paths, or by default every
    number under its ``metrics`` and ``accuracy`` tables (flattened with dots)."""
    if not isinstance(results, dict):
        return {}
    if metrics is not None:
        out = {}
        for m in metrics:
            v = lookup(results, m)
            out[m] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
        return out
    out = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix] = float(value)

    for top in ("metrics", "accuracy"):
        walk(top, results.get(top))
    return out


def run_point(point: dict, metrics=None) -> dict:
    """Run one point in this process (a Dask task): the experiment's ``main`` with the
    point's argv, output to ``point["out"]``; returns and writes its record.

    A point already done (same argv) is not run again. ``attempts`` counts the runs
    that started, so a point whose worker died shows 2.
    """
    done = finished(point)
    if done is not None:
        return {**done, "skipped": True}
    folder = Path(point["out"])
    folder.mkdir(parents=True, exist_ok=True)
    before = _read_json(folder / POINT_FILE)
    attempts = (before.get("attempts", 0) if isinstance(before, dict) else 0) + 1
    record = {**point, "status": "running", "attempts": attempts,
              "host": socket.gethostname(), "pid": os.getpid(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_json(folder / POINT_FILE, record)
    t0 = time.perf_counter()
    status, error = None, None
    with open(folder / LOG_FILE, "a") as log:
        log.write(f"--- attempt {attempts}: {point['experiment']} {' '.join(point['argv'])}\n")
        log.flush()
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                entry = experiment_entry(point["experiment"])
                result = entry(list(point["argv"]))
                status = result if isinstance(result, int) and not isinstance(result, bool) else 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
            error = f"exit status {status}"
        except Exception as exc:  # recorded; the sweep goes on with the other points
            log.write(traceback.format_exc())
            status, error = 1, f"{type(exc).__name__}: {exc}"
    results = _read_json(folder / RESULTS)
    if status == 0 and results is None:
        status, error = 1, f"the experiment wrote no {RESULTS}"
    elif status != 0 and error is None:
        error = f"exit status {status}"
    if error is not None:
        tail = (folder / LOG_FILE).read_text(errors="replace").strip().splitlines()
        error = f"{error}: {tail[-1]}" if tail else error
    record.update(status="done" if status == 0 else "failed", exit=status, error=error,
                  wall_s=time.perf_counter() - t0,
                  metrics=extract_metrics(results, metrics) if status == 0 else {})
    write_json(folder / POINT_FILE, record)
    return record


# ---------------------------------------------------------------------------- the sweep

def _import_plugin(experiment: str):
    """A worker plugin that imports the experiment and :mod:`networks` when a worker
    starts (also a worker that replaces a dead one): in the worker's main thread, where
    Brian2 (which sets a signal handler on import) can be imported; tasks run in other
    threads."""
    from dask.distributed import WorkerPlugin

    class ImportExperiment(WorkerPlugin):
        name = "neuromem-sweep-import"

        def setup(self, worker):
            import networks  # noqa: F401  (imports Brian2)

            experiment_entry(experiment)

    return ImportExperiment()


def run_sweep(spec: dict, out, client, *, progress: bool = True) -> list[dict]:
    """Run every point not yet done on ``client`` (a dask.distributed Client) and write
    the table, summary and figures. Returns the records of all points, in spec order."""
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    out = Path(out)
    points = expand_points(spec, out)
    records = {}
    todo = []
    for p in points:
        done = finished(p.record())
        if done is not None:  # metrics read again: the spec's list may have changed
            results = _read_json(Path(p.out) / RESULTS)
            if results is not None:
                done["metrics"] = extract_metrics(results, spec["metrics"])
            records[p.name] = {**done, "skipped": True}
        else:
            todo.append(p)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bar = tqdm(total=len(points), initial=len(points) - len(todo), unit="point",
               desc="sweep", disable=not progress or None, dynamic_ncols=True)
    if todo:
        client.register_plugin(_import_plugin(spec["experiment"]))
    futures = {client.submit(run_point, p.record(), spec["metrics"], pure=False): p
               for p in todo}
    try:
        for future in as_completed(futures):
            p = futures[future]
            try:
                record = future.result()
            except Exception as exc:  # e.g. KilledWorker: the point killed every worker it met
                record = {**p.record(), "status": "failed", "attempts": None,
                          "error": f"{type(exc).__name__}: {exc}", "metrics": {}}
            future.release()
            records[p.name] = record
            bar.update(1)
            if record["status"] != "done":
                tqdm.write(f"point {p.name} failed: {record.get('error')}", file=sys.stderr)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    ordered = [records[p.name] for p in points]
    collect(spec, out, ordered, wall_s=wall, client=client)
    return ordered


def _cluster_text(client) -> str:
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # older distributed
        workers = client.scheduler_info()["workers"]
    except Exception:
        return "unknown"
    kind = "local cluster" if client.cluster is not None else f"scheduler {client.scheduler.address}"
    threads = sum(w.get("nthreads", 1) for w in workers.values())
    return f"{kind}: {len(workers)} workers, {threads} threads"


def collect(spec: dict, out, records: list[dict], *, wall_s=None, client=None) -> None:
    """Write ``table.csv``, ``summary.csv``, ``sweep.json`` and the figures."""
    out = Path(out)
    params = _param_columns(records)
    metrics = _metric_columns(records, spec["metrics"])
    rows = []
    for r in records:
        flat = _columns(r)
        row = {"point": r["name"], "seed": r["seed"], "status": r["status"]}
        row.update({k: flat.get(k) for k in params})
        row.update({m: (r.get("metrics") or {}).get(m) for m in metrics})
        row.update({"wall_s": r.get("wall_s"), "attempts": r.get("attempts"),
                    "folder": r["out"]})
        rows.append(row)
    _write_csv(out / TABLE, rows)
    summary = summarize(records, params, metrics)
    _write_csv(out / SUMMARY, summary)
    figures = plot_summary(summary, params, metrics, out, title=spec.get("name", ""))
    done = sum(r["status"] == "done" for r in records)
    before = _read_json(out / SWEEP_FILE)
    history = before.get("invocations", []) if isinstance(before, dict) else []
    history = history + [{"wall_s": wall_s, "n_run": sum(not r.get("skipped") for r in records),
                          "finished": time.strftime("%Y-%m-%d %H:%M:%S")}]
    write_json(out / SWEEP_FILE, {
        "spec": {k: v for k, v in spec.items()}, "points": records,
        "n_points": len(records), "n_done": done, "n_failed": len(records) - done,
        "wall_s_this_invocation": wall_s, "invocations": history,
        "cluster": None if client is None else _cluster_text(client),
        "machine": {"cpus": os.cpu_count(), "host": socket.gethostname()},
        "table": TABLE, "summary": SUMMARY, "figures": figures,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S")})


def _columns(record: dict) -> dict:
    """The settings of a point as table columns: its case first (when the spec has
    cases), then the flattened settings."""
    case = record.get("case")
    flat = _flat(record["settings"])
    return flat if case is None else {"case": case, **flat}


def _param_columns(records) -> list[str]:
    cols = []
    for r in records:
        for k in _columns(r):
            if k not in cols:
                cols.append(k)
    return cols


def _metric_columns(records, metrics) -> list[str]:
    if metrics is not None:
        return list(metrics)
    cols = []
    for r in records:
        for k in r.get("metrics") or {}:
            if k not in cols:
                cols.append(k)
    return cols


def summarize(records, params, metrics) -> list[dict]:
    """Mean, standard deviation (ddof 1; 0 for one seed) and count of each metric over
    the finished seeds of each setting."""
    groups = {}
    for r in records:
        flat = _columns(r)
        key = json.dumps([flat.get(k) for k in params], default=str)
        groups.setdefault(key, (flat, []))[1].append(r)
    rows = []
    for flat, members in groups.values():
        row = {k: flat.get(k) for k in params}
        row["n_seeds"] = len(members)
        row["n_done"] = sum(m["status"] == "done" for m in members)
        for m in metrics:
            values = [float(v) for v in ((mm.get("metrics") or {}).get(m) for mm in members
                                         if mm["status"] == "done") if v is not None]
            n = len(values)
            mean = sum(values) / n if n else None
            std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1
                   else (0.0 if n else None))
            row.update({f"{m}:mean": mean, f"{m}:std": std, f"{m}:n": n})
        rows.append(row)
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    cols = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    os.replace(tmp, path)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def plot_summary(summary, params, metrics, out: Path, title="") -> list[str]:
    """One figure per metric: mean +- std over seeds against the first varied setting,
    one line per combination of the other settings."""
    from matplotlib.figure import Figure

    written = []
    x_key = params[0] if params else None
    # settings that move together with the first (one value per x) label no lines
    others = [k for k in params[1:]
              if any(len({json.dumps(r[k], default=str) for r in summary if r[x_key] == x}) > 1
                     for x in {json.dumps(r[x_key], default=str): r[x_key] for r in summary}.values())]
    xs = [] if x_key is None else list(dict.fromkeys(r[x_key] for r in summary))
    numeric = bool(xs) and all(_number(x) for x in xs)
    lines = {}
    for r in summary:
        lines.setdefault(", ".join(f"{k}={_word(r[k])}" for k in others), []).append(r)

    def draw(ax, m, prefix=""):
        series = len(lines) * (len(metrics) if prefix else 1)
        for label, rows in lines.items():
            pts = [(r[x_key] if x_key else "all", r[f"{m}:mean"], r[f"{m}:std"])
                   for r in rows if r[f"{m}:mean"] is not None]
            if not pts:
                continue
            if numeric:
                pts.sort(key=lambda t: t[0])
                xv = [p[0] for p in pts]
            else:  # categories: side by side around each tick, no lines between them
                k = len(ax.containers)
                shift = 0.3 * (k - (series - 1) / 2) / max(series, 1)
                xv = [(xs.index(p[0]) if x_key else 0) + shift for p in pts]
            text = ", ".join(t for t in (prefix, label) if t)
            ax.errorbar(xv, [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                        capsize=3, label=text or None, linestyle="-" if numeric else "none")

    def finish(ax, ylabel, name):
        if not numeric:
            ax.set_xticks(range(max(len(xs), 1)))
            ax.set_xticklabels([_word(x) for x in xs] or ["all"], rotation=20)
        ax.set_xlabel(x_key or "")
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.figure.tight_layout()
        ax.figure.savefig(out / name, dpi=110)
        written.append(name)

    for m in metrics:
        ax = Figure(figsize=(6, 4)).subplots()
        draw(ax, m)
        finish(ax, f"{m} (mean ± std over seeds)", re.sub(r"[^A-Za-z0-9.-]+", "_", m) + ".png")
    if len(metrics) > 1:  # every metric on one plot
        ax = Figure(figsize=(6.5, 4.2)).subplots()
        for m in metrics:
            draw(ax, m, prefix=m)
        finish(ax, "mean ± std over seeds", "all_metrics.png")
    return written


# ---------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    from experiments.mnist_dbn import Parser

    p = Parser(prog="neuromem sweep",
               description="Run an experiment over a grid or random sample of settings x seeds "
                           "on Dask; collect a CSV table and mean +- std figures.")
    p.add_argument("spec", metavar="SPEC", help="the sweep's TOML file")
    p.add_argument("--out", help="output folder (default results/sweeps/<spec name>)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the local cluster (default: the machine's cores)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running Dask scheduler (tcp://host:8786) instead of a "
                        "local cluster; OUT must be writable by every worker")
    p.add_argument("--list", action="store_true",
                   help="print the points and their commands, run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None, *, client=None) -> int:
    """``neuromem sweep``: 0 when every point is done, 1 when some failed, 2 for bad input.
    ``client``: run on this Dask client instead of starting one."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.workers is not None and args.scheduler:
        parser.error("--workers and --scheduler exclude each other (the scheduler's "
                     "cluster has its own workers)")
    try:
        spec = load_spec(args.spec)
        experiment_entry(spec["experiment"])
        # absolute, so that workers started elsewhere (a cluster) write to the same place
        out = (Path(args.out) if args.out else Path("results") / "sweeps" / spec["name"]).resolve()
        points = expand_points(spec, out)
        for argv_ in dict.fromkeys(p.argv for p in points):
            check_argv(spec["experiment"], argv_)
    except SpecError as exc:
        parser.error(str(exc))
    if args.list:
        for p in points:
            state = "done" if finished(p.record()) else "to run"
            print(f"{p.name}  [{state}]  {spec['experiment']} {' '.join(p.argv)}")
        return 0
    own = client is None
    if own:
        from experiments.cluster import dask_client

        try:
            client = dask_client(args.workers, args.scheduler, minimum=1)
        except OSError as exc:
            parser.error(f"--scheduler {args.scheduler}: cannot connect ({exc})")
    t0 = time.perf_counter()
    try:
        records = run_sweep(spec, out, client, progress=not args.no_progress)
    finally:
        if own:
            from experiments.cluster import close_client

            close_client(client)
    failed = [r for r in records if r["status"] != "done"]
    skipped = sum(bool(r.get("skipped")) for r in records)
    print(f"{len(records) - len(failed)} of {len(records)} points done ({skipped} from earlier "
          f"runs), {len(failed)} failed, {time.perf_counter() - t0:.1f} s; table "
          f"{out / TABLE}, summary {out / SUMMARY}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
