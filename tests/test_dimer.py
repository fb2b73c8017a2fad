"""`gnnff dimer`: isolated-dimer curves and the short-range wall against the training data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gnnff.calculators import GNNFFCalculator
from gnnff.calculators.dimer import dimer_curves, wall_heights
from gnnff.cli import main
from gnnff.potentials import build_model, export_model
from gnnff.stability import StabilityReference


@pytest.fixture(scope="module")
def zbl_model(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(
        {
            "family": "allegro",
            "species": ["O", "Si"],
            "cutoff": 4.0,
            "num_scalar": 8,
            "num_tensor": 2,
            "mlp_hidden": [8],
            "zbl": True,
        }
    )
    for p in model.parameters():  # near-flat learned part: the ZBL prior dominates up close
        p.data.mul_(0.01)
    ref = StabilityReference(
        pair_min_distances={"O-O": 2.2, "O-Si": 1.5, "Si-Si": 2.6}, species=["O", "Si"], n_frames=1
    )
    path = tmp_path_factory.mktemp("dimer") / "zbl.pt"
    export_model(model, path, training_summary={"stability_reference": ref.to_dict()})
    return path


def test_curves_match_single_point_energies(zbl_model):
    calc = GNNFFCalculator(zbl_model)
    r = np.array([0.6, 1.2, 4.0])
    curves = dimer_curves(calc, ["O", "Si"], r)
    assert set(curves) == {"O-O", "O-Si", "Si-Si"}
    from ase import Atoms

    far = Atoms("OSi", positions=[[0, 0, 0], [4.0, 0, 0]])
    near = Atoms("OSi", positions=[[0, 0, 0], [0.6, 0, 0]])
    far.calc = near.calc = calc
    expected = near.get_potential_energy() - far.get_potential_energy()
    assert curves["O-Si"][0] == pytest.approx(expected, rel=1e-10)
    assert curves["O-Si"][-1] == 0.0
    # the screened-nuclear prior: strongly repulsive at 0.6 A for every pair
    assert all(e[0] > 10.0 for e in curves.values())


def test_wall_heights_by_hand():
    r = np.array([1.0, 2.0, 3.0])
    curves = {"A-B": np.array([4.0, 2.0, 0.0])}  # linear: E = 6 - 2 r
    walls = wall_heights(curves, r, {"A-B": 2.0, "C-D": 1.0})
    assert walls == {"A-B": pytest.approx((6 - 2 * 1.5) - (6 - 2 * 2.0))}
    # 0.75 x 1.2 A lies below the sampled range: no extrapolated (clamped) value
    assert np.isnan(wall_heights(curves, r, {"A-B": 1.2})["A-B"])


def test_dimer_cli(zbl_model, tmp_path, capsys):
    assert (
        main(
            [
                "dimer",
                "--model",
                str(zbl_model),
                "--r-min",
                "0.6",
                "--points",
                "12",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "dimer.json").read_text())
    assert len(data["r"]) == 12 and data["r"][-1] == pytest.approx(4.0)
    assert set(data["wall_eV"]) == {"O-O", "O-Si", "Si-Si"}
    assert (tmp_path / "dimer.png").stat().st_size > 0
    assert "wall" in capsys.readouterr().out
    assert main(["dimer", "--model", str(zbl_model), "--r-min", "5", "--out", str(tmp_path)]) == 2
