"""Damaged files are refused or rebuilt, never used: a packed file with damaged pixel chunks,
a model file with non-finite weights or normalisation, a truncated compiled cloud detector;
and a training run killed while writing its outputs resumes instead of starting again."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401  (packed files may use Blosc)
import numpy as np
import pandas as pd
import pytest
import torch

import cloudfree.pack.writer as writer
from cloudfree.bands import S2_L1C_BANDS
from cloudfree.clouds.detector import compiled_available, hash_path, verified
from cloudfree.errors import InputDataError, ModelFileError
from cloudfree.modelfile import read_model_file, save_model_file
from cloudfree.models.registry import build_model
from cloudfree.packed import iter_tiles, open_packed, read_meta, read_tile, validate_layout
from cloudfree.train.dataset import EvalTiles
from cloudfree.train.reader import PackedReader
from tests.model_file import load_predictor, write_model_file
from tests.packed import write_packed

pytestmark = pytest.mark.reliability
REPO = Path(__file__).resolve().parents[2]
DAMAGE = 4096  # bytes of random data written over a chunk


# -- packed files ------------------------------------------------------------------------


def noise_tiles(seed: int = 0) -> dict[str, tuple]:
    """Two tiles of noisy pixels (chunks too large to compress below DAMAGE bytes): ``a`` val
    (with evaluation gaps), ``b`` train."""
    rng = np.random.default_rng(seed)
    tiles = {}
    for name, split in (("a", "val"), ("b", "train")):
        s2 = rng.integers(1, 10000, (3, len(S2_L1C_BANDS), 32, 32), dtype=np.uint16)
        mask = (rng.random((3, 32, 32)) < 0.2).astype(np.uint8)
        gap = rng.random((3, 32, 32)) < 0.3 if split == "val" else None
        tiles[name] = (split, s2, mask, np.array([10, 40, 70], np.int16), gap)
    return tiles


def naming(path: Path, tile: str) -> str:
    """A pattern of a message that names ``path`` and ``tile`` (in either order)."""
    return rf"(?s)^(?=.*{re.escape(str(path))})(?=.*\btile {tile}\b)"


def damage_chunk(path: Path, dataset: str, index: int = 1, seed: int = 1) -> None:
    """Write DAMAGE random bytes (at most half the chunk) into the middle of one stored chunk
    of ``dataset``."""
    with h5py.File(path, "r") as h5:
        info = h5[dataset].id.get_chunk_info(index)
    size = min(DAMAGE, info.size // 2)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + (info.size - size) // 2)
        f.write(np.random.default_rng(seed).bytes(size))


@pytest.mark.parametrize("compression", ["blosc_lz4", "gzip", "lzf"])
def test_a_damaged_chunk_of_a_packed_file_is_an_error_naming_the_file_and_tile(
    tmp_path: Path, compression: str
) -> None:
    tiles = noise_tiles()
    path = write_packed(tmp_path / "region.h5", tiles, compression=compression)
    with h5py.File(path, "r") as h5:
        assert h5["tiles/a/s2"].id.get_chunk_info(1).size > 2 * DAMAGE
    damage_chunk(path, "tiles/a/s2")
    named = naming(path, "a")
    with open_packed(path) as h5, pytest.raises(InputDataError, match=named):
        read_tile(h5, "a")
    with pytest.raises(InputDataError, match=named):
        list(iter_tiles(path))
    with pytest.raises(InputDataError, match=named):
        validate_layout(path)
    with open_packed(path) as h5:  # the other tile is intact and still reads
        np.testing.assert_array_equal(read_tile(h5, "b").s2, tiles["b"][1])


@pytest.mark.parametrize("cache_bytes", [0, 1 << 30], ids=["windows", "cached"])
def test_training_reads_of_a_damaged_packed_file_name_the_file_and_tile(
    tmp_path: Path, cache_bytes: int
) -> None:
    path = write_packed(tmp_path / "region.h5", noise_tiles())
    damage_chunk(path, "tiles/a/s2")
    damage_chunk(path, "tiles/b/mask", index=2)
    ref = {t.tile: t for t in read_meta([path]).tiles}
    reader = PackedReader([path], cache_bytes)
    for tile in ("a", "b"):
        with pytest.raises(InputDataError, match=naming(path, tile)):
            reader.read(ref[tile], slice(None), slice(0, 8), slice(0, 8))
    reader.close()
    val = EvalTiles([path], ([0.1] * 13, [0.05] * 13), split="val")
    with pytest.raises(InputDataError, match=naming(path, "a")):
        val[0]
    val.close()


def test_a_packed_file_written_without_checksums_still_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files of the same format version packed before the checksums read as before."""

    def unchecked(group: h5py.Group, name: str, data: np.ndarray, comp: dict) -> h5py.Dataset:
        return group.create_dataset(name, data=data, chunks=writer._chunks(data.shape), **comp)

    monkeypatch.setattr(writer, "write_pixels", unchecked)
    tiles = noise_tiles()
    path = write_packed(tmp_path / "old.h5", tiles)
    with open_packed(path) as h5:
        assert not h5["tiles/a/s2"].fletcher32
    validate_layout(path)
    for tile in iter_tiles(path):
        split, s2, mask, _, gap = tiles[tile.tile]
        np.testing.assert_array_equal(tile.s2, s2)
        np.testing.assert_array_equal(tile.mask, mask)
        assert tile.split == split and (gap is None) == (tile.gap is None)


