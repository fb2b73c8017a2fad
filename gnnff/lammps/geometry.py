"""Structures in LAMMPS' conventions: the lower-triangular cell and atomic data files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms


def lammps_cell(atoms: Atoms) -> Atoms:
    """Copy of ``atoms`` rotated into LAMMPS' lower-triangular cell convention
    (a along x, b in the xy plane) with tilts reduced to |xy| <= lx/2 etc."""
    a, b, c = atoms.cell.array
    lx = np.linalg.norm(a)
    xy = b @ a / lx
    ly = np.sqrt(b @ b - xy**2)
    xz = c @ a / lx
    yz = (b @ c - xy * xz) / ly
    lz = np.sqrt(c @ c - xz**2 - yz**2)
    cell = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
    # reduce tilts: the same lattice, LAMMPS-acceptable skew
    cell[2] -= np.round(cell[2, 1] / cell[1, 1]) * cell[1]
    cell[2] -= np.round(cell[2, 0] / cell[0, 0]) * cell[0]
    cell[1] -= np.round(cell[1, 0] / cell[0, 0]) * cell[0]
    frac = atoms.get_scaled_positions(wrap=True)
    out = atoms.copy()
    out.set_cell(np.array([[lx, 0, 0], [xy, ly, 0], [xz, yz, lz]]))
    out.set_scaled_positions(frac)
    out.set_cell(cell, scale_atoms=False)
    out.wrap()
    return out


def write_lammps_data(atoms: Atoms, path: str | Path, species: list[str] | tuple[str, ...]) -> Path:
    """Write ``atoms`` as a LAMMPS ``atom_style atomic`` data file with full-precision
    positions; atom types follow ``species`` (type 1 = species[0]). A cell that is not
    lower-triangular is rotated into LAMMPS form first (forces then come out rotated)."""
    from ase.data import atomic_masses, atomic_numbers

    cell = np.asarray(atoms.cell)
    if abs(cell[0, 1]) + abs(cell[0, 2]) + abs(cell[1, 2]) > 1e-12:
        atoms = lammps_cell(atoms)
        cell = np.asarray(atoms.cell)
    missing = sorted(set(atoms.get_chemical_symbols()) - set(species))
    if missing:
        raise ValueError(f"elements {missing} are not among the LAMMPS types {list(species)}")
    lines = [
        "gnnff structure",
        "",
        f"{len(atoms)} atoms",
        f"{len(species)} atom types",
        "",
        f"0.0 {cell[0, 0]:.17g} xlo xhi",
        f"0.0 {cell[1, 1]:.17g} ylo yhi",
        f"0.0 {cell[2, 2]:.17g} zlo zhi",
        f"{cell[1, 0]:.17g} {cell[2, 0]:.17g} {cell[2, 1]:.17g} xy xz yz",
        "",
        "Masses",
        "",
    ]
    lines += [f"{k + 1} {atomic_masses[atomic_numbers[s]]:.6f}" for k, s in enumerate(species)]
    lines += ["", "Atoms # atomic", ""]
    sym = atoms.get_chemical_symbols()
    for k, p in enumerate(atoms.positions):
        lines.append(
            f"{k + 1} {list(species).index(sym[k]) + 1} {p[0]:.17g} {p[1]:.17g} {p[2]:.17g}"
        )
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)
