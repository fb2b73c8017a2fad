"""Accuracy report of the LUT-softmax emulator against the float softmax.

:func:`softmax_error_stats` works on any logits (synthetic ones from :func:`realistic_logits`,
or a model's own attention logits), so a model-based report can reuse it.
"""

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnnff.errors import require_extra
from gnnff.lut_accel.backends import LUTSoftmax, make_lut_softmax
from gnnff.segment_ops import float_segment_softmax


def realistic_logits(
    seed: int = 0,
    num_groups: int = 2000,
    min_size: int = 10,
    max_size: int = 60,
    spread: tuple[float, float] = (0.5, 3.0),
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Seeded synthetic attention logits: ``num_groups`` groups of ``min_size..max_size``
    entries, each group Gaussian with a standard deviation drawn uniformly from ``spread``
    (logit units; typical of trained attention). Returns (logits [E] float64, segment [E], G)."""
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randint(min_size, max_size + 1, (num_groups,), generator=gen)
    segment = torch.repeat_interleave(torch.arange(num_groups), sizes)
    lo, hi = spread
    sigma = lo + (hi - lo) * torch.rand(num_groups, generator=gen, dtype=torch.float64)
    offset = 5.0 * torch.randn(num_groups, generator=gen, dtype=torch.float64)
    z = torch.randn(int(sizes.sum()), generator=gen, dtype=torch.float64)
    return z * sigma[segment] + offset[segment], segment, num_groups


def softmax_error_stats(
    logits: torch.Tensor, segment: torch.Tensor, num_segments: int, backend: torch.nn.Module
) -> dict[str, Any]:
    """Errors of ``backend`` (a softmax backend module) against the float64 softmax.

    logits [E], segment [E] int64 ids in [0, num_segments). Returns JSON-ready floats:
    ``max_abs_err`` / ``mean_abs_err`` / ``rms_err`` of the weights, ``max_sum_err``
    (max over groups of |sum of weights - 1|) and ``kl``: the mean over non-empty groups of
    KL(q || p) in nats, where p is the float softmax and q the backend's weights renormalised to
    sum 1 (this direction stays finite when the LUT rounds small weights to exactly 0).
    ``table_bytes`` is added for LUT backends.
    """
    x = logits.detach().to(torch.float64)
    seg = segment.to(torch.int64)
    with torch.no_grad():
        p = float_segment_softmax(x, seg, num_segments)
        w = backend(x, seg, num_segments).to(torch.float64)
    err = (w - p).abs()
    counts = torch.zeros(num_segments, dtype=torch.float64).index_add(0, seg, torch.ones_like(x))
    nonempty = counts > 0
    wsum = torch.zeros(num_segments, dtype=torch.float64).index_add(0, seg, w)
    q = w / wsum.clamp_min(1e-300).index_select(0, seg)
    terms = torch.where(
        q > 0, q * (torch.log(q.clamp_min(1e-300)) - torch.log(p)), torch.zeros_like(q)
    )
    kl = torch.zeros(num_segments, dtype=torch.float64).index_add(0, seg, terms)
    out: dict[str, Any] = {
        "backend": str(getattr(backend, "name", type(backend).__name__)),
        "entries": int(x.numel()),
        "groups": int(nonempty.sum()),
        "max_abs_err": float(err.max()) if err.numel() else 0.0,
        "mean_abs_err": float(err.mean()) if err.numel() else 0.0,
        "rms_err": float(err.pow(2).mean().sqrt()) if err.numel() else 0.0,
        "max_sum_err": float((wsum[nonempty] - 1).abs().max()) if err.numel() else 0.0,
        "kl": float(kl[nonempty].mean()) if err.numel() else 0.0,
    }
    if isinstance(backend, LUTSoftmax):
        out["bits"] = int(backend.bits)
        out["table_bytes"] = int(backend.table_bytes())
        out["config"] = backend.config.describe()
    return out


def error_vs_distance(
    logits: torch.Tensor,
    segment: torch.Tensor,
    num_segments: int,
    backend: torch.nn.Module,
    d_max: float = 12.0,
    bins: int = 48,
) -> dict[str, list[float]]:
    """Mean and max absolute weight error binned by the input distance d = max - x."""
    x = logits.detach().to(torch.float64)
    with torch.no_grad():
        p = float_segment_softmax(x, segment, num_segments)
        w = backend(x, segment, num_segments).to(torch.float64)
    m = torch.full((num_segments,), -torch.inf, dtype=torch.float64)
    m = m.scatter_reduce(0, segment, x, reduce="amax").index_select(0, segment)
    d = (m - x).numpy()
    err = (w - p).abs().numpy()
    edges = np.linspace(0.0, d_max, bins + 1)
    which = np.clip(np.digitize(d, edges) - 1, 0, bins - 1)
    mean = np.zeros(bins)
    mx = np.zeros(bins)
    for b in range(bins):  # plot binning only; bins, not groups
        sel = err[which == b]
        if sel.size:
            mean[b], mx[b] = sel.mean(), sel.max()
    return {
        "d": list(0.5 * (edges[1:] + edges[:-1])),
        "mean_abs_err": list(mean),
        "max_abs_err": list(mx),
    }


def lut_report(
    bits: tuple[int, ...] = (8, 16), seed: int = 0, num_groups: int = 2000
) -> dict[str, Any]:
    """Accuracy of every LUT backend at every bit width on :func:`realistic_logits`."""
    logits, segment, g = realistic_logits(seed=seed, num_groups=num_groups)
    rows = []
    curves = {}
    for b in bits:
        for name in ("lut-rexp", "lut-2d"):
            backend = make_lut_softmax(name, b)
            rows.append(softmax_error_stats(logits, segment, g, backend))
            curves[f"{name}/{b}"] = error_vs_distance(logits, segment, g, backend)
    return {
        "data": {
            "kind": "synthetic",
            "seed": seed,
            "groups": g,
            "entries": int(logits.numel()),
            "group_size": [10, 60],
            "logit_std": [0.5, 3.0],
        },
        "results": rows,
        "error_vs_d": curves,
    }


def plot_error_vs_distance(report: dict[str, Any], path: str | Path) -> Path:
    """PNG of the binned absolute error vs d, one panel per bit width."""
    require_extra("matplotlib", "plots", "error_vs_d.png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gnnff.io_utils import atomic_write

    curves = report["error_vs_d"]
    widths = sorted({int(k.split("/")[1]) for k in curves})
    fig, axes = plt.subplots(1, len(widths), figsize=(5.5 * len(widths), 4), squeeze=False)
    for ax, b in zip(axes[0], widths, strict=True):
        for key, c in curves.items():
            name, kb = key.split("/")
            if int(kb) != b:
                continue
            line = ax.semilogy(c["d"], np.maximum(c["mean_abs_err"], 1e-9), label=f"{name} mean")
            ax.semilogy(
                c["d"],
                np.maximum(c["max_abs_err"], 1e-9),
                "--",
                color=line[0].get_color(),
                label=f"{name} max",
            )
        ax.axhline(2.0**-b, color="grey", lw=0.8, label="1 LSB")
        ax.set_xlabel("input distance d = max - x (logit units)")
        ax.set_ylabel("|w_lut - w_float|")
        ax.set_title(f"{b}-bit LUT softmax")
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out
