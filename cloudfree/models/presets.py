"""Networks of a fixed size, by name: their widths and attention heads, readable without
torch (the config checks before the first job read them; :mod:`cloudfree.models.registry`
builds the networks from them)."""

from __future__ import annotations

# U-TILISE's network for SEN12MS-CR-TS (Stucker et al. 2023): four down-samplings.
REFERENCE_WIDTHS = (64, 64, 64, 64, 128)
REFERENCE_HEADS = 4

# ``train.model.name`` -> the widths it always has (the config's widths are ignored).
PRESET_WIDTHS: dict[str, tuple[int, ...]] = {"utilise_reference": REFERENCE_WIDTHS}
