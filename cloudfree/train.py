"""Train a reconstruction network on packed files and write the model file and history.

The loss is an L1 in normalised units over the pixels whose truth is known::

    loss = masked_weight * mean|err| over hidden pixels (known, hidden by the gap)
         + observed_weight * mean|err| over observed pixels (known and given as input)

Validation scores the val tiles' fixed gaps in reflectance units (MAE, and PSNR with a
data range of 1); the best-on-validation weights are kept (the last ones without val gaps).

History CSV columns: step, lr (rate used for that step), train_loss, grad_norm (before
clipping), val_mae_masked, val_psnr_masked (empty unless validated at that step), seconds
(wall time since the start of the loop).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .data import EvalTiles, TrainDataset, compute_norm_stats, read_meta, worker_init_fn
from .errors import ConfigError
from .io import atomic_path
from .models import build_model, count_parameters
from .predict import MODEL_FORMAT_VERSION, autocast, autocast_dtype, run_model

log = logging.getLogger("cloudfree.train")

DEFAULT_PARAMS: dict[str, Any] = {
    "model": {"name": "utilise", "widths": [16, 32, 64], "heads": 4},
    "steps": 300,
    "batch_size": 4,
    "crop": 32,
    "lr": 0.003,
    "weight_decay": 0.01,
    "warmup_steps": 20,
    "grad_clip": 1.0,
    "masked_weight": 1.0,
    "observed_weight": 0.5,
    "val_every": 50,
    "seed": 0,
    "device": "auto",
    "amp": True,
    "num_workers": 0,
}
HISTORY_COLUMNS = (
    "step", "lr", "train_loss", "grad_norm", "val_mae_masked", "val_psnr_masked", "seconds",
)  # fmt: skip
MIN_LR_RATIO = 0.05  # cosine decay ends at this fraction of the peak rate


def select_device(pref: str = "auto") -> torch.device:
    """``auto``: CUDA if available, else Apple MPS, else CPU; or exactly ``cpu``/``cuda[:n]``."""
    pref = str(pref).strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "cuda" or pref.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {pref!r} requested but CUDA is not available")
        return torch.device(pref)
    if pref == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError("device 'mps' requested but MPS is not available")
        return torch.device("mps")
    raise ConfigError(f"device {pref!r}: expected auto, cpu, cuda or cuda:N")


def resolve_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled in and types checked; errors name the key (``train.<key>``)."""
    out = copy.deepcopy(DEFAULT_PARAMS)
    for key, value in params.items():
        if key == "model":
            if not isinstance(value, Mapping):
                raise ConfigError(f"train.model must be a mapping, got {value!r}")
            out["model"].update(copy.deepcopy(dict(value)))
        else:
            if key not in DEFAULT_PARAMS:
                log.warning("train.%s: unknown parameter, ignored", key)
            out[key] = copy.deepcopy(value)
    ints = ("steps", "batch_size", "crop", "warmup_steps", "val_every", "seed", "num_workers")
    for key in ints:
        if isinstance(out[key], bool) or not isinstance(out[key], int):
            raise ConfigError(f"train.{key} must be an integer, got {out[key]!r}")
    floats = ("lr", "weight_decay", "grad_clip", "masked_weight", "observed_weight")
    for key in floats:
        if isinstance(out[key], bool) or not isinstance(out[key], (int, float)):
            raise ConfigError(f"train.{key} must be a number, got {out[key]!r}")
        out[key] = float(out[key])
    for key in ("steps", "batch_size", "crop", "val_every"):
        if out[key] < 1:
            raise ConfigError(f"train.{key} must be >= 1, got {out[key]}")
    for key in ("warmup_steps", "num_workers", "weight_decay", "masked_weight", "observed_weight"):
        if out[key] < 0:
            raise ConfigError(f"train.{key} must be >= 0, got {out[key]}")
    if out["lr"] <= 0 or out["grad_clip"] <= 0:
        raise ConfigError("train.lr and train.grad_clip must be > 0")
    if out["masked_weight"] + out["observed_weight"] <= 0:
        raise ConfigError("train.masked_weight + train.observed_weight must be > 0")
    if not isinstance(out["amp"], bool):
        raise ConfigError(f"train.amp must be true or false, got {out['amp']!r}")
    if not isinstance(out["model"].get("name"), str):
        raise ConfigError("train.model.name must be a string")
    return out


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``MIN_LR_RATIO``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return MIN_LR_RATIO + (1.0 - MIN_LR_RATIO) * cosine


