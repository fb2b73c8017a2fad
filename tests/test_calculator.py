"""ASE calculator: exact derivatives, symmetry, agreement with the module, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from gnnff.calculators import GNNFFCalculator, load_pretrained
from gnnff.data.structures import composition_counts, random_packing
from gnnff.lammps.geometry import lammps_cell
from gnnff.potentials import build_model, export_model


def sio2_cell(n_atoms: int, seed: int, tilt: bool = True) -> Atoms:
    rng = np.random.default_rng(seed)
    atoms = random_packing(composition_counts({"Si": 1, "O": 2}, n_atoms), 2.2, 1.5, rng)
    if tilt:  # a triclinic cell of the same density
        cell = atoms.cell.array.copy()
        cell[1, 0] = 0.3 * cell[0, 0]
        cell[2, 0], cell[2, 1] = -0.2 * cell[0, 0], 0.15 * cell[1, 1]
        atoms.set_cell(cell, scale_atoms=True)
    return lammps_cell(atoms)


@pytest.fixture(scope="module", params=["allegro", "allegro-attn"])
def model_file(request, tmp_path_factory):
    torch.manual_seed(0)
    cfg = {
        "family": request.param,
        "species": ["Si", "O"],
        "cutoff": 4.0,
        "num_layers": 2,
        "num_scalar": 16,
        "num_tensor": 4,
        "mlp_hidden": [16],
    }
    model = build_model(cfg).double()
    # random but non-trivial per-species shift and scale
    model.set_species_shift_scale(torch.tensor([-5.0, -3.0]), torch.tensor([1.5, 0.7]))
    path = tmp_path_factory.mktemp("calc") / f"{request.param}.pt"
    export_model(model, path, dtype="float64")
    return path


def test_forces_and_stress_match_finite_differences(model_file):
    calc = GNNFFCalculator(model_file)
    # 24 atoms at 2.2 g/cm3: cell edges ~7.9 A < 2 x cutoff, so many periodic images
    for atoms in (sio2_cell(24, 1),):
        atoms.calc = calc
        f = atoms.get_forces()
        assert np.abs(f).max() > 1e-3, "degenerate model: forces vanish"
        f_num = calculate_numerical_forces(atoms, eps=1e-3)
        np.testing.assert_allclose(f, f_num, atol=2e-6 * max(1.0, np.abs(f).max()))
        s = atoms.get_stress()
        s_num = calculate_numerical_stress(atoms, eps=1e-5)
        np.testing.assert_allclose(s, s_num, atol=2e-7 * max(1.0, np.abs(s).max() * 1e3))
        assert np.isclose(atoms.get_potential_energy(), atoms.get_potential_energies().sum())


def test_rotation_rotates_forces_and_stress(model_file):
    atoms = sio2_cell(48, 3)
    atoms.calc = GNNFFCalculator(model_file)
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
    rot = atoms.copy()
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rot.set_cell(atoms.cell.array @ q.T, scale_atoms=True)
    rot.calc = GNNFFCalculator(model_file)
    assert np.isclose(rot.get_potential_energy(), e, atol=1e-9)
    np.testing.assert_allclose(rot.get_forces(), f @ q.T, atol=1e-9)
    np.testing.assert_allclose(rot.get_stress(voigt=False), q @ s @ q.T, atol=1e-10)


def test_equals_calling_the_module(model_file):
    from gnnff.potentials import load
    from gnnff.potentials.neighbors import neighbor_list

    atoms = sio2_cell(48, 4)
    calc = GNNFFCalculator(model_file)
    atoms.calc = calc
    module, meta = load(model_file)
    ei, sh = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, meta["cutoff"])
    idx = {s: k for k, s in enumerate(meta["species"])}
    species = torch.tensor([idx[s] for s in atoms.get_chemical_symbols()])
    out = module(
        torch.tensor(atoms.positions), species, torch.tensor(ei), torch.tensor(sh), len(atoms)
    )
    assert abs(atoms.get_potential_energy() - float(out["energy"])) < 1e-10
    np.testing.assert_allclose(atoms.get_forces(), out["forces"].numpy(), atol=1e-10)
    np.testing.assert_allclose(
        atoms.get_stress(voigt=False), -out["virial"].numpy() / atoms.get_volume(), atol=1e-12
    )


def test_open_and_mixed_boundaries_agree_with_big_box(model_file):
    atoms = sio2_cell(24, 5, tilt=False)
    mol = atoms[:12]
    mol.center(vacuum=0.0)
    mol.set_cell(np.eye(3) * 40.0)
    mol.pbc = True
    mol.center()
    mol.calc = GNNFFCalculator(model_file)
    e_box = mol.get_potential_energy()
    f_box = mol.get_forces()
    for pbc in ([False] * 3, [True, False, False]):
        m = mol.copy()
        m.pbc = pbc
        m.calc = GNNFFCalculator(model_file)
        assert abs(m.get_potential_energy() - e_box) < 1e-10
        np.testing.assert_allclose(m.get_forces(), f_box, atol=1e-10)
    m = mol.copy()
    m.pbc = False
    m.calc = GNNFFCalculator(model_file)
    with pytest.raises(PropertyNotImplementedError):
        m.get_stress()


def test_float32_close_to_float64(model_file):
    atoms = sio2_cell(48, 6)
    atoms.calc = GNNFFCalculator(model_file)
    f64 = atoms.get_forces()
    a32 = atoms.copy()
    a32.calc = GNNFFCalculator(model_file, dtype="float32")
    np.testing.assert_allclose(a32.get_forces(), f64, atol=1e-4 * max(1, np.abs(f64).max()))


def test_bad_input_is_clear(model_file, tmp_path):
    calc = GNNFFCalculator(model_file)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a gnnff model"):
        GNNFFCalculator(junk)
    with pytest.raises(FileNotFoundError):
        GNNFFCalculator(tmp_path / "missing.pt")
    hf = sio2_cell(24, 7)
    hf[0].symbol = "Hf"
    with pytest.raises(ValueError, match="Hf"):
        calc.get_potential_energy(hf)
    nan = sio2_cell(24, 7)
    nan.positions[3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        calc.get_potential_energy(nan)
    dup = sio2_cell(24, 7)
    dup.positions[5] = dup.positions[2]
    with pytest.raises(ValueError, match="same place"):
        calc.get_potential_energy(dup)
    with pytest.raises(ValueError, match="empty"):
        calc.get_potential_energy(Atoms())
    with pytest.raises(ValueError, match="float32 or float64"):
        GNNFFCalculator(model_file, dtype="float16")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            GNNFFCalculator(model_file, device="cuda")
    with pytest.raises(ValueError, match="no bundled model"):
        load_pretrained("no-such-model")


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        ),
    ],
)
def test_out_of_memory_names_size_and_the_option_that_bounds_it(error):
    """An allocation failure (CUDA or CPU) becomes a MemoryError that names the system size and
    max_block_edges; any other RuntimeError passes through unchanged."""
    calc = load_pretrained("sio2-allegro-baseline")
    atoms = sio2_cell(48, seed=3)

    class Failing(torch.nn.Module):
        def __init__(self, exc):
            super().__init__()
            self.exc = exc

        def forward(self, *args):
            raise self.exc

    calc.module = Failing(error)
    atoms.calc = calc
    with pytest.raises(MemoryError, match=r"48 atoms \(\d+ edges within 5.0 A\).*max_block_edges"):
        atoms.get_forces()
    calc.module = Failing(RuntimeError("shape mismatch"))
    calc.reset()
    with pytest.raises(RuntimeError, match="shape mismatch"):
        atoms.get_forces()
