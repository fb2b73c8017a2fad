"""The LUT-softmax backends of the attention softmax interface (``gnnff.potentials.softmax``
defines the interface and the exact ``float`` backend). Importing this module registers
``lut-rexp`` and ``lut-2d`` in :data:`gnnff.extensions.SOFTMAX`; models build them by name.

* ``lut-rexp`` / ``lut-2d``: the LUT-softmax accelerator emulator (:mod:`gnnff.lut_accel.config`
  documents the integer datapath), forward = bit-exact LUT result, backward = float softmax
  Jacobian (straight-through). Their integer tables are registered buffers, so they are saved
  inside TorchScript files.

Every backend is a TorchScript-compatible ``torch.nn.Module`` with
``forward(logits [E], segment [E] int64, num_segments) -> weights [E]``: for each segment s the
weights of its edges are a softmax of their logits. This module imports nothing from
``gnnff.potentials`` (the emulator stands alone).
"""

from collections.abc import Callable

import torch

from gnnff.extensions import SOFTMAX
from gnnff.lut_accel.config import LUTConfig, default_config
from gnnff.lut_accel.softmax import (
    METHOD_LUT2D,
    METHOD_REXP,
    codes_to_weights,
    lut_dense_codes,
    lut_segment_codes,
)
from gnnff.lut_accel.tables import numerator_table, second_table
from gnnff.segment_ops import float_segment_softmax

__all__ = ["LUTSoftmax", "make_lut_softmax"]


class LUTSoftmax(torch.nn.Module):
    """LUT-softmax accelerator emulator as a softmax backend (see module docstring).

    ``forward`` is the segment form; ``dense(x, dim)`` the dense form; ``segment_codes`` /
    ``dense_codes`` return the raw integer output codes P (weight = P / 2^bits).
    """

    __jit_ignored_attributes__ = ["config"]

    name: str
    bits: int
    method_id: int
    num_table: torch.Tensor
    second_table: torch.Tensor
    inv_step: float
    mbits_a: int
    mbits_b: int

    def __init__(self, config: LUTConfig) -> None:
        super().__init__()
        self.config = config
        self.name = "lut-rexp" if config.method == "rexp" else "lut-2d"
        self.bits = config.bits
        self.method_id = METHOD_REXP if config.method == "rexp" else METHOD_LUT2D
        self.inv_step = config.inv_step
        if config.method == "rexp":
            self.mbits_a, self.mbits_b = config.comp_mant_bits, 0
        else:
            self.mbits_a, self.mbits_b = config.num_mant_bits, config.den_mant_bits
        self.register_buffer("num_table", torch.tensor(numerator_table(config), dtype=torch.int64))
        self.register_buffer("second_table", torch.tensor(second_table(config), dtype=torch.int64))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, bits={self.bits}, table_bytes={self.table_bytes()}"

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def table_bytes(self) -> int:
        """Hardware table storage in bytes (entries x bits / 8)."""
        return self.config.table_bytes()["total"]

    @torch.jit.export
    def segment_codes(
        self, logits: torch.Tensor, segment: torch.Tensor, num_segments: int
    ) -> torch.Tensor:
        """Integer codes [E] of the segment softmax."""
        return lut_segment_codes(
            logits,
            segment,
            num_segments,
            self.method_id,
            self.bits,
            self.inv_step,
            self.num_table,
            self.second_table,
            self.mbits_a,
            self.mbits_b,
        )

    @torch.jit.export
    def dense_codes(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Integer codes (shape of x) of the softmax over ``dim``."""
        return lut_dense_codes(
            x,
            dim,
            self.method_id,
            self.bits,
            self.inv_step,
            self.num_table,
            self.second_table,
            self.mbits_a,
            self.mbits_b,
        )

    def forward(
        self, logits: torch.Tensor, segment: torch.Tensor, num_segments: int
    ) -> torch.Tensor:
        y = codes_to_weights(
            self.segment_codes(logits, segment, num_segments), self.bits, logits.dtype
        )
        if logits.requires_grad:
            yf = float_segment_softmax(logits, segment, num_segments)
            y = y + (yf - yf.detach())
        return y

    @torch.jit.export
    def dense(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """LUT softmax of ``x`` over ``dim`` (straight-through gradient)."""
        y = codes_to_weights(self.dense_codes(x, dim), self.bits, x.dtype)
        if x.requires_grad:
            yf = torch.softmax(x, dim)
            y = y + (yf - yf.detach())
        return y


_METHOD_OF = {"lut-rexp": "rexp", "lut-2d": "lut2d"}


def make_lut_softmax(
    name: str, bits: int | None = None, config: LUTConfig | None = None
) -> LUTSoftmax:
    """Build the LUT backend ``name`` (``lut-rexp`` or ``lut-2d``).

    bits: 8 or 16 (None = 8). config: optional full :class:`LUTConfig` (its method must match
    ``name``, its bits override ``bits``); default = :func:`default_config` of the method at
    ``bits``. Raises ``ValueError`` for an unknown name, bit width or mismatched config.
    """
    if name not in _METHOD_OF:
        raise ValueError(
            f"unknown LUT softmax backend {name!r}; choose one of {', '.join(_METHOD_OF)}"
        )
    method = _METHOD_OF[name]
    if config is None:
        config = default_config(method, 8 if bits is None else bits)
    elif config.method != method:
        raise ValueError(
            f"backend {name!r} needs a LUTConfig with method {method!r}, got {config.method!r}"
        )
    return LUTSoftmax(config)


def _factory(name: str) -> Callable[[int | None, LUTConfig | None], LUTSoftmax]:
    def make(bits: int | None = None, config: LUTConfig | None = None) -> LUTSoftmax:
        return make_lut_softmax(name, bits, config)

    make.__name__ = make.__qualname__ = f"make_{name.replace('-', '_')}"
    return make


for _name in _METHOD_OF:
    SOFTMAX.register(_name, _factory(_name), builtin=True)
