"""Train a reconstruction network on packed files and write the model file and history.

The training set is an endless stream of random crops with random gaps (see
:class:`cloudfree.data.TrainDataset`); an *epoch* is ``val_every`` steps.  Each epoch ends
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

import copy
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from . import distributed
from .checkpoint import CheckpointStore, fingerprint, rng_state, set_rng_state
from .data import (
    EvalTiles,
    PackedMeta,
    TrainDataset,
    calibrate_loader,
    close_handles,
    compute_norm_stats,
    read_meta,
    worker_init_fn,
)
from .errors import CloudfreeError, ConfigError, InputDataError
from .io import atomic_path
from .models import build_model, count_parameters, is_trainable
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
    "checkpoint_every": 100,
    "patience": 5,
    "min_delta": 0.0,
    "compile": False,
    "tensorboard": True,
    "sampling": {},  # TrainDataset keywords: seq_len, min_len, max_gap_days, date_classes, ...
}
HISTORY_COLUMNS = (
    "step", "lr", "train_loss", "grad_norm", "val_mae_masked", "val_psnr_masked", "seconds",
)  # fmt: skip
MIN_LR_RATIO = 0.05  # cosine decay ends at this fraction of the peak rate


def require_cuda_for_gpus(gpus: int, device: str, key: str) -> None:
    """A job given GPUs with ``device: auto`` must see one: otherwise torch is a CPU build (or
    the driver is missing) and the job would quietly run on the CPU for hours."""
    if gpus > 0 and str(device).lower() == "auto" and not torch.cuda.is_available():
        raise ConfigError(
            f"this job was given {gpus} GPU(s) (resource gpu) but torch {torch.__version__} "
            f"sees no CUDA device (CUDA build: {torch.version.cuda or 'none'}): install a CUDA "
            f"build of torch (README, 'Training on a cluster'), or set {key}: cpu to run on the "
            "CPU anyway"
        )


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
    ints = (
        "steps", "batch_size", "crop", "warmup_steps", "val_every", "seed",
        "checkpoint_every", "patience",
    )  # fmt: skip
    for key in ints:
        if isinstance(out[key], bool) or not isinstance(out[key], int):
            raise ConfigError(f"train.{key} must be an integer, got {out[key]!r}")
    workers = out["num_workers"]
    if workers != "auto" and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 0
    ):
        raise ConfigError(f"train.num_workers must be an integer >= 0 or 'auto', got {workers!r}")
    floats = ("lr", "weight_decay", "grad_clip", "masked_weight", "observed_weight", "min_delta")
    for key in floats:
        if isinstance(out[key], bool) or not isinstance(out[key], (int, float)):
            raise ConfigError(f"train.{key} must be a number, got {out[key]!r}")
        out[key] = float(out[key])
    for key in ("steps", "batch_size", "crop", "val_every", "checkpoint_every"):
        if out[key] < 1:
            raise ConfigError(f"train.{key} must be >= 1, got {out[key]}")
    nonneg = (
        "warmup_steps", "weight_decay", "masked_weight", "observed_weight",
        "patience", "min_delta",
    )  # fmt: skip
    for key in nonneg:
        if out[key] < 0:
            raise ConfigError(f"train.{key} must be >= 0, got {out[key]}")
    if out["lr"] <= 0 or out["grad_clip"] <= 0:
        raise ConfigError("train.lr and train.grad_clip must be > 0")
    if out["masked_weight"] + out["observed_weight"] <= 0:
        raise ConfigError("train.masked_weight + train.observed_weight must be > 0")
    for key in ("amp", "compile", "tensorboard"):
        if not isinstance(out[key], bool):
            raise ConfigError(f"train.{key} must be true or false, got {out[key]!r}")
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


class TrainingInterrupted(CloudfreeError):
    """A signal stopped training after a checkpoint; running again resumes from it."""


class NonFiniteLossError(CloudfreeError, FloatingPointError):
    """The training loss became NaN or infinite (names the step and the kept checkpoint)."""


class StopRequest:
    """Context manager turning SIGTERM, SIGUSR1 and SIGINT into a flag checked every step.

    Handlers are installed only in the main thread and restored on exit.
    """

    SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "none"

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


def _worker_init(worker_id: int) -> None:
    """DataLoader workers ignore the stop signals: the main process checkpoints and ends them
    (a worker dying of SIGTERM first would abort the loader before the checkpoint)."""
    for name in StopRequest.SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    worker_init_fn(worker_id)


class StepSampler(Sampler[int]):
    """Dataset indices of one process for steps ``start`` .. ``steps - 1`` (0-based).

    Step ``s`` of process ``rank`` (of ``world``) takes ``batch`` consecutive indices at
    ``(s * world + rank) * batch``: samples depend only on the step, so a resumed run sees
    exactly the samples an uninterrupted one would have seen.
    """

    def __init__(self, start: int, steps: int, batch: int, world: int = 1, rank: int = 0) -> None:
        self.start, self.steps, self.batch, self.world, self.rank = start, steps, batch, world, rank

    def __iter__(self) -> Iterator[int]:
        for s in range(self.start, self.steps):
            base = (s * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)

    def __len__(self) -> int:
        return max(0, self.steps - self.start) * self.batch


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


def restore_scaler(scaler: torch.amp.GradScaler, state: Mapping[str, Any]) -> None:
    """Load a saved gradient-scaler state; a run saved without fp16 (CPU, bf16, AMP off)
    saved an empty one, and resuming it on an fp16 GPU starts a fresh scaler."""
    if state:
        scaler.load_state_dict(dict(state))


def forward_loss(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    p: Mapping[str, Any],
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> torch.Tensor:
    """The training loss of one batch (forward pass under autocast)."""
    with autocast(device, amp_dtype):
        pred = model(batch["x"], batch["avail"], batch["doy"], pad=batch["pad"])
    observed = batch["known"] & (batch["avail"] > 0)
    return masked_l1(
        pred, batch["target"], batch["hidden"], observed, p["masked_weight"], p["observed_weight"]
    )


def backward_step(
    loss: torch.Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    grad_clip: float,
) -> float:
    """Backward, unscale, clip, step; returns the gradient norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return grad_norm


