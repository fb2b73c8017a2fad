"""The real gnnff models through pair_style gnnff (1 and 2 MPI ranks) against the ASE
calculator: energy, per-atom energies, forces, stress (bar -> eV/A^3, Voigt order)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lammps_fixtures as lf  # noqa: E402
from test_lammps_plugin import EVAL, GATHER, header, run  # noqa: E402

from gnnff.calculators import GNNFFCalculator  # noqa: E402
from gnnff.potentials import build_model, export_model  # noqa: E402

SPECIES = ("O", "Si")


@pytest.fixture(scope="module")
def plugin() -> str:
    from gnnff.lammps.build import build_plugin

    return str(build_plugin(quiet=True))


@pytest.fixture(scope="module", params=["allegro", "allegro-attn", "allegro+zbl"])
def model_file(request, tmp_path_factory) -> Path:
    torch.manual_seed(1)
    family, _, prior = request.param.partition("+")
    model = build_model(
        {
            "family": family,
            "species": ["Si", "O"],
            "cutoff": 4.5,
            "num_scalar": 16,
            "num_tensor": 4,
            "mlp_hidden": [16],
            "zbl": prior == "zbl",
        }
    )
    model.set_species_shift_scale(torch.tensor([-4.0, -6.0]), torch.tensor([0.8, 1.3]))
    path = tmp_path_factory.mktemp("real") / f"{request.param}.pt"
    return export_model(model.double(), path, dtype="float64")


def ase_reference(model_file: Path, atoms: Atoms) -> dict:
    a = atoms.copy()
    a.calc = GNNFFCalculator(model_file)
    return {
        "energy": a.get_potential_energy(),
        "energies": a.get_potential_energies(),
        "forces": a.get_forces(),
        "stress": a.get_stress(),
    }


def compare(res: dict, ref: dict, volume: float, rtol: float = 1e-8) -> None:
    assert "error" not in res, res.get("error")
    assert res["thermo_pe"] == pytest.approx(ref["energy"], rel=rtol)
    np.testing.assert_allclose(np.ravel(res["c_pe"]), ref["energies"], rtol=rtol, atol=1e-12)
    fscale = np.abs(ref["forces"]).max()
    np.testing.assert_allclose(res["f"], ref["forces"], rtol=0, atol=rtol * fscale)
    stress = lf.lammps_pressure_to_ase_stress(res["vir"])
    np.testing.assert_allclose(
        stress, ref["stress"], rtol=0, atol=rtol * np.abs(ref["stress"]).max()
    )


@pytest.mark.parametrize("nprocs", [1, 2])
def test_lammps_equals_ase_triclinic(plugin, model_file, tmp_path, nprocs):
    atoms = lf.sio2_like_cell((2, 2, 2), seed=3)
    lf.write_lammps_data(atoms, tmp_path / "sio2.data", SPECIES)
    spec = {
        "commands": header(tmp_path / "sio2.data")
        + ["pair_style gnnff", f"pair_coeff * * {model_file} O Si", *EVAL],
        "gather": GATHER,
        "computes": ["thermo_pe", "vir:6"],
    }
    compare(
        run(spec, plugin, nprocs, tmp_path), ase_reference(model_file, atoms), atoms.get_volume()
    )


def test_lammps_equals_ase_with_empty_rank(plugin, model_file, tmp_path):
    slab = lf.sio2_like_cell((2, 2, 1), seed=4)
    atoms = Atoms(
        slab.get_chemical_symbols(),
        positions=slab.positions + 8.0,
        cell=np.diag([60.0, 30.0, 30.0]),
        pbc=True,
    )
    lf.write_lammps_data(atoms, tmp_path / "cluster.data", SPECIES)
    spec = {
        "commands": header(tmp_path / "cluster.data", ["processors 2 1 1"])
        + ["pair_style gnnff", f"pair_coeff * * {model_file} O Si", *EVAL],
        "gather": GATHER,
        "computes": ["thermo_pe", "vir:6"],
    }
    res = run(spec, plugin, 2, tmp_path)
    assert sorted(res["nlocal"]) == [0, len(atoms)]
    compare(res, ase_reference(model_file, atoms), atoms.get_volume())
