"""Lazy package exports: a package ``__init__`` names what it re-exports without importing it.

``gnnff --help`` must not import torch, e3nn or ASE (issue 18); package ``__init__`` files
therefore map each public name to the submodule defining it, and the name is imported on first
attribute access (PEP 562 module ``__getattr__``). ``from gnnff.potentials import build_model``
keeps working unchanged.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package`` re-exporting ``exports``.

    ``exports`` maps a public name to the submodule (relative to ``package``, no leading dot)
    that defines it. An unknown name raises ``AttributeError`` as a normal module would.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # cache: later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        names = set(vars(sys.modules[package])) | set(exports)
        return sorted(names)

    return __getattr__, __dir__
