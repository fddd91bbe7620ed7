"""The figure of accuracy per epoch over several runs."""
import json

import pytest

from experiments.plot_epochs import epoch_curve, main


def _run(path, accuracies, **extra):
    history = [{"epoch": i + 1, "accuracy": a} for i, a in enumerate(accuracies)]
    path.write_text(json.dumps({"epochs": history, "eval": "test", **extra}))
    return path


def test_reads_results_and_progress_files(tmp_path):
    results = _run(tmp_path / "results.json", [0.9, 0.95])
    assert epoch_curve(results) == ([1, 2], [90.0, 95.0], "test")
    progress = tmp_path / "progress.json"
    progress.write_text(json.dumps({"settings": {"final": False},
                                    "history": [{"epoch": 1, "accuracy": 0.5}]}))
    assert epoch_curve(progress) == ([1], [50.0], "validation")


def test_draws_a_figure_and_refuses_bad_input(tmp_path, capsys):
    a, b = _run(tmp_path / "a.json", [0.9, 0.8, 0.97]), _run(tmp_path / "b.json", [0.91, 0.96])
    out = tmp_path / "fig.png"
    assert main([str(a), str(b), "--out", str(out), "--label", "before", "--label", "after",
                 "--style", "o--", "--style", "o-", "--reference", "98.6", "--ylim", "85", "100"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit):
        main([str(a), str(b), "--out", str(out), "--label", "only one"])
    assert "labels must give one entry per run: 1 for 2 runs" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "bad.json"), "--out", str(out)])
    assert "bad.json: not a results or progress file" in capsys.readouterr().err
