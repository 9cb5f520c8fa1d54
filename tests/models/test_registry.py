"""Tests of cloudfree.models.registry: every allowed model name builds, errors name the model."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from cloudfree.config import schema
from cloudfree.errors import ConfigError
from cloudfree.models.baselines import BASELINES
from cloudfree.models.presets import PRESET_WIDTHS
from cloudfree.models.registry import MODELS, build_model, count_parameters, is_trainable, register


def _inputs(b: int = 2, t: int = 5, c: int = 3, h: int = 16, w: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, c, h, w, generator=g)
    avail = torch.rand(b, t, h, w, generator=g) > 0.3
    doy = torch.sort(torch.randint(1, 366, (b, t), generator=g), dim=1).values
    return x * avail[:, :, None], avail, doy


def test_the_registry_holds_the_names_the_schema_allows() -> None:
    names = schema()["properties"]["train"]["properties"]["model"]["properties"]["name"]["enum"]
    assert sorted(MODELS) == sorted(names)


def test_registry_errors() -> None:
    assert "utilise" in MODELS
    with pytest.raises(ConfigError, match="nosuchnet"):
        build_model("nosuchnet")
    with pytest.raises(ConfigError, match="utilise"):
        build_model("utilise", in_channels=3, widths=(8, 16), heads=3)
    with pytest.raises(ConfigError, match="utilise"):
        build_model("utilise", bogus=1)
    with pytest.raises(ValueError, match="already registered"):
        register("utilise")(nn.Identity)


def test_register_and_count() -> None:
    @register("_test_linear")
    class Tiny(nn.Module):
        def __init__(self, n: int = 2) -> None:
            super().__init__()
            self.lin = nn.Linear(n, 3)
            self.frozen = nn.Parameter(torch.zeros(5), requires_grad=False)

    try:
        m = build_model("_test_linear", n=4)
        assert isinstance(m, Tiny)
        assert count_parameters(m) == 4 * 3 + 3
    finally:
        del MODELS["_test_linear"]


def test_baselines_are_registered_models() -> None:
    for name in BASELINES:
        model = build_model(name, in_channels=3, widths=[8, 16], heads=2, prior="none")  # ignored
        assert not is_trainable(model) and count_parameters(model) == 0
        x, avail, doy = _inputs()
        assert model(x, avail, doy).shape == x.shape
    assert is_trainable(
        build_model("utilise", in_channels=3, widths=(8, 16), heads=2, prior="none")
    )


def test_the_reference_network_is_u_tilise_sized() -> None:
    """U-TILISE's SEN12MS-CR-TS configuration: about 1.1 to 1.4 M parameters on 13 bands."""
    for prior in ("none", "linear_offset"):
        net = build_model("utilise_reference", in_channels=13, widths=[8], heads=1, prior=prior)
        assert net.widths == [64, 64, 64, 64, 128] and net.heads == 4 and net.multiple == 16
        assert 1_100_000 <= count_parameters(net) <= 1_400_000, count_parameters(net)


def test_every_fixed_size_network_has_its_widths_in_the_presets():
    """The config checks read a network's widths from the presets (without torch): each
    registered network of a fixed size is there, with the widths it is built with."""
    names = schema()["properties"]["train"]["properties"]["model"]["properties"]["name"]["enum"]
    fixed = {n: tuple(MODELS[n].WIDTHS) for n in names if getattr(MODELS[n], "WIDTHS", None)}
    assert fixed == PRESET_WIDTHS


def test_the_config_checks_before_the_first_job_do_not_import_torch():
    """Snakemake runs them at every parse of the workflow (each cluster job too)."""
    code = "import sys, cloudfree.preflight; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
