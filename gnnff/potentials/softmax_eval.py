"""Deprecated location of gnnff.potentials.analysis.softmax_eval, kept for one release.

``gnnff.potentials`` was split so that each module holds one concern (docs/architecture.md);
import the new module instead.
"""

import warnings

from gnnff.potentials.analysis.softmax_eval import *  # noqa: F403

warnings.warn(
    "gnnff.potentials.softmax_eval moved to gnnff.potentials.analysis.softmax_eval; "
    "import it from there "
    "(the old module goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
