"""Tests of cloudfree.tiles.synthetic.region: the splits and the written tiles of a region, and
the evaluation scene derived from it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from cloudfree.bands import (
    CLEAR,
    CLOUD,
    MASK_CLASSES,
    MASK_NODATA,
    S2_L1C_BANDS,
    SHADOW,
    THIN_CLOUD,
)
from cloudfree.errors import ConfigError
from cloudfree.manifest import COLUMNS, OPTIONAL_COLUMNS, SPLITS, validate_manifest
from cloudfree.tiles.synthetic.region import (
    evaluation_scene,
    generate_region,
    region_tiles,
    synthetic_tiles,
    tile_splits,
)
from cloudfree.tiles.synthetic.scene import build_scene, render_date
from cloudfree.tiles.synthetic.spec import SyntheticSpec
from cloudfree.tiles.synthetic.weather import acquisition_dates, date_conditions

from .specs import MADAGASCAR, settings, synthetic_spec

B = {name: i for i, name in enumerate(S2_L1C_BANDS)}


def ndvi(refl: np.ndarray) -> np.ndarray:
    return (refl[B["B08"]] - refl[B["B04"]]) / (refl[B["B08"]] + refl[B["B04"]])


@pytest.mark.parametrize("tiles", [(1, 3), (3, 3), (6, 6), (4, 7)])
def test_splits_by_spatial_blocks(tiles: tuple[int, int]) -> None:
    ty, tx = tiles
    spec = synthetic_spec(tiles_y=ty, tiles_x=tx, seed=4)
    splits = tile_splits(spec)
    assert sorted(splits) == sorted(f"r{r}c{c}" for r in range(ty) for c in range(tx))
    assert set(splits.values()) == set(SPLITS)
    n = ty * tx
    counts = pd.Series(splits).value_counts()
    if n >= 9:
        assert counts["train"] >= 0.4 * n
    if ty == tx == 6:  # 9 blocks of 2x2: block members share the split
        for r in range(0, 6, 2):
            for c in range(0, 6, 2):
                block = {splits[f"r{r + i}c{c + j}"] for i in (0, 1) for j in (0, 1)}
                assert len(block) == 1
    assert splits == tile_splits(spec)


def test_splits_of_the_default_regions_are_pinned() -> None:
    """The default config's regions (config/config.yaml) keep their splits."""
    africa = tile_splits(synthetic_spec(seed=11))
    europa = tile_splits(synthetic_spec(seed=23))
    assert africa == {
        "r0c0": "test", "r0c1": "val", "r0c2": "train", "r1c0": "train", "r1c1": "train",
        "r1c2": "test", "r2c0": "train", "r2c1": "val", "r2c2": "train",
    }  # fmt: skip
    assert europa == {
        "r0c0": "val", "r0c1": "train", "r0c2": "test", "r1c0": "train", "r1c1": "test",
        "r1c2": "val", "r2c0": "train", "r2c1": "train", "r2c2": "train",
    }  # fmt: skip


def test_tiles_step_by_tile_size_minus_overlap() -> None:
    spec = synthetic_spec(tiles_x=3, tiles_y=2, tile_size=32, overlap=8)
    wins = region_tiles(spec)
    assert {t: (w.row_off, w.col_off) for t, w in wins.items()} == {
        f"r{r}c{c}": (24 * r, 24 * c) for r in range(2) for c in range(3)
    }
    assert all(w.width == w.height == 32 for w in wins.values())


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticSpec, pd.DataFrame]:
    spec = synthetic_spec(**MADAGASCAR)
    df = generate_region("demo", spec, tmp_path_factory.mktemp("synthetic") / "demo")
    return spec, df


def read(path: str) -> tuple[np.ndarray, rasterio.profiles.Profile, dict, tuple]:
    with rasterio.open(path) as src:
        return src.read(), src.profile, src.tags(), src.descriptions


