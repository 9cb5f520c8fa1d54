"""Models registered by name and built from config (the network and the baselines alike).

:data:`MODELS` holds exactly the names ``train.model.name`` allows: ``utilise`` (the trained
network of :mod:`cloudfree.models.network`) and the gap-filling baselines of
:mod:`cloudfree.models.baselines` (``linear``, ``closest``, ``last``, ``least_cloudy``,
``mean``) as parameter-free modules with the same call signature (``trainable = False``):
training writes their model file without an optimizer step, and inference and metrics run
them like the network.  :func:`model_spec` gives the name and keyword arguments of the model
a resolved train section describes (``train.inputs.s1`` -> ``s1_channels`` 2 for the
networks; the baselines ignore S1).  Reads and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cloudfree.errors import ConfigError
from cloudfree.extras import missing_extra
from cloudfree.models.baselines import BASELINE_MODELS
from cloudfree.models.network import UTILISE
from cloudfree.models.presets import REFERENCE_HEADS, REFERENCE_WIDTHS
from cloudfree.models.s1 import s1_channels

try:
    from torch import nn
except ImportError as exc:
    raise missing_extra("torch", "train") from exc


class UTILISEReference(UTILISE):
    """U-TILISE's network for SEN12MS-CR-TS (Stucker et al. 2023): widths 64, 64, 64, 64, 128
    (four down-samplings), L-TAE with 4 heads; the config's widths and heads are ignored."""

    WIDTHS = REFERENCE_WIDTHS
    HEADS = REFERENCE_HEADS

    def __init__(self, in_channels: int, prior: str, s1_channels: int = 0, **ignored: Any) -> None:
        del ignored
        super().__init__(in_channels, self.WIDTHS, self.HEADS, prior=prior, s1_channels=s1_channels)


MODELS: dict[str, type[nn.Module]] = {
    "utilise": UTILISE,
    "utilise_reference": UTILISEReference,
    **BASELINE_MODELS,
}


M = TypeVar("M", bound=type[nn.Module])


def register(name: str) -> Callable[[M], M]:
    """Class decorator adding a network to :data:`MODELS` under ``name``."""

    def deco(cls: M) -> M:
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered")
        MODELS[name] = cls
        return cls

    return deco


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate a registered network; unknown names or bad kwargs raise ConfigError."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}"
        ) from None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {name!r}: bad parameters {kwargs}: {exc}") from exc


def model_spec(params: Mapping[str, Any], in_channels: int) -> tuple[str, dict[str, Any]]:
    """Name and keyword arguments of the model of a resolved train section on data of
    ``in_channels`` bands: ``train.model`` and, for the networks, ``s1_channels`` (2 with
    ``train.inputs.s1``, else 0; not given to the baselines, which take no S1)."""
    spec = dict(params["model"])
    name = spec.pop("name")
    kwargs: dict[str, Any] = {"in_channels": in_channels, **spec}
    if name not in BASELINE_MODELS:
        kwargs["s1_channels"] = s1_channels(params)
    return name, kwargs


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def is_trainable(model: nn.Module) -> bool:
    """False for the registered baselines (and any module that says so)."""
    return bool(getattr(model, "trainable", True))
