"""Tests of what keeps long series cheap to train: the default sequence length and the
single reconstruction per val tile of a validation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.models.network import UTILISE
from cloudfree.packed import compute_norm_stats
from cloudfree.train.dataset import AUTO_SEQ_LEN, EvalTiles, TrainDataset
from cloudfree.train.monitor import TensorBoardLog
from cloudfree.train.validate import evaluate, reconstruct
from tests.packed import make_packed

Make = Callable[..., TrainDataset]


@pytest.fixture(scope="module")
def long_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 16 px tiles (two train, one val, one test) of AUTO_SEQ_LEN + 10 dates, 1 band."""
    folder = tmp_path_factory.mktemp("long")
    return make_packed(folder / "p.h5", n_tiles=4, size=16, dates=AUTO_SEQ_LEN + 10,
                       bands=["NDVI"], seed=3)  # fmt: skip


def test_default_seq_len_caps_a_long_series(long_series: Path, train_dataset: Make) -> None:
    norm = compute_norm_stats([long_series])
    ds = train_dataset([long_series], norm, crop=8, samples_per_epoch=200)
    assert ds.seq_len == ds.min_len == AUTO_SEQ_LEN
    ref = ds.tiles[0]
    doy = ds.dates[(ref.file, ref.tile)].doy
    firsts = set()
    for i in range(200):
        item = ds[i]
        assert item["x"].shape[0] == AUTO_SEQ_LEN and not item["pad"].any()
        # consecutive dates of one tile: its days of year, in order, a window of the series
        days = item["doy"].numpy()
        for tile in ds.tiles:
            d = ds.dates[(tile.file, tile.tile)].doy
            starts = [s for s in range(len(d) - AUTO_SEQ_LEN + 1)
                      if np.array_equal(d[s : s + AUTO_SEQ_LEN], days)]  # fmt: skip
            if starts:
                firsts.add(starts[0])
                break
        else:
            raise AssertionError(f"sample {i}: not a run of consecutive dates of a tile")
    assert len(doy) == AUTO_SEQ_LEN + 10
    assert firsts == set(range(11))  # every start is drawn


def test_short_series_keep_every_date(tmp_path: Path, train_dataset: Make) -> None:
    """A 12-date series (the default run's) trains on all its dates, as without the cap."""
    path = make_packed(tmp_path / "p.h5", n_tiles=4, size=16, dates=12, bands=["NDVI"])
    ds = train_dataset([path], compute_norm_stats([path]), crop=8)
    assert ds.seq_len == ds.min_len == 12 < AUTO_SEQ_LEN
    assert ds[0]["x"].shape[0] == 12 and not ds[0]["pad"].any()


def test_explicit_seq_len_beyond_the_cap(long_series: Path, train_dataset: Make) -> None:
    ds = train_dataset([long_series], compute_norm_stats([long_series]), crop=8,
                       seq_len=AUTO_SEQ_LEN + 10)  # fmt: skip
    assert ds.seq_len == AUTO_SEQ_LEN + 10
    assert ds[0]["x"].shape[0] == AUTO_SEQ_LEN + 10


def _model() -> UTILISE:
    torch.manual_seed(0)
    return UTILISE(1, [8, 16], heads=2, prior="linear_offset").eval()


def test_kept_reconstruction_is_the_scored_one(long_series: Path) -> None:
    norm = compute_norm_stats([long_series])
    tiles = EvalTiles([long_series], norm, split="val")
    model, std = _model(), norm[1].astype(np.float32)
    kept: dict = {}
    with_keep = evaluate(model, tiles, std, None, keep=kept)
    assert evaluate(model, tiles, std, None) == with_keep
    assert kept["item"]["tile"] == tiles.tiles[0].tile
    assert torch.equal(kept["pred"], reconstruct(model, tiles[0], None))
    # the scores from the kept reconstruction, computed afresh
    item = tiles[0]
    err = (kept["pred"] - item["target"]) * torch.as_tensor(std)[:, None, None]
    sel = err.permute(1, 0, 2, 3)[:, item["hidden"]]
    assert with_keep["count"] == sel.numel()
    assert with_keep["mae"] == pytest.approx(float(sel.abs().mean()), rel=1e-6)
    tiles.close()


class Refuses(torch.nn.Module):
    """A model that must not run."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, *args, **kwargs):
        raise AssertionError("the example images reconstructed the tile again")


def test_example_images_reuse_the_validation(long_series: Path, tmp_path: Path) -> None:
    norm = compute_norm_stats([long_series])
    tiles = EvalTiles([long_series], norm, split="val")
    kept: dict = {}
    evaluate(_model(), tiles, norm[1].astype(np.float32), None, keep=kept)
    assert kept["pred"] is not None
    tb = TensorBoardLog(tmp_path / "tb", 0)
    tb.example(1, Refuses(), tiles, norm, ["NDVI"], None, kept)
    tb.close()
    assert any((tmp_path / "tb").iterdir())
    with pytest.raises(AssertionError, match="again"):  # without it the tile is run again
        TensorBoardLog(tmp_path / "tb2", 0).example(1, Refuses(), tiles, norm, ["NDVI"], None)
    tiles.close()
