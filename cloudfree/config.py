"""Checks on the validated config that a JSON schema cannot express, and lookups on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ConfigError


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
