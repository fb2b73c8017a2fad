"""Evaluate an exported model file on a labelled data set: errors and feature correlation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import build_structures, read_frames
from .decorrelation import CorrelationAccumulator
from .trainer import ErrorStats


def evaluate_model_file(model_path: str | Path, data_path: str | Path) -> dict[str, Any]:
    """Energy (meV/atom), force (meV/A) and stress (meV/A^3) MAE/RMSE of an exported model on
    an extxyz file, and the model's feature correlation L_corr on it (overall and per layer).

    Energies/forces/virials come from the exported module's contract ``forward``; the features
    from its scripted ``model.energy_from_edges(..., return_features=True)``.
    """
    from gnnff.potentials import load

    module, meta = load(model_path)
    dtype = getattr(torch, meta.get("dtype", "float64"))
    frames = read_frames(data_path, "evaluation data")
    structs = build_structures(frames, data_path, list(meta["species"]), float(meta["cutoff"]))
    stats = ErrorStats()
    acc = CorrelationAccumulator()
    feature_note = None
    for s in structs:
        pos = torch.as_tensor(s.pos, dtype=dtype)
        species = torch.as_tensor(s.species)
        ei = torch.as_tensor(s.edge_index)
        shift = torch.as_tensor(s.edge_shift, dtype=dtype)
        out = module(pos, species, ei, shift, len(s.pos))
        n = len(s.pos)
        stats.add("energy", (out["energy"].double() - s.energy) / n)
        stats.add("force", out["forces"].double() - torch.as_tensor(s.forces))
        if s.stress is not None and s.volume > 0:
            pred_stress = -out["virial"].double() / s.volume
            stats.add("stress", pred_stress - torch.as_tensor(s.stress))
        if feature_note is None:
            try:
                vec = pos[ei[1]] - pos[ei[0]] + shift
                with torch.no_grad():
                    _, feats = module.model.energy_from_edges(vec, species, ei, n, True)
                acc.update(list(feats))
            except (AttributeError, RuntimeError) as exc:
                feature_note = f"feature correlation unavailable from this model file: {exc}"
    res: dict[str, Any] = {
        "model": str(model_path),
        "data": str(data_path),
        "num_structures": len(structs),
        "num_atoms": int(sum(len(s.pos) for s in structs)),
        **stats.summary(),
    }
    if feature_note is None and acc.n:
        per = acc.per_layer()
        res["lcorr"] = float(np.mean(per))
        res["lcorr_per_layer"] = per
    else:
        res["lcorr"] = math.nan
        res["lcorr_note"] = feature_note or "model has no layers"
    return res


def format_report(res: dict[str, Any]) -> str:
    """Human-readable table of :func:`evaluate_model_file` results."""
    lines = [f"{res['model']} on {res['data']} ({res['num_structures']} structures, "
             f"{res['num_atoms']} atoms)"]
    units = {"energy": "meV/atom", "force": "meV/A", "stress": "meV/A^3"}
    for name, unit in units.items():
        if f"{name}_mae" in res:
            lines.append(f"  {name:7s} MAE {res[f'{name}_mae']:10.3f}  RMSE "
                         f"{res[f'{name}_rmse']:10.3f}  {unit}")
    if "lcorr_per_layer" in res:
        per = ", ".join(f"{x:.4f}" for x in res["lcorr_per_layer"])
        lines.append(f"  feature correlation L_corr {res['lcorr']:.4f} (per layer: {per})")
    else:
        lines.append(f"  feature correlation: {res.get('lcorr_note')}")
    return "\n".join(lines)
