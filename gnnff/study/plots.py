"""Study plots: stable-time distributions, Stability Index vs feature correlation, MAE vs S,
and decorrelated vs baseline stable time over matched runs."""

from __future__ import annotations

from pathlib import Path

from gnnff.errors import require_extra


def plot_study(
    rows: list[dict], per_model: list[dict], rho: float, out: Path, rho_inv: float | None = None
) -> None:
    """``per_model``: dicts with family, variant, mean_S, lcorr, feature_corr, force_mae (meV/A);
    ``rho`` / ``rho_inv``: Spearman rho of L_corr / of the invariant feature_corr vs mean S."""
    require_extra("matplotlib", "plots", "study plots")
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

    fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(15, 4))
    colours = {fam: f"C{k}" for k, fam in enumerate(sorted({m["family"] for m in per_model}))}
    variants = sorted({m["variant"] for m in per_model}, key=lambda v: (v != "baseline", v))
    markers = {v: "o^sDv<>ph*"[k % 10] for k, v in enumerate(variants)}
    for m in per_model:
        style = {"color": colours[m["family"]], "marker": markers[m["variant"]], "s": 36}
        if m.get("feature_corr") is not None:
            a0.scatter(m["feature_corr"], m["mean_S"], **style)
        if m["lcorr"] is not None:
            a1.scatter(m["lcorr"], m["mean_S"], **style)
        if m["force_mae"] is not None:
            a2.scatter(m["force_mae"], m["mean_S"], **style)
    handles = [plt.Line2D([], [], color=c, marker="s", ls="", label=f) for f, c in colours.items()]
    handles += [
        plt.Line2D([], [], color="grey", marker=mk, ls="", label=v) for v, mk in markers.items()
    ]
    a0.legend(handles=handles, fontsize=7)
    if rho_inv is not None:
        a0.set_title(f"invariant: Spearman rho = {rho_inv:.2f}")
    a0.set_xlabel("feature correlation (post-activation, per pair; ID test)")
    a0.set_ylabel("mean Stability Index (one point per model)")
    a1.set_xlabel("residual-stream L_corr (ID test; basis-dependent, a gauge)")
    a1.set_title(f"gauge: Spearman rho = {rho:.2f}")
    a1.set_ylabel("mean Stability Index")
    a2.set_xlabel("force MAE, ID test (meV/A)")
    a2.set_ylabel("mean Stability Index")
    fig.tight_layout()
    fig.savefig(out / "stability_vs_correlation_and_mae.png", dpi=120)
    plt.close(fig)


def plot_seed_arms(comparisons: list[dict], rows: list[dict], out: Path) -> None:
    """Per seed and arm: median stable time (log axis) and mean S, one line per seed across
    the arms (``comparisons``: :func:`gnnff.study.stats.all_comparisons`), with each arm's
    median and bootstrap CI as a bar. Written to ``out/seed_arms.png``."""
    require_extra("matplotlib", "plots", "matched-run plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gnnff.study.stats import per_seed

    if not comparisons:
        return
    out.mkdir(parents=True, exist_ok=True)
    families = sorted({c["family"] for c in comparisons})
    fig, axes = plt.subplots(2, len(families), figsize=(11 * len(families), 7), squeeze=False)
    for col, fam in enumerate(families):
        comps = [c for c in comparisons if c["family"] == fam]
        arms = [comps[0]["control"]] + [c["treated"] for c in comps]
        arms = list(dict.fromkeys(arms))
        summ = {c["control"]: c["control_summary"] for c in comps}
        summ |= {c["treated"]: c["treated_summary"] for c in comps}
        seeds_of = {a: per_seed(rows, fam, a) for a in arms}
        seeds = sorted({k for d in seeds_of.values() for k in d})
        for row, (key, ci_key, label) in enumerate(
            (
                ("median_stable_ps", "median_stable_ci", "median stable time (ps)"),
                ("mean_S", "mean_S_ci", "mean Stability Index"),
            )
        ):
            ax = axes[row][col]
            for i, sd in enumerate(seeds):
                xs = [k for k, a in enumerate(arms) if sd in seeds_of[a]]
                ys = [max(seeds_of[arms[k]][sd][key], 1e-3) for k in xs]
                ax.plot(xs, ys, color=f"C{i % 10}", marker="o", ms=4, lw=0.8, alpha=0.6)
            for k, a in enumerate(arms):
                s_ = summ.get(a) or {}
                if s_.get(key) is not None and s_.get(ci_key):
                    lo, hi = s_[ci_key]
                    ax.errorbar(
                        k + 0.15,
                        max(s_[key], 1e-3),
                        yerr=[[max(s_[key] - lo, 0)], [max(hi - s_[key], 0)]],
                        color="k",
                        marker="s",
                        capsize=3,
                    )
            if row == 0:
                ax.set_yscale("log")
                ax.set_title(f"{fam}: one line per seed; black: arm value, 95 % CI over seeds")
            ax.set_xticks(range(len(arms)), arms, fontsize=8, rotation=20)
            ax.set_ylabel(label)
    fig.tight_layout()
    fig.savefig(out / "seed_arms.png", dpi=120)
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
    require_extra("matplotlib", "plots", "seed_arms.png")
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
