"""The config: validated against the schema (the one place defaults and allowed values are
written), the cross-key checks a JSON schema cannot express that need no stage's code, and
lookups on it.  Shared: below every stage, it imports none.

A config file is read strictly by :func:`cloudfree.configfile.load_config_file`.  The workflow
checks its config with :func:`cloudfree.preflight.check_workflow_config` in
``workflow/rules/common.smk``, before the first job: :func:`validate_config` here (names, the
schema with its defaults, :func:`check_config`), then the values only a stage's own code can
check.  Library entry points used outside Snakemake (the command line, the benchmarks, the
tests) get their settings from :func:`resolve_config`, :func:`section` or
:func:`source_settings`, which apply the same schema and checks.  Rules get their settings
through :func:`canonical`, so a config whose keys are only reordered reruns nothing.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from cloudfree.configfile import load_config_file
from cloudfree.errors import ConfigError
from cloudfree.names import check_date, check_name

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
# Sections of a config that are not regions; each has a default in the schema.
SECTIONS = (
    "experiments", "clouds", "pack", "evaluation", "train", "infer", "mosaic", "metrics",
    "tracking",
)  # fmt: skip


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys in sorted order, recursively (lists and tuples keep
    their order): the form params reach Snakemake in, which compares them as text."""
    if isinstance(value, Mapping):
        items = [(k, canonical(v)) for k, v in value.items()]
        try:
            items.sort(key=lambda kv: kv[0])
        except TypeError:  # keys of several types
            items.sort(key=lambda kv: (type(kv[0]).__name__, repr(kv[0])))
        return dict(items)
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, tuple):
        return tuple(canonical(v) for v in value)
    return value


@cache
def schema() -> dict[str, Any]:
    """The config schema (YAML), read once."""
    if not SCHEMA.is_file():
        raise ConfigError(f"config schema {SCHEMA} not found: run cloudfree from its checkout")
    return load_config_file(SCHEMA)


def resolve_config(config: Mapping[str, Any], *, whole: bool = True) -> dict[str, Any]:
    """A whole config validated against the schema, every default filled in, the cross-key
    checks done (:func:`check_config`; ``whole``: as there).  Raises ConfigError.  The checks
    by the stages' own code are :func:`cloudfree.preflight.resolve_workflow_config`'s."""
    key = json.dumps(config, sort_keys=True, default=repr) + f"|{whole}"
    return copy.deepcopy(_resolved(key, copy.deepcopy(dict(config)), whole))


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
    hint = ""
    if error.validator == "required" and not error.absolute_path:
        hint = "; a file holding only the keys it changes needs `base: default` at its top"
    return f"{key}: {error.message}{hint} (see docs/config.md)"


def validate_config(config: dict[str, Any], *, whole: bool = True) -> None:
    """Validate ``config`` in place: its region and experiment names, the schema (filling
    in every default), then :func:`check_config`.  Raises ConfigError naming the key."""
    from snakemake.exceptions import WorkflowError  # snakemake's import is slow: on use
    from snakemake.utils import validate

    check_names(config)  # before the schema, whose patterns let a trailing newline through
    try:
        validate(config, str(SCHEMA), set_default=True)
    except WorkflowError:
        raise ConfigError(schema_error(config)) from None
    check_config(config, whole=whole)


def _resolved(key: str, cfg: dict[str, Any], whole: bool) -> dict[str, Any]:
    """Validation is slow (the schema is read and compiled each time): each distinct config
    is resolved once per process."""
    if key not in _RESOLVED:
        validate_config(cfg, whole=whole)
        _RESOLVED[key] = cfg
    return _RESOLVED[key]


def section(name: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One section (``train``, ``infer``, ``mosaic``, ...) with the schema's defaults filled in
    under ``values``."""
    if name not in SECTIONS:
        raise ConfigError(f"unknown config section {name!r}; known: {', '.join(SECTIONS)}")
    region = {"source": "synthetic", "synthetic": {}}
    cfg = {"regions": {"r": region}, name: copy.deepcopy(dict(values or {}))}
    return resolve_config(cfg, whole=False)[name]


def source_settings(source: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A region's source section (``synthetic``, ``folder``, ``stac``, ``sen12mscrts``) with
    the schema's defaults filled in under ``values``."""
    region = {"source": source, source: copy.deepcopy(dict(values or {}))}
    return resolve_config({"regions": {"r": region}}, whole=False)["regions"]["r"][source]


# How a job runs, not what it makes: these keys reach their rule outside ``params:``, so a
# change reruns nothing (training samples depend only on the step, never on the workers;
# inference gives the same pixels for any batch size).
EXECUTION_KEYS: dict[str, tuple[str, ...]] = {
    "train": ("num_workers", "checkpoint_every", "tensorboard", "compile"),
    "infer": ("batch_size",),
}


# The same for a region's source section: how its files are fetched.
SOURCE_EXECUTION_KEYS = (
    "retries", "backoff", "timeout", "token_env", "token_hosts", "asset_hosts", "max_pages",
    "sign_key_env",
)  # fmt: skip


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
                   "_inductive", "_experiments")  # fmt: skip
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


