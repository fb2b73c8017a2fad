"""The neighbour list on the model's device (vesin-torch, ``gnnff[gpu]``): the same edges as the
host list, the same calculator results, and clear errors without vesin-torch. The code path is
exercised on CPU tensors here; on CUDA it is measured by benchmarks/device_check.sh."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from gnnff.calculators import GNNFFCalculator
from gnnff.data.structures import composition_counts, random_packing
from gnnff.errors import MissingExtraError, UsageError
from gnnff.potentials import build_model, export_model
from gnnff.potentials.neighbors import device_neighbor_list, neighbor_list

CUTOFF = 4.0


def _structures() -> dict[str, Atoms]:
    rng = np.random.default_rng(3)
    packed = random_packing(composition_counts({"Si": 1, "O": 2}, 30), 2.2, 1.5, rng)
    tilted = packed.copy()
    cell = tilted.cell.array.copy()
    cell[1, 0], cell[2, 1] = 0.3 * cell[0, 0], -0.2 * cell[1, 1]
    tilted.set_cell(cell, scale_atoms=True)
    slab = packed.copy()
    slab.pbc = [True, True, False]
    cluster = packed.copy()
    cluster.pbc = False
    small = bulk("Si", "diamond", a=5.43)  # cell < 2 cutoffs: self-images
    return {"periodic": packed, "triclinic": tilted, "slab": slab, "cluster": cluster,
            "small cell": small}  # fmt: skip


def _edge_set(edge_index: np.ndarray, shift: np.ndarray) -> list[tuple]:
    return sorted(
        (int(i), int(j), *np.round(s, 9).tolist())
        for i, j, s in zip(edge_index[0], edge_index[1], shift, strict=True)
    )


@pytest.mark.parametrize("name", list(_structures()))
def test_device_list_has_the_host_lists_edges(name):
    pytest.importorskip("vesin_torch")
    atoms = _structures()[name]
    ei, sh = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, CUTOFF)
    ei_t, sh_t = device_neighbor_list(
        atoms.positions, atoms.cell.array, atoms.pbc, CUTOFF, torch.device("cpu")
    )
    assert ei_t.dtype == torch.int64 and sh_t.dtype == torch.float64
    assert ei.shape[1] > len(atoms)  # not an empty comparison
    assert _edge_set(ei_t.numpy(), sh_t.numpy()) == _edge_set(ei, sh)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    cfg = {"family": "allegro", "species": ["Si", "O"], "cutoff": CUTOFF, "num_layers": 2,
           "num_scalar": 16, "num_tensor": 4, "mlp_hidden": [16]}  # fmt: skip
    path = tmp_path_factory.mktemp("devnl") / "allegro.pt"
    return export_model(build_model(cfg).double(), path, dtype="float64")


@pytest.mark.parametrize("name", ["triclinic", "slab"])
def test_calculator_results_equal_host_list(model_file, name):
    pytest.importorskip("vesin_torch")
    atoms = _structures()[name]
    results = []
    for on_device in (False, True):
        calc = GNNFFCalculator(model_file, device_neighbor_list=on_device)
        assert calc.device_neighbor_list is on_device
        calc.calculate(atoms.copy(), ["energy", "forces"])
        results.append(calc.results)
    host, dev = results
    assert abs(dev["energy"] - host["energy"]) <= 1e-10 * max(1.0, abs(host["energy"]))
    np.testing.assert_allclose(dev["forces"], host["forces"], rtol=0, atol=1e-10)
    if "stress" in host:
        np.testing.assert_allclose(dev["stress"], host["stress"], rtol=0, atol=1e-12)


def test_device_list_finds_coincident_atoms(model_file):
    pytest.importorskip("vesin_torch")
    atoms = _structures()["periodic"]
    atoms.positions[5] = atoms.positions[2]
    calc = GNNFFCalculator(model_file, device_neighbor_list=True)
    with pytest.raises(UsageError, match="atoms 2 and 5 are at the same place|atoms 5 and 2"):
        calc.calculate(atoms, ["energy"])


def test_cpu_default_is_the_host_list(model_file):
    assert GNNFFCalculator(model_file).device_neighbor_list is False


def test_without_vesin_torch_the_error_names_the_extra(model_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "vesin_torch", None)  # import fails as if not installed
    with pytest.raises(MissingExtraError, match=r"gnnff\[gpu\]"):
        GNNFFCalculator(model_file, device_neighbor_list=True)
    with pytest.raises(MissingExtraError, match=r"gnnff\[gpu\]"):
        device_neighbor_list(np.zeros((2, 3)), np.eye(3) * 5, True, 2.0, torch.device("cpu"))


def test_device_neighbor_list_option_is_checked(model_file):
    with pytest.raises(UsageError, match="device_neighbor_list must be True, False or None"):
        GNNFFCalculator(model_file, device_neighbor_list="yes")
