"""``neuromem snn``: the Diehl & Cook protocol on the compiled engine, end to end."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from experiments import mnist_stdp
from networks.stdp import VOTES, assign_labels, class_rates, vote

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


@pytest.fixture
def mnist(monkeypatch):
    from neuromem.data import load_mnist

    if "NEUROMEM_DATA" not in os.environ and SHARED.is_dir():
        monkeypatch.setenv("NEUROMEM_DATA", str(SHARED))
    try:
        load_mnist(kind="test")
    except (FileNotFoundError, OSError, ValueError):
        pytest.skip("MNIST not available (set NEUROMEM_DATA)")


def _argv(out, *extra):
    return ["--device", "yflash", "--n-neurons", "20", "--n-train", "200", "--n-label", "200",
            "--n-test", "200", "--checkpoint-every", "100", "--workers", "0", "--out", str(out),
            "--no-progress", *extra]


def test_interrupted_run_resumes_to_the_uninterrupted_result(mnist, tmp_path):
    whole = mnist_stdp.main(_argv(tmp_path / "whole"))

    def interrupt(n_done):
        if n_done == 100:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C does

    with pytest.raises(SystemExit) as exc:
        mnist_stdp.main(_argv(tmp_path / "cut"), on_checkpoint=interrupt)
    assert exc.value.code == 130
    info = json.loads((tmp_path / "cut" / "checkpoint.json").read_text())
    assert info["n_done"] == 100
    assert not list((tmp_path / "cut").glob("*.tmp"))
    resumed = mnist_stdp.main(_argv(tmp_path / "cut"))
    assert resumed["resumed"]
    for key in ("accuracy", "confusion", "neurons_per_label", "training_pulses", "weights",
                "mean_spikes_per_train_image"):
        assert resumed[key] == whole[key], key
    for name in ("results.json", "receptive_fields.png", "confusion.png"):
        assert (tmp_path / "whole" / name).stat().st_size > 0
    # twice chance on 200 images (20 neurons after 200 training images: 0.28)
    assert whole["accuracy"] > 0.2
    assert whole["accuracy"] == pytest.approx(np.trace(np.array(whole["confusion"])) / 200)
    # the energy by hardware component adds up to the ledger's total
    parts = whole["energy_j"]["by_component"]
    assert parts["total_j"] == pytest.approx(whole["energy_j"]["total"], rel=1e-9)
    assert parts["programming_pulses"] > 0 and parts["array_reads"] > 0


def test_resume_with_other_settings_names_them(mnist, tmp_path, capsys):
    mnist_stdp.main(_argv(tmp_path, "--n-train", "20"))
    with pytest.raises(SystemExit) as exc:
        mnist_stdp.main(_argv(tmp_path, "--n-train", "20", "--pulse-width", "0.5"))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "pulse_width: checkpoint 1.0, now 0.5" in err and "--no-resume" in err
    again = mnist_stdp.main(_argv(tmp_path, "--n-train", "20", "--pulse-width", "0.5", "--no-resume"))
    assert again["settings"]["pulse_width"] == 0.5 and not again["resumed"]


@pytest.mark.parametrize("flag, value, message", [
    ("--n-train", "0", "--n-train must lie in"),
    ("--epochs", "0", "--epochs must be >= 1"),
    ("--anneal", "0", "--anneal must lie in (0, 1]"),
    ("--anneal", "1.5", "--anneal must lie in (0, 1]"),
    ("--n-label", "60000", "--n-label must lie in [1, 50000]"),
    ("--n-neurons", "1", "--n-neurons must be >= 2"),
    ("--device", "flux-capacitor", "--device: unknown device"),
    ("--dt-ms", "0.7", "--dt-ms must divide 50 ms"),
    ("--dt-ms", "1", "--dt-ms must be below 1 ms"),
    ("--n-test", "20000", "--n-test must lie in"),
    ("--pulse-width", "-1", "--pulse-width must be > 0"),
    ("--input-delay-ms", "-2", "--input-delay-ms must lie in"),
    ("--param", "theta_plus_mv", "--param takes NAME=VALUE"),
    ("--param", "n_neurons=3", "--param takes NAME=VALUE"),
    ("--param", "theta_plus_mv=abc", "--param theta_plus_mv: expected a number"),
    ("--param", "input_delay_max_ms=-1", "--param takes NAME=VALUE"),
    ("--recipe", "no-such-recipe", "--recipe: unknown recipe 'no-such-recipe'"),
    ("--recipe", "missing/recipe.toml", "--recipe: recipe file missing/recipe.toml does not exist"),
])
def test_bad_arguments_exit_2_before_creating_anything(tmp_path, capsys, flag, value, message):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:
        mnist_stdp.main(_argv(out, flag, value))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_missing_data_is_a_cli_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NEUROMEM_DATA", raising=False)
    with pytest.raises(SystemExit) as exc:
        mnist_stdp.main(_argv(tmp_path / "out", "--data-dir", str(tmp_path / "nothing")))
    assert exc.value.code == 2
    assert "--data-dir" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_labels_come_from_training_responses_only(mnist):
    """The classifier sees the labelling images' labels, never the evaluation labels."""
    from neuromem.data import load_mnist
    from networks import DiehlCookEngine
    from networks.stdp import DiehlCookParams

    x, y = load_mnist(kind="train")
    engine = DiehlCookEngine("ideal", params=DiehlCookParams(n_neurons=10), seed=1)
    engine.present(x[:40], learn=True)
    rates, preds, label_counts, eval_counts = mnist_stdp.label_and_classify(
        engine, x[:50], y[:50], x[100:130])
    assert rates.argmax(axis=0).tolist() == assign_labels(label_counts, y[:50]).tolist()
    assert sorted(preds) == sorted(VOTES) and all(p.shape == (30,) for p in preds.values())
    # other labels for the labelling images give other class rates and assignments
    shuffled = np.random.default_rng(0).permutation(y[:50])
    other, _, _, _ = mnist_stdp.label_and_classify(engine, x[:50], shuffled, x[100:130])
    assert not np.array_equal(other.argmax(axis=0), rates.argmax(axis=0))
    assert eval_counts.shape == (30, 10) and eval_counts.sum() > 0


