"""Checks of a resolved ``train`` section that its schema cannot express.

The schema (``workflow/schemas/config.schema.yaml``) holds every default, type and range of
the section; :func:`cloudfree.config.section` applies it outside the workflow.  Reads and
writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudfree.config import schema
from cloudfree.errors import ConfigError


def check_params(params: Mapping[str, Any]) -> None:
    """Raise ConfigError (naming ``train.<key>``) unless ``params`` is a resolved train
    section whose keys agree with each other."""
    expected = set(schema()["properties"]["train"]["properties"])
    missing = sorted(expected - set(params))
    if missing:
        raise ConfigError(
            f"train section without {', '.join(f'train.{k}' for k in missing)}: resolve it "
            "with cloudfree.config.section('train', params) first"
        )
    if params["masked_weight"] + params["observed_weight"] <= 0:
        raise ConfigError("train.masked_weight + train.observed_weight must be > 0")
