"""Tests of cloudfree.train.loader: DataLoader workers, their measured count, the sampler."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from cloudfree.packed import compute_norm_stats
from cloudfree.train.dataset import TrainDataset
from cloudfree.train.loader import (
    LoaderSettings,
    StepSampler,
    calibrate_loader,
    training_loader,
    worker_init_fn,
)

from ..packed import make_packed

Make = Callable[..., TrainDataset]


def _norm(path: Path) -> tuple[np.ndarray, np.ndarray]:
    return compute_norm_stats([path])


def test_dataloader_workers(packed: Path, train_dataset: Make) -> None:
    ds = train_dataset([packed], _norm(packed), crop=16, samples_per_epoch=8, seed=0)
    ds[0]  # open a handle in the parent first: workers must not reuse it
    kw = {"batch_size": 4, "worker_init_fn": worker_init_fn}
    parallel = list(DataLoader(ds, num_workers=2, **kw))
    serial = list(DataLoader(ds, num_workers=0, **kw))
    assert len(parallel) == 2
    for p, s in zip(parallel, serial, strict=True):
        assert p["x"].shape == (4, 6, 13, 16, 16)
        assert all(torch.equal(p[k], s[k]) for k in p)


def test_loader_with_workers_over_several_files(tmp_path: Path, train_dataset: Make) -> None:
    a = make_packed(tmp_path / "a.h5", n_tiles=5, size=16, dates=4, region="a")
    b = make_packed(tmp_path / "b.h5", n_tiles=5, size=16, dates=4, region="b", seed=2)
    ds = train_dataset([a, b], compute_norm_stats([a, b]), crop=16, samples_per_epoch=12)
    settings = LoaderSettings(num_workers=2, prefetch_factor=2)
    parallel = list(DataLoader(ds, batch_size=4, **settings.kwargs()))
    serial = list(DataLoader(ds, batch_size=4, **LoaderSettings(0).kwargs()))
    for p, s in zip(parallel, serial, strict=True):
        assert set(p) >= {"x", "target", "gap", "cloud", "doy", "pad", "hidden"}
        assert all(torch.equal(p[k], s[k]) for k in p)


def test_calibrate_loader_measures_each_worker_count(packed: Path, train_dataset: Make) -> None:
    ds = train_dataset([packed], _norm(packed), crop=16, samples_per_epoch=64)
    settings, rates = calibrate_loader(ds, 4, max_workers=1, batches=3)
    assert set(rates) == {0, 1} and all(r > 0 for r in rates.values())
    assert settings.num_workers in rates and not settings.pin_memory


def test_no_hdf5_file_is_open_when_workers_fork(
    packed: Path, monkeypatch, train_dataset: Make
) -> None:
    """Workers open their own files: the parent's handles are closed before the fork."""
    ds = train_dataset([packed], _norm(packed), crop=16, samples_per_epoch=64)
    ds[0]  # the main process read: a handle is open here
    assert ds.reader._handles
    seen = []
    real = torch.utils.data.DataLoader.__iter__

    def spy(loader):
        seen.append(dict(loader.dataset.reader._handles))
        return real(loader)

    monkeypatch.setattr(torch.utils.data.DataLoader, "__iter__", spy)
    calibrate_loader(ds, 4, max_workers=1, batches=2)
    assert seen[-1] == {}  # the loader with one worker started with no open file


def test_step_sampler_shards_by_step() -> None:
    assert list(StepSampler(0, 2, 2)) == [0, 1, 2, 3]
    assert list(StepSampler(1, 3, 2)) == [2, 3, 4, 5]
    ranks = [list(StepSampler(1, 2, 2, world=2, rank=r)) for r in (0, 1)]
    assert ranks == [[4, 5], [6, 7]] and len(StepSampler(1, 3, 2)) == 4


def test_the_training_loader_starts_at_the_given_step(packed: Path, train_dataset: Make) -> None:
    ds = train_dataset([packed], _norm(packed), crop=16, samples_per_epoch=16, seed=4)
    cpu = torch.device("cpu")
    batches = list(training_loader(ds, 2, 0, first_step=5, steps=8, world=1, rank=0, device=cpu))
    assert len(batches) == 3
    for step, batch in zip(range(5, 8), batches, strict=True):
        expect = [ds[i] for i in (2 * step, 2 * step + 1)]
        assert torch.equal(batch["x"], torch.stack([e["x"] for e in expect]))
