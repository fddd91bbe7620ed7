"""Tests of the ``neuromem`` command line (neuromem/cli.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neuromem import cli
from neuromem.devices import device_classes

ROOT = Path(__file__).resolve().parents[1]


def test_devices_lists_every_registered_family(capsys):
    assert cli.main(["devices"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ideal") or "\nideal  (" in out
    assert "neuromem.devices.ideal.Ideal" in out
    assert "g_max_s = 1e-06" in out
    for name in device_classes():
        if not name.startswith("_"):
            assert f"{name}  (" in out


def test_devices_json(capsys):
    assert cli.main(["devices", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    by_name = {row["name"]: row for row in table}
    assert by_name["ideal"]["parameters"]["step_s"] == 1e-9
    assert "assumed" in by_name["ideal"]["source"]
    assert set(by_name) == {n for n in device_classes() if not n.startswith("_")}


def test_info(capsys):
    assert cli.main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    import neuromem
    import numba
    import numpy

    assert data["neuromem"] == neuromem.__version__
    assert data["numpy"] == numpy.__version__
    assert data["numba"] == numba.__version__
    assert "brian2" in data
    assert cli.main(["info"]) == 0
    assert "numba" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["bogus"], [], ["devices", "--nope"]])
def test_bad_command_exits_nonzero_with_message(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert "usage: neuromem" in err
    assert "error" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert "neuromem" in capsys.readouterr().out


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("dbn", "stdp", "snn", "devices", "info"):
        assert cmd in out


def test_subcommands_map_to_the_experiment_modules():
    assert {k: v[0] for k, v in cli.EXPERIMENTS.items()} == {
        "dbn": "experiments.mnist_dbn",
        "stdp": "experiments.stdp_song2000",
        "snn": "experiments.mnist_stdp",
        "sweep": "experiments.sweep",
        "faults": "experiments.faults",
        "clone": "experiments.clone",
        "lifetime": "experiments.lifetime",
        "adc": "experiments.adc_comparison",
        "ternary": "experiments.mnist_ternary",
    }


def test_missing_experiment_exits_2_with_clear_message(monkeypatch, capsys):
    monkeypatch.setitem(cli.EXPERIMENTS, "ghost", ("experiments._no_such_experiment", "test"))
    assert cli.main(["ghost", "--epochs", "1"]) == cli.EXIT_MISSING == 2
    err = capsys.readouterr().err
    assert "neuromem ghost" in err
    assert "experiments._no_such_experiment" in err
    assert "not available" in err


def _fake_experiment(monkeypatch, tmp_path, body):
    """A throw-away package ``<unique>.demo`` on sys.path, wired to ``neuromem demo``."""
    name = f"fakeexp_{abs(hash(str(tmp_path)))}"
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "demo.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.EXPERIMENTS, "demo", (f"{name}.demo", "test"))
    return f"{name}.demo"


def test_experiment_gets_the_remaining_arguments(monkeypatch, tmp_path):
    module = _fake_experiment(monkeypatch, tmp_path, (
        "CALLS = []\n"
        "def main(argv):\n"
        "    CALLS.append(argv)\n"
        "    return 3 if '--fail' in argv else None\n"))
    assert cli.main(["demo", "--epochs", "2", "--help"]) == 0
    assert cli.main(["demo", "--fail"]) == 3
    assert sys.modules[module].CALLS == [["--epochs", "2", "--help"], ["--fail"]]


def test_experiment_without_main_exits_2(monkeypatch, tmp_path, capsys):
    _fake_experiment(monkeypatch, tmp_path, "X = 1\n")
    assert cli.main(["demo"]) == 2
    assert "main(argv)" in capsys.readouterr().err


def test_broken_dependency_of_an_experiment_is_not_hidden(monkeypatch, tmp_path):
    _fake_experiment(monkeypatch, tmp_path, "import _neuromem_missing_dependency_xyz\n")
    with pytest.raises(ModuleNotFoundError, match="_neuromem_missing_dependency_xyz"):
        cli.main(["demo"])


def test_experiments_package_found_from_repo_root_when_not_on_path(monkeypatch):
    """A plain checkout where only neuromem is importable still finds experiments/."""
    assert (ROOT / "experiments" / "__init__.py").is_file()
    root = str(ROOT)
    monkeypatch.setattr(sys, "path", [p for p in sys.path
                                      if p not in ("", ".", root) and Path(p or ".").resolve() != ROOT])
    # an editable install maps the package through a meta-path finder: hide it too
    monkeypatch.setattr(sys, "meta_path", [
        f for f in sys.meta_path
        if "editable" not in (getattr(f, "__module__", "") + getattr(f, "__name__", type(f).__name__)).lower()])
    for name in list(sys.modules):
        if name == "experiments" or name.startswith("experiments."):
            monkeypatch.delitem(sys.modules, name)
    mod = cli.import_experiment("experiments")
    assert Path(mod.__file__).resolve().parent == ROOT / "experiments"
    assert root in sys.path


def test_pyproject_installs_experiments_and_declares_the_script():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["neuromem"] == "neuromem.cli:main"
    include = meta["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "experiments*" in include and "neuromem*" in include


def test_python_dash_m_neuromem_runs_in_a_subprocess(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "neuromem", "devices"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ideal" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "neuromem", "nope"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
