"""Tests of cloudfree.train.distributed: two gloo processes on the CPU train and agree."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

from cloudfree.train.distributed import DistContext, all_sum, broadcast_flag, check_replicas
from cloudfree.train.loop import train_model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, packed: str, out: str, params: dict) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
    )  # fmt: skip
    summary = train_model([packed], f"{out}/model.pt", f"{out}/history.csv", params)
    Path(out, f"rank{rank}.json").write_text(json.dumps(summary))


def test_two_gloo_processes_agree(
    small_packed: Path, tiny_params: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    repo = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    params = tiny_params(steps=6, warmup_steps=1, val_every=3)
    args = (2, _free_port(), str(small_packed), str(tmp_path), params)
    mp.spawn(_worker, args=args, nprocs=2, join=True)
    s0, s1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert s0["world_size"] == s1["world_size"] == 2 and s0["steps"] == s1["steps"] == 6
    assert s0["weights_checksum"] == s1["weights_checksum"]
    assert s0["final_train_loss"] == s1["final_train_loss"]  # the loss is averaged over ranks
    blob = torch.load(tmp_path / "model.pt", weights_only=True)
    assert blob["world_size"] == 2 and blob["steps_done"] == 6


def test_single_process_helpers() -> None:
    ctx = DistContext()
    assert not ctx.distributed and ctx.is_main
    assert all_sum(ctx, [1.0, 2.0]) == [1.0, 2.0] and broadcast_flag(ctx, True)
    assert len(check_replicas(ctx, torch.nn.Linear(2, 2))) == 1
