"""The per-pair short-range prior: windows, strengths, post-hoc attachment, fit, export."""

import ase.io
import numpy as np
import pytest
import torch

from gnnff.potentials import ExportedModel, build_model, eager_from_file, export_model
from gnnff.potentials.analysis.short_range import (
    auto_windows,
    fit_pair_scale,
    prior_pair_energy,
    with_short_range_prior,
)

SP = ["O", "Si"]
PAIR_MIN = {"O-O": 2.3, "O-Si": 1.5, "Si-Si": 2.6}


def model(**over):
    torch.manual_seed(0)
    cfg = {
        "family": "allegro",
        "species": SP,
        "cutoff": 4.0,
        "num_layers": 1,
        "num_scalar": 8,
        "num_tensor": 2,
        "mlp_hidden": [8],
        "avg_num_neighbors": 4.0,
        **over,
    }
    return build_model(cfg).double().eval()


def dimer_energy(m, a: str, b: str, r: float) -> float:
    em = ExportedModel(m)
    pos = torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0]], dtype=torch.float64)
    ei = torch.tensor([[0, 1], [1, 0]])
    out = em(pos, torch.tensor([SP.index(a), SP.index(b)]), ei, torch.zeros(2, 3), 2)
    return float(out["energy"])


def smoothstep_off(r, on, off):
    t = np.clip((r - on) / (off - on), 0, 1)
    return 1 - t**3 * (10 - 15 * t + 6 * t**2)


def test_per_pair_window_and_strength_are_the_definition():
    m0 = model(zbl=False)
    m1 = model(zbl=True, zbl_pair_windows={"Si-Si": [1.5, 2.5]}, zbl_pair_scale={"Si-O": 0.5})
    assert m1.config["zbl_pair_scale"] == {"O-Si": 0.5}  # canonical pair keys
    ref = model(zbl=True)  # global window 1-2 A, strength 1
    for r in (1.2, 1.8, 2.3, 2.6):
        # Si-Si: own window; the prior energy is ZBL(r) * switch(r)
        d = dimer_energy(m1, "Si", "Si", r) - dimer_energy(m0, "Si", "Si", r)
        zbl = prior_pair_energy(
            model(zbl=True, zbl_pair_windows={"Si-Si": [0.0, 3.9]}), "Si-Si", np.array([r])
        )[0] / smoothstep_off(r, 0.0, 3.9)
        assert d == pytest.approx(zbl * smoothstep_off(r, 1.5, 2.5), rel=1e-10, abs=1e-14)
        # O-Si: global window, half strength; O-O: untouched global prior
        d_osi = dimer_energy(m1, "O", "Si", r) - dimer_energy(m0, "O", "Si", r)
        d_ref = dimer_energy(ref, "O", "Si", r) - dimer_energy(m0, "O", "Si", r)
        assert d_osi == pytest.approx(0.5 * d_ref, rel=1e-10, abs=1e-14)
        assert dimer_energy(m1, "O", "O", r) == pytest.approx(
            dimer_energy(ref, "O", "O", r), abs=1e-12
        )


def test_bad_tables():
    with pytest.raises(ValueError, match="'A-B'"):
        model(zbl=True, zbl_pair_windows={"Si-C": [1.0, 2.0]})
    with pytest.raises(ValueError, match="r_on < r_off"):
        model(zbl=True, zbl_pair_windows={"Si-Si": [2.0, 1.0]})
    with pytest.raises(ValueError, match="beyond the cutoff"):
        model(zbl=True, zbl_pair_windows={"Si-Si": [2.0, 4.5]})
    with pytest.raises(ValueError, match=">= 0"):
        model(zbl=True, zbl_pair_scale={"Si-Si": -1})
    with pytest.raises(ValueError, match="derived from the training set"):
        model(zbl=True, zbl_pair_windows="auto")


def test_auto_windows():
    w = auto_windows({"O-Si": 1.45, "Si-Si": 2.217, "C-C": 1.2}, SP, on_fraction=0.65)
    assert w == {"O-Si": [pytest.approx(0.9425), 1.45], "Si-Si": [pytest.approx(1.44105), 2.217]}
    with pytest.raises(ValueError, match="on_fraction"):
        auto_windows(PAIR_MIN, SP, 1.2)


