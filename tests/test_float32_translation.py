"""float32 models far from the origin (issue 29, point 4): the engines hand the model positions
re-centred (and, in ASE, wrapped into the cell) in float64 before casting, so float32 forces at
10^4 A translation stay within 1e-4 eV/A of float64 ones, in ASE and in LAMMPS."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lammps_fixtures as lf  # noqa: E402

SPECIES = ("O", "Si")
FAR = 1.0e4  # A
TOL = 1e-4  # eV/A


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("f32")
    return {dt: lf.write_toy_model(d / f"toy_{dt}.pt", SPECIES, dtype=dt)
            for dt in ("float32", "float64")}  # fmt: skip


def ase_forces(model: Path, atoms) -> np.ndarray:
    from gnnff.calculators import GNNFFCalculator

    atoms = atoms.copy()
    atoms.calc = GNNFFCalculator(model, max_block_edges=0)
    return atoms.get_forces()


def test_float32_in_ase_far_from_origin(models):
    atoms = lf.sio2_like_cell((2, 2, 2), seed=3)
    f64 = ase_forces(models["float64"], atoms)
    assert np.abs(f64).max() > 0.5  # forces worth comparing
    far = atoms.copy()
    far.positions += FAR
    np.testing.assert_allclose(ase_forces(models["float32"], far), f64, rtol=0, atol=TOL)
    # an unwrapped trajectory: atoms scattered over many cells around 1e4 A
    scattered = atoms.copy()
    rng = np.random.default_rng(0)
    cells = rng.integers(900, 1100, size=(len(atoms), 3))
    scattered.positions += cells @ atoms.cell.array
    assert np.abs(scattered.positions).min() > 1e3
    np.testing.assert_allclose(ase_forces(models["float32"], scattered), f64, rtol=0, atol=TOL)
    # float64 is unchanged (to rounding) by translation and wrapping
    np.testing.assert_allclose(ase_forces(models["float64"], scattered), f64, rtol=0, atol=1e-9)


def test_float32_in_ase_cluster_far_from_origin(models):
    from ase import Atoms

    bulk = lf.sio2_like_cell((1, 1, 1), seed=4)
    cluster = Atoms(bulk.get_chemical_symbols(), positions=bulk.positions, pbc=False)
    f64 = ase_forces(models["float64"], cluster)
    cluster.positions += [FAR, -FAR, 0.5 * FAR]
    np.testing.assert_allclose(ase_forces(models["float32"], cluster), f64, rtol=0, atol=TOL)


def test_model_frame_positions_moves_atoms_by_lattice_vectors_only():
    from gnnff.calculators.ase_calculator import model_frame_positions

    atoms = lf.sio2_like_cell((1, 1, 1), seed=5)
    atoms.pbc = (True, True, False)
    shifted = atoms.positions + np.array([[3, -2, 7]]) @ atoms.cell.array + 50.0
    frame = model_frame_positions(shifted, atoms.cell.array, atoms.pbc)
    delta = frame - atoms.positions  # a lattice vector (periodic a, b) plus one translation
    steps = np.linalg.solve(atoms.cell.array.T, (delta - delta[0]).T).T
    np.testing.assert_allclose(steps[:, :2], np.round(steps[:, :2]), atol=1e-9)
    np.testing.assert_allclose(steps[:, 2], 0.0, atol=1e-9)  # open z: one rigid shift
    assert np.abs(frame).max() < np.abs(atoms.cell.array).sum()
