"""DataLoader set-up: the step sampler, worker start-up and the measured choice of workers.

Reads through the datasets it is given (:mod:`cloudfree.train.dataset`); writes nothing.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cloudfree.extras import missing_extra
from cloudfree.train.control import StopRequest

try:
    import torch
    from torch.utils.data import DataLoader, Dataset, Sampler
except ImportError as exc:
    raise missing_extra("torch", "train") from exc


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker setup: one intra-op thread (samples seed themselves by index)."""
    del worker_id
    torch.set_num_threads(1)


@dataclass(frozen=True)
class LoaderSettings:
    """DataLoader settings: worker processes, batches prefetched per worker, pinned memory."""

    num_workers: int
    prefetch_factor: int = 2
    pin_memory: bool = False

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory,
            "worker_init_fn": worker_init_fn,
        }
        if self.num_workers > 0:
            kw.update(prefetch_factor=self.prefetch_factor, persistent_workers=True)
        return kw


def close_handles(dataset: Dataset) -> None:
    """Close the HDF5 files a dataset opened in this process before workers fork: HDF5
    shares an open file's state with a forked child, so workers must open their own."""
    close = getattr(dataset, "close", None)
    if callable(close):
        close()


def loader_rate(dataset: Dataset, batch_size: int, settings: LoaderSettings, batches: int) -> float:
    """Batches per second a DataLoader with ``settings`` delivers (after its first batch)."""
    if settings.num_workers > 0:
        close_handles(dataset)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, **settings.kwargs())
    it = iter(loader)
    next(it)  # worker start-up is paid once per run, not per batch
    start = time.perf_counter()
    done = 0
    for _ in range(batches):
        try:
            next(it)
        except StopIteration:
            break
        done += 1
    rate = done / max(time.perf_counter() - start, 1e-9)
    del it, loader
    return rate


def calibrate_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    device: str | torch.device = "cpu",
    max_workers: int | None = None,
    batches: int = 8,
    prefetch_factor: int = 2,
) -> tuple[LoaderSettings, dict[int, float]]:
    """Choose the worker count by measuring batches/s for 0, 1, 2, 4, ... workers.

    Stops adding workers when one more gains less than 10 %; pins memory on CUDA.  Returns
    the settings and the measured rate per worker count.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = max(0, min(max_workers if max_workers is not None else 8, (cores or 1)))
    pin = torch.device(device).type == "cuda"
    rates: dict[int, float] = {}
    best = 0
    for n in [0, *[w for w in (1, 2, 4, 8, 16) if w <= limit]]:
        settings = LoaderSettings(n, prefetch_factor, pin)
        needed = batches + 1 + n * prefetch_factor
        if len(dataset) < needed * batch_size:  # type: ignore[arg-type]
            break
        rates[n] = loader_rate(dataset, batch_size, settings, batches)
        if rates[n] > rates[best] * 1.1:
            best = n
        elif n > 0:
            break
    return LoaderSettings(best, prefetch_factor, pin), rates


def training_worker_init(worker_id: int) -> None:
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


def training_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int,
    *,
    first_step: int,
    steps: int,
    world: int,
    rank: int,
    device: torch.device,
) -> DataLoader:
    """The DataLoader of one process's batches for steps ``first_step`` .. ``steps - 1``
    (:class:`StepSampler`); its workers leave the stop signals to the main process."""
    if workers > 0:
        close_handles(dataset)  # the calibration or a baseline may have read in this process
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=StepSampler(first_step, steps, batch_size, world, rank),
        num_workers=workers,
        worker_init_fn=training_worker_init,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=False,
    )
