"""Sentinel-1 as a model input (``train.inputs.s1``): the scaling, the network's S1 stem, the
training samples and a short training run that records it in the model file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.modelfile import read_model_file
from cloudfree.models.registry import build_model, model_spec
from cloudfree.models.s1 import S1_CLIP_DB, scale_s1
from cloudfree.packed import iter_tiles, read_meta
from cloudfree.train.dataset import EvalTiles, TrainDataset
from cloudfree.train.loop import train_model
from cloudfree.train.samples import rotate_flip

from ..packed import make_packed

Make = Callable[..., TrainDataset]


@pytest.fixture(scope="module")
def s1_packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five 16 px tiles with six dates, S1 on most of them."""
    root = tmp_path_factory.mktemp("s1")
    return make_packed(root / "r.h5", n_tiles=5, size=16, dates=6, s1=True)


def _norm(path: Path) -> tuple[list[float], list[float]]:
    return [0.15] * len(read_meta([path]).bands), [0.08] * len(read_meta([path]).bands)


def test_scaling_clips_to_the_db_range_and_marks_missing_dates() -> None:
    assert S1_CLIP_DB == (-25.0, 0.0)
    db = np.zeros((3, 2, 1, 4), np.float32)
    db[0, 0] = [-30.0, -25.0, -12.5, 0.0]
    db[0, 1] = [5.0, -np.inf, -20.0, -5.0]
    db[1] = np.nan  # no S1 that date
    db[2, 0] = [-10.0, np.nan, -10.0, -10.0]  # a pixel missing in one band only
    db[2, 1] = -15.0
    out = scale_s1(db)
    assert out.shape == (3, 3, 1, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(out[0, 1, 0], [1.0, 0.0, 0.2, 0.8])
    np.testing.assert_array_equal(out[0, 2], 1.0)
    np.testing.assert_array_equal(out[1], 0.0)  # values and availability 0
    np.testing.assert_allclose(out[2, :, 0, 1], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(out[2, :, 0, 0], [0.6, 0.4, 1.0])
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match=r"\(T, 2, H, W\)"):
        scale_s1(np.zeros((3, 1, 4, 4)))


def _inputs(b: int = 2, t: int = 4, c: int = 3, size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, c, size, size, generator=g)
    avail = (torch.rand(b, t, size, size, generator=g) > 0.3).float()
    doy = torch.sort(torch.randint(1, 366, (b, t), generator=g), dim=1).values
    s1 = torch.rand(b, t, 3, size, size, generator=g)
    s1[:, 1, 2] = 0.0  # one date without S1
    s1[:, 1, :2] = 0.0
    return x * avail[:, :, None], avail, doy, s1


@pytest.mark.parametrize(
    ("name", "prior"),
    [("utilise", "none"), ("utilise", "linear_offset"), ("utilise_reference", "none")],
)
def test_the_network_takes_s1_in_its_stem(name: str, prior: str) -> None:
    torch.manual_seed(0)
    net = build_model(name, in_channels=3, widths=(8, 16), heads=2, prior=prior, s1_channels=2)
    plain = build_model(name, in_channels=3, widths=(8, 16), heads=2, prior=prior)
    first = net.stem.body[0].weight
    assert first.shape[1] == plain.stem.body[0].weight.shape[1] + 3  # VV, VH, availability
    x, avail, doy, s1 = _inputs()
    out = net(x, avail, doy, s1=s1)
    assert out.shape == x.shape and out.dtype == torch.float32  # the C optical bands
    out.abs().mean().backward()
    assert first.grad is not None and first.grad[:, -3:].abs().sum() > 0
    net.eval()
    with torch.no_grad():
        base = net(x, avail, doy, s1=s1)
        other = net(x, avail, doy, s1=s1.flip(-1))
        assert not torch.allclose(base, other)
        # Padding dates carry nothing, S1 included.
        pad = torch.zeros(2, 4, dtype=torch.bool)
        pad[:, -1] = True
        noise = s1.clone()
        noise[:, -1] = torch.rand_like(noise[:, -1])
        a = net(x, avail, doy, pad, s1=s1)
        assert torch.allclose(a, net(x, avail, doy, pad, s1=noise))


def test_the_network_refuses_missing_or_unexpected_s1() -> None:
    net = build_model(
        "utilise", in_channels=3, widths=(8, 16), heads=2, prior="none", s1_channels=2
    )
    plain = build_model("utilise", in_channels=3, widths=(8, 16), heads=2, prior="none")
    x, avail, doy, s1 = _inputs()
    with pytest.raises(ValueError, match=r"takes Sentinel-1 input .*pass s1 of shape"):
        net(x, avail, doy)
    with pytest.raises(ValueError, match=r"s1 has shape \(2, 4, 2, 16, 16\), expected"):
        net(x, avail, doy, s1=s1[:, :, :2])
    with pytest.raises(ValueError, match="built without S1 input"):
        plain(x, avail, doy, s1=s1)
    with pytest.raises(ConfigError, match="s1_channels must be 0 or 2"):
        build_model("utilise", in_channels=3, widths=(8, 16), heads=2, prior="none", s1_channels=3)


def test_train_inputs_s1_builds_networks_with_s1_and_baselines_without(
    tiny_params: Callable[..., dict[str, Any]],
) -> None:
    on = tiny_params(inputs={"s1": True})
    off = tiny_params()
    assert off["inputs"] == {"s1": False}
    name, kwargs = model_spec(on, 13)
    assert name == "utilise" and kwargs == {
        "in_channels": 13,
        "widths": [4, 8],
        "heads": 2,
        "prior": "linear_offset",
        "s1_channels": 2,
    }
    assert model_spec(off, 13)[1]["s1_channels"] == 0
    ref = tiny_params(inputs={"s1": True}, model={"name": "utilise_reference"})
    name, kwargs = model_spec(ref, 3)
    net = build_model(name, **kwargs)
    assert net.s1_channels == 2 and net.widths == [64, 64, 64, 64, 128]
    base = tiny_params(inputs={"s1": True}, model={"name": "linear"})
    name, kwargs = model_spec(base, 3)
    assert "s1_channels" not in kwargs
    model = build_model(name, **kwargs)
    x, avail, doy, s1 = _inputs()
    assert torch.equal(model(x, avail, doy, s1=s1), model(x, avail, doy))  # S1 ignored


def _locate(item: dict[str, torch.Tensor], path: Path) -> tuple[str, np.ndarray, int, bool]:
    """The tile, date indices and rotation/flip of a full-tile crop (by its optical target)."""
    for tile in iter_tiles(path, "train"):
        idx = np.flatnonzero(np.isin(tile.doy, item["doy"].numpy()))
        if len(idx) != len(item["doy"]):
            continue
        known = item["known"].numpy()
        for k in range(4):
            for flip in (False, True):
                (clear,) = rotate_flip([tile.clear[idx]], k, flip)
                if np.array_equal(clear, known):
                    return tile.tile, idx, k, flip
    raise AssertionError("crop not found")


def test_samples_hold_s1_of_the_same_dates_crop_and_flips(
    s1_packed: Path, train_dataset: Make
) -> None:
    norm = _norm(s1_packed)
    ds = train_dataset(
        [s1_packed],
        norm,
        crop=16,
        with_s1=True,
        augment={"flips": True, "gain": 0.0, "offset": 0.0, "doy_shift": 0},
    )
    tiles = {t.tile: t for t in iter_tiles(s1_packed)}
    turned = 0
    for i in range(8):
        item = ds[i]
        assert item["s1"].shape == (len(item["doy"]), 3, 16, 16)
        name, idx, k, flip = _locate(item, s1_packed)
        (want,) = rotate_flip([scale_s1(tiles[name].s1[idx])], k, flip)
        np.testing.assert_array_equal(item["s1"].numpy(), want)
        turned += k > 0 or flip
    assert turned  # the flips and rotations were exercised
    missing = item["s1"][:, 2].flatten(1).amax(1)
    assert set(missing.tolist()) <= {0.0, 1.0}


def test_s1_changes_nothing_optical_and_gets_no_radiometric_jitter(
    s1_packed: Path, train_dataset: Make
) -> None:
    norm = _norm(s1_packed)
    jitter = {"flips": True, "gain": 0.1, "offset": 0.05, "doy_shift": 0}
    plain = train_dataset([s1_packed], norm, crop=8, augment=jitter)
    radar = train_dataset([s1_packed], norm, crop=8, augment=jitter, with_s1=True)
    still = train_dataset(
        [s1_packed], norm, crop=8, with_s1=True, augment={**jitter, "gain": 0.0, "offset": 0.0}
    )
    for i in range(4):
        a, b, c = plain[i], radar[i], still[i]
        assert "s1" not in a and set(b) == {*a, "s1"}
        assert all(torch.equal(a[key], b[key]) for key in a)  # same crops, dates, gaps
        assert torch.equal(b["s1"], c["s1"]) and not torch.equal(b["x"], c["x"])


def test_padding_dates_have_no_s1(s1_packed: Path, train_dataset: Make) -> None:
    norm = _norm(s1_packed)
    ds = train_dataset([s1_packed], norm, crop=8, with_s1=True, seq_len=8, min_len=2)
    item = ds[0]
    pad = item["pad"]
    assert pad.any() and (item["s1"][pad] == 0).all()
    assert item["s1"][~pad][:, 2].any()


def test_eval_tiles_hold_the_whole_tile_s1(s1_packed: Path) -> None:
    tiles = EvalTiles([s1_packed], _norm(s1_packed), split="val", with_s1=True)
    tile = next(iter_tiles(s1_packed, "val"))
    np.testing.assert_array_equal(tiles[0]["s1"].numpy(), scale_s1(tile.s1))
    assert "s1" not in EvalTiles([s1_packed], _norm(s1_packed), split="val")[0]


def test_a_file_without_s1_is_refused_before_training(
    small_packed: Path,
    tiny_params: Callable[..., dict[str, Any]],
    train_dataset: Make,
    tmp_path: Path,
) -> None:
    want = rf"train\.inputs\.s1 is true but {small_packed}.* has no s1 dataset: pack a source"
    with pytest.raises(InputDataError, match=want):
        train_dataset([small_packed], _norm(small_packed), crop=8, with_s1=True)
    with pytest.raises(InputDataError, match=want):
        EvalTiles([small_packed], _norm(small_packed), with_s1=True)
    params = tiny_params(inputs={"s1": True})
    with pytest.raises(InputDataError, match=want):
        train_model([small_packed], tmp_path / "m.pt", tmp_path / "h.csv", params)
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "checkpoints").exists()
    # A baseline takes no S1: it runs on the same file.
    base = tiny_params(inputs={"s1": True}, model={"name": "linear"})
    train_model([small_packed], tmp_path / "b.pt", tmp_path / "b.csv", base)
    x, avail, doy, _ = _inputs(c=13)
    assert read_model_file(tmp_path / "b.pt")[0](x, avail, doy).shape == x.shape


def test_training_with_s1_records_it_in_the_model_file(
    s1_packed: Path, tiny_params: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    params = tiny_params(inputs={"s1": True}, steps=6, val_every=3)
    summary = train_model([s1_packed], tmp_path / "m.pt", tmp_path / "h.csv", params)
    assert summary["steps"] == 6 and np.isfinite(summary["final_train_loss"])
    assert np.isfinite(summary["val_mae_masked"])
    model, meta = read_model_file(tmp_path / "m.pt")
    assert model.s1_channels == 2 and meta["model"]["kwargs"]["s1_channels"] == 2
    assert meta["params"]["inputs"] == {"s1": True}
    plain = tiny_params(steps=2, val_every=2)
    train_model([s1_packed], tmp_path / "p.pt", tmp_path / "p.csv", plain)
    model, meta = read_model_file(tmp_path / "p.pt")
    assert model.s1_channels == 0 and meta["params"]["inputs"] == {"s1": False}
