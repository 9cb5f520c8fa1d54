"""Every value of a whole config checked by the stages' own code before the first job.

:func:`cloudfree.config.validate_config` applies the schema and the cross-key checks that need
no stage; what only a stage's code can say is checked here, on a whole run's config: the
mosaic section as rule mosaic reads it (:func:`cloudfree.mosaic.check.check_mosaic`, against
the regions' dates), the embedding channels against the width of the network
``train.model`` names, the train section (:func:`cloudfree.train.params.check_params`) and its
crop against each region's tiles, and each region's source section built as its rule builds
it.  The workflow calls :func:`check_workflow_config` on its config in
``workflow/rules/common.smk``; callers outside Snakemake (the benchmarks, the tests) use
:func:`resolve_workflow_config`.  An entry point above the stages: it imports them all
(torch, through the model registry, included).
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from cloudfree.config import date_spans, resolve_config, schema, validate_config
from cloudfree.errors import ConfigError
from cloudfree.experiments import (
    check_experiments,
    experiment_names,
    experiment_regions,
    run_train,
    runs,
)
from cloudfree.models.presets import PRESET_WIDTHS
from cloudfree.mosaic.check import check_mosaic
from cloudfree.tiles.folder import FolderSpec
from cloudfree.tiles.sen12mscrts import PATCH_PX, Sen12mscrtsSpec
from cloudfree.tiles.stac import StacSpec
from cloudfree.tiles.synthetic.spec import SyntheticSpec
from cloudfree.train.params import check_params
from cloudfree.train.tracking import MISSING, tracking_uri

# The settings builder each source's rule runs on its section.
SOURCE_SPECS: dict[str, Callable[..., Any]] = {
    "synthetic": SyntheticSpec.from_dict,
    "folder": FolderSpec.from_dict,
    "stac": StacSpec.from_dict,
    "sen12mscrts": Sen12mscrtsSpec.from_dict,
}


def check_workflow_config(config: dict[str, Any]) -> None:
    """Validate a whole config in place as the workflow does before its first job: names,
    the schema (filling in every default) and the cross-key checks
    (:func:`cloudfree.config.validate_config`), then the stages' checks.  Raises ConfigError
    naming the key."""
    validate_config(config)
    _check_stages(config)


def resolve_workflow_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A whole config as the workflow sees it (:func:`cloudfree.config.resolve_config`),
    checked by the stages too.  Raises ConfigError naming the key."""
    resolved = resolve_config(config)
    _check_stages(resolved)
    return resolved


def _check_stages(config: Mapping[str, Any]) -> None:
    """The checks of a resolved whole config that need a stage's code."""
    check_experiments(config)
    uri = config.get("tracking", {}).get("mlflow")
    if uri is not None:
        tracking_uri(uri)
        if importlib.util.find_spec("mlflow") is None:
            raise ConfigError(MISSING)
    if "mosaic" in config:
        check_mosaic(config["mosaic"], date_spans(config))
    for name, region in config["regions"].items():
        _check_source(name, region["source"], region[region["source"]])
    if "train" not in config:
        return
    for experiment in experiment_names(config):
        # each experiment's own train section (the global one where it overrides nothing)
        where = "train" if experiment not in config["experiments"] else (
            f"experiments.{experiment}.train"
        )  # fmt: skip
        train = run_train(config, runs(config, experiment)[0])
        regions = {r: config["regions"][r] for r in experiment_regions(config, experiment)}
        try:
            if "infer" in config:
                _check_embeddings(config["infer"], train["model"])
            _check_train({"train": train, "regions": regions})
            _check_inputs(train, regions)
        except ConfigError as exc:
            if where == "train":
                raise
            raise ConfigError(str(exc).replace("train.", f"{where}.")) from None


def is_baseline(name: str) -> bool:
    """Whether ``train.model.name`` is a baseline (the ones ``metrics.baselines`` lists):
    nothing to train, no embedding."""
    return name in schema()["properties"]["metrics"]["properties"]["baselines"]["items"]["enum"]


def embedding_width(model: Mapping[str, Any]) -> int | None:
    """Channels of the encoder embedding of the network ``train.model`` names (its last
    width, as :attr:`cloudfree.infer.predictor.Predictor.embedding_size` reads it); None for
    a baseline, which has none."""
    if is_baseline(model["name"]):
        return None
    if model["name"] == "utilise":
        return int(model["widths"][-1])
    return int(PRESET_WIDTHS.get(model["name"], model["widths"])[-1])


