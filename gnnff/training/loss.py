"""The forward pass used in training and the training loss.

Loss (per batch): L = w_E mean_s((E_s - E_s^ref)/N_s)^2 + w_F mean((F - F^ref)^2)
(+ w_S mean((sigma - sigma^ref)^2)) + lambda(t) L_corr, with L_corr from
:mod:`gnnff.training.decorrelation` (computed from the features of the same forward pass, and
not computed at all when the decorrelation is disabled or lambda(t) = 0 with a non-adaptive
scheduler): :func:`loss_terms` gives the supervised terms, :func:`training_loss` the sum.
"""

from __future__ import annotations

from typing import Any

import torch

from .data import Batch
from .decorrelation import edge_pair_ids, variant_feature_kind, variant_loss


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


def training_loss(
    model: Any,
    batch: Batch,
    lam: float,
    cfg: dict[str, Any],
    corr_layers: list[int],
    corr_always: bool,
    subsample_gen: torch.Generator,
    world_size: int = 1,
    denominators: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any], dict[str, torch.Tensor], torch.Tensor | None]:
    """(loss, predictions, loss terms, per-layer L_corr or None) of ``model`` on ``batch``.

    ``cfg``: the training config (its ``loss`` weights, ``decorrelation`` section; stress is
    fitted when ``loss.stress_weight`` > 0 and the batch has stress labels); ``lam``:
    lambda(t); ``corr_layers``: the decorrelated layers; ``corr_always``: compute L_corr
    even at ``lam`` = 0 (detached; an adaptive scheduler observes it); ``subsample_gen``: the
    edge subsampling generator; ``world_size``: data-parallel ranks (their gradients are
    summed, so each rank's L_corr enters divided by it); ``denominators``: see
    :func:`loss_terms`."""
    dc, lo = cfg["decorrelation"], cfg["loss"]
    want_corr = dc["enabled"] and (lam != 0.0 or corr_always)
    out = predict(
        model,
        batch,
        forces=True,
        stress=lo["stress_weight"] > 0 and batch.stress is not None,
        create_graph=True,
        features=want_corr,
        feature_kind=variant_feature_kind(dc["variant"]),
    )
    terms = loss_terms(out, batch, denominators)
    loss = lo["energy_weight"] * terms["energy"] + lo["forces_weight"] * terms["forces"]
    if "stress" in terms:
        loss = loss + lo["stress_weight"] * terms["stress"]
    per_layer = None
    if want_corr:
        feats = [out["features"][k] for k in corr_layers]
        if lam == 0.0:
            feats = [f.detach() for f in feats]
        pairs = None
        if dc["variant"] == "per_pair":
            pairs = edge_pair_ids(batch.species, batch.edge_index, model.num_species)
        lc, per_layer = variant_loss(dc["variant"], feats, pairs, dc["max_edges"], subsample_gen)
        terms["corr"] = lc
        if lam != 0.0:
            loss = loss + lam * lc / world_size
    return loss, out, terms, per_layer
