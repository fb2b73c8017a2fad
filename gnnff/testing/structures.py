"""Small test structures for the model checks (random but reproducible, no overlaps)."""

from __future__ import annotations

from typing import Any

import numpy as np


def random_cell(
    symbols: list[str], box: float = 6.8, min_distance: float = 1.5, seed: int = 1
) -> Any:
    """Periodic triclinic cell (edges about ``box`` A) holding ``symbols`` at random positions
    at least ``min_distance`` A apart (minimum image). Returns ``ase.Atoms``."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    cell = np.diag([box, box * 1.05, box * 0.95]) + 0.3 * np.triu(rng.random((3, 3)), 1)
    positions: list[np.ndarray] = []
    for _ in range(20000):
        if len(positions) == len(symbols):
            break
        p = rng.random(3) @ cell
        trial: Any = Atoms(positions=[*positions, p], cell=cell, pbc=True)
        k = len(positions)
        if k == 0 or trial.get_distances(k, range(k), mic=True).min() > min_distance:
            positions.append(p)
    else:
        raise ValueError(f"could not place {len(symbols)} atoms {min_distance} A apart in a "
                         f"{box} A cell: give a larger box")  # fmt: skip
    return Atoms(symbols, positions=positions, cell=cell, pbc=True)


def random_cluster(symbols: list[str], box: float = 6.8, seed: int = 2) -> Any:
    """Non-periodic cluster: the atoms of :func:`random_cell` without the cell."""
    atoms = random_cell(symbols, box=box, seed=seed)
    atoms.pbc = False
    atoms.cell = np.zeros((3, 3))
    return atoms
