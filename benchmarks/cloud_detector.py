"""Compare the cloud stage's detector with a plain s2cloudless call on the same stack.

    python benchmarks/cloud_detector.py [--repeat 4] [--dates 4]

The stack is the real Betsiboka L1C scene (tests/data/s2-l1c-betsiboka, CC BY-SA 4.0,
contains modified Copernicus Sentinel data; from the s2cloudless 1.2.2 test inputs) repeated
``--dates`` times, as a (dates, 856, 512, 13) reflectance array.  Both run in this process,
the same calls on each (probability maps, then masks, which compute the probabilities again):

- reference: ``S2PixelCloudDetector(threshold, average_over, dilation_size, all_bands=True)``
  ``get_cloud_probability_maps`` + ``get_cloud_masks`` (LightGBM), with the schema's
  ``clouds.detector`` settings (those SEN12MS-CR-TS used);
- stage: :func:`cloudfree.clouds.detector.make_detector` with the same settings (the model
  compiled by lleaves, cache loaded; the one-time compile is timed separately).

Prints and writes benchmarks/results/cloud_detector.json: best-of-``--repeat`` wall times,
Mpx/s, speed-up, pixel agreement of the masks and the largest probability difference; also
the stage's own path (one probability map, the mask from it) and the CPU-time ratio of the
bare model on one thread each, which other load on the machine does not distort.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudfree.bands import REFLECTANCE_SCALE
from cloudfree.clouds.detector import cache_dir, make_detector, model_file
from cloudfree.config import section
from cloudfree.io import read_raster

SCENE = REPO / "tests/data/s2-l1c-betsiboka/S2L1C_13band_betsiboka.tif"


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def single_thread_cpu_ratio(stack: np.ndarray, stage, n: int = 100_000) -> float:
    """LightGBM / compiled CPU seconds of the bare model on n pixels, one thread each
    (insensitive to other load on the machine)."""
    from lightgbm import Booster
    from s2cloudless.utils import MODEL_BAND_IDS

    x = np.ascontiguousarray(stack[..., MODEL_BAND_IDS].reshape(-1, 10)[:n], dtype=np.float64)
    booster = Booster(model_file=str(model_file()))
    compiled = getattr(stage.classifier.classifier, "model", None)
    if compiled is None:
        return float("nan")
    t0 = time.process_time()
    booster.predict(x, num_threads=1)
    t1 = time.process_time()
    compiled.predict(x, n_jobs=1)
    return (t1 - t0) / (time.process_time() - t1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dates", type=int, default=4)
    parser.add_argument("--fresh-cache", action="store_true", help="time a compile from scratch")
    args = parser.parse_args()

    from s2cloudless import S2PixelCloudDetector

    image, _ = read_raster(SCENE)
    one = np.moveaxis(image, 0, -1).astype(np.float32) / np.float32(REFLECTANCE_SCALE)
    stack = np.stack([one] * args.dates)
    mpx = stack.shape[0] * stack.shape[1] * stack.shape[2] / 1e6

    settings = section("clouds")["detector"]
    if args.fresh_cache:
        settings["cache_dir"] = tempfile.mkdtemp(prefix="cloudfree-cache-")
    t0 = time.perf_counter()
    stage = make_detector(settings)
    setup = time.perf_counter() - t0  # compile (fresh cache) or load of the cached object

    reference = S2PixelCloudDetector(
        threshold=settings["threshold"], average_over=settings["average_over"],
        dilation_size=settings["dilation_size"], all_bands=True,
    )  # fmt: skip

    def run(det):
        prob = det.get_cloud_probability_maps(stack)
        return prob, det.get_cloud_masks(stack)

    # get_cloud_masks recomputes the probabilities, as a plain call does
    t_ref, (p_ref, m_ref) = best_of(lambda: run(reference), args.repeat)
    t_stage, (p_stage, m_stage) = best_of(lambda: run(stage), args.repeat)
    # what the stage itself does per image: one probability map, the mask from it
    t_stage_once, _ = best_of(
        lambda: stage.get_mask_from_prob(stage.get_cloud_probability_maps(stack)), args.repeat
    )
    cpu_ratio = single_thread_cpu_ratio(stack, stage)
    result = {
        "stack": list(stack.shape),
        "megapixels": mpx,
        "reference_s": t_ref,
        "stage_s": t_stage,
        "reference_mpx_per_s": 2 * mpx / t_ref,
        "stage_mpx_per_s": 2 * mpx / t_stage,
        "speedup": t_ref / t_stage,
        "stage_prob_then_mask_s": t_stage_once,
        "speedup_stage_path": t_ref / t_stage_once,
        "predict_cpu_ratio_one_thread": cpu_ratio,
        "mask_agreement": float((m_ref == m_stage).mean()),
        "max_probability_difference": float(np.abs(p_ref - p_stage).max()),
        "cloud_fraction_reference": float(m_ref.mean()),
        "cloud_fraction_stage": float(m_stage.mean()),
        "setup_s": setup,
        "setup_kind": "compile" if args.fresh_cache else "cached or compiled once",
        "cache": str(cache_dir(settings)),
        "cpus": len(os.sched_getaffinity(0)),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    for key, value in result.items():
        print(f"{key:28s} {value:.4g}" if isinstance(value, float) else f"{key:28s} {value}")
    out = REPO / "benchmarks/results/cloud_detector.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    ok = result["speedup"] >= 5 and result["mask_agreement"] >= 0.99
    print("OK" if ok else "BELOW TARGET (>= 5x, >= 99 % agreement)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
