"""The registry of trained models shipped inside the package (``potentials/pretrained/``)."""

from __future__ import annotations

import os
from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def available_pretrained() -> list[str]:
    """Registry names of the models shipped inside the package."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt") if not p.name.startswith("."))


def pretrained_path(name: str) -> Path:
    """File path of bundled model ``name`` (for ``pair_coeff`` lines: ``gnnff path NAME``)."""
    path = PRETRAINED_DIR / f"{name}.pt"
    if "/" in name or os.sep in name or not path.is_file():
        names = available_pretrained()
        listing = ", ".join(names) if names else "none are bundled in this install"
        hint = (
            "; for a model file on disk give its path to GNNFFCalculator(...) instead"
            if "/" in name or name.endswith(".pt")
            else ""
        )
        raise ValueError(f"no bundled model named {name!r}; available: {listing}{hint}")
    return path


def model_file(name_or_path: str | os.PathLike[str]) -> Path:
    """An existing model file's path, or the path of the bundled model of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path)
    if name in available_pretrained():
        return pretrained_path(name)
    raise FileNotFoundError(
        f"model {name!r} is neither a file nor a bundled model (bundled: "
        f"{', '.join(available_pretrained()) or 'none'}); make a model file with "
        "`gnnff train` or `gnnff export`"
    )
