"""Writing a mosaic: windows, overviews, COG and plain GeoTIFF formats, compression options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from cloudfree.errors import ConfigError
from cloudfree.mosaic.region import mosaic_date
from cloudfree.mosaic.write import compression_options, overview_factors, side_paths

from .inputs import date_settings, write_at_origin


def test_side_layer_paths() -> None:
    assert {n: p.name for n, p in side_paths(Path("m/2021-05-01.tif")).items()} == {
        "count": "2021-05-01_count.tif", "source": "2021-05-01_source.tif",
        "date": "2021-05-01_date.tif", "quality": "2021-05-01_quality.tif",
    }  # fmt: skip


def test_compression_options_and_overview_factors() -> None:
    assert compression_options("deflate", None) == {"compress": "DEFLATE", "predictor": "YES"}
    assert compression_options("deflate", 9)["level"] == "9"
    assert compression_options("deflate", 9, "GTiff")["zlevel"] == "9"
    assert compression_options("zstd", 5, "GTiff")["zstd_level"] == "5"
    assert compression_options("lzw", 5) == {"compress": "LZW", "predictor": "YES"}
    assert compression_options("none", 5) == {"compress": "NONE"}
    with pytest.raises(ConfigError, match=r"mosaic\.compress: 'gzip'"):
        compression_options("gzip", None)
    assert overview_factors(650, 700) == [2, 4]  # down to one 256 px block a side
    assert overview_factors(256, 100) == []


def test_small_windows_match_one_window(overlap: list[Path], tmp_path: Path) -> None:
    settings = date_settings(rule="best_quality", block=512)
    # 16 px windows (below the workflow's minimum): 2 x 1 windows on this 24 x 16 grid
    mosaic_date(overlap, tmp_path / "a" / "m.tif", **{**settings, "block": 16})
    mosaic_date(overlap, tmp_path / "b" / "m.tif", **settings)
    for name in ("m.tif", "m_source.tif", "m_quality.tif"):
        with rasterio.open(tmp_path / "a" / name) as a, rasterio.open(tmp_path / "b" / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())


def test_large_mosaic_has_overviews_and_flat_windows(tmp_path: Path) -> None:
    data = np.arange(700 * 650, dtype=np.uint16).reshape(1, 700, 650) % 5000 + 1
    src = write_at_origin(tmp_path / "tiles" / "A" / "2021-01-01.tif", data, 0)
    dest = tmp_path / "m" / "2021-01-01.tif"
    mosaic_date([src], dest, **date_settings(rule="max", block=256))
    with rasterio.open(dest) as m:
        assert m.overviews(1) and m.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert m.compression.name == "deflate"
        np.testing.assert_array_equal(m.read(), data)
    for path in side_paths(dest).values():
        with rasterio.open(path) as s:
            assert s.overviews(1) and s.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    with rasterio.open(side_paths(dest)["count"]) as c:
        assert (c.read() == 1).all()


@pytest.mark.parametrize(("rule", "compress"), [("max", "deflate"), ("best_quality", "zstd")])
def test_gtiff_format_equals_cog_without_overviews(
    overlap: list[Path], tmp_path: Path, rule: str, compress: str
) -> None:
    """``fmt="gtiff"`` writes the same pixels and tags as the COGs, in one pass: tiled,
    compressed, predictor per dtype, no overviews, nothing left beside the outputs."""
    kwds = {"rule": rule, "resampling": "nearest", "compress": compress, "compress_level": 3}
    cog = mosaic_date(overlap, tmp_path / "cog" / "2021-05-01.tif", **date_settings(**kwds))
    plain = mosaic_date(
        overlap, tmp_path / "plain" / "2021-05-01.tif", **date_settings(**kwds, format="gtiff")
    )
    for name, path in ({"value": plain} | side_paths(plain)).items():
        other = cog if name == "value" else side_paths(cog)[name]
        with rasterio.open(path) as a, rasterio.open(other) as b:
            assert a.compression.name == compress and a.profile["tiled"]
            assert a.overviews(1) == []
            assert "LAYOUT" not in a.tags(ns="IMAGE_STRUCTURE")
            assert a.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
            assert (a.crs, a.transform, a.nodata, a.descriptions, a.tags()) == (
                b.crs, b.transform, b.nodata, b.descriptions, b.tags()
            )  # fmt: skip
            np.testing.assert_array_equal(a.read(), b.read())
    assert sorted(p.name for p in plain.parent.iterdir()) == sorted(
        p.name for p in cog.parent.iterdir()
    )  # no temporary file or folder left behind


def test_gtiff_tiles_follow_the_window_and_the_level_takes_effect(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 3, (1, 300, 300)) + np.arange(300)[None, None] * 7 + 1
    src = write_at_origin(tmp_path / "tiles" / "A" / "2021-01-01.tif", data.astype(np.uint16), 0)
    sizes = {}
    for block, level in ((512, 1), (512, 9), (80, 9)):
        dest = tmp_path / f"m{block}_{level}" / "2021-01-01.tif"
        settings = date_settings(rule="max", format="gtiff", block=block, compress_level=level)
        mosaic_date([src], dest, **settings)
        with rasterio.open(dest) as m:
            assert m.block_shapes[0] == ((80, 80) if block == 80 else (256, 256))
            np.testing.assert_array_equal(m.read(), data)
        sizes[block, level] = dest.stat().st_size
    assert sizes[512, 9] < sizes[512, 1]  # zlevel reached the writer


def test_gtiff_format_float_predictor_and_bad_format(tmp_path: Path) -> None:
    data = np.linspace(-1, 1, 2 * 20 * 20, dtype=np.float32).reshape(2, 20, 20)
    src = write_at_origin(tmp_path / "tiles" / "A" / "2021-01-01_embedding.tif", data, float("nan"))
    dest = mosaic_date([src], tmp_path / "m" / "e.tif", **date_settings(format="gtiff"))
    with rasterio.open(dest) as m:
        assert m.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3"
        np.testing.assert_array_equal(m.read(), data)
    with pytest.raises(ConfigError, match=r"mosaic\.format: 'png'"):
        mosaic_date([src], tmp_path / "x" / "e.tif", **{**date_settings(), "fmt": "png"})
    assert not (tmp_path / "x").exists()
