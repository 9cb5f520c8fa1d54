"""Tests of cloudfree.train and cloudfree.predict on a tiny synthetic packed file."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from cloudfree.device import autocast_dtype, require_cuda_for_gpus, select_device
from cloudfree.errors import ConfigError, InputDataError, ModelFileError
from cloudfree.infer.predictor import Predictor, load_model
from cloudfree.packed import compute_norm_stats, iter_tiles
from cloudfree.train.loop import HISTORY_COLUMNS, train_model
from cloudfree.train.params import resolve_params
from cloudfree.train.step import lr_factor, masked_l1

from .packed import make_packed, write_packed

PARAMS: dict[str, Any] = {
    "model": {"name": "utilise", "widths": [8, 16], "heads": 2},
    "steps": 60,
    "batch_size": 2,
    "crop": 16,
    "lr": 0.01,
    "warmup_steps": 5,
    "val_every": 20,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_packed(tmp_path_factory.mktemp("train") / "r.h5", n_tiles=5, size=32, dates=6)


@pytest.fixture(scope="module")
def trained(packed: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("model")
    summary = train_model([packed], out / "model.pt", out / "history.csv", PARAMS, threads=2)
    return {"summary": summary, "model": out / "model.pt", "history": out / "history.csv"}


def test_select_device() -> None:
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            select_device("cuda")


def test_a_gpu_job_that_sees_no_cuda_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"given 2 GPU\(s\).*set infer\.device: cpu"):
        require_cuda_for_gpus(2, "auto", "infer.device")
    require_cuda_for_gpus(1, "cpu", "train.device")  # the user asked for the CPU
    require_cuda_for_gpus(0, "auto", "train.device")  # no GPU given: the CPU is expected


def test_mixed_precision_dtype_ignores_emulated_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    for native, expected in ((False, torch.float16), (True, torch.bfloat16)):
        # a V100/T4 answers True only when emulation counts
        monkeypatch.setattr(
            torch.cuda, "is_bf16_supported",
            lambda including_emulation=True, n=native: n or including_emulation,
        )  # fmt: skip
        assert autocast_dtype(cuda) == expected
    assert autocast_dtype(torch.device("cpu")) is None


def test_params_and_schedule() -> None:
    p = resolve_params({"steps": 10, "model": {"widths": [8, 16]}})
    assert p["steps"] == 10 and p["model"]["name"] == "utilise" and p["model"]["heads"] == 4
    with pytest.raises(ConfigError, match=r"train\.steps"):
        resolve_params({"steps": "ten"})
    with pytest.raises(ConfigError, match=r"train\.batch_size"):
        resolve_params({"batch_size": 0})
    with pytest.raises(ConfigError, match=r"train\.compile"):
        resolve_params({"compile": "yes"})
    with pytest.raises(ConfigError, match=r"train\.patience"):
        resolve_params({"patience": -1})
    with pytest.raises(ConfigError, match=r"train\.checkpoint_every"):
        resolve_params({"checkpoint_every": 0})
    factors = [lr_factor(s, 100, 10) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))
    assert factors[-1] < 0.1


def test_masked_l1_weights() -> None:
    pred = torch.zeros(1, 1, 2, 1, 2)
    target = torch.tensor([[[[[1.0, 3.0]], [[1.0, 3.0]]]]])
    hidden = torch.tensor([[[[True, False]]]])
    observed = ~hidden
    assert float(masked_l1(pred, target, hidden, observed, 1.0, 0.0)) == pytest.approx(1.0)
    assert float(masked_l1(pred, target, hidden, observed, 0.0, 0.5)) == pytest.approx(1.5)
    assert float(masked_l1(pred, target, hidden & False, observed, 1.0, 0.0)) == 0.0


def _constant_guess_mae(packed: Path) -> float:
    """Val masked MAE of predicting the per-band training mean everywhere."""
    mean, _ = compute_norm_stats([packed])
    errs = []
    for tile in iter_tiles(packed, "val"):
        refl = tile.s2.astype(np.float64) / 10000
        hidden = tile.clear & tile.gap
        errs.append(np.abs(refl - mean[None, :, None, None]).transpose(1, 0, 2, 3)[:, hidden])
    return float(np.concatenate(errs, axis=1).mean())


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
    assert blob["format_version"] == 1
    assert blob["model"]["name"] == "utilise"
    assert blob["model"]["kwargs"]["in_channels"] == 13
    assert len(blob["norm"]["mean"]) == len(blob["bands"]) == 13
    assert blob["regions"] == ["synth"] and blob["best_step"] == summary["best_step"]
    assert blob["params"]["steps"] == 60
    assert blob["val_mae_masked"] == pytest.approx(summary["val_mae_masked"])
    best = hist.loc[hist["step"] == blob["best_step"], "val_mae_masked"].item()
    assert best == pytest.approx(hist["val_mae_masked"].min())


def test_reproducible(packed: Path, tmp_path: Path) -> None:
    params = {**PARAMS, "steps": 4, "val_every": 100}
    runs = []
    for i in range(2):
        train_model([packed], tmp_path / f"m{i}.pt", tmp_path / f"h{i}.csv", params)
        runs.append(pd.read_csv(tmp_path / f"h{i}.csv")["train_loss"].to_numpy())
    np.testing.assert_array_equal(runs[0], runs[1])
    a = torch.load(tmp_path / "m0.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "m1.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_without_validation(tmp_path: Path) -> None:
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
    params = {**PARAMS, "steps": 3, "val_every": 1}
    summary = train_model([path], tmp_path / "m.pt", tmp_path / "h.csv", params)
    assert summary["best_step"] == 3 and np.isnan(summary["val_mae_masked"])
    hist = pd.read_csv(tmp_path / "h.csv")
    assert hist["val_mae_masked"].isna().all() and len(hist) == 3
    assert load_model(tmp_path / "m.pt", "cpu").meta["best_step"] == 3


def test_predictor_reconstructs_any_size(trained: dict[str, Any], packed: Path) -> None:
    pred = load_model(trained["model"], device="cpu")
    assert isinstance(pred, Predictor) and pred.bands[0] == "B01"
    rng = np.random.default_rng(0)
    s2 = rng.integers(500, 3000, (4, 13, 50, 70)).astype(np.uint16)
    avail = rng.random((4, 50, 70)) > 0.3
    out = pred.reconstruct(s2, avail, np.array([10, 50, 90, 200]))
    assert out.shape == (4, 13, 50, 70) and out.dtype == np.float32
    assert np.isfinite(out).all()
    # Windowed inference covers the image and agrees with the single pass (local norms).
    small = load_model(trained["model"], device="cpu", window=32)
    tiled = small.reconstruct(s2, avail, np.array([10, 50, 90, 200]))
    assert tiled.shape == out.shape
    assert np.abs(tiled - out).mean() < 1e-3
    tile = next(iter_tiles(packed, "val"))
    rec = pred.reconstruct(tile.s2, tile.clear, tile.doy)
    assert rec.shape == tile.s2.shape
    with pytest.raises(InputDataError):
        pred.reconstruct(s2[:, :5], avail, np.arange(4))
    with pytest.raises(InputDataError):
        pred.reconstruct(s2, avail[:3], np.arange(4))


def test_model_file_errors(trained: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"nope\.pt"):
        load_model(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=r"garbage\.pt"):
        load_model(garbage)
    blob = torch.load(trained["model"], weights_only=True)
    torch.save({**blob, "format_version": 99}, tmp_path / "v99.pt")
    with pytest.raises(ModelFileError, match="format_version"):
        load_model(tmp_path / "v99.pt")
    torch.save({k: v for k, v in blob.items() if k != "norm"}, tmp_path / "nonorm.pt")
    with pytest.raises(ModelFileError, match="norm"):
        load_model(tmp_path / "nonorm.pt")
    torch.save({**blob, "model": {"name": "nosuchnet", "kwargs": {}}}, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="nosuchnet"):
        load_model(tmp_path / "bad.pt")


def test_tensorboard_events(trained: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained["model"].parent / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/samples_per_second",
                "val/mae_masked", "val/psnr_masked"):  # fmt: skip
        assert tag in tags["scalars"], tag
    assert [e.step for e in events.Scalars("val/mae_masked")] == [20, 40, 60]
    assert len(events.Scalars("train/loss")) == 60
    assert "val/input_reconstruction_truth" in tags["images"]
    assert (trained["model"].parent / "checkpoints/last_model.pt").is_file()


def test_compile_option_wraps_the_training_model(
    packed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = []

    def fake_compile(model: torch.nn.Module) -> torch.nn.Module:
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    params = {**PARAMS, "steps": 2, "compile": True, "tensorboard": False}
    train_model([packed], tmp_path / "m.pt", tmp_path / "h.csv", params)
    assert len(compiled) == 1
    # The model file holds the plain module's weights, loadable without compiling.
    assert load_model(tmp_path / "m.pt", "cpu").meta["params"]["compile"] is True


def test_training_with_u_tilise_sampling(packed: Path, tmp_path: Path) -> None:
    sampling = {"seq_len": 4, "min_len": 3, "date_classes": ["clear", "impaired"],
                "masked_fraction": 0.5, "dilation": 1}  # fmt: skip
    params = {**PARAMS, "steps": 4, "val_every": 2, "sampling": sampling}
    summary = train_model([packed], tmp_path / "m.pt", tmp_path / "h.csv", params)
    assert summary["best_step"] in (2, 4)
    assert load_model(tmp_path / "m.pt", "cpu").meta["params"]["sampling"] == sampling


def test_num_workers_auto_is_measured(packed: Path, tmp_path: Path, caplog) -> None:
    caplog.set_level("INFO")
    params = {**PARAMS, "steps": 30, "val_every": 30, "num_workers": "auto"}
    train_model([packed], tmp_path / "m.pt", tmp_path / "h.csv", params)
    assert "DataLoader workers:" in caplog.text and "batches/s by workers: 0:" in caplog.text
    with pytest.raises(ConfigError, match="num_workers"):
        resolve_params({"num_workers": "many"})
