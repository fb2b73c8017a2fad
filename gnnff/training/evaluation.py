"""Errors and feature correlations of a model on labelled data: the error accumulator
(:class:`ErrorStats`), the in-training evaluation of an eager model on structures
(:func:`evaluate`) and of an exported model file on a data file (:func:`evaluate_model_file`),
with the invariant ``feature_corr`` and the basis-dependent ``residual_stream_corr`` (see
:mod:`gnnff.training.diagnostics`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import Batch, Structure, build_structures, collate, read_frames, split_index
from .decorrelation import CorrelationAccumulator
from .diagnostics import FeatureDiagnostics
from .distributed import DistributedContext
from .labels import LabelKeys
from .loss import loss_terms, predict

EV_PER_A3_TO_GPA = 160.2176634  # 1 eV/A^3 in GPa (e = 1.602176634e-19 C, exact in SI 2019)


class ErrorStats:
    """Accumulates absolute and squared errors and how many structures each label came from;
    reports energy in meV/atom, forces in meV/A, stress in GPa."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}

    def add(self, name: str, err: torch.Tensor, frames: int = 1) -> None:
        e = err.detach().to(torch.float64).reshape(-1)
        s = self.sums.setdefault(name, [0.0, 0.0, 0, 0])
        s[0] += float(e.abs().sum())
        s[1] += float(e.pow(2).sum())
        s[2] += e.numel()
        s[3] += frames

    def add_batch(self, out: dict[str, Any], batch: Batch) -> None:
        n = batch.num_atoms.to(torch.float64)
        em = batch.energy_mask
        if bool(em.any()):
            err = (out["energy"].detach().double() - batch.energy) / n
            self.add("energy", err[em], int(em.sum()))
        if "forces" in out:
            fm = batch.forces_mask
            if bool(fm.any()):
                frames = int(batch.batch[fm].unique().numel())
                self.add("force", out["forces"].detach()[fm] - batch.forces[fm], frames)
        if "stress" in out and batch.stress is not None:
            sm = batch.stress_mask
            if bool(sm.any()):
                self.add("stress", out["stress"].detach()[sm] - batch.stress[sm], int(sm.sum()))

    def all_reduce(self, dist: DistributedContext) -> None:
        """Sum the accumulated errors and counts over data-parallel ranks (every rank must
        have seen the same label kinds)."""
        for name in ("energy", "force", "stress"):
            s = self.sums.setdefault(name, [0.0, 0.0, 0, 0])
            t = dist.sum_(torch.tensor(s, dtype=torch.float64))
            self.sums[name] = [float(t[0]), float(t[1]), int(t[2]), int(t[3])]

    def summary(self) -> dict[str, float]:
        """energy_mae/rmse (meV/atom), force_mae/rmse (meV/A), stress_mae/rmse (GPa), and
        ``{name}_frames``: the number of structures that carried the label."""
        res: dict[str, float] = {}
        unit = {"energy": 1000.0, "force": 1000.0, "stress": EV_PER_A3_TO_GPA}
        for name, (sa, s2, c, frames) in self.sums.items():
            if c:
                u = unit.get(name, 1000.0)
                res[f"{name}_mae"] = u * sa / c
                res[f"{name}_rmse"] = u * math.sqrt(s2 / c)
                res[f"{name}_frames"] = frames
        return res


