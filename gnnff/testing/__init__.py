"""Reusable model tests (issue 18): the physics checks gnnff runs on its own model families,
shipped so that an extension package can run them on its models.

* :mod:`gnnff.testing.checks`: functions on any model that follows the model contract
  (``ContractModel``): contract outputs, finite-difference forces and virial, equivariance,
  permutation invariance, strict locality, cutoff smoothness, TorchScript == eager.
* :class:`ModelContractTests`: the same as a pytest mixin; subclass it with ``make_model``.
* :mod:`gnnff.testing.structures`: small reproducible test structures.

Imports torch, numpy and ASE; nothing in gnnff's runtime imports this package.
"""

from gnnff.testing.checks import (
    ContractModel,
    check_cutoff_smoothness,
    check_forces_finite_difference,
    check_locality,
    check_outputs,
    check_permutation_invariance,
    check_rotation_equivariance,
    check_scripted_matches_eager,
    check_virial_strain_derivative,
)
from gnnff.testing.mixins import ModelContractTests
from gnnff.testing.structures import random_cell, random_cluster

__all__ = [
    "ContractModel",
    "ModelContractTests",
    "check_cutoff_smoothness",
    "check_forces_finite_difference",
    "check_locality",
    "check_outputs",
    "check_permutation_invariance",
    "check_rotation_equivariance",
    "check_scripted_matches_eager",
    "check_virial_strain_derivative",
    "random_cell",
    "random_cluster",
]
