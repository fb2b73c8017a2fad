"""The forward pass used in training and the supervised loss terms.

Loss (per batch): L = w_E mean_s((E_s - E_s^ref)/N_s)^2 + w_F mean((F - F^ref)^2)
(+ w_S mean((sigma - sigma^ref)^2)) + lambda(t) L_corr; this module gives the prediction and
the first three terms (:func:`loss_terms`), :mod:`gnnff.training.decorrelation` the last one
and :meth:`gnnff.training.trainer.Trainer.compute_loss` their weighted sum.
"""

from __future__ import annotations

from typing import Any

import torch

from .data import Batch


def predict(
    model: Any,
    batch: Batch,
    forces: bool = True,
    stress: bool = False,
    create_graph: bool = False,
    features: bool = False,
    feature_kind: str = "residual",
) -> dict[str, Any]:
    """Energies [B] (eV), forces [N,3] (eV/A) = -dE/dpos and stress [B,3,3] (eV/A^3, ASE sign)
    from one pass through the edge vectors; ``features`` returns the per-layer edge features
    of ``feature_kind`` (see ``GNNFFModel.energy_from_edges``)."""
    i, j = batch.edge_index[0], batch.edge_index[1]
    vec = batch.pos.index_select(0, j) - batch.pos.index_select(0, i) + batch.edge_shift
    need_grad = forces or stress
    if need_grad:
        vec = vec.detach().requires_grad_(True)
    n = batch.pos.shape[0]
    atomic, feats = model.energy_from_edges(
        vec, batch.species, batch.edge_index, n, features, feature_kind
    )
    energy = torch.zeros(batch.num_structures, dtype=atomic.dtype, device=atomic.device)
    energy = energy.index_add(0, batch.batch, atomic)
    out: dict[str, Any] = {"energy": energy, "features": feats}
    if need_grad:
        g: torch.Tensor | None = None
        if energy.requires_grad:  # False for a batch of isolated atoms (no edges, no ZBL)
            (g,) = torch.autograd.grad(
                energy.sum(), vec, create_graph=create_graph, allow_unused=True
            )
        if g is None:
            g = torch.zeros_like(vec)
        if forces:
            f = torch.zeros_like(batch.pos).index_add(0, i, g).index_add(0, j, -g)
            out["forces"] = f
        if stress:
            edge_struct = batch.batch.index_select(0, i)
            sv = torch.zeros(batch.num_structures, 3, 3, dtype=g.dtype, device=g.device)
            sv = sv.index_add(0, edge_struct, vec.unsqueeze(-1) * g.unsqueeze(-2))
            vol = batch.volume.clamp_min(1e-12)
            out["stress"] = sv / vol[:, None, None]
    return out


def label_counts(batch: Batch) -> torch.Tensor:
    """[3] float64: structures with an energy label, labelled force components, labelled stress
    components of ``batch`` (the denominators of :func:`loss_terms`)."""
    return torch.tensor(
        [
            float(batch.energy_mask.sum()),
            3.0 * float(batch.forces_mask.sum()),
            9.0 * float(batch.stress_mask.sum()) if batch.stress is not None else 0.0,
        ],
        dtype=torch.float64,
    )


def loss_terms(
    out: dict[str, Any], batch: Batch, denominators: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Per-atom energy MSE (eV^2), force component MSE (eV^2/A^2) and stress MSE if predicted,
    each averaged over the structures (atoms) that carry that label; 0 when none does.
    ``denominators`` ([3], default :func:`label_counts` of ``batch``; summed over data-parallel
    ranks in distributed training) divide each term's local sum of squares, so that summed
    gradients equal one big batch's."""
    dt = out["energy"].dtype
    if denominators is None:
        denominators = label_counts(batch)
    den = denominators.to(device=out["energy"].device, dtype=dt).clamp_min(1.0)
    e_err = (out["energy"] - batch.energy.to(dt)) / batch.num_atoms.to(dt)
    terms = {"energy": e_err[batch.energy_mask].pow(2).sum() / den[0]}
    if "forces" in out:
        fm = batch.forces_mask
        terms["forces"] = (out["forces"][fm] - batch.forces[fm]).pow(2).sum() / den[1]
    if "stress" in out and batch.stress is not None:
        sm = batch.stress_mask
        terms["stress"] = (out["stress"][sm] - batch.stress[sm]).pow(2).sum() / den[2]
    return terms
