import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cloudfree.errors import InputDataError, StorageError
from cloudfree.io import OUTPUT_MARKER, atomic_path, geotiff_profile, read_raster, write_raster


def test_atomic_path_moves_file_into_place_only_on_success(tmp_path):
    dest = tmp_path / "out.txt"
    with atomic_path(dest) as tmp:
        tmp.write_text("done")
        assert not dest.exists()
    assert dest.read_text() == "done"

    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert dest.read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_replaces_directories(tmp_path):
    dest = tmp_path / "tiles"
    for content in ("old", "new"):
        with atomic_path(dest) as tmp:
            tmp.mkdir()
            (tmp / "a.txt").write_text(content)
    assert (dest / "a.txt").read_text() == "new"
    assert sorted(p.name for p in dest.iterdir()) == [OUTPUT_MARKER, "a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["tiles"]


def test_write_raster_keeps_georeference_and_tags(tmp_path):
    transform = from_origin(500000, 8300000, 10, 10)
    prof = geotiff_profile(
        crs="EPSG:32737", transform=transform, width=40, height=30, count=2,
        dtype="uint16", nodata=0,
    )  # fmt: skip
    data = np.arange(2 * 30 * 40, dtype=np.uint16).reshape(2, 30, 40)
    path = write_raster(
        tmp_path / "x.tif", data, prof, band_names=["B02", "B03"],
        tags={"DATE": "2021-05-01", "CLASSES": {"clear": 0, "cloud": 1}, "N": 3, "OK": True},
        scales=[1e-4, 1e-4],
    )  # fmt: skip
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32737
        assert src.transform == transform
        assert src.nodata == 0
        assert src.descriptions == ("B02", "B03")
        tags = src.tags()
        assert tags["DATE"] == "2021-05-01"  # text as it is, anything else as JSON
        assert json.loads(tags["CLASSES"]) == {"clear": 0, "cloud": 1}
        assert (tags["N"], tags["OK"]) == ("3", "true")
        assert src.scales == (1e-4, 1e-4) and src.offsets == (0.0, 0.0)
        assert src.profile["compress"] == "deflate"
        np.testing.assert_array_equal(src.read(), data)


def test_read_raster_names_the_bad_file(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(InputDataError, match=r"broken\.tif"):
        read_raster(bad)


def test_nested_writers_on_a_full_disk_name_the_output_once(tmp_path, monkeypatch):
    """Several outputs written together (a mosaic and its side layers): the inner writer's
    StorageError is not wrapped again by the outer ones."""
    import contextlib

    import cloudfree.io

    monkeypatch.setattr(cloudfree.io, "_nearly_full", lambda path: True)
    with pytest.raises(StorageError) as err, contextlib.ExitStack() as stack:
        for name in ("m.tif", "m_count.tif"):
            stack.enter_context(atomic_path(tmp_path / name))
        raise OSError("write failed")
    assert str(err.value).count("no space left while writing") == 1
    assert "m_count.tif" in str(err.value) and not list(tmp_path.iterdir())
