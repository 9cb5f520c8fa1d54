"""DistributedDataParallel on the CPU: two gloo processes train and agree on the weights."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp

from cloudfree.infer.predictor import load_model
from cloudfree.train.distributed import DistContext, all_sum, broadcast_flag, check_replicas
from cloudfree.train.launch import launch, processes_for
from cloudfree.train.loop import train_model

from .packed import make_packed

PARAMS: dict[str, Any] = {
    "model": {"name": "utilise", "widths": [4, 8], "heads": 2},
    "steps": 6,
    "batch_size": 2,
    "crop": 8,
    "warmup_steps": 1,
    "val_every": 3,
    "device": "cpu",
    "tensorboard": False,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, packed: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
    )  # fmt: skip
    summary = train_model([packed], f"{out}/model.pt", f"{out}/history.csv", PARAMS)
    Path(out, f"rank{rank}.json").write_text(json.dumps(summary))


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_packed(tmp_path_factory.mktemp("ddp") / "r.h5", n_tiles=5, size=16, dates=4)


def test_two_gloo_processes_agree(packed: Path, tmp_path: Path) -> None:
    repo = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    mp.spawn(_worker, args=(2, _free_port(), str(packed), str(tmp_path)), nprocs=2, join=True)
    s0, s1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert s0["world_size"] == s1["world_size"] == 2 and s0["steps"] == s1["steps"] == 6
    assert s0["weights_checksum"] == s1["weights_checksum"]
    assert s0["final_train_loss"] == s1["final_train_loss"]  # the loss is averaged over ranks
    blob = torch.load(tmp_path / "model.pt", weights_only=True)
    assert blob["world_size"] == 2 and blob["steps_done"] == 6


def test_torchrun_launcher_on_cpu(packed: Path, tmp_path: Path) -> None:
    summary = launch([packed], tmp_path / "m.pt", tmp_path / "h.csv", PARAMS, threads=2,
                     processes=2)  # fmt: skip
    assert summary["world_size"] == 2 and summary["rank"] == 0
    pred = load_model(tmp_path / "m.pt", "cpu")
    assert pred.meta["world_size"] == 2 and (tmp_path / "h.csv").is_file()


def test_single_process_helpers() -> None:
    ctx = DistContext()
    assert not ctx.distributed and ctx.is_main
    assert all_sum(ctx, [1.0, 2.0]) == [1.0, 2.0] and broadcast_flag(ctx, True)
    assert len(check_replicas(ctx, torch.nn.Linear(2, 2))) == 1
    assert processes_for(0) == 1 and processes_for(4, "cpu") == 1
