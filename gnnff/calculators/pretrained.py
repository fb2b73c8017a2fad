"""Bundled trained models, loaded by registry name."""

from __future__ import annotations

from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "potentials" / "pretrained"


def available_pretrained() -> list[str]:
    """Registry names of the models shipped inside the package."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))


def pretrained_path(name: str) -> Path:
    """File path of bundled model ``name`` (for ``pair_coeff`` lines: ``gnnff path NAME``)."""
    path = PRETRAINED_DIR / f"{name}.pt"
    if not path.is_file():
        names = available_pretrained()
        listing = ", ".join(names) if names else "none are bundled in this install"
        raise ValueError(f"no bundled model named {name!r}; available: {listing}")
    return path


def load_pretrained(name: str, device: str = "cpu", dtype: str | None = None):
    """ASE calculator for bundled model ``name``."""
    from gnnff.calculators.ase_calculator import GNNFFCalculator

    return GNNFFCalculator(pretrained_path(name), device=device, dtype=dtype)
