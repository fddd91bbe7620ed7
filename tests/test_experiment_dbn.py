"""Tests of experiments/mnist_dbn.py (``neuromem dbn``) on the bundled digits, tiny networks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import mnist_dbn
from networks import MemristiveDBN
from neuromem import cli
from neuromem import data as mnist_data

ROOT = Path(__file__).resolve().parents[1]
# 2 + 2 + 1 = 5 epochs over the plan: layer0, top, finetune
TINY = ["--dataset", "digits", "--layers", "16", "--top", "32", "--epochs", "2", "--top-epochs", "2",
        "--finetune-epochs", "1", "--batch-size", "50", "--seed", "3", "--no-progress"]
RESULT_KEYS = {"recipe", "overrides", "argv", "git", "dataset", "accuracy", "curves",
               "pulses_per_device", "energy", "wall_time_s", "resumed", "versions", "figures",
               "checkpoint", "model"}


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def _arrays(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k != "__metadata__"}


def _metadata(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(f["__metadata__"].tobytes().decode())
    for h in meta.pop("history"):
        assert h["wall_s"] >= 0
    meta.pop("metadata_sha256", None)  # covers the history, whose epoch timings differ
    return meta


def _comparable(res: dict) -> dict:
    """results.json without what legitimately differs between runs (times, paths)."""
    out = {k: res[k] for k in ("accuracy", "pulses_per_device", "energy", "dataset")}
    out["curves"] = [{k: v for k, v in h.items() if k != "wall_s"} for h in res["curves"]]
    out["recipe"] = res["recipe"]
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dbn") / "full"
    assert mnist_dbn.main(TINY + ["--out", str(out)]) == 0
    return out


def test_results_record_the_commit_the_run_started_from(tmp_path, monkeypatch):
    states = iter([{"commit": "a" * 40, "dirty": False}, {"commit": "b" * 40, "dirty": True}])
    monkeypatch.setattr(mnist_dbn, "git_commit", lambda: next(states))
    out = tmp_path / "git"
    tiny = [a if a != "2" else "1" for a in TINY]  # one epoch per stage is enough here
    assert mnist_dbn.main(tiny + ["--out", str(out), "--no-figures"]) == 0
    git = _results(out)["git"]
    assert git["commit"] == "a" * 40 and git["dirty"] is False
    assert git["at_end"] == {"commit": "b" * 40, "dirty": True}
    assert mnist_dbn.git_record({"commit": "c", "dirty": False},
                                 {"commit": "c", "dirty": False}) == {"commit": "c", "dirty": False}


def test_main_writes_results_and_figures(tiny_run):
    res = _results(tiny_run)
    assert RESULT_KEYS <= set(res)
    assert set(res["accuracy"]) == {"validation"}  # no --final: the test split is untouched
    # the recorded accuracies are the saved network's own on the validation split, scored
    # here from the split the results describe (this tiny network is near chance: 0.10
    # freeze, 0.125 sampling, so a floor would prove little)
    data = mnist_dbn.load_data(res["recipe"]["run"])
    dbn = MemristiveDBN.load(tiny_run / "checkpoint.npz")
    for mode in ("freeze", "sampling"):
        score = np.mean(dbn.predict(data["X_eval"], inference=mode) == data["y_eval"])
        assert res["accuracy"]["validation"][mode] == score, mode
    recipe = res["recipe"]
    assert recipe["name"] == "default" and recipe["run"]["dataset"] == "digits"
    dbn = recipe["dbn"]
    assert dbn["hidden_layer_sizes"] == [16] and dbn["n_top"] == 32 and dbn["n_iter"] == 2
    assert dbn["random_state"] == 3 and dbn["device"] == "yflash" and dbn["update"] == "counter"
    assert dbn["rbm_params"]["weight_range"] == 10.0  # every RBM setting is written out
    assert {"--hidden-layer-sizes", "--n-top", "--n-iter", "--random-state"} <= set(res["overrides"])
    assert res["dataset"]["n_train"] + res["dataset"]["n_validation"] == 1797 - 360
    curves = res["curves"]
    assert [(h["stage"], h["epoch"]) for h in curves] == [
        ("layer0", 0), ("layer0", 1), ("top", 0), ("top", 1), ("finetune", 0)]
    assert all("reconstruction_error" in h for h in curves[:2])
    assert all("accuracy_freeze" in h for h in curves[2:])
    assert curves[-1]["accuracy_freeze"] == res["accuracy"]["validation"]["freeze"]
    pulses = res["pulses_per_device"]["training"]
    assert pulses["mean"] > 0 and pulses["max"] >= pulses["mean"]
    assert set(pulses["per_module"]) == {"layer0", "top", "gen0"}
    assert res["pulses_per_device"]["ledger"]["total"] >= pulses["total"]
    energy = res["energy"]
    for part in ("training", "evaluation", "total"):
        assert energy[part]["total_j"] > 0
    assert energy["training"]["total_j"] + energy["evaluation"]["total_j"] == pytest.approx(
        energy["total"]["total_j"])
    assert energy["training"]["potentiate"]["count"] + energy["training"]["depress"]["count"] == \
        res["pulses_per_device"]["ledger"]["total"]
    assert "depress" not in energy["evaluation"]  # inference fires no pulses
    parts = res["energy_by_component"]["training"]
    assert parts["converters"] == 0 and parts["counters"] > 0  # no ADC anywhere
    assert parts["total_j"] == pytest.approx(energy["training"]["total_j"])
    assert res["wall_time_s"]["training"] > 0
    assert res["versions"]["numpy"] == np.__version__
    assert set(res["figures"]) == set(mnist_dbn.FIGURES)
    for name in mnist_dbn.FIGURES:
        assert (tiny_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tiny_run / "checkpoint.npz").exists()
    # the shareable model predicts like the checkpoint, at a fraction of its size
    model, checkpoint = tiny_run / "model.npz", tiny_run / "checkpoint.npz"
    assert model.stat().st_size < 0.6 * checkpoint.stat().st_size
    X = np.random.default_rng(0).random((20, 64)) < 0.3
    np.testing.assert_array_equal(MemristiveDBN.load(model).predict_proba(X),
                                  MemristiveDBN.load(checkpoint).predict_proba(X))


def test_interrupted_run_resumes_to_the_same_result(tiny_run, tmp_path):
    out = tmp_path / "sliced"
    args = TINY + ["--out", str(out), "--no-figures"]
    # stop after 2 epochs (end of layer0), then after 1 more (inside the top stage)
    assert mnist_dbn.main(args + ["--stop-after", "2"]) == 0
    assert not (out / "results.json").exists()
    assert mnist_dbn.main(args + ["--stop-after", "1"]) == 0
    # Ctrl-C from inside the loop (after the 4th epoch's checkpoint): status 130, a
    # message saying how to resume, the checkpoint intact, no temporary file
    def crash(dbn, entry):
        raise KeyboardInterrupt

    assert mnist_dbn.main(args, on_epoch=crash) == 130
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    assert mnist_dbn.main(args) == 0
    resumed, full = _results(out), _results(tiny_run)
    assert resumed["resumed"] and not full["resumed"]
    assert _comparable(resumed) == _comparable(full)
    a, b = _arrays(out / "checkpoint.npz"), _arrays(tiny_run / "checkpoint.npz")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # and the metadata: RNG states, ledgers, device clocks, progress (not the epoch timings)
    ma, mb = _metadata(out / "checkpoint.npz"), _metadata(tiny_run / "checkpoint.npz")
    assert ma == mb


def test_resume_with_other_settings_is_an_error(tiny_run, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(tiny_run, out)
    with pytest.raises(SystemExit) as exc:
        mnist_dbn.main([a if a != "3" else "4" for a in TINY] + ["--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "random_state: checkpoint 3, now 4" in err and "--no-resume" in err
    assert len(err.strip().splitlines()) == 1
    # a finished checkpoint with matching settings just re-reports
    assert mnist_dbn.main(TINY + ["--out", str(out), "--no-figures"]) == 0
    assert _comparable(_results(out))["accuracy"] == _comparable(_results(tiny_run))["accuracy"]


@pytest.mark.parametrize("argv, message", [
    (["--device", "nosuchdevice"], "unknown device 'nosuchdevice'"),
    (["--epochs", "-1"], "--n-iter must be an integer >= 0"),
    (["--top-epochs", "0"], "--n-top-iter must be an integer >= 1"),
    (["--layers", "0"], "--hidden-layer-sizes must be an integer >= 1"),
    (["--rbm-param", "weight_range"], "expected KEY=VALUE"),
    (["--rbm-param", "bogus=1"], "not a MemristiveRBM parameter"),
    (["--rbm-param", "cd_k=2"], "use --cd-k"),
    (["--rbm-param", "weight_range=-1"], "weight_range must lie in"),
    (["--n-validation", "1.5"], "--n-validation"),
    (["--update", "ideal"], "needs an analogue"),
    (["--discriminative-weight", "-1"], "--discriminative-weight must lie in [0, inf] or 'auto', got -1"),
    (["--discriminative-weight", "1.5"], "must be a whole number with counter updates"),
    (["--top-rbm-param", "bogus=1"], "--top-rbm-param bogus: not a MemristiveRBM parameter"),
    (["--top-rbm-param", "n_iter=3"], "--top-rbm-param n_iter is set by the network"),
    (["--top-rbm-param", "counter_threshold=0"], "counter_threshold must be an integer >= 1"),
    (["--finetune", "backprop"], "--finetune must be one of"),
    (["--finetune-learning-rate", "0"], "--finetune-learning-rate must lie in (0, inf], got 0"),
    (["--finetune-decay", "1.5"], "--finetune-decay must lie in (0, 1], got 1.5"),
    (["--finetune-momentum", "1"], "--finetune-momentum must lie in [0, 1), got 1"),
    (["--finetune", "discriminative", "--finetune-epochs", "1"], "--update ideal"),
    (["--recipe", "nosuchrecipe"], "unknown recipe 'nosuchrecipe'"),
    (["--preset", "paper"], "--preset was replaced by --recipe"),
    (["--epochs", "2", "--n-iter", "3"], "--epochs and --n-iter set the same parameter"),
    (["--binarize", "fuzzy"], "invalid choice: 'fuzzy'"),
    (["--dataset", "nowhere/at/all"], "--dataset nowhere/at/all: "),
])
def test_bad_options_give_one_line_and_status_2_and_create_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "bad"
    with pytest.raises(SystemExit) as exc:
        mnist_dbn.main(["--dataset", "digits", "--out", str(out), "--no-progress"] + argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("neuromem dbn: error:")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()  # nothing is created before the arguments are valid


def test_ctrl_c_exits_130_with_how_to_resume_and_no_traceback(tmp_path, monkeypatch, capsys):
    out = tmp_path / "int"
    args = TINY + ["--out", str(out), "--no-figures"]
    calls = []

    def interrupt_second_save(self, path, **kw):  # Ctrl-C while the 2nd checkpoint is written
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, path, **kw)

    from networks import MemristiveDBN
    original = MemristiveDBN.save
    monkeypatch.setattr(MemristiveDBN, "save", interrupt_second_save)
    assert mnist_dbn.main(args) == 130
    err = capsys.readouterr().err
    assert "holds 1 finished epoch(s); rerun the same command to resume" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "run.json"]
    assert len(MemristiveDBN.load(out / "checkpoint.npz").history_) == 1


def test_corrupt_mnist_file_is_one_line_in_cli_words(tmp_path, capsys):
    data = tmp_path / "mnist"
    data.mkdir()
    for names in mnist_data.MNIST_FILES.values():
        for name in names:
            (data / f"{name}.gz").write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(SystemExit) as exc:
        mnist_dbn.main(["--dataset", "mnist", "--data-dir", str(data), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "checksum mismatch" in err
    assert "neuromem data" in err and "load_mnist" not in err and "verify=False" not in err
    assert not (tmp_path / "o").exists()


def test_rbm_param_values_are_typed():
    assert mnist_dbn._rbm_param("persistent=true") == ("persistent", True)
    assert mnist_dbn._rbm_param("max_pulses=3") == ("max_pulses", 3)
    assert mnist_dbn._rbm_param("weight_range=5") == ("weight_range", 5)
    assert mnist_dbn._rbm_param("learning_rate=1e-2") == ("learning_rate", 0.01)
    assert mnist_dbn._rbm_param("scheme=differential") == ("scheme", "differential")
    assert mnist_dbn._rbm_param("counter_threshold=none") == ("counter_threshold", None)


def _resolve(argv):
    parser = mnist_dbn.build_parser()
    return mnist_dbn.resolve_recipe(parser.parse_args(argv), parser)


def test_flags_override_single_recipe_keys():
    r = _resolve(["--recipe", "yflash-headline", "--seed", "1", "--neuron", "mtj",
                  "--rbm-param", "weight_range=5", "--no-final"])
    assert r["dbn"]["random_state"] == 1 and r["dbn"]["neuron"] == "mtj"
    assert r["dbn"]["rbm_params"]["weight_range"] == 5
    assert r["dbn"]["rbm_params"]["reference_level"] == 0.1  # the recipe's, untouched
    assert r["dbn"]["top_rbm_params"] == {"counter_threshold": 200, "scheme": "differential"}
    assert r["run"]["final"] is False and r["run"]["dataset"] == "mnist"
    r = _resolve(["--recipe", "yflash-headline", "--top-rbm-param", "counter_threshold=300",
                  "--paired-noise", "--no-paired-noise"])
    assert r["dbn"]["top_rbm_params"] == {"counter_threshold": 300, "scheme": "differential"}
    assert r["dbn"]["paired_noise"] is False
    r = _resolve(["--recipe", "digits", "--top-anneal-epochs", "20", "25", "--discriminative-weight", "2"])
    assert r["dbn"]["top_anneal_epochs"] == [20, 25] and r["dbn"]["discriminative_weight"] == 2


def test_results_json_is_a_recipe_that_reruns_the_run(tiny_run):
    res = _results(tiny_run)
    again = _resolve(["--recipe", str(tiny_run / "results.json")])
    assert again["dbn"] == res["recipe"]["dbn"] and again["run"] == res["recipe"]["run"]
    assert again["overrides"] == []  # everything came from the file


def test_every_estimator_parameter_is_a_flag():
    from networks import MemristiveDBN

    parser = mnist_dbn.build_parser()
    flags = {a.dest for a in parser._actions}
    assert set(MemristiveDBN().get_params()) - {"verbose", "rbm_params", "top_rbm_params"} <= flags


def test_final_reports_the_test_split(tmp_path):
    out = tmp_path / "final"
    argv = ["--dataset", "digits", "--layers", "8", "--top", "16", "--epochs", "1", "--top-epochs", "1",
            "--finetune-epochs", "0", "--batch-size", "100", "--final", "--no-figures",
            "--no-progress", "--out", str(out)]
    assert mnist_dbn.main(argv) == 0
    res = _results(out)
    assert set(res["accuracy"]) == {"test"}
    assert res["dataset"]["n_train"] == 1797 - 360 and res["dataset"]["n_test"] == 360


def test_cli_dispatches_to_main(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["dbn", "--recipe", "digits", "--epochs", "2", "--top-epochs", "2", "--no-progress",
            "--no-figures"]
    assert cli.main(argv) == 0
    res = _results(tmp_path / "results" / "digits-s0-val")
    assert res["recipe"]["dbn"]["hidden_layer_sizes"] == [100] and res["recipe"]["dbn"]["n_iter"] == 2


def test_console_script_runs(tmp_path):
    """``neuromem dbn --recipe digits`` through the installed entry point."""
    exe = shutil.which("neuromem")
    cmd = [exe] if exe else [sys.executable, "-m", "neuromem"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd + ["dbn", "--recipe", "digits", "--epochs", "1", "--top-epochs", "1",
                                 "--no-figures", "--out", str(tmp_path / "cli")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "validation accuracy: freeze" in proc.stdout
    assert _results(tmp_path / "cli")["recipe"]["name"] == "digits"


@pytest.mark.slow  # the full digits recipe: about a minute alone
def test_digits_recipe_reaches_90_percent_on_held_out_digits(tmp_path):
    """``neuromem dbn --recipe digits --final`` in full (Y-Flash, counters, comparators;
    trained on 80 % of the digits, scored once on the held-out 20 %): 91.94 % measured."""
    argv = ["--recipe", "digits", "--final", "--no-progress", "--no-figures",
            "--out", str(tmp_path / "q")]
    assert mnist_dbn.main(argv) == 0
    res = _results(tmp_path / "q")
    assert res["recipe"]["dbn"]["device"] == "yflash" and res["recipe"]["dbn"]["update"] == "counter"
    assert res["dataset"]["n_test"] == 360
    assert res["accuracy"]["test"]["freeze"] >= 0.90
