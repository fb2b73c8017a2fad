"""Deprecated location of gnnff.potentials.files (checkpoint, export, exported, formats, load);
the public names are also in gnnff.potentials, kept for one release.

``gnnff.potentials`` was split so that each module holds one concern (docs/architecture.md);
import the new module instead.
"""

import warnings

from gnnff.potentials.files.checkpoint import *  # noqa: F403
from gnnff.potentials.files.export import *  # noqa: F403
from gnnff.potentials.files.exported import *  # noqa: F403
from gnnff.potentials.files.formats import *  # noqa: F403
from gnnff.potentials.files.load import *  # noqa: F403

warnings.warn(
    "gnnff.potentials.export moved to gnnff.potentials.files; import it from there "
    "(the old module goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
