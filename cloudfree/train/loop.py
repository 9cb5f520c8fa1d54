"""Train a reconstruction network on packed files and write the model file and history.

The training set is an endless stream of random crops with random gaps (see
:class:`cloudfree.train.dataset.TrainDataset`); an *epoch* is ``val_every`` steps.  Each epoch ends
with a validation, a checkpoint and one progress line in the log; checkpoints are also
written every ``checkpoint_every`` steps (:mod:`cloudfree.checkpoint`).  A run started again
with the same parameters and data resumes from its last checkpoint and ends with the same
weights as an uninterrupted run (on the CPU).  SIGTERM, SIGUSR1 and SIGINT (Slurm sends
one before a time limit) write a checkpoint and stop with :class:`TrainingInterrupted`.
Under ``torchrun`` the same loop runs DistributedDataParallel, one process per GPU (gloo on
the CPU), see :mod:`cloudfree.distributed`.

The loss is an L1 in normalised units over the pixels whose truth is known::

    loss = masked_weight * mean|err| over hidden pixels (known, hidden by the gap)
         + observed_weight * mean|err| over observed pixels (known and given as input)

Validation scores the val tiles' fixed gaps in reflectance units (MAE, and PSNR with a
data range of 1); the best-on-validation weights are kept (the last ones without val gaps).

History CSV columns: step, lr (rate used for that step), train_loss, grad_norm (before
clipping), val_mae_masked, val_psnr_masked (empty unless validated at that step), seconds
(wall time of the training loop, summed over resumed runs).

TensorBoard event files (``tensorboard/`` next to the model file): train loss, learning
rate, gradient norm, throughput, peak GPU memory on CUDA, validation scores and example
reconstructions (RGB of input, reconstruction and truth of a validation tile).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from cloudfree.device import autocast_dtype, select_device
from cloudfree.errors import InputDataError
from cloudfree.io import atomic_path
from cloudfree.modelfile import _model_blob, _to_plain
from cloudfree.models.registry import build_model, count_parameters, is_trainable
from cloudfree.packed import PackedMeta, compute_norm_stats, read_meta
from cloudfree.train import distributed
from cloudfree.train.checkpoint import CheckpointStore, fingerprint, rng_state, set_rng_state
from cloudfree.train.control import NonFiniteLossError, StopRequest, TrainingInterrupted
from cloudfree.train.dataset import EvalTiles, TrainDataset
from cloudfree.train.loader import StepSampler, _worker_init, calibrate_loader, close_handles
from cloudfree.train.monitor import TensorBoardLog, _progress_line
from cloudfree.train.params import resolve_params
from cloudfree.train.step import _optimizer, backward_step, forward_loss, lr_factor, restore_scaler
from cloudfree.train.validate import evaluate

log = logging.getLogger("cloudfree.train")


HISTORY_COLUMNS = (
    "step", "lr", "train_loss", "grad_norm", "val_mae_masked", "val_psnr_masked", "seconds",
)  # fmt: skip


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def check_training_data(paths: Sequence[str], meta: PackedMeta) -> tuple[np.ndarray, np.ndarray]:
    """Fail before training when there is nothing to learn from; return the norm stats.

    Raises InputDataError naming the regions and the settings to relax when no tile is in
    the ``train`` split or the training tiles have no clear pixel at all.
    """
    regions = ", ".join(meta.regions)
    if not any(t.split == "train" for t in meta.tiles):
        splits = sorted({t.split for t in meta.tiles})
        raise InputDataError(
            f"region(s) {regions}: no training tiles in {paths} (splits present: {splits}); "
            "relax the split settings of the region's source (e.g. "
            "regions.<region>.synthetic.val_fraction / test_fraction) or the packing "
            "thresholds that drop cloudy tiles and dates, so that some tiles train"
        )
    try:
        mean, std = compute_norm_stats(paths, "train")
    except InputDataError as exc:
        raise InputDataError(
            f"region(s) {regions}: the training tiles have no clear date or pixel ({exc}); "
            "relax the cloud thresholds used when selecting tiles and dates (packing and "
            "the region's source settings) or add tiles"
        ) from exc
    return mean, std


def train_model(
    packed_paths: Sequence[str | os.PathLike[str]],
    model_out: str | os.PathLike[str],
    history_out: str | os.PathLike[str],
    params: Mapping[str, Any],
    threads: int = 1,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    tensorboard_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train on the ``train`` tiles of ``packed_paths``, validate on their ``val`` tiles.

    Writes ``model_out`` (see :mod:`cloudfree.predict`) and ``history_out`` (CSV, one row per
    step) atomically and returns a summary dict.  Checkpoints go to ``checkpoint_dir``
    (default: ``checkpoints/`` next to ``model_out``), where the last weights of a finished
    run stay as ``last_model.pt``; TensorBoard files to ``tensorboard_dir`` (default:
    ``tensorboard/`` next to ``model_out``).  In a ``torchrun`` process group every process
    calls this; rank 0 validates and writes the files.
    """
    p = resolve_params(params)
    paths = [str(x) for x in packed_paths]
    torch.set_num_threads(max(1, int(threads)))
    ctx = distributed.setup(select_device(p["device"]))
    try:
        return _train(paths, Path(model_out), Path(history_out), p, ctx, checkpoint_dir,
                      tensorboard_dir)  # fmt: skip
    finally:
        distributed.cleanup(ctx)


