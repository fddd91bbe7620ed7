"""Tests of ``neuromem sweep`` (experiments/sweep.py): specs, points, and runs on a
two-worker local Dask cluster, including a worker that dies in a point."""

from __future__ import annotations

import csv
import json
import os
import statistics
import sys
import textwrap
from pathlib import Path

import pytest

from experiments import sweep
from neuromem import cli

#: a stand-in experiment: writes results.json with a score; "crash" kills its worker
#: process the first time (a marker file remembers), "fail" exits with status 3
HELPER = '''
import argparse, json, os, time
from pathlib import Path

def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--value")
    p.add_argument("--seed", type=int)
    p.add_argument("--out")
    p.add_argument("--marker")
    p.add_argument("--sleep", type=float, default=0.2)
    a = p.parse_args(argv)
    time.sleep(a.sleep)
    if a.value == "crash" and not Path(a.marker).exists():
        Path(a.marker).write_text("died once")
        os._exit(1)
    if a.value == "fail":
        print("this point fails")
        return 3
    Path(a.out).mkdir(parents=True, exist_ok=True)
    score = len(a.value) * 10 + a.seed
    (Path(a.out) / "results.json").write_text(json.dumps({"metrics": {"score": score}}))
    return 0
'''


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A two-worker local cluster whose workers can import the helper module."""
    from experiments.cluster import close_client, dask_client

    helper_dir = tmp_path_factory.mktemp("helper")
    (helper_dir / "sweep_helper.py").write_text(HELPER)
    sys.path.insert(0, str(helper_dir))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(helper_dir), os.getcwd(), old]))
    c = dask_client(2)
    try:
        yield c
    finally:
        close_client(c)
        sys.path.remove(str(helper_dir))
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def write_spec(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def point_record(out: Path, name: str) -> dict:
    return json.loads((out / "points" / name / "point.json").read_text())


# ---------------------------------------------------------------------------- specs

def test_points_are_the_grid_times_the_seeds_with_flags_rendered(tmp_path):
    spec = sweep.check_spec({
        "experiment": "dbn", "seeds": [3, 4],
        "base": {"recipe": "digits", "no-figures": True, "final": False,
                 "rbm-param": {"weight_range": 5}, "layers": [16, 8]},
        "grid": {"device": ["yflash", "pcm"], "top": [32, 64, 128]}})
    points = sweep.expand_points(spec, tmp_path)
    assert len(points) == 2 * 3 * 2
    assert len({p.name for p in points}) == len(points) == len({p.out for p in points})
    p = points[0]
    assert p.settings == {"device": "yflash", "top": 32} and p.seed == 3
    argv = list(p.argv)
    assert argv[:2] == ["--recipe", "digits"]
    assert "--no-figures" in argv and "--no-final" in argv
    i = argv.index("--rbm-param")
    assert argv[i + 1] == "weight_range=5"
    i = argv.index("--layers")
    assert argv[i + 1:i + 3] == ["16", "8"]
    assert argv[-4:] == ["--seed", "3", "--out", str(tmp_path / "points" / p.name)]
    # a grid table merges into the base table of the same flag
    spec = sweep.check_spec({"experiment": "dbn", "base": {"rbm-param": {"weight_range": 5}},
                             "grid": {"rbm-param": [{"scheme": "differential"}]}})
    argv = list(sweep.expand_points(spec, tmp_path)[0].argv)
    assert argv.count("--rbm-param") == 2 and "scheme=differential" in argv


def test_random_sample_is_reproducible_and_inside_its_ranges(tmp_path):
    raw = {"experiment": "dbn", "seeds": [0], "grid": {"device": ["yflash", "pcm"]},
           "random": {"n": 20, "seed": 5, "params": {
               "learning-rate": {"low": 1e-3, "high": 1e-1, "log": True},
               "top": {"low": 10, "high": 50, "integer": True},
               "cd-k": [1, 3]}}}
    a = sweep.setting_combinations(sweep.check_spec(raw))
    b = sweep.setting_combinations(sweep.check_spec(raw))
    assert a == b and len(a) == 40
    lr = [s["learning-rate"] for s in a]
    assert all(1e-3 <= v <= 1e-1 for v in lr) and len(set(lr)) > 10
    # log-uniform: about half the draws below the geometric middle (1e-2)
    assert 5 <= sum(v < 1e-2 for v in lr[:20]) <= 15
    assert all(isinstance(s["top"], int) and 10 <= s["top"] <= 50 for s in a)
    assert {s["cd-k"] for s in a} == {1, 3}
    raw["random"]["seed"] = 6
    assert sweep.setting_combinations(sweep.check_spec(raw)) != a


@pytest.mark.parametrize("raw, words", [
    ({"experiment": "dbn", "grids": {}}, "unknown keys ['grids']"),
    ({"seeds": [0]}, "'experiment'"),
    ({"experiment": "sweep"}, "cannot be 'sweep'"),
    ({"experiment": "dbn", "seeds": [0, 0]}, "'seeds'"),
    ({"experiment": "dbn", "seeds": [-1]}, "'seeds'"),
    ({"experiment": "dbn", "grid": {"device": "yflash"}}, "[grid] device must be a non-empty list"),
    ({"experiment": "dbn", "base": {"seed": 1}}, "seed flag"),
    ({"experiment": "dbn", "base": {"out": "x"}}, "'out' is set by the sweep"),
    ({"experiment": "dbn", "base": {"bad flag": 1}}, "not a flag name"),
    ({"experiment": "dbn", "random": {"n": 0, "params": {"top": [1]}}}, "n must be an integer >= 1"),
    ({"experiment": "dbn", "random": {"n": 2, "params": {"top": {"low": 5, "high": 1}}}},
     "low < high"),
    ({"experiment": "dbn", "random": {"n": 2, "params": {"top": {"low": 0, "high": 1, "log": True}}}},
     "log sampling needs low > 0"),
    ({"experiment": "dbn", "metrics": "accuracy"}, "'metrics'"),
    ({"experiment": "dbn", "cases": {"label": "a"}}, "[[cases]] must be one or more tables"),
    ({"experiment": "dbn", "cases": [{"top": 8}]}, "[[cases]] number 1 needs label"),
    ({"experiment": "dbn", "cases": [{"label": "a"}, {"label": "a", "top": 8}]},
     "labels must differ"),
    ({"experiment": "dbn", "cases": [{"label": "a", "top": 8}], "grid": {"top": [4]}},
     "[[cases]] 'a' sets ['top'], which [grid] or [random] varies"),
    ({"experiment": "dbn", "cases": [{"label": "a", "seed": 3}]}, "seed flag"),
    ({"experiment": "dbn", "cases": [{"label": "a", "bad flag": 3}]}, "not a flag name"),
])
def test_bad_specs_name_the_key(raw, words):
    with pytest.raises(sweep.SpecError) as exc:
        sweep.check_spec(raw)
    assert words in str(exc.value)


def test_cases_run_every_combination_once_per_case_with_their_flags(tmp_path):
    spec = sweep.check_spec({
        "experiment": "dbn", "seeds": [0, 1], "base": {"recipe": "digits", "top": 16},
        "grid": {"device": ["yflash", "pcm"]},
        "cases": [{"label": "defaults"}, {"label": "wide", "top": 64, "layers": [32]}]})
    points = sweep.expand_points(spec, tmp_path)
    assert len(points) == 2 * 2 * 2 and len({p.out for p in points}) == 8
    by_case = {c: [p for p in points if p.case == c] for c in ("defaults", "wide")}
    assert all(len(v) == 4 for v in by_case.values())
    for p in by_case["defaults"]:
        argv = list(p.argv)
        assert argv[argv.index("--top") + 1] == "16" and "--layers" not in argv
        assert p.name.startswith("defaults_device=")
    for p in by_case["wide"]:
        argv = list(p.argv)
        assert argv.count("--top") == 1 and argv[argv.index("--top") + 1] == "64"
        assert argv[argv.index("--layers") + 1] == "32" and p.name.startswith("wide_device=")
    # the same grid point and seed in both cases: same device and seed, different flags
    assert [(p.settings["device"], p.seed) for p in by_case["defaults"]] == \
        [(p.settings["device"], p.seed) for p in by_case["wide"]]
    assert sweep.expand_points(sweep.check_spec({"experiment": "dbn"}), tmp_path)[0].case is None


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "experiments" / "sweeps")
                                        .glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_specs_are_accepted_by_their_experiments(path, tmp_path):
    spec = sweep.load_spec(path)
    points = sweep.expand_points(spec, tmp_path)
    assert len(points) == len({p.out for p in points}) >= 2
    for argv in dict.fromkeys(p.argv for p in points):
        sweep.check_argv(spec["experiment"], argv)


def _cli_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main(["sweep", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


def test_cli_refuses_bad_specs_before_creating_anything(tmp_path, capsys):
    out = tmp_path / "out"
    err = _cli_error([str(tmp_path / "missing.toml"), "--out", str(out)], capsys)
    assert "missing.toml does not exist" in err
    bad_toml = write_spec(tmp_path / "bad.toml", "experiment = [\n")
    assert "not valid TOML" in _cli_error([str(bad_toml), "--out", str(out)], capsys)
    unknown = write_spec(tmp_path / "u.toml", 'experiment = "nope"\n')
    assert "unknown experiment 'nope'" in _cli_error([str(unknown), "--out", str(out)], capsys)
    # a value the experiment itself refuses, found before any point starts
    refused = write_spec(tmp_path / "r.toml", """
        experiment = "dbn"
        [base]
        recipe = "digits"
        [grid]
        device = ["yflash", "nosuchdevice"]
        """)
    err = _cli_error([str(refused), "--out", str(out)], capsys)
    assert "nosuchdevice" in err
    spec = write_spec(tmp_path / "ok.toml", 'experiment = "dbn"\n')
    assert "--workers must be >= 1" in _cli_error([str(spec), "--workers", "0", "--out", str(out)],
                                                   capsys)
    assert "exclude each other" in _cli_error(
        [str(spec), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1", "--out", str(out)], capsys)
    assert not out.exists()


def test_list_prints_points_and_runs_nothing(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.toml", """
        experiment = "dbn"
        seeds = [0, 1]
        [grid]
        top = [8, 16]
        """)
    assert cli.main(["sweep", str(spec), "--list", "--out", str(tmp_path / "o")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and all("[to run]" in ln and "--top" in ln for ln in lines)
    assert not (tmp_path / "o").exists()


def test_metrics_default_to_numbers_under_metrics_and_accuracy():
    results = {"accuracy": {"validation": {"freeze": 0.5, "sampling": 0.25}}, "metrics": {"x": 2},
               "other": 7, "flag": {"b": True}}
    assert sweep.extract_metrics(results) == {
        "metrics.x": 2.0, "accuracy.validation.freeze": 0.5, "accuracy.validation.sampling": 0.25}
    assert sweep.extract_metrics(results, ["other", "missing.key"]) == {"other": 7.0,
                                                                         "missing.key": None}
    dotted = {"metrics": {"t_3.6e+03": 0.5, "t_3": {"6e+03": 0.25}}}
    assert sweep.extract_metrics(dotted, ["metrics.t_3.6e+03"]) == {"metrics.t_3.6e+03": 0.5}
    assert sweep.lookup({"a.b": {"c": 1}, "a": {"b": {"d": 2}}}, "a.b.d") == 2


# ---------------------------------------------------------------------------- on a cluster

def test_killed_worker_reruns_its_point_only_and_rerun_skips_finished(tmp_path, client, capsys):
    marker = tmp_path / "crashed-once"
    spec = write_spec(tmp_path / "crash.toml", f"""
        experiment = "sweep_helper:main"
        seeds = [0, 1]
        [base]
        marker = "{marker}"
        [grid]
        value = ["a", "crash", "bbb"]
        """)
    out = tmp_path / "out"
    assert sweep.main([str(spec), "--out", str(out), "--no-progress"], client=client) == 0
    assert marker.exists()  # the crash point did kill its worker once
    rows = read_csv(out / "table.csv")
    assert len(rows) == 6 and all(r["status"] == "done" for r in rows)
    attempts = {r["point"]: point_record(out, r["point"])["attempts"] for r in rows}
    rerun = [name for name, n in attempts.items() if n != 1]
    # the one point whose worker died ran twice; no other point ran again
    assert len(rerun) == 1 and rerun[0].startswith("value=crash") and attempts[rerun[0]] == 2
    for r in rows:
        assert float(r["metrics.score"]) == len(r["value"]) * 10 + int(r["seed"])
        assert (out / "points" / r["point"] / "results.json").exists()
    summary = {r["value"]: r for r in read_csv(out / "summary.csv")}
    assert set(summary) == {"a", "crash", "bbb"}
    for value, r in summary.items():
        scores = [len(value) * 10, len(value) * 10 + 1]
        assert float(r["metrics.score:mean"]) == pytest.approx(statistics.mean(scores))
        assert float(r["metrics.score:std"]) == pytest.approx(statistics.stdev(scores))
        assert r["metrics.score:n"] == "2"
    assert (out / "metrics.score.png").stat().st_size > 1000
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["n_done"] == 6 and meta["cluster"].startswith("local cluster")
    # a rerun runs nothing: every point is skipped, attempts unchanged
    capsys.readouterr()
    assert sweep.main([str(spec), "--out", str(out), "--no-progress"], client=client) == 0
    assert "(6 from earlier runs)" in capsys.readouterr().out
    assert {r["point"]: point_record(out, r["point"])["attempts"] for r in rows} == attempts
    assert read_csv(out / "table.csv") == rows


def test_failed_point_is_recorded_the_rest_finish_and_a_rerun_retries_it(tmp_path, client):
    spec = write_spec(tmp_path / "fail.toml", """
        experiment = "sweep_helper:main"
        seeds = [0]
        [grid]
        value = ["fail", "cc"]
        """)
    out = tmp_path / "out"
    assert sweep.main([str(spec), "--out", str(out), "--no-progress"], client=client) == 1
    rows = {r["value"]: r for r in read_csv(out / "table.csv")}
    assert rows["cc"]["status"] == "done" and rows["fail"]["status"] == "failed"
    failed = point_record(out, rows["fail"]["point"])
    assert failed["exit"] == 3 and "this point fails" in failed["error"]
    assert sweep.main([str(spec), "--out", str(out), "--no-progress"], client=client) == 1
    assert point_record(out, rows["fail"]["point"])["attempts"] == 2
    assert point_record(out, rows["cc"]["point"])["attempts"] == 1


def test_cases_are_compared_chip_for_chip_in_the_summary(tmp_path, client):
    spec = write_spec(tmp_path / "cases.toml", """
        experiment = "sweep_helper:main"
        seeds = [0, 1]
        [base]
        value = "ab"
        sleep = 0.05
        [[cases]]
        label = "short"
        [[cases]]
        label = "long"
        value = "abcd"
        """)
    out = tmp_path / "out"
    assert sweep.main([str(spec), "--out", str(out), "--no-progress"], client=client) == 0
    rows = read_csv(out / "table.csv")
    assert [(r["case"], r["seed"]) for r in rows] == [("short", "0"), ("short", "1"),
                                                      ("long", "0"), ("long", "1")]
    for r in rows:
        assert float(r["metrics.score"]) == (20 if r["case"] == "short" else 40) + int(r["seed"])
    summary = {r["case"]: r for r in read_csv(out / "summary.csv")}
    assert float(summary["short"]["metrics.score:mean"]) == pytest.approx(20.5)
    assert float(summary["long"]["metrics.score:mean"]) == pytest.approx(40.5)
    assert summary["long"]["metrics.score:n"] == "2"
    assert (out / "metrics.score.png").stat().st_size > 1000


def test_tiny_dbn_sweep_on_digits(tmp_path, client):
    spec = write_spec(tmp_path / "dbn.toml", """
        experiment = "dbn"
        seeds = [0, 1]
        metrics = ["accuracy.validation.freeze"]
        [base]
        recipe = "digits"
        layers = [16]
        top = 32
        epochs = 1
        top-epochs = 2
        no-figures = true
        no-progress = true
        [grid]
        device = ["yflash"]
        """)
    out = tmp_path / "out"
    assert sweep.main([str(spec), "--out", str(out), "--no-progress"], client=client) == 0
    rows = read_csv(out / "table.csv")
    assert [r["seed"] for r in rows] == ["0", "1"]
    for r in rows:
        results = json.loads((out / "points" / r["point"] / "results.json").read_text())
        assert results["recipe"]["dbn"]["random_state"] == int(r["seed"])
        assert results["recipe"]["dbn"]["hidden_layer_sizes"] == [16]
        assert float(r["accuracy.validation.freeze"]) == results["accuracy"]["validation"]["freeze"]
    assert (out / "accuracy.validation.freeze.png").exists()


def test_a_point_is_finished_only_with_the_same_settings(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    argv = ["--top", "8", "--seed", "0", "--out", "elsewhere/p"]
    (folder / "point.json").write_text(json.dumps({"status": "done", "argv": argv}))
    point = {"out": str(folder), "argv": ["--top", "8", "--seed", "0", "--out", str(folder)]}
    assert sweep.finished(point) is not None  # the folder moved: still the same point
    assert sweep.finished({**point, "argv": ["--top", "9", "--seed", "0", "--out", str(folder)]}) is None
    (folder / "point.json").write_text(json.dumps({"status": "failed", "argv": argv}))
    assert sweep.finished(point) is None


def test_unreachable_scheduler_is_one_line_and_creates_nothing(tmp_path, capsys):
    import dask

    spec = write_spec(tmp_path / "s.toml", 'experiment = "dbn"\n[base]\nrecipe = "digits"\n')
    out = tmp_path / "out"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        err = _cli_error([str(spec), "--scheduler", "tcp://127.0.0.1:1", "--out", str(out)], capsys)
    assert "--scheduler tcp://127.0.0.1:1: cannot connect" in err
    assert not out.exists()
