"""GNNFFCalculator pickles (by model path, or by TorchScript bytes for an in-memory module)
and computes in a ``spawn`` worker exactly what it computes here."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnff.calculators import GNNFFCalculator
from gnnff.calculators.ase_calculator import CPU_BLOCK_EDGES, cpu_block_edges
from gnnff.potentials import build_model, export_model, load
from gnnff.testing.synthetic import random_sio2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from block_cases import BLOCK_CASES  # noqa: E402


def _forces(atoms):
    return atoms.get_potential_energy(), atoms.get_forces()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    m = build_model(
        {
            "family": "allegro",
            "species": ["O", "Si"],
            "cutoff": 4.0,
            "num_layers": 1,
            "num_scalar": 8,
            "num_tensor": 4,
            "mlp_hidden": [8],
        }
    )
    return export_model(m.double(), tmp_path_factory.mktemp("pk") / "m.pt", dtype="float64")


@pytest.fixture
def atoms():
    return random_sio2(3, density=2.2, rng=np.random.default_rng(2))


@pytest.mark.parametrize("how", ["path", "module"])
def test_pickle_roundtrip(model_path, atoms, how):
    calc = GNNFFCalculator(model_path if how == "path" else load(model_path))
    atoms.calc = calc
    e, f = _forces(atoms)
    clone = pickle.loads(pickle.dumps(atoms))
    assert isinstance(clone.calc, GNNFFCalculator)
    clone.calc.reset()
    e2, f2 = _forces(clone)
    assert e2 == e
    np.testing.assert_array_equal(f2, f)


def test_forces_in_spawn_worker(model_path, atoms):
    atoms.calc = GNNFFCalculator(model_path)
    e, f = _forces(atoms)
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        ((e2, f2),) = pool.map(_forces, [atoms])
    assert e2 == pytest.approx(e, rel=1e-12)
    np.testing.assert_allclose(f2, f, rtol=0, atol=1e-12)


def test_unpickle_without_the_file_says_so(model_path, atoms, tmp_path):
    import shutil

    moved = shutil.copy(model_path, tmp_path / "gone.pt")
    atoms.calc = GNNFFCalculator(moved)
    blob = pickle.dumps(atoms)
    (tmp_path / "gone.pt").unlink()
    with pytest.raises(FileNotFoundError, match="gone.pt is not there"):
        pickle.loads(blob)


@pytest.mark.parametrize(
    "family,extra", [("allegro", {}), ("allegro-attn", {}), ("allegro", {"zbl": True})]
)
def test_edge_blocks_give_the_one_pass_result(tmp_path, atoms, family, extra):
    """Energy, forces and stress computed block by block equal the one-pass values, and the
    setting survives pickling."""
    torch.manual_seed(3)
    m = build_model(
        {
            "family": family,
            "species": ["O", "Si"],
            "cutoff": 4.0,
            "num_layers": 2,
            "num_scalar": 8,
            "num_tensor": 4,
            "mlp_hidden": [8],
            **extra,
        }
    )
    path = export_model(m.double(), tmp_path / "m.pt", dtype="float64")
    ref = atoms.copy()
    ref.calc = GNNFFCalculator(path, max_block_edges=0)
    assert ref.calc.module.max_block_edges == 0
    default = GNNFFCalculator(path)  # the CPU default: sized by the model's width and dtype
    hp = default.metadata["hyperparameters"]
    assert default.module.max_block_edges == cpu_block_edges(hp, torch.float64)
    blk = atoms.copy()
    blk.calc = GNNFFCalculator(path, max_block_edges=30)
    n_edges = blk.calc.model_inputs(blk)["edge_index"].shape[1]
    assert n_edges > 4 * 30  # several blocks
    assert blk.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(blk.get_forces(), ref.get_forces(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(blk.get_stress(), ref.get_stress(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        blk.get_potential_energies(), ref.get_potential_energies(), rtol=0, atol=1e-12
    )
    clone = pickle.loads(pickle.dumps(blk))
    assert clone.calc.module.max_block_edges == 30
    with pytest.raises(ValueError, match="max_block_edges must be an integer >= 0"):
        GNNFFCalculator(path, max_block_edges=-1)


@pytest.mark.parametrize("hp,dtype,edges", BLOCK_CASES)
def test_cpu_block_default_bounds_the_bytes_of_a_block(hp, dtype, edges):
    """The CPU block size keeps the widest per-edge tensor of a block near CPU_BLOCK_BYTES:
    20,000 edges for the default float32 width of 64 (CPU_BLOCK_EDGES), half for float64 or
    a model twice as wide."""
    assert cpu_block_edges(hp, getattr(torch, dtype)) == edges
    assert CPU_BLOCK_EDGES == 20000
