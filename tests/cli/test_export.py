"""``cloudfree export``: the default network exported to ONNX and TorchScript agrees with
PyTorch at two input shapes, carries what predict needs, and a wrong file fails the check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.cli.export import export_model, main
from cloudfree.config import section
from cloudfree.errors import ModelFileError
from cloudfree.modelfile import read_model_file, save_model_file
from cloudfree.models.export import (
    EXTRA_FILE,
    METADATA_KEY,
    ExportedNetwork,
    check_export,
    onnx_session,
    run_exported,
    sample_inputs,
)
from cloudfree.models.onnx_ops import translation_table
from cloudfree.models.registry import build_model, model_spec

TOLERANCE = 1e-4
# (B, T, H, W) of the comparisons here, other than the check's own shapes
SHAPES = [(1, 7, 20, 28), (3, 3, 8, 36)]


def write_default_model(path: Path, seed: int = 0) -> Path:
    """The schema's default ``train.model``, randomly initialised with ``seed``."""
    torch.manual_seed(seed)
    params = section("train")
    name, kwargs = model_spec(params, len(S2_L1C_BANDS))
    model = build_model(name, **kwargs)
    return save_model_file(
        path, name=name, kwargs=kwargs, state_dict=model.state_dict(), mean=[0.15] * 13,
        std=[0.08] * 13, bands=S2_L1C_BANDS, regions=["synth"], params=params,
    )  # fmt: skip


@pytest.fixture(scope="module")
def default_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_default_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="module")
def onnx_file(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    checks = export_model(default_model, out, "onnx", TOLERANCE)
    return {"path": out, "checks": checks}


def _pytorch(model_path: Path, inputs: list[torch.Tensor]) -> np.ndarray:
    model, _ = read_model_file(model_path)
    with torch.no_grad():
        return ExportedNetwork(model.eval())(*inputs).numpy()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_agrees_with_pytorch_at_two_shapes(
    fmt: str, default_model: Path, onnx_file: dict, tmp_path: Path
) -> None:
    if fmt == "onnx":
        path, checks = onnx_file["path"], onnx_file["checks"]
    else:
        path = tmp_path / "model.ts"
        checks = export_model(default_model, path, fmt, TOLERANCE)
    assert [shape for shape, _ in checks] == [(1, 6, 32, 32), (2, 4, 16, 24)]
    assert all(diff <= TOLERANCE for _, diff in checks)
    model, _ = read_model_file(default_model)
    for k, shape in enumerate(SHAPES):
        inputs = sample_inputs(model, shape, seed=10 + k)
        want = _pytorch(default_model, inputs)
        got = run_exported(path, fmt, inputs)
        assert got.shape == want.shape == (shape[0], shape[1], 13, shape[2], shape[3])
        diff = float(np.max(np.abs(got - want)))
        assert diff <= TOLERANCE, (fmt, shape, diff)


def test_onnx_metadata_has_what_predict_needs(onnx_file: dict, default_model: Path) -> None:
    proto = onnx.load(str(onnx_file["path"]))
    props = {p.key: p.value for p in proto.metadata_props}
    meta = json.loads(props[METADATA_KEY])
    _, file_meta = read_model_file(default_model)
    assert meta["bands"] == list(S2_L1C_BANDS)
    assert meta["norm"] == file_meta["norm"]
    assert meta["model"] == file_meta["model"]
    assert (meta["multiple"], meta["s1_channels"]) == (4, 0)
    assert meta["inputs"] == ["x", "avail", "doy"]
    names = [i.name for i in onnx_session(onnx_file["path"], ["CPUExecutionProvider"]).get_inputs()]
    assert names == ["x", "avail", "doy"]


def test_torchscript_metadata_and_cli(default_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.ts"
    assert main([str(default_model), "--format", "torchscript", "--out", str(out)]) == 0
    extra = {EXTRA_FILE: ""}
    torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra[EXTRA_FILE])
    assert meta["bands"] == list(S2_L1C_BANDS) and meta["format"] == "torchscript"


def test_a_tampered_onnx_file_fails_the_check(
    onnx_file: dict, default_model: Path, tmp_path: Path
) -> None:
    proto = onnx.load(str(onnx_file["path"]))
    weight = next(i for i in proto.graph.initializer if i.name.endswith("head.weight"))
    values = onnx.numpy_helper.to_array(weight).copy()
    values.flat[0] += 0.5
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    tampered = tmp_path / "tampered.onnx"
    onnx.save(proto, str(tampered))
    model, _ = read_model_file(default_model)
    with pytest.raises(ModelFileError, match=r"tampered\.onnx: the exported onnx model differs "
                       r"from PyTorch by .* above the tolerance 0\.0001"):  # fmt: skip
        check_export(model, tampered, "onnx", TOLERANCE)


def test_a_mismatched_model_fails_the_check(default_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.ts"
    export_model(default_model, out, "torchscript", TOLERANCE)
    other, _ = read_model_file(write_default_model(tmp_path / "other.pt", seed=1))
    with pytest.raises(ModelFileError, match="differs from PyTorch"):
        check_export(other, out, "torchscript", TOLERANCE)


def test_a_failed_check_writes_nothing(
    default_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.ts"
    code = main([str(default_model), "--format", "torchscript", "--out", str(out),
                 "--tolerance", "-1"])  # fmt: skip
    assert code == 1
    assert "cloudfree export: error: --tolerance -1.0: must be a number >= 0" in (
        capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []


class _Scans(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a, ia = torch.cummax(x, dim=1)
        b, ib = torch.cummin(x, dim=1)
        m, _ = torch.nanmedian(y, dim=2)
        return a, ia, b, ib, m


def test_the_onnx_translations_equal_torch(tmp_path: Path) -> None:
    """cummax/cummin (ties: the last index, as torch) and nanmedian (the lower median, NaN
    where every value is NaN), at a second number of dates too."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (2, 9, 3), generator=g)  # many ties
    y = torch.randn(2, 3, 6, generator=g)
    y[y > 0.8] = float("nan")
    y[0, 0] = float("nan")
    dims = {"x": {1: torch.export.Dim("t")}, "y": {2: torch.export.Dim("n")}}
    program = torch.onnx.export(
        _Scans().eval(), (x, y), dynamo=True, dynamic_shapes=dims,
        custom_translation_table=translation_table(), verbose=False,
    )  # fmt: skip
    program.save(str(tmp_path / "scans.onnx"))
    session = onnx_session(tmp_path / "scans.onnx", ["CPUExecutionProvider"])
    for xs, ys in ((x, y), (x[:, :5], y[:, :, :5]), (torch.randint(0, 3, (2, 40, 3)), y)):
        got = session.run(None, {"x": xs.numpy(), "y": ys.numpy()})
        want = [v.numpy() for v in _Scans()(xs, ys)]
        for g_, w_ in zip(got, want, strict=True):
            np.testing.assert_array_equal(g_, w_)
