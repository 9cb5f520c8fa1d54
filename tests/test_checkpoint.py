"""Checkpoints, resumption, early stopping and bad input of cloudfree.train (tiny runs)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import cloudfree.train.loop as train_loop
from cloudfree.errors import InputDataError
from cloudfree.infer.predictor import load_model
from cloudfree.train.checkpoint import CheckpointStore, fingerprint, rng_state, set_rng_state
from cloudfree.train.control import NonFiniteLossError, StopRequest, TrainingInterrupted
from cloudfree.train.loader import StepSampler
from cloudfree.train.loop import train_model
from cloudfree.train.step import forward_loss, restore_scaler

from .packed import make_packed, write_packed

PARAMS: dict[str, Any] = {
    "model": {"name": "utilise", "widths": [4, 8], "heads": 2},
    "steps": 12,
    "batch_size": 2,
    "crop": 8,
    "lr": 0.01,
    "warmup_steps": 2,
    "val_every": 6,
    "checkpoint_every": 4,
    "device": "cpu",
    "tensorboard": False,
}


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_packed(tmp_path_factory.mktemp("ckpt") / "r.h5", n_tiles=5, size=16, dates=4)


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def _signal_at(monkeypatch: pytest.MonkeyPatch, call: int, signum: int) -> None:
    """Deliver ``signum`` to this process during the ``call``-th training forward pass."""
    real = train_loop.forward_loss
    calls = {"n": 0}

    def patched(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_loop, "forward_loss", patched)


def test_resumed_run_ends_with_the_same_weights(
    packed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = tmp_path / "ref"
    train_model([packed], ref / "model.pt", ref / "history.csv", PARAMS)
    run = tmp_path / "run"
    _signal_at(monkeypatch, 5, signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match=r"SIGTERM after step 5/12"):
        train_model([packed], run / "model.pt", run / "history.csv", PARAMS)
    assert not (run / "model.pt").exists()
    saved = torch.load(run / "checkpoints/state.pt", weights_only=True)
    assert saved["step"] == 5 and len(saved["history"]) == 5
    monkeypatch.undo()
    summary = train_model([packed], run / "model.pt", run / "history.csv", PARAMS)
    assert summary["resumed_from"] == 5 and summary["steps"] == 12
    a, b = _state(ref / "model.pt"), _state(run / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    a, b = _state(ref / "checkpoints/last_model.pt"), _state(run / "checkpoints/last_model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    h_ref, h_run = pd.read_csv(ref / "history.csv"), pd.read_csv(run / "history.csv")
    cols = ["step", "lr", "train_loss", "grad_norm", "val_mae_masked"]
    pd.testing.assert_frame_equal(h_ref[cols], h_run[cols])
    # A finished run leaves no resumable state, only the last weights.
    assert not (run / "checkpoints/state.pt").exists()
    assert load_model(run / "checkpoints/last_model.pt", "cpu").meta["steps_done"] == 12


def test_checkpoint_of_other_params_is_not_resumed(
    packed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _signal_at(monkeypatch, 3, signal.SIGUSR1)
    with pytest.raises(TrainingInterrupted, match="SIGUSR1"):
        train_model([packed], tmp_path / "model.pt", tmp_path / "h.csv", PARAMS)
    monkeypatch.undo()
    summary = train_model(
        [packed], tmp_path / "model.pt", tmp_path / "h.csv", {**PARAMS, "lr": 0.005}
    )
    assert summary["resumed_from"] == 0 and summary["steps"] == 12
    assert (tmp_path / "checkpoints/state.pt.stale").exists() is False  # cleared at the end


def test_store_round_trip_and_fingerprint(packed: Path, tmp_path: Path) -> None:
    fp = fingerprint(PARAMS, [packed])
    assert fp == fingerprint({**PARAMS, "device": "cuda", "num_workers": 4}, [packed])
    assert fp != fingerprint({**PARAMS, "steps": 13}, [packed])
    store = CheckpointStore(tmp_path, fp)
    assert store.load() is None
    torch.manual_seed(3)
    rng = rng_state()
    expected = torch.rand(3)
    store.save({"step": 7, "rng": rng, "history": [{"step": 1, "x": float("nan")}]})
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temporary left behind
    blob = store.load()
    assert blob is not None and blob["step"] == 7
    set_rng_state(blob["rng"])
    assert torch.equal(torch.rand(3), expected)
    assert CheckpointStore(tmp_path, "other").load() is None  # set aside, not resumed
    assert (tmp_path / "state.pt.stale").exists() and not (tmp_path / "state.pt").exists()


def test_step_sampler_shards_by_step() -> None:
    assert list(StepSampler(0, 2, 2)) == [0, 1, 2, 3]
    assert list(StepSampler(1, 3, 2)) == [2, 3, 4, 5]
    ranks = [list(StepSampler(1, 2, 2, world=2, rank=r)) for r in (0, 1)]
    assert ranks == [[4, 5], [6, 7]] and len(StepSampler(1, 3, 2)) == 4


def test_stop_request_restores_handlers() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested and stop.name == "SIGUSR1"
    assert signal.getsignal(signal.SIGUSR1) is before


def test_non_finite_loss_names_the_step_and_keeps_the_checkpoint(
    packed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = train_loop.forward_loss
    calls = {"n": 0}

    def poisoned(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 7 else loss

    monkeypatch.setattr(train_loop, "forward_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"at step 7 .*checkpoint .*state\.pt \(step 6\)"):
        train_model([packed], tmp_path / "model.pt", tmp_path / "h.csv", PARAMS)
    assert torch.load(tmp_path / "checkpoints/state.pt", weights_only=True)["step"] == 6
    assert not (tmp_path / "model.pt").exists()


def test_early_stopping(packed: Path, tmp_path: Path) -> None:
    params = {**PARAMS, "steps": 30, "val_every": 3, "patience": 2, "min_delta": 10.0}
    summary = train_model([packed], tmp_path / "m.pt", tmp_path / "h.csv", params)
    # First validation sets the best; no later one improves by 10: stop at the third.
    assert summary["stopped_early"] and summary["steps"] == 9
    assert torch.load(tmp_path / "m.pt", weights_only=True)["stopped_early"] is True


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


def test_empty_training_split_fails_before_training(tmp_path: Path) -> None:
    path = write_packed(tmp_path / "v.h5", _tiles(["val", "test"]), region="oceania")
    with pytest.raises(InputDataError, match=r"oceania.*no training tiles.*val_fraction"):
        train_model([path], tmp_path / "m.pt", tmp_path / "h.csv", PARAMS)
    assert not (tmp_path / "checkpoints").exists()


def test_training_split_without_clear_dates_fails_before_training(tmp_path: Path) -> None:
    path = write_packed(tmp_path / "c.h5", _tiles(["train", "val"], mask_value=1), region="asia")
    with pytest.raises(InputDataError, match=r"asia.*no clear date.*relax"):
        train_model([path], tmp_path / "m.pt", tmp_path / "h.csv", PARAMS)


def test_baseline_needs_no_training(packed: Path, tmp_path: Path) -> None:
    params = {**PARAMS, "model": {"name": "linear"}}
    summary = train_model([packed], tmp_path / "m.pt", tmp_path / "h.csv", params)
    assert summary["steps"] == 0 and summary["val_mae_masked"] > 0
    pred = load_model(tmp_path / "m.pt", "cpu")
    rng = np.random.default_rng(0)
    s2 = rng.integers(500, 3000, (3, 13, 8, 8)).astype(np.uint16)
    avail = np.ones((3, 8, 8), bool)
    avail[1] = False
    out = pred.reconstruct(s2, avail, np.array([10, 20, 30]))
    expect = (s2[0] + s2[2]) / 2 / 10000
    np.testing.assert_allclose(out[1], expect, atol=1e-4)


def test_a_run_saved_without_fp16_resumes_with_a_fresh_scaler() -> None:
    """A checkpoint from a CPU or bf16 run holds an empty scaler state; an fp16 run (a retry
    landing on an older GPU) resumes from it with a fresh scaler instead of crashing."""
    saved = torch.amp.GradScaler("cpu", enabled=False).state_dict()
    assert saved == {}
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=2.0**10)
    with pytest.raises(RuntimeError):
        scaler.load_state_dict(saved)  # what torch does with it
    restore_scaler(scaler, saved)
    assert scaler.get_scale() == 2.0**10
    other = torch.amp.GradScaler("cpu", enabled=True, init_scale=2.0**10)
    restore_scaler(other, {**scaler.state_dict(), "scale": 8.0})
    assert other.get_scale() == 8.0


def test_a_checkpoint_moved_by_another_rank_is_no_error(tmp_path: Path) -> None:
    """DDP ranks look at the same file: the second to set a stale one aside finds it gone."""
    store = CheckpointStore(tmp_path, "this")
    store.save({"step": 1})
    assert CheckpointStore(tmp_path, "other").load() is None  # rank 0 sets it aside
    CheckpointStore(tmp_path, "other")._set_aside("stale")  # rank 1, a moment later
    assert (tmp_path / "state.pt.stale").exists()


def test_training_passes_the_padding_to_the_model() -> None:
    """Padded dates (sequences shorter than seq_len) must not act as attention keys."""
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x, avail, doy, pad=None):
            seen["pad"] = pad
            return x

    b, t, c, h, w = 1, 3, 2, 4, 4
    batch = {
        "x": torch.rand(b, t, c, h, w), "avail": torch.ones(b, t, 1, h, w),
        "doy": torch.arange(t)[None].float(), "pad": torch.tensor([[False, False, True]]),
        "target": torch.rand(b, t, c, h, w), "hidden": torch.zeros(b, t, 1, h, w, dtype=torch.bool),
        "known": torch.ones(b, t, 1, h, w, dtype=torch.bool),
    }  # fmt: skip
    params = {"masked_weight": 1.0, "observed_weight": 0.1}
    forward_loss(Spy(), batch, params, torch.device("cpu"), None)
    assert torch.equal(seen["pad"], batch["pad"])
