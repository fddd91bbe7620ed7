"""Named training recipes for :class:`networks.MemristiveDBN`, kept as TOML data.

A recipe is one TOML file with

``description``, ``results``
    what it is and what it measured (shown by ``neuromem recipes``);
``extends``
    optional: the name of a recipe this one starts from (its keys override);
``[run]``
    settings of the experiment, not of the network (:data:`RUN_DEFAULTS` lists them:
    data set, validation split, ``final``, how grey levels become binary drive, BLAS
    threads);
``[dbn]``
    keyword arguments of :class:`networks.MemristiveDBN`, under the names of its
    ``get_params()``; ``[dbn.rbm_params]`` and ``[dbn.top_rbm_params]`` hold
    :class:`networks.MemristiveRBM` parameters.

So a new estimator parameter is usable in a recipe (and as a ``neuromem dbn`` flag)
without any change here. The recipes shipped with the package sit next to this file;
:func:`load_recipe` also takes the path of a TOML file, or of a ``results.json``
written by ``neuromem dbn``, which embeds the recipe it ran.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["RUN_DEFAULTS", "RECIPE_DIR", "SNN_RECIPE_DIR", "available_recipes", "load_recipe",
           "recipe_estimator_params", "available_snn_recipes", "load_snn_recipe"]

RECIPE_DIR = Path(__file__).resolve().parent
#: recipes of the Diehl & Cook network (``neuromem snn --recipe``): ``[params]`` holds
#: :class:`networks.stdp.DiehlCookParams` fields
SNN_RECIPE_DIR = RECIPE_DIR / "snn"
#: Keys of a recipe's ``[run]`` table and their values when a recipe leaves them out.
RUN_DEFAULTS = {
    "dataset": "digits",     # mnist, digits, a directory of IDX files, or an .npz file
    "final": False,          # train on training + validation, report the test set
    "n_validation": None,    # count or fraction; None: 10000 for mnist, else 0.2
    "binarize": "threshold",  # "threshold" or "stochastic" (a fresh draw per presentation)
    "threads": 1,            # BLAS threads
}
_TOP_KEYS = {"description", "results", "extends", "run", "dbn"}
#: estimator parameters whose TOML arrays become tuples
_TUPLES = ("hidden_layer_sizes", "top_anneal_epochs")


def available_recipes() -> dict[str, dict]:
    """Every shipped recipe, by name, as :func:`load_recipe` resolves it."""
    return {p.stem: load_recipe(p.stem) for p in sorted(RECIPE_DIR.glob("*.toml"))}


def _read(source, directory: Path | None = None, kind: str = "") -> tuple[dict, str]:
    """The raw table of a recipe name (shipped in ``directory``, default the DBN's) or
    file, and a name for messages. ``kind`` names the family in messages; only the DBN's
    recipes may be a results.json."""
    directory = RECIPE_DIR if directory is None else directory
    text = str(source)
    path = Path(text)
    suffixes = (".toml",) if kind else (".toml", ".json")
    if path.suffix not in suffixes and "/" not in text and "\\" not in text:
        shipped = directory / f"{text}.toml"
        if not shipped.is_file():
            names = ", ".join(p.stem for p in sorted(directory.glob("*.toml")))
            raise ValueError(f"unknown recipe {text!r}; the shipped {kind}recipes are: {names} "
                             + ("(or give the path of a .toml file)" if kind else
                                "(or give the path of a .toml file or of a results.json)"))
        path = shipped
    if not path.is_file():
        raise FileNotFoundError(f"recipe file {path} does not exist")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("recipe"), dict):
                raise ValueError(f"{path} holds no recipe (a results.json of neuromem dbn has one)")
            data = data["recipe"]
        else:
            data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid {path.suffix[1:].upper()}: {exc}") from None
    return data, str(path)


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_recipe(source, *, _seen=()) -> dict:
    """A recipe by name (shipped) or path (TOML, or a ``results.json``), with its
    ``extends`` chain applied. Returns ``{"name", "description", "results", "run", "dbn"}``
    with every ``[run]`` key filled in; raises ValueError naming the bad key."""
    data, where = _read(source)
    unknown = set(data) - _TOP_KEYS - {"name"}
    if unknown:
        raise ValueError(f"{where}: unknown recipe keys {sorted(unknown)}; a recipe holds "
                         f"{sorted(_TOP_KEYS)}")
    for table in ("run", "dbn"):
        if not isinstance(data.get(table, {}), dict):
            raise ValueError(f"{where}: [{table}] must be a table")
    name = Path(str(source)).stem if Path(str(source)).suffix != ".json" else data.get("name", where)
    recipe = {"name": name, "description": "", "results": "", "run": {}, "dbn": {}}
    parent = data.get("extends")
    if parent is not None:
        if parent in _seen or parent == name:
            raise ValueError(f"{where}: recipes extend each other in a cycle ({parent!r})")
        base = load_recipe(parent, _seen=_seen + (name,))
        recipe["run"], recipe["dbn"] = base["run"], base["dbn"]
        recipe["description"], recipe["results"] = base["description"], ""
    recipe["run"] = _merge(recipe["run"], data.get("run", {}))
    recipe["dbn"] = _merge(recipe["dbn"], data.get("dbn", {}))
    recipe["description"] = data.get("description", recipe["description"])
    recipe["results"] = data.get("results", recipe["results"])
    if parent is not None:
        recipe["extends"] = parent
    bad_run = set(recipe["run"]) - set(RUN_DEFAULTS)
    if bad_run:
        raise ValueError(f"{where}: unknown [run] keys {sorted(bad_run)}; choose from "
                         f"{sorted(RUN_DEFAULTS)}")
    recipe["run"] = {**RUN_DEFAULTS, **recipe["run"]}
    from networks import MemristiveDBN

    allowed = set(MemristiveDBN().get_params())
    bad = set(recipe["dbn"]) - allowed
    if bad:
        raise ValueError(f"{where}: [dbn] keys {sorted(bad)} are not MemristiveDBN parameters; "
                         f"choose from {sorted(allowed)}")
    return recipe


def recipe_estimator_params(recipe: dict) -> dict:
    """The ``[dbn]`` table as keyword arguments of :class:`MemristiveDBN` (arrays of
    sizes and epochs as tuples, nested RBM tables as dicts)."""
    params = copy.deepcopy(recipe["dbn"])
    for key in _TUPLES:
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    return params


def available_snn_recipes() -> dict[str, dict]:
    """Every shipped recipe of the spiking network, by name."""
    return {p.stem: load_snn_recipe(p.stem) for p in sorted(SNN_RECIPE_DIR.glob("*.toml"))}


def load_snn_recipe(source) -> dict:
    """A recipe of the Diehl & Cook network by name (shipped) or TOML path:
    ``{"name", "description", "results", "params"}``, where ``params`` are
    :class:`networks.stdp.DiehlCookParams` fields (numbers; checked by building one)."""
    from dataclasses import fields

    from networks.stdp import DiehlCookParams

    data, where = _read(source, SNN_RECIPE_DIR, "spiking-network ")
    path = Path(where)
    unknown = set(data) - {"description", "results", "params"}
    if unknown:
        raise ValueError(f"{path}: unknown recipe keys {sorted(unknown)}; a spiking-network "
                         "recipe holds description, results and [params]")
    params = data.get("params", {})
    known = {f.name for f in fields(DiehlCookParams)}
    if not isinstance(params, dict) or set(params) - known:
        raise ValueError(f"{path}: [params] keys {sorted(set(params) - known)} are not "
                         f"DiehlCookParams fields")
    bad = [k for k, v in params.items()
           if isinstance(v, bool) or not isinstance(v, (int, float))]
    if bad:
        raise ValueError(f"{path}: [params] {bad} must be numbers")
    try:
        DiehlCookParams(**params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    return {"name": path.stem, "description": data.get("description", ""),
            "results": data.get("results", ""), "params": dict(sorted(params.items()))}
