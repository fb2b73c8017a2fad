"""Deprecated location of gnnff.potentials.allegro.model (the allegro implementation;
``GNNFFModel`` is now ``AllegroModel``) and gnnff.potentials.build (``build_model``), kept for
one release.

``gnnff.potentials`` was split so that each module holds one concern (docs/architecture.md);
import the new module instead.
"""

import warnings

from gnnff.potentials.allegro.model import *  # noqa: F403
from gnnff.potentials.allegro.model import AllegroModel
from gnnff.potentials.build import build_model  # noqa: F401

GNNFFModel = AllegroModel

warnings.warn(
    "gnnff.potentials.model moved to gnnff.potentials.allegro.model; import it from there "
    "(the old module goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