def test_results_hold_every_vote_and_the_counts_behind_them(mnist, tmp_path):
    res = mnist_stdp.main(_argv(tmp_path / "run", "--vote", "mean"))
    by_vote = res["accuracy_by_vote"]
    assert sorted(by_vote) == sorted(VOTES) and res["accuracy"] == by_vote["mean"]
    with np.load(tmp_path / "run" / mnist_stdp.COUNTS) as counts:
        rates = class_rates(counts["label_counts"], counts["label_classes"])
        eval_counts = counts["eval_counts"]
    assert eval_counts.shape == (200, 20)
    # the saved counts give the reported accuracies again
    from neuromem.data import load_mnist

    _, y = load_mnist(kind="train")
    y_val = y[-10000:][:200]
    for method, accuracy in by_vote.items():
        assert np.mean(vote(eval_counts, rates, method) == y_val) == accuracy
    # the vote is not a training setting: the same run folder re-evaluates without training
    again = mnist_stdp.main(_argv(tmp_path / "run", "--vote", "likelihood"))
    assert again["resumed"] and again["accuracy"] == by_vote["likelihood"]


def test_simulated_rest_runs_the_frozen_phases_here(mnist, tmp_path):
    """With the rest simulated the state carries between images: no Dask shards."""
    res = mnist_stdp.main(["--device", "none", "--n-neurons", "10", "--n-train", "20",
                           "--n-label", "20", "--n-test", "20", "--between-images", "rest",
                           "--workers", "2", "--out", str(tmp_path), "--no-progress"])
    assert res["settings"]["between_images"] == "rest" and res["dask"].startswith("none")
    assert sum(map(sum, res["confusion"])) == 20


def test_param_flag_sets_network_parameters_and_names_the_run(tmp_path):
    ap = mnist_stdp._parser()
    args = ap.parse_args(_argv(tmp_path, "--recipe", "diehl-cook-2015", "--param",
                               "theta_plus_mv=0.1", "--param", "max_retries=2"))
    s = mnist_stdp.resolve_settings(args, ap)
    assert s["params"] == {"max_retries": 2, "theta_plus_mv": 0.1}
    engine = mnist_stdp.build_engine(s)
    assert engine.params.theta_plus_mv == 0.1 and engine.params.max_retries == 2
    assert engine.params.n_neurons == 20  # the flags still set their own parameters
    assert "theta_plus_mv0.1" in mnist_stdp.run_name(s)
    assert not (tmp_path / "never").exists()


