"""A hand-made four-tile region for the pack tests, and packing with the schema's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cloudfree.config import section
from cloudfree.pack.writer import pack_region

from ..series import write_series

DATES = ["2021-01-05", "2021-02-04", "2021-03-06", "2021-12-27"]
SPLITS = {"a": "train", "b": "train", "c": "val", "d": "test"}
PACK = section("pack")
EVALUATION = section("evaluation")


def region(root: Path) -> pd.DataFrame:
    """Tiles a, b (train), c (val), d (test) of 16 x 16 px over :data:`DATES`."""
    return write_series(root, SPLITS, DATES)


def pack(
    manifest: pd.DataFrame,
    dest: str | Path,
    pack: dict[str, Any] | None = None,
    evaluation: dict[str, Any] | None = None,
    **kw: Any,
) -> Path:
    """:func:`pack_region` with the schema's ``pack`` and ``evaluation`` defaults, some keys
    replaced."""
    return pack_region(
        manifest,
        dest,
        pack={**PACK, **(pack or {})},
        evaluation={**EVALUATION, **(evaluation or {})},
        **kw,
    )
