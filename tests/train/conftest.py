"""Fixtures of the training tests: datasets built with the schema's sampling settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from cloudfree.config import section
from cloudfree.train.dataset import TrainDataset


@pytest.fixture(scope="session")
def train_dataset() -> Callable[..., TrainDataset]:
    """``train_dataset(paths, norm, **keywords)``: a :class:`TrainDataset` whose seed,
    sampling and augment keywords not given come from the schema's ``train`` section, without
    the radiometric jitter and day-of-year shift (tests of those give them)."""
    train = section("train")
    still = {**train["augment"], "gain": 0.0, "offset": 0.0, "doy_shift": 0}

    def make(paths: Sequence[Path], norm: Any, **keywords: Any) -> TrainDataset:
        given = {
            "seed": train["seed"], "samples_per_epoch": 1000, "augment": still,
            **train["sampling"],
        }  # fmt: skip
        return TrainDataset(paths, norm, **{**given, **keywords})

    return make
