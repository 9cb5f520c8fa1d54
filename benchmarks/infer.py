"""Inference throughput of the default model on this CPU.

Builds the default network of the config schema (``train.model`` defaults: utilise,
widths [16, 32, 64], 4 heads) with UNTRAINED weights (throughput does not depend on them),
saves it as a model file and reconstructs synthetic 13-band series through
``cloudfree.infer.predictor`` (normalisation, sliding windows with blending, de-normalisation):

- ``tile``: default-workflow tiles, 64 x 64 px, 12 dates (one window);
- ``large``: a 512 x 512 px raster, 12 dates, 256 px windows overlapping by 32 px;
- ``large_products``: the same with embeddings (all channels) and consecutive change maps.

Megapixels per second count pixel-dates (dates x height x width) reconstructed per
second, best of ``--repeat`` runs.  Usage::

    python benchmarks/infer.py [--repeat 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cloudfree.bands import S2_L1C_BANDS
from cloudfree.config import section
from cloudfree.infer.predictor import load_model
from cloudfree.modelfile import save_model_file
from cloudfree.models.registry import build_model, count_parameters

INFER = section("infer", {"device": "cpu"})  # the schema's sliding windows


def default_model_kwargs() -> dict:
    model = section("train")["model"]
    return {"widths": model["widths"], "heads": model["heads"]}


def write_model(path: Path) -> int:
    kwargs = {"in_channels": len(S2_L1C_BANDS), **default_model_kwargs()}
    torch.manual_seed(0)
    model = build_model("utilise", **kwargs)
    save_model_file(
        path, name="utilise", kwargs=kwargs, state_dict=model.state_dict(), mean=[0.15] * 13,
        std=[0.08] * 13, bands=S2_L1C_BANDS, regions=[], params={"untrained": True},
    )  # fmt: skip
    return count_parameters(model)


def series(size: int, dates: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    s2 = rng.integers(300, 4000, (dates, 13, size, size), dtype=np.uint16)
    avail = rng.random((dates, size, size)) > 0.4
    doy = np.sort(rng.choice(np.arange(1, 366), dates, replace=False))
    return s2, avail, doy


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "infer.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cases = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        n_params = write_model(path)
        pred = load_model(
            path, INFER["device"], window=INFER["window"], overlap=INFER["overlap"],
            batch_size=INFER["batch_size"], amp=INFER["amp"],
        )  # fmt: skip
        for name, size, dates, products in (
            ("tile", 64, 12, False),
            ("large", 512, 12, False),
            ("large_products", 512, 12, True),
        ):
            s2, avail, doy = series(size, dates)
            extra = (
                {"embed_channels": list(range(pred.embedding_size)),
                 "change_pairs": [(i - 1, i) for i in range(1, dates)]}
                if products else {}
            )  # fmt: skip
            seconds = timed(
                lambda s2=s2, a=avail, d=doy, e=extra: pred.predict(s2, a, d, **e), args.repeat
            )
            mpx = dates * size * size / 1e6
            cases[name] = {
                "size_px": size,
                "dates": dates,
                "seconds": seconds,
                "mpx_per_s": mpx / seconds,
            }
            print(name, json.dumps(cases[name]))
    result = {
        "model": {"name": "utilise", **default_model_kwargs(), "parameters": n_params,
                  "weights": "untrained (throughput only)"},
        "device": INFER["device"], "threads": args.threads, "window": INFER["window"],
        "overlap": INFER["overlap"], "batch_size": INFER["batch_size"],
        "cases": cases, "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "torch": torch.__version__,
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
