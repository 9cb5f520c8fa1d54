"""Checks of mosaic settings outside Snakemake: the allowed values are the schema's."""

from __future__ import annotations

import datetime as dt

import pytest

from cloudfree.config import section
from cloudfree.errors import ConfigError
from cloudfree.mosaic.check import check_mosaic
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


def test_a_whole_section_is_checked_as_the_rule_reads_it() -> None:
    check_mosaic(section("mosaic"))
    check_mosaic(section("mosaic", {"crs": "EPSG:4326", "compress": "zstd", "compress_level": 22}))
    bad = {
        "crs": ({"crs": "EPSG:999999"}, r"^mosaic\.crs: invalid CRS 'EPSG:999999'"),
        "level": ({"compress_level": 13}, r"^mosaic\.compress_level: 13 is outside deflate's"),
        "no level": (
            {"compress": "lzw", "compress_level": 3},
            r"^mosaic\.compress_level: lzw takes no level",
        ),
        "date": (
            {"composite": {"target": "2021-02-29"}},
            r"^mosaic\.composite\.target: date '2021-02-29' is not a calendar date",
        ),
        "period": (
            {"composite": {"start": "2021-05-02", "end": "2021-05-01"}},
            r"^mosaic\.composite: start 2021-05-02 is after end 2021-05-01$",
        ),
    }
    for values, message in bad.values():
        settings = {**section("mosaic"), **values}
        settings["composite"] = {**section("mosaic")["composite"], **values.get("composite", {})}
        with pytest.raises(ConfigError, match=message):
            check_mosaic(settings)
    spans = {"r": (dt.date(2020, 3, 1), dt.date(2021, 2, 1), "regions.r.stac.start and end")}
    check_mosaic(section("mosaic", {"composite": {"start": "2020-01-01"}}), spans)
    late = section("mosaic", {"composite": {"end": "2022-01-01"}})
    with pytest.raises(ConfigError, match=r"2022-01-01 is outside the years of region r's"):
        check_mosaic(late, spans)
