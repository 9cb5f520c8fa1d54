"""Training cost against the number of dates of a series, on this machine's CPU.

    python benchmarks/train_dates.py                      # every case, then the real layout
    python benchmarks/train_dates.py --steps 4 --real-steps 300
    python benchmarks/train_dates.py --case default:68:auto   # one case, printed as JSON

Series like a real ``folder`` one (1 band, NDVI; four 101 x 100 px tiles: two train, one
val, one test; :func:`tests.packed.make_packed`) of 12, 30, 68 and 150 dates.  For the
default network (config defaults) and the reference-size one (``utilise_reference``) each
case runs in its own process (its peak resident memory, ``ru_maxrss``, is its own): the
schema's ``train`` settings (32 px crops, batch 4, ``train.sampling.seq_len`` null), one
warm-up step, then ``--steps`` timed steps of the real sampler and training step (sampling,
forward, masked L1, backward, clipping, AdamW); then one timed validation call
(:func:`cloudfree.train.validate.evaluate`: the val tile, every date; up to
REFERENCE_VAL_DATES dates for the reference-size network).  Cases ``:all`` train
on every date of the series (``seq_len`` = the date count), the cost without the cap.

The real layout (68 dates, default settings) runs :func:`cloudfree.train.loop.train_model`
end-to-end for ``--real-steps`` steps (with its validations every ``val_every`` steps, the
checkpoints and the TensorBoard files); with fewer than the default 300 steps the 300-step
time is extrapolated from the measured steps and validations (the JSON says which).

Writes benchmarks/results/train_dates.json (with the command, the machine and the 1-minute
load average before and after each case).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudfree.config import section
from cloudfree.models.registry import build_model, count_parameters, model_spec
from cloudfree.packed import compute_norm_stats
from cloudfree.train.dataset import EvalTiles, TrainDataset
from cloudfree.train.loop import train_model
from cloudfree.train.step import backward_step, build_optimizer, forward_loss
from cloudfree.train.validate import evaluate
from tests.packed import make_packed

DATES = (12, 30, 68, 150)
MODELS = {"default": "utilise", "reference": "utilise_reference"}
SIZE, TILES, BANDS = (101, 100), 4, ["NDVI"]
REAL_DATES = 68
REFERENCE_VAL_DATES = 68  # the reference-size network validates up to this many dates (time)


def series(folder: Path, dates: int) -> Path:
    """A packed series of ``dates`` dates in the real layout."""
    return make_packed(folder / "p.h5", n_tiles=TILES, size=SIZE, dates=dates, bands=BANDS,
                       seed=1)  # fmt: skip


def load() -> float:
    return round(os.getloadavg()[0], 2)


def run_case(model_key: str, dates: int, seq: str, steps: int, threads: int) -> dict:
    """Time ``steps`` training steps and one validation call of one case in this process."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    params = section("train")
    params["model"] = {**params["model"], "name": MODELS[model_key]}
    sampling = dict(params["sampling"])
    if seq == "all":
        sampling["seq_len"] = dates
    with tempfile.TemporaryDirectory() as tmp:
        path = series(Path(tmp), dates)
        norm = compute_norm_stats([path], "train")
        name, kwargs = model_spec(params, len(BANDS))
        model = build_model(name, **kwargs)
        dataset = TrainDataset(
            [path], norm, crop=params["crop"], samples_per_epoch=(steps + 1) * params["batch_size"],
            seed=params["seed"], augment=params["augment"], **sampling,
        )  # fmt: skip
        optimizer = build_optimizer(model, params["lr"], params["weight_decay"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        batches = iter(DataLoader(dataset, batch_size=params["batch_size"], num_workers=0))
        device = torch.device("cpu")

        def step() -> None:
            batch = next(batches)
            loss = forward_loss(model, batch, params, device, None)
            backward_step(loss, model, optimizer, scaler, scheduler, params["grad_clip"])

        before = load()
        step()  # warm-up
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        val_seconds, scores = None, {"count": None}
        if model_key == "default" or dates <= REFERENCE_VAL_DATES:
            tiles = EvalTiles([path], norm, split="val")
            start = time.perf_counter()
            scores = evaluate(model, tiles, norm[1].astype("float32"), None)
            val_seconds = round(time.perf_counter() - start, 3)
            tiles.close()
        dataset.close()
    seconds = statistics.mean(times)
    b = params["batch_size"]
    return {
        "model": model_key, "dates": dates, "seq_len": dataset.seq_len, "sampling": seq,
        "parameters": count_parameters(model), "batch": b, "crop": params["crop"],
        "threads": threads, "timed_steps": steps, "seconds_per_step": round(seconds, 4),
        "fastest_step_seconds": round(min(times), 4),
        "samples_per_second": round(b / seconds, 3),
        "seconds_per_sample": round(seconds / b, 5),
        "val_seconds_per_call": val_seconds, "val_pixels_scored": scores["count"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average_1min_before": before, "load_average_1min_after": load(),
    }  # fmt: skip


def run_real(steps: int, threads: int) -> dict:
    """The real layout through the real training loop, ``steps`` steps end-to-end."""
    params = section("train")
    full = params["steps"]
    params.update(steps=steps, device="cpu")
    before = load()
    with tempfile.TemporaryDirectory() as tmp:
        path = series(Path(tmp), REAL_DATES)
        start = time.perf_counter()
        out = train_model([path], Path(tmp) / "m.pt", Path(tmp) / "h.csv", params, threads)
        wall = time.perf_counter() - start
        history = pd.read_csv(Path(tmp) / "h.csv")
    seconds = history["seconds"].diff().fillna(history["seconds"].iloc[0]).to_numpy()
    val = history["val_mae_masked"].notna().to_numpy()
    plain = float(statistics.median(seconds[~val]))
    val_extra = [float(s) - plain for s in seconds[val]]
    setup = wall - float(history["seconds"].iloc[-1])
    validations = -(-full // params["val_every"])  # the one at the last step included
    estimate = setup + full * plain + validations * statistics.mean(val_extra)
    return {
        "dates": REAL_DATES, "bands": len(BANDS), "tile_size": list(SIZE), "tiles": TILES,
        "crop": params["crop"], "batch": params["batch_size"], "val_every": params["val_every"],
        "threads": threads, "steps_run": steps, "wall_seconds": round(wall, 1),
        "train_loop_seconds": round(out["seconds"], 1),
        "median_step_seconds": round(plain, 4),
        "validation_seconds_each": [round(v, 2) for v in val_extra],
        "setup_seconds": round(setup, 2),
        "seconds_for_300_steps": round(wall if steps == full else estimate, 1),
        "how": "measured end-to-end" if steps == full else
        f"extrapolated: setup + {full} x median step + {validations} x mean validation",
        "load_average_1min_before": before, "load_average_1min_after": load(),
    }  # fmt: skip


def sub(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         check=True, cwd=REPO)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=4, help="timed steps per case")
    ap.add_argument("--real-steps", type=int, default=300, help="steps of the real layout run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--case", help="model:dates:auto|all (one case, in this process)")
    ap.add_argument("--real", action="store_true", help="only the real layout, in this process")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/train_dates.json"))
    a = ap.parse_args()
    if a.case:
        model_key, dates, seq = a.case.split(":")
        print(json.dumps(run_case(model_key, int(dates), seq, a.steps, a.threads)))
        return
    if a.real:
        print(json.dumps(run_real(a.real_steps, a.threads)))
        return
    cases = [(m, d, "auto") for m in MODELS for d in DATES] + [
        ("default", d, "all") for d in (30, 68)
    ]
    results = {}
    for m, d, seq in cases:
        r = sub(["--case", f"{m}:{d}:{seq}", "--steps", str(a.steps), "--threads", str(a.threads)])
        results[f"{m}:{d}:{seq}"] = r
        line = (
            f"{m:9s} {d:4d} dates seq_len {r['seq_len']:3d}: {r['seconds_per_step']:7.3f} s/step "
            f"{r['seconds_per_sample']:8.4f} s/sample, val {r['val_seconds_per_call']} s, "
            f"{r['peak_rss_mb']:7.1f} MB, load {r['load_average_1min_before']}"
        )
        print(line, flush=True)
    real = sub(["--real", "--real-steps", str(a.real_steps), "--threads", str(a.threads)])
    print(f"real layout: {real['seconds_for_300_steps']} s for 300 steps ({real['how']})")
    ratio = {
        m: round(results[f"{m}:150:auto"]["seconds_per_sample"]
                 / results[f"{m}:12:auto"]["seconds_per_sample"], 2)
        for m in MODELS
    }  # fmt: skip
    doc = {
        "command": "python benchmarks/train_dates.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, cpu, torch {torch.__version__}, "
        f"py {platform.python_version()}, {os.cpu_count()} cores",
        "load_average_1min_end": load(),
        "per_sample_ratio_150_to_12_dates": ratio,
        "cases": results,
        "real_layout": real,
    }
    Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