def masked_l1(
    pred: torch.Tensor,
    target: torch.Tensor,
    hidden: torch.Tensor,
    observed: torch.Tensor,
    masked_weight: float,
    observed_weight: float,
) -> torch.Tensor:
    """Weighted L1: mean over hidden pixels and mean over observed pixels (all bands)."""
    err = (pred.float() - target).abs().mean(dim=-3)  # (B, T, H, W)
    loss = err.new_zeros(())
    for mask, weight in ((hidden, masked_weight), (observed, observed_weight)):
        if weight > 0:
            m = mask.to(err.dtype)
            loss = loss + weight * (err * m).sum() / m.sum().clamp_min(1.0)
    return loss


def evaluate(
    model: nn.Module,
    tiles: EvalTiles,
    std: np.ndarray,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Masked-pixel MAE and PSNR (reflectance units, data range 1) over the tiles' gaps."""
    was_training = model.training
    model.eval()
    abs_sum = sq_sum = 0.0
    count = 0
    s = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    for item in tiles:
        hidden = item["hidden"]
        if not hidden.any():
            continue
        pred = run_model(model, item["x"], item["avail"], item["doy"], amp_dtype=amp_dtype)
        err = (pred - item["target"]) * s  # normalised -> reflectance difference
        sel = err.permute(1, 0, 2, 3)[:, hidden]  # (C, N)
        abs_sum += float(sel.abs().sum(dtype=torch.float64))
        sq_sum += float((sel.double() ** 2).sum())
        count += sel.numel()
    model.train(was_training)
    if count == 0:
        return {"mae": math.nan, "psnr": math.nan, "count": 0}
    mse = sq_sum / count
    psnr = 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf
    return {"mae": abs_sum / count, "psnr": psnr, "count": count}


def _optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _to_plain(value: Any) -> Any:
    """JSON-able copy (tuples -> lists, numpy scalars -> Python)."""
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def train_model(
    packed_paths: Sequence[str | os.PathLike[str]],
    model_out: str | os.PathLike[str],
    history_out: str | os.PathLike[str],
    params: Mapping[str, Any],
    threads: int = 1,
) -> dict[str, Any]:
    """Train on the ``train`` tiles of ``packed_paths``, validate on their ``val`` tiles.

    Writes ``model_out`` (see :mod:`cloudfree.predict`) and ``history_out`` (CSV, one row per
    step) atomically and returns a summary dict.
    """
    p = resolve_params(params)
    paths = [str(x) for x in packed_paths]
    torch.set_num_threads(max(1, int(threads)))
    device = select_device(p["device"])
    amp_dtype = autocast_dtype(device, p["amp"])
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    seed, steps, batch_size = p["seed"], p["steps"], p["batch_size"]
    torch.manual_seed(seed)

    meta = read_meta(paths)
    mean, std = compute_norm_stats(paths, "train")
    norm = (mean.astype(np.float32), std.astype(np.float32))
    dataset = TrainDataset(
        paths, norm, crop=p["crop"], samples_per_epoch=steps * batch_size, seed=seed
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,  # indices are already random samples; order keeps runs reproducible
        num_workers=p["num_workers"],
        worker_init_fn=worker_init_fn,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=False,
    )
    val_tiles = EvalTiles(paths, norm, split="val")
    if len(val_tiles) == 0:
        log.warning("no val tiles: keeping the last weights")

    spec = dict(p["model"])
    name = spec.pop("name")
    kwargs = _to_plain({"in_channels": len(meta.bands), **spec})
    model = build_model(name, **kwargs).to(device)
    n_params = count_parameters(model)
    optimizer = _optimizer(model, p["lr"], p["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps, p["warmup_steps"])
    )
    log.info(
        "training %s (%d parameters) on %s: %d train / %d val tiles of %s, %d steps x %d",
        name, n_params, device, len(dataset.tiles), len(val_tiles), ", ".join(meta.regions),
        steps, batch_size,
    )  # fmt: skip

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"step": 0, "mae": math.inf, "psnr": math.nan, "state": None}
    start = time.perf_counter()
    model.train()
    bar = tqdm(total=steps, desc="train", disable=not sys.stderr.isatty(), leave=False)
    log_every = max(1, steps // 20)
    for step, batch in enumerate(loader, start=1):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        lr = optimizer.param_groups[0]["lr"]
        with autocast(device, amp_dtype):
            pred = model(batch["x"], batch["avail"], batch["doy"])
        observed = batch["known"] & (batch["avail"] > 0)
        loss = masked_l1(
            pred, batch["target"], batch["hidden"], observed,
            p["masked_weight"], p["observed_weight"],
        )  # fmt: skip
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss at step {step} (lower train.lr, or set "
                "train.amp: false if it happens under mixed precision)"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), p["grad_clip"]))
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        row: dict[str, Any] = {
            "step": step,
            "lr": lr,
            "train_loss": float(loss.detach()),
            "grad_norm": grad_norm,
            "val_mae_masked": math.nan,
            "val_psnr_masked": math.nan,
        }
        if len(val_tiles) and (step % p["val_every"] == 0 or step == steps):
            scores = evaluate(model, val_tiles, norm[1], amp_dtype)
            row["val_mae_masked"], row["val_psnr_masked"] = scores["mae"], scores["psnr"]
            log.info(
                "step %d: val masked MAE %.4f, PSNR %.2f dB", step, scores["mae"], scores["psnr"]
            )
            if scores["mae"] < best["mae"]:  # NaN (no gap pixels) never counts as best
                best.update(step=step, mae=scores["mae"], psnr=scores["psnr"])
                best["state"] = _cpu_state(model)
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        bar.update(1)
        bar.set_postfix(loss=f"{row['train_loss']:.4f}")
        if step % log_every == 0 or step == steps:
            log.info(
                "step %d/%d: loss %.4f, grad norm %.3f, lr %.2e, %.1f s",
                step, steps, row["train_loss"], grad_norm, lr, row["seconds"],
            )  # fmt: skip
    bar.close()
    val_tiles.close()
    if best["state"] is None:  # no validation: the last weights
        best.update(step=len(history), mae=math.nan)
        best["state"] = _cpu_state(model)

    blob = {
        "format_version": MODEL_FORMAT_VERSION,
        "model": {"name": name, "kwargs": kwargs},
        "state_dict": best["state"],
        "norm": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        "bands": list(meta.bands),
        "params": _to_plain(p),
        "regions": list(meta.regions),
        "best_step": int(best["step"]),
        "val_mae_masked": float(best["mae"]),
    }
    with atomic_path(model_out) as tmp:
        torch.save(blob, tmp)
    frame = pd.DataFrame(history, columns=list(HISTORY_COLUMNS))
    with atomic_path(history_out) as tmp:
        frame.to_csv(tmp, index=False)
    seconds = time.perf_counter() - start
    summary = {
        "steps": len(history),
        "best_step": int(best["step"]),
        "val_mae_masked": float(best["mae"]),
        "val_psnr_masked": float(best["psnr"]),
        "final_train_loss": history[-1]["train_loss"] if history else math.nan,
        "parameters": n_params,
        "device": str(device),
        "seconds": seconds,
        "seconds_per_step": seconds / max(1, len(history)),
    }
    log.info(
        "done in %.1f s; best val masked MAE %.4f at step %d", seconds, best["mae"], best["step"]
    )
    return summary
