"""Tests of cloudfree.train.checkpoint: the store, resumption, and what a resumed run ends with."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import cloudfree.train.loop as train_loop
from cloudfree.modelfile import read_model_file
from cloudfree.train.checkpoint import (
    CheckpointStore,
    RunState,
    Trainable,
    checkpoint_step,
    fingerprint,
    release,
    restore_scaler,
    resume_run,
    rng_state,
    save_run,
    set_rng_state,
)
from cloudfree.train.control import TrainingInterrupted
from cloudfree.train.loop import train_model

Params = Callable[..., dict[str, Any]]


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
    small_packed: Path, tiny_params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed, params = small_packed, tiny_params()
    ref = tmp_path / "ref"
    train_model([packed], ref / "model.pt", ref / "history.csv", params)
    run = tmp_path / "run"
    _signal_at(monkeypatch, 5, signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match=r"SIGTERM after step 5/12"):
        train_model([packed], run / "model.pt", run / "history.csv", params)
    assert not (run / "model.pt").exists()
    saved = torch.load(run / "checkpoints/state.pt", weights_only=True)
    assert saved["step"] == 5 and len(saved["history"]) == 5
    monkeypatch.undo()
    summary = train_model([packed], run / "model.pt", run / "history.csv", params)
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
    assert read_model_file(run / "checkpoints/last_model.pt")[1]["steps_done"] == 12


def test_checkpoint_of_other_params_is_not_resumed(
    small_packed: Path, tiny_params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed, params = small_packed, tiny_params()
    _signal_at(monkeypatch, 3, signal.SIGUSR1)
    with pytest.raises(TrainingInterrupted, match="SIGUSR1"):
        train_model([packed], tmp_path / "model.pt", tmp_path / "h.csv", params)
    monkeypatch.undo()
    summary = train_model(
        [packed], tmp_path / "model.pt", tmp_path / "h.csv", {**params, "lr": 0.005}
    )
    assert summary["resumed_from"] == 0 and summary["steps"] == 12
    assert (tmp_path / "checkpoints/state.pt.stale").exists() is False  # cleared at the end


def test_store_round_trip_and_fingerprint(
    small_packed: Path, tiny_params: Params, tmp_path: Path
) -> None:
    packed, params = small_packed, tiny_params()
    fp = fingerprint(params, [packed])
    assert fp == fingerprint({**params, "device": "cuda", "num_workers": 4}, [packed])
    assert fp != fingerprint({**params, "steps": 13}, [packed])
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


def test_the_state_is_released_only_once_the_model_file_is_in_place(tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    store = CheckpointStore(tmp_path / "checkpoints", "this")
    store.save({"step": 12})
    assert not release(model) and store.state_path.is_file()  # no model yet: kept
    model.write_bytes(b"model")
    assert release(model) and not store.state_path.exists()
    assert release(model)  # nothing left: no error


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


def _parts(seed: int) -> Trainable:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (s + 1))
    return Trainable(model, optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=False))


def test_a_saved_run_resumes_with_its_state_and_weights(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, "this")
    saved = _parts(0)
    assert resume_run(store, saved, world_size=1, main=True) == RunState()  # nothing saved yet
    saved.model(torch.ones(1, 3)).sum().backward()
    saved.optimizer.step()
    saved.scheduler.step()
    best = {"step": 2, "mae": 0.25, "psnr": 12.0, "state": None}
    state = RunState(step=3, history=[{"step": 1, "lr": 0.1}], best=best, bad_validations=2,
                     elapsed=1.5, stopped_early=True)  # fmt: skip
    save_run(store, state, saved, seconds=4.0, world_size=1)
    assert checkpoint_step(store) == 3
    fresh = _parts(1)
    back = resume_run(store, fresh, world_size=1, main=True)
    assert back == RunState(step=3, history=state.history, best=best, bad_validations=2,
                            elapsed=4.0, stopped_early=True)  # fmt: skip
    a, b = saved.model.state_dict(), fresh.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert fresh.scheduler.state_dict()["last_epoch"] == 1
    assert fresh.optimizer.state_dict()["state"][0]["step"] == 1
    store.state_path.write_bytes(b"not a checkpoint")
    assert checkpoint_step(store) == "?"
