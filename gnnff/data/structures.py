"""Starting structures for reference MD: random amorphous packings and crystals from presets."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers
from ase.spacegroup import crystal

from gnnff.errors import GNNFFError

AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660


class PackingError(GNNFFError, RuntimeError):
    """No random packing at the preset's density and minimum distance; lower either."""


def composition_counts(composition: dict[str, float], n_atoms: int) -> dict[str, int]:
    """Integer atom counts closest to ``composition`` (ratios) that sum to ``n_atoms``."""
    total = sum(composition.values())
    raw = {s: n_atoms * x / total for s, x in composition.items()}
    counts = {s: int(np.floor(v)) for s, v in raw.items()}
    rest = n_atoms - sum(counts.values())
    for s in sorted(raw, key=lambda s: raw[s] - counts[s], reverse=True)[:rest]:
        counts[s] += 1
    return counts


def random_packing(
    counts: dict[str, int], density: float, min_distance: float, rng: np.random.Generator
) -> Atoms:
    """Cubic periodic cell at ``density`` (g/cm^3) filled by random insertion with every pair
    at least ``min_distance`` (A) apart."""
    symbols = [s for s, n in counts.items() for _ in range(n)]
    mass = sum(atomic_masses[atomic_numbers[s]] for s in symbols)
    length = (mass * AMU_PER_A3_TO_G_PER_CM3 / density) ** (1.0 / 3.0)
    pos = np.zeros((len(symbols), 3))
    for k in range(len(symbols)):
        for _ in range(100000):
            trial = rng.random(3) * length
            d = pos[:k] - trial
            d -= length * np.round(d / length)
            if k == 0 or np.min(np.einsum("ij,ij->i", d, d)) >= min_distance**2:
                pos[k] = trial
                break
        else:
            raise PackingError(
                f"could not place {len(symbols)} atoms at {density} g/cm^3 with minimum "
                f"distance {min_distance} A; lower min_distance in the preset"
            )
    return Atoms(symbols, positions=pos, cell=np.eye(3) * length, pbc=True)


def crystal_structure(spec: dict, repeat: list[int]) -> Atoms:
    """Crystal from a preset's ``crystal`` block (symbols, basis, spacegroup, cellpar)."""
    atoms = crystal(
        spec["symbols"],
        basis=[tuple(b) for b in spec["basis"]],
        spacegroup=spec["spacegroup"],
        cellpar=spec["cellpar"],
    )
    return atoms.repeat(tuple(repeat))


def scale_density(atoms: Atoms, factor: float) -> Atoms:
    """Copy of ``atoms`` with its density multiplied by ``factor`` (affine scaling)."""
    out = atoms.copy()
    out.set_cell(atoms.cell.array * factor ** (-1.0 / 3.0), scale_atoms=True)
    return out


def density_g_cm3(atoms: Atoms) -> float:
    return float(atoms.get_masses().sum() * AMU_PER_A3_TO_G_PER_CM3 / atoms.get_volume())
