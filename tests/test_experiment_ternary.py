"""``neuromem ternary``: bad arguments, a small run on the digits, resume, a spread run."""

import json

import numpy as np
import pytest

from experiments import mnist_ternary
from neuromem import cli


@pytest.mark.parametrize("argv, word", [
    (["--learning-rate", "-1"], "learning-rate"), (["--activation", "relu"], "activation"),
    (["--n-iter", "0"], "n-iter"), (["--dataset", "cifar"], "dataset"),
    (["--spreads", "-0.1"], "spreads"), (["--dataset", "mnist", "--data-dir", "/nonexistent"], "mnist"),
    (["--conv-layers", "8x3"], "--model cnn"), (["--model", "cnn", "--conv-layers", "8by3"], "CHANNELSxKERNEL"),
    (["--model", "cnn", "--update", "sample"], "update"), (["--model", "rnn"], "model"),
    (["--model", "cnn", "--conv-layers", "8x9", "--dataset", "digits"], "conv-layers[0]"),
    (["--column-write-limit", "0"], "column-write-limit"),
    (["--max-shift", "1"], "--model cnn"), (["--model", "cnn", "--max-shift", "-1"], "max-shift"),
])
def test_bad_arguments_exit_2_with_one_line_and_create_nothing(argv, word, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        cli.main(["ternary", *argv, "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and word in err
    assert not out.exists()


def test_small_run_writes_results_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["ternary", "--dataset", "digits", "--hidden-layer-sizes", "16", "--n-iter", "2",
            "--batch-size", "50", "--out", str(out)]
    assert cli.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["eval"] == "validation" and len(results["epochs"]) == 2
    assert 0.0 <= results["accuracy"] <= 1.0
    t = results["training"]
    assert t["training_samples"] == 2 * results["n_train"]
    assert t["ops_per_j"] == pytest.approx(t["ops_per_sample"] / t["energy_per_sample_j"])
    assert t["device_writes_per_sample"] > 0 and t["pulses_per_sample"] >= t["device_writes_per_sample"]
    assert (out / "accuracy.png").exists()
    assert all(len(e["window_fractions"]) == 1 and 0 < e["window_fractions"][0] <= 1
               for e in results["epochs"])
    assert "stopped learning" not in capsys.readouterr().err
    assert cli.main(argv) == 0  # the same command again: resumes after the last epoch
    assert "resuming after epoch 2" in capsys.readouterr().err
    again = json.loads((out / "results.json").read_text())
    assert again["epochs"] == results["epochs"]
    with pytest.raises(SystemExit) as exc:  # other settings into the same folder are refused
        cli.main(argv[:-2] + ["--learning-rate", "0.1", "--out", str(out)])
    assert exc.value.code == 2


def test_a_run_whose_defaults_moved_is_not_resumed(tmp_path, capsys, monkeypatch):
    from networks import TernaryMLP

    out = tmp_path / "run"
    argv = ["ternary", "--dataset", "digits", "--hidden-layer-sizes", "16", "--n-iter", "1",
            "--batch-size", "50", "--out", str(out)]
    assert cli.main(argv) == 0
    # the same command after a release changed a default: refused, naming the parameter
    monkeypatch.setitem(TernaryMLP.__init__.__kwdefaults__, "cells_per_weight", 2)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cells_per_weight: checkpoint 4, now 2" in err and "--no-resume" in err
    assert cli.main(argv[:-2] + ["--no-resume", "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["resolved_params"]["cells_per_weight"] == 2
    # the default given as a flag is the same run: resumed
    monkeypatch.setitem(TernaryMLP.__init__.__kwdefaults__, "cells_per_weight", 4)
    capsys.readouterr()
    assert cli.main(argv[:-2] + ["--cells-per-weight", "2", "--out", str(out)]) == 0
    assert "resuming after epoch 1" in capsys.readouterr().err


def test_a_run_starts_from_another_runs_checkpoint_under_another_schedule(tmp_path, capsys):
    base = ["ternary", "--dataset", "digits", "--hidden-layer-sizes", "16", "--batch-size", "50"]
    late = ["--n-iter", "3", "--learning-rate-decay", "0.5", "--learning-rate-decay-after", "2"]
    held, full, branch = (str(tmp_path / name) for name in ("held", "full", "branch"))
    assert cli.main(base + ["--n-iter", "2", "--out", held]) == 0
    assert cli.main(base + late + ["--out", full]) == 0
    capsys.readouterr()
    argv = base + late + ["--start-from", held, "--out", branch]
    assert cli.main(argv) == 0
    assert "starting after epoch 2" in capsys.readouterr().err
    full_run, branched = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("full", "branch"))
    # the held epochs are the full run's, so the branch is the full run, epoch for epoch
    assert branched["epochs"] == full_run["epochs"] and len(branched["epochs"]) == 3
    assert branched["training"] == full_run["training"]
    assert branched["resolved_params"] == full_run["resolved_params"]
    assert branched["settings"]["start_from"] == held
    assert cli.main(argv) == 0  # the same command again resumes the branch
    assert "resuming after epoch 3" in capsys.readouterr().err
    # a run held at another rate: its epochs, then this command's
    fast, from_fast = str(tmp_path / "fast"), tmp_path / "from-fast"
    assert cli.main(base + ["--n-iter", "2", "--learning-rate", "0.6", "--out", fast]) == 0
    assert cli.main(base + late + ["--start-from", fast, "--out", str(from_fast)]) == 0
    fast_epochs = json.loads((tmp_path / "fast" / "results.json").read_text())["epochs"]
    continued = json.loads((from_fast / "results.json").read_text())["epochs"]
    assert continued[:2] == fast_epochs != full_run["epochs"][:2] and len(continued) == 3
    capsys.readouterr()
    # more than the schedule differs, or there is no run: refused, nothing created
    for extra, start, word in ((["--cells-per-weight", "2"], held, "cells_per_weight"),
                               (["--seed", "1"], held, "seed"),
                               ([], str(tmp_path / "nothing"), "no run to start from")):
        other = tmp_path / "other"
        with pytest.raises(SystemExit) as exc:
            cli.main(base + late + extra + ["--start-from", start, "--out", str(other)])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--start-from" in err[0] and word in err[0]
        assert not other.exists()


def test_a_run_with_a_hold_out_ends_on_its_best_epoch(tmp_path, capsys):
    out = tmp_path / "best"
    argv = ["ternary", "--dataset", "digits", "--hidden-layer-sizes", "16", "--n-iter", "5",
            "--batch-size", "20", "--validation-fraction", "0.2", "--seed", "1", "--out", str(out)]
    assert cli.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    held = [e["held_out_accuracy"] for e in results["epochs"]]
    best = results["best_epoch"]
    assert best == int(np.argmax(held)) + 1 < 5 and results["held_out_accuracy"] == max(held)
    # programmed back: the network is that epoch's, so it scores what that epoch scored
    assert results["accuracy"] == results["epochs"][best - 1]["accuracy"] != results["epochs"][-1]["accuracy"]
    assert results["n_train"] + results["n_held_out"] == 1437 - 288
    assert results["training"]["training_samples"] == 5 * results["n_train"]
    assert f"programmed back to epoch {best}" in capsys.readouterr().err
    assert cli.main(argv) == 0  # resumed after the last epoch: the same result, nothing booked again
    again = json.loads((out / "results.json").read_text())
    assert again["accuracy"] == results["accuracy"] and again["training_ledger"] == results["training_ledger"]
    assert "programmed back" not in capsys.readouterr().err


def test_a_spread_run_trains_its_own_model():
    from neuromem.data import load_digits_scaled

    X, y = load_digits_scaled()
    data = {"X_train": X[:300], "y_train": y[:300], "X_eval": X[300:400], "y_eval": y[300:400]}
    params = {"hidden_layer_sizes": (16,), "n_iter": 1}
    model = mnist_ternary.build_model(params, 0.2, 0.05, 0)
    assert model.d2d_delta_rel == 0.2 and model.device.d2d_r_rel == 0.2
    row = mnist_ternary._spread_run(model, 0.2, data, 1)
    assert row["spread"] == 0.2 and 0 <= row["accuracy"] <= 1 and np.isfinite(row["switches_per_sample"])
    assert len(row["window_fractions"]) == 1 and row["seed"] == 0


def test_spread_sweep_runs_every_chip_once_and_keeps_finished_runs(tmp_path):
    out = tmp_path / "sweep"
    argv = ["ternary", "--dataset", "digits", "--hidden-layer-sizes", "8", "--n-iter", "1",
            "--spreads", "0", "0.2", "--sweep-seeds", "2", "--workers", "1", "--out", str(out)]
    assert cli.main(argv) == 0
    rows = json.loads((out / "results.json").read_text())["spread_sweep"]
    assert [(r["spread"], r["seed"]) for r in rows] == [(0.0, 0), (0.0, 1), (0.2, 0), (0.2, 1)]
    assert (out / "accuracy_vs_spread.png").exists()
    kept = json.loads((out / "spread_runs.json").read_text())
    kept[0]["accuracy"] = 0.123456  # a finished run is read back, not run again
    (out / "spread_runs.json").write_text(json.dumps(kept))
    assert cli.main(argv[:-5] + ["3", "--workers", "1", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["spread_sweep"]
    assert len(rows) == 6 and sorted({r["seed"] for r in rows}) == [0, 1, 2]
    assert 0.123456 in [r["accuracy"] for r in rows]
    assert cli.main(argv[:-2] + ["--no-resume", "--out", str(out)]) == 0  # starting over forgets them
    rows = json.loads((out / "results.json").read_text())["spread_sweep"]
    assert len(rows) == 4 and 0.123456 not in [r["accuracy"] for r in rows]


def test_an_emptied_straight_through_window_is_reported(tmp_path, capsys):
    # a window far narrower than any pre-activation: no error passes the hidden array
    argv = ["ternary", "--dataset", "digits", "--hidden-layer-sizes", "16", "--n-iter", "1",
            "--ste-width", "1e-6", "--out", str(tmp_path / "dead")]
    assert cli.main(argv) == 0
    assert "hidden array 0 has 0.0 % of its pre-activations" in capsys.readouterr().err


def test_cnn_run_uses_the_convolutional_estimator_and_resumes(tmp_path, capsys):
    out = tmp_path / "cnn"
    argv = ["ternary", "--model", "cnn", "--dataset", "digits", "--conv-layers", "8x3",
            "--hidden-layer-sizes", "16", "--n-iter", "2", "--batch-size", "20", "--out", str(out)]
    assert cli.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["estimator"] == "TernaryCNN" and results["resolved_params"]["conv_layers"] == [[8, 3]]
    assert results["training"]["ops_per_sample"] > 0 and len(results["epochs"]) == 2
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "resuming after epoch 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # an MLP run into the CNN's folder is refused
        cli.main(["ternary", "--dataset", "digits", "--hidden-layer-sizes", "16", "--n-iter", "2",
                  "--batch-size", "20", "--out", str(out)])


def test_cnn_normalisation_can_be_switched_off(tmp_path):
    argv = ["ternary", "--model", "cnn", "--dataset", "digits", "--conv-layers", "8x3",
            "--hidden-layer-sizes", "16", "--n-iter", "1", "--normalization", "none",
            "--cells-per-weight", "1", "--out", str(tmp_path / "fixed")]
    assert cli.main(argv) == 0
    resolved = json.loads((tmp_path / "fixed" / "results.json").read_text())["resolved_params"]
    assert resolved["normalization"] is None and resolved["cells_per_weight"] == 1
    with pytest.raises(SystemExit):
        cli.main(argv[:-1] + [str(tmp_path / "bad")] + ["--normalization", "layer"])


def test_cells_per_weight_takes_one_number_per_array(tmp_path, capsys):
    argv = ["ternary", "--model", "cnn", "--dataset", "digits", "--conv-layers", "8x3",
            "--hidden-layer-sizes", "16", "--n-iter", "1", "--cells-per-weight", "1", "2", "3",
            "--out", str(tmp_path / "mixed")]
    assert cli.main(argv) == 0
    results = json.loads((tmp_path / "mixed" / "results.json").read_text())
    assert results["resolved_params"]["cells_per_weight"] == [1, 2, 3]
    capsys.readouterr()
    with pytest.raises(SystemExit):  # three arrays, two numbers
        cli.main(argv[:9] + ["--cells-per-weight", "1", "2", "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert "cells-per-weight must be" in err and "tuple of 3" in err


def test_grey_inputs_the_calibration_set_and_shifts_are_options(tmp_path):
    argv = ["ternary", "--model", "cnn", "--dataset", "digits", "--conv-layers", "8x3",
            "--hidden-layer-sizes", "16", "--n-iter", "1", "--input-coding", "grey",
            "--calibration-samples", "0", "--out", str(tmp_path / "grey")]
    assert cli.main(argv) == 0
    resolved = json.loads((tmp_path / "grey" / "results.json").read_text())["resolved_params"]
    assert resolved["input_coding"] == "grey" and resolved["calibration_samples"] == 0
    assert cli.main(argv[:-1] + [str(tmp_path / "shifted"), "--max-shift", "2"]) == 0
    assert cli.main(argv[:-1] + [str(tmp_path / "all"), "--validation-fraction", "none"]) == 0
    resolved = json.loads((tmp_path / "all" / "results.json").read_text())["resolved_params"]
    assert resolved["validation_fraction"] is None and resolved["max_shift"] == 1  # the defaults' shift
    with pytest.raises(SystemExit):
        cli.main(argv[:-1] + [str(tmp_path / "bad"), "--validation-fraction", "tenth"])
    resolved = json.loads((tmp_path / "shifted" / "results.json").read_text())["resolved_params"]
    assert resolved["max_shift"] == 2


def test_every_flag_is_a_parameter_of_the_networks_and_reaches_them(tmp_path):
    from networks import TernaryCNN, TernaryMLP
    mlp_only = {"update"}  # the CNN refuses it with a message (tested above)
    cnn_only = {"conv_layers", "max_shift"}
    for name in mnist_ternary.PARAMS:
        if name not in cnn_only:
            assert name in TernaryMLP().get_params(), name
        if name not in mlp_only:
            assert name in TernaryCNN().get_params(), name
    argv = ["ternary", "--dataset", "digits", "--hidden-layer-sizes", "16", "--n-iter", "1",
            "--min-probability", "0.01", "--max-width-s", "1e-8", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 0
    resolved = json.loads((tmp_path / "run" / "results.json").read_text())["resolved_params"]
    assert resolved["min_probability"] == 0.01 and resolved["max_width_s"] == 1e-8
