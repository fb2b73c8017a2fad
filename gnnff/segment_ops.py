"""Segment (scatter) operations on edge lists, shared by the models and the LUT emulator
(bottom layer: imports torch only).

A segment problem is ``values [E]`` with ``segment [E]`` int64 ids in ``[0, num_segments)``
(e.g. the centre atom of each edge); every function is TorchScript-compatible.
"""

# no `from __future__ import annotations` (TorchScript compiles these functions)
import torch


def segment_max(x: torch.Tensor, segment: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Maximum of ``x`` [E] within each segment: [num_segments], ``-inf`` for empty ones."""
    out = torch.full((num_segments,), float("-inf"), dtype=x.dtype, device=x.device)
    return out.scatter_reduce(0, segment, x, reduce="amax", include_self=True)


def float_segment_softmax(
    logits: torch.Tensor, segment: torch.Tensor, num_segments: int
) -> torch.Tensor:
    """Numerically stable float softmax of ``logits`` [E] within each segment (ids [E]):
    w_e = exp(l_e - m_s) / sum_{e' in s} exp(l_e' - m_s), m_s the segment's maximum (the
    shift changes nothing mathematically and keeps exp() from overflowing)."""
    if logits.numel() == 0:
        return logits
    m = segment_max(logits.detach(), segment, num_segments)
    e = torch.exp(logits - m.index_select(0, segment))
    den = torch.zeros(num_segments, dtype=logits.dtype, device=logits.device)
    den = den.index_add(0, segment, e)
    return e / den.index_select(0, segment)
