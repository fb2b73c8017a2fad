"""Study plots: stable-time distributions, Stability Index vs feature correlation, MAE vs S,
and decorrelated vs baseline stable time over matched runs."""

from __future__ import annotations

from pathlib import Path


def plot_study(rows: list[dict], per_model: list[dict], rho: float, out: Path) -> None:
    """``per_model``: dicts with family, variant, mean_S, lcorr, force_mae (meV/A)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    groups = sorted({(r["family"], r["variant"]) for r in rows})
    systems = sorted({r["system"] for r in rows})
    fig, axes = plt.subplots(
        1, max(1, len(systems)), figsize=(4.5 * max(1, len(systems)), 4), squeeze=False
    )
    for ax, system in zip(axes[0], systems, strict=False):
        data = [
            [
                r["stable_time_ps"]
                for r in rows
                if (r["family"], r["variant"]) == g and r["system"] == system
            ]
            for g in groups
        ]
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
    colours = {fam: f"C{k}" for k, fam in enumerate(sorted({m["family"] for m in per_model}))}
    markers = {"baseline": "o"}
    for m in per_model:
        style = {"color": colours[m["family"]], "marker": markers.get(m["variant"], "^"), "s": 36}
        if m["lcorr"] is not None:
            a1.scatter(m["lcorr"], m["mean_S"], **style)
        if m["force_mae"] is not None:
            a2.scatter(m["force_mae"], m["mean_S"], **style)
    handles = [plt.Line2D([], [], color=c, marker="s", ls="", label=f) for f, c in colours.items()]
    handles += [
        plt.Line2D([], [], color="grey", marker=mk, ls="", label=v)
        for v, mk in (("baseline", "o"), ("decorrelated", "^"))
    ]
    a1.legend(handles=handles, fontsize=7)
    a1.set_xlabel("residual-stream correlation L_corr (ID test; basis-dependent)")
    a1.set_ylabel("mean Stability Index (one point per model)")
    a1.set_title(f"Spearman rho = {rho:.2f}")
    a2.set_xlabel("force MAE, ID test (meV/A)")
    a2.set_ylabel("mean Stability Index")
    fig.tight_layout()
    fig.savefig(out / "stability_vs_correlation_and_mae.png", dpi=120)
    plt.close(fig)


def plot_matched_runs(
    matched: list[tuple[tuple, dict, dict]],
    out: Path,
    treated: str = "decorrelated",
    control: str = "baseline",
) -> None:
    """Stable time (ps) of each ``treated`` run against its matched ``control`` run
    (``summary.matched_runs``: key = family, seed, system, temperature, start); points above
    the diagonal lasted longer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(k, float(c["stable_time_ps"]), float(t["stable_time_ps"])) for k, c, t in matched]
    if not pairs:
        return
    out.mkdir(parents=True, exist_ok=True)
    families = sorted({k[0] for k, _, _ in pairs})
    systems = sorted({k[2] for k, _, _ in pairs})
    markers = {sy: "osD^v<>ph*"[k % 10] for k, sy in enumerate(systems)}
    fig, axes = plt.subplots(1, len(families), figsize=(4.6 * len(families), 4.4), squeeze=False)
    t_max = max(max(a, b) for _, a, b in pairs)
    t_min = max(min(min(a, b) for _, a, b in pairs), 1e-3)
    # a run that failed at t = 0 would vanish from the log axes: draw it at the lower edge
    pairs = [(k, max(a, t_min), max(b, t_min)) for k, a, b in pairs]
    t_cold = min(k[3] for k, _, _ in pairs)  # filled markers; hotter runs hollow
    for ax, fam in zip(axes[0], families, strict=True):
        seeds = sorted({k[1] for k, _, _ in pairs if k[0] == fam})
        for k, t0, t1 in pairs:
            if k[0] == fam:
                c = f"C{seeds.index(k[1])}"
                ax.scatter(
                    t0,
                    t1,
                    edgecolors=c,
                    facecolors=c if k[3] == t_cold else "none",
                    marker=markers[k[2]],
                    s=30,
                    alpha=0.75,
                )
        ax.plot([t_min, t_max], [t_min, t_max], color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{control}: stable time (ps)")
        ax.set_ylabel(f"{treated}: stable time (ps)")
        ax.set_title(f"{fam} (matched runs)")
        handles = [
            plt.Line2D([], [], color=f"C{i}", marker="s", ls="", label=f"seed {s}")
            for i, s in enumerate(seeds)
        ]
        handles += [
            plt.Line2D([], [], color="grey", marker=m, ls="", label=sy) for sy, m in markers.items()
        ]
        if any(k[3] != t_cold for k, _, _ in pairs):
            handles.append(
                plt.Line2D(
                    [],
                    [],
                    color="grey",
                    marker="o",
                    ls="",
                    mfc="none",
                    label=f"> {t_cold:g} K (hollow)",
                )
            )
        ax.legend(handles=handles, fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "matched_runs.png", dpi=120)
    plt.close(fig)
