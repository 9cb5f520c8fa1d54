"""Tests of cloudfree.train.dataset: training samples, validation tiles, the data check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.packed import compute_norm_stats, open_packed, read_meta, read_tile
from cloudfree.train.dataset import EvalTiles, TrainDataset, check_training_data
from cloudfree.train.loop import train_model

from ..packed import make_packed, write_packed

Make = Callable[..., TrainDataset]
Params = Callable[..., dict[str, Any]]


def _norm(path: Path) -> tuple[np.ndarray, np.ndarray]:
    return compute_norm_stats([path])


def test_train_sample_shapes_and_masks(packed: Path, train_dataset: Make) -> None:
    ds = train_dataset([packed], _norm(packed), crop=16, samples_per_epoch=20, seed=3)
    assert len(ds) == 20
    for i in range(len(ds)):
        s = ds[i]
        assert s["x"].shape == s["target"].shape == (6, 13, 16, 16)
        assert s["avail"].shape == s["known"].shape == s["hidden"].shape == (6, 16, 16)
        assert s["x"].dtype == s["target"].dtype == s["avail"].dtype == torch.float32
        assert s["known"].dtype == s["hidden"].dtype == torch.bool
        assert s["doy"].dtype == torch.int64 and s["doy"].shape == (6,)
        avail = s["avail"].bool()
        assert not (s["hidden"] & ~s["known"]).any()  # hidden within known
        assert not (avail & s["hidden"]).any()  # gaps are not input
        assert not (avail & ~s["known"]).any()
        assert torch.equal(avail | s["hidden"], s["known"])
        assert (s["x"].abs().sum(1)[~avail] == 0).all()
        assert (s["target"].abs().sum(1)[~s["known"]] == 0).all()
    assert any(bool(ds[i]["hidden"].any()) for i in range(len(ds)))
    with pytest.raises(IndexError):
        ds[20]


def test_train_targets_match_file(packed: Path, train_dataset: Make) -> None:
    mean, std = _norm(packed)
    still = {"flips": False, "gain": 0.0, "offset": 0.0, "doy_shift": 0}
    ds = train_dataset([packed], (mean, std), crop=32, samples_per_epoch=5, augment=still)
    s = ds[0]
    with open_packed(packed) as h5:
        truth = {n: read_tile(h5, n) for n in ("t00", "t01")}
    match = [
        n
        for n, ts in truth.items()
        if torch.equal(s["known"], torch.from_numpy(ts.clear))
        and np.array_equal(s["doy"].numpy(), ts.doy)
    ]
    assert len(match) == 1
    ts = truth[match[0]]
    refl = ts.s2.astype(np.float32) / 10000
    expect = (refl - mean[:, None, None].astype(np.float32)) / std[:, None, None].astype(np.float32)
    known = ts.clear[:, None].repeat(13, axis=1)
    np.testing.assert_allclose(s["target"].numpy()[known], expect[known], rtol=1e-5, atol=1e-5)


def test_determinism(packed: Path, train_dataset: Make) -> None:
    norm = _norm(packed)
    a = train_dataset([packed], norm, crop=16, samples_per_epoch=6, seed=1)
    b = train_dataset([packed], norm, crop=16, samples_per_epoch=6, seed=1)
    c = train_dataset([packed], norm, crop=16, samples_per_epoch=6, seed=2)
    for i in (0, 5, 3):
        sa, sb = a[i], b[i]
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(a[i]["x"], c[i]["x"]) for i in range(6))


def test_norm_stats_known_values(tmp_path: Path) -> None:
    """The data check returns the norm stats of the clear pixels of the train tiles."""
    t, h, w = 2, 4, 4
    s2 = np.full((t, 13, h, w), 1000, dtype=np.uint16)
    s2[:, :, :, 2:] = 3000  # clear values: half 0.1, half 0.3 -> mean 0.2, std 0.1
    s2[:, 5] += 500  # band 5: 0.15 / 0.35
    mask = np.zeros((t, h, w), dtype=np.uint8)
    mask[0, 0, 0] = 1  # cloudy: excluded (value says so)
    s2[0, :, 0, 0] = 9000
    mask[1, 0, 1] = 255  # nodata mask: excluded
    s2[1, :, 0, 1] = 9000
    s2[1, :, 1, 0] = 0  # nodata pixel in s2: excluded
    mask[1, 0, 2] = 1
    s2[1, :, 0, 2] = 9000
    doy = np.array([10, 20])
    other = np.full_like(s2, 7000)  # a val tile: excluded
    path = write_packed(
        tmp_path / "n.h5",
        {
            "a": ("train", s2, mask, doy, None),
            "b": ("val", other, np.zeros_like(mask), doy, np.zeros(mask.shape, bool)),
        },
    )
    mean, std = check_training_data([str(path)], read_meta([path]))
    # 32 pixels, 4 excluded: three from the 0.1 half, one from the 0.3 half
    vals = np.array([0.1] * 13 + [0.3] * 15)
    np.testing.assert_allclose(mean[0], vals.mean(), rtol=1e-9)
    np.testing.assert_allclose(std[0], vals.std(), rtol=1e-9)
    np.testing.assert_allclose(mean[5], vals.mean() + 0.05, rtol=1e-9)
    assert mean.shape == std.shape == (13,)


def test_eval_tiles(packed: Path) -> None:
    ev = EvalTiles([packed], _norm(packed), split="val")
    assert len(ev) == 2
    item = ev[1]
    with open_packed(packed) as h5:
        ts = read_tile(h5, item["tile"])
    assert ts.gap is not None
    assert torch.equal(item["hidden"], torch.from_numpy(ts.clear & ts.gap))
    assert torch.equal(item["avail"].bool(), torch.from_numpy(ts.clear & ~ts.gap))
    assert item["x"].shape == (6, 13, 32, 32)
    assert item["hidden"].any()
    ev.close()


def test_variable_dates_and_sizes(tmp_path: Path, train_dataset: Make) -> None:
    path = make_packed(
        tmp_path / "v.h5", n_tiles=4, size=[24, (20, 28), 24, 24], dates=[5, 8, 6, 6]
    )
    meta = read_meta([path])
    assert [t.dates for t in meta.tiles] == [5, 8, 6, 6]
    ds = train_dataset([path], compute_norm_stats([path]), crop=20, samples_per_epoch=10)
    assert ds.seq_len == 5
    assert {ds[i]["x"].shape for i in range(10)} == {(5, 13, 20, 20)}
    with pytest.raises(ConfigError, match=r"train\.crop 21 .* side 20"):
        train_dataset([path], compute_norm_stats([path]), crop=21)
    with pytest.raises(ConfigError, match=r"train\.sampling\.seq_len 6 must be between 1 and 5"):
        train_dataset([path], compute_norm_stats([path]), crop=8, seq_len=6)


def _series(tmp_path: Path, classes: list[list[str]], doy: list[int], name: str = "s.h5") -> Path:
    """Tiles t0.. (first two train, then one val) with given date classes and shared dates."""
    rng = np.random.default_rng(0)
    t, size = len(doy), 16
    tiles, date_class = {}, {}
    for i, cls in enumerate(classes):
        s2 = rng.integers(500, 3000, (t, 13, size, size)).astype(np.uint16)
        mask = np.zeros((t, size, size), np.uint8)
        mask[:, :6, :6] = 1  # every date has a cloud: usable as a gap donor
        mask[:, 10:, 10:] = 3
        split = "train" if i < len(classes) - 1 else "val"
        gap = None if split == "train" else np.zeros(mask.shape, bool)
        tiles[f"t{i}"] = (split, s2, mask, np.asarray(doy), gap)
        date_class[f"t{i}"] = np.array([{"clear": 0, "impaired": 1, "unusable": 2}[c] for c in cls])
    return write_packed(tmp_path / name, tiles, date_class=date_class)


def test_sequences_follow_date_classes_min_len_and_max_gap(
    tmp_path: Path, train_dataset: Make
) -> None:
    doy = [10, 20, 30, 100, 110, 120, 130]
    c, i, u = "clear", "impaired", "unusable"
    path = _series(
        tmp_path,
        [[c, c, i, c, c, u, c], [c, u, c, c, c, c, c], [c] * 7],
        doy,
    )
    norm = compute_norm_stats([path])
    kw = {"crop": 8, "samples_per_epoch": 60, "seed": 0}
    ds = train_dataset(
        [path], norm, seq_len=4, min_len=2, max_gap_days=15, date_classes=["clear"], **kw
    )
    lengths = set()
    for k in range(len(ds)):
        s = ds[k]
        real = int((~s["pad"]).sum())
        lengths.add(real)
        assert 2 <= real <= 4
        assert not s["pad"][:real].any() and s["pad"][real:].all()  # padding at the end
        d = s["doy"][:real].numpy()
        assert set(d) <= {10, 20, 100, 110, 130, 30, 120}
        assert (np.diff(d) <= 15).all() and (np.diff(d) > 0).all()
        assert (s["doy"][real:] == 0).all()
        # padded dates: no data, no gap, nothing hidden
        assert not s["known"][real:].any() and not s["gap"][real:].any()
        assert not s["hidden"][real:].any() and not s["avail"][real:].any()
    assert lengths == {2, 3, 4}
    with pytest.raises(ConfigError, match=r"sampling\.min_len 4 .*train\.sampling\.seq_len 3"):
        train_dataset([path], norm, seq_len=3, min_len=4, **kw)


def test_split_without_clear_sequences_names_region_and_thresholds(
    tmp_path: Path, train_dataset: Make
) -> None:
    doy = [10, 20, 30]
    path = _series(tmp_path, [["impaired"] * 3, ["unusable"] * 3, ["clear"] * 3], doy)
    norm = compute_norm_stats([path])
    relax = r"region\(s\) synth.*train\.sampling\.min_len.*max_gap_days"
    with pytest.raises(InputDataError, match=relax):
        train_dataset([path], norm, crop=8, seq_len=2, min_len=2, date_classes=["clear"])
    with pytest.raises(InputDataError, match=r"synth.*no 'test' tiles"):
        train_dataset([path], norm, crop=8, split="test")
    # all dates, the default selection, still works
    assert len(train_dataset([path], norm, crop=8, samples_per_epoch=3)[0]["x"]) == 3


def test_gaps_never_on_cloudy_targets_and_never_every_date(
    packed: Path, train_dataset: Make
) -> None:
    norm = _norm(packed)
    ds = train_dataset([packed], norm, crop=16, samples_per_epoch=40, seed=5, masked_fraction=0.5)
    hidden_any = False
    for k in range(len(ds)):
        s = ds[k]
        assert not (s["hidden"] & s["cloud"]).any()  # really cloudy: never scored as hidden
        assert torch.equal(s["hidden"], s["gap"] & s["known"])
        masked = s["gap"].flatten(1).any(1)
        assert int(masked.sum()) <= round(0.5 * 6)  # masked-date share respected
        assert not masked.all()
        hidden_any |= bool(s["hidden"].any())
    assert hidden_any
    full = train_dataset([packed], norm, crop=16, samples_per_epoch=40, seed=5, masked_fraction=1)
    assert all(not full[k]["gap"].flatten(1).any(1).all() for k in range(len(full)))


def test_dilation_grows_gaps(packed: Path, train_dataset: Make) -> None:
    norm = _norm(packed)
    kw = {"crop": 16, "samples_per_epoch": 10, "seed": 2, "masked_fraction": 0.5}
    plain = train_dataset([packed], norm, **kw)
    grown = train_dataset([packed], norm, dilation=2, **kw)
    a = sum(int(plain[k]["gap"].sum()) for k in range(10))
    b = sum(int(grown[k]["gap"].sum()) for k in range(10))
    assert b > a
    for k in range(10):
        assert not (plain[k]["gap"] & ~grown[k]["gap"]).any()


def test_donors_come_from_the_same_region(tmp_path: Path, train_dataset: Make) -> None:
    clear = make_packed(tmp_path / "clear.h5", n_tiles=5, size=16, dates=4)
    with h5py.File(clear, "a") as h5:  # no cloud at all in this region
        for name in h5["tiles"]:
            h5["tiles"][name]["mask"][...] = 0
    cloudy = make_packed(tmp_path / "cloudy.h5", n_tiles=5, size=16, dates=4, seed=1)
    norm = compute_norm_stats([clear, cloudy])
    ds = train_dataset([clear, cloudy], norm, crop=16, samples_per_epoch=30, seed=0)
    files = {ds.tiles[0].file, ds.tiles[-1].file}
    assert files == {0, 1}
    for k in range(len(ds)):
        s = ds[k]
        if s["cloud"].any():
            continue  # a sample of the cloudy region
        assert not s["gap"].any()  # the clear region lends no clouds, the other is not used


def test_eval_items_hide_the_gaps_stored_at_packing_time(packed: Path) -> None:
    norm = _norm(packed)
    tiles = EvalTiles([packed], norm, split="test")
    assert len(tiles) > 0
    for i in range(len(tiles)):
        item = tiles[i]
        with open_packed(packed) as h5:
            ts = read_tile(h5, tiles.tiles[i].tile)
        assert ts.gap is not None and ts.gap.any()
        assert torch.equal(item["gap"], torch.from_numpy(ts.gap))
        assert torch.equal(item["hidden"], torch.from_numpy(ts.clear & ts.gap))
        assert torch.equal(item["avail"].bool(), torch.from_numpy(ts.clear & ~ts.gap))
        assert item["doy"].tolist() == ts.doy.tolist()
    tiles.close()


def test_uncached_reads_of_date_subsets_match_cached(tmp_path: Path, train_dataset: Make) -> None:
    c, i = "clear", "impaired"
    path = _series(tmp_path, [[c, i, c, c, i, c]] * 3, [10, 20, 30, 40, 50, 60])
    norm = compute_norm_stats([path])
    kw = {"crop": 8, "samples_per_epoch": 8, "seq_len": 3, "date_classes": ["clear"]}
    cached = train_dataset([path], norm, **kw)
    direct = train_dataset([path], norm, cache_bytes=0, **kw)
    for k in range(8):
        a, b = cached[k], direct[k]
        assert all(torch.equal(a[key], b[key]) for key in a)
        assert set(a["doy"].tolist()) <= {10, 30, 40, 60}


def _tiles(splits: list[str], mask_value: int = 0) -> dict[str, tuple]:
    rng = np.random.default_rng(0)
    return {
        f"t{i}": (
            split,
            rng.integers(100, 4000, (3, 13, 16, 16)).astype(np.uint16),
            np.full((3, 16, 16), mask_value, dtype=np.uint8),
            np.array([10, 40, 70]),
            None,
        )
        for i, split in enumerate(splits)
    }


def test_empty_training_split_fails_before_training(tmp_path: Path, tiny_params: Params) -> None:
    path = write_packed(tmp_path / "v.h5", _tiles(["val", "test"]), region="oceania")
    with pytest.raises(InputDataError, match=r"oceania.*no training tiles.*val_fraction"):
        train_model([path], tmp_path / "m.pt", tmp_path / "h.csv", tiny_params())
    assert not (tmp_path / "checkpoints").exists()


def test_training_split_without_clear_dates_fails_before_training(
    tmp_path: Path, tiny_params: Params
) -> None:
    path = write_packed(tmp_path / "c.h5", _tiles(["train", "val"], mask_value=1), region="asia")
    with pytest.raises(InputDataError, match=r"asia.*no clear date.*relax"):
        train_model([path], tmp_path / "m.pt", tmp_path / "h.csv", tiny_params())
