"""Tests of cloudfree.train.loop: training runs on a tiny synthetic packed file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import cloudfree.train.loop as train_loop
from cloudfree.errors import ConfigError
from cloudfree.modelfile import read_model_file
from cloudfree.packed import compute_norm_stats, iter_tiles
from cloudfree.train.control import NonFiniteLossError
from cloudfree.train.history import HISTORY_COLUMNS
from cloudfree.train.loop import train_model

from ..packed import write_packed

Params = Callable[..., dict[str, Any]]


def _constant_guess_mae(packed: Path) -> float:
    """Val masked MAE of predicting the per-band training mean everywhere."""
    mean, _ = compute_norm_stats([packed])
    errs = []
    for tile in iter_tiles(packed, "val"):
        refl = tile.s2.astype(np.float64) / 10000
        hidden = tile.clear & tile.gap
        errs.append(np.abs(refl - mean[None, :, None, None]).transpose(1, 0, 2, 3)[:, hidden])
    return float(np.concatenate(errs, axis=1).mean())


def _meta(path: Path) -> dict[str, Any]:
    return read_model_file(path)[1]


def test_training_writes_model_and_history(trained: dict[str, Any], packed: Path) -> None:
    summary = trained["summary"]
    assert summary["steps"] == 60 and summary["parameters"] > 0
    assert summary["best_step"] in (20, 40, 60)
    hist = pd.read_csv(trained["history"])
    assert tuple(hist.columns) == HISTORY_COLUMNS
    assert list(hist["step"]) == list(range(1, 61))
    validated = hist["val_mae_masked"].notna()
    assert list(hist.loc[validated, "step"]) == [20, 40, 60]
    assert hist["val_psnr_masked"].notna().sum() == 3
    assert (hist["grad_norm"] > 0).all() and hist["seconds"].is_monotonic_increasing
    loss = hist["train_loss"].to_numpy()
    assert loss[-10:].mean() < 0.85 * loss[:5].mean()
    assert hist["val_mae_masked"].dropna().iloc[-1] < hist["val_mae_masked"].dropna().iloc[0]
    assert summary["val_mae_masked"] < 0.9 * _constant_guess_mae(packed)
    blob = torch.load(trained["model"], weights_only=True)
    assert blob["format_version"] == 2
    assert blob["model"]["name"] == "utilise"
    assert blob["model"]["kwargs"]["in_channels"] == 13
    assert len(blob["norm"]["mean"]) == len(blob["bands"]) == 13
    assert blob["regions"] == ["synth"] and blob["best_step"] == summary["best_step"]
    assert blob["params"]["steps"] == 60
    assert blob["val_mae_masked"] == pytest.approx(summary["val_mae_masked"])
    best = hist.loc[hist["step"] == blob["best_step"], "val_mae_masked"].item()
    assert best == pytest.approx(hist["val_mae_masked"].min())


def test_reproducible(packed: Path, trained_params: dict[str, Any], tmp_path: Path) -> None:
    params = {**trained_params, "steps": 4, "val_every": 100}
    runs = []
    for i in range(2):
        train_model([packed], tmp_path / f"m{i}.pt", tmp_path / f"h{i}.csv", params)
        runs.append(pd.read_csv(tmp_path / f"h{i}.csv")["train_loss"].to_numpy())
    np.testing.assert_array_equal(runs[0], runs[1])
    a = torch.load(tmp_path / "m0.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "m1.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_without_validation(trained_params: dict[str, Any], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tiles = {
        name: (
            "train",
            rng.integers(100, 4000, (4, 13, 16, 16)).astype(np.uint16),
            rng.choice(np.array([0, 0, 1, 3], dtype=np.uint8), (4, 16, 16)),
            np.array([10, 40, 70, 100]),
            None,
        )
        for name in ("a", "b")
    }
    path = write_packed(tmp_path / "t.h5", tiles)
    params = {**trained_params, "steps": 3, "val_every": 1}
    summary = train_model([path], tmp_path / "m.pt", tmp_path / "h.csv", params)
    assert summary["best_step"] == 3 and np.isnan(summary["val_mae_masked"])
    hist = pd.read_csv(tmp_path / "h.csv")
    assert hist["val_mae_masked"].isna().all() and len(hist) == 3
    assert _meta(tmp_path / "m.pt")["best_step"] == 3


def test_compile_option_wraps_the_training_model(
    packed: Path, trained_params: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = []

    def fake_compile(model: torch.nn.Module) -> torch.nn.Module:
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    params = {**trained_params, "steps": 2, "compile": True, "tensorboard": False}
    train_model([packed], tmp_path / "m.pt", tmp_path / "h.csv", params)
    assert len(compiled) == 1
    # The model file holds the plain module's weights, loadable without compiling.
    assert _meta(tmp_path / "m.pt")["params"]["compile"] is True


def test_training_with_u_tilise_sampling(
    packed: Path, trained_params: dict[str, Any], tmp_path: Path
) -> None:
    sampling = {
        "seq_len": 4, "min_len": 3, "max_gap_days": None, "date_classes": ["clear", "impaired"],
        "masked_fraction": 0.5, "dilation": 1, "masking": "utilise",
    }  # fmt: skip
    params = {**trained_params, "steps": 4, "val_every": 2, "sampling": sampling}
    summary = train_model([packed], tmp_path / "m.pt", tmp_path / "h.csv", params)
    assert summary["best_step"] in (2, 4)
    assert _meta(tmp_path / "m.pt")["params"]["sampling"] == sampling


def test_num_workers_auto_is_measured(
    packed: Path, trained_params: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    params = {**trained_params, "steps": 30, "val_every": 30, "num_workers": "auto"}
    train_model([packed], tmp_path / "m.pt", tmp_path / "h.csv", params)
    assert "DataLoader workers:" in caplog.text and "batches/s by workers: 0:" in caplog.text
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training steps")]
    assert steps[0].startswith("training steps: 1 of 30 (3 %)") and "ETA" in steps[0]
    assert steps[-1].startswith("training steps: 30 of 30 (100 %)")


def test_early_stopping(small_packed: Path, tiny_params: Params, tmp_path: Path) -> None:
    params = tiny_params(steps=30, val_every=3, patience=2, min_delta=10.0)
    summary = train_model([small_packed], tmp_path / "m.pt", tmp_path / "h.csv", params)
    # First validation sets the best; no later one improves by 10: stop at the third.
    assert summary["stopped_early"] and summary["steps"] == 9
    assert torch.load(tmp_path / "m.pt", weights_only=True)["stopped_early"] is True


def test_non_finite_loss_names_the_step_and_keeps_the_checkpoint(
    small_packed: Path, tiny_params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = train_loop.forward_loss
    calls = {"n": 0}

    def poisoned(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 7 else loss

    monkeypatch.setattr(train_loop, "forward_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"at step 7 .*checkpoint .*state\.pt \(step 6\)"):
        train_model([small_packed], tmp_path / "model.pt", tmp_path / "h.csv", tiny_params())
    assert torch.load(tmp_path / "checkpoints/state.pt", weights_only=True)["step"] == 6
    assert not (tmp_path / "model.pt").exists()


def test_unresolved_params_are_refused(small_packed: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.steps.*cloudfree\.config\.section"):
        train_model([small_packed], tmp_path / "m.pt", tmp_path / "h.csv", {"device": "cpu"})
