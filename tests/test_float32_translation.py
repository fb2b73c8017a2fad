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


def shifted_data(data: Path, shift: float, tmp: Path) -> Path:
    """A copy of the LAMMPS data file ``data`` with its box and atoms moved by ``shift`` A
    along x, y and z."""
    out, in_atoms = [], False
    for line in data.read_text().splitlines():
        words = line.split()
        if len(words) == 4 and words[2].endswith("lo") and words[3].endswith("hi"):
            line = f"{float(words[0]) + shift!r} {float(words[1]) + shift!r} {words[2]} {words[3]}"
        elif line.startswith("Atoms"):
            in_atoms = True
        elif in_atoms and len(words) == 5:
            xyz = " ".join(repr(float(w) + shift) for w in words[2:])
            line = f"{words[0]} {words[1]} {xyz}"
        out.append(line)
    path = tmp / f"shifted_{shift:g}.data"
    path.write_text("\n".join(out) + "\n")
    return path


def lammps_forces(model: Path, data: Path, shift: float, nprocs: int, tmp: Path) -> np.ndarray:
    """Forces [N,3] (eV/A, by atom ID) from pair_style gnnff, with the box and atoms of ``data``
    moved by ``shift`` A along x, y and z."""
    import json
    import subprocess

    from gnnff.lammps.build import build_plugin

    spec = {
        "plugin": str(build_plugin(quiet=True)),
        "commands": ["units metal", "atom_style atomic", "boundary p p p",
                     f"read_data {shifted_data(data, shift, tmp)}", "pair_style gnnff",
                     f"pair_coeff * * {model} O Si", "run 0"],
        "gather": ["f:3"],
    }  # fmt: skip
    if nprocs == 1:
        res = lf.run_lammps(spec)
    else:
        spec_path, out_path = tmp / "spec.json", tmp / "out.json"
        spec_path.write_text(json.dumps(spec))
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
               "OMP_NUM_THREADS": "1"}  # fmt: skip
        mpirun = Path(sys.executable).parent / "mpirun"
        cmd = [str(mpirun), "-np", str(nprocs), sys.executable, lf.__file__, str(spec_path),
               str(out_path)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        res = json.loads(out_path.read_text())
    assert "error" not in res, res.get("error")
    return np.array(res["f"])


@pytest.mark.parametrize("nprocs", [1, 2])
def test_float32_in_lammps_far_from_origin(models, tmp_path, nprocs):
    pytest.importorskip("lammps")
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("no C++ compiler to build the plugin")
    data = lf.write_lammps_data(lf.sio2_like_cell((2, 2, 2), seed=3), tmp_path / "s.data",
                                SPECIES)  # fmt: skip
    f64 = lammps_forces(models["float64"], data, 0.0, nprocs, tmp_path)
    assert np.abs(f64).max() > 0.5
    f32 = lammps_forces(models["float32"], data, FAR, nprocs, tmp_path)
    np.testing.assert_allclose(f32, f64, rtol=0, atol=TOL)
    # float64 unchanged by the translation
    f64_far = lammps_forces(models["float64"], data, FAR, nprocs, tmp_path)
    np.testing.assert_allclose(f64_far, f64, rtol=0, atol=1e-9)
