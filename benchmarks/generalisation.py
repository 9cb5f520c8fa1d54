"""Does the model beat the baselines on scenes and dates it never saw?

    python benchmarks/generalisation.py                       # the default config
    python benchmarks/generalisation.py --config config/generalisation.yaml

For every synthetic region of the config (of an experiment over several synthetic regions,
its first one): generates and packs its training scene (and those of the experiment's other
regions), trains the model with the config's ``train`` section (as rule train does), then
generates ``--scenes`` fresh scenes (each with its own seed, acquisition dates none of which
a training scene has, weather, clouds and land cover: the region's evaluation scene of
``evaluation.inductive`` with seed offsets 1000, 2000, ...), reconstructs them with the
trained model (as rule infer does) and scores every method as rule metrics does: pooled
masked MAE and PSNR per tile, averaged over tiles, and the model's paired difference to the
best baseline of each scene with a 95 % bootstrap interval over tiles.  The training
scene's own test tiles are scored too (``transductive``).  Prints a table and writes
``--out`` (JSON): per region the training time and per scene ``methods -> {mae, psnr}``,
``best_baseline`` and ``model_minus_best_baseline -> {mae, ci_low, ci_high}`` (and the
PSNR difference).

    python benchmarks/generalisation.py --merge OUT A.json B.json   # runs of other regions
    python benchmarks/generalisation.py --report OUT                # the README's table
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudfree.configfile import load_config_file
from cloudfree.infer.region import infer_region
from cloudfree.metrics.region import region_metrics
from cloudfree.pack.writer import pack_region
from cloudfree.preflight import resolve_workflow_config
from cloudfree.tiles.synthetic.region import evaluation_scene, generate_region
from cloudfree.tiles.synthetic.spec import SyntheticSpec
from cloudfree.train.loop import train_model

SCENE_SEED_STEP = 1000


def _set(config: dict[str, Any], assignment: str) -> None:
    """``a.b.c=value`` (value parsed as YAML) into the config."""
    key, _, raw = assignment.partition("=")
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = yaml.safe_load(raw)


def _pack(region: str, section: dict[str, Any], config: dict[str, Any], work: Path) -> Path:
    manifest = generate_region(region, SyntheticSpec.from_dict(section), work / "tiles")
    evaluation = {k: v for k, v in config["evaluation"].items() if k != "inductive"}
    return pack_region(manifest, work / f"{region}.h5", pack=config["pack"], evaluation=evaluation)


def _scores(summary: Any) -> dict[str, Any]:
    rows = summary.set_index("method")
    methods = {
        str(m): {"mae": float(r["mae_masked"]), "psnr": float(r["psnr_masked"])}
        for m, r in rows.iterrows()
    }
    model = rows.loc["model"]
    return {
        "tiles": int(model["tiles"]),
        "methods": methods,
        "best_baseline": str(model["best_baseline"]),
        "model_minus_best_baseline": {
            "mae": float(model["mae_masked_diff_best"]),
            "ci_low": float(model["mae_masked_diff_best_ci_low"]),
            "ci_high": float(model["mae_masked_diff_best_ci_high"]),
            "psnr": float(model["psnr_masked_diff_best"]),
            "psnr_ci_low": float(model["psnr_masked_diff_best_ci_low"]),
            "psnr_ci_high": float(model["psnr_masked_diff_best_ci_high"]),
        },
    }


def _model_regions(config: dict[str, Any], region: str) -> list[str]:
    """The synthetic regions whose scenes train ``region``'s model (its experiment's)."""
    for exp in config["experiments"].values():
        if region in exp["regions"]:
            return [region, *(r for r in exp["regions"] if r != region)]
    return [region]


def run_region(
    region: str, config: dict[str, Any], scenes: int, work: Path, threads: int
) -> dict[str, Any]:
    section = config["regions"][region]["synthetic"]
    trains_on = _model_regions(config, region)
    others = [config["regions"][r]["synthetic"] for r in trains_on[1:]]
    packed = _pack(region, section, config, work / "train")
    training = [packed] + [
        _pack(r, config["regions"][r]["synthetic"], config, work / f"train_{r}")
        for r in trains_on[1:]
    ]
    model_dir = work / "model"
    start = time.perf_counter()
    summary = train_model(
        training, model_dir / "model.pt", model_dir / "history.csv", config["train"],
        threads=threads,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    baselines = config["metrics"]["baselines"]
    infer = config["infer"]
    out: dict[str, Any] = {
        "trained_on": trains_on,
        "train_seconds": round(seconds, 1),
        "steps": summary["steps"],
        "parameters": summary["parameters"],
        "best_step": summary["best_step"],
    }
    targets = [("transductive", packed)]
    for k in range(1, scenes + 1):
        inductive = {**config["evaluation"]["inductive"], "seed_offset": SCENE_SEED_STEP * k}
        scene = evaluation_scene(section, inductive, others)
        targets.append((f"scene{k}", _pack(f"{region}_scene{k}", scene, config, work / f"s{k}")))
    for name, path in targets:
        start = time.perf_counter()
        eval_path = work / f"{name}_eval.h5"
        infer_region(
            model_dir / "model.pt", path, work / f"{name}_tiles", eval_path,
            device=infer["device"], compress=infer["compress"], window=infer["window"],
            overlap=infer["overlap"], batch_size=infer["batch_size"], amp=infer["amp"],
            embeddings={"enabled": False}, change={"enabled": False},
        )  # fmt: skip
        scores = region_metrics(
            path, eval_path, baselines=baselines, experiment=region, holdout=None
        )
        out[name] = _scores(scores.summary) | {"seconds": round(time.perf_counter() - start, 1)}
        print(f"{region} {name}: {json.dumps(out[name])}", flush=True)
    return out


METHOD_ORDER = ("model", "linear", "linear_offset", "harmonic", "whittaker", "closest", "mean")


def merge(paths: list[Path]) -> dict[str, Any]:
    """One result from runs over different regions of the same config and training."""
    runs = [json.loads(p.read_text()) for p in paths]
    first = runs[0]
    for path, run in zip(paths[1:], runs[1:], strict=True):
        for key in ("config", "machine", "train"):
            if run[key] != first[key]:
                raise SystemExit(f"{path}: {key} differs from {paths[0]}'s; not merged")
        if clash := set(run["regions"]) & set(first["regions"]):
            raise SystemExit(f"{path}: regions {sorted(clash)} are in {paths[0]} too")
    merged = copy.deepcopy(first)
    merged["command"] = " + ".join(r["command"] for r in runs) + " (run at once, merged)"
    for run in runs[1:]:
        merged["regions"].update(run["regions"])
    return merged


def report(result: dict[str, Any]) -> str:
    """The markdown table of a result: pooled masked MAE per method and the model's paired
    difference to the best baseline of each scene."""
    methods = [
        m
        for m in METHOD_ORDER
        if any(
            m in scene["methods"]
            for res in result["regions"].values()
            for scene in res.values()
            if isinstance(scene, dict)
        )
    ]
    head = ["region", "scene", "tiles", *methods, "model − best baseline [95 % CI]"]
    lines = [
        "| " + " | ".join(head) + " |",
        "| " + " | ".join(["---", "---", "---:", *["---:"] * len(methods), "---"]) + " |",
    ]
    for region, res in result["regions"].items():
        for name, scene in res.items():
            if not isinstance(scene, dict) or "methods" not in scene:
                continue
            d = scene["model_minus_best_baseline"]
            if any(d[k] is None or math.isnan(d[k]) for k in ("ci_low", "ci_high")):
                diff = f"{d['mae']:+.5f} no interval (< 10 tiles)"
            else:
                diff = f"{d['mae']:+.5f} [{d['ci_low']:+.5f}, {d['ci_high']:+.5f}]"
            cells = [f"{scene['methods'][m]['mae']:.5f}" if m in scene["methods"] else ""
                     for m in methods]  # fmt: skip
            row = [region, name, str(scene["tiles"]), *cells, f"{diff} ({scene['best_baseline']})"]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config/config.yaml")
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--regions", nargs="*", help="default: every synthetic region")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. train.steps=1000")  # fmt: skip
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--work", type=Path, help="keep the scenes and models here")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/generalisation.json")
    parser.add_argument("--merge", nargs="+", type=Path, metavar=("OUT", "JSON"),
                        help="merge runs over other regions into OUT; stop")  # fmt: skip
    parser.add_argument("--report", type=Path, metavar="JSON",
                        help="print the markdown table of a result; stop")  # fmt: skip
    args = parser.parse_args()
    if args.merge:
        out, *parts = args.merge
        out.write_text(json.dumps(merge(parts), indent=1) + "\n")
        return 0
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    raw = load_config_file(args.config)
    for assignment in args.set:
        _set(raw, assignment)
    config = resolve_workflow_config(copy.deepcopy(raw))
    regions = (  # one per model: an experiment by its first region
        args.regions
        or [
            r
            for r, c in sorted(config["regions"].items())
            if c["source"] == "synthetic"
            and not any(r in e["regions"][1:] for e in config["experiments"].values())
        ]
    )
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/generalisation.py", *sys.argv[1:]]),
        "config": str(
            args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}",
        "train": config["train"],
        "regions": {},
    }
    with tempfile.TemporaryDirectory(prefix="cloudfree-generalisation-") as tmp:
        for region in regions:
            work = (args.work or Path(tmp)) / region
            result["regions"][region] = run_region(region, config, args.scenes, work, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'region':8} {'scene':13} {'model':>8} {'best':>8} {'baseline':14} {'diff [95 % CI]'}")
    for region, res in result["regions"].items():
        for name, scene in res.items():
            if not isinstance(scene, dict):
                continue
            d = scene["model_minus_best_baseline"]
            best = scene["best_baseline"]
            print(
                f"{region:8} {name:13} {scene['methods']['model']['mae']:8.5f} "
                f"{scene['methods'][best]['mae']:8.5f} {best:14} "
                f"{d['mae']:+.5f} [{d['ci_low']:+.5f}, {d['ci_high']:+.5f}]"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
