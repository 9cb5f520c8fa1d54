"""Tests of cloudfree.modelfile: the one writer and the one reader of model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.errors import ModelFileError
from cloudfree.modelfile import MODEL_FORMAT_VERSION, read_model_file, save_model_file
from cloudfree.models.network import UTILISE
from cloudfree.models.registry import build_model

from .model_file import write_model_file


def test_round_trip_keeps_the_format(tmp_path: Path) -> None:
    torch.manual_seed(0)
    kwargs = {"in_channels": 2, "widths": (4, 8), "heads": np.int64(2), "prior": "none"}
    net = build_model("utilise", **kwargs)
    path = save_model_file(
        tmp_path / "m.pt", name="utilise", kwargs=kwargs, state_dict=net.state_dict(),
        mean=np.array([0.1, 0.2]), std=np.array([0.01, 0.02], np.float32), bands=("B04", "B08"),
        regions=["r"], params={"steps": 3, "model": {"widths": (4, 8)}}, best_step=3,
        val_mae_masked=0.5,
    )  # fmt: skip
    assert not list(tmp_path.glob(".*tmp*"))  # written via a temporary sibling
    blob = torch.load(path, weights_only=True)
    assert list(blob) == ["format_version", "model", "state_dict", "norm", "bands", "params",
                          "regions", "best_step", "val_mae_masked"]  # fmt: skip
    assert blob["format_version"] == MODEL_FORMAT_VERSION == 2
    plain = {"in_channels": 2, "widths": [4, 8], "heads": 2, "prior": "none"}
    assert blob["model"] == {"name": "utilise", "kwargs": plain}
    assert type(blob["model"]["kwargs"]["heads"]) is int
    std = [float(np.float32(0.01)), float(np.float32(0.02))]
    assert blob["norm"] == {"mean": [0.1, 0.2], "std": std}
    assert blob["bands"] == ["B04", "B08"] and blob["params"]["model"]["widths"] == [4, 8]
    model, meta = read_model_file(path, bands=["B04", "B08"])
    assert isinstance(model, UTILISE) and meta["best_step"] == 3 and "state_dict" not in meta
    a, b = net.state_dict(), model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_model_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"nope\.pt does not exist"):
        read_model_file(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match=r"cannot read model file .*garbage\.pt"):
        read_model_file(garbage)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ModelFileError, match=r"list\.pt: expected a dict, got list"):
        read_model_file(tmp_path / "list.pt")
    blob = torch.load(write_model_file(tmp_path / "m.pt"), weights_only=True)
    torch.save({**blob, "format_version": 99}, tmp_path / "v99.pt")
    with pytest.raises(ModelFileError, match=r"v99\.pt: format_version 99, expected 2; train"):
        read_model_file(tmp_path / "v99.pt")
    torch.save({**blob, "format_version": 0}, tmp_path / "old.pt")
    with pytest.raises(ModelFileError, match=r"old\.pt.*format_version 0"):
        read_model_file(tmp_path / "old.pt")
    torch.save({k: v for k, v in blob.items() if k != "norm"}, tmp_path / "nonorm.pt")
    with pytest.raises(ModelFileError, match=r"missing keys \['norm'\]"):
        read_model_file(tmp_path / "nonorm.pt")
    torch.save({**blob, "model": {"name": "nosuchnet", "kwargs": {}}}, tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match=r"bad\.pt: unknown model 'nosuchnet'"):
        read_model_file(tmp_path / "bad.pt")
    torch.save({**blob, "norm": {**blob["norm"], "mean": [0.1]}}, tmp_path / "norm.pt")
    with pytest.raises(ModelFileError, match=r"norm\.pt.*normalisation of 1 bands"):
        read_model_file(tmp_path / "norm.pt")


def test_a_model_of_other_bands_is_refused(tmp_path: Path) -> None:
    path = write_model_file(tmp_path / "rgb.pt", bands=["B04", "B03", "B02"])
    with pytest.raises(ModelFileError, match=r"rgb\.pt was trained on bands .*B04.*B8A"):
        read_model_file(path, bands=["B04", "B8A"])
    assert read_model_file(path, bands=["B04", "B03", "B02"])[1]["bands"] == ["B04", "B03", "B02"]
