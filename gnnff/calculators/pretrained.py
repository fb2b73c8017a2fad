"""Bundled trained models, loaded by registry name."""

from __future__ import annotations

from gnnff.potentials.bundled import PRETRAINED_DIR, available_pretrained, pretrained_path

__all__ = ["PRETRAINED_DIR", "available_pretrained", "load_pretrained", "pretrained_path"]


def load_pretrained(name: str, device: str = "cpu", dtype: str | None = None):
    """ASE calculator for bundled model ``name``."""
    from gnnff.calculators.ase_calculator import GNNFFCalculator

    return GNNFFCalculator(pretrained_path(name), device=device, dtype=dtype)