def check_names(config: Mapping[str, Any]) -> None:
    """Region and experiment names are names that may become paths
    (:func:`cloudfree.names.check_name`: a trailing newline, which the schema's ``$`` lets
    through, or over 128 characters is refused)."""
    for key, what in (("regions", "region"), ("experiments", "experiment")):
        names = config.get(key)
        if isinstance(names, Mapping):
            for name in names:
                check_name(name, what, key, ConfigError)


def check_config(config: Mapping[str, Any], *, whole: bool = True) -> None:
    """Cross-key checks of a config validated against the schema that need no stage's code;
    each error names the key.  The stages' own checks of a whole config (mosaic settings,
    embedding channels, the training crop, source sections) are
    :func:`cloudfree.preflight.check_workflow_config`'s.

    ``whole``: the config is a run's, so change-map dates are checked against its regions'
    dates.  A section resolved on its own (:func:`section`) has a placeholder region beside it
    that says nothing: ``whole=False``."""
    check_names(config)
    regions = config["regions"]
    # Output names of one region that another region's name could take.
    reserved = {"all_regions", "all_experiments"} | {
        f"{name}{suffix}" for name in regions for suffix in REGION_SUFFIXES
    }
    for name in regions:
        if name in reserved:
            raise ConfigError(
                f"regions.{name}: the name collides with an output of the workflow "
                "(all_regions, all_experiments, or another region's name + one of "
                f"{', '.join(REGION_SUFFIXES)})"
            )
    for name, region in regions.items():
        spec = region.get(region["source"])
        if spec is None:
            raise ConfigError(f"regions.{name}.{region['source']}: section missing for its source")
        if region["source"] == "synthetic" and spec["overlap"] >= spec["tile_size"]:
            raise ConfigError(f"regions.{name}.synthetic.overlap must be below tile_size")
        _check_region_dates(name, region["source"], spec)
    if "evaluation" in config:
        _check_period(config["evaluation"].get("holdout_period"), "evaluation.holdout_period")
    if "infer" in config:
        _check_change_pairs(config["infer"], date_spans(config) if whole else {})
    if "mosaic" in config:
        composite = config["mosaic"]["composite"]
        for key in ("start", "end", "target"):
            if composite.get(key) is not None:
                check_date(composite[key], f"mosaic.composite.{key}", ConfigError)


def _check_region_dates(name: str, source: str, spec: Mapping[str, Any]) -> None:
    """The dates of a region's source section are calendar dates, the period in order."""
    if source in ("synthetic", "stac"):
        _check_period(spec, f"regions.{name}.{source}")
    for i, day in enumerate(spec.get("exclude_dates") or ()):
        check_date(day, f"regions.{name}.{source}.exclude_dates[{i}]", ConfigError)


def _check_period(period: Mapping[str, Any] | None, key: str) -> None:
    """``period``'s ``start`` and ``end`` (when given) are calendar dates, in that order."""
    if period is None:
        return
    days = {
        k: check_date(period[k], f"{key}.{k}", ConfigError)
        for k in ("start", "end")
        if period.get(k) is not None
    }
    if len(days) == 2 and days["end"] < days["start"]:
        raise ConfigError(f"{key}.end: {days['end']} is before {key}.start {days['start']}")


def date_spans(config: Mapping[str, Any]) -> dict[str, tuple[dt.date, dt.date, str]]:
    """Region -> (first, last possible date, the keys saying so) for the regions whose
    dates the config fixes (synthetic and STAC regions; a folder's or a dataset's are known
    only once read)."""
    spans = {}
    for name, region in config["regions"].items():
        source = region["source"]
        spec = region.get(source) or {}
        if source in ("synthetic", "stac") and spec.get("start") and spec.get("end"):
            first = dt.date.fromisoformat(check_date(spec["start"], name, ConfigError))
            last = dt.date.fromisoformat(check_date(spec["end"], name, ConfigError))
            spans[name] = (first, last, f"regions.{name}.{source}.start and end")
    return spans


def _check_change_pairs(
    infer: Mapping[str, Any], spans: Mapping[str, tuple[dt.date, dt.date, str]]
) -> None:
    """Change-map dates: calendar dates, each pair in order and within the years of every
    region's dates in ``spans`` (a pair no tile has gives no map)."""
    for i, pair in enumerate(infer["change"]["pairs"]):
        key = f"infer.change.pairs[{i}]"
        earlier, later = (check_date(d, key, ConfigError) for d in pair)
        if later <= earlier:
            raise ConfigError(f"{key}: [{earlier}, {later}] is not [earlier, later]")
        for region, (first, last, where) in sorted(spans.items()):
            day = next(
                (d for d in (earlier, later) if not first.year <= int(d[:4]) <= last.year), None
            )
            if day is not None:
                raise ConfigError(
                    f"{key}: {day} is outside the years of region {region}'s dates, "
                    f"{first} to {last} ({where}); no tile has it"
                )
