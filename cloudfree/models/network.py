"""The U-TILISE-style reconstruction network (U-Net with a lightweight temporal attention).

Every model (this network and the baselines of :mod:`cloudfree.models.baselines`, all built
by name with :func:`cloudfree.models.registry.build_model`) maps a cloudy series to a
reconstructed one with the call signature::

    model(x, avail, doy, pad=None, *, s1=None) -> (B, T, C, H, W)

- ``x``: (B, T, C, H, W) float, normalised reflectance, 0 where unavailable;
- ``avail``: (B, T, H, W) bool/float, 1 where the pixel is observed and clear;
- ``doy``: (B, T) long, day of year of each date;
- ``pad``: optional (B, T) bool, True for padding dates (ignored by every other date);
- ``s1``: optional (B, T, 3, H, W) float, Sentinel-1 VV and VH scaled to [0, 1] and their
  availability (:func:`cloudfree.models.s1.scale_s1`), for a network built with
  ``s1_channels`` 2 (required then, refused otherwise; the baselines ignore it).

Reads and writes nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Sequence

from cloudfree.extras import missing_extra
from cloudfree.models.prior import temporal_prior
from cloudfree.models.s1 import S1_CHANNELS

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

# Elements of the upsampled attention tensor materialised at once when mixing skips.
_MIX_BUDGET = 1 << 25
# True while exporting (cloudfree.models.export): the skip mixing in one product over every
# query date, since a chunk count that depends on the input's size would fix T in the graph
ONE_PRODUCT = False


def pad_spatial(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two dims of ``x`` up to a multiple of ``multiple`` (reflection).

    Returns the padded tensor and the original (H, W) to crop back to.  Falls back to edge
    replication where the image is too small to reflect.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, h, w)
    dtype = flat.dtype
    if not flat.is_floating_point():
        flat = flat.float()
    mode = "reflect" if ph < h and pw < w else "replicate"
    out = F.pad(flat, (0, pw, 0, ph), mode=mode).to(dtype)
    return out.reshape(*lead, h + ph, w + pw), (h, w)


class LayerNorm2d(nn.Module):
    """LayerNorm over channels at every pixel of (N, C, H, W): local, size-independent."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


PRIORS = ("none", "linear_offset")
NORMS = ("layer", "group")


