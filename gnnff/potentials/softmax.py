"""The attention softmax interface of the models, and its exact ``float`` backend.

A softmax backend is a TorchScript-compatible ``torch.nn.Module`` with

* ``name: str`` (the name it is built by, recorded in model files' ``softmax`` metadata);
* ``forward(logits [E], segment [E] int64, num_segments: int) -> weights [E]``: for each
  segment s (the edges of one centre atom and head) the weights of its edges are a softmax of
  their logits; empty segments are allowed;
* ``dense(x, dim: int = -1) -> weights``: the softmax of ``x`` over ``dim``.

and, when it has a bit width, ``bits: int`` (recorded too; None otherwise).

Backends are registered by name in :data:`gnnff.extensions.SOFTMAX` as factories
``factory(bits: int | None, config: object | None) -> Module`` (``config``: an optional
backend-specific settings object, e.g. a ``LUTConfig``). ``float`` is the exact floating-point
softmax (registered here). ``lut-rexp`` and ``lut-2d`` are the LUT-softmax accelerator
emulator's backends, registered by :mod:`gnnff.lut_accel.backends`, which the registry imports
only when one is asked for, so a float model never imports the emulator. Other packages add
backends through the ``gnnff.softmax`` entry-point group (docs/architecture.md).
"""

# no `from __future__ import annotations`: TorchScript reads FloatSoftmax's annotations
from typing import Any

import torch

from gnnff.extensions import SOFTMAX
from gnnff.segment_ops import float_segment_softmax

__all__ = [
    "FloatSoftmax",
    "backend_spec",
    "float_segment_softmax",
    "make_softmax_backend",
]


class FloatSoftmax(torch.nn.Module):
    """Exact floating-point segment softmax (the default backend)."""

    name: str

    def __init__(self) -> None:
        super().__init__()
        self.name = "float"

    def forward(
        self, logits: torch.Tensor, segment: torch.Tensor, num_segments: int
    ) -> torch.Tensor:
        return float_segment_softmax(logits, segment, num_segments)

    @torch.jit.export
    def dense(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Float softmax of ``x`` over ``dim``."""
        return torch.softmax(x, dim)


@SOFTMAX.register("float", builtin=True)
def _make_float(bits: int | None = None, config: Any = None) -> torch.nn.Module:
    return FloatSoftmax()


def make_softmax_backend(
    name: str = "float", bits: int | None = None, config: Any = None
) -> torch.nn.Module:
    """Build the registered softmax backend ``name``.

    bits: 8 or 16 for the LUT backends (None = 8); ignored by ``float``.
    config: backend-specific settings, e.g. a full ``LUTConfig`` for a LUT backend (its method
    must match ``name``, its bits override ``bits``). Raises ``gnnff.extensions.PluginError`` (a
    ``ValueError``) for an unknown name, listing the registered ones, ``ValueError`` for bad
    settings and ``TypeError`` when the factory does not return a ``torch.nn.Module`` with a
    ``name``.
    """
    backend = SOFTMAX.get(name)(bits, config)
    if not isinstance(backend, torch.nn.Module) or not isinstance(
        getattr(backend, "name", None), str
    ):
        raise TypeError(
            f"softmax backend {name!r} ({SOFTMAX.origin(name)}) must build a torch.nn.Module "
            f"with a str attribute 'name', got {type(backend).__name__}"
        )
    return backend


def backend_spec(backend: torch.nn.Module) -> dict[str, Any]:
    """``{"backend": name, "bits": bits or None}`` of a built backend (what export records)."""
    bits = getattr(backend, "bits", None)
    return {"backend": str(backend.name), "bits": None if bits is None else int(bits)}
