"""The shipped model test suite (gnnff.testing) on every model family and softmax backend, and
its check functions on the contract's toy model; plus proof that the checks can fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from gnnff.extensions import MODELS
from gnnff.potentials import build_model
from gnnff.testing import (
    ContractModel,
    ModelContractTests,
    check_forces_finite_difference,
    check_locality,
    check_outputs,
    check_rotation_equivariance,
    check_virial_strain_derivative,
    random_cell,
    random_cluster,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lammps_fixtures as lf  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def small_model(family: str, **over: object) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = {"family": family, "species": ["O", "Si"], "cutoff": 3.5, "num_layers": 2,
           "num_scalar": 8, "num_tensor": 4, "mlp_hidden": [8], "num_bessel": 4,
           "species_embed_dim": 4, "avg_num_neighbors": 8.0, **over}  # fmt: skip
    model = build_model(cfg)
    model.set_species_shift_scale(torch.tensor([-4.0, -7.5]), torch.tensor([1.3, 0.7]))
    with torch.no_grad():  # non-trivial tensor-product paths
        for layer in model.layers:
            layer.tp.path_weight.normal_()
    return model.double().eval()


def test_every_family_has_a_suite_below():
    covered = {TestAllegro.family, TestAllegroAttn.family}
    assert covered == set(MODELS.builtin_names()), "add a ModelContractTests subclass for it"


class TestAllegro(ModelContractTests):
    family = "allegro"

    def make_model(self):
        return small_model(self.family)


class TestAllegroZBL(ModelContractTests):
    def make_model(self):
        return small_model("allegro", zbl=True, zbl_r_on=1.0, zbl_r_off=2.0)


class TestAllegroAttn(ModelContractTests):
    family = "allegro-attn"

    def make_model(self):
        return small_model(self.family, attn_heads=2)


class TestAllegroAttnLUTRexp8(ModelContractTests):
    # forward = bit-exact LUT codes, gradient = float softmax Jacobian (straight-through): the
    # energy is piecewise constant in the logits, so finite differences do not apply
    exact_gradients = False
    equivariance_atol = 1e-6

    def make_model(self):
        return small_model("allegro-attn", attn_heads=2,
                           softmax={"backend": "lut-rexp", "bits": 8})  # fmt: skip


class TestAllegroAttnLUT2D16(TestAllegroAttnLUTRexp8):
    def make_model(self):
        return small_model("allegro-attn", attn_heads=2, softmax={"backend": "lut-2d", "bits": 16})


# ------------------------------------------------------------------ the checks themselves
@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> ContractModel:
    from gnnff.potentials import load

    module, meta = load(lf.write_toy_model(tmp_path_factory.mktemp("toy") / "toy.pt"))
    return ContractModel(module, meta["species"], meta["cutoff"])


def test_checks_pass_on_the_contracts_toy_model(toy):
    atoms = random_cell(["Si"] * 3 + ["O"] * 6, seed=4)
    check_outputs(toy, atoms)
    check_forces_finite_difference(toy, atoms, atoms_to_check=[0, 4])
    check_virial_strain_derivative(toy, atoms)
    check_rotation_equivariance(toy, atoms)
    check_locality(toy, random_cluster(["Si"] * 4 + ["O"] * 6, box=9.0))


class _Broken(torch.nn.Module):
    """Wraps a contract model and breaks one property."""

    def __init__(self, inner: torch.nn.Module, how: str) -> None:
        super().__init__()
        self.inner, self.how = inner, how

    def forward(self, pos, species, edge_index, edge_shift, n_local: int):
        out = dict(self.inner(pos, species, edge_index, edge_shift, n_local))
        if self.how == "forces":
            out["forces"] = 1.01 * out["forces"]
        elif self.how == "frame":  # depends on the absolute x axis
            out["atomic_energy"] = out["atomic_energy"] + 1e-3 * pos[:n_local, 0].sin()
        elif self.how == "range":  # atom 0 sees every atom, however far
            extra = 1e-3 * (pos - pos[0]).norm(dim=1).sum()
            out["atomic_energy"] = out["atomic_energy"] + torch.nn.functional.one_hot(
                torch.tensor(0), n_local).to(pos.dtype) * extra  # fmt: skip
        elif self.how == "virial":
            out["virial"] = out["virial"] + torch.eye(3, dtype=pos.dtype)
        return out


@pytest.mark.parametrize("how, check, match", [
    ("forces", "fd", "forces differ"),
    ("virial", "virial", "virial differs"),
    ("frame", "equivariance", "not equivariant"),
    ("range", "locality", "beyond the cutoff"),
])  # fmt: skip
def test_checks_catch_broken_models(toy, how, check, match):
    broken = ContractModel(_Broken(toy.forward, how), toy.species, toy.cutoff)
    atoms = random_cell(["Si"] * 3 + ["O"] * 6, seed=4)
    run = {
        "fd": lambda: check_forces_finite_difference(broken, atoms, atoms_to_check=[0]),
        "virial": lambda: check_virial_strain_derivative(broken, atoms),
        "equivariance": lambda: check_rotation_equivariance(broken, atoms),
        "locality": lambda: check_locality(broken, random_cluster(["Si"] * 4 + ["O"] * 6,
                                                                  box=9.0)),
    }[check]  # fmt: skip
    with pytest.raises(AssertionError, match=match):
        run()
