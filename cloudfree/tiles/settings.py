"""The check that a source's section holds exactly the keys of the spec built from it.

The schema fills in every default, so a section missing a key was not resolved against it
(``cloudfree.config.source_settings`` does that outside the workflow).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cloudfree.errors import ConfigError


def check_keys(section: str, cfg: Mapping[str, Any], spec: type) -> None:
    """Raise ConfigError naming the keys of ``cfg`` that the dataclass ``spec`` does not have,
    or the ones it needs (fields without a default) that ``cfg`` lacks."""
    fields = dataclasses.fields(spec)
    unknown = sorted(str(k) for k in set(cfg) - {f.name for f in fields})
    if unknown:
        raise ConfigError(
            f"{section}: unknown keys {unknown}; known keys: {', '.join(f.name for f in fields)}"
        )
    missing = [
        f.name
        for f in fields
        if f.name not in cfg
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            f"{section}: missing keys {missing}; resolve the section against the config "
            "schema first (cloudfree.config.source_settings)"
        )
