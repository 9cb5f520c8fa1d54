"""A corpus of broken raster files: each read gives an error that names the file."""

import numpy as np
import pytest
from rasterio.transform import from_origin

from cloudfree.errors import InputDataError
from cloudfree.io import geotiff_profile, read_raster, write_raster

pytestmark = pytest.mark.reliability


def good_tif(path):
    prof = geotiff_profile(
        crs="EPSG:32632", transform=from_origin(600000, 5400000, 10, 10), width=64,
        height=64, count=13, dtype="uint16", nodata=0,
    )  # fmt: skip
    data = np.random.default_rng(1).integers(1, 10000, (13, 64, 64), dtype=np.uint16)
    return write_raster(path, data, prof)


def zero_byte(path):
    path.write_bytes(b"")


def not_a_tiff(path):
    path.write_text("<html>404 Not Found</html>\n")


def truncated(path):
    good = good_tif(path.with_name("good.tif")).read_bytes()
    path.write_bytes(good[: len(good) // 2])


def corrupt_middle(path):
    good = bytearray(good_tif(path.with_name("good.tif")).read_bytes())
    mid = len(good) // 2
    good[mid : mid + 4096] = (
        np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    )
    path.write_bytes(bytes(good))


def png_named_tif(path):
    # A PNG signature and header, then garbage: a real image format, but not what was promised.
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)


CORPUS = {
    "zero-byte": zero_byte,
    "not a TIFF": not_a_tiff,
    "truncated": truncated,
    "corrupt in the middle": corrupt_middle,
    "PNG named .tif": png_named_tif,
}


@pytest.mark.parametrize("kind", sorted(CORPUS))
def test_broken_rasters_raise_input_data_error_naming_the_file(tmp_path, kind):
    path = tmp_path / "T31UFQ_20210601_S2.tif"
    CORPUS[kind](path)
    with pytest.raises(InputDataError, match=r"T31UFQ_20210601_S2\.tif"):
        read_raster(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputDataError, match=r"absent\.tif"):
        read_raster(tmp_path / "absent.tif")
