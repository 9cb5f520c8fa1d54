"""Tests of the synthetic Sentinel-2 tile source: kernels, spec validation, written files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from scipy import ndimage

from cloudfree.bands import CLEAR, CLOUD, MASK_NODATA, S2_L1C_BANDS, SHADOW, THIN_CLOUD
from cloudfree.errors import ConfigError
from cloudfree.manifest import COLUMNS, OPTIONAL_COLUMNS, SPLITS, validate_manifest
from cloudfree.tiles import synthetic as syn

B = {name: i for i, name in enumerate(S2_L1C_BANDS)}


def ndvi(refl: np.ndarray) -> np.ndarray:
    return (refl[B["B08"]] - refl[B["B04"]]) / (refl[B["B08"]] + refl[B["B04"]])


def uniform(cls: str, doy: float, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    """Mean spectrum of a map of one class (no texture)."""
    lc = np.full(shape, syn.LANDCOVER_CLASSES.index(cls), dtype=np.uint8)
    return syn.surface_reflectance(lc, doy).mean(axis=(1, 2))


def spectral_slope(field: np.ndarray) -> float:
    """Log-log slope of the radially pooled power spectrum (Hann-windowed)."""
    h, w = field.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2((field - field.mean()) * win)) ** 2
    r = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]).ravel()
    sel = (r > 0.02) & (r < 0.25)
    return float(np.polyfit(np.log(r[sel]), np.log(power.ravel()[sel]), 1)[0])


# ---------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_fractal_noise_statistics(beta: float) -> None:
    f = syn.fractal_noise((256, 192), beta, np.random.default_rng(3))
    assert f.shape == (256, 192)
    assert abs(f.mean()) < 1e-9 and abs(f.std() - 1) < 1e-9
    assert spectral_slope(f) == pytest.approx(-beta, abs=0.25)
    again = syn.fractal_noise((256, 192), beta, np.random.default_rng(3))
    np.testing.assert_array_equal(f, again)


def test_fractal_noise_smoothness_and_anisotropy() -> None:
    def lag_corr(f: np.ndarray, axis: int, lag: int = 4) -> float:
        a = f.take(range(f.shape[axis] - lag), axis=axis)
        b = f.take(range(lag, f.shape[axis]), axis=axis)
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    rough = syn.fractal_noise((128, 128), 1.0, np.random.default_rng(0))
    smooth = syn.fractal_noise((128, 128), 3.0, np.random.default_rng(0))
    assert lag_corr(smooth, 1) > lag_corr(rough, 1) + 0.3
    # Streaks along x (angle 0): much longer correlation along x than along y.
    streak = syn.fractal_noise((128, 128), 3.0, np.random.default_rng(0), anisotropy=5.0)
    assert 3 * (1 - lag_corr(streak, 1, 8)) < 1 - lag_corr(streak, 0, 8)


@pytest.mark.parametrize(
    "weights",
    [
        syn.DEFAULT_LANDCOVER,
        {"water": 0.5, "cropland": 0.5},
        {"forest": 0.1, "grassland": 0.3, "urban": 0.6},
    ],
)
def test_landcover_weights_exact_and_absent_classes(weights: dict[str, float]) -> None:
    lc, parcels = syn.landcover_map((120, 150), weights, np.random.default_rng(1))
    assert lc.dtype == np.uint8 and parcels.shape == lc.shape
    total = sum(weights.values())
    frac = np.bincount(lc.ravel(), minlength=len(syn.LANDCOVER_CLASSES)) / lc.size
    for code, name in enumerate(syn.LANDCOVER_CLASSES):
        assert frac[code] == pytest.approx(weights.get(name, 0.0) / total, abs=0.005), name


def test_landcover_structure() -> None:
    lc, parcels = syn.landcover_map((160, 160), syn.DEFAULT_LANDCOVER, np.random.default_rng(2))
    codes = {n: i for i, n in enumerate(syn.LANDCOVER_CLASSES)}
    # Cropland comes in whole parcels (cut only by the water, forest and settlements that
    # claimed pixels before it): nearly all crop pixels sit in parcels whose remaining
    # area is >90% crop, and most in parcels that are mostly crop outright.
    pid = parcels.ravel()
    crop = (lc == codes["cropland"]).ravel()
    later = np.isin(lc, [codes[c] for c in ("cropland", "bare", "grassland")]).ravel()
    share = np.bincount(pid, crop) / np.maximum(np.bincount(pid, later), 1)
    assert np.mean(share[pid[crop]] > 0.9) > 0.9
    outright = np.bincount(pid, crop) / np.maximum(np.bincount(pid), 1)
    assert np.mean(outright[pid[crop]] > 0.6) > 0.7
    # Parcels are rectangles of plausible field size (5..64 px = 50..640 m).
    for pid in np.unique(parcels)[:20]:
        rows, cols = np.nonzero(parcels == pid)
        area = (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
        assert area == rows.size and min(np.ptp(rows), np.ptp(cols)) + 1 <= 64
    # Water forms a few smooth lakes, not speckle: blobs of >= 20 px hold > 90% of it and
    # the boundary is a small part of the area.
    water = lc == codes["water"]
    labels, _ = ndimage.label(water, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    assert sizes[sizes >= 20].sum() > 0.9 * sizes.sum()
    assert (water & ~ndimage.binary_erosion(water)).sum() < 0.4 * water.sum()


def test_class_spectra_distinct_and_plausible() -> None:
    summer = {c: uniform(c, 195) for c in syn.LANDCOVER_CLASSES}
    assert ndvi(summer["forest"]) > 0.5
    assert ndvi(summer["cropland"]) > 0.5
    assert ndvi(summer["water"]) < 0
    assert summer["water"][B["B08"]] < 0.05 and summer["water"][B["B11"]] < 0.02
    bare = summer["bare"]
    assert bare[B["B02"]] < bare[B["B04"]] < bare[B["B08"]] < bare[B["B11"]]  # rises to SWIR
    urban = summer["urban"][[B[b] for b in ("B02", "B03", "B04", "B08", "B11")]]
    assert urban.min() > 0.1 and urban.max() / urban.min() < 1.7  # bright, flat-ish
    green = summer["forest"]
    assert green[B["B06"]] > 2 * green[B["B04"]] and green[B["B08"]] > green[B["B05"]]  # red edge
    for name, spec in summer.items():
        assert 0.001 <= spec[B["B10"]] <= 0.01, name
    names = list(summer)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(summer[a] - summer[b]).max() > 0.03, (a, b)


def test_phenology() -> None:
    amp = {c: ndvi(uniform(c, 195)) - ndvi(uniform(c, 15)) for c in ("cropland", "grassland")}
    forest = [ndvi(uniform("forest", d)) for d in range(0, 365, 15)]
    assert amp["cropland"] > 0.5  # sown/harvested: soil in winter, full canopy in summer
    assert 0.15 < amp["grassland"] < amp["cropland"]
    assert np.ptp(forest) < 0.1 and min(forest) > 0.5  # evergreen
    # The year wraps: no jump between 31 Dec and 1 Jan.
    assert syn.greenness("cropland", 365.0) == pytest.approx(syn.greenness("cropland", 0.0))
    # Harvest is faster than green-up.
    g = syn.greenness("cropland", np.arange(365.0))
    up, down = np.diff(g).max(), -np.diff(g).min()
    assert down > 1.5 * up
    # A per-pixel phase delays the curve by that many days.
    lc = np.full((1, 2), syn.LANDCOVER_CLASSES.index("cropland"), dtype=np.uint8)
    r = syn.surface_reflectance(lc, 150.0, phase=np.array([[0.0, 20.0]]))
    np.testing.assert_allclose(r[:, 0, 1], uniform("cropland", 130.0), rtol=1e-5)


@pytest.mark.parametrize("cover", [0.0, 0.05, 0.3, 0.7, 1.0])
def test_cloud_layers_cover_and_mask_consistency(cover: float) -> None:
    shape = (96, 128)
    layers = syn.cloud_layers(shape, cover, np.random.default_rng(5), shadow_shift=(6, -9))
    a, d, m = layers
    assert (a > 0).mean() == pytest.approx(cover, abs=0.005)
    assert a.min() >= 0 and a.max() <= 1 and d.min() >= 0 and d.max() <= 0.6
    np.testing.assert_array_equal(m == CLOUD, a >= syn.THICK_ALPHA)
    np.testing.assert_array_equal(m == THIN_CLOUD, (a > 0) & (a < syn.THICK_ALPHA))
    np.testing.assert_array_equal(m == SHADOW, d > 0)
    np.testing.assert_array_equal(m == CLEAR, (a == 0) & (d == 0))
    if 0 < cover < 1:
        assert (m == CLOUD).any() and (m == THIN_CLOUD).any() and (m == SHADOW).any()
        # Thick cores, thin edges: the median cloudy pixel is opaque.
        assert np.median(a[a > 0]) > 0.6


def test_shadows_follow_the_sun_shift() -> None:
    shape = (128, 128)
    a, d, _ = syn.cloud_layers(shape, 0.2, np.random.default_rng(9), shadow_shift=(8, -6))
    # Opacity of the cloud that casts onto each pixel: the one at (row - 8, col + 6).
    src = np.full(shape, np.nan)
    src[8:, :-6] = a[:-8, 6:]
    inner = ~np.isnan(src)
    shadow = inner & (d > 0)
    assert shadow.sum() > 100
    np.testing.assert_allclose(d[shadow], syn.SHADOW_MAX_DARKENING * src[shadow], rtol=1e-6)
    assert (d[inner & (src >= syn.SHADOW_MIN_ALPHA) & (a == 0)] > 0).all()
    assert not d[a > 0].any()  # no shadow drawn under a cloud


def test_cirrus_is_thin_and_lifts_b10() -> None:
    shape = (64, 64)
    layers = syn.cloud_layers(shape, 0.5, np.random.default_rng(1), cirrus=True)
    assert set(np.unique(layers.mask)) == {CLEAR, THIN_CLOUD}
    assert 0 < layers.alpha.max() <= 0.35 and not layers.darkening.any()
    lc = np.full(shape, syn.LANDCOVER_CLASSES.index("grassland"), dtype=np.uint8)
    surface = syn.surface_reflectance(lc, 100)
    obs = syn.compose(surface, layers, syn.cloud_spectrum(cirrus=True))
    thin = layers.mask == THIN_CLOUD
    assert obs[B["B10"]][thin].mean() > 5 * obs[B["B10"]][~thin].mean()


def test_compose_brightens_clouds_darkens_shadows_keeps_clear() -> None:
    shape = (96, 96)
    lc, _ = syn.landcover_map(shape, syn.DEFAULT_LANDCOVER, np.random.default_rng(0))
    surface = syn.surface_reflectance(lc, 180)
    layers = syn.cloud_layers(shape, 0.4, np.random.default_rng(0), shadow_shift=(5, 5))
    obs = syn.compose(surface, layers, syn.cloud_spectrum(False, 0.05), gain=1.02, aot=0.2)
    ground = 1.02 * surface + 0.2 * syn.PATH_REFLECTANCE[:, None, None]
    m = layers.mask
    np.testing.assert_allclose(obs[:, m == CLEAR], ground[:, m == CLEAR], rtol=1e-5)
    for band in ("B02", "B04", "B08"):
        o, g = obs[B[band]], ground[B[band]]
        margin = 0.1 if band != "B08" else 0.0  # vegetation is bright in the NIR too
        assert (o[m == CLOUD] > g[m == CLOUD] + margin).all(), band
        assert (o[m == THIN_CLOUD] > g[m == THIN_CLOUD]).all(), band
        assert (o[m == SHADOW] < 0.95 * g[m == SHADOW]).all(), band
    # Thick clouds are bright and flat in the VNIR.
    vnir = obs[[B["B02"], B["B03"], B["B04"], B["B08"]]][:, layers.alpha > 0.95]
    assert vnir.min() > 0.45 and np.ptp(vnir.mean(axis=1)) < 0.05


def test_to_dn_range() -> None:
    dn = syn.to_dn(np.array([-0.1, 0.0, 0.00004, 0.1234, 7.0, np.nan]))
    assert dn.dtype == np.uint16
    assert dn.tolist() == [1, 1, 1, 1234, 65535, 1]


# ---------------------------------------------------------------------------- plan


def test_weather_follows_beta_with_mean_cloudiness() -> None:
    spec = syn.SyntheticSpec(cloudiness=0.4)
    days = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(0, 730, 2)]
    conds = [syn.date_conditions(spec, d) for d in days]
    cover = np.array([c.cover for c in conds])
    assert cover.mean() == pytest.approx(0.4, abs=0.05)
    assert (cover < 0.1).mean() > 0.1 and (cover > 0.8).mean() > 0.05  # clear and overcast
    assert 0.1 < np.mean([c.cirrus for c in conds]) < 0.3
    lengths = [np.hypot(*c.shadow_shift) for c in conds]
    assert 2 <= min(lengths) and max(lengths) <= 16
    assert all(0.9 < c.gain < 1.1 and 0 < c.aot < 2 for c in conds)
    # Same date, same weather, whatever else is requested; seed changes it.
    assert syn.date_conditions(spec, days[3]) == conds[3]
    other = syn.date_conditions(syn.SyntheticSpec(seed=1), days[3])
    assert other.cover != conds[3].cover
    for c in (0.0, 1.0):
        assert syn.date_conditions(syn.SyntheticSpec(cloudiness=c), days[0]).cover == c


def test_acquisition_dates_on_jittered_revisit_grid() -> None:
    spec = syn.SyntheticSpec(n_dates=40, start="2021-03-01", end="2021-12-31")
    days = syn.acquisition_dates(spec)
    start = dt.date(2021, 3, 1)
    assert len(days) == 40 == len(set(days)) and days == sorted(days)
    assert days[0] >= start and days[-1] <= dt.date(2021, 12, 31)
    assert all((d - start).days % 5 in (4, 0, 1) for d in days)
    # Every revisit slot can be used.
    full = syn.SyntheticSpec(n_dates=3, start="2021-01-01", end="2021-01-11")
    assert len(syn.acquisition_dates(full)) == 3


@pytest.mark.parametrize("tiles", [(1, 3), (3, 3), (6, 6), (4, 7)])
def test_splits_by_spatial_blocks(tiles: tuple[int, int]) -> None:
    ty, tx = tiles
    spec = syn.SyntheticSpec(tiles_y=ty, tiles_x=tx, seed=4)
    splits = syn.assign_splits(spec)
    assert sorted(splits) == sorted(syn.tile_origins(spec))
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
    assert splits == syn.assign_splits(spec)


# ---------------------------------------------------------------------------- spec


def test_spec_defaults_and_from_dict() -> None:
    spec = syn.SyntheticSpec.from_dict({})
    assert spec == syn.SyntheticSpec()
    assert spec.region_shape == (3 * 48 + 16, 3 * 48 + 16)
    assert syn.SyntheticSpec.from_dict(None) == spec
    # YAML gives dates as date objects and origins as lists.
    spec = syn.SyntheticSpec.from_dict(
        {"start": dt.date(2020, 5, 1), "origin": [1, 2], "landcover": {"water": 1}, "seed": 3}
    )
    assert spec.start == "2020-05-01" and spec.origin == (1.0, 2.0)
    assert spec.landcover == {"water": 1.0}


@pytest.mark.parametrize(
    ("d", "key"),
    [
        ({"colour": 1}, "colour"),
        ({"tiles_x": -1}, "tiles_x"),
        ({"tiles_y": 1.5}, "tiles_y"),
        ({"tile_size": 0}, "tile_size"),
        ({"overlap": -2}, "overlap"),
        ({"overlap": 64}, "overlap"),
        ({"tiles_x": 1, "tiles_y": 2}, "tiles_x"),
        ({"n_dates": 0}, "n_dates"),
        ({"n_dates": 80}, "n_dates"),
        ({"seed": "abc"}, "seed"),
        ({"seed": True}, "seed"),
        ({"cloudiness": 1.5}, "cloudiness"),
        ({"val_fraction": 0}, "val_fraction"),
        ({"test_fraction": 1.2}, "test_fraction"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "test_fraction"),
        ({"landcover": {"snow": 1.0}}, "landcover.snow"),
        ({"landcover": {"water": -1.0}}, "landcover.water"),
        ({"landcover": {"water": 0.0}}, "landcover"),
        ({"landcover": []}, "landcover"),
        ({"crs": "EPSG:4326"}, "crs"),
        ({"crs": "not a crs"}, "crs"),
        ({"start": "2021-13-01"}, "start"),
        ({"end": "2020-01-01"}, "end"),
        ({"origin": [1.0]}, "origin"),
        ({"resolution": 0}, "resolution"),
    ],
)
def test_bad_spec_raises_config_error_naming_key(d: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=f"'{key}'"):
        syn.SyntheticSpec.from_dict(d)


def test_spec_direct_construction_is_validated_and_hashable() -> None:
    with pytest.raises(ConfigError, match="'overlap'"):
        syn.SyntheticSpec(tile_size=32, overlap=40)
    with pytest.raises(ConfigError, match="mapping"):
        syn.SyntheticSpec.from_dict([("seed", 1)])  # type: ignore[arg-type]
    a = syn.SyntheticSpec(landcover={"water": 1, "forest": 1})
    assert a.landcover == {"water": 1.0, "forest": 1.0}
    assert {a: 1}[syn.SyntheticSpec(landcover={"forest": 1.0, "water": 1.0})] == 1


# ---------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[syn.SyntheticSpec, pd.DataFrame]:
    spec = syn.SyntheticSpec()
    df = syn.generate_region("demo", spec, tmp_path_factory.mktemp("synthetic") / "demo")
    return spec, df


def read(path: str) -> tuple[np.ndarray, rasterio.profiles.Profile, dict, tuple]:
    with rasterio.open(path) as src:
        return src.read(), src.profile, src.tags(), src.descriptions


def test_manifest(region: tuple[syn.SyntheticSpec, pd.DataFrame]) -> None:
    spec, df = region
    assert tuple(df.columns) == (*COLUMNS, *OPTIONAL_COLUMNS)
    assert len(df) == 9 * spec.n_dates
    validate_manifest(df)
    assert set(df["source"]) == {"synthetic"} and set(df["region"]) == {"demo"}
    assert set(df["split"]) == set(SPLITS)
    assert sorted(df["tile"].unique()) == sorted(f"r{r}c{c}" for r in range(3) for c in range(3))
    assert (df["crs"] == "EPSG:32737").all()
    assert (df["width"] == 64).all() and (df["height"] == 64).all()
    dates = [d.isoformat() for d in syn.acquisition_dates(spec)]
    assert sorted(df["date"].unique()) == dates
    for row in df.itertuples():
        assert Path(row.image).name == f"{row.date}_S2.tif"
        assert Path(row.mask).name == f"{row.date}_CLD.tif"
        assert Path(row.image).parent.name == row.tile
    r0c0 = df[df.tile == "r0c0"].iloc[0]
    assert (r0c0.left, r0c0.top) == spec.origin
    assert r0c0.right - r0c0.left == 640.0 and r0c0.top - r0c0.bottom == 640.0


def test_geotiffs(region: tuple[syn.SyntheticSpec, pd.DataFrame]) -> None:
    _, df = region
    for row in df.iloc[:: len(df) // 7].itertuples():
        with rasterio.open(row.image) as src:
            assert src.crs.to_epsg() == 32737
            assert src.count == 13 and src.dtypes == ("uint16",) * 13 and src.nodata == 0
            assert src.descriptions == S2_L1C_BANDS
            assert src.tags()["DATE"] == row.date
            assert src.profile["compress"] == "deflate"
            assert tuple(src.bounds) == pytest.approx((row.left, row.bottom, row.right, row.top))
            assert src.res == (10.0, 10.0) and (src.width, src.height) == (64, 64)
            img = src.read()
        with rasterio.open(row.mask) as src:
            assert src.dtypes == ("uint8",) and src.nodata == MASK_NODATA
            assert tuple(src.bounds) == pytest.approx((row.left, row.bottom, row.right, row.top))
            assert src.tags()["DATE"] == row.date
            mask = src.read(1)
        assert img.min() >= 1  # 0 is nodata
        assert set(np.unique(mask)) <= {CLEAR, CLOUD, THIN_CLOUD, SHADOW}
        clear = mask == CLEAR
        if clear.any():  # clear land: B10 cirrus band 0.001..0.01
            assert 10 <= np.median(img[B["B10"]][clear]) <= 100


def test_neighbouring_tiles_share_overlap(region: tuple[syn.SyntheticSpec, pd.DataFrame]) -> None:
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


def mosaic(spec: syn.SyntheticSpec, rows: pd.DataFrame, col: str) -> np.ndarray:
    h, w = spec.region_shape
    out = None
    for row in rows.itertuples():
        data = read(getattr(row, col))[0]
        if out is None:
            out = np.zeros((data.shape[0], h, w), dtype=data.dtype)
        r0, c0 = syn.tile_origins(spec)[row.tile]
        out[:, r0 : r0 + spec.tile_size, c0 : c0 + spec.tile_size] = data
    assert out is not None
    return out


def test_masks_match_pixels(region: tuple[syn.SyntheticSpec, pd.DataFrame]) -> None:
    spec, df = region
    scene = syn.build_scene(spec)
    dates = sorted(df["date"].unique())
    masks, b02 = {}, {}
    for date in dates:
        rows = df[df.date == date]
        mask = mosaic(spec, rows, "mask")[0]
        img = mosaic(spec, rows, "image")
        cond = syn.date_conditions(spec, dt.date.fromisoformat(date))
        # Region-wide cloud fraction = the date's drawn cover.
        assert np.isin(mask, (CLOUD, THIN_CLOUD)).mean() == pytest.approx(cond.cover, abs=0.005)
        # Same date rendered without clouds: clear pixels identical, clouds brighter,
        # shadows darker.
        clean, _ = syn.render_date(spec, scene, cond, clouds=False)
        same = img.astype(int) - clean
        assert np.abs(same[:, mask == CLEAR]).max() == 0
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
    region: tuple[syn.SyntheticSpec, pd.DataFrame], tmp_path: Path
) -> None:
    spec, df = region
    again = syn.generate_region("demo", spec, tmp_path / "again")
    assert again.drop(columns=["image", "mask"]).equals(df.drop(columns=["image", "mask"]))
    for (_, a), (_, b) in list(zip(df.iterrows(), again.iterrows(), strict=True))[::13]:
        np.testing.assert_array_equal(read(a.image)[0], read(b.image)[0])
        np.testing.assert_array_equal(read(a["mask"])[0], read(b["mask"])[0])
        assert Path(a.image).read_bytes() == Path(b.image).read_bytes()
    other = syn.SyntheticSpec(seed=1)
    assert not np.array_equal(syn.build_scene(other).landcover, syn.build_scene(spec).landcover)
    day = syn.acquisition_dates(spec)[0]
    scene = syn.build_scene(other)
    dn_other, _ = syn.render_date(other, scene, syn.date_conditions(other, day))
    dn_spec, _ = syn.render_date(spec, syn.build_scene(spec), syn.date_conditions(spec, day))
    assert not np.array_equal(dn_other, dn_spec)


def test_region_spec_controls_landcover_and_clouds(tmp_path: Path) -> None:
    spec = syn.SyntheticSpec(
        tiles_x=3,
        tiles_y=1,
        tile_size=32,
        overlap=8,
        n_dates=3,
        cloudiness=0.0,
        landcover={"water": 0.7, "urban": 0.3},
        crs="EPSG:32633",
        origin=(300000.0, 5000000.0),
    )
    df = syn.generate_region("wet", spec, tmp_path)
    assert len(df) == 9 and set(df["split"]) == set(SPLITS)
    assert (df["crs"] == "EPSG:32633").all()
    lc = syn.build_scene(spec).landcover
    assert set(np.unique(lc)) == {0, 5}
    img = read(df.iloc[0].image)[0]
    mask = read(df.iloc[0]["mask"])[0]
    assert (mask == CLEAR).all()
    water = np.mean(ndvi(img.astype(float)) < 0)
    assert water == pytest.approx(0.7, abs=0.2)