def _check_embeddings(infer: Mapping[str, Any], model: Mapping[str, Any] | None) -> None:
    """With the run's ``train.model``: embeddings or change maps need an encoder embedding,
    and the embedding channels written are within its width."""
    products = [k for k in ("embeddings", "change") if infer[k]["enabled"]]
    if model is None or not products:
        return
    width = embedding_width(model)
    if width is None:
        raise ConfigError(
            f"infer.{products[0]}.enabled: train.model.name {model['name']!r} is a baseline, "
            "without an encoder embedding to write or compare; use utilise or "
            "utilise_reference, or disable it"
        )
    if infer["embeddings"]["enabled"]:
        bad = [c for c in infer["embeddings"]["channels"] if not 0 <= int(c) < width]
        if bad:
            raise ConfigError(
                f"infer.embeddings.channels: {bad} out of range: the embedding of "
                f"train.model {model['name']!r} has {width} channels (0..{width - 1})"
            )


def tile_side(source: str, spec: Mapping[str, Any]) -> int:
    """Side in pixels of a region's tiles, as its source section sets it."""
    if source == "sen12mscrts":
        return int(spec["crop"] or PATCH_PX)
    return int(spec["tile_size"])


def _check_train(config: Mapping[str, Any]) -> None:
    """The train section's own cross-key checks, and its crop against the tiles it trains on."""
    train = config["train"]
    check_params(train)
    sampling = train["sampling"]
    if sampling["seq_len"] is not None and sampling["min_len"] is not None:
        if sampling["min_len"] > sampling["seq_len"]:
            raise ConfigError(
                f"train.sampling.min_len {sampling['min_len']} is above "
                f"train.sampling.seq_len {sampling['seq_len']}"
            )
    if is_baseline(train["model"]["name"]):
        return  # nothing trains: no crop is drawn
    for name, region in config["regions"].items():
        side = tile_side(region["source"], region[region["source"]])
        if train["crop"] > side:
            raise ConfigError(
                f"train.crop {train['crop']} is larger than the {side} px tiles of region "
                f"{name} (regions.{name}.{region['source']})"
            )


# How each source gets Sentinel-1 into its packed files.
S1_KEYS = {"synthetic": "synthetic.s1: true", "sen12mscrts": "sen12mscrts.s1: true",
           "folder": "a folder.s1 glob", "stac": "a stac.s1 section"}  # fmt: skip


def s1_source(source: str, spec: Mapping[str, Any]) -> str | None:
    """The key that gives a region's packed file Sentinel-1, when its source section sets
    it; None when it does not (or the source cannot)."""
    key = "s1" if source in S1_KEYS else None
    return f"{source}.{key}" if key is not None and spec.get(key) else None


def _check_inputs(train: Mapping[str, Any], regions: Mapping[str, Any]) -> None:
    """A model with Sentinel-1 input trains only on regions whose packed files hold S1."""
    if not train.get("inputs", {}).get("s1") or is_baseline(train["model"]["name"]):
        return
    for name, region in regions.items():
        source = region["source"]
        if s1_source(source, region[source]) is None:
            how = S1_KEYS.get(source, "a source with Sentinel-1")
            raise ConfigError(
                f"train.inputs.s1: region {name} has no Sentinel-1 ({source} source); set "
                f"{how} in regions.{name}, or train this model without S1"
            )


def _check_source(name: str, source: str, spec: Mapping[str, Any]) -> None:
    """Build a region's source settings as its rule does (the checks the schema cannot
    express: a CRS, bands, period), with the error naming the region's key."""
    build = SOURCE_SPECS[source]
    where = f"regions.{name}.{source}"
    takes_where = "where" in inspect.signature(build).parameters
    try:
        build(spec, where=where) if takes_where else build(spec)
    except ConfigError as exc:
        text = str(exc)
        if text.startswith("regions."):
            raise
        if text.startswith((f"{source}.", f"{source}:")):
            raise ConfigError(f"regions.{name}.{text}") from None
        raise ConfigError(f"{where}: {text}") from None