# -- model files -------------------------------------------------------------------------


def _first_weight(blob: dict) -> str:
    return next(k for k, v in blob["state_dict"].items() if v.is_floating_point())


def _nan_weight(blob: dict) -> str:
    key = _first_weight(blob)
    blob["state_dict"][key] = blob["state_dict"][key].clone().fill_(float("nan"))
    return rf"weight tensor '{re.escape(key)}' has \d+ non-finite"


def _inf_weight(blob: dict) -> str:
    key = list(blob["state_dict"])[-1]
    blob["state_dict"][key] = blob["state_dict"][key].clone()
    blob["state_dict"][key].view(-1)[0] = float("inf")
    return rf"weight tensor '{re.escape(key)}' has 1 non-finite"


def _zero_std(blob: dict) -> str:
    blob["norm"]["std"][2] = 0.0
    return rf"normalisation std of band {S2_L1C_BANDS[2]} is 0\.0, not positive"


def _nan_std(blob: dict) -> str:
    blob["norm"]["std"][5] = float("nan")
    return rf"normalisation std of band {S2_L1C_BANDS[5]} is nan"


def _inf_mean(blob: dict) -> str:
    blob["norm"]["mean"][0] = float("inf")
    return rf"normalisation mean of band {S2_L1C_BANDS[0]} is inf"


BAD_MODELS = {
    "nan-weight": _nan_weight, "inf-weight": _inf_weight, "zero-std": _zero_std,
    "nan-std": _nan_std, "inf-mean": _inf_mean,
}  # fmt: skip


@pytest.mark.parametrize("fault", list(BAD_MODELS))
def test_a_model_file_with_non_finite_weights_or_a_zero_std_is_refused_at_load(
    tmp_path: Path, fault: str
) -> None:
    blob = torch.load(write_model_file(tmp_path / "good.pt"), weights_only=True)
    expected = BAD_MODELS[fault](blob)
    path = tmp_path / f"{fault}.pt"
    torch.save(blob, path)
    named = rf"model file {re.escape(str(path))}: {expected}"
    with pytest.raises(ModelFileError, match=named):
        read_model_file(path)
    with pytest.raises(ModelFileError, match=named):  # inference loads through the same check
        load_predictor(path)


@pytest.mark.parametrize("fault", list(BAD_MODELS))
def test_a_model_with_non_finite_weights_or_a_zero_std_is_never_written(
    tmp_path: Path, fault: str
) -> None:
    torch.manual_seed(0)
    kwargs = {"in_channels": 13, "widths": [4, 8], "heads": 2, "prior": "none"}
    blob = {
        "state_dict": build_model("utilise", **kwargs).state_dict(),
        "norm": {"mean": [0.15] * 13, "std": [0.08] * 13},
    }
    expected = BAD_MODELS[fault](blob)
    path = tmp_path / "model.pt"
    with pytest.raises(ModelFileError, match=rf"not writing model file {re.escape(str(path))}: "
                       rf"{expected}"):  # fmt: skip
        save_model_file(
            path, name="utilise", kwargs=kwargs, state_dict=blob["state_dict"],
            mean=blob["norm"]["mean"], std=blob["norm"]["std"], bands=S2_L1C_BANDS,
            regions=["synth"], params={},
        )  # fmt: skip
    assert not path.exists() and not list(tmp_path.iterdir())


# -- compiled cloud detector -------------------------------------------------------------

# Builds the compiled detector of a small LightGBM model (the cache mechanism is that of
# s2cloudless's 170 trees, compiled in well under a second) in a child process, so an
# LLVM abort on a bad cache fails the test instead of ending the test session.
FOREST = """
import json, logging, sys
from pathlib import Path
import numpy as np
import cloudfree.clouds.detector as detector
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
detector.model_file = lambda: Path(sys.argv[1])
forest = detector.CompiledForest(Path(sys.argv[2]), n_jobs=1)
x = np.random.default_rng(0).random((64, 13))
print(json.dumps({"path": str(forest.path), "p": forest.predict(x).tolist()}))
"""