class TensorBoardLog:
    """TensorBoard event files of one run (a no-op when disabled or unavailable)."""

    def __init__(self, folder: Path | None, resume_step: int) -> None:
        self.writer = None
        if folder is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # tensorboard is a dependency, but do not die for a log
            log.warning("TensorBoard unavailable (%s): no event files", exc)
            return
        if resume_step == 0 and folder.exists():
            shutil.rmtree(folder)  # a fresh run: old curves would only confuse
        # purge_step drops events a killed run wrote after its last checkpoint.
        self.writer = SummaryWriter(
            str(folder), purge_step=resume_step + 1 if resume_step else None
        )

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if self.writer is not None:
            for tag, value in values.items():
                if value is not None and math.isfinite(value):
                    self.writer.add_scalar(tag, value, step)

    def example(
        self,
        step: int,
        model: nn.Module,
        tiles: EvalTiles,
        norm: tuple[np.ndarray, np.ndarray],
        bands: Sequence[str],
        amp_dtype: torch.dtype | None,
    ) -> None:
        """Input, reconstruction and truth (RGB) of the first val tile's most-hidden date."""
        if self.writer is None or len(tiles) == 0:
            return
        item = tiles[0]
        t = int(item["hidden"].flatten(1).sum(1).argmax())
        pred = run_model(model, item["x"], item["avail"], item["doy"], amp_dtype=amp_dtype)[t]
        rgb = [bands.index(b) if b in bands else i for i, b in enumerate(("B04", "B03", "B02"))]
        rgb = [min(i, len(bands) - 1) for i in rgb]
        mean = torch.as_tensor(norm[0])[rgb, None, None]
        std = torch.as_tensor(norm[1])[rgb, None, None]
        panels = [item["x"][t, rgb], pred[rgb], item["target"][t, rgb]]
        images = torch.stack([(v * std + mean) * 3.5 for v in panels]).clamp(0, 1)
        images[0] *= item["avail"][t][None]  # unseen input pixels black
        self.writer.add_images("val/input_reconstruction_truth", images, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _model_blob(
    name: str,
    kwargs: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    mean: np.ndarray,
    std: np.ndarray,
    meta: PackedMeta,
    p: Mapping[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    return {
        "format_version": MODEL_FORMAT_VERSION,
        "model": {"name": name, "kwargs": dict(kwargs)},
        "state_dict": dict(state),
        "norm": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        "bands": list(meta.bands),
        "params": _to_plain(p),
        "regions": list(meta.regions),
        **extra,
    }


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


def _progress_line(
    step: int,
    steps: int,
    epochs: int,
    val_every: int,
    row: Mapping[str, Any],
    best: Mapping[str, Any],
    speed: float,
    gpu_mb: float | None = None,
) -> None:
    epoch = math.ceil(step / val_every)
    mem = f", GPU peak {gpu_mb:.0f} MB" if gpu_mb is not None else ""
    val = (
        f", val masked MAE {row['val_mae_masked']:.4f} PSNR {row['val_psnr_masked']:.2f} dB "
        f"(best {best['mae']:.4f} @ {best['step']})"
        if math.isfinite(row["val_mae_masked"])
        else ""
    )
    log.info(
        "epoch %d/%d step %d/%d: loss %.4f, grad norm %.3f, lr %.2e%s, %.1f samples/s%s",
        epoch, epochs, step, steps, row["train_loss"], row["grad_norm"], row["lr"], val, speed,
        mem,
    )  # fmt: skip


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