@pytest.mark.parametrize("zbl", [True, False])
def test_post_hoc_prior_leaves_training_distances_unchanged(zbl):
    m = model(zbl=zbl)
    new, changed = with_short_range_prior(m, PAIR_MIN, scale={"Si-Si": 2.0})
    # with the global 1-2 A window on, only pairs with d_min >= 2 A may be widened
    assert changed == (["O-O", "Si-Si"] if zbl else ["O-O", "O-Si", "Si-Si"])
    assert new.use_zbl
    for (a, b), dmin in (((SP[0], SP[0]), 2.3), ((SP[0], SP[1]), 1.5), ((SP[1], SP[1]), 2.6)):
        for r in (dmin, dmin + 0.3, 3.5):  # at and above the training data's closest approach
            assert dimer_energy(new, a, b, r) == pytest.approx(dimer_energy(m, a, b, r), abs=1e-12)
    # below d_min(Si-Si) the new prior pushes: repulsion over the whole [0.65 d, d] window
    r = 0.65 * 2.6 + 0.1
    assert dimer_energy(new, "Si", "Si", r) - dimer_energy(m, "Si", "Si", r) > 1.0
    if not zbl:  # pairs without a training distance stay off
        m2, _ = with_short_range_prior(m, {"Si-Si": 2.6})
        assert dimer_energy(m2, "O", "O", 0.9) == pytest.approx(
            dimer_energy(m, "O", "O", 0.9), abs=1e-12
        )


def test_fit_recovers_strength():
    r = np.linspace(1.5, 2.5, 11)
    m = model(zbl=True, zbl_pair_windows={"Si-Si": [1.4, 2.6]})
    p = prior_pair_energy(m, "Si-Si", r)
    base = np.sin(r)
    assert fit_pair_scale(base + 1.7 * p, base, p) == pytest.approx(1.7)
    assert fit_pair_scale(base - p, base, p) == 0.0
    with pytest.raises(ValueError, match="zero at every"):
        fit_pair_scale(base, base, np.zeros_like(r))


def test_export_round_trip_keeps_windows(tmp_path):
    m = model(zbl=True, zbl_pair_windows={"Si-Si": [1.4, 2.6]}, zbl_pair_scale={"Si-Si": 3.0})
    export_model(m, tmp_path / "m.pt", dtype="float64")
    back = eager_from_file(tmp_path / "m.pt")
    assert back.config["zbl_pair_windows"] == {"Si-Si": [1.4, 2.6]}
    for r in (1.3, 2.0):
        assert dimer_energy(back, "Si", "Si", r) == pytest.approx(
            dimer_energy(m, "Si", "Si", r), abs=1e-12
        )


def test_trainer_resolves_auto_windows(tmp_path):
    from gnnff.testing.synthetic import make_dataset
    from gnnff.training.config import validate_config
    from gnnff.training.trainer import Trainer

    frames = make_dataset(4, seed=3, n_formula=3)
    ase.io.write(tmp_path / "t.extxyz", frames)
    cfg = validate_config(
        {
            "data": {"train": str(tmp_path / "t.extxyz"), "valid": str(tmp_path / "t.extxyz")},
            "model": {
                "cutoff": 4.0,
                "num_layers": 1,
                "num_scalar": 8,
                "num_tensor": 2,
                "mlp_hidden": [8],
                "zbl": True,
                "zbl_pair_windows": "auto",
            },
            "training": {"epochs": 1, "progress": False},
        }
    )
    tr = Trainer(cfg, tmp_path / "run", log=lambda s: None)
    windows = tr.model.config["zbl_pair_windows"]
    dmin = tr.stability_reference["pair_min_distances"]
    assert set(windows) == set(dmin)
    for pair, (on, off) in windows.items():
        assert off == pytest.approx(dmin[pair]) and on == pytest.approx(0.65 * dmin[pair])
