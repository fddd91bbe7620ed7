"""The ``neuromem adc`` comparison (DBN vs ADC MLP vs float) on the digits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from experiments.adc_comparison import main, sampling_pass
from neuromem.converters import COMPONENT_NAMES
from neuromem.data import load_digits_binary
from neuromem.energy import energy_breakdown
from networks import MemristiveDBN

HEADLINE = (Path(__file__).resolve().parents[1] / "docs" / "results"
            / "mnist-yflash-counter-comparator-e5-t40-hybrid8-sw5-paired-anneal.json")


@pytest.fixture(scope="module")
def dbn_file(tmp_path_factory):
    X, y = load_digits_binary()
    with threadpool_limits(1):
        dbn = MemristiveDBN((16,), 32, n_iter=1, batch_size=20, random_state=0).fit(X[:300], y[:300])
    return dbn, dbn.save(tmp_path_factory.mktemp("dbn") / "model.npz")


def test_dbn_ledger_holds_no_converter_operations(dbn_file):
    dbn, _ = dbn_file
    X, _ = load_digits_binary()
    labels = sampling_pass(dbn, X[:50].astype(np.float32))
    assert labels.shape == (50, 10) and np.all(labels.sum(axis=1) == 1)
    report = dbn.energy_report()
    assert not set(COMPONENT_NAMES) & set(report)
    parts = energy_breakdown(report)
    assert parts["converters"] == 0 and parts["counters"] > 0 and parts["neurons"] > 0


def test_comparison_on_digits_writes_table_figure_and_resumes(dbn_file, tmp_path, capsys):
    _, model = dbn_file
    out = tmp_path / "cmp"
    argv = ["--dataset", "digits", "--epochs", "1", "--adc-bits", "4", "8", "--devices", "ideal",
            "--hidden", "8", "--float-epochs", "3", "--dbn-model", str(model),
            "--dbn-samples", "1", "3", "--out", str(out), "--dbn-results", str(HEADLINE)]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    names = [r["name"] for r in res["rows"]]
    assert names == ["mlp-ideal-adc4", "mlp-ideal-adc8", "float", "dbn-sampling-1",
                     "dbn-sampling-3", "dbn-freeze", "dbn-reported-sampling-10"]
    rows = {r["name"]: r for r in res["rows"]}
    for r in res["rows"]:
        assert 0.0 <= r["accuracy"] <= 1.0
    for name in ("mlp-ideal-adc4", "mlp-ideal-adc8"):
        r = rows[name]
        assert r["energy_per_inference_j"] > 0 and r["device_writes_per_training_sample"] > 0
        assert r["inference_breakdown_per_sample_j"]["converters"] > 0
        assert r["training_breakdown_j"]["total_j"] == pytest.approx(
            r["energy_per_training_sample_j"] * res["data"]["n_train"])
    # a finer ADC costs more per conversion (Walden scaling)
    assert (rows["mlp-ideal-adc8"]["inference_breakdown_per_sample_j"]["converters"]
            > rows["mlp-ideal-adc4"]["inference_breakdown_per_sample_j"]["converters"])
    # sampling energy grows with the number of samples; no converters in the DBN
    s1, s3 = rows["dbn-sampling-1"], rows["dbn-sampling-3"]
    assert s3["energy_per_inference_j"] == pytest.approx(3 * s1["energy_per_inference_j"])
    assert s1["inference_breakdown_per_sample_j"]["converters"] == 0
    assert rows["dbn-freeze"]["energy_per_inference_j"] is None
    # the finished run's own numbers: its accuracy, its training energy per image
    saved = json.loads(HEADLINE.read_text())
    reported = rows["dbn-reported-sampling-10"]
    assert reported["accuracy"] == saved["accuracy"]["test"]["sampling"]
    assert reported["energy_per_training_sample_j"] == pytest.approx(
        saved["energy"]["training"]["total_j"] / saved["dataset"]["n_train"])
    assert reported["energy_per_inference_j"] == pytest.approx(10 * s1["energy_per_inference_j"])
    assert (out / "table.md").read_text().count("| adc-mlp |") == 2
    assert (out / "accuracy_vs_energy.png").stat().st_size > 0
    # a rerun resumes from the checkpoints: same numbers
    assert main(argv) == 0
    again = json.loads((out / "results.json").read_text())
    assert [r["accuracy"] for r in again["rows"]] == [r["accuracy"] for r in res["rows"]]
    # rows of earlier runs merge into one table and figure
    merged = tmp_path / "merged"
    assert main(["--dataset", "digits", "--devices", "--no-float", "--out", str(merged),
                 "--include", str(out / "results.json")]) == 0
    rows = json.loads((merged / "results.json").read_text())["rows"]
    assert [r["name"] for r in rows] == names
    assert all(r["data"]["n_train"] == res["data"]["n_train"] for r in rows)


@pytest.mark.parametrize("bad, word", [
    (["--devices", "unobtainium"], "--devices"),
    (["--adc-bits", "0"], "--adc-bits"),
    (["--mlp-param", "learning_rate=-1"], "learning_rate"),
    (["--dbn-model", "missing.npz"], "--dbn-model"),
    (["--dataset", "no/such/place"], "--dataset"),
    (["--include", "missing.json"], "--include"),
])
def test_bad_arguments_exit_2_and_create_nothing(bad, word, tmp_path, capsys):
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:
        main(["--dataset", "digits", "--out", str(out), *bad] if "--dataset" not in bad
             else ["--out", str(out), *bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert word in err and len(err.splitlines()) == 1
    assert not out.exists()
