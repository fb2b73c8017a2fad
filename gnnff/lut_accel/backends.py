"""Softmax backends used by attention layers: a segment softmax over edges grouped by centre.

Every backend is a TorchScript-compatible ``torch.nn.Module`` with
``forward(logits [E], segment [E] int64, num_segments) -> weights [E]``: for each segment s the
weights of its edges are a softmax of their logits. ``make_softmax_backend`` builds one by name.
"""




import torch


def _segment_max(x: torch.Tensor, segment: torch.Tensor, num_segments: int) -> torch.Tensor:
    out = torch.full((num_segments,), float("-inf"), dtype=x.dtype, device=x.device)
    return out.scatter_reduce(0, segment, x, reduce="amax", include_self=True)


def float_segment_softmax(
    logits: torch.Tensor, segment: torch.Tensor, num_segments: int
) -> torch.Tensor:
    """Numerically stable float softmax of ``logits`` [E] within each segment."""
    if logits.numel() == 0:
        return logits
    m = _segment_max(logits.detach(), segment, num_segments)
    e = torch.exp(logits - m.index_select(0, segment))
    den = torch.zeros(num_segments, dtype=logits.dtype, device=logits.device)
    den = den.index_add(0, segment, e)
    return e / den.index_select(0, segment)


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


SOFTMAX_BACKENDS = ("float",)


def make_softmax_backend(name: str = "float", bits: int | None = None) -> torch.nn.Module:
    """Build the softmax backend ``name`` (``float``; the LUT emulator adds ``lut-rexp`` and
    ``lut-2d`` with ``bits`` in {8, 16})."""
    if name == "float":
        return FloatSoftmax()
    raise ValueError(
        f"unknown softmax backend {name!r}; choose one of {', '.join(SOFTMAX_BACKENDS)}"
    )
