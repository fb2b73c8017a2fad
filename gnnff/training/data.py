"""Datasets for training: extended XYZ through ASE, neighbour lists cached per structure, and
collation of several structures into one graph."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import GNNFFError
from .labels import LabelError, LabelKeys, check_keys_exist, missing_labels_message, read_labels


class DataError(GNNFFError, ValueError):
    """A data file that cannot be used for training; the message names file, frame and fix."""


@runtime_checkable
class FrameTable(Protocol):
    """A sequence of structures that also offers whole-set arrays (e.g. the on-disk cache,
    :class:`gnnff.training.edge_cache.CachedStructures`), so the dataset statistics below need
    not build every :class:`Structure`. Arrays are per frame [F] unless said otherwise."""

    num_atoms: np.ndarray  # [F] int
    num_edges: np.ndarray  # [F] int
    energy: np.ndarray  # [F] eV (0 where energy_mask is False)
    energy_mask: np.ndarray  # [F] bool

    def __len__(self) -> int: ...

    def species_counts(self, num_species: int) -> np.ndarray:
        """[F, num_species] number of atoms of each species per frame."""
        ...

    def first_species(self, frame: int) -> int:
        """The species index of the first atom of ``frame``."""
        ...

    def labelled_forces(self) -> np.ndarray:
        """[n,3] the force labels of every frame that has them, in frame order (eV/A)."""
        ...


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
    keys = keys or LabelKeys()
    path = Path(path)
    try:
        check_keys_exist(frames, keys, path.name)
    except LabelError as exc:
        raise DataError(str(exc)) from None
    index = {s: k for k, s in enumerate(species)}
    out = [
        structure_from_frame(atoms, f"{path.name} frame {k}", species, index, cutoff, keys)
        for k, atoms in enumerate(frames)
    ]
    check_structures(
        path.name,
        cutoff,
        keys,
        len(out),
        any(s.edge_index.shape[1] > 0 for s in out),
        {lab: sum(getattr(s, lab) is not None for s in out) for lab in LABELS},
        need_energy=need_energy,
        need_forces=need_forces,
        need_stress=need_stress,
    )
    return out


LABELS = ("energy", "forces", "stress")


def structure_from_frame(
    atoms, where: str, species: list[str], index: dict[str, int], cutoff: float, keys: LabelKeys
) -> Structure:
    """One frame as a :class:`Structure` (``where``: "file frame k" for the errors;
    ``index``: symbol -> position in ``species``); the per-frame checks of
    :func:`build_structures`, raising the same :class:`DataError`."""
    from gnnff.potentials.neighbors import coincident_pair, neighbor_list

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
    return Structure(
        pos=pos,
        species=np.array([index[s] for s in symbols], dtype=np.int64),
        edge_index=ei,
        edge_shift=es,
        energy=labels.energy,
        forces=labels.forces,
        stress=stress,
        volume=volume,
    )


def check_structures(
    name: str,
    cutoff: float,
    keys: LabelKeys,
    num_frames: int,
    any_edges: bool,
    labelled: dict[str, int],
    need_energy: bool = False,
    need_forces: bool = False,
    need_stress: bool = False,
) -> None:
    """The whole-file checks of :func:`build_structures` on a summary of its structures:
    ``num_frames``, whether any has an edge, and ``labelled`` {"energy"|"forces"|"stress":
    number of frames with that label}. Raises :class:`DataError` (file ``name``)."""
    if num_frames and not any_edges:
        raise DataError(
            f"{name}: no atom pair in any frame lies within the {cutoff} A cutoff, so the "
            "model would see no neighbours; raise model.cutoff (typically 4-6 A)"
        )
    for label, needed, weight in (
        ("energy", need_energy, "energy_weight"),
        ("forces", need_forces, "forces_weight"),
        ("stress", need_stress, "stress_weight"),
    ):
        if needed and num_frames and not labelled[label]:
            extra = " (stress needs periodic frames with a cell)" if label == "stress" else ""
            raise DataError(
                f"{name}: no frame has a {label} label under {keys.describe()}{extra}, but "
                f"loss.{weight} > 0; set loss.{weight} to 0, label {label}, or name the key "
                f"(data.{label}_key)"
            )


def collate(
    structs: Sequence[Structure],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
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


def _table(structs) -> FrameTable | None:
    """``structs`` as a :class:`FrameTable` when it offers whole-set arrays, else None."""
    return structs if isinstance(structs, FrameTable) else None


def labelled_composition(
    structs: Sequence[Structure], num_species: int
) -> tuple[np.ndarray, np.ndarray]:
    """(species counts [F, S], energies [F] in eV) of the structures with an energy label."""
    table = _table(structs)
    if table is not None:
        mask = np.asarray(table.energy_mask, dtype=bool)
        counts = table.species_counts(num_species)[mask]
        energies = np.asarray(table.energy, dtype=np.float64)[mask]
    else:
        labelled = [s for s in structs if s.energy is not None]
        counts = np.array(
            [np.bincount(s.species, minlength=num_species) for s in labelled]
        ).reshape(len(labelled), num_species)
        energies = np.array([s.energy for s in labelled], dtype=np.float64)
    return counts.astype(np.float64), energies


def fit_species_shift(structs: Sequence[Structure], num_species: int) -> np.ndarray:
    """Per-species energy shift [S] (eV/atom): least squares of E ~ sum_s n_s shift_s over the
    structures with an energy label (zeros when none has one). When the compositions do not
    determine every shift (:func:`gnnff.training.e0s.undetermined_e0s`), this is the
    minimum-norm solution."""
    counts, energies = labelled_composition(structs, num_species)
    if not len(energies):
        return np.zeros(num_species)
    shift, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return shift


def isolated_atom_energies(structs: Sequence[Structure], species: list[str]) -> np.ndarray:
    """E0s [S] (eV) from single-atom structures with an energy label (MACE's ``IsolatedAtom``
    frames). Raises :class:`DataError` naming the species that have none."""
    e0 = np.full(len(species), np.nan)
    table = _table(structs)
    if table is not None:
        single = (np.asarray(table.num_atoms) == 1) & np.asarray(table.energy_mask, dtype=bool)
        for k in np.flatnonzero(single):  # in frame order: a later frame wins, as below
            e0[table.first_species(int(k))] = float(table.energy[k])
    else:
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


def force_rms(structs: Sequence[Structure]) -> float:
    """RMS of all labelled force components (eV/A); 1.0 when there are none or all are zero."""
    table = _table(structs)
    if table is not None:
        f = table.labelled_forces().ravel()
    else:
        parts = [s.forces.ravel() for s in structs if s.forces is not None]
        f = np.concatenate(parts) if parts else np.zeros(0)
    rms = float(np.sqrt(np.mean(f**2))) if f.size else 0.0
    return rms if rms > 0 else 1.0


def avg_num_neighbors(structs: Sequence[Structure]) -> float:
    """Mean number of neighbours per atom within the cutoff."""
    table = _table(structs)
    if table is not None:
        n_edges = int(np.sum(table.num_edges))
        n_atoms = int(np.sum(table.num_atoms))
    else:
        n_edges = sum(s.edge_index.shape[1] for s in structs)
        n_atoms = sum(len(s.pos) for s in structs)
    return max(n_edges / max(n_atoms, 1), 1.0)
