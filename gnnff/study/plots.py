"""Study plots: stable-time distributions, Stability Index vs feature correlation, MAE vs S."""

from __future__ import annotations

from pathlib import Path


def plot_study(rows: list[dict], per_model: list[tuple], rho: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    groups = sorted({(r["family"], r["variant"]) for r in rows})
    systems = sorted({r["system"] for r in rows})
    fig, axes = plt.subplots(1, max(1, len(systems)), figsize=(4.5 * max(1, len(systems)), 4),
                             squeeze=False)
    for ax, system in zip(axes[0], systems, strict=False):
        data = [[r["stable_time_ps"] for r in rows if (r["family"], r["variant"]) == g
                 and r["system"] == system] for g in groups]
        ax.boxplot(data, showfliers=False)
        for k, d in enumerate(data, start=1):
            ax.scatter([k] * len(d), d, s=12, alpha=0.7)
        ax.set_xticks(range(1, len(groups) + 1), [f"{f}\n{v}" for f, v in groups], fontsize=7)
        ax.set_ylabel("stable time (ps)")
        ax.set_title(system)
    fig.tight_layout()
    fig.savefig(out / "stable_time.png", dpi=120)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    s = [p[0] for p in per_model if p[1] is not None]
    c = [p[1] for p in per_model if p[1] is not None]
    a1.scatter(c, s)
    a1.set_xlabel("feature correlation L_corr (ID test)")
    a1.set_ylabel("mean Stability Index")
    a1.set_title(f"Spearman rho = {rho:.2f}")
    f = [p[2] for p in per_model if p[2] is not None]
    s2 = [p[0] for p in per_model if p[2] is not None]
    a2.scatter(f, s2)
    a2.set_xlabel("force MAE, ID test (meV/A)")
    a2.set_ylabel("mean Stability Index")
    fig.tight_layout()
    fig.savefig(out / "stability_vs_correlation_and_mae.png", dpi=120)
    plt.close(fig)
