"""Deprecated location of gnnff.potentials.allegro.families, kept for one release.

``gnnff.potentials`` was split so that each module holds one concern (docs/architecture.md);
import the new module instead.
"""

import warnings

from gnnff.potentials.allegro.families import *  # noqa: F403

warnings.warn(
    "gnnff.potentials.allegro_families moved to gnnff.potentials.allegro.families; "
    "import it from there "
    "(the old module goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
