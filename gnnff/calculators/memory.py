"""Memory of the ASE calculator on CPU: glibc's handling of freed blocks and the default size
of the edge blocks a model call is split into."""

import os
from typing import Any

import torch


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory in the heap instead of returning large blocks to the OS,
    which makes every model call page-fault them back in (measured with the LAMMPS plugin at
    11.7k atoms: 1.86 M faults and 5.4 s per step before, 3.1 s after).
    ``GNNFF_KEEP_OS_MALLOC=1`` opts out; a no-op where glibc is not the allocator."""
    import ctypes
    import ctypes.util

    if os.environ.get("GNNFF_KEEP_OS_MALLOC"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-4, 0)  # M_MMAP_MAX
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


CPU_BLOCK_EDGES = 20000
"""Edge-block size of :class:`GNNFFCalculator` on CPU for a model whose widest per-edge
feature has 64 float32 numbers (the default sizes); :func:`cpu_block_edges` scales it."""

CPU_BLOCK_BYTES = CPU_BLOCK_EDGES * 64 * 4
"""Bytes of the widest per-edge tensor of one block that the CPU default aims at (5.1 MB).
With glibc keeping freed memory (:func:`keep_freed_memory`) the resident memory of a call grows
with the size of the block's tensors; blocks of this many bytes were as fast as larger ones and
as one pass at 1.5k-12k atoms (float32 and float64, widths 64-128; docs/results/performance.md),
while tensors of 10 MB (20,000 edges of a float64 or a 128-wide model) left 2-90x more memory
resident (``benchmarks/bench_block_default.py``)."""


def _is_count(value: Any) -> bool:
    """An int or an integral float >= 1, not a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 1 and float(value).is_integer()


def cpu_block_edges(hyperparameters: dict[str, Any], dtype: torch.dtype) -> int:
    """The CPU default ``max_block_edges`` for a model: :data:`CPU_BLOCK_BYTES` over the bytes of
    its widest per-edge feature row (MLP hidden widths, scalar channels, tensor channels x
    (l_max + 1)^2 components, the two-body input), rounded down to 500 edges, at least 1000.
    Unknown hyperparameters count as the default width 64."""
    hp = hyperparameters or {}

    def num(key: str, default: int) -> int:
        value = hp.get(key, default)
        return int(value) if _is_count(value) else default

    hidden = hp.get("mlp_hidden") or [64]
    hidden = hidden if isinstance(hidden, (list, tuple)) else [hidden]
    widths = [int(w) for w in hidden if _is_count(w)] or [64]
    widths.append(num("num_scalar", 64))
    widths.append(num("num_tensor", 8) * (num("l_max", 1) + 1) ** 2)
    widths.append(2 * num("species_embed_dim", 8) + num("num_bessel", 8))
    row_bytes = max(widths) * torch.empty((), dtype=dtype).element_size()
    return max(1000, CPU_BLOCK_BYTES // row_bytes // 500 * 500)
