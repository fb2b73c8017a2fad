"""Evaluate an exported model file on a labelled data set: errors and feature correlation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import build_structures, read_frames, split_index
from .decorrelation import CorrelationAccumulator
from .labels import LabelKeys
from .trainer import ErrorStats


def evaluate_model_file(
    model_path: str | Path, data_path: str | Path, keys: LabelKeys | None = None
) -> dict[str, Any]:
    """Energy (meV/atom), force (meV/A) and stress (GPa) MAE/RMSE of an exported model on a
    labelled structure file (any ASE format, ``file@index`` allowed; labels under ``keys``,
    see :mod:`gnnff.training.labels`), the number of structures each label came from, and
    the model's feature correlation L_corr on the data (overall and per layer).

    Energies/forces/virials come from the exported module's contract ``forward``; the features
    from its scripted ``model.energy_from_edges(..., return_features=True)``.
    """
    from gnnff.potentials import load

    module, meta = load(model_path)
    dtype = getattr(torch, meta.get("dtype", "float64"))
    frames = read_frames(data_path, "evaluation data")
    structs = build_structures(frames, split_index(data_path)[0], list(meta["species"]),
                               float(meta["cutoff"]), keys=keys)
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
        if s.energy is not None:
            stats.add("energy", (out["energy"].double() - s.energy) / n)
        if s.forces is not None:
            stats.add("force", out["forces"].double() - torch.as_tensor(s.forces))
        if s.stress is not None and s.volume > 0:
            pred_stress = -out["virial"].double() / s.volume
            stats.add("stress", pred_stress - torch.as_tensor(s.stress))
        if feature_note is None and len(ei[0]):
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
    units = {"energy": "meV/atom", "force": "meV/A", "stress": "GPa"}
    for name, unit in units.items():
        if f"{name}_mae" in res:
            lines.append(f"  {name:7s} MAE {res[f'{name}_mae']:10.3f}  RMSE "
                         f"{res[f'{name}_rmse']:10.3f}  {unit:8s} "
                         f"({res.get(f'{name}_frames', '?')} structures)")
    if "lcorr_per_layer" in res:
        per = ", ".join(f"{x:.4f}" for x in res["lcorr_per_layer"])
        lines.append(f"  feature correlation L_corr {res['lcorr']:.4f} (per layer: {per})")
    else:
        lines.append(f"  feature correlation: {res.get('lcorr_note')}")
    return "\n".join(lines)
