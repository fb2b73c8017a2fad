"""Validation of labelled extended-XYZ data (``gnnff data check``)."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np

from gnnff.data.presets import load_preset
from gnnff.errors import GNNFFError

MIN_DISTANCE = 0.7  # A
ENERGY_TOL = 1e-6  # eV
FORCE_TOL = 1e-6  # eV/A


class DataCheckError(GNNFFError, ValueError):
    """A data file fails validation; the message lists every problem found."""


def _min_distance(atoms) -> float:
    from gnnff.potentials.neighbors import neighbor_list

    ei, shift = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, MIN_DISTANCE + 1.0)
    if ei.shape[1] == 0:
        return float("inf")
    vec = atoms.positions[ei[1]] - atoms.positions[ei[0]] + shift
    return float(np.sqrt((vec**2).sum(axis=1)).min())


def _find_manifest(path: Path) -> dict | None:
    for folder in (path.parent, path.parent.parent):
        m = folder / "manifest.json"
        if m.is_file():
            return json.loads(m.read_text())
    return None


def check_file(
    path: str | Path, preset: str | None = None, n_sample: int = 3, seed: int = 0
) -> dict:
    """Validate one extxyz file: readable, labels present and finite, species consistent,
    no two atoms closer than 0.7 A, and (when the labelling potential is known from
    ``preset`` or a ``manifest.json`` beside the file) ``n_sample`` frames re-labelled by
    LAMMPS ``run 0`` agree to 1e-6 eV and 1e-6 eV/A. Returns a summary; raises
    DataCheckError listing the problems."""
    path = Path(path)
    if not path.is_file():
        raise DataCheckError(f"{path}: no such file")
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:
        raise DataCheckError(f"{path}: not a readable extended-XYZ file ({exc})") from exc
    if not frames:
        raise DataCheckError(f"{path}: contains no frames")
    problems: list[str] = []
    manifest = _find_manifest(path)
    lammps_spec = None
    if preset is not None:
        lammps_spec = load_preset(preset)["lammps"]
    elif manifest is not None:
        lammps_spec = manifest["lammps"]
    allowed = set(lammps_spec["elements"]) if lammps_spec else None
    min_d = float("inf")
    for k, atoms in enumerate(frames):
        where = f"{path.name} frame {k}"
        if atoms.calc is None:
            problems.append(f"{where}: no energy/forces labels")
            continue
        try:
            e = atoms.get_potential_energy()
            f = atoms.get_forces()
        except Exception as exc:
            problems.append(f"{where}: missing label ({exc})")
            continue
        if not np.isfinite(e) or not np.isfinite(f).all():
            problems.append(f"{where}: non-finite energy or forces")
        if f.shape != (len(atoms), 3):
            problems.append(f"{where}: forces have shape {f.shape}, expected {(len(atoms), 3)}")
        if "stress" in atoms.calc.results and not np.isfinite(atoms.get_stress()).all():
            problems.append(f"{where}: non-finite stress")
        if not np.isfinite(atoms.positions).all():
            problems.append(f"{where}: non-finite positions")
            continue
        syms = set(atoms.get_chemical_symbols())
        if allowed is not None and not syms <= allowed:
            problems.append(f"{where}: species {sorted(syms - allowed)} not in {sorted(allowed)}")
        d = _min_distance(atoms)
        min_d = min(min_d, d)
        if d < MIN_DISTANCE:
            problems.append(f"{where}: two atoms {d:.3f} A apart (< {MIN_DISTANCE} A)")
    max_de = max_df = None
    if preset is None and (manifest or {}).get("labels"):
        # labelled by a teacher or calculator (manifest "labels"): the preset's potential only
        # sampled the structures, so LAMMPS cannot reproduce these labels
        lammps_spec = None
    if lammps_spec is not None and not problems:
        max_de, max_df = _relabel_errors(frames, lammps_spec, n_sample, seed)
        if max_de > ENERGY_TOL or max_df > FORCE_TOL:
            problems.append(
                f"{path.name}: LAMMPS run 0 disagrees with stored labels (|dE| = {max_de:.2e} eV, "
                f"max |dF| = {max_df:.2e} eV/A; tolerances {ENERGY_TOL:g}, {FORCE_TOL:g})"
            )
    if problems:
        raise DataCheckError("\n".join(problems))
    return {
        "file": str(path),
        "frames": len(frames),
        "min_distance": min_d,
        "relabel_max_energy_err": max_de,
        "relabel_max_force_err": max_df,
    }


def _relabel_errors(frames, lammps_spec: dict, n_sample: int, seed: int) -> tuple[float, float]:
    from gnnff.data.reference_md import ReferenceMD

    rng = np.random.default_rng(seed)
    picks = (
        sorted(
            set([0] + list(rng.choice(len(frames), min(n_sample, len(frames)) - 1, replace=False)))
        )
        if n_sample > 1
        else [0]
    )
    max_de = max_df = 0.0
    for i in picks:
        atoms = frames[i]
        with ReferenceMD(atoms, lammps_spec, 1.0, 100.0) as md:
            # ReferenceMD may rotate a non-LAMMPS cell: compare in its frame
            rot = np.linalg.solve(atoms.cell.array, md.atoms.cell.array)
            moved = md.atoms.copy()
            moved.positions = atoms.positions @ rot
            e, f = md.evaluate(moved)
        f_ref = atoms.get_forces() @ rot
        max_de = max(max_de, abs(e - atoms.get_potential_energy()))
        max_df = max(max_df, float(np.abs(f - f_ref).max()))
    return max_de, max_df


def check_dataset(folder: str | Path, n_sample: int = 2) -> list[dict]:
    """Check every extxyz file of a generated data set (main splits and reference MD)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.extxyz")) + sorted(folder.glob("reference_md/*.extxyz"))
    if not files:
        raise DataCheckError(f"{folder}: no .extxyz files found")
    return [check_file(p, n_sample=n_sample) for p in files]
