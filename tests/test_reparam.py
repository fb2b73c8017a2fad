"""The residual-stream gauge: reparameterisation preserves the potential, the invariant feature
correlation does not move, the residual-stream correlation does."""

import numpy as np
import pytest
import torch

from gnnff.potentials import ExportedModel, build_model, neighbor_list
from gnnff.potentials.allegro.reparam import reparameterize_residual_stream, zca_whitening
from gnnff.training.diagnostics import feature_diagnostics


def random_transform(size: int, condition: float = 10.0, seed: int = 0) -> torch.Tensor:
    """A random invertible [size, size] float64 matrix with condition number ``condition``
    (Q1 diag(s) Q2, Q orthogonal, s log-spaced from 1 to ``condition``)."""
    g = torch.Generator().manual_seed(seed)
    q1, _ = torch.linalg.qr(torch.randn(size, size, generator=g, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(size, size, generator=g, dtype=torch.float64))
    s = torch.logspace(0, float(torch.log10(torch.tensor(condition))), size, dtype=torch.float64)
    return q1 @ torch.diag(s) @ q2


def _structure(seed: int = 0):
    rng = np.random.default_rng(seed)
    cell = np.eye(3) * 6.0
    pos = []
    while len(pos) < 14:  # random cell with no pair closer than 1.3 A
        p = rng.uniform(0, 6.0, 3)
        d = [np.linalg.norm((p - q + 3.0) % 6.0 - 3.0) for q in pos]
        if not d or min(d) > 1.3:
            pos.append(p)
    species = torch.tensor([1] * 5 + [0] * 9)
    return np.array(pos), cell, species


def _model(family: str, seed: int = 0, **extra):
    torch.manual_seed(seed)
    cfg = {
        "family": family,
        "species": ["O", "Si"],
        "cutoff": 3.5,
        "num_layers": 2,
        "num_scalar": 12,
        "num_tensor": 4,
        "mlp_hidden": [16],
        "avg_num_neighbors": 10.0,
    }
    if family == "allegro-attn":
        cfg["attn_heads"] = 2
    cfg.update(extra)
    m = build_model(cfg).to(torch.float64)
    # non-trivial biases and species shifts, so that every affine piece is exercised
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.3)
    m.set_species_shift_scale(torch.tensor([-1.0, -2.0]), torch.tensor([0.7, 1.3]))
    return m.eval()


def _outputs(model, pos, cell, species):
    ei, sh = neighbor_list(pos, cell, [True] * 3, model.cutoff)
    em = ExportedModel(model)
    p, ei_t, sh_t = torch.tensor(pos), torch.as_tensor(ei), torch.as_tensor(sh, dtype=torch.float64)
    out = em(p, species, ei_t, sh_t, len(pos))
    vec = p[ei_t[1]] - p[ei_t[0]] + sh_t
    return out, (vec, species, ei_t)


FAMILIES = ["allegro", "allegro-attn"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", ["random", "zca"])
def test_reparameterisation_preserves_outputs_and_invariant_diagnostic(family, kind):
    pos, cell, species = _structure()
    model = _model(family)
    out0, edges = _outputs(model, pos, cell, species)
    if kind == "random":
        t = random_transform(12, condition=10.0, seed=3)
    else:
        with torch.no_grad():
            _, feats = model.energy_from_edges(*edges, len(pos), True, "residual")
        t = zca_whitening(list(feats))
    new = reparameterize_residual_stream(model, t)
    # the weights did change
    assert not torch.allclose(new.layers[0].env_weight.weight, model.layers[0].env_weight.weight)
    out1, _ = _outputs(new, pos, cell, species)
    for key in ("energy", "atomic_energy", "forces", "virial", "atomic_virial"):
        assert torch.allclose(out1[key], out0[key], rtol=0, atol=1e-10), key
    d0 = feature_diagnostics(model, *edges)
    d1 = feature_diagnostics(new, *edges)
    assert abs(d1["feature_corr"] - d0["feature_corr"]) < 1e-3
    assert abs(d1["feature_corr"] - d0["feature_corr"]) < 1e-9  # in fact exact
    assert abs(d1["tensor_norm_corr"] - d0["tensor_norm_corr"]) < 1e-9
    assert 0.0 < d0["feature_corr"] < 1.0
    # the old quantity is a property of the basis: it moves (whitening drives it to ~0)
    moved = abs(d1["residual_stream_corr"] - d0["residual_stream_corr"])
    assert moved > 5e-3, (d0["residual_stream_corr"], d1["residual_stream_corr"])
    if kind == "zca":  # one T for all layers cannot whiten each exactly: a 4x fall at least
        assert d1["residual_stream_corr"] < 0.25 * d0["residual_stream_corr"], (
            d0["residual_stream_corr"],
            d1["residual_stream_corr"],
        )
        assert d1["residual_stream_corr"] < 0.1


def test_features_follow_the_transform():
    """x' = T x in every layer (the definition of the reparameterisation)."""
    pos, cell, species = _structure(1)
    model = _model("allegro", seed=1, mlp_hidden=[])  # single-Linear MLPs: the edge case
    _, edges = _outputs(model, pos, cell, species)
    t = random_transform(12, condition=5.0, seed=1)
    new = reparameterize_residual_stream(model, t)
    with torch.no_grad():
        _, f0 = model.energy_from_edges(*edges, len(pos), True, "residual")
        _, f1 = new.energy_from_edges(*edges, len(pos), True, "residual")
    for a, b in zip(f0, f1, strict=True):
        assert torch.allclose(b, a @ t.T, atol=1e-10)


def test_bad_transform():
    model = _model("allegro")
    with pytest.raises(ValueError, match=r"\[12, 12\]"):
        reparameterize_residual_stream(model, torch.eye(5))
    with pytest.raises(ValueError, match="singular"):
        reparameterize_residual_stream(model, torch.zeros(12, 12))
