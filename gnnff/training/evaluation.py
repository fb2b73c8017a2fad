"""Evaluate an exported model file on a labelled data set: errors and feature correlation
(the invariant ``feature_corr`` and the basis-dependent ``residual_stream_corr``, see
:mod:`gnnff.training.diagnostics`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from .data import build_structures, read_frames, split_index
from .diagnostics import FeatureDiagnostics
from .labels import LabelKeys
from .trainer import ErrorStats


def evaluate_model_file(
    model_path: str | Path, data_path: str | Path, keys: LabelKeys | None = None
) -> dict[str, Any]:
    """Energy (meV/atom), force (meV/A) and stress (GPa) MAE/RMSE of an exported model on a
    labelled structure file (any ASE format, ``file@index`` allowed; labels under ``keys``,
    see :mod:`gnnff.training.labels`), the number of structures each label came from, and its
    feature correlations on the data (overall and per layer): ``feature_corr`` (invariant:
    post-activation hidden features per species pair), ``tensor_norm_corr`` and
    ``residual_stream_corr`` (basis-dependent; also under its old key ``lcorr``).

    Energies/forces/virials come from the exported module's contract ``forward``; the features
    from its scripted ``model.energy_from_edges(..., True, "all")``. Files exported before the
    feature kinds existed are rebuilt eagerly (``eager_from_file``) for the features.
    """
    from gnnff.potentials import eager_from_file, load

    module, meta = load(model_path)
    feature_model = module.model
    try:
        args = [a.name for a in feature_model.energy_from_edges.schema.arguments]
    except (AttributeError, RuntimeError):
        args = []
    if "feature_kind" not in args:  # exported before the feature kinds existed
        feature_model = eager_from_file(model_path)
    dtype = getattr(torch, meta.get("dtype", "float64"))
    frames = read_frames(data_path, "evaluation data")
    structs = build_structures(
        frames, split_index(data_path)[0], list(meta["species"]), float(meta["cutoff"]), keys=keys
    )
    stats = ErrorStats()
    diag = FeatureDiagnostics(int(feature_model.num_layers), int(feature_model.num_species))
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
                    _, feats = feature_model.energy_from_edges(vec, species, ei, n, True, "all")
                diag.update(list(feats), species, ei)
            except (AttributeError, RuntimeError) as exc:
                feature_note = f"feature correlation unavailable from this model file: {exc}"
    res: dict[str, Any] = {
        "model": str(model_path),
        "data": str(data_path),
        "num_structures": len(structs),
        "num_atoms": int(sum(len(s.pos) for s in structs)),
        **stats.summary(),
    }
    if feature_note is None and diag.residual.n:
        res.update(diag.summary())
        res["lcorr"] = res["residual_stream_corr"]  # the old key, same (basis-dependent) value
        res["lcorr_per_layer"] = res["residual_stream_corr_per_layer"]
    else:
        res["lcorr"] = res["feature_corr"] = res["residual_stream_corr"] = math.nan
        res["lcorr_note"] = feature_note or "model has no layers"
    return res


def format_report(res: dict[str, Any]) -> str:
    """Human-readable table of :func:`evaluate_model_file` results."""
    lines = [
        f"{res['model']} on {res['data']} ({res['num_structures']} structures, "
        f"{res['num_atoms']} atoms)"
    ]
    units = {"energy": "meV/atom", "force": "meV/A", "stress": "GPa"}
    for name, unit in units.items():
        if f"{name}_mae" in res:
            lines.append(
                f"  {name:7s} MAE {res[f'{name}_mae']:10.3f}  RMSE "
                f"{res[f'{name}_rmse']:10.3f}  {unit:8s} "
                f"({res.get(f'{name}_frames', '?')} structures)"
            )
    if "feature_corr_per_layer" in res:
        for key, label in (
            ("feature_corr", "feature correlation (invariant: post-activation, per pair)"),
            ("tensor_norm_corr", "tensor-norm correlation (l > 0 norms)"),
            ("residual_stream_corr", "residual-stream correlation (basis-dependent)"),
        ):
            per = ", ".join(f"{x:.4f}" for x in res[f"{key}_per_layer"])
            lines.append(f"  {label} {res[key]:.4f} (per layer: {per})")
    else:
        lines.append(f"  feature correlation: {res.get('lcorr_note')}")
    return "\n".join(lines)
