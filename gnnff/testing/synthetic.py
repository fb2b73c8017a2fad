"""Small synthetic Si/O data for tests and benchmarks (test support, not a runtime API): random
cells labelled by a smooth species-pair Morse potential (an ASE calculator), fast and free of
LAMMPS."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

# (depth eV, width 1/A, r0 A) per unordered species pair
_PAIRS = {
    ("O", "O"): (0.10, 1.6, 2.6),
    ("O", "Si"): (1.20, 1.8, 1.62),
    ("Si", "Si"): (0.50, 1.4, 2.4),
}


class PairMorse(Calculator):
    """E = 1/2 sum_{i != j} D (e^{-2a(r-r0)} - 2 e^{-a(r-r0)}) (1 - (r/rc)^2)^2, r < rc.

    Energies eV, forces eV/A, stress eV/A^3 (ASE convention)."""

    implemented_properties = ["energy", "forces", "stress"]

    def __init__(self, cutoff: float = 4.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.cutoff = cutoff

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)  # type: ignore[no-untyped-call]
        from gnnff.potentials.neighbors import neighbor_list

        a = self.atoms
        pos = a.get_positions()
        ei, es = neighbor_list(pos, a.get_cell()[:], a.get_pbc(), self.cutoff)
        i, j = ei
        vec = pos[j] - pos[i] + es
        r = np.linalg.norm(vec, axis=1)
        sym = np.array(a.get_chemical_symbols())
        params = np.array(
            [_PAIRS[tuple(sorted((x, y)))] for x, y in zip(sym[i], sym[j], strict=True)]
        )
        params = params.reshape(-1, 3)
        d, w, r0 = params.T
        ex = np.exp(-w * (r - r0))
        phi = d * (ex**2 - 2 * ex)
        dphi = d * (-2 * w * ex**2 + 2 * w * ex)
        x = r / self.cutoff
        sw = (1 - x**2) ** 2
        dsw = 2 * (1 - x**2) * (-2 * x / self.cutoff)
        energy = 0.5 * np.sum(phi * sw)
        de_dr = 0.5 * (dphi * sw + phi * dsw)
        g = (de_dr / np.maximum(r, 1e-12))[:, None] * vec  # dE/d r_ij
        forces = np.zeros_like(pos)
        np.add.at(forces, i, g)
        np.add.at(forces, j, -g)
        self.results["energy"] = float(energy)
        self.results["free_energy"] = float(energy)
        self.results["forces"] = forces
        if a.get_pbc().all():
            vol = a.get_volume()
            sigma = np.einsum("ea,eb->ab", vec, g) / vol
            self.results["stress"] = sigma.flat[[0, 4, 8, 5, 2, 1]]


def random_sio2(
    n_formula: int = 4,
    density: float = 2.2,
    rng: int | np.random.Generator | None = None,
    min_dist: float = 1.45,
) -> Atoms:
    """A random periodic SiO2 cell (``n_formula`` SiO2 units, density g/cm^3), atoms placed
    with a minimum separation ``min_dist`` (A)."""
    rng = np.random.default_rng(rng)
    symbols = ["Si"] * n_formula + ["O"] * (2 * n_formula)
    mass = n_formula * (28.0855 + 2 * 15.999) * 1.66054  # g/cm^3 * A^3
    side = (mass / density) ** (1 / 3)
    atoms = Atoms(symbols, cell=np.eye(3) * side, pbc=True)
    pos: list[np.ndarray] = []
    for _ in symbols:
        for _try in range(2000):
            p = rng.uniform(0, side, 3)
            ok = True
            for q in pos:
                dv = p - q
                dv -= side * np.round(dv / side)
                if np.linalg.norm(dv) < min_dist:
                    ok = False
                    break
            if ok:
                break
        pos.append(p)
    atoms.set_positions(np.array(pos))  # type: ignore[no-untyped-call]
    return atoms


def make_dataset(n: int, seed: int = 0, n_formula: int = 4, cutoff: float = 4.0) -> list[Atoms]:
    """``n`` labelled random SiO2 cells (SinglePointCalculator results attached)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = random_sio2(n_formula, density=rng.uniform(2.0, 2.4), rng=rng)
        atoms.calc = PairMorse(cutoff)
        e = atoms.get_potential_energy()  # type: ignore[no-untyped-call]
        f = atoms.get_forces()  # type: ignore[no-untyped-call]
        s = atoms.get_stress()  # type: ignore[no-untyped-call]
        atoms.calc = SinglePointCalculator(  # type: ignore[no-untyped-call]
            atoms, energy=e, forces=f, stress=s
        )
        out.append(atoms)
    return out


def write_dataset(path: str | Path, n: int, seed: int = 0, n_formula: int = 4) -> Path:
    """Write :func:`make_dataset` frames to an extxyz file."""
    import ase.io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(str(path), make_dataset(n, seed, n_formula), format="extxyz")
    return path
