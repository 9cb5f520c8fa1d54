"""Train a reconstruction network on packed files and write the model file and history.

The training set is an endless stream of random crops with random gaps (see
:class:`cloudfree.train.dataset.TrainDataset`); an *epoch* is ``val_every`` steps.  Each epoch
ends with a validation, a checkpoint and one progress line in the log; checkpoints are also
written every ``checkpoint_every`` steps (:mod:`cloudfree.train.checkpoint`).  A run started
again with the same parameters and data resumes from its last checkpoint and ends with the
same weights as an uninterrupted run (on the CPU).  SIGTERM, SIGUSR1 and SIGINT (Slurm sends
one before a time limit) write a checkpoint and stop with :class:`TrainingInterrupted`.
Under ``torchrun`` the same loop runs DistributedDataParallel, one process per GPU (gloo on
the CPU), see :mod:`cloudfree.train.distributed`.

The loss is an L1 in normalised units over the pixels whose truth is known::

    loss = masked_weight * mean|err| over hidden pixels (known, hidden by the gap)
         + observed_weight * mean|err| over observed pixels (known and given as input)

With ``train.inputs.s1`` the network also takes each date's Sentinel-1 VV/VH
(``s1_channels`` 2, :mod:`cloudfree.models.s1`): every packed file must hold ``s1``
(InputDataError naming the file before training starts).

Validation scores the val tiles' fixed gaps in reflectance units (MAE, and PSNR with a
data range of 1); the best-on-validation weights are kept (the last ones without val gaps).

Reads the packed files; writes the model file (:mod:`cloudfree.modelfile`), the history CSV
(:mod:`cloudfree.train.history`), the checkpoints and the TensorBoard event files.  The
model file is written last, and the final step's checkpoint is removed only after it (or,
with ``keep_checkpoint``, by the caller once its own outputs are written too): a run killed
while writing its files resumes at its final step instead of step 0.  A model
that needs no training goes to :mod:`cloudfree.train.untrained` instead.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cloudfree.device import autocast_dtype, select_device
from cloudfree.extras import missing_extra
from cloudfree.modelfile import save_model_file
from cloudfree.models.registry import build_model, count_parameters, is_trainable, model_spec
from cloudfree.packed import PackedMeta, read_meta
from cloudfree.progress import Progress
from cloudfree.train import distributed
from cloudfree.train.checkpoint import (
    CheckpointStore,
    RunState,
    Trainable,
    checkpoint_step,
    cpu_state,
    default_folder,
    fingerprint,
    resume_run,
    save_run,
)
from cloudfree.train.control import NonFiniteLossError, StopRequest, TrainingInterrupted
from cloudfree.train.dataset import EvalTiles, TrainDataset, check_training_data
from cloudfree.train.history import write_history
from cloudfree.train.loader import calibrate_loader, training_loader
from cloudfree.train.monitor import TensorBoardLog, progress_line
from cloudfree.train.params import check_params
from cloudfree.train.step import backward_step, build_optimizer, forward_loss, lr_factor
from cloudfree.train.untrained import write_untrained
from cloudfree.train.validate import evaluate

try:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

log = logging.getLogger("cloudfree.train")


@dataclass
class Run:
    """One training process: settings, data, model and optimisation, and the run's state."""

    p: dict[str, Any]
    paths: list[str]
    ctx: distributed.DistContext
    meta: PackedMeta
    stats: tuple[np.ndarray, np.ndarray]  # per-band mean and std (float64), as stored
    name: str
    kwargs: dict[str, Any]
    raw: nn.Module  # the network itself: what is validated and saved
    model: nn.Module  # ``raw``, or its DDP / compiled wrapper: what is trained
    parts: Trainable  # ``raw`` and its optimiser, schedule and gradient scaler
    amp_dtype: torch.dtype | None
    store: CheckpointStore
    val_tiles: EvalTiles
    tb: TensorBoardLog
    state: RunState
    start_step: int
    t0: float = field(default_factory=time.perf_counter)
    window: tuple[float, int] = (0.0, 0)  # time and step the throughput is measured from

    @property
    def norm(self) -> tuple[np.ndarray, np.ndarray]:
        return self.stats[0].astype(np.float32), self.stats[1].astype(np.float32)

    def clock(self) -> float:
        """Seconds since this process started its training loop."""
        return time.perf_counter() - self.t0


