"""Training-step throughput and peak memory on this machine's CPU.

    python benchmarks/train_step.py            # both models, 2 threads
    python benchmarks/train_step.py --threads 4 --steps 8

Two models: the default one (config defaults: widths 16-32-64, 4 heads; 13 bands, 32 px
crops, 12 dates, batch 4) and a SEN12MS-CR-TS-sized one (same network on 13 bands, 256 px,
10 dates, batch 1).  Each runs in its own process (so its peak resident memory, from
``resource.getrusage`` ``ru_maxrss``, is its own): one warm-up step, then ``--steps`` timed
steps of the real training step (forward, masked L1, backward, clipping, AdamW) on random
inputs of the sample shapes.  The mean and the fastest step are reported (on a shared
machine the fastest is the less disturbed one; the 1-minute load average is recorded).
Prints a table and writes
benchmarks/results/train_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudfree.config import section
from cloudfree.models.registry import build_model, count_parameters
from cloudfree.train.step import backward_step, build_optimizer, forward_loss

TRAIN = section("train")  # the schema's defaults
CASES = {
    "default": {"bands": 13, "size": TRAIN["crop"], "dates": 12, "batch": TRAIN["batch_size"]},
    "sen12mscrts": {"bands": 13, "size": 256, "dates": 10, "batch": 1},
}


def run_case(name: str, steps: int, threads: int) -> dict:
    """Time ``steps`` training steps of one case in this process."""
    case = CASES[name]
    params = TRAIN
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    b, t, c, s = case["batch"], case["dates"], case["bands"], case["size"]
    spec = {k: v for k, v in params["model"].items() if k != "name"}
    model = build_model("utilise", in_channels=c, **spec)
    optimizer = build_optimizer(model, params["lr"], params["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    known = torch.rand(b, t, s, s) > 0.3
    hidden = known & (torch.rand(b, t, s, s) > 0.6)
    avail = (known & ~hidden).float()
    target = torch.randn(b, t, c, s, s) * known[:, :, None]
    batch = {
        "x": target * avail[:, :, None], "avail": avail, "target": target, "known": known,
        "hidden": hidden, "doy": torch.sort(torch.randint(1, 366, (b, t)), dim=1).values,
        "pad": torch.zeros(b, t, dtype=torch.bool),
    }  # fmt: skip
    device = torch.device("cpu")

    def step() -> None:
        loss = forward_loss(model, batch, params, device, None)
        backward_step(loss, model, optimizer, scaler, scheduler, params["grad_clip"])

    step()  # warm-up (allocator, first-call costs)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = sum(times) / steps
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        **case,
        "parameters": count_parameters(model),
        "threads": threads,
        "timed_steps": steps,
        "seconds_per_step": round(seconds, 4),
        "samples_per_second": round(b / seconds, 2),
        "fastest_step_seconds": round(min(times), 4),
        "samples_per_second_fastest_step": round(b / min(times), 2),
        "pixels_per_second": round(b * t * s * s / seconds),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case", choices=sorted(CASES), help="run one case in this process")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/train_step.json")
    args = parser.parse_args()
    if args.case:  # child mode: one case, JSON on stdout
        print(json.dumps(run_case(args.case, args.steps, args.threads)))
        return 0
    results = {}
    for name in CASES:
        cmd = [sys.executable, __file__, "--case", name, "--steps", str(args.steps),
               "--threads", str(args.threads)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[name]
        print(
            f"{name:12s} {r['bands']} bands {r['size']} px {r['dates']} dates batch {r['batch']}: "
            f"{r['samples_per_second']:8.2f} samples/s ({r['samples_per_second_fastest_step']:.2f} "
            f"fastest step), {r['seconds_per_step']:.3f} s/step, "
            f"peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    record = {
        "command": f"python benchmarks/train_step.py --steps {args.steps} --threads {args.threads}",
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"torch {torch.__version__}, py {platform.python_version()}",
        "device": "cpu",
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cases": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
