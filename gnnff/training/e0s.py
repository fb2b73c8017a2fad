"""Per-species reference energies (E0s): whether the training energies determine them, and
refitting them on a finished model against labelled frames of other compositions.

A model's energy is E = sum_i (scale_s(i) * e_i + E0_s(i)). With ``model.e0s: average`` the
E0s are the least-squares fit of E ~ sum_s n_s E0_s over the training energies. When every
training structure has the same composition ratio (a data set of SiO2 cells only, say), that
fit fixes one combination of the E0s and leaves the others arbitrary: forces, stresses and MD
at fixed composition are unaffected, but energies of other compositions carry an error
linear in composition, ``sum_s n_s delta_s``. :func:`undetermined_e0s` detects this before
training; :func:`refit_e0s` removes such an offset from a finished model by a least-squares
fit of its energy errors on labelled frames (the weights, forces and stresses stay as they
are, since the shift is a constant per atom).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gnnff.errors import UsageError

from .data import Structure, labelled_composition

__all__ = [
    "e0s_note",
    "energy_errors",
    "fit_energy_offset",
    "refit_e0s",
    "undetermined_e0s",
    "write_shifted_e0s",
]


def undetermined_e0s(structs: Sequence[Structure], species: Sequence[str]) -> str | None:
    """None when the labelled energies of ``structs`` determine one E0 per species present;
    else a message naming the species whose E0s they cannot tell apart, the one combination
    they do fix, and the fixes (more compositions, ``model.e0s`` given, ``gnnff refit-e0s``)."""
    counts, _ = labelled_composition(structs, len(species))
    present = np.flatnonzero(counts.sum(axis=0) > 0) if len(counts) else np.array([], int)
    if len(present) < 2:
        return None
    sub = counts[:, present]
    rank = np.linalg.matrix_rank(sub)
    if rank == len(present):
        return None
    null = np.linalg.svd(sub)[2][rank:]  # rows: the E0 directions no energy constrains
    mixed = [species[present[k]] for k in np.flatnonzero(np.abs(null).max(axis=0) > 1e-9)]
    ratios = {_formula(row, [species[k] for k in present]) for row in sub}
    what = (
        f"all have the composition ratio {ratios.pop()}"
        if len(ratios) == 1
        else f"span only {rank} independent compositions"
    )
    return (
        f"model.e0s = 'average': the {len(sub)} energy-labelled training structures {what}, so "
        f"the least-squares fit cannot tell the reference energies (E0s) of "
        f"{', '.join(mixed)} apart. Forces and fixed-composition MD are unaffected, but "
        "energies of other compositions will carry an offset linear in composition. Fix: add "
        "labelled structures of other compositions, set model.e0s to 'isolated_atoms' "
        "(single-atom frames) or to a mapping {symbol: eV}, or refit after training: gnnff "
        "refit-e0s MODEL FRAMES --out NEW.pt"
    )


def e0s_note(structs: Sequence[Structure], model_cfg: dict[str, Any]) -> str | None:
    """:func:`undetermined_e0s` of the training structures when the model fits its E0s from
    them (``model.e0s: average``, the default); None otherwise (isolated atoms or given E0s
    are determined by construction)."""
    if model_cfg.get("e0s", "average") != "average":
        return None
    return undetermined_e0s(structs, list(model_cfg["species"]))


def _formula(row: np.ndarray, names: Sequence[str]) -> str:
    """Reduced formula of one composition row, in ASE's 'metal' order (e.g. 'HfO2', 'O2Si')."""
    from ase.formula import Formula

    counts = {n: int(round(v)) for n, v in zip(names, row, strict=True) if round(v)}
    return Formula.from_dict(counts).reduce()[0].format("metal")


def fit_energy_offset(
    err: np.ndarray, counts: np.ndarray, keep: np.ndarray | None = None
) -> np.ndarray:
    """delta [S] (eV per atom of each species) minimising |err - counts @ delta|^2 (minimum
    norm when undetermined). ``err``: [F] energy errors (model - reference, eV); ``counts``:
    [F, S] species counts; ``keep``: a composition [S] whose energies must stay unchanged
    (constraint keep @ delta = 0), or None for the free fit."""
    err, counts = np.asarray(err, float), np.asarray(counts, float)
    if keep is None:
        return np.linalg.lstsq(counts, err, rcond=None)[0]
    keep = np.asarray(keep, float)
    basis = np.linalg.svd(keep[None, :])[2][1:].T  # [S, S-1]: the null space of keep
    return basis @ np.linalg.lstsq(counts @ basis, err, rcond=None)[0]


