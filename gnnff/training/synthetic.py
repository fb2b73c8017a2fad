"""Deprecated location of :mod:`gnnff.testing.synthetic` (small synthetic Si/O data for tests
and benchmarks), kept for one release: test data is test support, not part of training."""

import warnings

from gnnff.testing.synthetic import *  # noqa: F403

warnings.warn(
    "gnnff.training.synthetic moved to gnnff.testing.synthetic (test support); import it from "
    "there (the old module goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)