def _train(
    paths: list[str],
    model_out: Path,
    history_out: Path,
    p: dict[str, Any],
    ctx: distributed.DistContext,
    checkpoint_dir: str | os.PathLike[str] | None,
    tensorboard_dir: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    device, main = ctx.device, ctx.is_main
    amp_dtype = autocast_dtype(device, p["amp"])
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    seed, steps, batch_size = p["seed"], p["steps"], p["batch_size"]
    torch.manual_seed(seed)

    meta = read_meta(paths)
    mean, std = check_training_data(paths, meta)
    norm = (mean.astype(np.float32), std.astype(np.float32))
    spec = dict(p["model"])
    name = spec.pop("name")
    kwargs = _to_plain({"in_channels": len(meta.bands), **spec})
    raw = build_model(name, **kwargs).to(device)
    n_params = count_parameters(raw)
    val_tiles = EvalTiles(paths, norm, split="val")
    if not is_trainable(raw):
        return _write_untrained(raw, name, kwargs, norm, meta, p, val_tiles, model_out,
                                history_out, amp_dtype, main)  # fmt: skip
    if len(val_tiles) == 0:
        log.warning("no val tiles: keeping the last weights")

    store = CheckpointStore(
        checkpoint_dir if checkpoint_dir is not None else model_out.parent / "checkpoints",
        fingerprint(p, paths),
    )
    optimizer = _optimizer(raw, p["lr"], p["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps, p["warmup_steps"])
    )
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"step": 0, "mae": math.inf, "psnr": math.nan, "state": None}
    bad_validations, elapsed, start_step, stopped_early = 0, 0.0, 0, False
    saved = store.load()
    if saved is not None:
        raw.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        restore_scaler(scaler, saved["scaler"])
        set_rng_state(saved["rng"])
        history, best = list(saved["history"]), dict(saved["best"])
        bad_validations, elapsed = int(saved["bad_validations"]), float(saved["seconds"])
        start_step = int(saved["step"])
        stopped_early = bool(saved.get("stopped_early", False))
        if main:
            log.info("resumed from step %d (checkpoint %s)", start_step, store.state_path)
            if int(saved.get("world_size", ctx.world_size)) != ctx.world_size:
                log.warning(
                    "checkpoint written by %d processes, resumed by %d: the global batch "
                    "and the order of the samples from step %d on differ from the "
                    "uninterrupted run", saved["world_size"], ctx.world_size, start_step,
                )  # fmt: skip

    dataset = TrainDataset(
        paths, norm, crop=p["crop"], samples_per_epoch=steps * batch_size * ctx.world_size,
        seed=seed, **dict(p["sampling"]),
    )  # fmt: skip
    workers = p["num_workers"]
    if workers == "auto":  # measured on this node: batches/s for 0, 1, 2, 4, ... workers
        chosen, rates = calibrate_loader(dataset, batch_size, device=device)
        workers = chosen.num_workers
        if main:
            speeds = ", ".join(f"{n}: {r:.0f}" for n, r in rates.items()) or "too few to measure"
            log.info("DataLoader workers: %d (batches/s by workers: %s)", workers, speeds)
    if workers > 0:
        close_handles(dataset)  # the calibration or a baseline may have read in this process
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        # An early-stopped run killed before writing its files has nothing left to train.
        sampler=StepSampler(
            steps if stopped_early else start_step, steps, batch_size, ctx.world_size, ctx.rank
        ),
        num_workers=workers,
        worker_init_fn=_worker_init,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=False,
    )
    model: nn.Module = raw
    if ctx.distributed:
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(raw, device_ids=ids)
    if p["compile"]:
        model = torch.compile(model)  # type: ignore[assignment]
    if main:
        log.info(
            "training %s (%d parameters) on %s x %d: %d train / %d val tiles of %s, "
            "%d steps x %d, epoch = %d steps",
            name, n_params, device, ctx.world_size, len(dataset.tiles), len(val_tiles),
            ", ".join(meta.regions), steps, batch_size * ctx.world_size, p["val_every"],
        )  # fmt: skip
    tb_dir = tensorboard_dir if tensorboard_dir is not None else model_out.parent / "tensorboard"
    tb = TensorBoardLog(Path(tb_dir) if main and p["tensorboard"] else None, start_step)

    def checkpoint(step: int) -> None:
        if main:
            store.save({
                "step": step, "model": _cpu_state(raw), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "rng": rng_state(), "history": history, "best": best,
                "bad_validations": bad_validations, "seconds": elapsed + clock(),
                "world_size": ctx.world_size, "stopped_early": stopped_early,
            })  # fmt: skip

    t0 = time.perf_counter()

    def clock() -> float:
        return time.perf_counter() - t0

    step = start_step
    model.train()
    bar = tqdm(total=steps, initial=start_step, desc="train", leave=False,
               disable=not (main and sys.stderr.isatty()))  # fmt: skip
    window_start, window_step = clock(), start_step
    epochs = math.ceil(steps / p["val_every"])
    with StopRequest() as stop:
        for batch in loader:
            step += 1
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            lr = optimizer.param_groups[0]["lr"]
            loss = forward_loss(model, batch, p, device, amp_dtype)
            loss_sum, stop_votes = distributed.all_sum(
                ctx, [float(loss.detach()), float(stop.requested)]
            )
            loss_value = loss_sum / ctx.world_size
            if not math.isfinite(loss_value):
                kept = (
                    f"the last good checkpoint {store.state_path} (step {start_step_of(store)}) "
                    "is kept"
                    if store.state_path.is_file()
                    else "no checkpoint was written yet"
                )
                raise NonFiniteLossError(
                    f"non-finite training loss ({loss_value}) at step {step} of {paths}; "
                    f"{kept}; lower train.lr, or set train.amp: false if it happens under "
                    "mixed precision"
                )
            grad_norm = backward_step(loss, model, optimizer, scaler, scheduler, p["grad_clip"])
            row: dict[str, Any] = {
                "step": step, "lr": lr, "train_loss": loss_value, "grad_norm": grad_norm,
                "val_mae_masked": math.nan, "val_psnr_masked": math.nan,
            }  # fmt: skip
            end_of_epoch = step % p["val_every"] == 0 or step == steps
            if end_of_epoch and len(val_tiles):
                stop_now = False
                if main:
                    scores = evaluate(raw, val_tiles, norm[1], amp_dtype)
                    row["val_mae_masked"], row["val_psnr_masked"] = scores["mae"], scores["psnr"]
                    if scores["mae"] < best["mae"]:  # NaN (no gap pixels) never counts as best
                        if scores["mae"] < best["mae"] - p["min_delta"]:
                            bad_validations = 0
                        else:
                            bad_validations += 1
                        best.update(step=step, mae=scores["mae"], psnr=scores["psnr"])
                        best["state"] = _cpu_state(raw)
                    else:
                        bad_validations += 1
                    stop_now = 0 < p["patience"] <= bad_validations
                    tb.scalars(step, {"val/mae_masked": scores["mae"],
                                      "val/psnr_masked": scores["psnr"]})  # fmt: skip
                    tb.example(step, raw, val_tiles, norm, meta.bands, amp_dtype)
                stopped_early = distributed.broadcast_flag(ctx, stop_now)
            row["seconds"] = elapsed + clock()
            history.append(row)
            bar.update(1)
            if main:
                now = clock()
                speed = (
                    (step - window_step)
                    * batch_size
                    * ctx.world_size
                    / max(now - window_start, 1e-9)
                )
                tb.scalars(step, {"train/loss": loss_value, "train/lr": lr,
                                  "train/grad_norm": grad_norm})  # fmt: skip
                if end_of_epoch:
                    gpu = {}
                    if device.type == "cuda":
                        gpu["gpu/max_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
                    tb.scalars(step, {"train/samples_per_second": speed, **gpu})
                    window_start, window_step = now, step
                    _progress_line(step, steps, epochs, p["val_every"], row, best, speed,
                                   gpu.get("gpu/max_memory_mb"))  # fmt: skip
            if end_of_epoch or step % p["checkpoint_every"] == 0:
                checkpoint(step)
            if stop_votes > 0:
                checkpoint(step)
                distributed.barrier(ctx)
                tb.close()
                raise TrainingInterrupted(
                    f"stopped by {stop.name if stop.requested else 'a signal'} after step "
                    f"{step}/{steps}; checkpoint {store.state_path}: run again to resume"
                )
            if stopped_early:
                if main:
                    log.info(
                        "early stop at step %d: no val improvement > %g in %d validations",
                        step, p["min_delta"], p["patience"],
                    )  # fmt: skip
                break
    bar.close()
    tb.close()
    val_tiles.close()
    checksums = distributed.check_replicas(ctx, raw)
    last_state = _cpu_state(raw)
    if best["state"] is None:  # no validation: the last weights
        best.update(step=step, mae=math.nan)
        best["state"] = last_state
    seconds = elapsed + clock()
    if main:
        extra = {"steps_done": step, "stopped_early": stopped_early,
                 "world_size": ctx.world_size}  # fmt: skip
        with atomic_path(model_out) as tmp:
            torch.save(_model_blob(name, kwargs, best["state"], mean, std, meta, p,
                                   best_step=int(best["step"]), val_mae_masked=float(best["mae"]),
                                   **extra), tmp)  # fmt: skip
        with atomic_path(store.last_model_path) as tmp:
            torch.save(
                _model_blob(
                    name,
                    kwargs,
                    last_state,
                    mean,
                    std,
                    meta,
                    p,
                    best_step=step,
                    val_mae_masked=math.nan,
                    **extra,
                ),
                tmp,
            )
        frame = pd.DataFrame(history, columns=list(HISTORY_COLUMNS))
        with atomic_path(history_out) as tmp:
            frame.to_csv(tmp, index=False)
        store.clear()
        log.info(
            "done in %.1f s (%d steps%s); best val masked MAE %.4f at step %d",
            seconds, step, ", stopped early" if stopped_early else "", best["mae"], best["step"],
        )  # fmt: skip
    distributed.barrier(ctx)
    return {
        "steps": len(history),
        "resumed_from": start_step,
        "stopped_early": stopped_early,
        "best_step": int(best["step"]),
        "val_mae_masked": float(best["mae"]),
        "val_psnr_masked": float(best["psnr"]),
        "final_train_loss": history[-1]["train_loss"] if history else math.nan,
        "parameters": n_params,
        "device": str(device),
        "world_size": ctx.world_size,
        "rank": ctx.rank,
        "weights_checksum": checksums[ctx.rank],
        "seconds": seconds,
        "seconds_per_step": seconds / max(1, step - start_step) if step > start_step else 0.0,
    }


def start_step_of(store: CheckpointStore) -> int | str:
    """Step of the checkpoint in ``store`` (for messages), '?' if unreadable."""
    try:
        return int(torch.load(store.state_path, map_location="cpu", weights_only=True)["step"])
    except Exception:
        return "?"


def _write_untrained(
    model: nn.Module,
    name: str,
    kwargs: Mapping[str, Any],
    norm: tuple[np.ndarray, np.ndarray],
    meta: PackedMeta,
    p: Mapping[str, Any],
    val_tiles: EvalTiles,
    model_out: Path,
    history_out: Path,
    amp_dtype: torch.dtype | None,
    main: bool,
) -> dict[str, Any]:
    """A baseline: no optimizer step; scored once on the val gaps, model file written."""
    scores = evaluate(model, val_tiles, norm[1], amp_dtype) if len(val_tiles) else {
        "mae": math.nan, "psnr": math.nan}  # fmt: skip
    val_tiles.close()
    log.info("%s needs no training; val masked MAE %.4f", name, scores["mae"])
    row = {
        "step": 0,
        "lr": 0.0,
        "train_loss": math.nan,
        "grad_norm": math.nan,
        "val_mae_masked": scores["mae"],
        "val_psnr_masked": scores["psnr"],
        "seconds": 0.0,
    }
    if main:
        with atomic_path(model_out) as tmp:
            torch.save(
                _model_blob(
                    name,
                    kwargs,
                    _cpu_state(model),
                    *norm,
                    meta,
                    p,
                    best_step=0,
                    val_mae_masked=float(scores["mae"]),
                    steps_done=0,
                ),
                tmp,
            )
        with atomic_path(history_out) as tmp:
            pd.DataFrame([row], columns=list(HISTORY_COLUMNS)).to_csv(tmp, index=False)
    return {
        "steps": 0,
        "best_step": 0,
        "val_mae_masked": float(scores["mae"]),
        "val_psnr_masked": float(scores["psnr"]),
        "parameters": 0,
        "seconds": 0.0,
    }
