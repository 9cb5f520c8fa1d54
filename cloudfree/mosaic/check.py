"""A whole resolved ``mosaic`` section checked as rule mosaic reads it, before the first job
(:func:`cloudfree.preflight.check_workflow_config`): its rules, the values the schema allows,
the compression level, the CRS and the composite's dates go through the code the rule runs
on them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from cloudfree.errors import ConfigError
from cloudfree.mosaic.composite import composite_scores
from cloudfree.mosaic.read import empty_grid
from cloudfree.mosaic.rules import rule_of
from cloudfree.mosaic.settings import check_level, check_setting
from cloudfree.names import check_date

# The rule settings of the section, by key.
RULE_KEYS = ("rule", "embedding_rule", "change_rule", "composite.rule")


def check_crs(crs: str | None) -> None:
    """Raise ConfigError naming ``mosaic.crs`` unless ``crs`` (None: the tiles') is one the
    mosaic's grid can be built in (parsed as the rule parses it)."""
    if crs is None:
        return
    empty_grid(crs, None)


def check_composite(
    composite: Mapping[str, Any],
    spans: Mapping[str, tuple[dt.date, dt.date, str]] | None = None,
) -> None:
    """Raise ConfigError naming ``mosaic.composite.<key>`` unless its dates are calendar
    dates (``YYYY-MM-DD``), the period in order, and each date within the years of the dates
    of every region in ``spans`` (region -> first and last possible date, and the keys that
    say so): a composite of another year would be empty."""
    days = {
        key: check_date(composite[key], f"mosaic.composite.{key}", ConfigError)
        for key in ("start", "end", "target")
        if composite[key] is not None
    }
    if "start" in days and "end" in days:
        # the rule's reading of the period
        composite_scores([], {}, start=days["start"], end=days["end"], target=None)
    for key, day in days.items():
        when = dt.date.fromisoformat(day)
        for region, (first, last, where) in sorted((spans or {}).items()):
            if not first.year <= when.year <= last.year:
                raise ConfigError(
                    f"mosaic.composite.{key}: {day} is outside the years of region {region}'s "
                    f"dates, {first} to {last} ({where}); its composite would be empty"
                )


def check_mosaic(
    mosaic: Mapping[str, Any],
    spans: Mapping[str, tuple[dt.date, dt.date, str]] | None = None,
) -> None:
    """Check a resolved ``mosaic`` section as rule mosaic would, before it runs; ``spans``:
    the regions' dates when known (:func:`check_composite`).  Raises ConfigError naming the
    key."""
    for key in RULE_KEYS:
        value: Any = mosaic
        for part in key.split("."):
            value = value[part]
        rule_of(value, f"mosaic.{key}")
    for key in ("format", "resampling", "compress"):
        check_setting(key, mosaic[key])
    check_level(mosaic["compress"], mosaic["compress_level"])
    check_crs(mosaic["crs"])
    check_composite(mosaic["composite"], spans)
