"""Recipes: TOML data keyed by the estimators' own parameters, one source of settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from networks import MemristiveDBN
from networks.dbn import _LabelledRBM
from networks.recipes import RUN_DEFAULTS, available_recipes, load_recipe

OLD = json.loads((Path(__file__).parent / "data" / "old_flag_params.json").read_text())


def _effective_rbm(rbm):
    params = rbm.get_params()
    for key in ("random_state", "verbose"):
        params.pop(key)
    for key in ("stuck_low_rate", "stuck_high_rate"):  # added later; no faults before
        assert params.pop(key) == 0.0
    params["reference_level"] = rbm.reference_level_  # "auto" resolved by the device
    return params


@pytest.mark.parametrize("name", [k for k in OLD if not k.startswith("_")])
def test_recipe_builds_the_network_the_old_flags_built(name):
    """Nobody can rerun MNIST here: the recipe must give the very estimator parameters
    that the README's command gave before (tests/data/old_flag_params.json, written by
    the flag-based script), for the DBN, every lower RBM and the top RBM."""
    old = OLD[name]
    dbn = MemristiveDBN.from_recipe(name)
    params = dbn.get_params()
    for key, value in old["dbn"].items():
        got = params[key]
        assert (list(got) if isinstance(got, tuple) else got) == value, (key, got, value)
    sizes = dbn.hidden_layer_sizes
    for i, layer in enumerate(old["layers"]):
        assert _effective_rbm(dbn._rbm(sizes[i], i, 0)) == layer
    top = dbn._rbm(dbn.n_top, len(sizes), 0, cls=_LabelledRBM, cd_k=dbn.top_cd_k, top=True)
    assert _effective_rbm(top) == old["top"]
    run = load_recipe(name)["run"]
    assert {k: run[k] for k in ("dataset", "final", "threads")} == \
        {k: old["run"][k] for k in ("dataset", "final", "threads")}
    assert run["n_validation"] in (None, old["run"]["n_validation"])
    assert run["binarize"] == "threshold"  # MNIST at 127, digits at 0.5: x > half range


def test_headline_recipe_is_the_readme_headline_command():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "neuromem dbn --recipe yflash-headline" in readme
    assert OLD["yflash-headline"]["argv"].startswith("neuromem dbn --preset paper --final --epochs 5")


def test_every_shipped_recipe_loads_and_describes_itself():
    recipes = available_recipes()
    assert {"default", "wang2022", "yflash-headline", "mtj", "float-reference", "digits"} <= set(recipes)
    for name, recipe in recipes.items():
        assert recipe["description"] and recipe["results"], name
        assert set(recipe["run"]) == set(RUN_DEFAULTS)
        MemristiveDBN.from_recipe(name)._check_params()


def test_extends_overrides_only_what_it_names():
    base, head = load_recipe("wang2022"), load_recipe("yflash-headline")
    assert head["dbn"]["n_top_iter"] == 40 and base["dbn"]["n_top_iter"] == 50
    assert head["dbn"]["rbm_params"] == base["dbn"]["rbm_params"]
    assert load_recipe("mtj")["dbn"] == {**head["dbn"], "neuron": "mtj"}


def test_from_recipe_takes_overrides_and_files(tmp_path):
    dbn = MemristiveDBN.from_recipe("yflash-headline", random_state=4, n_iter=2)
    assert (dbn.random_state, dbn.n_iter, dbn.n_top_iter) == (4, 2, 40)
    path = tmp_path / "mine.toml"
    path.write_text('extends = "digits"\n[dbn]\nn_top = 64\n[dbn.rbm_params]\nweight_range = 6.0\n')
    dbn = MemristiveDBN.from_recipe(path)
    assert dbn.n_top == 64 and dbn.rbm_params == {"reference_level": 0.5, "weight_range": 6.0}
    assert dbn.hidden_layer_sizes == (100,)


@pytest.mark.parametrize("text, message", [
    ('[dbn]\nn_layers = 3\n', "not MemristiveDBN parameters"),
    ('[run]\nepochs = 3\n', "unknown [run] keys"),
    ('colour = "red"\n', "unknown recipe keys"),
    ('extends = "nosuch"\n', "unknown recipe 'nosuch'"),
    ('[dbn\n', "not valid TOML"),
])
def test_bad_recipe_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        load_recipe(path)


def test_a_cycle_of_extends_is_refused(tmp_path, monkeypatch):
    import networks.recipes as recipes

    (tmp_path / "a.toml").write_text('extends = "b"\n')
    (tmp_path / "b.toml").write_text('extends = "a"\n')
    monkeypatch.setattr(recipes, "RECIPE_DIR", tmp_path)
    with pytest.raises(ValueError, match="cycle"):
        load_recipe("a")


def test_recipes_command_lists_them_with_their_results(capsys):
    from neuromem import cli

    assert cli.main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name, recipe in available_recipes().items():
        assert name in out and recipe["results"] in out


def test_data_command_offline_is_one_line(tmp_path, capsys):
    from neuromem import cli

    assert cli.main(["data", "--dir", str(tmp_path), "--url", "http://127.0.0.1:9/"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "could not download" in err
    assert "url=" not in err and not list(tmp_path.iterdir())
