"""Training plots: learning curves and per-layer feature-correlation matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _series(rows: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    xs = [r["epoch"] for r in rows if r.get(key) not in (None, "")]
    ys = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    return np.asarray(xs), np.asarray(ys)


def plot_curves(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Four panels over epochs: losses, MAEs (energy meV/atom, force meV/A), L_corr, lambda."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gnnff.io_utils import atomic_write

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    ax = axes[0, 0]
    for key in ("train_loss", "valid_loss"):
        ax.semilogy(*_series(rows, key), label=key)
    ax.set_title("loss (without lambda L_corr)")
    ax = axes[0, 1]
    for key in ("train_force_mae", "valid_force_mae", "train_energy_mae", "valid_energy_mae"):
        ax.semilogy(*_series(rows, key), label=key)
    ax.set_title("MAE (meV/A, meV/atom)")
    ax = axes[1, 0]
    keys = sorted({k for r in rows for k in r if "lcorr" in k})
    for key in keys:
        ax.plot(*_series(rows, key), label=key)
    ax.set_title("L_corr")
    ax = axes[1, 1]
    ax.plot(*_series(rows, "lambda"), label="lambda")
    ax.set_title("lambda (end of epoch)")
    for a in axes.flat:
        a.set_xlabel("epoch")
        if a.lines:
            a.legend(fontsize=7)
    fig.tight_layout()
    out = atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)
    return out


def plot_correlation(matrices: list, path: str | Path) -> Path:
    """One heat map per layer of the Pearson correlation matrix (validation set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gnnff.io_utils import atomic_write

    n = max(len(matrices), 1)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.6), squeeze=False)
    im = None
    for k, r in enumerate(matrices):
        r = np.asarray(r)
        c = r.shape[0]
        off = (np.sum(r**2) - np.sum(np.diag(r) ** 2)) / max(c * (c - 1), 1)
        im = axes[0, k].imshow(r, vmin=-1, vmax=1, cmap="RdBu_r")
        axes[0, k].set_title(f"layer {k}: L_corr {off:.3f}")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    out = atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)
    return out
