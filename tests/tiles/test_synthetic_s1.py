"""Tests of synthetic Sentinel-1 (cloudfree.tiles.synthetic.radar): what the radar sees of the
ground, its independence from the optical weather, speckle, the written S1 tiles and their
packing with dates without S1."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.manifest import validate_manifest
from cloudfree.pack.check import validate
from cloudfree.packed import open_packed, read_tile
from cloudfree.tiles.synthetic.changes import Change
from cloudfree.tiles.synthetic.radar import (
    ENL,
    MATERIALS,
    backscatter,
    build_radar,
    matched_s1,
    render_s1,
    s1_acquisitions,
    soil_wetness,
    speckle,
)
from cloudfree.tiles.synthetic.region import generate_region, region_tiles
from cloudfree.tiles.synthetic.scene import build_scene
from cloudfree.tiles.synthetic.spec import SyntheticSpec, check_size
from cloudfree.tiles.synthetic.surface import LANDCOVER_CLASSES
from cloudfree.tiles.synthetic.weather import acquisition_dates

from ..pack.sample import pack
from .synthetic.specs import settings, synthetic_spec

# A tiny region: three 32 px tiles, five dates in spring, many S1 outages (seed 2: the first
# three dates share one S1 acquisition, the last two have none within 6 days).
TINY = dict(
    seed=2, tiles_x=3, tiles_y=1, tile_size=32, overlap=0, n_dates=5, start="2021-03-01",
    end="2021-05-30", s1=True, s1_outages=0.6,
)  # fmt: skip
# Northern hemisphere (the schema's default UTM 32N origin): crops peak in July.
SUMMER, WINTER = dt.date(2021, 7, 14), dt.date(2021, 1, 12)


def db_mean(db: np.ndarray) -> float:
    """The mean backscatter of dB pixels, averaged in linear power."""
    return float(10 * np.log10(np.mean(10 ** (np.asarray(db, dtype=float) / 10))))


def s1_of(spec: SyntheticSpec, day: dt.date, scene=None) -> np.ndarray:
    scene = build_scene(spec) if scene is None else scene
    return render_s1(spec, scene, build_radar(spec, scene), day)


def test_defaults_keep_todays_behaviour() -> None:
    spec = synthetic_spec()
    assert (spec.s1, spec.s1_revisit_days, spec.s1_max_days, spec.s1_outages) == (
        False, 12, 6, 0.1,
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"synthetic\.s1_revisit_days"):
        synthetic_spec(s1_revisit_days=0)
    with pytest.raises(ConfigError, match=r"synthetic\.s1_outages"):
        synthetic_spec(s1_outages=1.5)
    with pytest.raises(ConfigError, match=r"synthetic\.s1_max_days"):
        synthetic_spec(s1_max_days=-1)
    with pytest.raises(ConfigError, match="'s1_outages' must be between 0 and 1"):
        SyntheticSpec.from_dict({**settings(), "s1_outages": -0.1})
    assert SyntheticSpec.from_dict(synthetic_spec(**TINY).as_dict()) == synthetic_spec(**TINY)
    check_size(synthetic_spec(**TINY))


def test_s1_acquisitions_revisit_and_outages() -> None:
    spec = synthetic_spec(s1=True, s1_outages=0.0)
    days = s1_acquisitions(spec)
    assert {(b - a).days for a, b in itertools.pairwise(days)} == {12}
    assert days[0] <= dt.date(2021, 1, 1) + dt.timedelta(days=12 - 6)
    assert days[-1] >= dt.date(2021, 12, 31) - dt.timedelta(days=12 - 6)
    assert s1_acquisitions(dataclasses.replace(spec, seed=1))[0] != days[0]  # phase per seed
    lossy = s1_acquisitions(dataclasses.replace(spec, s1_outages=0.5))
    assert set(lossy) <= set(days) and 0.3 < 1 - len(lossy) / len(days) < 0.7
    assert s1_acquisitions(dataclasses.replace(spec, s1_outages=1.0)) == []
    s2 = acquisition_dates(spec)
    for day, s1 in zip(s2, matched_s1(spec, s2), strict=True):
        assert s1 is not None and abs((s1 - day).days) <= 6  # 12-day revisit: always one


def test_radar_is_untouched_by_clouds_haze_and_masks() -> None:
    spec = synthetic_spec(**TINY, cloudiness=0.0)
    cloudy = dataclasses.replace(spec, cloudiness=0.8, haze=1.5, mask_errors=False)
    for day in (dt.date(2021, 3, 10), SUMMER):
        np.testing.assert_array_equal(s1_of(spec, day), s1_of(cloudy, day))
    assert not np.array_equal(s1_of(spec, SUMMER), s1_of(dataclasses.replace(spec, seed=3), SUMMER))


def test_water_dark_urban_bright_forest_between() -> None:
    spec = synthetic_spec(s1=True, landcover={"water": 1, "urban": 1, "forest": 1})
    scene = build_scene(spec)
    db = s1_of(spec, SUMMER, scene)
    code = {
        name: scene.landcover == LANDCOVER_CLASSES.index(name)
        for name in ("water", "urban", "forest")
    }
    vv = {name: db_mean(db[0][m]) for name, m in code.items()}
    vh = {name: db_mean(db[1][m]) for name, m in code.items()}
    assert vv["water"] < vv["forest"] < vv["urban"] and vh["water"] < vh["forest"] < vh["urban"]
    assert -24 < vv["water"] < -16 and -31 < vh["water"] < -23
    assert -5 < vv["urban"] < 0 and -12 < vh["urban"] < -7
    assert -9 < vv["forest"] < -6 and -15 < vh["forest"] < -12
    assert (vh["water"] < vv["water"]) and (vh["urban"] < vv["urban"])


def test_green_crops_raise_vh() -> None:
    spec = synthetic_spec(s1=True, landcover={"cropland": 1})
    scene = build_scene(spec)
    summer, winter = s1_of(spec, SUMMER, scene), s1_of(spec, WINTER, scene)
    assert db_mean(summer[1]) > db_mean(winter[1]) + 3
    # south of the equator the season is the other way round
    south = synthetic_spec(s1=True, landcover={"cropland": 1}, crs="EPSG:32737",
                           origin=[500000.0, 8300000.0])  # fmt: skip
    assert db_mean(s1_of(south, WINTER)[1]) > db_mean(s1_of(south, SUMMER)[1]) + 3


def test_changes_are_seen_by_the_radar() -> None:
    spec = synthetic_spec(s1=True, landcover={"forest": 1, "grassland": 0.5})
    scene = build_scene(spec)
    radar = build_radar(spec, scene)
    h, w = scene.landcover.shape
    mask = np.zeros((h, w), dtype=bool)
    mask[20:60, 20:60] = True
    mask &= scene.landcover == LANDCOVER_CLASSES.index("forest")
    start = dt.date(2021, 6, 1)

    def with_event(kind: str, day: dt.date, duration: int = 300) -> np.ndarray:
        event = Change(kind, mask, start.toordinal(), duration)
        return render_s1(spec, dataclasses.replace(scene, changes=[event]), radar, day)

    plain = dataclasses.replace(scene, changes=[])
    before, after = dt.date(2021, 5, 20), dt.date(2021, 6, 20)
    np.testing.assert_array_equal(
        with_event("clearcut", before), render_s1(spec, plain, radar, before)
    )
    cut, uncut = with_event("clearcut", after), render_s1(spec, plain, radar, after)
    np.testing.assert_array_equal(cut[:, ~mask], uncut[:, ~mask])  # nothing else changes
    assert db_mean(cut[1][mask]) < db_mean(uncut[1][mask]) - 3  # forest -> bare: VH drops
    burnt = with_event("fire", after)
    assert db_mean(burnt[1][mask]) < db_mean(uncut[1][mask]) - 3
    flooded = with_event("flood", after, 30)
    assert db_mean(flooded[0][mask]) < -16 and db_mean(flooded[1][mask]) < -23
    built = with_event("construction", dt.date(2021, 9, 1), 45)
    assert db_mean(built[0][mask]) > -5
    building = with_event("construction", after, 45)  # cleared ground first
    assert db_mean(building[1][mask]) < db_mean(uncut[1][mask]) - 3


def test_wet_soil_is_brighter() -> None:
    rain = np.zeros(30)
    rain[5] = 25.0
    wet = soil_wetness(rain)
    assert (wet[:5] == 0).all() and wet[5] == 1.0
    assert wet[6] == pytest.approx(math.exp(-1 / 4)) and wet[-1] < 0.01
    bare = np.full((8, 8), MATERIALS.index("bare"), dtype=np.uint8)
    cover = np.zeros((8, 8), dtype=np.float32)
    dry, soaked = backscatter(bare, cover, 0.0), backscatter(bare, cover, 1.0)
    gain = 10 * np.log10(soaked / dry)
    assert (gain[0] > 3).all() and (gain[1] > 3).all()
    # a dense canopy hides the soil: its response is much smaller
    crop = np.full((8, 8), MATERIALS.index("cropland"), dtype=np.uint8)
    full = np.ones((8, 8), dtype=np.float32)
    assert (10 * np.log10(backscatter(crop, full, 1.0) / backscatter(crop, full, 0.0)) < 1).all()
    # the rain series of a region: bare soil brighter on its wettest S1 date than its driest
    spec = synthetic_spec(s1=True, landcover={"bare": 1})
    scene = build_scene(spec)
    radar = build_radar(spec, scene)
    days = s1_acquisitions(spec)
    by_wetness = sorted(days, key=lambda d: radar.wetness_on(d.toordinal()))
    dry_db = render_s1(spec, scene, radar, by_wetness[0])
    wet_db = render_s1(spec, scene, radar, by_wetness[-1])
    assert db_mean(wet_db[0]) > db_mean(dry_db[0]) + 2


def test_speckle_has_the_statistics_of_enl_4_4() -> None:
    sigma = np.full((2, 256, 256), 0.05, dtype=np.float32)
    intensity = speckle(sigma, np.random.default_rng(0))
    assert intensity.dtype == np.float32 and (intensity > 0).all()
    assert intensity.mean() == pytest.approx(0.05, rel=0.01)
    assert intensity.mean() / intensity.std() == pytest.approx(math.sqrt(ENL), rel=0.02)
    # over a homogeneous patch of a rendered scene (open water)
    spec = synthetic_spec(s1=True, landcover={"water": 1})
    lin = 10 ** (s1_of(spec, SUMMER).astype(np.float64) / 10)
    for band in lin:
        assert band.mean() / band.std() == pytest.approx(math.sqrt(ENL), rel=0.06)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticSpec, pd.DataFrame]:
    spec = synthetic_spec(**TINY)
    return spec, generate_region("tiny", spec, tmp_path_factory.mktemp("s1") / "tiny")


def test_the_written_s1_tiles(tiny: tuple[SyntheticSpec, pd.DataFrame]) -> None:
    spec, df = tiny
    validate_manifest(df)
    has = df["s1"] != ""
    assert has.any() and not has.all()  # outages: some dates have no S1 within 6 days
    assert (df.groupby("date")["s1"].apply(lambda v: (v != "").nunique()) == 1).all()
    scene = build_scene(spec)
    radar = build_radar(spec, scene)
    windows = region_tiles(spec)
    matched = dict(zip(acquisition_dates(spec), matched_s1(spec, acquisition_dates(spec)),
                       strict=True))  # fmt: skip
    for row in df.itertuples():
        s1_file = Path(row.image).with_name(f"{row.date}_S1.tif")
        s1_day = matched[dt.date.fromisoformat(row.date)]
        if not row.s1:
            assert s1_day is None and not s1_file.exists()
            continue
        assert row.s1 == str(s1_file)
        with rasterio.open(row.s1) as src, rasterio.open(row.image) as s2:
            assert src.count == 2 and src.dtypes == ("float32", "float32")
            assert src.descriptions == ("VV", "VH") and math.isnan(src.nodata)
            assert (src.crs, src.transform, src.shape) == (s2.crs, s2.transform, s2.shape)
            tags = src.tags()
            data = src.read()
        assert tags["S1_DATE"] == s1_day.isoformat()
        offset = (s1_day - dt.date.fromisoformat(row.date)).days
        assert tags["S1_DAYS"] == str(offset) and abs(offset) <= spec.s1_max_days
        rs, cs = windows[row.tile].toslices()  # rendered on the S1 acquisition day
        np.testing.assert_array_equal(data, render_s1(spec, scene, radar, s1_day)[:, rs, cs])
    assert not list(Path(df["image"].iloc[0]).parent.glob(".*tmp*"))  # atomic writes


def test_s1_changes_nothing_optical(tiny: tuple[SyntheticSpec, pd.DataFrame], tmp_path) -> None:
    spec, df = tiny
    plain = generate_region("tiny", dataclasses.replace(spec, s1=False), tmp_path)
    assert (plain["s1"] == "").all() and not list(tmp_path.rglob("*_S1.tif"))
    for a, b in zip(df.itertuples(), plain.itertuples(), strict=True):
        for col in ("image", "mask"):
            with rasterio.open(getattr(a, col)) as x, rasterio.open(getattr(b, col)) as y:
                np.testing.assert_array_equal(x.read(), y.read())


def test_packing_keeps_nan_on_dates_without_s1(
    tiny: tuple[SyntheticSpec, pd.DataFrame], tmp_path
) -> None:
    _, df = tiny
    dest = pack(df, tmp_path / "tiny.h5")
    validate(dest, df)
    with open_packed(dest) as h5:
        for name, rows in df.groupby("tile"):
            tile = read_tile(h5, str(name))
            rows = rows.sort_values("date")
            has = (rows["s1"] != "").to_numpy()
            assert tile.s1 is not None and tile.s1.shape == (5, 2, 32, 32)
            assert np.isnan(tile.s1[~has]).all() and np.isfinite(tile.s1[has]).all()
            assert [bool(s) for s in tile.sources["s1"]] == has.tolist()
    with pytest.raises(InputDataError, match=r"tile r0c0: dates without s1 \['2021-03-24'"):
        validate(dest, df.assign(s1=np.where(df["tile"] == "r0c0", df["s1"].shift(-1), df["s1"])))
    # a region with S1 on no date has no s1 dataset; the check sees the difference
    none = pack(df.assign(s1=""), tmp_path / "none.h5")
    with open_packed(none) as h5:
        assert read_tile(h5, "r0c0").s1 is None
    with pytest.raises(InputDataError, match="tile r0c0: s1 presence differs"):
        validate(none, df)


def test_s1_nodata_becomes_nan_when_packed(
    tiny: tuple[SyntheticSpec, pd.DataFrame], tmp_path
) -> None:
    _, df = tiny
    row = df[df["s1"] != ""].iloc[0]
    with rasterio.open(row.s1) as src:
        data, prof = src.read(), dict(src.profile)
    data[:, 0, :4] = -9999.0
    other = tmp_path / "s1.tif"
    with rasterio.open(other, "w", **{**prof, "nodata": -9999.0}) as dst:
        dst.write(data)
    df = df.copy()
    df.loc[row.name, "s1"] = str(other)
    with open_packed(pack(df, tmp_path / "nodata.h5")) as h5:
        s1 = read_tile(h5, row.tile).s1
    t = sorted(df.loc[df.tile == row.tile, "date"]).index(row.date)
    assert np.isnan(s1[t, :, 0, :4]).all() and np.isfinite(s1[t, :, 1:]).all()
