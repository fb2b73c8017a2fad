"""Datasets for training: extended XYZ through ASE, neighbour lists cached per structure, and
collation of several structures into one graph."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


class DataError(ValueError):
    """A data file that cannot be used for training; the message names file, frame and fix."""


@dataclass
class Structure:
    """One labelled structure with its neighbour list (numpy, float64, A / eV)."""

    pos: np.ndarray  # [N,3]
    species: np.ndarray  # [N] int64, index into the model's species list
    edge_index: np.ndarray  # [2,E]
    edge_shift: np.ndarray  # [E,3]
    energy: float
    forces: np.ndarray  # [N,3]
    stress: np.ndarray | None  # [3,3] eV/A^3 (ASE sign convention) or None
    volume: float  # A^3 (0 for a non-periodic structure)


@dataclass
class Batch:
    """Several structures as one graph (torch tensors)."""

    pos: torch.Tensor  # [N,3]
    species: torch.Tensor  # [N]
    edge_index: torch.Tensor  # [2,E], offset per structure
    edge_shift: torch.Tensor  # [E,3]
    batch: torch.Tensor  # [N] structure index of each atom
    num_atoms: torch.Tensor  # [B]
    energy: torch.Tensor  # [B]
    forces: torch.Tensor  # [N,3]
    stress: torch.Tensor | None  # [B,3,3]
    volume: torch.Tensor  # [B]

    @property
    def num_structures(self) -> int:
        return int(self.num_atoms.shape[0])


def read_frames(path: str | Path, split: str = "data"):
    """All frames of an extxyz file as ASE Atoms; clear errors for missing/empty files."""
    from gnnff.io_utils import read_frames as read_structures

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{split} file not found: {path}")
    try:
        return read_structures(path)
    except ValueError as exc:  # unreadable or empty
        raise DataError(f"cannot read the {split} file: {exc}") from None


def species_in(frames) -> list[str]:
    """Element symbols present in ``frames``, sorted by atomic number."""
    from ase.data import atomic_numbers

    symbols = {s for a in frames for s in a.get_chemical_symbols()}
    return sorted(symbols, key=lambda s: atomic_numbers[s])


def _labels(atoms, path: Path, k: int, need_stress: bool):
    where = f"{path.name} frame {k}"
    if atoms.calc is None:
        raise DataError(
            f"{where} has no energy/force labels (no calculator results); write the file with "
            "energies and forces (ASE writes them from a SinglePointCalculator)"
        )
    try:
        energy = float(atoms.get_potential_energy())
        forces = np.asarray(atoms.get_forces(), dtype=np.float64)
    except Exception as exc:
        raise DataError(f"{where} is missing an energy or force label: {exc}") from exc
    if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
        raise DataError(f"{where} has a NaN or infinite energy/force label; fix or drop it")
    stress = None
    try:
        s = atoms.get_stress(voigt=False)
        stress = np.asarray(s, dtype=np.float64).reshape(3, 3)
    except Exception:
        stress = None
    if stress is not None and not np.all(np.isfinite(stress)):
        raise DataError(f"{where} has a NaN or infinite stress label; fix or drop it")
    if need_stress and stress is None:
        raise DataError(
            f"{where} has no stress label but loss.stress_weight > 0; set the weight to 0 "
            "or label stresses"
        )
    return energy, forces, stress


def build_structures(
    frames, path: str | Path, species: list[str], cutoff: float, need_stress: bool = False
) -> list[Structure]:
    """Convert ASE frames into :class:`Structure` objects with cached neighbour lists."""
    from gnnff.potentials.neighbors import neighbor_list

    path = Path(path)
    index = {s: k for k, s in enumerate(species)}
    out = []
    for k, atoms in enumerate(frames):
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(index))
        if unknown:
            raise DataError(
                f"{path.name} frame {k} contains species {unknown} that the model config lacks "
                f"(model species: {species}); add them to model.species or drop those frames"
            )
        energy, forces, stress = _labels(atoms, path, k, need_stress)
        pos = np.asarray(atoms.get_positions(), dtype=np.float64)
        if not np.all(np.isfinite(pos)):
            raise DataError(f"{path.name} frame {k} has non-finite positions")
        pbc = atoms.get_pbc()
        cell = np.asarray(atoms.get_cell()[:], dtype=np.float64)
        ei, es = neighbor_list(pos, cell, pbc, cutoff)
        volume = float(abs(np.linalg.det(cell))) if pbc.all() else 0.0
        if stress is not None and volume == 0.0:
            stress = None
        out.append(
            Structure(
                pos=pos,
                species=np.array([index[s] for s in symbols], dtype=np.int64),
                edge_index=ei,
                edge_shift=es,
                energy=energy,
                forces=forces,
                stress=stress,
                volume=volume,
            )
        )
    if out and all(s.edge_index.shape[1] == 0 for s in out):
        raise DataError(
            f"{path.name}: no atom pair in any frame lies within the {cutoff} A cutoff, so the "
            "model would see no neighbours; raise model.cutoff (typically 4-6 A)"
        )
    return out


def collate(structs: list[Structure], dtype: torch.dtype = torch.float32,
            device: torch.device | str = "cpu") -> Batch:
    """Concatenate structures into one graph: edge indices offset by the atoms before them."""
    offsets = np.cumsum([0] + [len(s.pos) for s in structs[:-1]])
    ei = np.concatenate([s.edge_index + o for s, o in zip(structs, offsets, strict=True)], axis=1)
    has_stress = all(s.stress is not None for s in structs)

    def t(x, dt=dtype):
        return torch.as_tensor(x, dtype=dt, device=device)

    return Batch(
        pos=t(np.concatenate([s.pos for s in structs])),
        species=t(np.concatenate([s.species for s in structs]), torch.int64),
        edge_index=t(ei, torch.int64),
        edge_shift=t(np.concatenate([s.edge_shift for s in structs])),
        batch=t(np.repeat(np.arange(len(structs)), [len(s.pos) for s in structs]), torch.int64),
        num_atoms=t([len(s.pos) for s in structs], torch.int64),
        energy=t([s.energy for s in structs], torch.float64),
        forces=t(np.concatenate([s.forces for s in structs])),
        stress=t(np.stack([s.stress for s in structs])) if has_stress else None,
        volume=t([s.volume for s in structs]),
    )


def fit_species_shift(structs: list[Structure], num_species: int) -> np.ndarray:
    """Per-species energy shift [S] (eV/atom): least squares of E ~ sum_s n_s shift_s."""
    counts = np.stack([np.bincount(s.species, minlength=num_species) for s in structs])
    energies = np.array([s.energy for s in structs])
    shift, *_ = np.linalg.lstsq(counts.astype(np.float64), energies, rcond=None)
    return shift


def force_rms(structs: list[Structure]) -> float:
    """RMS of all force components (eV/A); 1.0 when the forces are all zero."""
    f = np.concatenate([s.forces.ravel() for s in structs])
    rms = float(np.sqrt(np.mean(f**2))) if f.size else 0.0
    return rms if rms > 0 else 1.0


def avg_num_neighbors(structs: list[Structure]) -> float:
    """Mean number of neighbours per atom within the cutoff."""
    n_edges = sum(s.edge_index.shape[1] for s in structs)
    n_atoms = sum(len(s.pos) for s in structs)
    return max(n_edges / max(n_atoms, 1), 1.0)

