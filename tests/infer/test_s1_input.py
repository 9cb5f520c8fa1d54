"""Inference with a model trained with Sentinel-1 input (``train.inputs.s1``): it reads each
tile's ``s1``, in the same windows as the optical; files without ``s1`` are refused; model
files from before S1 input still load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.errors import InputDataError
from cloudfree.infer.predictor import Predictor
from cloudfree.infer.region import infer_region
from cloudfree.modelfile import read_model_file, save_model_file
from cloudfree.models.registry import build_model
from cloudfree.models.s1 import scale_s1
from cloudfree.packed import iter_tiles
from cloudfree.train.loop import train_model

from ..model_file import infer_settings, load_predictor
from ..packed import make_packed


@pytest.fixture(scope="module")
def s1_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_params: Callable[..., dict[str, Any]]
) -> dict[str, Path]:
    """A packed file with S1, one without, and a model trained with S1 on the first."""
    root = tmp_path_factory.mktemp("s1_infer")
    packed = make_packed(root / "r.h5", n_tiles=5, size=32, dates=6, seed=2, s1=True)
    bare = make_packed(root / "bare.h5", n_tiles=5, size=32, dates=6, seed=2)
    params = tiny_params(inputs={"s1": True}, steps=8, val_every=4, crop=16)
    train_model([packed], root / "model.pt", root / "history.csv", params)
    return {"root": root, "packed": packed, "bare": bare, "model": root / "model.pt"}


def test_the_predictor_reads_s1_and_its_output_depends_on_it(s1_run: dict[str, Path]) -> None:
    pred = load_predictor(s1_run["model"])
    assert pred.s1_channels == 2
    tile = next(iter_tiles(s1_run["packed"], "val"))
    assert np.isnan(tile.s1).all(axis=(1, 2, 3)).any()  # a date without S1
    out = pred.reconstruct(tile.s2, tile.clear, tile.doy, s1=tile.s1)
    assert out.shape == tile.s2.shape and np.isfinite(out).all()
    shifted = pred.reconstruct(tile.s2, tile.clear, tile.doy, s1=tile.s1 + 6.0)
    assert np.abs(shifted - out).max() > 1e-4
    with pytest.raises(InputDataError, match=r"trained with Sentinel-1 input .*no s1"):
        pred.reconstruct(tile.s2, tile.clear, tile.doy)
    with pytest.raises(InputDataError, match=r"s1 must be \(T, 2, H, W\)"):
        pred.reconstruct(tile.s2, tile.clear, tile.doy, s1=tile.s1[:, :1])


class EchoS1(torch.nn.Module):
    """A pixel-wise stand-in network: every band of its output is the scaled VV input."""

    s1_channels, multiple = 2, 4

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, avail, doy, pad=None, *, s1):
        assert x.shape[-2] % self.multiple == 0 and s1.shape[-2:] == x.shape[-2:]
        return s1[:, :, :1].expand_as(x) + self.anchor


@pytest.mark.parametrize("window", [16, 64])
def test_windows_cut_s1_like_the_optical(window: int) -> None:
    rng = np.random.default_rng(0)
    s1 = rng.uniform(-30, 2, (3, 2, 30, 42)).astype(np.float32)
    s1[1] = np.nan
    pred = Predictor(
        EchoS1(), mean=[0.0] * 2, std=[1.0] * 2, bands=["B04", "B08"], device=torch.device("cpu"),
        window=window, overlap=4, batch_size=2, amp=False, scale=1.0,
    )  # fmt: skip
    s2 = np.ones((3, 2, 30, 42), np.uint16)
    out = pred.reconstruct(s2, np.ones((3, 30, 42), bool), np.array([10, 50, 90]), s1=s1)
    want = np.broadcast_to(scale_s1(s1)[:, :1], out.shape)
    np.testing.assert_allclose(out, want, atol=1e-6)


def test_a_region_with_s1_is_reconstructed(s1_run: dict[str, Path]) -> None:
    root = s1_run["root"]
    settings = infer_settings(window=16, overlap=4)
    written = infer_region(
        s1_run["model"], s1_run["packed"], root / "tiles", root / "eval.h5", **settings
    )
    tiles = list(iter_tiles(s1_run["packed"]))
    assert written == [t.tile for t in tiles]
    pred = load_predictor(s1_run["model"], window=16, overlap=4)
    with h5py.File(root / "eval.h5") as ev:
        for tile in tiles:
            if tile.gap is not None:
                want = pred.reconstruct(tile.s2, tile.clear & ~tile.gap, tile.doy, s1=tile.s1)
                np.testing.assert_allclose(ev[f"tiles/{tile.tile}/pred"][()], want, atol=1e-5)


def test_a_region_without_s1_is_refused_before_anything_is_written(
    s1_run: dict[str, Path],
) -> None:
    root, model, bare = s1_run["root"], s1_run["model"], s1_run["bare"]
    want = (
        f"{model} was trained with Sentinel-1 input (train.inputs.s1) but {bare} has no s1 "
        "dataset: pack a source with Sentinel-1 (synthetic.s1, sen12mscrts s1, folder s1, stac.s1)"
    )
    with pytest.raises(InputDataError) as err:
        infer_region(model, bare, root / "bare_tiles", root / "bare.eval.h5", **infer_settings())
    assert str(err.value) == want
    assert not (root / "bare_tiles").exists() and not (root / "bare.eval.h5").exists()


def test_a_model_file_from_before_s1_input_loads_and_ignores_s1(
    s1_run: dict[str, Path], tmp_path: Path
) -> None:
    """Kwargs without ``s1_channels``, params without ``inputs``: a model without S1."""
    torch.manual_seed(0)
    kwargs = {"in_channels": 13, "widths": [8, 16], "heads": 2, "prior": "none"}
    net = build_model("utilise", **kwargs)
    path = save_model_file(
        tmp_path / "old.pt", name="utilise", kwargs=kwargs, state_dict=net.state_dict(),
        mean=[0.15] * 13, std=[0.08] * 13, bands=S2_L1C_BANDS, regions=["synth"],
        params={"crop": 16, "model": {"name": "utilise", **kwargs}},
    )  # fmt: skip
    model, meta = read_model_file(path)
    assert model.s1_channels == 0 and meta["params"]["inputs"] == {"s1": False}
    assert meta["params"]["crop"] == 16
    pred = load_predictor(path)
    assert pred.s1_channels == 0
    tile = next(iter_tiles(s1_run["packed"], "val"))
    np.testing.assert_array_equal(
        pred.reconstruct(tile.s2, tile.clear, tile.doy),
        pred.reconstruct(tile.s2, tile.clear, tile.doy, s1=tile.s1),
    )
    out = tmp_path / "tiles"
    infer_region(path, s1_run["bare"], out, tmp_path / "eval.h5", **infer_settings())
    assert sorted(p.name for p in out.iterdir() if p.is_dir())