def test_epochs_show_the_training_images_again(mnist, tmp_path):
    """Two epochs over 30 images train as the same 30 images shown twice, in order."""
    from neuromem.data import load_mnist
    from networks import DiehlCookEngine
    from networks.stdp import DiehlCookParams

    res = mnist_stdp.main(["--device", "ideal", "--n-neurons", "10", "--n-train", "30",
                           "--epochs", "2", "--n-label", "20", "--n-test", "20", "--workers", "0",
                           "--out", str(tmp_path), "--no-progress"])
    assert res["settings"]["epochs"] == 2 and res["total_images"] == 60 + 20 + 20
    x, _ = load_mnist(kind="train")
    twin = DiehlCookEngine("ideal", params=DiehlCookParams.from_recipe("tuned", n_neurons=10), seed=0)
    twin.present(np.concatenate([x[:30], x[:30]]), learn=True, stream=mnist_stdp.STREAM_TRAIN)
    assert res["weights"]["mean"] == pytest.approx(float(twin.weights().mean()), rel=1e-12)
    assert res["weights"]["max"] == pytest.approx(float(twin.weights().max()), rel=1e-12)
    assert "-e2-" in mnist_stdp.run_name(res["settings"])
    assert "anneal" not in mnist_stdp.run_name(res["settings"])
    assert "-anneal0.1-" in mnist_stdp.run_name({**res["settings"], "anneal": 0.1})


def test_labelling_uses_the_whole_training_split_by_default(tmp_path):
    ap = mnist_stdp._parser()
    base = ["--n-neurons", "20", "--out", str(tmp_path)]
    assert mnist_stdp.resolve_settings(ap.parse_args(base), ap)["n_label"] == 50000
    assert mnist_stdp.resolve_settings(ap.parse_args(base + ["--final"]), ap)["n_label"] == 60000


def test_recipes_set_the_network_and_flags_override_them(tmp_path):
    """The default recipe is the tuned rule; the paper's is a recipe; --param wins."""
    from networks.recipes import load_snn_recipe

    ap = mnist_stdp._parser()
    resolve = lambda *extra: mnist_stdp.resolve_settings(ap.parse_args(_argv(tmp_path, *extra)), ap)
    tuned = load_snn_recipe("tuned")["params"]
    assert resolve()["params"] == tuned and tuned["nu_pre"] == 0.0
    assert resolve()["recipe"] == "tuned"
    paper = resolve("--recipe", "diehl-cook-2015")
    assert paper["params"] == {} and paper["recipe"] == "diehl-cook-2015"
    assert mnist_stdp.build_engine(paper).params.nu_pre == 1e-4  # the paper's rate
    over = resolve("--param", "nu_post=0.02")
    assert over["params"] == {**tuned, "nu_post": 0.02}
    assert mnist_stdp.build_engine(over).params.nu_post == 0.02
    own = tmp_path / "mine.toml"
    own.write_text('description = "mine"\n[params]\nw_ie = 20.0\n')
    assert resolve("--recipe", str(own))["params"] == {"w_ie": 20.0}


@pytest.mark.parametrize("text, message", [
    ('[params]\nnu_pree = 0.0\n', "not DiehlCookParams fields"),
    ('[params]\nnu_pre = "zero"\n', "must be numbers"),
    ('[params]\nn_neurons = 10\n', "set by their own flags"),
    ('[parms]\nnu_pre = 0.0\n', "unknown recipe keys"),
    ('[params\n', "not valid TOML"),
])
def test_bad_recipe_files_exit_2_naming_the_problem(tmp_path, capsys, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(SystemExit) as exc:
        mnist_stdp.main(_argv(tmp_path / "never", "--recipe", str(bad)))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "--recipe" in err and "Traceback" not in err
    assert not (tmp_path / "never").exists()
