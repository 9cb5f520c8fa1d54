"""Tests of cloudfree.data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cloudfree.data import (
    EvalTiles,
    TrainDataset,
    compute_norm_stats,
    read_meta,
    worker_init_fn,
)
from cloudfree.errors import ConfigError
from cloudfree.packing import open_packed, read_tile

from .packed import make_packed, write_packed


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_packed(tmp_path_factory.mktemp("data") / "a.h5", n_tiles=5, size=32, dates=6)


def _norm(path: Path) -> tuple[np.ndarray, np.ndarray]:
    return compute_norm_stats([path])


def test_train_sample_shapes_and_masks(packed: Path) -> None:
    ds = TrainDataset([packed], _norm(packed), crop=16, samples_per_epoch=20, seed=3)
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


def test_train_targets_match_file(packed: Path) -> None:
    mean, std = _norm(packed)
    ds = TrainDataset([packed], (mean, std), crop=32, samples_per_epoch=5, augment=False)
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


def test_determinism(packed: Path) -> None:
    norm = _norm(packed)
    a = TrainDataset([packed], norm, crop=16, samples_per_epoch=6, seed=1)
    b = TrainDataset([packed], norm, crop=16, samples_per_epoch=6, seed=1)
    c = TrainDataset([packed], norm, crop=16, samples_per_epoch=6, seed=2)
    for i in (0, 5, 3):
        sa, sb = a[i], b[i]
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(a[i]["x"], c[i]["x"]) for i in range(6))


def test_dataloader_workers(packed: Path) -> None:
    ds = TrainDataset([packed], _norm(packed), crop=16, samples_per_epoch=8, seed=0)
    ds[0]  # open a handle in the parent first: workers must not reuse it
    kw = {"batch_size": 4, "worker_init_fn": worker_init_fn}
    parallel = list(DataLoader(ds, num_workers=2, **kw))
    serial = list(DataLoader(ds, num_workers=0, **kw))
    assert len(parallel) == 2
    for p, s in zip(parallel, serial, strict=True):
        assert p["x"].shape == (4, 6, 13, 16, 16)
        assert all(torch.equal(p[k], s[k]) for k in p)


def test_norm_stats_known_values(tmp_path: Path) -> None:
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
    mean, std = compute_norm_stats([path])
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


def test_variable_dates_and_sizes(tmp_path: Path) -> None:
    path = make_packed(
        tmp_path / "v.h5", n_tiles=4, size=[24, (20, 28), 24, 24], dates=[5, 8, 6, 6]
    )
    meta = read_meta([path])
    assert [t.dates for t in meta.tiles] == [5, 8, 6, 6]
    ds = TrainDataset([path], compute_norm_stats([path]), crop=20, samples_per_epoch=10)
    assert ds.seq_len == 5
    assert {ds[i]["x"].shape for i in range(10)} == {(5, 13, 20, 20)}
    with pytest.raises(ConfigError, match="crop"):
        TrainDataset([path], compute_norm_stats([path]), crop=21)
    with pytest.raises(ConfigError, match="seq_len"):
        TrainDataset([path], compute_norm_stats([path]), crop=8, seq_len=6)
