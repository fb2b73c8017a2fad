"""Deprecated location of gnnff.potentials.files.aoti, kept for one release.

``gnnff.potentials`` was split so that each module holds one concern (docs/architecture.md);
import the new module instead.
"""

import warnings

from gnnff.potentials.files.aoti import *  # noqa: F403

warnings.warn(
    "gnnff.potentials.aoti moved to gnnff.potentials.files.aoti; import it from there "
    "(the old module goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
