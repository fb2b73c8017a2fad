"""Training plots: learning curves and per-layer feature-correlation matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gnnff.errors import require_extra


def _series(rows: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    xs = [r["epoch"] for r in rows if r.get(key) not in (None, "")]
    ys = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    return np.asarray(xs), np.asarray(ys)


def _has(rows: list[dict[str, Any]], key: str) -> bool:
    return len(_series(rows, key)[0]) > 0


def curve_panels(rows: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """The panels of ``curves.png`` as (title, metrics.csv columns): losses; energy and force
    MAE; stress MAE when the run has stress columns (trained on stress); the invariant feature
    correlation (``valid_feature_corr``); the decorrelation loss term ``train_lcorr`` when the
    run computed it, titled as the basis-dependent loss term it is (not a property of the
    potential: docs/definitions.md); lambda."""
    panels = [
        ("loss (without lambda L_corr)", ["train_loss", "valid_loss"]),
        (
            "MAE (force meV/A, energy meV/atom)",
            ["train_force_mae", "valid_force_mae", "train_energy_mae", "valid_energy_mae"],
        ),
    ]
    if _has(rows, "train_stress_mae") or _has(rows, "valid_stress_mae"):
        panels.append(("stress MAE (GPa)", ["train_stress_mae", "valid_stress_mae"]))
    layers = sorted(
        {k for r in rows for k in r if k.startswith("valid_feature_corr_l")},
        key=lambda k: int(k.rsplit("_l", 1)[1]),
    )
    if _has(rows, "valid_feature_corr"):
        panels.append(("feature correlation (invariant, valid)", ["valid_feature_corr", *layers]))
    lcorr = sorted({k for r in rows for k in r if k.startswith("train_lcorr")})
    if any(_has(rows, k) for k in lcorr):
        panels.append(("L_corr (loss term, basis-dependent)", lcorr))
    panels.append(("lambda (end of epoch)", ["lambda"]))
    return panels


def plot_curves(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Learning curves over epochs, one panel per entry of :func:`curve_panels`, two columns;
    written atomically to ``path`` (PNG)."""
    require_extra("matplotlib", "plots", "curves.png")
    from matplotlib.figure import Figure

    from gnnff.io_utils import atomic_write

    panels = curve_panels(rows)
    n_rows = (len(panels) + 1) // 2
    fig = Figure(figsize=(10, 3.5 * n_rows))
    axes = fig.subplots(n_rows, 2, squeeze=False).ravel()
    for ax, (title, keys) in zip(axes, panels, strict=False):
        log = title.startswith(("loss", "MAE", "stress"))
        for key in keys:
            xs, ys = _series(rows, key)
            if len(xs):
                (ax.semilogy if log and np.all(ys > 0) else ax.plot)(xs, ys, label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if ax.lines:
            ax.legend(fontsize=7)
    for ax in axes[len(panels) :]:
        fig.delaxes(ax)
    fig.tight_layout()
    return atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))


def plot_correlation(matrices: list, path: str | Path) -> Path:
    """One heat map per layer of the Pearson correlation matrix of the residual stream
    (validation set); its L_corr is basis-dependent (a gauge, docs/definitions.md)."""
    require_extra("matplotlib", "plots", "correlation.png")
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
        axes[0, k].set_title(f"layer {k}: residual-stream L_corr {off:.3f}", fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    out = atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)
    return out
