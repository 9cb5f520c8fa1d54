"""Checks of ``mosaic`` settings for callers outside Snakemake (the command line, the tests,
the benchmarks): the allowed values are the schema's, read from it."""

from __future__ import annotations

from typing import Any

from cloudfree.config import schema
from cloudfree.errors import ConfigError


def allowed(key: str) -> list[Any]:
    """The schema's allowed values of ``mosaic.<key>`` (``key`` dotted: ``composite.rule``)."""
    spec = schema()["properties"]["mosaic"]
    for part in key.split("."):
        spec = spec["properties"][part]
    return list(spec["enum"])


def check_setting(key: str, value: Any) -> None:
    """Raise ConfigError naming ``mosaic.<key>`` unless ``value`` is one the schema allows."""
    choices = allowed(key)
    if value not in choices:
        raise ConfigError(f"mosaic.{key}: {value!r} is not one of {', '.join(map(str, choices))}")
