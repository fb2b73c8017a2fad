"""``ModelContractTests``: the physics test suite of a model family as a pytest mixin.

An extension package (or this project, tests/test_model_contract_suite.py) subclasses it once
per model variant and provides :meth:`ModelContractTests.make_model`::

    from gnnff.testing import ModelContractTests

    class TestMyFamily(ModelContractTests):
        def make_model(self):
            return build_model({"family": "my-family", "species": ["O", "Si"], ...})

pytest then runs every ``test_*`` method below on it: contract outputs, forces and virial as
energy derivatives, rotation/reflection/translation equivariance, permutation invariance,
strict locality, a smooth cutoff and TorchScript == eager (through the model file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gnnff.testing import checks
from gnnff.testing.structures import random_cell, random_cluster


class ModelContractTests:
    """Mixin; subclasses set :meth:`make_model` and may change the class attributes.

    ``exact_gradients``: False for models whose forward is not differentiable as evaluated
    (e.g. a LUT softmax with a straight-through gradient): skips the finite-difference checks.
    ``equivariance_atol``: relative tolerance of the equivariance check (looser for quantised
    models, whose codes may flip at a rounding boundary).
    ``formula``: (symbol, count) of the periodic test cell (its first 10 atoms make the
    cluster of the locality check).
    """

    exact_gradients: bool = True
    equivariance_atol: float = 1e-10
    fd_atoms: int | None = None  # atoms checked by finite differences (None: all)
    formula: tuple[tuple[str, int], ...] = (("Si", 4), ("O", 8))

    def make_model(self) -> Any:
        """A float64 eager ``GNNFFModel`` (anything :func:`gnnff.potentials.export_model`
        exports) in eval mode."""
        raise NotImplementedError("subclasses of ModelContractTests define make_model()")

    # ----------------------------------------------------------------- helpers
    def contract_model(self) -> checks.ContractModel:
        from gnnff.potentials import ExportedModel

        model = self.make_model()
        dtype = next(model.parameters()).dtype
        return checks.ContractModel(ExportedModel(model), list(model.species),
                                    float(model.cutoff), dtype)  # fmt: skip

    def symbols(self) -> list[str]:
        return [s for s, n in self.formula for _ in range(n)]

    def cell(self) -> Any:
        return random_cell(self.symbols())

    def cluster(self) -> Any:
        return random_cluster(self.symbols()[:10])

    # ----------------------------------------------------------------- tests
    def test_outputs_follow_the_contract(self) -> None:
        checks.check_outputs(self.contract_model(), self.cell())

    def _needs_exact_gradients(self) -> None:
        if not self.exact_gradients:
            import pytest

            pytest.skip("forward not differentiable as evaluated (exact_gradients = False)")

    def test_forces_are_minus_energy_gradient(self) -> None:
        self._needs_exact_gradients()
        atoms = self.cell()
        which = None if self.fd_atoms is None else list(range(self.fd_atoms))
        checks.check_forces_finite_difference(self.contract_model(), atoms, atoms_to_check=which)

    def test_virial_is_strain_derivative(self) -> None:
        self._needs_exact_gradients()
        checks.check_virial_strain_derivative(self.contract_model(), self.cell())

    def test_equivariance(self) -> None:
        checks.check_rotation_equivariance(
            self.contract_model(), self.cell(), atol=self.equivariance_atol
        )

    def test_permutation_invariance(self) -> None:
        checks.check_permutation_invariance(self.contract_model(), self.cell())

    def test_strict_locality(self) -> None:
        checks.check_locality(self.contract_model(), self.cluster())

    def test_smooth_cutoff(self) -> None:
        self._needs_exact_gradients()
        checks.check_cutoff_smoothness(self.contract_model())

    def test_torchscript_file_matches_eager(self, tmp_path: Path) -> None:
        from gnnff.potentials import export_model, load

        eager = self.contract_model()
        model = self.make_model()
        dtype = "float64" if eager.dtype == torch.float64 else "float32"
        scripted, meta = load(export_model(model, tmp_path / "model.pt", dtype=dtype))
        assert meta["family"] == model.family
        checks.check_scripted_matches_eager(eager, scripted, self.cell())
