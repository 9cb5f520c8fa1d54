"""Tests of cloudfree.pack.gaps: evaluation gaps and the pixels shared with train tiles."""

import numpy as np
import pandas as pd

from cloudfree.bands import cloudy
from cloudfree.pack.gaps import (
    cloud_covers,
    evaluation_gaps,
    iter_evaluation_gaps,
    train_overlap,
)

from ..series import write_series
from .sample import DATES


def test_evaluation_gaps_come_from_other_tiles():
    masks = {"a": np.zeros((3, 4, 4), np.uint8), "b": np.zeros((3, 4, 4), np.uint8)}
    masks["a"][:, :2] = 1  # half cloudy: a donor for b
    gaps = evaluation_gaps(masks, ["b"], seed=0, date_fraction=1.0)
    assert gaps["b"][:, :2].all() and not gaps["b"][:, 2:].any()


def test_evaluation_gaps_are_deterministic_and_follow_the_date_fraction():
    rng = np.random.default_rng(0)
    masks = {k: (rng.random((20, 6, 6)) < 0.4).astype(np.uint8) for k in ("a", "b", "c")}
    one = evaluation_gaps(masks, ["b", "c"], seed=5, date_fraction=0.5)
    two = evaluation_gaps(masks, ["c", "b"], seed=5, date_fraction=0.5)
    assert set(one) == {"b", "c"}
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])
    assert not evaluation_gaps(masks, ["b"], seed=5, date_fraction=0.0)["b"].any()
    dates_with_gap = one["b"].any(axis=(1, 2)).sum()
    assert 0 < dates_with_gap < 20


def _gaps_with_filtered_candidates(masks, covers, targets, seed, date_fraction):
    """The gaps drawn from a copy of the donor list without the target's own dates."""
    rng = np.random.default_rng(seed)
    donors = [(n, t) for n in sorted(covers) for t, c in enumerate(covers[n]) if 0.05 <= c <= 0.9]
    for target in sorted(targets):
        gap = np.zeros(masks[target].shape, dtype=bool)
        candidates = [d for d in donors if d[0] != target] or donors
        for t in range(gap.shape[0]):
            if not candidates or rng.random() >= date_fraction:
                continue
            name, dt = candidates[rng.integers(len(candidates))]
            gap[t] = cloudy(masks[name][dt])
        yield target, gap


def test_donors_drawn_without_the_target_as_from_a_filtered_list():
    rng = np.random.default_rng(3)
    for trial in range(20):
        names = [f"t{i}" for i in range(int(rng.integers(1, 6)))]
        masks = {n: (rng.random((5, 4, 4)) < rng.random()).astype(np.uint8) for n in names}
        covers = {n: cloud_covers(m) for n, m in masks.items()}
        targets = list(rng.choice(names, size=int(rng.integers(1, len(names) + 1)), replace=False))
        got = dict(iter_evaluation_gaps(masks, covers, targets, seed=trial, date_fraction=0.7))
        want = dict(_gaps_with_filtered_candidates(masks, covers, targets, trial, 0.7))
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{trial} {name}")


def test_donor_masks_of_another_size_are_tiled_to_fit():
    masks = {"a": np.zeros((1, 2, 2), np.uint8), "b": np.zeros((1, 5, 3), np.uint8)}
    masks["a"][0, 0, 0] = 1  # a quarter cloudy
    gap = evaluation_gaps(masks, ["b"], seed=0, date_fraction=1.0)["b"][0]
    expect = np.zeros((5, 3), bool)
    expect[::2, ::2] = True
    np.testing.assert_array_equal(gap, expect)


def test_train_overlap_is_conservative_and_skips_tiles_without_bounds():
    """A train tile covering part of a pixel (grids offset by half a pixel) takes the whole
    pixel; another CRS or a tile without bounds takes none."""
    rows = [
        {"tile": "v", "split": "test", "crs": "EPSG:1", "left": 0.0, "right": 80.0,
         "bottom": 0.0, "top": 80.0},
        {"tile": "t", "split": "train", "crs": "EPSG:1", "left": 55.0, "right": 200.0,
         "bottom": -100.0, "top": 25.0},
        {"tile": "o", "split": "train", "crs": "EPSG:2", "left": 0.0, "right": 80.0,
         "bottom": 0.0, "top": 80.0},
        {"tile": "n", "split": "val", "crs": "EPSG:1", "left": float("nan"), "right": 1.0,
         "bottom": 0.0, "top": 1.0},
    ]  # fmt: skip
    shared = train_overlap(pd.DataFrame(rows), {"v": (8, 8), "n": (1, 1)})
    assert set(shared) == {"v"}
    expected = np.zeros((8, 8), bool)
    expected[5:, 5:] = True  # x 55..80 touches columns 5..7, y 0..25 rows 5..7 (10 m pixels)
    np.testing.assert_array_equal(shared["v"], expected)


def test_train_overlap_of_tiles_moved_onto_each_other(tmp_path):
    manifest = write_series(tmp_path / "tiles", {"a": "train", "b": "test"}, DATES)
    b = manifest["tile"] == "b"  # b moved 4 px onto a: its first 4 columns are a's last 4
    manifest.loc[b, "left"] -= 4 * 10.0
    manifest.loc[b, "right"] -= 4 * 10.0
    shared = train_overlap(manifest, {"a": (16, 16), "b": (16, 16)})
    assert set(shared) == {"b"}
    assert shared["b"][:, :4].all() and not shared["b"][:, 4:].any()