def evaluate(
    model: Any,
    structs: Sequence[Structure],
    batch_size: int = 16,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    stress: bool = False,
    weights: dict[str, float] | None = None,
) -> tuple[dict[str, float], CorrelationAccumulator]:
    """Errors of ``model`` on ``structs`` and the exact per-layer feature correlation.

    Returns (metrics, accumulator); metrics hold MAE/RMSE (meV units), ``loss`` (the weighted
    MSE without the decorrelation term, eV^2 units), ``lcorr`` / ``lcorr_l{k}`` (the
    residual-stream correlation, basis-dependent; kept under its old name) and the invariant
    ``feature_corr`` / ``feature_corr_l{k}`` and ``tensor_norm_corr``
    (:mod:`gnnff.training.diagnostics`)."""
    weights = weights or {"energy_weight": 1.0, "forces_weight": 1.0, "stress_weight": 0.0}
    was_training = model.training
    model.eval()
    stats = ErrorStats()
    acc = CorrelationAccumulator()
    diag = FeatureDiagnostics(model.num_layers, model.num_species)
    loss_sum, count = 0.0, 0
    for start in range(0, len(structs), batch_size):
        chunk = structs[start : start + batch_size]
        batch = collate(chunk, dtype, device)
        do_stress = stress and batch.stress is not None
        out = predict(
            model, batch, forces=True, stress=do_stress, features=True, feature_kind="all"
        )
        acc.update(out["features"][: model.num_layers])
        diag.update(out["features"], batch.species, batch.edge_index)
        stats.add_batch(out, batch)
        t = {k: float(v.detach()) for k, v in loss_terms(out, batch).items()}
        loss = weights["energy_weight"] * t["energy"] + weights["forces_weight"] * t["forces"]
        if "stress" in t:
            loss += weights["stress_weight"] * t["stress"]
        loss_sum += loss * len(chunk)
        count += len(chunk)
    model.train(was_training)
    metrics = stats.summary()
    metrics["loss"] = loss_sum / max(count, 1)
    per = acc.per_layer()
    metrics["lcorr"] = float(np.mean(per)) if per else float("nan")
    for k, v in enumerate(per):
        metrics[f"lcorr_l{k}"] = v
    d = diag.summary()
    metrics["feature_corr"] = d["feature_corr"]
    for k, v in enumerate(d["feature_corr_per_layer"]):
        metrics[f"feature_corr_l{k}"] = v
    metrics["tensor_norm_corr"] = d["tensor_norm_corr"]
    return metrics, acc


class _FileErrors:
    """Errors of an exported model's predictions on a set of structures, with how many
    structures and atoms there were and the mean |force component| of their labels: the whole
    file, or one group of ``group_by``, in :func:`evaluate_model_file`."""

    def __init__(self) -> None:
        self.stats = ErrorStats()
        self.structures = 0
        self.atoms = 0
        self.label_force = [0.0, 0]

    def add(self, s: Structure, out: dict[str, torch.Tensor]) -> None:
        n = len(s.pos)
        self.structures += 1
        self.atoms += n
        if s.energy is not None:
            self.stats.add("energy", (out["energy"].double() - s.energy) / n)
        if s.forces is not None:
            self.stats.add("force", out["forces"].double() - torch.as_tensor(s.forces))
            self.label_force[0] += float(np.abs(s.forces).sum())
            self.label_force[1] += int(np.size(s.forces))
        if s.stress is not None and s.volume > 0:
            pred_stress = -out["virial"].double() / s.volume
            self.stats.add("stress", pred_stress - torch.as_tensor(s.stress))

    def summary(self) -> dict[str, Any]:
        res: dict[str, Any] = {"num_structures": self.structures, "num_atoms": self.atoms}
        res.update(self.stats.summary())
        if self.label_force[1]:
            res["force_label_mean_abs"] = 1000.0 * self.label_force[0] / self.label_force[1]
        return res