def test_manifest(region: tuple[SyntheticSpec, pd.DataFrame]) -> None:
    spec, df = region
    assert tuple(df.columns) == (*COLUMNS, *OPTIONAL_COLUMNS)
    assert len(df) == 9 * spec.n_dates
    validate_manifest(df)
    assert set(df["source"]) == {"synthetic"} and set(df["region"]) == {"demo"}
    assert set(df["split"]) == set(SPLITS)
    assert sorted(df["tile"].unique()) == sorted(f"r{r}c{c}" for r in range(3) for c in range(3))
    assert (df["crs"] == "EPSG:32737").all()
    assert (df["width"] == 64).all() and (df["height"] == 64).all()
    assert (df["probability"] == "").all() and (df["s1"] == "").all()
    dates = [d.isoformat() for d in acquisition_dates(spec)]
    assert sorted(df["date"].unique()) == dates
    for row in df.itertuples():
        assert Path(row.image).name == f"{row.date}_S2.tif"
        assert Path(row.mask).name == f"{row.date}_CLD.tif"
        assert Path(row.image).parent.name == row.tile
    r0c0 = df[df.tile == "r0c0"].iloc[0]
    assert (r0c0.left, r0c0.top) == (500000.0, 8300000.0)
    assert r0c0.right - r0c0.left == 640.0 and r0c0.top - r0c0.bottom == 640.0


