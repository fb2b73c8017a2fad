"""ASE side of gnnff: the calculator around an exported model file."""

from gnnff.calculators.ase_calculator import GNNFFCalculator
from gnnff.calculators.pretrained import available_pretrained, load_pretrained

__all__ = ["GNNFFCalculator", "available_pretrained", "load_pretrained"]
