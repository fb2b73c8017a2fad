"""Datasets for training: extended XYZ through ASE, neighbour lists cached per structure, and
collation of several structures into one graph."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .labels import LabelError, LabelKeys, check_keys_exist, missing_labels_message, read_labels


class DataError(ValueError):
    """A data file that cannot be used for training; the message names file, frame and fix."""


@dataclass
class Structure:
    """One structure with its neighbour list (numpy, float64, A / eV) and whichever labels it
    has (``None`` where a label is missing: that frame then adds no term for it)."""

    pos: np.ndarray  # [N,3]
    species: np.ndarray  # [N] int64, index into the model's species list
    edge_index: np.ndarray  # [2,E]
    edge_shift: np.ndarray  # [E,3]
    energy: float | None  # eV
    forces: np.ndarray | None  # [N,3] eV/A
    stress: np.ndarray | None  # [3,3] eV/A^3 (ASE sign convention) or None
    volume: float  # A^3 (0 for a structure that is not periodic in all three directions)


@dataclass
class Batch:
    """Several structures as one graph (torch tensors). Missing labels are zero-filled and
    masked out: ``energy_mask`` [B], ``forces_mask`` [N] (per atom, from its frame),
    ``stress_mask`` [B]; ``stress`` is None when no structure of the batch has one."""

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
    energy_mask: torch.Tensor  # [B] bool
    forces_mask: torch.Tensor  # [N] bool
    stress_mask: torch.Tensor  # [B] bool

    @property
    def num_structures(self) -> int:
        return int(self.num_atoms.shape[0])


def split_index(spec: str | Path) -> tuple[Path, str]:
    """``"file@index"`` (ASE's syntax, e.g. ``vasprun.xml@:`` or ``md.traj@-10:``) ->
    (path, index); a plain path -> (path, ":"). A path that exists as written is never split."""
    text = str(spec)
    if "@" in text and not Path(text).exists():
        path, index = text.rsplit("@", 1)
        return Path(path), index or ":"
    return Path(text), ":"


def read_frames(path: str | Path, split: str = "data"):
    """All frames of any ASE-readable file as ASE Atoms (``path@index`` selects frames, as in
    ``ase.io.read``); clear errors for missing, unreadable or empty files."""
    from gnnff.io_utils import read_frames as read_structures

    path, index = split_index(path)
    if not path.is_file():
        raise DataError(f"{split} file not found: {path}")
    try:
        return read_structures(path, index)
    except ValueError as exc:  # unreadable or empty
        raise DataError(f"cannot read the {split} file: {exc}") from None


def species_in(frames) -> list[str]:
    """Element symbols present in ``frames``, sorted by atomic number."""
    from ase.data import atomic_numbers

    symbols = {s for a in frames for s in a.get_chemical_symbols()}
    return sorted(symbols, key=lambda s: atomic_numbers[s])


def build_structures(
    frames,
    path: str | Path,
    species: list[str],
    cutoff: float,
    need_stress: bool = False,
    keys: LabelKeys | None = None,
    need_energy: bool = False,
    need_forces: bool = False,
) -> list[Structure]:
    """Convert ASE frames into :class:`Structure` objects with cached neighbour lists.

    Labels are read under ``keys`` (:mod:`gnnff.training.labels`; default: calculator
    results). Every frame needs an energy or a force label; ``need_energy`` / ``need_forces`` /
    ``need_stress`` demand that at least one frame has that label (its loss weight is > 0).
    Raises :class:`DataError` naming file, frame and atoms for unknown species, non-finite
    positions or labels, coincident atoms, missing labels (listing the keys present) and a
    cutoff that leaves every atom without neighbours."""
    from gnnff.potentials.neighbors import coincident_pair, neighbor_list

    keys = keys or LabelKeys()
    path = Path(path)
    try:
        check_keys_exist(frames, keys, path.name)
    except LabelError as exc:
        raise DataError(str(exc)) from None
    index = {s: k for k, s in enumerate(species)}
    out = []
    for k, atoms in enumerate(frames):
        where = f"{path.name} frame {k}"
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(index))
        if unknown:
            raise DataError(
                f"{where} contains species {unknown} that the model config lacks "
                f"(model species: {species}); add them to model.species or drop those frames"
            )
        try:
            labels = read_labels(atoms, keys, where)
        except LabelError as exc:
            raise DataError(str(exc)) from None
        if labels.energy is None and labels.forces is None:
            raise DataError(missing_labels_message(atoms, keys, where))
        pos = np.asarray(atoms.get_positions(), dtype=np.float64)
        if not np.all(np.isfinite(pos)):
            bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))[:10].tolist()
            raise DataError(f"{where} has non-finite positions (atoms {bad}); fix or drop it")
        pbc = atoms.get_pbc()
        cell = np.asarray(atoms.get_cell()[:], dtype=np.float64)
        try:
            ei, es = neighbor_list(pos, cell, pbc, cutoff)
        except ValueError as exc:
            raise DataError(f"{where}: {exc}") from None
        same = coincident_pair(pos, ei, es)
        if same is not None:
            raise DataError(
                f"{where}: atoms {same[0]} and {same[1]} sit at the same place "
                f"(distance {same[2]:.2e} A); remove the duplicate atom or drop the frame"
            )
        volume = float(abs(np.linalg.det(cell))) if pbc.all() else 0.0
        stress = labels.stress if volume > 0.0 else None
        out.append(
            Structure(
                pos=pos,
                species=np.array([index[s] for s in symbols], dtype=np.int64),
                edge_index=ei,
                edge_shift=es,
                energy=labels.energy,
                forces=labels.forces,
                stress=stress,
                volume=volume,
            )
        )
    if out and all(s.edge_index.shape[1] == 0 for s in out):
        raise DataError(
            f"{path.name}: no atom pair in any frame lies within the {cutoff} A cutoff, so the "
            "model would see no neighbours; raise model.cutoff (typically 4-6 A)"
        )
    for label, needed, weight in (
        ("energy", need_energy, "energy_weight"),
        ("forces", need_forces, "forces_weight"),
        ("stress", need_stress, "stress_weight"),
    ):
        if needed and out and all(getattr(s, label) is None for s in out):
            extra = " (stress needs periodic frames with a cell)" if label == "stress" else ""
            raise DataError(
                f"{path.name}: no frame has a {label} label under {keys.describe()}{extra}, but "
                f"loss.{weight} > 0; set loss.{weight} to 0, label {label}, or name the key "
                f"(data.{label}_key)"
            )
    return out


def collate(
    structs: list[Structure], dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> Batch:
    """Concatenate structures into one graph: edge indices offset by the atoms before them;
    missing labels zero-filled and masked."""
    offsets = np.cumsum([0] + [len(s.pos) for s in structs[:-1]])
    ei = np.concatenate([s.edge_index + o for s, o in zip(structs, offsets, strict=True)], axis=1)
    has_stress = [s.stress is not None for s in structs]
    zero33 = np.zeros((3, 3))

    def t(x, dt=dtype):
        return torch.as_tensor(x, dtype=dt, device=device)

    return Batch(
        pos=t(np.concatenate([s.pos for s in structs])),
        species=t(np.concatenate([s.species for s in structs]), torch.int64),
        edge_index=t(ei, torch.int64),
        edge_shift=t(np.concatenate([s.edge_shift for s in structs])),
        batch=t(np.repeat(np.arange(len(structs)), [len(s.pos) for s in structs]), torch.int64),
        num_atoms=t([len(s.pos) for s in structs], torch.int64),
        energy=t([0.0 if s.energy is None else s.energy for s in structs], torch.float64),
        forces=t(
            np.concatenate(
                [np.zeros((len(s.pos), 3)) if s.forces is None else s.forces for s in structs]
            )
        ),
        stress=(
            t(np.stack([zero33 if s.stress is None else s.stress for s in structs]))
            if any(has_stress)
            else None
        ),
        volume=t([s.volume for s in structs]),
        energy_mask=t([s.energy is not None for s in structs], torch.bool),
        forces_mask=t(
            np.repeat([s.forces is not None for s in structs], [len(s.pos) for s in structs]),
            torch.bool,
        ),
        stress_mask=t(has_stress, torch.bool),
    )


def fit_species_shift(structs: list[Structure], num_species: int) -> np.ndarray:
    """Per-species energy shift [S] (eV/atom): least squares of E ~ sum_s n_s shift_s over the
    structures with an energy label (zeros when none has one)."""
    labelled = [s for s in structs if s.energy is not None]
    if not labelled:
        return np.zeros(num_species)
    counts = np.stack([np.bincount(s.species, minlength=num_species) for s in labelled])
    energies = np.array([s.energy for s in labelled])
    shift, *_ = np.linalg.lstsq(counts.astype(np.float64), energies, rcond=None)
    return shift


def isolated_atom_energies(structs: list[Structure], species: list[str]) -> np.ndarray:
    """E0s [S] (eV) from single-atom structures with an energy label (MACE's ``IsolatedAtom``
    frames). Raises :class:`DataError` naming the species that have none."""
    e0 = np.full(len(species), np.nan)
    for s in structs:
        if len(s.pos) == 1 and s.energy is not None:
            e0[int(s.species[0])] = s.energy
    missing = [species[k] for k in np.flatnonzero(np.isnan(e0))]
    if missing:
        raise DataError(
            f"model.e0s = 'isolated_atoms' but the training file has no single-atom frame with "
            f"an energy for {missing}; add one per element (an isolated atom in a large box or "
            "a non-periodic cell) or give model.e0s as a mapping {symbol: eV}"
        )
    return e0


def force_rms(structs: list[Structure]) -> float:
    """RMS of all labelled force components (eV/A); 1.0 when there are none or all are zero."""
    parts = [s.forces.ravel() for s in structs if s.forces is not None]
    f = np.concatenate(parts) if parts else np.zeros(0)
    rms = float(np.sqrt(np.mean(f**2))) if f.size else 0.0
    return rms if rms > 0 else 1.0


def avg_num_neighbors(structs: list[Structure]) -> float:
    """Mean number of neighbours per atom within the cutoff."""
    n_edges = sum(s.edge_index.shape[1] for s in structs)
    n_atoms = sum(len(s.pos) for s in structs)
    return max(n_edges / max(n_atoms, 1), 1.0)
