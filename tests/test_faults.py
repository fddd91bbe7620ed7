"""Tests of the stuck-at faults study (experiments/faults.py, ``neuromem faults``) and of
the RBM's stuck-at fault parameters it uses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import faults
from networks import MemristiveDBN, MemristiveRBM
from neuromem import cli
from neuromem.data import load_digits_binary, train_validation_split


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_binary()
    return train_validation_split(X, y, 0.2)


def test_rbm_fault_rates_reach_its_crossbar_and_follow_the_seed(digits):
    X = digits[0][:100]
    a = MemristiveRBM(n_components=20, n_iter=1, stuck_low_rate=0.1, stuck_high_rate=0.05,
                      random_state=3).fit(X)
    b = MemristiveRBM(n_components=20, n_iter=1, stuck_low_rate=0.1, stuck_high_rate=0.05,
                      random_state=3).fit(X)
    fa, fb = a.crossbar_.faults, b.crossbar_.faults
    n = fa["stuck_low"].size
    assert 0.05 * n < fa["stuck_low"].sum() < 0.15 * n
    assert 0.01 * n < fa["stuck_high"].sum() < 0.10 * n
    assert np.array_equal(fa["stuck_low"], fb["stuck_low"])
    clean = MemristiveRBM(n_components=20, n_iter=1, random_state=3).fit(X)
    assert clean.crossbar_.faults["stuck_low"].sum() == 0
    for bad in ({"stuck_low_rate": -0.1}, {"stuck_high_rate": 1.5},
                {"stuck_low_rate": 0.6, "stuck_high_rate": 0.6}):
        with pytest.raises(ValueError, match="stuck_"):
            MemristiveRBM(**bad).fit(X)


def test_transfer_writes_software_weights_into_the_same_faulty_arrays(digits):
    X, Xe, y, ye = digits
    small = dict(hidden_layer_sizes=(16,), n_top=32, n_iter=1, n_top_iter=3, random_state=1)
    faulty = MemristiveDBN(**small, rbm_params={"stuck_low_rate": 0.1, "stuck_high_rate": 0.1}).fit(X, y)
    masks = [(m.crossbar_.faults["stuck_low"].copy(), m.crossbar_.faults["stuck_high"].copy())
             for m in faulty.layers_ + [faulty.top_]]
    software = MemristiveDBN(**small, device="ideal", update="ideal").fit(X, y)
    written = faults.transfer(software, faulty)
    assert written["programming_pulses"] > 0
    for m, (low, high) in zip(faulty.layers_ + [faulty.top_], masks):
        assert np.array_equal(m.crossbar_.faults["stuck_low"], low)
        assert np.array_equal(m.crossbar_.faults["stuck_high"], high)
    # the healthy cells now hold the software weights (within programming error and
    # the array's range); the stuck ones do not
    for src, dst in zip(software.layers_ + [software.top_], faulty.layers_ + [faulty.top_]):
        w_sw, w_hw = src.weights(), dst.weights()
        stuck = dst.crossbar_.faults["stuck_low"] | dst.crossbar_.faults["stuck_high"]
        inside = ~stuck & (np.abs(w_sw) < 0.5 * dst.weight_range)
        err = np.abs(w_hw - w_sw)[inside]
        assert np.median(err) < 0.1 * np.abs(w_sw[inside]).mean() + 0.05
        assert np.median(np.abs(w_hw - w_sw)[stuck]) > np.median(err)


def test_command_writes_three_accuracies(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["faults", "--stuck-rate", "0.2", "--epochs", "1", "--top-epochs", "2",
                     "--seed", "2", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) == {"in_situ", "software", "transferred"}
    assert all(0 <= v <= 1 for v in results["metrics"].values())
    f = results["faults"]
    assert 0.15 < (f["stuck_low"] + f["stuck_high"]) / f["cells"] < 0.25
    assert results["networks"]["in_situ"]["random_state"] == 2


@pytest.mark.parametrize("argv, words", [
    (["--stuck-rate", "1.5"], "--stuck-rate must lie in [0, 1]"),
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--recipe", "nosuch"], "--recipe: unknown recipe"),
    (["--seed", "-1"], "--seed must be >= 0"),
])
def test_bad_arguments_exit_2_before_writing(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as exc:
        cli.main(["faults", *argv, "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_device_param_sets_the_device_of_the_in_situ_network():
    settings = faults.check_argv(["--device-param", "va_std_v=1.6", "--device-param", "beta_std_v=0"])
    device = settings["in_situ"]["device"]
    assert device.name == "yflash" and device.va_std_v == 1.6 and device.beta_std_v == 0
    assert settings["software"]["device"] == "ideal"


@pytest.mark.parametrize("value, words", [("nosuch=1", "unexpected keyword argument 'nosuch'"),
                                          ("va_std_v=-1", "YFlash.va_std_v must be finite and >= 0"),
                                          ("va_std_v", "expected KEY=VALUE")])
def test_bad_device_param_is_one_line(value, words, capsys):
    with pytest.raises(SystemExit) as exc:
        faults.check_argv(["--device-param", value])
    assert exc.value.code == 2 and words in capsys.readouterr().err


def test_mnist_small_recipe_trains_on_10000_images_and_validates_on_the_rest():
    """The studies' MNIST recipe: 10 000 training images, the other 50 000 of the
    training set for validation, never the test set."""
    from pathlib import Path

    from networks.recipes import load_recipe
    from experiments.mnist_dbn import load_data

    mnist = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    if not mnist.is_dir():
        pytest.skip("MNIST not available (set NEUROMEM_DATA)")
    recipe = load_recipe("mnist-small")
    data = load_data(recipe["run"], str(mnist))
    assert data["eval_set"] == "validation"
    assert (len(data["y_train"]), len(data["y_eval"])) == (10000, 50000)
    assert data["X_train"].shape[1] == 784
    dbn = recipe["dbn"]
    assert dbn["hidden_layer_sizes"] == [200] and dbn["n_top"] == 400
