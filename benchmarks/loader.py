"""Does the DataLoader feed training faster than the default model consumes batches on a CPU?

    python benchmarks/loader.py

Packs a region like the embedded default (3 x 3 tiles of 64 px, 12 dates), then measures:

- batches/s of a DataLoader over ``TrainDataset`` (the training defaults: batch 4, crop 32)
  with 0, 1 and 2 worker processes, and samples/s per worker;
- the same for U-TILISE-style sampling (clear and impaired dates, gaps on half the dates,
  dilation 1);
- training steps/s of the default model (``cloudfree.models.network``, the ``train`` defaults):
  forward, masked L1 loss, backward and AdamW step on a batch, with 1 and 2 torch threads
  (the train rule has 2; the faster of the two is compared);
- what :func:`cloudfree.train.loader.calibrate_loader` picks.

Writes benchmarks/results/loader.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudfree.config import section, source_settings
from cloudfree.models.registry import build_model
from cloudfree.pack.writer import pack_region
from cloudfree.packed import compute_norm_stats
from cloudfree.tiles.synthetic.region import generate_region
from cloudfree.tiles.synthetic.spec import SyntheticSpec
from cloudfree.train.dataset import TrainDataset
from cloudfree.train.loader import LoaderSettings, calibrate_loader, loader_rate
from cloudfree.train.step import masked_l1

TRAIN = section("train")  # the schema's defaults


def step_rate(dataset: TrainDataset, batch_size: int, steps: int, threads: int) -> float:
    """Training steps/s of the default model (batches prepared beforehand)."""
    torch.set_num_threads(threads)
    spec = dict(TRAIN["model"])
    name = spec.pop("name")
    model = build_model(name, in_channels=len(dataset.meta.bands), **spec)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = list(DataLoader(dataset, batch_size=batch_size))[: steps + 1]
    times = []
    for batch in batches:
        start = time.perf_counter()
        pred = model(batch["x"], batch["avail"], batch["doy"])
        observed = batch["known"] & (batch["avail"] > 0)
        loss = masked_l1(
            pred, batch["target"], batch["hidden"], observed, TRAIN["masked_weight"],
            TRAIN["observed_weight"],
        )  # fmt: skip
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/loader.json")
    args = parser.parse_args()
    batch, crop = TRAIN["batch_size"], TRAIN["crop"]
    plain = {"seed": TRAIN["seed"], "augment": TRAIN["augment"], **TRAIN["sampling"]}
    with tempfile.TemporaryDirectory(prefix="cloudfree-loader-") as tmp:
        spec = SyntheticSpec.from_dict(source_settings("synthetic", {"seed": 11}))
        manifest = generate_region("bench", spec, Path(tmp) / "tiles")
        pack, evaluation = section("pack"), section("evaluation")
        path = pack_region(manifest, Path(tmp) / "bench.h5", pack=pack, evaluation=evaluation)
        norm = compute_norm_stats([path])
        n = batch * (args.batches + 8)
        sampled = {**plain, "seq_len": 8, "min_len": 4, "date_classes": ["clear", "impaired"],
                   "masked_fraction": 0.5, "dilation": 1}  # fmt: skip
        datasets = {
            "default": TrainDataset([path], norm, crop=crop, samples_per_epoch=n, **plain),
            "utilise": TrainDataset([path], norm, crop=crop, samples_per_epoch=n, **sampled),
        }
        loaders: dict[str, dict[str, float]] = {}
        for name, ds in datasets.items():
            for workers in (0, 1, 2):
                rate = loader_rate(ds, batch, LoaderSettings(workers), args.batches)
                loaders[f"{name}_workers{workers}"] = {
                    "batches_s": rate,
                    "samples_s_per_worker": rate * batch / max(1, workers),
                }
        settings, rates = calibrate_loader(datasets["default"], batch, max_workers=2)
        steps = {t: step_rate(datasets["default"], batch, args.steps, t) for t in (1, 2)}
    steps_s = max(steps.values())  # the faster setting: the harder one to keep fed
    slowest = min(v["batches_s"] for v in loaders.values())
    report = {
        "command": "python benchmarks/loader.py " + " ".join(sys.argv[1:]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
        },
        "batch_size": batch,
        "crop": crop,
        "loader": loaders,
        "train_steps_s": steps_s,
        "train_steps_s_by_threads": steps,
        "calibration": {"chosen_workers": settings.num_workers, "batches_s": rates},
        "loader_faster_than_training": slowest > steps_s,
        "slowest_loader_over_training": slowest / steps_s,
    }
    for name, v in loaders.items():
        print(
            f"{name:20s} {v['batches_s']:8.1f} batches/s "
            f"{v['samples_s_per_worker']:8.1f} samples/s/worker"
        )
    print(f"training steps/s of the default model by torch threads: {steps}")
    print(f"calibration picks {settings.num_workers} workers: {rates}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["loader_faster_than_training"] else 1


if __name__ == "__main__":
    sys.exit(main())