def make_norm(kind: str, channels: int) -> nn.Module:
    """``layer``: per-pixel channel LayerNorm; ``group``: GroupNorm over each image."""
    if kind == "layer":
        return LayerNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, 4), channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with normalisation and GELU, plus a residual projection."""

    def __init__(self, cin: int, cout: int, norm: str = "layer") -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            make_norm(norm, cout),
            nn.GELU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            make_norm(norm, cout),
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.body(x) + self.skip(x))


def doy_encoding(doy: torch.Tensor, dim: int, period: float = 1000.0) -> torch.Tensor:
    """Sinusoidal encoding of day-of-year values: (...,) -> (..., dim), as in L-TAE."""
    half = (dim + 1) // 2
    freq = period ** (-torch.arange(half, device=doy.device, dtype=torch.float32) / half)
    angle = doy.float()[..., None] * freq
    enc = torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(-2)
    return enc[..., :dim]


class TemporalAttention(nn.Module):
    """Lightweight multi-head self-attention over time, per pixel (L-TAE style).

    Queries and keys are small projections (``d_k`` per head) of the date features plus a
    day-of-year encoding; values are the features themselves, split into ``heads`` channel
    groups (no value projection), so the same attention maps can mix the U-Net skips.
    Returns the updated features and the attention maps (B, heads, T, T, H, W); maps are
    rows over query dates and sum to 1 over key dates, padding dates get weight 0.
    """

    def __init__(
        self, channels: int, heads: int, d_k: int, period: float = 1000.0, avail_bias: bool = True
    ) -> None:
        super().__init__()
        self.heads, self.d_k, self.period = heads, d_k, period
        self.norm = nn.LayerNorm(channels)
        self.q = nn.Linear(channels, heads * d_k)
        self.k = nn.Linear(channels, heads * d_k)
        self.avail_bias = nn.Parameter(torch.zeros(heads)) if avail_bias else None
        self.out = nn.Sequential(
            nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels)
        )
        self.norm_out = nn.LayerNorm(channels)

    def forward(
        self,
        x: torch.Tensor,
        doy: torch.Tensor,
        pad: torch.Tensor | None,
        avail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, c, h, w = x.shape
        seq = x.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)
        pe = doy_encoding(doy, c, self.period).to(seq.dtype)  # (B, T, C)
        pe = pe[:, None, None].expand(b, h, w, t, c).reshape(b * h * w, t, c)
        z = self.norm(seq) + pe
        q = self.q(z).view(-1, t, self.heads, self.d_k).transpose(1, 2)
        k = self.k(z).view(-1, t, self.heads, self.d_k).transpose(1, 2)
        logits = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(self.d_k)  # (N, h, T, T)
        if self.avail_bias is not None and avail is not None:
            # Availability fraction of each key date at this resolution, as a learned bias.
            frac = avail.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, t).float()
            logits = logits + self.avail_bias.view(1, -1, 1, 1) * frac
        if pad is not None:
            keep = ~pad.bool()
            keep = keep | ~keep.any(dim=1, keepdim=True)  # an all-padding sample attends anyway
            keep = keep[:, None, None].expand(b, h * w, 1, t).reshape(b * h * w, 1, 1, t)
            logits = logits.masked_fill(~keep, float("-inf"))
        attn = logits.softmax(dim=-1)  # (N, heads, T, T)
        v = z.view(-1, t, self.heads, c // self.heads).transpose(1, 2)
        mixed = (attn.to(v.dtype) @ v).transpose(1, 2).reshape(-1, t, c)
        out = self.norm_out(seq + self.out(mixed))
        out = out.view(b, h, w, t, c).permute(0, 3, 4, 1, 2)
        attn = attn.view(b, h, w, self.heads, t, t).permute(0, 3, 4, 5, 1, 2)
        return out, attn


def _mix_queries(attn: torch.Tensor, grouped: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, q, heads, C', H, W): the (B, heads, q, T, h, w) attention of ``q`` query dates,
    upsampled to ``size``, applied to the (B, T, heads, C', H, W) grouped features."""
    b, heads, q, t = attn.shape[:4]
    if attn.shape[-2:] != size:
        attn = F.interpolate(
            attn.reshape(b, heads * q * t, *attn.shape[-2:]),
            size=size,
            mode="bilinear",
            align_corners=False,
        ).view(b, heads, q, t, *size)
    return torch.einsum("bgqshw,bsgchw->bqgchw", attn.to(grouped.dtype), grouped)


