"""The config: validated against the schema (the one place defaults and allowed values are
written), cross-key checks a JSON schema cannot express, and lookups on it.

The workflow validates its config in ``workflow/rules/common.smk``; library entry points used
outside Snakemake (the command line, the benchmarks, the tests) get their settings from
:func:`resolve_config`, :func:`section` or :func:`source_settings`, which apply the same schema
with the same validator.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from cloudfree.errors import ConfigError

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
# Sections of a config that are not regions; each has a default in the schema.
SECTIONS = ("experiments", "clouds", "pack", "evaluation", "train", "infer", "mosaic", "metrics")


@cache
def schema() -> dict[str, Any]:
    """The config schema (YAML), read once."""
    if not SCHEMA.is_file():
        raise ConfigError(f"config schema {SCHEMA} not found: run cloudfree from its checkout")
    return yaml.safe_load(SCHEMA.read_text())


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A whole config as the workflow sees it: validated against the schema, every default
    filled in, cross-key checks done (:func:`check_config`).  Raises ConfigError."""
    key = json.dumps(config, sort_keys=True, default=repr)
    return copy.deepcopy(_resolved(key, copy.deepcopy(dict(config))))


_RESOLVED: dict[str, dict[str, Any]] = {}


def schema_error(config: Mapping[str, Any]) -> str:
    """The first thing wrong with a config, as ``<dotted key>: <what is wrong>``."""
    import jsonschema  # a dependency of snakemake; only needed when a config is wrong

    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema()).iter_errors(config)
    )
    if error is None:
        return "invalid config (see the schema in workflow/schemas/config.schema.yaml)"
    key = ".".join(str(p) for p in error.absolute_path) or "config"
    return f"{key}: {error.message} (see docs/config.md)"