def train_model(
    packed_paths: Sequence[str | os.PathLike[str]],
    model_out: str | os.PathLike[str],
    history_out: str | os.PathLike[str],
    params: Mapping[str, Any],
    threads: int = 1,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    tensorboard_dir: str | os.PathLike[str] | None = None,
    keep_checkpoint: bool = False,
) -> dict[str, Any]:
    """Train on the ``train`` tiles of ``packed_paths``, validate on their ``val`` tiles.

    ``params`` is a resolved ``train`` section (:func:`cloudfree.config.section`).  Writes
    ``model_out`` (:mod:`cloudfree.modelfile`) and ``history_out`` (CSV, one row per step)
    atomically and returns a summary dict.  Checkpoints go to ``checkpoint_dir`` (default:
    ``checkpoints/`` next to ``model_out``), where the last weights of a finished run stay as
    ``last_model.pt``; TensorBoard files to ``tensorboard_dir`` (default: ``tensorboard/``
    next to ``model_out``).  The resumable state is removed once ``model_out`` is in place;
    with ``keep_checkpoint`` it stays (at the final step) for the caller to remove with
    :func:`cloudfree.train.checkpoint.release` after writing its own outputs.  In a
    ``torchrun`` process group every process calls this; rank 0 validates and writes the
    files.
    """
    check_params(params)
    p = dict(params)
    paths = [str(x) for x in packed_paths]
    torch.set_num_threads(max(1, int(threads)))
    ctx = distributed.setup(select_device(p["device"], "train.device"))
    try:
        return _train(paths, Path(model_out), Path(history_out), p, ctx, checkpoint_dir,
                      tensorboard_dir, keep_checkpoint)  # fmt: skip
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
    keep_checkpoint: bool,
) -> dict[str, Any]:
    """Build the run, resume it from its checkpoint, step it to the end, write its files."""
    device = ctx.device
    amp_dtype = autocast_dtype(device, p["amp"])
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    torch.manual_seed(p["seed"])
    meta = read_meta(paths)
    stats = check_training_data(paths, meta)
    norm = (stats[0].astype(np.float32), stats[1].astype(np.float32))
    name, kwargs = model_spec(p, len(meta.bands))  # train.inputs.s1: s1_channels 2
    raw = build_model(name, **kwargs).to(device)
    s1 = getattr(raw, "s1_channels", 0) > 0  # every file needs s1 (InputDataError first)
    val_tiles = EvalTiles(paths, norm, split="val", with_s1=s1)
    if not is_trainable(raw):
        return write_untrained(raw, name, kwargs, norm, meta, p, val_tiles, model_out,
                                history_out, amp_dtype, ctx.is_main)  # fmt: skip
    if len(val_tiles) == 0:
        log.warning("no val tiles: keeping the last weights")

    store = CheckpointStore(
        checkpoint_dir if checkpoint_dir is not None else default_folder(model_out),
        fingerprint(p, paths),
    )
    optimizer = build_optimizer(raw, p["lr"], p["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, p["steps"], p["warmup_steps"])
    )
    parts = Trainable(raw, optimizer, scheduler, scaler)
    state = resume_run(store, parts, ctx.world_size, ctx.is_main)
    loader, train_tiles = _loader(paths, norm, p, ctx, state, s1)
    model: nn.Module = raw
    if ctx.distributed:
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(raw, device_ids=ids)
    if p["compile"]:
        model = torch.compile(model)  # type: ignore[assignment]
    if ctx.is_main:
        log.info(
            "training %s (%d parameters) on %s x %d: %d train / %d val tiles of %s, "
            "%d steps x %d, epoch = %d steps",
            name, count_parameters(raw), device, ctx.world_size, train_tiles, len(val_tiles),
            ", ".join(meta.regions), p["steps"], p["batch_size"] * ctx.world_size,
            p["val_every"],
        )  # fmt: skip
    tb_dir = tensorboard_dir if tensorboard_dir is not None else model_out.parent / "tensorboard"
    tb = TensorBoardLog(Path(tb_dir) if ctx.is_main and p["tensorboard"] else None, state.step)
    run = Run(
        p=p, paths=paths, ctx=ctx, meta=meta, stats=stats, name=name, kwargs=kwargs, raw=raw,
        model=model, parts=parts, amp_dtype=amp_dtype, store=store, val_tiles=val_tiles,
        tb=tb, state=state, start_step=state.step,
    )  # fmt: skip
    _loop(run, loader)
    return _finish(run, model_out, history_out, keep_checkpoint)


def _loader(
    paths: list[str],
    norm: tuple[np.ndarray, np.ndarray],
    p: Mapping[str, Any],
    ctx: distributed.DistContext,
    state: RunState,
    s1: bool,
) -> tuple[DataLoader, int]:
    """This process's batches from the state's step on (with the Sentinel-1 input for a
    model that takes it), and the number of training tiles."""
    steps, batch_size = p["steps"], p["batch_size"]
    dataset = TrainDataset(
        paths, norm, crop=p["crop"], samples_per_epoch=steps * batch_size * ctx.world_size,
        seed=p["seed"], augment=p["augment"], with_s1=s1, **dict(p["sampling"]),
    )  # fmt: skip
    workers = p["num_workers"]
    if workers == "auto":  # measured on this node: batches/s for 0, 1, 2, 4, ... workers
        chosen, rates = calibrate_loader(dataset, batch_size, device=ctx.device)
        workers = chosen.num_workers
        if ctx.is_main:
            speeds = ", ".join(f"{n}: {r:.0f}" for n, r in rates.items()) or "too few to measure"
            log.info("DataLoader workers: %d (batches/s by workers: %s)", workers, speeds)
    loader = training_loader(
        dataset, batch_size, workers, steps=steps, world=ctx.world_size, rank=ctx.rank,
        device=ctx.device,
        # An early-stopped run killed before writing its files has nothing left to train.
        first_step=steps if state.stopped_early else state.step,
    )  # fmt: skip
    return loader, len(dataset.tiles)


def _loop(run: Run, loader: DataLoader) -> None:
    """Step through the loader: validate, report and checkpoint on the way; stop early, or
    raise TrainingInterrupted after a checkpoint when a process got a stop signal."""
    state, p, ctx = run.state, run.p, run.ctx
    run.model.train()
    bar = tqdm(total=p["steps"], initial=state.step, desc="train", leave=False,
               disable=not (ctx.is_main and sys.stderr.isatty()))  # fmt: skip
    run.window = (run.clock(), state.step)
    steps = Progress(log, "training steps", p["steps"], initial=state.step) if ctx.is_main else None
    with StopRequest() as stop:
        for batch in loader:
            row, stop_votes = _step(run, batch, stop)
            end_of_epoch = state.step % p["val_every"] == 0 or state.step == p["steps"]
            if end_of_epoch and len(run.val_tiles):
                _validate(run, row)
            row["seconds"] = state.elapsed + run.clock()
            state.history.append(row)
            bar.update(1)
            if steps is not None:
                steps.step()
            if ctx.is_main:
                _report(run, row, end_of_epoch)
            if end_of_epoch or state.step % p["checkpoint_every"] == 0:
                _checkpoint(run)
            if stop_votes > 0:
                _checkpoint(run)
                distributed.barrier(ctx)
                run.tb.close()
                raise TrainingInterrupted(
                    f"stopped by {stop.name if stop.requested else 'a signal'} after step "
                    f"{state.step}/{p['steps']}; checkpoint {run.store.state_path}: run "
                    "again to resume"
                )
            if state.stopped_early:
                if ctx.is_main:
                    log.info(
                        "early stop at step %d: no val improvement > %g in %d validations",
                        state.step, p["min_delta"], p["patience"],
                    )  # fmt: skip
                break
    bar.close()


def _step(
    run: Run, batch: Mapping[str, torch.Tensor], stop: StopRequest
) -> tuple[dict[str, Any], float]:
    """One optimiser step on ``batch``: its history row, and how many processes were asked
    to stop."""
    state, p, ctx = run.state, run.p, run.ctx
    state.step += 1
    batch = {k: v.to(ctx.device, non_blocking=True) for k, v in batch.items()}
    lr = run.parts.optimizer.param_groups[0]["lr"]
    loss = forward_loss(run.model, batch, p, ctx.device, run.amp_dtype)
    loss_sum, stop_votes = distributed.all_sum(ctx, [float(loss.detach()), float(stop.requested)])
    loss_value = loss_sum / ctx.world_size
    if not math.isfinite(loss_value):
        kept = (
            f"the last good checkpoint {run.store.state_path} "
            f"(step {checkpoint_step(run.store)}) is kept"
            if run.store.state_path.is_file()
            else "no checkpoint was written yet"
        )
        raise NonFiniteLossError(
            f"non-finite training loss ({loss_value}) at step {state.step} of {run.paths}; "
            f"{kept}; lower train.lr, or set train.amp: false if it happens under "
            "mixed precision"
        )
    parts = run.parts
    grad_norm = backward_step(
        loss, run.model, parts.optimizer, parts.scaler, parts.scheduler, p["grad_clip"]
    )
    row: dict[str, Any] = {
        "step": state.step, "lr": lr, "train_loss": loss_value, "grad_norm": grad_norm,
        "val_mae_masked": math.nan, "val_psnr_masked": math.nan,
    }  # fmt: skip
    return row, stop_votes


def _validate(run: Run, row: dict[str, Any]) -> None:
    """Score the val tiles (rank 0) into ``row``, keep the best weights, decide (for every
    process) whether to stop early."""
    state, p = run.state, run.p
    stop_now = False
    if run.ctx.is_main:
        norm = run.norm
        kept: dict[str, Any] = {}  # the first tile's reconstruction, for the example images
        scores = evaluate(run.raw, run.val_tiles, norm[1], run.amp_dtype, keep=kept)
        row["val_mae_masked"], row["val_psnr_masked"] = scores["mae"], scores["psnr"]
        best = state.best
        if scores["mae"] < best["mae"]:  # NaN (no gap pixels) never counts as best
            if scores["mae"] < best["mae"] - p["min_delta"]:
                state.bad_validations = 0
            else:
                state.bad_validations += 1
            best.update(step=state.step, mae=scores["mae"], psnr=scores["psnr"])
            best["state"] = cpu_state(run.raw)
        else:
            state.bad_validations += 1
        stop_now = 0 < p["patience"] <= state.bad_validations
        run.tb.scalars(state.step, {"val/mae_masked": scores["mae"],
                                    "val/psnr_masked": scores["psnr"]})  # fmt: skip
        run.tb.example(state.step, run.raw, run.val_tiles, norm, run.meta.bands, run.amp_dtype,
                       kept)  # fmt: skip
    state.stopped_early = distributed.broadcast_flag(run.ctx, stop_now)


def _report(run: Run, row: Mapping[str, Any], end_of_epoch: bool) -> None:
    """TensorBoard scalars of a step; at the end of an epoch also throughput and a log line."""
    step, p, ctx = run.state.step, run.p, run.ctx
    now = run.clock()
    window_start, window_step = run.window
    speed = (step - window_step) * p["batch_size"] * ctx.world_size / max(now - window_start, 1e-9)
    run.tb.scalars(step, {"train/loss": row["train_loss"], "train/lr": row["lr"],
                          "train/grad_norm": row["grad_norm"]})  # fmt: skip
    if end_of_epoch:
        gpu = {}
        if ctx.device.type == "cuda":
            gpu["gpu/max_memory_mb"] = torch.cuda.max_memory_allocated(ctx.device) / 2**20
        run.tb.scalars(step, {"train/samples_per_second": speed, **gpu})
        run.window = (now, step)
        progress_line(step, p["steps"], math.ceil(p["steps"] / p["val_every"]), p["val_every"],
                      row, run.state.best, speed, gpu.get("gpu/max_memory_mb"))  # fmt: skip


def _checkpoint(run: Run) -> None:
    """Write the resumable state (rank 0)."""
    if run.ctx.is_main:
        seconds = run.state.elapsed + run.clock()
        save_run(run.store, run.state, run.parts, seconds, run.ctx.world_size)


def _finish(run: Run, model_out: Path, history_out: Path, keep_checkpoint: bool) -> dict[str, Any]:
    """Write the last weights, the history and, last, the model file (best weights) (rank 0);
    then, unless ``keep_checkpoint``, remove the resumable state; return the summary.

    Until the model file is in place the final step's checkpoint stays: a process killed on
    the way resumes at the final step and writes the files again."""
    state, ctx = run.state, run.ctx
    run.tb.close()
    run.val_tiles.close()
    checksums = distributed.check_replicas(ctx, run.raw)
    last_state = cpu_state(run.raw)
    best = state.best
    if best["state"] is None:  # no validation: the last weights
        best.update(step=state.step, mae=math.nan)
        best["state"] = last_state
    seconds = state.elapsed + run.clock()
    if ctx.is_main:
        mean, std = run.stats
        common = {
            "name": run.name, "kwargs": run.kwargs, "mean": mean, "std": std,
            "bands": run.meta.bands, "regions": run.meta.regions, "params": run.p,
        }  # fmt: skip
        done = {"steps_done": state.step, "stopped_early": state.stopped_early,
                "world_size": ctx.world_size}  # fmt: skip
        save_model_file(
            run.store.last_model_path, state_dict=last_state, **common, best_step=state.step,
            val_mae_masked=math.nan, **done,
        )  # fmt: skip
        write_history(state.history, history_out)
        save_model_file(
            model_out, state_dict=best["state"], **common, best_step=int(best["step"]),
            val_mae_masked=float(best["mae"]), **done,
        )  # fmt: skip
        if not keep_checkpoint:
            run.store.clear()
        log.info(
            "done in %.1f s (%d steps%s); best val masked MAE %.4f at step %d",
            seconds, state.step, ", stopped early" if state.stopped_early else "", best["mae"],
            best["step"],
        )  # fmt: skip
    distributed.barrier(ctx)
    step, start = state.step, run.start_step
    return {
        "steps": len(state.history),
        "resumed_from": start,
        "stopped_early": state.stopped_early,
        "best_step": int(best["step"]),
        "val_mae_masked": float(best["mae"]),
        "val_psnr_masked": float(best["psnr"]),
        "final_train_loss": state.history[-1]["train_loss"] if state.history else math.nan,
        "parameters": count_parameters(run.raw),
        "device": str(ctx.device),
        "world_size": ctx.world_size,
        "rank": ctx.rank,
        "weights_checksum": checksums[ctx.rank],
        "seconds": seconds,
        "seconds_per_step": seconds / max(1, step - start) if step > start else 0.0,
    }