@pytest.fixture(scope="module")
def small_forest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A LightGBM model file of 13 features and its own predictions on the FOREST rows."""
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(1)
    x = rng.random((400, 13))
    y = (x[:, 1] + 0.5 * x[:, 7] > 0.8).astype(int)
    params = {"objective": "binary", "num_leaves": 6, "verbose": -1, "num_threads": 1}
    booster = lightgbm.train(params, lightgbm.Dataset(x, y), num_boost_round=6)
    path = tmp_path_factory.mktemp("forest") / "model.txt"
    booster.save_model(str(path))
    rows = np.random.default_rng(0).random((64, 13))
    return path, booster.predict(rows)


def build_forest(model: Path, cache: Path) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-c", FOREST, str(model), str(cache)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, check=False, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"exit code {proc.returncode}:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _scramble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 256] = np.random.default_rng(2).bytes(len(data[mid : mid + 256]))
    path.write_bytes(bytes(data))


def _no_hash(path: Path) -> None:
    hash_path(path).unlink()


@pytest.mark.skipif(not compiled_available(), reason="lleaves with llvmlite < 0.45 missing")
@pytest.mark.parametrize("fault", [_truncate, _scramble, _no_hash], ids=["truncated",
                         "damaged", "without-hash"])  # fmt: skip
def test_a_bad_compiled_detector_cache_is_rebuilt_with_a_warning_naming_it(
    tmp_path: Path, small_forest: tuple[Path, np.ndarray], fault: Any
) -> None:
    model, expected = small_forest
    cache = tmp_path / "cache"
    first, _ = build_forest(model, cache)
    obj = Path(first["path"])
    assert obj.parent == cache and verified(obj)
    assert sorted(p.name for p in cache.iterdir()) == [obj.name, hash_path(obj).name]
    np.testing.assert_allclose(first["p"], expected, rtol=1e-9, atol=1e-12)

    fault(obj)
    assert not verified(obj)
    again, log = build_forest(model, cache)
    assert "LLVM ERROR" not in log
    assert re.search(rf"WARNING.*compiled model {re.escape(str(obj))} does not match", log), log
    assert again["path"] == str(obj) and verified(obj)
    np.testing.assert_allclose(again["p"], expected, rtol=1e-9, atol=1e-12)
    _, log = build_forest(model, cache)  # rebuilt once: the next run just loads it
    assert "WARNING" not in log and "compiling" not in log


# -- training killed while writing its outputs -------------------------------------------

# Runs workflow/scripts/train.py as Snakemake would, optionally killed (os._exit, as
# abrupt as SIGKILL: no cleanup runs) at one moment after the last training step.
TRAIN_JOB = """
import json, os, runpy, sys
from types import SimpleNamespace as NS
job = json.loads(sys.argv[1])
kill = job["kill"]
import cloudfree.train.curve as curve
import cloudfree.train.loop as loop

def killed(real, when):
    def call(*args, **kwargs):
        out = real(*args, **kwargs)
        if when(*args, **kwargs):
            os._exit(137)
        return out
    return call

out = job["out"]
if kill == "history":  # the history is written, the model file is not yet
    loop.write_history = killed(loop.write_history, lambda *a, **k: True)
elif kill == "model":  # the model file is in place under its final name
    loop.save_model_file = killed(
        loop.save_model_file, lambda path, **k: str(path) == out["model"])
elif kill == "curve":  # model and history are in place, the curve is not
    curve.training_curve = lambda *a, **k: os._exit(137)
smk = NS(
    scriptdir=job["scriptdir"], input=NS(h5=job["h5"]), output=NS(**out),
    params=NS(train=job["params"], regions=["synth"]), config={}, resources=NS(), threads=1,
    log=[job["log"]], rule="train", wildcards={"experiment": "synth"},
)
runpy.run_path(job["script"], init_globals={"snakemake": smk}, run_name="__main__")
"""


def run_train_job(workdir: Path, packed: Path, params: dict[str, Any], kill: str) -> int:
    models = workdir / "results/models/synth"
    names = {"model": "model.pt", "history": "history.csv", "curve": "history.png"}
    out = {key: str(models / name) for key, name in names.items()}
    job = {
        "kill": kill, "out": out, "h5": [str(packed)], "params": params,
        "log": str(workdir / "train.log"), "scriptdir": str(REPO / "workflow/scripts"),
        "script": str(REPO / "workflow/scripts/train.py"),
    }  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", TRAIN_JOB, json.dumps(job)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, check=False, timeout=600,
    )  # fmt: skip
    return proc.returncode


@pytest.mark.parametrize("kill", ["history", "model", "curve"])
def test_training_killed_while_writing_its_outputs_resumes_at_its_last_step(
    tmp_path: Path, small_packed: Path, tiny_params: Any, kill: str
) -> None:
    params = tiny_params(num_workers=0)
    steps = params["steps"]
    assert run_train_job(tmp_path, small_packed, params, kill) == 137
    models = tmp_path / "results/models/synth"
    state = models / "checkpoints/state.pt"
    assert state.is_file(), f"killed after the {kill}: the checkpoint is gone"
    assert torch.load(state, weights_only=True)["step"] == steps
    # Snakemake removes the outputs of the killed job before it runs it again.
    for name in ("model.pt", "history.csv", "history.png"):
        (models / name).unlink(missing_ok=True)

    assert run_train_job(tmp_path, small_packed, params, "") == 0
    log = (tmp_path / "train.log").read_text()
    assert f"resumed from step {steps} " in log, log[-3000:]
    history = pd.read_csv(models / "history.csv")
    assert history["step"].tolist() == list(range(1, steps + 1))
    assert read_model_file(models / "model.pt")[1]["steps_done"] == steps
    assert (models / "history.png").is_file()
    assert not state.exists()  # every output in place: the resumable state is gone
    assert (models / "checkpoints/last_model.pt").is_file()
