"""model.weight_init: the variance-preserving init keeps the second moment through MLP layers;
'torch' keeps PyTorch's default; a bad value names the valid ones."""

from __future__ import annotations

import math

import pytest
import torch

from gnnff.potentials import build_model
from gnnff.potentials.blocks import MLP, SILU_SECOND_MOMENT_GAIN, variance_preserving_init


def test_silu_gain_is_the_second_moment_constant():
    x = torch.randn(2_000_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    gain = 1.0 / math.sqrt(float((torch.nn.functional.silu(x) ** 2).mean()))
    assert gain == pytest.approx(SILU_SECOND_MOMENT_GAIN, rel=2e-3)


def test_unit_second_moment_through_a_deep_mlp():
    """Five SiLU layers of width 256: the output second moment stays near 1 (PyTorch's default
    init shrinks it by orders of magnitude)."""
    torch.manual_seed(0)
    mlp = MLP([256] * 6).double()
    x = torch.randn(4096, 256, dtype=torch.float64)
    with torch.no_grad():
        default_m2 = float((mlp(x) ** 2).mean())
    variance_preserving_init(mlp)
    with torch.no_grad():
        m2 = float((mlp(x) ** 2).mean())
    assert 0.7 < m2 < 1.4
    assert default_m2 < 0.01
    for layer in mlp.net:
        if isinstance(layer, torch.nn.Linear) and layer.bias is not None:
            assert torch.count_nonzero(layer.bias) == 0


def _linear_bounds(model: torch.nn.Module) -> list[float]:
    """max |w| * sqrt(fan_in) for every Linear (<= 1 under PyTorch's default init)."""
    return [
        float(m.weight.detach().abs().max()) * math.sqrt(m.in_features)
        for m in model.modules()
        if isinstance(m, torch.nn.Linear)
    ]


@pytest.mark.parametrize("family", ["allegro", "allegro-attn"])
def test_model_config_selects_the_init(family):
    base = {"family": family, "species": ["Si", "O"], "cutoff": 4.0}
    torch.manual_seed(1)
    old = build_model({**base, "weight_init": "torch"})
    torch.manual_seed(1)
    new = build_model(base)
    assert new.config["weight_init"] == "variance_preserving"
    assert max(_linear_bounds(old)) <= 1.0 + 1e-6
    # U(-a, a), a = gain sqrt(3): the largest |w| sqrt(fan_in) of a layer after a SiLU is near
    # 1.68 sqrt(3) = 2.9
    assert max(_linear_bounds(new)) > 2.0


def test_bad_weight_init_names_the_valid_ones():
    with pytest.raises(ValueError, match="variance_preserving.*torch|torch.*variance_preserving"):
        build_model({"family": "allegro", "species": ["Si"], "cutoff": 4.0, "weight_init": "he"})
