"""Checks of mosaic settings outside Snakemake: the allowed values are the schema's."""

from __future__ import annotations

import pytest

from cloudfree.errors import ConfigError
from cloudfree.mosaic.settings import allowed, check_setting


def test_allowed_values_come_from_the_schema() -> None:
    resampling = ["nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average"]
    assert allowed("resampling") == resampling
    assert allowed("format") == ["cog", "gtiff"]
    assert allowed("compress") == ["deflate", "zstd", "lzw", "none"]
    assert "best_quality" in allowed("composite.rule")


def test_a_value_outside_the_schema_names_the_key() -> None:
    check_setting("format", "gtiff")
    with pytest.raises(ConfigError, match=r"^mosaic\.format: 'png' is not one of cog, gtiff$"):
        check_setting("format", "png")
    with pytest.raises(ConfigError, match=r"^mosaic\.compress: 'gzip' is not one of deflate"):
        check_setting("compress", "gzip")
