"""Sentinel-1 for the folder source: per-date VV/VH files matched to the optical dates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from cloudfree.errors import InputDataError
from cloudfree.manifest import read_manifest

from .test_folder import folder_cfg, run, write_folder_series, write_tif

# Optical dates: 2021-01-05, 2021-02-10, 2021-03-22.  S1: 2 days after the first, 9 days
# before the second (beyond 6), 4 days after the third.
S1_DATES = ("20210107", "20210201", "20210326")


def write_s1(root: Path, units: str = "db") -> Path:
    for i, day in enumerate(S1_DATES):
        vv = np.full((96, 96), -10.0 - i, np.float32)
        vh = np.full((96, 96), -17.0 - i, np.float32)
        data = np.stack([vv, vh])
        if units == "linear":
            data = np.power(10.0, data / 10.0).astype(np.float32)
        write_tif(root / "s1" / f"S1_{day}.tif", data, nodata=None)
    return root


@pytest.mark.parametrize("units", ["db", "linear"])
def test_each_date_gets_the_nearest_s1_within_max_days(tmp_path: Path, units: str) -> None:
    root = write_s1(write_folder_series(tmp_path / "data"), units)
    cfg = folder_cfg(root, s1=str(root / "s1" / "*.tif"), s1_units=units)
    tiles, csv = tmp_path / "resources/tiles/f", tmp_path / "results/tiles/f.csv"
    run(cfg, tiles, csv)
    manifest = read_manifest(csv)
    by_date = manifest.groupby("date")["s1"].apply(lambda s: set(s.fillna("").astype(bool)))
    assert by_date.to_dict() == {
        "2021-01-05": {True}, "2021-02-10": {False}, "2021-03-22": {True}
    }  # fmt: skip
    row = manifest[(manifest["date"] == "2021-03-22") & (manifest["tile"] == "r1c1")].iloc[0]
    with rasterio.open(row["s1"]) as src, rasterio.open(row["image"]) as img:
        assert src.count == 2 and list(src.descriptions) == ["VV", "VH"]
        assert src.transform == img.transform and src.crs == img.crs
        assert src.tags()["S1_DATE"] == "2021-03-26" and src.tags()["S1_DAYS"] == "4"
        data = src.read()
    assert data[0] == pytest.approx(-12.0, abs=1e-4) and data[1] == pytest.approx(-19.0, abs=1e-4)


def test_s1_files_with_wrong_bands_or_values_are_named(tmp_path: Path) -> None:
    root = write_folder_series(tmp_path / "data")
    write_tif(root / "s1" / "S1_20210107.tif", np.zeros((3, 96, 96), np.float32), nodata=None)
    tiles, csv = tmp_path / "resources/tiles/f", tmp_path / "results/tiles/f.csv"
    with pytest.raises(InputDataError, match=r"S1_20210107\.tif .*3 bands, expected 2"):
        run(folder_cfg(root, s1=str(root / "s1" / "*.tif")), tiles, csv)
    # linear values read as dB: -1e-3 dB is fine, but 300 dB is no surface
    write_tif(root / "s1" / "S1_20210107.tif", np.full((2, 96, 96), 300.0, np.float32),
              nodata=None)  # fmt: skip
    with pytest.raises(InputDataError, match=r"outside -60 to 30 dB: is .*s1_units right"):
        run(folder_cfg(root, s1=str(root / "s1" / "*.tif")), tiles, csv)
