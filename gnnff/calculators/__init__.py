"""ASE side of gnnff: the calculator around an exported model file.

Public names are imported lazily (``gnnff._lazy``) so that ``gnnff --help`` stays free of torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnff._lazy import lazy_exports

_EXPORTS = {
    "GNNFFCalculator": "ase_calculator",
    "available_pretrained": "pretrained",
    "load_pretrained": "pretrained",
}

__all__ = [
    "GNNFFCalculator",
    "available_pretrained",
    "load_pretrained",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static view for type checkers and IDEs
    from gnnff.calculators.ase_calculator import GNNFFCalculator
    from gnnff.calculators.pretrained import available_pretrained, load_pretrained
