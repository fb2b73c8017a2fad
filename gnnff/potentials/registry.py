"""Deprecated location of gnnff.potentials.bundled (the bundled models), kept for one release.

``gnnff.potentials`` was split so that each module holds one concern (docs/architecture.md);
import the new module instead.
"""

import warnings

from gnnff.potentials.bundled import *  # noqa: F403

warnings.warn(
    "gnnff.potentials.registry moved to gnnff.potentials.bundled; import it from there "
    "(the old module goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
