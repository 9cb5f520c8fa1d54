"""Checks of ``mosaic`` settings: the allowed values are the schema's, read from it, and a
compression level is one its codec takes.

The mosaic functions check the settings they take; a whole section is checked before the first
job by :func:`cloudfree.mosaic.check.check_mosaic`.
"""

from __future__ import annotations

from typing import Any

from cloudfree.config import schema
from cloudfree.errors import ConfigError

# Levels each compression takes (GDAL's DEFLATE, through libdeflate, and ZSTD).
LEVELS = {"deflate": (1, 12), "zstd": (1, 22)}


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


def check_level(compress: str, level: int | None) -> None:
    """Raise ConfigError naming ``mosaic.compress_level`` unless ``level`` is one
    ``compress`` takes (or None, GDAL's default)."""
    if level is None:
        return
    if compress not in LEVELS:
        raise ConfigError(
            f"mosaic.compress_level: {compress} takes no level (mosaic.compress); set it to null"
        )
    low, high = LEVELS[compress]
    if not low <= level <= high:
        raise ConfigError(
            f"mosaic.compress_level: {level} is outside {compress}'s levels {low} to {high}"
        )
