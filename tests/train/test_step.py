"""Tests of cloudfree.train.step: the masked loss, the learning-rate schedule, the forward pass."""

from __future__ import annotations

import itertools

import pytest
import torch

from cloudfree.train.step import build_optimizer, forward_loss, lr_factor, masked_l1


def test_lr_schedule_warms_up_then_decays() -> None:
    factors = [lr_factor(s, 100, 10) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))
    assert factors[-1] < 0.1


def test_masked_l1_weights() -> None:
    pred = torch.zeros(1, 1, 2, 1, 2)
    target = torch.tensor([[[[[1.0, 3.0]], [[1.0, 3.0]]]]])
    hidden = torch.tensor([[[[True, False]]]])
    observed = ~hidden
    assert float(masked_l1(pred, target, hidden, observed, 1.0, 0.0)) == pytest.approx(1.0)
    assert float(masked_l1(pred, target, hidden, observed, 0.0, 0.5)) == pytest.approx(1.5)
    assert float(masked_l1(pred, target, hidden & False, observed, 1.0, 0.0)) == 0.0


def test_weight_decay_only_on_weights() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.LayerNorm(3))
    groups = build_optimizer(model, 0.01, 0.1).param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert [p.ndim for p in groups[0]["params"]] == [4]
    assert sorted(p.ndim for p in groups[1]["params"]) == [1, 1, 1]


def test_training_passes_the_padding_to_the_model() -> None:
    """Padded dates (sequences shorter than seq_len) must not act as attention keys."""
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x, avail, doy, pad=None):
            seen["pad"] = pad
            return x

    b, t, c, h, w = 1, 3, 2, 4, 4
    batch = {
        "x": torch.rand(b, t, c, h, w), "avail": torch.ones(b, t, 1, h, w),
        "doy": torch.arange(t)[None].float(), "pad": torch.tensor([[False, False, True]]),
        "target": torch.rand(b, t, c, h, w), "hidden": torch.zeros(b, t, 1, h, w, dtype=torch.bool),
        "known": torch.ones(b, t, 1, h, w, dtype=torch.bool),
    }  # fmt: skip
    params = {"masked_weight": 1.0, "observed_weight": 0.1}
    forward_loss(Spy(), batch, params, torch.device("cpu"), None)
    assert torch.equal(seen["pad"], batch["pad"])
