"""Tests of cloudfree.train.sequences: which dates a training sequence may start from."""

from __future__ import annotations

import numpy as np

from cloudfree.train.sequences import eligible_dates, run_lengths


def test_eligible_dates_by_class() -> None:
    classes = np.array([0, 1, 2, 0, 1])
    assert eligible_dates(classes, None).tolist() == [0, 1, 2, 3, 4]
    assert eligible_dates(classes, [0]).tolist() == [0, 3]
    assert eligible_dates(classes, [0, 1]).tolist() == [0, 1, 3, 4]


def test_runs_stop_at_seq_len_and_at_long_gaps() -> None:
    days = np.array([0, 10, 20, 90, 100, 110])
    every = np.arange(6)
    assert run_lengths(days, every, 3, None).tolist() == [3, 3, 3, 3, 2, 1]
    assert run_lengths(days, every, 6, 15).tolist() == [3, 2, 1, 3, 2, 1]
    # gaps are measured between eligible dates: 20 -> 100 jumps over the left-out date 90
    assert run_lengths(days, np.array([0, 2, 4]), 3, 20).tolist() == [2, 1, 1]
    assert run_lengths(days, np.array([0, 1, 2]), 3, 10).tolist() == [3, 2, 1]
