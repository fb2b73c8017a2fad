"""Deprecated location of gnnff.potentials.analysis.short_range, kept for one release.

``gnnff.potentials`` was split so that each module holds one concern (docs/architecture.md);
import the new module instead.
"""

import warnings

from gnnff.potentials.analysis.short_range import *  # noqa: F403

warnings.warn(
    "gnnff.potentials.short_range moved to gnnff.potentials.analysis.short_range; "
    "import it from there "
    "(the old module goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
