"""Shared benchmark fixtures: amorphous-like SiO2 cells and untrained exported gnnff models."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CUTOFF = 5.0  # A
SPECIES = ["Si", "O"]
DENSITY = 2.2  # g/cm^3
MIN_DISTANCE = 1.5  # A


def sio2_cell(n_atoms: int, seed: int = 0):
    """Random SiO2 packing (Si:O = 1:2) of ``n_atoms`` atoms in a cubic periodic cell at
    2.2 g/cm^3, every pair >= 1.5 A apart."""
    from gnnff.data.structures import composition_counts, random_packing

    counts = composition_counts({"Si": 1, "O": 2}, n_atoms)
    return random_packing(counts, DENSITY, MIN_DISTANCE, np.random.default_rng(seed))


def build_untrained(family: str = "allegro", seed: int = 0, **overrides):
    """Randomly initialised gnnff model (the default 'small' config unless overridden)."""
    import torch

    from gnnff.potentials import build_model

    torch.manual_seed(seed)
    return build_model({"family": family, "species": SPECIES, "cutoff": CUTOFF, **overrides})


def export_untrained(
    path: str | Path,
    family: str = "allegro",
    dtype: str = "float32",
    softmax: dict | None = None,
    **overrides,
) -> Path:
    """Write an untrained model file (TorchScript, model contract) to ``path``."""
    from gnnff.potentials import export_model

    model = build_untrained(family, **overrides)
    if softmax is not None:
        model.set_softmax_backend(softmax["backend"], softmax.get("bits"))
    return export_model(model, path, dtype=dtype, softmax=softmax)


def jiggle(atoms, base: np.ndarray, rng: np.random.Generator, amp: float = 1e-3) -> None:
    """Move every atom of ``atoms`` by a fresh random offset (<= ``amp`` A per axis) from
    ``base`` so that no result can be reused between calls."""
    atoms.set_positions(base + rng.uniform(-amp, amp, base.shape))