def evaluate_model_file(
    model_path: str | Path,
    data_path: str | Path,
    keys: LabelKeys | None = None,
    group_by: str | None = None,
) -> dict[str, Any]:
    """Energy (meV/atom), force (meV/A) and stress (GPa) MAE/RMSE of an exported model on a
    labelled structure file (any ASE format, ``file@index`` allowed; labels under ``keys``,
    see :mod:`gnnff.training.labels`), the number of structures each label came from, and its
    feature correlations on the data (overall and per layer): ``feature_corr`` (invariant:
    post-activation hidden features per species pair), ``tensor_norm_corr`` and
    ``residual_stream_corr`` (basis-dependent; also under its old key ``lcorr``).

    ``force_label_mean_abs`` (meV/A) is the mean |force component| of the labels, the scale
    the force MAE is read against. ``group_by``: an ``atoms.info`` key (e.g. ``config_type``);
    the errors are then also reported per value of it under ``groups`` (frames without the key
    in the group ``"(none)"``), each with ``num_structures``, ``num_atoms`` and the same error
    keys, in order of first appearance.

    Energies/forces/virials come from the exported module's contract ``forward``; the features
    from its scripted ``model.energy_from_edges(..., True, "all")``. Files exported before the
    feature kinds existed are rebuilt eagerly (``eager_from_file``) for the features.
    """
    from gnnff.potentials import eager_from_file, load
    from gnnff.potentials.files.formats import is_package

    if is_package(model_path):
        from gnnff.errors import UsageError

        raise UsageError(
            f"{model_path} is an AOTInductor package: its compiled graph holds no feature "
            "layers to evaluate; evaluate the TorchScript file it was exported from "
            f"({Path(model_path).with_suffix('.pt').name})"
        )
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
    total = _FileErrors()
    groups: dict[str, _FileErrors] = {}
    diag = FeatureDiagnostics(int(feature_model.num_layers), int(feature_model.num_species))
    feature_note = None
    for atoms, s in zip(frames, structs, strict=True):
        pos = torch.as_tensor(s.pos, dtype=dtype)
        species = torch.as_tensor(s.species)
        ei = torch.as_tensor(s.edge_index)
        shift = torch.as_tensor(s.edge_shift, dtype=dtype)
        out = module(pos, species, ei, shift, len(s.pos))
        n = len(s.pos)
        total.add(s, out)
        if group_by is not None:
            name = str(atoms.info.get(group_by, "(none)"))
            groups.setdefault(name, _FileErrors()).add(s, out)
        if feature_note is None and len(ei[0]):
            try:
                vec = pos[ei[1]] - pos[ei[0]] + shift
                with torch.no_grad():
                    _, feats = feature_model.energy_from_edges(vec, species, ei, n, True, "all")
                diag.update(list(feats), species, ei)
            except (AttributeError, RuntimeError) as exc:
                feature_note = f"feature correlation unavailable from this model file: {exc}"
    res: dict[str, Any] = {"model": str(model_path), "data": str(data_path), **total.summary()}
    if group_by is not None:
        res["group_by"] = group_by
        res["groups"] = {name: g.summary() for name, g in groups.items()}
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
    if "reference_label" in res:
        lines.append(
            f"  labels: {res['reference_label']} ({res.get('frames_skipped', 0)} frames skipped)"
        )
    units = {"energy": "meV/atom", "force": "meV/A", "stress": "GPa"}
    for name, unit in units.items():
        if f"{name}_mae" in res:
            lines.append(
                f"  {name:7s} MAE {res[f'{name}_mae']:10.3f}  RMSE "
                f"{res[f'{name}_rmse']:10.3f}  {unit:8s} "
                f"({res.get(f'{name}_frames', '?')} structures)"
            )
    if "force_mae" in res and res.get("force_label_mean_abs"):
        lines.append(
            f"  force MAE / mean |label force component| = {res['force_mae']:.1f} / "
            f"{res['force_label_mean_abs']:.1f} = "
            f"{100 * res['force_mae'] / res['force_label_mean_abs']:.1f} %"
        )
    if res.get("groups"):
        lines.append(_groups_table(res["group_by"], res["groups"]))
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


def _groups_table(key: str, groups: dict[str, dict[str, Any]]) -> str:
    """The per-group rows of :func:`format_report` (``gnnff eval --group-by``)."""

    def cell(g: dict[str, Any], name: str, fmt: str) -> str:
        return format(g[name], fmt) if name in g else "-"

    width = max(len(key), *(len(name) for name in groups))
    rows = [
        f"  per {key}:",
        f"    {key:<{width}}  frames   atoms  E MAE meV/atom  F MAE meV/A  F RMSE meV/A  "
        "mean|F| meV/A  stress MAE GPa",
    ]
    for name, g in groups.items():
        rows.append(
            f"    {name:<{width}}  {g['num_structures']:6d}  {g['num_atoms']:6d}  "
            f"{cell(g, 'energy_mae', '14.2f')}  {cell(g, 'force_mae', '11.1f')}  "
            f"{cell(g, 'force_rmse', '12.1f')}  {cell(g, 'force_label_mean_abs', '13.1f')}  "
            f"{cell(g, 'stress_mae', '14.3f')}"
        )
    return "\n".join(rows)
