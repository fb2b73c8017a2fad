"""``summary.md`` of a study: the tables and lines rendered from the summary dict."""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["render_markdown"]


def _state_point_table(cells: list[dict]) -> list[str]:
    """Mean Stability Index per family x variant (rows) and system @ temperature (columns)."""
    if not cells:
        return []
    cols = sorted({(c["system"], c["temperature_K"]) for c in cells})
    models = sorted({(c["family"], c["variant"]) for c in cells})
    val = {(c["family"], c["variant"], c["system"], c["temperature_K"]): c for c in cells}
    lines = [
        "Mean Stability Index by state point (runs per cell in brackets):",
        "",
        "| family | variant | " + " | ".join(f"{sy} {t:g} K" for sy, t in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for f, v in models:
        row = []
        for sy, t in cols:
            c = val.get((f, v, sy, t))
            row.append("-" if c is None else f"{c['mean_S']:.2f} ({c['runs']})")
        lines.append(f"| {f} | {v} | " + " | ".join(row) + " |")
    return lines + [""]


def _comparison_table(comp: dict[str, Any]) -> list[str]:
    """Mean S per seed, and decorrelated vs baseline over matched runs."""
    seeds = sorted({k for c in comp.values() for v in c["mean_S_per_seed"].values() for k in v})
    if not seeds:
        return []
    lines = [
        "Mean Stability Index per seed (each model's runs; the seed is the unit of replication):",
        "",
        "| family | variant | "
        + " | ".join(f"seed {k}" for k in seeds)
        + " | mean +- sd over seeds |",
        "|---|---|" + "---|" * (len(seeds) + 1),
    ]
    for fam, c in comp.items():
        for var, by_seed in c["mean_S_per_seed"].items():
            vals = list(by_seed.values())
            spread = (
                f"{statistics.mean(vals):.2f} +- {statistics.stdev(vals):.2f}"
                if len(vals) > 1
                else f"{vals[0]:.2f}"
                if vals
                else "-"
            )
            lines.append(
                f"| {fam} | {var} | "
                + " | ".join(f"{by_seed[k]:.2f}" if k in by_seed else "-" for k in seeds)
                + f" | {spread} |"
            )
    lines.append("")
    for fam, c in comp.items():
        if not c["matched_runs"]:
            continue
        p = c["sign_test_p"]
        lines.append(
            f"- {fam}, decorrelated vs baseline over {c['matched_runs']} matched runs (same seed, "
            f"start, state point and MD seed): stable longer in {c['treated_longer']}, shorter "
            f"in {c['treated_shorter']}, equal in {c['equal']} (sign test p = {_f(p, '.2g')}); "
            f"mean S rose in {c['seeds_improved']} of {c['seeds_compared']} seeds "
            f"(change per seed: "
            + ", ".join(f"{k}: {d:+.2f}" for k, d in c["delta_mean_S_per_seed"].items())
            + ")."
        )
    return lines + [""]


def _f(v, fmt=".3g"):
    return "-" if v is None else format(v, fmt)


def render_markdown(cfg: dict, summary: dict) -> str:
    md = cfg["md"]
    lines = [
        "| family | variant | runs | ID E MAE (meV/atom) | ID F MAE (meV/A) | OOD F MAE (meV/A) "
        "| L_corr | median stable (ps) | mean S | OOD mean S | S = 1 | train overhead |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, e in summary["groups"].items():
        fam, var = key.split("/")
        ovh = e.get("training_overhead_pct")
        lines.append(
            f"| {fam} | {var} | {e['runs']} | {_f(e['id_energy_mae'])} | "
            f"{_f(e['id_force_mae'])} | {_f(e['ood_force_mae'])} | {_f(e['lcorr'])} | "
            f"{_f(e['median_stable_ps'])} | {_f(e['mean_S'])} | {_f(e['ood_mean_S'])} | "
            f"{_f(e['frac_S1'], '.0%') if e['frac_S1'] is not None else '-'} | "
            f"{'-' if ovh is None else f'{ovh:+.1f} %'} |"
        )
    lines += [
        "",
        f"Train overhead: median epoch wall time against the same family's baseline; the study "
        f"runs {cfg['jobs']} job(s) at once on a shared machine, so a few % either way is noise "
        "(the controlled figure: `benchmarks/bench_training.py`).",
        "",
        f"Spearman rho (residual-stream correlation L_corr, basis-dependent, on "
        f"{cfg['eval'][0]} vs mean Stability Index"
        f", per model, {summary['n_models']} models): {_f(summary['spearman_lcorr_vs_S'])}; "
        "within a family: "
        + ", ".join(
            f"{fam} {_f(r)}" for fam, r in summary["spearman_lcorr_vs_S_by_family"].items()
        ),
        "",
        "Spearman rho of the short-range wall (isolated dimer, E(0.75 d_min) - E(d_min), "
        "`gnnff dimer`) vs mean Stability Index, per model: "
        + (
            ", ".join(f"{k} {_f(v)}" for k, v in summary.get("spearman_wall_vs_S", {}).items())
            or "-"
        ),
        "",
        "How the runs ended:",
        "",
        *[
            f"- {key.replace('/', ' ')}: " + ", ".join(f"{k} {n}" for k, n in e["ended_by"].items())
            for key, e in summary["groups"].items()
            if e["ended_by"]
        ],
        "",
        *_state_point_table(summary["mean_S_by_state_point"]),
        *_comparison_table(summary.get("seed_comparison") or {}),
        f"MD: NVT ({md['thermostat']}), {md['time_ps']} ps at {md['dt_fs']} fs, "
        f"T = {', '.join(f'{t:g}' for t in md['temperatures'])} K, {md['n_starts']} starts per "
        f"system ({', '.join(md['systems'])}); seeds {cfg['seeds']} "
        f"(MD results so far: seeds {summary.get('seeds_with_runs', [])}, "
        f"{summary['n_runs']} runs).",
    ]
    if summary.get("spearman_feature_corr_vs_S") is not None:
        lines += [
            "",
            "Spearman rho of the invariant feature correlation (post-activation, per "
            "species pair) vs mean S, per model: "
            f"{_f(summary['spearman_feature_corr_vs_S'])}",
        ]
    lines += _seed_statistics_table(summary.get("seed_statistics") or [], summary["groups"])
    lines += _software_error_lines(summary.get("software_errors") or [])
    return "\n".join(lines) + "\n"


def _software_error_lines(errors: list[dict[str, Any]]) -> list[str]:
    if not errors:
        return []
    return [
        "",
        f"**Software errors**: {len(errors)} MD run(s) did not run (left out of every figure "
        "above; fix the error and run the study again to redo them):",
        "",
        *[f"- {e['run']} ({e['during']}): {e['error']}" for e in errors],
    ]


def _seed_statistics_table(comps: list[dict], groups: dict[str, Any]) -> list[str]:
    """Markdown table of :func:`gnnff.study.stats.all_comparisons` (seed-level statistics), with
    each arm's mean ID and OOD force MAE from ``groups``."""
    if not comps:
        return []

    def ci(v):
        return "-" if not v else f"[{_f(v[0])}, {_f(v[1])}]"

    lines = [
        "",
        "Seed-level statistics (unit = training seed; for a pretrained arm, one model, the "
        "seeds are MD seeds only; median stable time over the "
        "arm's runs and mean S with 95 % cluster-bootstrap CIs over seeds; p: two-sided "
        "paired Wilcoxon signed-rank over seeds vs the arm in 'vs'; force MAE in meV/A, "
        "mean over the arm's models):",
        "",
        "| family | arm | ID F MAE | OOD F MAE | seeds | median stable time (ps) [CI] | "
        "mean S [CI] | vs | p (log stable time) | p (S) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    treated = {(c["family"], c["treated"]) for c in comps}
    shown = set()
    for c in comps:  # one row per comparison; a control that is never compared gets its own
        for arm, summ, test in (
            ("control", c["control_summary"], None),
            ("treated", c["treated_summary"], c),
        ):
            name = c[arm]
            key = (c["family"], name)
            if key in shown or (test is None and key in treated):
                continue
            shown.add(key)
            p1 = _f(test["wilcoxon_log_stable_time"]["p"]) if test else "-"
            p2 = _f(test["wilcoxon_mean_S"]["p"]) if test else "-"
            g = groups.get(f"{c['family']}/{name}", {})
            lines.append(
                f"| {c['family']} | {name} | {_f(g.get('id_force_mae'))} | "
                f"{_f(g.get('ood_force_mae'))} | {summ['n_seeds']} | "
                f"{_f(summ['median_stable_ps'])} {ci(summ['median_stable_ci'])} | "
                f"{_f(summ['mean_S'])} {ci(summ['mean_S_ci'])} | "
                f"{c['control'] if test else '-'} | {p1} | {p2} |"
            )
    return lines
