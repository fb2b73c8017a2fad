"""gnnff's errors: one base class, the optional-dependency check and the did-you-mean hint.

Every exception gnnff raises for bad input, a missing file or a failed run derives from
:class:`GNNFFError` and keeps the built-in class it always had (``ConfigError`` is a
``GNNFFError`` and a ``ValueError``), so ``except ValueError`` in older code still catches it.
The ``gnnff`` command prints a ``GNNFFError`` (or an ``OSError``) as one line and exits with 2;
any other exception is a bug (or torch's) and is reported as an internal error.

This module is a bottom-layer utility: it imports only the standard library.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from types import ModuleType

__all__ = [
    "GNNFFError",
    "MissingExtraError",
    "UsageError",
    "did_you_mean",
    "install_line",
    "require_extra",
]


class GNNFFError(Exception):
    """Base of every error gnnff raises on purpose; its message names the problem and the fix."""


class UsageError(GNNFFError, ValueError):
    """Bad input with no more specific class: an argument, an option or a file's content."""


class MissingExtraError(GNNFFError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` line.

    ``extra`` is the gnnff extra that provides it (``lammps``, ``plots``, ``teacher``).
    """

    def __init__(self, message: str, *, extra: str, name: str | None = None) -> None:
        super().__init__(message, name=name)
        self.extra = extra


def install_line(extra: str) -> str:
    """The command that installs gnnff's optional dependencies ``extra``."""
    return f'pip install "gnnff[{extra}]"'


def require_extra(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` (e.g. ``"matplotlib.pyplot"``) or raise naming the install line.

    ``extra`` is the gnnff extra that installs it; ``what`` says what needs it ("plots",
    "gnnff lammps"). Raises :class:`MissingExtraError` when the module (or one it imports)
    is missing.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{what} needs the optional dependency {module.split('.')[0]!r}, which is not "
            f"installed ({exc}). Fix: {install_line(extra)}   (or run `make setup`)",
            extra=extra,
            name=module,
        ) from exc


def did_you_mean(word: object, choices: Iterable[object]) -> str:
    """``" (did you mean 'x'?)"`` for the choice closest to ``word``, or ``""`` when none is
    close (difflib's ratio >= 0.6)."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
