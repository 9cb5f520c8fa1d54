"""Experiments: the models a config trains, the runs that train them, and their checks.

An experiment is a model trained on its regions' training tiles with the global ``train``
section deep-merged with the experiment's own ``train`` overrides; with ``seeds`` it is
trained once per seed, each a run named ``<experiment>/seed<n>`` (without, one run named
after the experiment).  Several experiments over the same regions are an ablation: each
region's report compares them with its reference (``evaluation.reference``, by default the
first experiment over the region).  A region named in no experiment trains its own model,
named after the region.  Shared: imports the config module only.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from collections.abc import Mapping
from typing import Any

from cloudfree.config import base_region, canonical, schema
from cloudfree.errors import ConfigError

# A run's name, as the workflow's ``experiment`` wildcard matches it.
RUN_PATTERN = r"[A-Za-z][A-Za-z0-9_]*(?:/seed[0-9]+)?"
_RUN = re.compile(r"^(?P<experiment>[A-Za-z][A-Za-z0-9_]*)(?:/seed(?P<seed>[0-9]+))?$")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override``'s keys over it; mappings merged key by key, anything else
    (lists included) replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _configured(config: Mapping[str, Any]) -> Mapping[str, Any]:
    return config.get("experiments") or {}


def experiment_names(config: Mapping[str, Any]) -> list[str]:
    """Every experiment: the configured ones in the config's order, then the regions named
    in none (sorted), each its own."""
    exps = _configured(config)
    covered = {r for exp in exps.values() for r in exp["regions"]}
    return list(exps) + sorted(r for r in config["regions"] if r not in covered)


def experiment_of_run(run: str) -> str:
    """The experiment a run (``<experiment>`` or ``<experiment>/seed<n>``) belongs to."""
    match = _RUN.match(run)
    if match is None:
        raise ConfigError(f"{run!r} is not a run name (<experiment> or <experiment>/seed<n>)")
    return match["experiment"]


def experiment_regions(config: Mapping[str, Any], experiment: str) -> list[str]:
    """Regions whose training tiles train an experiment's (or a run's) model, sorted."""
    name = experiment_of_run(experiment)
    exps = _configured(config)
    if name in exps:
        return sorted(exps[name]["regions"])
    if name in experiment_names(config):
        return [name]
    raise ConfigError(f"unknown experiment {experiment!r}")


def experiments_of(config: Mapping[str, Any], region: str) -> list[str]:
    """The experiments whose models reconstruct a region (an evaluation scene: its
    region's), in the config's order."""
    region = base_region(config, region)
    names = [n for n, exp in _configured(config).items() if region in exp["regions"]]
    return names or [region]


def runs(config: Mapping[str, Any], experiment: str) -> list[str]:
    """The runs of an experiment: one per seed, or the experiment itself without seeds."""
    seeds = _configured(config).get(experiment, {}).get("seeds")
    if not seeds:
        return [experiment]
    return [f"{experiment}/seed{seed}" for seed in seeds]


def region_runs(config: Mapping[str, Any], region: str) -> dict[str, str]:
    """Run -> experiment, for every run that reconstructs a region (config order)."""
    return {run: exp for exp in experiments_of(config, region) for run in runs(config, exp)}


def run_train(config: Mapping[str, Any], run: str) -> dict[str, Any]:
    """The train section a run trains with: the global one, the experiment's overrides deep-
    merged over it, and the run's seed (``train.seed``) when the experiment has seeds."""
    match = _RUN.match(run)
    if match is None:
        raise ConfigError(f"{run!r} is not a run name (<experiment> or <experiment>/seed<n>)")
    exp = _configured(config).get(match["experiment"], {})
    train = deep_merge(config["train"], exp.get("train") or {})
    if match["seed"] is not None:
        train["seed"] = int(match["seed"])
    return train


def reference_of(config: Mapping[str, Any], region: str) -> str:
    """The experiment a region's report compares the others with: ``evaluation.reference``
    (one name, or region -> name) where it reconstructs the region, else the first
    experiment over it."""
    region = base_region(config, region)
    over = experiments_of(config, region)
    reference = config.get("evaluation", {}).get("reference")
    if isinstance(reference, Mapping):
        reference = reference.get(region)
    return reference if reference in over else over[0]


def mosaic_runs(config: Mapping[str, Any], region: str) -> list[str]:
    """The runs whose region mosaics the workflow makes: the first run of each experiment
    of ``mosaic.experiments`` over the region (default: its reference)."""
    named = config.get("mosaic", {}).get("experiments")
    over = experiments_of(config, region)
    if named is None:
        return [runs(config, reference_of(config, region))[0]]
    return [runs(config, e)[0] for e in named if e in over]


def training_partners(config: Mapping[str, Any], region: str) -> list[str]:
    """The other regions any model of a region also trains on (sorted): an evaluation
    scene of the region takes none of their dates either."""
    return sorted(
        {r for exp in experiments_of(config, region) for r in experiment_regions(config, exp)}
        - {region}
    )


def check_experiments(config: Mapping[str, Any]) -> None:
    """The experiments of a config validated against the schema: regions known, names not
    clashing with regions, overrides valid train keys, references and mosaic experiments
    known.  Raises ConfigError naming the key; warns about experiments with identical
    settings (same regions, same runs' settings)."""
    regions = config["regions"]
    exps = _configured(config)
    for name, exp in exps.items():
        if name in regions and exp["regions"] != [name]:
            raise ConfigError(f"experiments.{name}: name clashes with region {name!r}")
        for region in exp["regions"]:
            if region not in regions:
                raise ConfigError(
                    f"experiments.{name}.regions: unknown region {region!r}; "
                    f"known regions: {', '.join(sorted(regions))}"
                )
        _check_override(name, config["train"], exp.get("train") or {})
    _check_reference(config)
    named = config.get("mosaic", {}).get("experiments") or []
    for i, name in enumerate(named):
        if name not in experiment_names(config):
            raise ConfigError(
                f"mosaic.experiments[{i}]: {name!r} is not an experiment; "
                f"experiments: {', '.join(experiment_names(config))}"
            )
    _warn_identical(config)


def _check_override(name: str, train: Mapping[str, Any], override: Mapping[str, Any]) -> None:
    """The train section an override makes is valid by the train section's schema."""
    import jsonschema  # a dependency of snakemake; only needed for experiments' overrides

    validator = jsonschema.Draft202012Validator(schema()["properties"]["train"])
    error = jsonschema.exceptions.best_match(validator.iter_errors(deep_merge(train, override)))
    if error is not None:
        path = ".".join(str(p) for p in error.absolute_path)
        key = f"experiments.{name}.train" + (f".{path}" if path else "")
        raise ConfigError(f"{key}: {error.message} (see train in docs/config.md)")


def _check_reference(config: Mapping[str, Any]) -> None:
    """``evaluation.reference`` names experiments, each over the regions it is named for
    (one name: over at least one region)."""
    reference = config.get("evaluation", {}).get("reference")
    if reference is None:
        return
    names = experiment_names(config)
    if isinstance(reference, Mapping):
        pairs = [(f"evaluation.reference.{r}", name, [r]) for r, name in reference.items()]
    else:
        pairs = [("evaluation.reference", reference, list(config["regions"]))]
    for key, name, regions in pairs:
        unknown = [r for r in regions if r not in config["regions"]]
        if unknown:
            raise ConfigError(f"{key}: unknown region {unknown[0]!r}")
        if name not in names:
            raise ConfigError(
                f"{key}: {name!r} is not an experiment; experiments: {', '.join(names)}"
            )
        if not any(name in experiments_of(config, r) for r in regions):
            raise ConfigError(
                f"{key}: experiment {name!r} does not reconstruct "
                + (f"region {regions[0]!r}" if len(regions) == 1 else "any region")
            )


def _warn_identical(config: Mapping[str, Any]) -> None:
    seen: dict[str, str] = {}
    for name in _configured(config):
        settings = {
            "regions": experiment_regions(config, name),
            "runs": [canonical(run_train(config, run)) for run in runs(config, name)],
        }
        key = json.dumps(settings, sort_keys=True, default=repr)
        if key in seen:
            warnings.warn(
                f"experiments.{seen[key]} and experiments.{name} have identical settings "
                "(regions, train section and seeds): they train the same model twice",
                UserWarning,
                stacklevel=2,
            )
        else:
            seen[key] = name