def energy_errors(
    model_path: str | Path, data: str | Path | Sequence[Any], keys: Any = None
) -> dict[str, Any]:
    """Energy errors of an exported model (TorchScript ``.pt``) on the energy-labelled frames
    of ``data``: a file (any ASE format, ``FILE@INDEX`` allowed) or a list of ``ase.Atoms``;
    labels under ``keys``, a :class:`~gnnff.training.labels.LabelKeys`. Returns ``err`` [F]
    (model - label, eV), ``counts`` [F, S] (metadata species order), ``formula`` [F] (reduced
    formulas), ``species``. Raises DataError when no frame has an energy label."""
    import torch

    from gnnff.potentials import load

    from .data import DataError, build_structures, read_frames, split_index

    module, meta = load(model_path)
    species = list(meta["species"])
    dtype = getattr(torch, meta.get("dtype", "float64"))
    if isinstance(data, (str, Path)):
        frames, source = read_frames(data, "refit frames"), str(split_index(data)[0])
    else:
        frames, source = list(data), "frames"
    structs = build_structures(frames, source, species, float(meta["cutoff"]), keys=keys)
    err, counts = [], []
    for s in structs:
        if s.energy is None:
            continue
        out = module(
            torch.as_tensor(s.pos, dtype=dtype),
            torch.as_tensor(s.species),
            torch.as_tensor(s.edge_index),
            torch.as_tensor(s.edge_shift, dtype=dtype),
            len(s.pos),
        )
        err.append(float(out["energy"].double()) - s.energy)
        counts.append(np.bincount(s.species, minlength=len(species)))
    if not err:
        raise DataError(f"{source}: no frame has an energy label to refit the E0s on")
    c = np.array(counts, dtype=float)
    return {
        "err": np.array(err),
        "counts": c,
        "formula": [_formula(row, species) for row in c],
        "species": species,
    }


def refit_e0s(
    model_path: str | Path,
    data_path: str | Path,
    out: str | Path,
    keep: str | None = None,
    keys: Any = None,
) -> dict[str, Any]:
    """Write ``out``: ``model_path`` with its E0s shifted by the least-squares offset of its
    energy errors on ``data_path`` (:func:`fit_energy_offset`; ``keep``: a formula such as
    'HfO2' whose energies stay unchanged, e.g. the training composition). The weights are not
    touched: forces and stresses are equal to the bit. The fit is recorded in the new file's
    metadata as ``training.energy_offset``. Returns the report: ``delta_eV`` (the shift
    removed, per species), ``frames`` and per-formula ``rows`` (n, energy MAE before / after in
    meV/atom). Raises UsageError for an AOTInductor package, an ``out`` that is not ``.pt`` or
    is the input, a ``keep`` formula with species the model lacks; DataError for frames with
    no energy label. Nothing is written when an error is raised."""
    from gnnff.potentials import read_metadata
    from gnnff.potentials.files.formats import is_package

    model_path, out = Path(model_path), Path(out)
    if is_package(model_path):
        raise UsageError(
            f"{model_path} is an AOTInductor package; refit the TorchScript file it was "
            f"exported from ({model_path.with_suffix('.pt').name}), then export it again"
        )
    if out.suffix != ".pt":
        raise UsageError(f"--out {out}: the refitted model is a TorchScript file; name it *.pt")
    if out.resolve() == model_path.resolve():
        raise UsageError(f"--out {out} is the input model; write the refitted model elsewhere")
    meta = read_metadata(model_path)
    species = list(meta["species"])
    keep_vec = None if keep is None else _composition(keep, species)
    e = energy_errors(model_path, data_path, keys)
    delta = fit_energy_offset(e["err"], e["counts"], keep_vec)
    after = e["err"] - e["counts"] @ delta
    groups: dict[str, list[int]] = defaultdict(list)
    for k, f in enumerate(e["formula"]):
        groups[f].append(k)
    natoms = e["counts"].sum(axis=1)
    rows = [
        {
            "formula": f,
            "frames": len(idx),
            "energy_mae_before": float(np.mean(np.abs(e["err"][idx] / natoms[idx])) * 1e3),
            "energy_mae_after": float(np.mean(np.abs(after[idx] / natoms[idx])) * 1e3),
        }
        for f, idx in sorted(groups.items())
    ]
    record = {
        "shift_added_eV": {s: float(-d) for s, d in zip(species, delta, strict=True)},
        "method": "least squares of the model's energy errors on labelled frames"
        + (f", constrained to leave {keep} unchanged" if keep else "")
        + " (gnnff refit-e0s)",
        "fit_frames": len(e["err"]),
        "fit_data": Path(str(data_path)).name,
        "keep": keep,
    }
    write_shifted_e0s(model_path, delta, out, record)
    return {"delta_eV": record["shift_added_eV"], "frames": len(e["err"]), "rows": rows}


def write_shifted_e0s(
    model_path: str | Path, delta: np.ndarray, out: str | Path, record: dict[str, Any]
) -> Path:
    """Write (atomically) a copy of model file ``model_path`` whose energies lose the offset
    ``delta`` [S] (eV per atom of each species, metadata species order): E -> E - counts @
    delta, weights untouched; ``record`` is stored as ``training.energy_offset``."""
    import torch

    from gnnff.potentials import eager_from_file, export_model, read_metadata

    meta = read_metadata(model_path)
    model: Any = eager_from_file(model_path)
    shift = model.per_species_shift.detach().to(torch.float64) - torch.tensor(delta)
    model.set_species_shift_scale(shift, model.per_species_scale.detach().clone())
    training = dict(meta.get("training") or {})
    training["energy_offset"] = record
    return Path(
        export_model(model, out, dtype=meta.get("dtype", "float64"), training_summary=training)
    )


def _composition(formula: str, species: Sequence[str]) -> np.ndarray:
    """Atom counts [S] of ``formula`` in ``species`` order; UsageError for a bad formula or a
    species the model lacks."""
    from ase.formula import Formula

    try:
        count = Formula(formula).count()
    except ValueError as exc:
        raise UsageError(f"--keep {formula!r} is not a chemical formula: {exc}") from None
    unknown = sorted(set(count) - set(species))
    if unknown or not count:
        raise UsageError(
            f"--keep {formula!r}: species {unknown or '(none)'} not in the model "
            f"(species: {', '.join(species)})"
        )
    return np.array([float(count.get(s, 0)) for s in species])