def test_geotiffs(region: tuple[SyntheticSpec, pd.DataFrame]) -> None:
    _, df = region
    for row in df.iloc[:: len(df) // 7].itertuples():
        with rasterio.open(row.image) as src:
            assert src.crs.to_epsg() == 32737
            assert src.count == 13 and src.dtypes == ("uint16",) * 13 and src.nodata == 0
            assert src.descriptions == S2_L1C_BANDS
            assert src.tags()["DATE"] == row.date and src.tags()["SOURCE"] == "synthetic"
            assert src.profile["compress"] == "deflate"
            assert tuple(src.bounds) == pytest.approx((row.left, row.bottom, row.right, row.top))
            assert src.res == (10.0, 10.0) and (src.width, src.height) == (64, 64)
            img = src.read()
        with rasterio.open(row.mask) as src:
            assert src.dtypes == ("uint8",) and src.nodata == MASK_NODATA
            assert tuple(src.bounds) == pytest.approx((row.left, row.bottom, row.right, row.top))
            assert src.tags()["DATE"] == row.date
            assert json.loads(src.tags()["CLASSES"]) == MASK_CLASSES
            assert src.descriptions == ("cloud_mask",)
            mask = src.read(1)
        assert img.min() >= 1  # 0 is nodata
        assert set(np.unique(mask)) <= {CLEAR, CLOUD, THIN_CLOUD, SHADOW}
        clear = mask == CLEAR
        if clear.any():  # clear land: B10 cirrus band 0.001..0.01
            assert 10 <= np.median(img[B["B10"]][clear]) <= 100


def test_neighbouring_tiles_share_overlap(region: tuple[SyntheticSpec, pd.DataFrame]) -> None:
    spec, df = region
    ov = spec.overlap
    for date in df["date"].unique()[:4]:
        rows = df[df.date == date].set_index("tile")
        for a, b, axis in (("r0c0", "r0c1", 2), ("r1c1", "r2c1", 1), ("r1c2", "r2c2", 1)):
            ra, rb = rows.loc[a], rows.loc[b]
            if axis == 2:
                assert ra.right - rb.left == ov * spec.resolution and ra.top == rb.top
            else:
                assert rb.top - ra.bottom == ov * spec.resolution and ra.left == rb.left
            for col in ("image", "mask"):
                xa, xb = read(ra[col])[0], read(rb[col])[0]
                if axis == 2:
                    np.testing.assert_array_equal(xa[:, :, -ov:], xb[:, :, :ov])
                    if col == "image":  # and not just because everything is alike
                        assert not np.array_equal(xa[:, :, -2 * ov : -ov], xb[:, :, :ov])
                else:
                    np.testing.assert_array_equal(xa[:, -ov:], xb[:, :ov])


def mosaic(spec: SyntheticSpec, rows: pd.DataFrame, col: str) -> np.ndarray:
    h, w = spec.region_shape
    out = None
    step = spec.tile_size - spec.overlap
    for row in rows.itertuples():
        data = read(getattr(row, col))[0]
        if out is None:
            out = np.zeros((data.shape[0], h, w), dtype=data.dtype)
        r, c = (int(x) for x in row.tile[1:].split("c"))
        r0, c0 = r * step, c * step
        out[:, r0 : r0 + spec.tile_size, c0 : c0 + spec.tile_size] = data
    assert out is not None
    return out


@pytest.fixture(scope="module")
def exact_region(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticSpec, pd.DataFrame]:
    """The region with masks that label every drawn cloud and shadow."""
    spec = synthetic_spec(**MADAGASCAR, mask_errors=False)
    return spec, generate_region("exact", spec, tmp_path_factory.mktemp("exact") / "exact")


# Native pixel of each L1C band in 10 m pixels (1: 10 m, 2: 20 m, 6: 60 m).
NATIVE_FACTOR = [6, 1, 1, 1, 2, 2, 2, 1, 2, 6, 6, 2, 2]


def _block_all(sel: np.ndarray, factor: int) -> np.ndarray:
    """Pixels whose factor x factor block (from the grid's corner) is selected throughout."""
    h, w = sel.shape
    ph, pw = -(-h // factor) * factor, -(-w // factor) * factor
    padded = np.ones((ph, pw), bool)
    padded[:h, :w] = sel
    blocks = padded.reshape(ph // factor, factor, pw // factor, factor).all(axis=(1, 3))
    return np.repeat(np.repeat(blocks, factor, 0), factor, 1)[:h, :w]


def test_masks_match_pixels(exact_region: tuple[SyntheticSpec, pd.DataFrame]) -> None:
    spec, df = exact_region
    scene = build_scene(spec)
    dates = sorted(df["date"].unique())
    masks, b02 = {}, {}
    for date in dates:
        rows = df[df.date == date]
        mask = mosaic(spec, rows, "mask")[0]
        img = mosaic(spec, rows, "image")
        cond = date_conditions(spec, dt.date.fromisoformat(date))
        # Region-wide cloud fraction = the date's drawn cover.
        assert np.isin(mask, (CLOUD, THIN_CLOUD)).mean() == pytest.approx(cond.cover, abs=0.005)
        # Same date rendered without clouds: clear pixels identical (in the 20 and 60 m
        # bands where their whole native pixel is clear), clouds brighter, shadows darker.
        clean, _ = render_date(spec, scene, cond, clouds=False)
        same = img.astype(int) - clean
        for i, factor in enumerate(NATIVE_FACTOR):
            clear = _block_all(mask == CLEAR, factor)
            assert clear.sum() > 0.2 * (mask == CLEAR).sum() or not (mask == CLEAR).any()
            assert np.abs(same[i][clear]).max(initial=0) == 0, S2_L1C_BANDS[i]
        for band in ("B02", "B08"):
            c, o = clean[B[band]].astype(int), img[B[band]].astype(int)
            assert (o[mask == CLOUD] > c[mask == CLOUD]).all()
            assert (o[mask == SHADOW] < c[mask == SHADOW]).all()
        if cond.cirrus:
            thin = mask == THIN_CLOUD
            assert np.median(img[B["B10"]][thin]) > 3 * np.median(img[B["B10"]][mask == CLEAR])
        masks[date], b02[date] = mask, img[B["B02"]].astype(int)
    # Across dates: a pixel under thick cloud is brighter in B02 than on a clear date.
    diffs = []
    for d1 in dates:
        for d2 in dates:
            sel = (masks[d1] == CLOUD) & (masks[d2] == CLEAR)
            diffs.append(b02[d1][sel] - b02[d2][sel])
    diff = np.concatenate(diffs)
    assert diff.size > 1000 and (diff > 1000).mean() > 0.99


def test_deterministic_and_seeded(
    region: tuple[SyntheticSpec, pd.DataFrame], tmp_path: Path
) -> None:
    spec, df = region
    again = generate_region("demo", spec, tmp_path / "again")
    assert again.drop(columns=["image", "mask"]).equals(df.drop(columns=["image", "mask"]))
    for (_, a), (_, b) in list(zip(df.iterrows(), again.iterrows(), strict=True))[::13]:
        np.testing.assert_array_equal(read(a.image)[0], read(b.image)[0])
        np.testing.assert_array_equal(read(a["mask"])[0], read(b["mask"])[0])
        assert Path(a.image).read_bytes() == Path(b.image).read_bytes()
    other = dataclasses.replace(spec, seed=1)
    assert not np.array_equal(build_scene(other).landcover, build_scene(spec).landcover)
    day = acquisition_dates(spec)[0]
    scene = build_scene(other)
    dn_other, _ = render_date(other, scene, date_conditions(other, day))
    dn_spec, _ = render_date(spec, build_scene(spec), date_conditions(spec, day))
    assert not np.array_equal(dn_other, dn_spec)


def test_region_spec_controls_landcover_and_clouds(tmp_path: Path) -> None:
    spec = synthetic_spec(
        tiles_x=3,
        tiles_y=1,
        tile_size=32,
        overlap=8,
        n_dates=3,
        cloudiness=0.0,
        landcover={"water": 0.7, "urban": 0.3},
        crs="EPSG:32633",
        origin=[300000.0, 5000000.0],
    )
    df = generate_region("wet", spec, tmp_path)
    assert len(df) == 9 and set(df["split"]) == set(SPLITS)
    assert (df["crs"] == "EPSG:32633").all()
    lc = build_scene(spec).landcover
    assert set(np.unique(lc)) == {0, 5}
    img = read(df.iloc[0].image)[0]
    mask = read(df.iloc[0]["mask"])[0]
    assert (mask == CLEAR).all()
    water = np.mean(ndvi(img.astype(float)) < 0)
    assert water == pytest.approx(0.7, abs=0.2)


def test_the_source_reads_a_resolved_section(tmp_path: Path) -> None:
    cfg = settings(tiles_x=3, tiles_y=1, tile_size=32, overlap=8, n_dates=2)
    df = synthetic_tiles("r", cfg, tmp_path)
    assert len(df) == 6 and (df["crs"] == "EPSG:32632").all()  # the schema's default CRS
    with pytest.raises(ConfigError, match=r"synthetic: missing keys \['seed'\]"):
        synthetic_tiles("r", {k: v for k, v in cfg.items() if k != "seed"}, tmp_path / "x")
    with pytest.raises(ConfigError, match="non-empty string"):
        generate_region("", SyntheticSpec.from_dict(cfg), tmp_path / "y")


def _mask_errors_region(spec: SyntheticSpec, df: pd.DataFrame) -> float:
    """Share of the pixels labelled clear that the weather changed, over the region's dates."""
    scene = build_scene(spec)
    missed = []
    for date in sorted(df["date"].unique()):
        rows = df[df.date == date]
        mask = mosaic(spec, rows, "mask")[0]
        img = mosaic(spec, rows, "image")
        clean, _ = render_date(spec, scene, date_conditions(spec, dt.date.fromisoformat(date)),
                               clouds=False)  # fmt: skip
        ten_metre = [B[b] for b in ("B02", "B03", "B04", "B08")]
        changed = (img[ten_metre].astype(int) != clean[ten_metre]).any(axis=0)
        missed.append((changed & (mask == CLEAR)).sum() / max((mask == CLEAR).sum(), 1))
    return float(np.mean(missed))


def test_the_default_masks_miss_what_real_masks_miss(region, exact_region) -> None:
    assert _mask_errors_region(*exact_region) == 0
    assert _mask_errors_region(*region) > 0.005


TRAINING = {**MADAGASCAR, "seed": 11, "cloudiness": 0.3, "exclude_dates": ["2021-03-03"]}
INDUCTIVE = {"enabled": True, "seed_offset": 1000, "tiles_x": 2, "tiles_y": 2, "overlap": 0}


def test_the_evaluation_scene_shares_no_date_and_no_seed() -> None:
    training = settings(**TRAINING)
    scene = evaluation_scene(training, INDUCTIVE)
    assert scene == settings(**scene)  # a valid synthetic section, nothing left to fill in
    assert scene["seed"] == 1011 and scene["test_only"] is True
    assert (scene["tiles_x"], scene["tiles_y"], scene["overlap"]) == (2, 2, 0)
    kept = ("crs", "origin", "cloudiness", "landcover", "n_dates", "start", "end", "tile_size",
            "haze", "outages", "change_rate", "mask_errors", "native_resolution")  # fmt: skip
    assert {k: scene[k] for k in kept} == {k: training[k] for k in kept}
    train_spec, scene_spec = SyntheticSpec.from_dict(training), SyntheticSpec.from_dict(scene)
    train_dates = set(acquisition_dates(train_spec))
    scene_dates = set(acquisition_dates(scene_spec))
    assert len(scene_dates) == scene_spec.n_dates == len(train_dates)
    assert not train_dates & scene_dates
    assert set(scene["exclude_dates"]) == {d.isoformat() for d in train_dates} | {"2021-03-03"}
    assert dt.date(2021, 3, 3) not in scene_dates
    assert tile_splits(scene_spec) == dict.fromkeys(["r0c0", "r0c1", "r1c0", "r1c1"], "test")
    assert not np.array_equal(
        build_scene(dataclasses.replace(train_spec, tiles_x=2, tiles_y=2, overlap=0)).landcover,
        build_scene(scene_spec).landcover,
    )  # its own land cover on the same grid
    other = evaluation_scene(training, {**INDUCTIVE, "seed_offset": 7})
    assert other["seed"] == 18
    assert evaluation_scene(training, INDUCTIVE) == scene  # derived, not drawn


def test_the_evaluation_scene_of_a_shared_model_avoids_every_training_scene() -> None:
    training = settings(**TRAINING)
    others = [settings(**{**TRAINING, "seed": seed}) for seed in (12, 13)]
    scene = evaluation_scene(training, INDUCTIVE, others)
    seen = set()
    for section in (training, *others):
        seen |= set(acquisition_dates(SyntheticSpec.from_dict(section)))
    assert len(seen) > len(acquisition_dates(SyntheticSpec.from_dict(training)))
    scene_dates = set(acquisition_dates(SyntheticSpec.from_dict(scene)))
    assert len(scene_dates) == 12 and not scene_dates & seen
    assert scene["seed"] == 1011  # the region's, whatever trains beside it


def test_test_only_makes_every_tile_a_test_tile(tmp_path: Path) -> None:
    spec = synthetic_spec(tiles_x=3, tiles_y=3, test_only=True)
    assert set(tile_splits(spec).values()) == {"test"} and len(tile_splits(spec)) == 9
    # the checks that leave training tiles do not apply to a scene that trains nothing
    small = synthetic_spec(tiles_x=1, tiles_y=2, test_only=True, val_fraction=0.5,
                           test_fraction=0.5, tile_size=16, overlap=0, n_dates=2)  # fmt: skip
    df = generate_region("scene", small, tmp_path)
    assert len(df) == 4 and set(df["split"]) == {"test"}
    with pytest.raises(ConfigError, match="'tiles_x'"):
        synthetic_spec(tiles_x=1, tiles_y=2)


def test_an_evaluation_scene_of_the_region_on_disk(tmp_path: Path) -> None:
    training = settings(**{**TRAINING, "tiles_x": 3, "tiles_y": 1, "tile_size": 32,
                           "overlap": 8, "n_dates": 4})  # fmt: skip
    scene = evaluation_scene(training, INDUCTIVE)
    train = synthetic_tiles("r", training, tmp_path / "r")
    test = synthetic_tiles("r_inductive", scene, tmp_path / "s")
    assert set(test["split"]) == {"test"} and test["tile"].nunique() == 4
    assert set(test["region"]) == {"r_inductive"}
    assert not set(train["date"]) & set(test["date"])
    assert test["date"].nunique() == 4
