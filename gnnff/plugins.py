"""Deprecated name of :mod:`gnnff.extensions` (the extension registries), kept for one release.

``gnnff.plugins`` was renamed so that it cannot be confused with the LAMMPS plugin
(:mod:`gnnff.lammps`). Import ``gnnff.extensions`` instead.
"""

import warnings

from gnnff.extensions import *  # noqa: F403
from gnnff.extensions import __all__  # noqa: F401

warnings.warn(
    "gnnff.plugins was renamed gnnff.extensions (the extension registries); import "
    "gnnff.extensions instead (gnnff.plugins goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
