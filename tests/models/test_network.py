"""Tests of cloudfree.models.network: shapes, padding and attention masking, precision."""

from __future__ import annotations

import pytest
import torch

from cloudfree.errors import ConfigError
from cloudfree.models import network
from cloudfree.models.network import UTILISE, doy_encoding, mix_skip, pad_spatial
from cloudfree.models.prior import temporal_prior
from cloudfree.models.registry import build_model


def _inputs(b: int = 2, t: int = 5, c: int = 3, h: int = 16, w: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, c, h, w, generator=g)
    avail = torch.rand(b, t, h, w, generator=g) > 0.3
    doy = torch.sort(torch.randint(1, 366, (b, t), generator=g), dim=1).values
    return x * avail[:, :, None], avail, doy


@pytest.fixture
def model() -> UTILISE:
    torch.manual_seed(0)
    return build_model("utilise", in_channels=3, widths=(8, 16, 16), heads=2, prior="none").eval()


VARIANTS = [
    {"prior": "none"},
    {"prior": "linear_offset"},
    {"prior": "none", "own_skip": True, "avail_weighting": True},
    {"prior": "linear_offset", "norm": "group"},
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_shape_and_backward(variant: dict) -> None:
    torch.manual_seed(0)
    model = build_model("utilise", in_channels=3, widths=(8, 16, 16), heads=2, **variant)
    model.eval()
    x, avail, doy = _inputs()
    out = model(x, avail, doy)
    assert out.shape == x.shape and out.dtype == torch.float32
    model.train()
    model(x, avail.float(), doy).abs().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_output_layer_stays_float32_under_mixed_precision(model: UTILISE) -> None:
    """bf16 autocast (on CUDA; the CPU autocast here behaves alike): the reflectances come
    out of a float32 output layer, close to a full-precision pass."""
    x, avail, doy = _inputs()
    with torch.no_grad():
        full = model(x, avail, doy)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(x, avail, doy)
    assert mixed.dtype == torch.float32
    assert (mixed - full).abs().mean() < 0.02 * full.abs().mean()


def test_rejects_bad_sizes(model: UTILISE) -> None:
    x, avail, doy = _inputs(h=18)
    with pytest.raises(ValueError, match="multiples of 4"):
        model(x, avail, doy)
    x, avail, doy = _inputs(c=4)
    with pytest.raises(ValueError, match="bands"):
        model(x, avail, doy)


@pytest.mark.parametrize("variant", VARIANTS)
def test_padded_dates_do_not_influence_others(variant: dict) -> None:
    torch.manual_seed(0)
    model = build_model("utilise", in_channels=3, widths=(8, 16), heads=2, **variant).eval()
    x, avail, doy = _inputs(t=5)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[0, 4] = True
    pad[1, 1] = True
    with torch.no_grad():
        ref = model(x, avail, doy, pad)
        x2, avail2 = x.clone(), avail.clone()
        x2[pad] = torch.randn_like(x2[pad]) * 10
        avail2[pad] = True
        doy2 = doy.clone()
        doy2[pad] = 7
        out = model(x2, avail2, doy2, pad)
        keep = ~pad
        torch.testing.assert_close(out[keep], ref[keep], rtol=1e-5, atol=1e-5)
        # Same as if the padded date were not there at all.
        alone = model(x[:1, :4], avail[:1, :4], doy[:1, :4])
        torch.testing.assert_close(ref[0, :4], alone[0], rtol=1e-4, atol=1e-5)


def test_a_network_on_the_prior_starts_from_it() -> None:
    """With its output layer at zero, the network returns the temporal prior: what it learns
    is a departure from it."""
    torch.manual_seed(0)
    net = build_model("utilise", in_channels=3, widths=(8, 16), heads=2, prior="linear_offset")
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    x, avail, doy = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(net(x, avail, doy), temporal_prior(x, avail.float(), doy))


def test_an_unknown_prior_is_refused() -> None:
    with pytest.raises(ConfigError, match="prior 'cubic'"):
        build_model("utilise", in_channels=3, widths=(8, 16), heads=2, prior="cubic")


def test_attention_ignores_padded_dates(model: UTILISE) -> None:
    x, avail, doy = _inputs(t=6)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[0, [1, 5]] = True
    with torch.no_grad():
        _, attn = model(x, avail, doy, pad, return_attention=True)
    assert attn.shape == (2, 2, 6, 6, 4, 4)  # (B, heads, query, key, h, w)
    torch.testing.assert_close(attn.sum(dim=3), torch.ones(2, 2, 6, 4, 4))
    assert (attn[0, :, :, [1, 5]] == 0).all()
    assert (attn[1] > 0).all()
    # A sample made only of padding still gives finite outputs.
    out = model(x, avail, doy, torch.ones(2, 6, dtype=torch.bool))
    assert torch.isfinite(out).all()


def test_mix_skip_ignores_unavailable_dates() -> None:
    g = torch.Generator().manual_seed(1)
    b, t, c, h, w, heads = 1, 4, 4, 8, 8, 2
    skip = torch.randn(b, t, c, h, w, generator=g)
    attn = torch.rand(b, heads, t, t, 2, 2, generator=g)
    attn = attn / attn.sum(dim=3, keepdim=True)
    avail = torch.ones(b, t, h, w)
    avail[:, 2, :4] = 0  # date 2 unavailable in the top half
    out = mix_skip(skip, attn, avail)
    skip2 = skip.clone()
    skip2[:, 2] += 100.0  # everywhere; only the available half may matter
    out2 = mix_skip(skip2, attn, avail)
    torch.testing.assert_close(out[..., :4, :], out2[..., :4, :])
    assert not torch.allclose(out[..., 4:, :], out2[..., 4:, :])
    # Without availability, a date's attention weights do the mixing: a one-hot map copies.
    onehot = torch.zeros(b, heads, t, t, 2, 2)
    onehot[:, :, :, 3] = 1
    mixed = mix_skip(skip, onehot)
    torch.testing.assert_close(mixed, skip[:, 3:4].expand_as(skip))


def test_pad_spatial_and_encoding() -> None:
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).view(2, 5, 7)
    padded, (h, w) = pad_spatial(x, 4)
    assert padded.shape == (2, 8, 8) and (h, w) == (5, 7)
    torch.testing.assert_close(padded[:, :5, :7], x)
    torch.testing.assert_close(padded[:, 5, :7], x[:, 3])  # reflection
    mask, _ = pad_spatial(torch.ones(1, 3, 3, dtype=torch.bool), 8)  # replicate fallback
    assert mask.shape == (1, 8, 8) and mask.dtype == torch.bool and mask.all()
    same, _ = pad_spatial(x[:, :4, :4], 4)
    assert same.shape == (2, 4, 4)
    enc = doy_encoding(torch.tensor([[1, 200]]), 16)
    assert enc.shape == (1, 2, 16) and enc.abs().max() <= 1
    assert not torch.allclose(enc[0, 0], enc[0, 1])


def test_mix_skip_in_chunks_equals_one_product(monkeypatch) -> None:
    """Chunks of query dates (a small budget) and the one product of exporting agree."""
    g = torch.Generator().manual_seed(2)
    b, t, c, h, w, heads = 2, 5, 4, 8, 8, 2
    skip = torch.randn(b, t, c, h, w, generator=g)
    attn = torch.rand(b, heads, t, t, 4, 4, generator=g).softmax(dim=3)
    avail = (torch.rand(b, t, h, w, generator=g) > 0.3).float()
    monkeypatch.setattr(network, "_MIX_BUDGET", b * heads * t * h * w * 2)  # 2 queries a chunk
    chunked = mix_skip(skip, attn, avail)
    monkeypatch.setattr(network, "ONE_PRODUCT", True)
    torch.testing.assert_close(mix_skip(skip, attn, avail), chunked)