def _resolved(key: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Validation is slow (the schema is read and compiled each time): each distinct config
    is resolved once per process."""
    if key not in _RESOLVED:
        from snakemake.exceptions import WorkflowError  # snakemake's import is slow: on use
        from snakemake.utils import validate

        try:
            validate(cfg, str(SCHEMA), set_default=True)
        except WorkflowError:
            raise ConfigError(schema_error(cfg)) from None
        check_config(cfg)
        _RESOLVED[key] = cfg
    return _RESOLVED[key]


def section(name: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One section (``train``, ``infer``, ``mosaic``, ...) with the schema's defaults filled in
    under ``values``."""
    if name not in SECTIONS:
        raise ConfigError(f"unknown config section {name!r}; known: {', '.join(SECTIONS)}")
    region = {"source": "synthetic", "synthetic": {}}
    cfg = {"regions": {"r": region}, name: copy.deepcopy(dict(values or {}))}
    return resolve_config(cfg)[name]


def source_settings(source: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A region's source section (``synthetic``, ``folder``, ``stac``, ``sen12mscrts``) with
    the schema's defaults filled in under ``values``."""
    region = {"source": source, source: copy.deepcopy(dict(values or {}))}
    return resolve_config({"regions": {"r": region}})["regions"]["r"][source]


# How a job runs, not what it makes: these keys reach their rule outside ``params:``, so a
# change reruns nothing (training samples depend only on the step, never on the workers;
# inference gives the same pixels for any batch size).
EXECUTION_KEYS: dict[str, tuple[str, ...]] = {
    "train": ("num_workers", "checkpoint_every", "tensorboard", "compile"),
    "infer": ("batch_size",),
}


# The same for a region's source section: how its files are fetched.
SOURCE_EXECUTION_KEYS = ("retries", "backoff", "timeout", "token_env")


def region_result_settings(config: Mapping[str, Any], region: str) -> dict[str, Any]:
    """A region's config without the fetching keys of its source section."""
    cfg = dict(config["regions"][region])
    source = cfg.get("source")
    if isinstance(cfg.get(source), Mapping):
        cfg[source] = {k: v for k, v in cfg[source].items() if k not in SOURCE_EXECUTION_KEYS}
    return cfg


def with_region_execution_settings(
    params: Mapping[str, Any], config: Mapping[str, Any], region: str
) -> dict[str, Any]:
    """A region's ``params`` (:func:`region_result_settings`) with the fetching keys back
    (an evaluation scene, not in the config, has none)."""
    full = config["regions"].get(region, {})
    cfg = dict(params)
    source = cfg.get("source")
    if isinstance(cfg.get(source), Mapping) and isinstance(full.get(source), Mapping):
        extra = {k: full[source][k] for k in SOURCE_EXECUTION_KEYS if k in full[source]}
        cfg[source] = {**cfg[source], **extra}
    return cfg


def result_settings(config: Mapping[str, Any], section: str) -> dict[str, Any]:
    """A config section without its execution keys (what the rule's outputs depend on)."""
    skip = EXECUTION_KEYS.get(section, ())
    return {k: v for k, v in config[section].items() if k not in skip}


def with_execution_settings(
    params: Mapping[str, Any], config: Mapping[str, Any], section: str
) -> dict[str, Any]:
    """``params`` (from :func:`result_settings`) with the section's execution keys back."""
    section_cfg = config.get(section, {})
    extra = {k: section_cfg[k] for k in EXECUTION_KEYS.get(section, ()) if k in section_cfg}
    return {**params, **extra}


# Suffixes the workflow appends to a region's name in its output file names.
REGION_SUFFIXES = ("_runs", "_tiles", "_summary", "_dates", "_coverage", "_clear_dates",
                   "_quicklook", "_examples", "_difficulty", "_mae", "_pooled",
                   "_inductive")  # fmt: skip
# The evaluation scene of a synthetic region <r> is the region <r>_inductive of the file names.
INDUCTIVE_SUFFIX = "_inductive"


def inductive_regions(config: Mapping[str, Any]) -> dict[str, str]:
    """Evaluation scene -> the synthetic region whose inductive set it is (none when
    ``evaluation.inductive.enabled`` is false)."""
    if not config["evaluation"]["inductive"]["enabled"]:
        return {}
    return {
        f"{name}{INDUCTIVE_SUFFIX}": name
        for name, region in sorted(config["regions"].items())
        if region["source"] == "synthetic"
    }


def base_region(config: Mapping[str, Any], region: str) -> str:
    """The configured region behind a region name of the workflow (itself, or the region an
    evaluation scene evaluates)."""
    return inductive_regions(config).get(region, region)


def check_config(config: Mapping[str, Any]) -> None:
    """Cross-key checks; each error names the key."""
    regions = config["regions"]
    seen: dict[str, str] = {}
    for name, exp in config.get("experiments", {}).items():
        if name in regions and exp["regions"] != [name]:
            raise ConfigError(f"experiments.{name}: name clashes with region {name!r}")
        for region in exp["regions"]:
            if region not in regions:
                raise ConfigError(
                    f"experiments.{name}.regions: unknown region {region!r}; "
                    f"known regions: {', '.join(sorted(regions))}"
                )
            if region in seen:
                raise ConfigError(
                    f"experiments.{name}.regions: region {region!r} is already in "
                    f"experiments.{seen[region]}"
                )
            seen[region] = name
    # Output names of one region that another region's name could take.
    reserved = {"all_regions"} | {
        f"{name}{suffix}" for name in regions for suffix in REGION_SUFFIXES
    }
    for name in regions:
        if name in reserved:
            raise ConfigError(
                f"regions.{name}: the name collides with an output of the workflow "
                f"(all_regions, or another region's name + one of {', '.join(REGION_SUFFIXES)})"
            )
    for name, region in regions.items():
        spec = region.get(region["source"])
        if spec is None:
            raise ConfigError(f"regions.{name}.{region['source']}: section missing for its source")
        if region["source"] == "synthetic" and spec["overlap"] >= spec["tile_size"]:
            raise ConfigError(f"regions.{name}.synthetic.overlap must be below tile_size")


def experiment_of(config: Mapping[str, Any], region: str) -> str:
    """The experiment (model) that reconstructs a region (an evaluation scene: its region's)."""
    region = base_region(config, region)
    for name, exp in config.get("experiments", {}).items():
        if region in exp["regions"]:
            return name
    return region


def experiment_regions(config: Mapping[str, Any], experiment: str) -> list[str]:
    """Regions whose training tiles train an experiment's model."""
    exps = config.get("experiments", {})
    if experiment in exps:
        return sorted(exps[experiment]["regions"])
    if experiment in config["regions"] and experiment_of(config, experiment) == experiment:
        return [experiment]
    raise ConfigError(f"unknown experiment {experiment!r}")
