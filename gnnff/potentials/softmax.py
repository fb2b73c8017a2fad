"""The attention softmax interface of the models, and its exact ``float`` backend.

A softmax backend is a TorchScript-compatible ``torch.nn.Module`` with

* ``name: str`` (the name it is built by, recorded in model files' ``softmax`` metadata);
* ``forward(logits [E], segment [E] int64, num_segments: int) -> weights [E]``: for each
  segment s (the edges of one centre atom and head) the weights of its edges are a softmax of
  their logits; empty segments are allowed;
* ``dense(x, dim: int = -1) -> weights``: the softmax of ``x`` over ``dim``.

``float`` is the exact floating-point softmax (here). ``lut-rexp`` and ``lut-2d`` are the
LUT-softmax accelerator emulator's backends, provided by :mod:`gnnff.lut_accel.backends` and
imported only when one is asked for, so a float model never imports the emulator.
"""

# no `from __future__ import annotations`: TorchScript reads FloatSoftmax's annotations
from typing import TYPE_CHECKING

import torch

from gnnff.segment_ops import float_segment_softmax

if TYPE_CHECKING:
    from gnnff.lut_accel.config import LUTConfig

SOFTMAX_BACKENDS = ("float", "lut-rexp", "lut-2d")

__all__ = ["SOFTMAX_BACKENDS", "FloatSoftmax", "float_segment_softmax", "make_softmax_backend"]


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


def make_softmax_backend(
    name: str = "float", bits: int | None = None, config: "LUTConfig | None" = None
) -> torch.nn.Module:
    """Build the softmax backend ``name`` (one of ``SOFTMAX_BACKENDS``).

    bits: 8 or 16 for the LUT backends (None = 8); ignored by ``float``.
    config: optional full ``LUTConfig`` for a LUT backend (its method must match ``name``, its
    bits override ``bits``). Raises ``ValueError`` for an unknown name or bad LUT settings.
    """
    if name == "float":
        return FloatSoftmax()
    if name not in SOFTMAX_BACKENDS:
        raise ValueError(
            f"unknown softmax backend {name!r}; choose one of {', '.join(SOFTMAX_BACKENDS)}"
        )
    from gnnff.lut_accel.backends import make_lut_softmax

    return make_lut_softmax(name, bits, config)
