"""The decorrelation loss L_corr (this project's definition, see gnnff.training.decorrelation)."""

import numpy as np
import pytest
import torch

from gnnff.training.decorrelation import (
    EPS,
    CorrelationAccumulator,
    correlation_matrix,
    decorrelation_loss,
)


def numpy_lcorr(layers: list[np.ndarray], eps: float = EPS) -> float:
    """Independent reference: explicit loops over channel pairs."""
    vals = []
    for x in layers:
        e, c = x.shape
        z = np.empty_like(x)
        for a in range(c):
            col = x[:, a]
            m = sum(col) / e
            sd = (sum((v - m) ** 2 for v in col) / e) ** 0.5
            z[:, a] = (col - m) / (sd + eps)
        total = 0.0
        for a in range(c):
            for b in range(c):
                if a != b:
                    r = float(np.dot(z[:, a], z[:, b])) / e
                    total += r * r
        vals.append(total / (c * (c - 1)))
    return float(np.mean(vals))


def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    mix = rng.normal(size=(5, 5))
    layers = [rng.normal(size=(200, 5)) @ mix, rng.normal(size=(200, 7)) ** 3]
    got, per = decorrelation_loss([torch.tensor(x) for x in layers], max_edges=None)
    assert got.item() == pytest.approx(numpy_lcorr(layers), rel=1e-10)
    assert per.shape == (2,)
    assert per[0].item() == pytest.approx(numpy_lcorr(layers[:1]), rel=1e-10)


def test_whitened_channels_give_zero_and_identical_give_one():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 6))
    x -= x.mean(0)
    # exact whitening: sample covariance becomes the identity
    cov = x.T @ x / len(x)
    w = np.linalg.inv(np.linalg.cholesky(cov)).T
    xw = torch.tensor(x @ w)
    assert decorrelation_loss([xw], None)[0].item() < 1e-10
    # independent (not whitened) channels: only sampling noise, ~1/E
    assert decorrelation_loss([torch.tensor(x)], None)[0].item() < 5e-3
    col = torch.tensor(rng.normal(size=(500, 1)))
    same = torch.cat([col, -2.0 * col, 3.0 * col + 1.0, col], dim=1)
    # eps in the std makes R_ab = 1 - O(eps / std)
    assert decorrelation_loss([same], None)[0].item() == pytest.approx(1.0, abs=2e-5)


def test_invariant_to_channel_scaling_and_shift():
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.normal(size=(300, 4)) @ rng.normal(size=(4, 4)))
    scaled = x * torch.tensor([1e-2, 5.0, 300.0, -7.0]) + torch.tensor([1.0, -3.0, 0.0, 9.0])
    a = decorrelation_loss([x], None)[0].item()
    b = decorrelation_loss([scaled], None)[0].item()
    assert a > 0.05
    assert b == pytest.approx(a, rel=1e-4)


def test_constant_channel_contributes_nothing():
    x = torch.randn(100, 3, dtype=torch.float64)
    x[:, 1] = 4.2
    r = correlation_matrix(x)
    assert r[1].abs().max() < 1e-8 and r[:, 1].abs().max() < 1e-8
    assert r[0, 2].abs() < 0.5 and r[0, 0] > 0.99


def test_subsample_uses_own_generator_and_at_most_m_edges():
    x = torch.randn(10000, 4, dtype=torch.float64)
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    a, _ = decorrelation_loss([x], max_edges=64, generator=g)
    after = torch.rand(1)
    assert torch.equal(before, after)  # global RNG untouched
    g2 = torch.Generator().manual_seed(3)
    idx = torch.randperm(10000, generator=g2)[:64]
    ref = numpy_lcorr([x[idx].numpy()])
    assert a.item() == pytest.approx(ref, rel=1e-10)


def test_accumulator_equals_one_shot():
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5)))
    acc = CorrelationAccumulator()
    for chunk in torch.split(x, 70):
        acc.update([chunk])
    assert acc.per_layer()[0] == pytest.approx(decorrelation_loss([x], None)[0].item(), rel=1e-9)


def test_gradient_reaches_model_parameters():
    from gnnff.potentials import build_model

    torch.manual_seed(0)
    model = build_model(
        {
            "family": "allegro",
            "species": ["O", "Si"],
            "cutoff": 4.0,
            "num_layers": 2,
            "num_scalar": 8,
            "num_tensor": 4,
            "mlp_hidden": [8],
        }
    )
    vec = torch.randn(40, 3) * 0.8 + torch.tensor([1.5, 0.5, 0.0])
    ei = torch.stack([torch.arange(40) % 6, (torch.arange(40) + 1) % 6])
    species = torch.tensor([0, 1, 0, 1, 0, 0])
    _, feats = model.energy_from_edges(vec, species, ei, 6, return_features=True)
    assert len(feats) == 2
    loss, _ = decorrelation_loss(feats, None)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    first_layer = [g for n, g in grads.items() if n.startswith("layers.0") and g is not None]
    assert first_layer and any(float(g.abs().sum()) > 0 for g in first_layer)
    two_body = [g for n, g in grads.items() if n.startswith("two_body") and g is not None]
    assert two_body and any(float(g.abs().sum()) > 0 for g in two_body)


def test_equal_width_layers_match_reference_and_constant_channel_has_finite_gradient():
    rng = np.random.default_rng(5)
    layers = [rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) for _ in range(3)]
    layers[1][:, 2] = 1.5  # a constant channel
    xs = [torch.tensor(x, requires_grad=True) for x in layers]
    got, per = decorrelation_loss(xs, max_edges=None)
    assert got.item() == pytest.approx(numpy_lcorr(layers), rel=1e-10)
    for k in range(3):
        assert per[k].item() == pytest.approx(numpy_lcorr(layers[k : k + 1]), rel=1e-10)
    got.backward()
    assert all(torch.isfinite(x.grad).all() for x in xs)
    assert xs[1].grad[:, 2].abs().max() < 1e-12


def test_matches_per_layer_matrix_definition_in_float32():
    x = torch.randn(5000, 32) @ torch.randn(32, 32)
    ref = float(((correlation_matrix(x) ** 2).sum() - 32) / (32 * 31))
    assert decorrelation_loss([x], None)[0].item() == pytest.approx(ref, rel=1e-4, abs=1e-6)