def mix_skip(
    skip: torch.Tensor, attn: torch.Tensor, avail: torch.Tensor | None = None
) -> torch.Tensor:
    """Mix (B, T, C, H, W) skip features across dates with (B, heads, T, T, h, w) attention.

    The maps are upsampled bilinearly to (H, W); head ``g`` mixes the ``g``-th channel group.
    With ``avail`` (B, T, H, W) in [0, 1], each key date's weight is scaled by its pixel's
    availability and renormalised, so gaps are filled from dates actually observed at that
    pixel (features are ~0 where no date is observed).
    """
    b, t, c, hh, ww = skip.shape
    heads = attn.shape[1]
    cg = c // heads
    grouped = skip.view(b, t, heads, cg, hh, ww)
    if avail is not None:  # numerator and denominator of the renormalised mix in one pass
        av = avail.to(skip.dtype)[:, :, None, None].expand(b, t, heads, 1, hh, ww)
        grouped = torch.cat((grouped * av, av), dim=3)
    if ONE_PRODUCT:
        mixed = _mix_queries(attn, grouped, (hh, ww))
    else:
        chunk = max(1, min(t, _MIX_BUDGET // max(b * heads * t * hh * ww, 1)))
        parts = [
            _mix_queries(attn[:, :, q0 : q0 + chunk], grouped, (hh, ww))
            for q0 in range(0, t, chunk)
        ]
        mixed = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    if avail is not None:
        mixed = mixed[:, :, :, :cg] / mixed[:, :, :, cg:].clamp_min(1e-3)
    return mixed.reshape(b, t, c, hh, ww)


class UTILISE(nn.Module):
    """U-TILISE-style sequence-to-sequence reconstruction network.

    A U-Net whose convolutions are shared across dates (dates are folded into the batch);
    each date's input is its C bands plus an availability channel.  At the bottleneck a
    lightweight temporal self-attention (L-TAE style, sinusoidal day-of-year encoding,
    padding dates masked) exchanges information between dates; its attention maps,
    upsampled, mix every skip connection across dates (per head over channel groups) and
    the decoder outputs all C bands for every date.

    With ``prior`` ``linear_offset`` the network refines a temporal prior
    (:func:`cloudfree.models.prior.temporal_prior`: each date interpolated from its neighbours,
    plus the date's radiometric offset): the prior is an input beside the bands and the
    output is the prior plus what the network adds, so what it learns is how a date departs
    from its neighbours (local haze, changes, missed clouds), not the radiometry of the dates
    it trained on.

    With ``s1_channels`` 2 each date's input also has Sentinel-1 VV and VH (scaled to [0, 1])
    and their availability (0 where no S1 exists for the date): the ``s1`` argument of
    :meth:`forward`.  They only enter the stem; the prior stays optical only and the output
    is the C optical bands.

    ``H`` and ``W`` must be multiples of ``2 ** (len(widths) - 1)``; use :func:`pad_spatial`.

    Args:
        in_channels: bands C.
        widths: channels per level; each further level halves the resolution.
        heads: attention heads; every width must be divisible by it.
        prior: ``none`` or ``linear_offset`` (see above).
        d_k: query/key size per head.
        own_skip: also give the decoder each date's own (unmixed) skip features (an
            addition to U-TILISE; off by default).
        avail_weighting: scale the skip-mixing weights by the per-pixel availability of the
            key dates and bias the bottleneck attention by it (an addition to U-TILISE; off
            by default: on the default data it scored the same and trained 15-25% slower).
        period: base of the day-of-year encoding.
        norm: ``layer`` (per-pixel LayerNorm over channels: outputs do not depend on the
            image size or window, unlike ``group``, GroupNorm over each image and date).
        s1_channels: 0 (optical only) or 2 (Sentinel-1 VV and VH as extra inputs).
    """

    def __init__(
        self,
        in_channels: int,
        widths: Sequence[int],
        heads: int,
        prior: str,
        d_k: int = 8,
        own_skip: bool = False,
        avail_weighting: bool = False,
        period: float = 1000.0,
        norm: str = "layer",
        s1_channels: int = 0,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"widths needs >= 2 positive entries, got {widths}")
        if heads < 1 or any(w % heads for w in widths):
            raise ValueError(f"every width in {widths} must be divisible by heads={heads}")
        if prior not in PRIORS:
            raise ValueError(f"prior {prior!r}: expected one of {', '.join(PRIORS)}")
        if s1_channels not in (0, S1_CHANNELS):
            raise ValueError(f"s1_channels must be 0 or {S1_CHANNELS}, got {s1_channels}")
        self.in_channels, self.widths, self.heads = in_channels, widths, heads
        self.prior, self.s1_channels = prior, int(s1_channels)
        self.own_skip, self.avail_weighting = own_skip, avail_weighting
        self.multiple = 2 ** (len(widths) - 1)
        extra = in_channels if prior != "none" else 0
        radar = self.s1_channels + 1 if self.s1_channels else 0  # VV, VH and availability
        self.stem = ConvBlock(in_channels + 1 + extra + radar, widths[0], norm)
        self.down = nn.ModuleList()
        for cin, cout in itertools.pairwise(widths):
            self.down.append(
                nn.Sequential(
                    nn.Conv2d(cin, cout, 2, stride=2, bias=False),
                    make_norm(norm, cout),
                    nn.GELU(),
                    ConvBlock(cout, cout, norm),
                )
            )
        self.temporal = TemporalAttention(
            widths[-1], heads, d_k, period=period, avail_bias=avail_weighting
        )
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for level in range(len(widths) - 2, -1, -1):
            cin, cout = widths[level + 1], widths[level]
            self.up.append(nn.ConvTranspose2d(cin, cout, 2, stride=2))
            skips = 2 if own_skip else 1
            self.dec.append(ConvBlock(cout * (1 + skips), cout, norm))
        self.head = nn.Conv2d(widths[0], in_channels, 1)

    def forward(
        self,
        x: torch.Tensor,
        avail: torch.Tensor,
        doy: torch.Tensor,
        pad: torch.Tensor | None = None,
        return_attention: bool = False,
        *,
        s1: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C, H, W) -> (B, T, C, H, W); optionally also the bottleneck attention.

        ``s1`` (B, T, 3, H, W): scaled VV, VH and their availability; required with
        ``s1_channels`` 2, refused with 0 (ValueError).
        """
        b, t, c, h, w = x.shape
        if c != self.in_channels:
            raise ValueError(f"expected {self.in_channels} bands, got {c}")
        if h % self.multiple or w % self.multiple:
            raise ValueError(
                f"H, W = {h}, {w} must be multiples of {self.multiple}; pad with pad_spatial"
            )
        radar = self._radar(s1, (b, t, h, w))
        av = avail.to(x.dtype)
        if pad is not None:  # padding dates carry nothing, whatever their content
            pad = pad.bool()
            x = x.masked_fill(pad[:, :, None, None, None], 0)
            av = av.masked_fill(pad[:, :, None, None], 0)
            if radar is not None:
                radar = radar.masked_fill(pad[:, :, None, None, None], 0)
        parts = [x, av[:, :, None]]
        base = None
        if self.prior != "none":
            base = temporal_prior(x.float(), av, doy, pad).to(x.dtype)
            parts.append(base)
        if radar is not None:
            parts.append(radar.to(x.dtype))
        feat = self.stem(torch.cat(parts, dim=2).flatten(0, 1))
        skips, avails = [feat], [av]
        for down in self.down:
            feat = down(feat)
            skips.append(feat)
            avails.append(F.avg_pool2d(avails[-1], 2))
        bottom = feat.view(b, t, *feat.shape[1:])
        bottom, attn = self.temporal(bottom, doy, pad, avails[-1] if self.avail_weighting else None)
        feat = bottom.flatten(0, 1)
        for i, (up, dec) in enumerate(zip(self.up, self.dec, strict=True)):
            level = len(self.widths) - 2 - i
            skip = skips[level].view(b, t, *skips[level].shape[1:])
            mixed = mix_skip(skip, attn, avails[level] if self.avail_weighting else None)
            parts = [up(feat), mixed.flatten(0, 1)]
            if self.own_skip:
                parts.append(skips[level])
            feat = dec(torch.cat(parts, dim=1))
        # The output layer in float32 under mixed precision: bf16 keeps 8 bits of mantissa,
        # too coarse for reflectances (errors of tens of DN).
        with (
            torch.autocast(device_type=feat.device.type, enabled=False)
            if feat.device.type in ("cuda", "cpu")
            else contextlib.nullcontext()
        ):
            out = self.head(feat.float()).view(b, t, c, h, w)
            if base is not None:
                out = out + base.float()
        return (out, attn) if return_attention else out

    def _radar(
        self, s1: torch.Tensor | None, size: tuple[int, int, int, int]
    ) -> torch.Tensor | None:
        """The checked S1 input (B, T, s1_channels + 1, H, W), or None without S1 input."""
        if not self.s1_channels:
            if s1 is not None:
                raise ValueError("s1 given, but the network was built without S1 input")
            return None
        b, t, h, w = size
        want = (b, t, self.s1_channels + 1, h, w)
        if s1 is None:
            raise ValueError(
                f"the network takes Sentinel-1 input (s1_channels={self.s1_channels}): pass "
                f"s1 of shape {want} (VV, VH, availability)"
            )
        if tuple(s1.shape) != want:
            raise ValueError(f"s1 has shape {tuple(s1.shape)}, expected {want}")
        return s1
