"""Synthetic specs for the tests, resolved against the config schema like the workflow's."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from cloudfree.config import source_settings
from cloudfree.tiles.synthetic.spec import SyntheticSpec

# Where the tests' regions lie unless they say otherwise: UTM 37S (Madagascar), south of
# the equator, so the phenology is shifted by half a year.
MADAGASCAR: dict[str, Any] = {"crs": "EPSG:32737", "origin": [500000.0, 8300000.0]}


@cache
def _resolved(values: str) -> str:
    return json.dumps(source_settings("synthetic", json.loads(values)))


def settings(**values: Any) -> dict[str, Any]:
    """The ``synthetic`` section of ``values`` with the schema's defaults filled in."""
    return json.loads(_resolved(json.dumps(values, sort_keys=True)))


def synthetic_spec(**values: Any) -> SyntheticSpec:
    """The spec of a ``synthetic`` section given as ``values`` (schema defaults for the rest)."""
    return SyntheticSpec.from_dict(settings(**values))


DEFAULT_LANDCOVER: dict[str, float] = settings()["landcover"]
