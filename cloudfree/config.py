"""Checks on the validated config that a JSON schema cannot express, and lookups on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

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
    """A region's ``params`` (:func:`region_result_settings`) with the fetching keys back."""
    full = config["regions"][region]
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
                   "_quicklook", "_examples", "_difficulty", "_mae")  # fmt: skip


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
    """The experiment (model) that reconstructs a region."""
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
