"""One optimisation step: loss, learning-rate schedule, optimizer, backward pass (no I/O)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cloudfree.device import autocast
from cloudfree.extras import missing_extra

try:
    import torch
    from torch import nn
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

MIN_LR_RATIO = 0.05  # cosine decay ends at this fraction of the peak rate


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


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with weight decay on the weights (tensors of 2 or more dims) only."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr)


def forward_loss(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    p: Mapping[str, Any],
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> torch.Tensor:
    """The training loss of one batch (forward pass under autocast; the batch's ``s1``, the
    Sentinel-1 input of a model that takes it, goes to the model too)."""
    radar = {"s1": batch["s1"]} if "s1" in batch else {}
    with autocast(device, amp_dtype):
        pred = model(batch["x"], batch["avail"], batch["doy"], pad=batch["pad"], **radar)
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
