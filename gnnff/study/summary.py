"""Condense a study folder into ``results.csv``, ``summary.md`` and plots."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from gnnff.errors import MissingExtraError
from gnnff.io_utils import atomic_write_text
from gnnff.study.matching import finished, matched_runs, seed_comparison
from gnnff.study.report import render_markdown
from gnnff.study.results import collect_errors, collect_rows, short_range_walls, training_seconds
from gnnff.study.stats import spearman

__all__ = [
    "collect_errors",
    "collect_rows",
    "matched_runs",
    "render_markdown",
    "seed_comparison",
    "spearman",
    "summarize_study",
]


def summarize_study(cfg: dict, out: str | Path) -> dict[str, Any]:
    """Write results.csv, summary.md and plots; return the per-group summary."""
    from gnnff.study.units import model_units

    out = Path(out)
    rows = collect_rows(cfg, out)
    if rows:
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, restval="")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(out / "results.csv", buf.getvalue())
    groups: dict[str, Any] = {}
    eval_key = Path(cfg["eval"][0]).stem if cfg["eval"] else None
    ood_keys = [Path(n).stem for n in cfg["eval"] if "ood" in n]
    for fam in cfg["families"]:
        for var in cfg["variants"]:
            g = [r for r in rows if r["family"] == fam and r["variant"] == var]
            secs = [
                s
                for m in model_units(cfg)
                if m.family == fam and m.variant == var
                if (s := training_seconds(out, m.id)) is not None
            ]
            ood = [r for r in g if r["system"] != "SiO2"]
            entry = {
                "runs": len(g),
                "median_stable_ps": _median([r["stable_time_ps"] for r in g]),
                "mean_S": _mean([r["stability_index"] for r in g]),
                "frac_S1": _mean([float(r["stability_index"] >= 1.0) for r in g]),
                "ood_mean_S": _mean([r["stability_index"] for r in ood]),
                "id_force_mae": _mean([r.get(f"{eval_key}_force_mae") for r in g]),
                "id_energy_mae": _mean([r.get(f"{eval_key}_energy_mae") for r in g]),
                "ood_force_mae": _mean([r.get(f"{k}_force_mae") for r in g for k in ood_keys]),
                "lcorr": _mean([r.get(f"{eval_key}_lcorr") for r in g]),
                "epoch_s": _median(secs),
                "ended_by": _ended_by(g),
            }
            groups[f"{fam}/{var}"] = entry
    for fam in cfg["families"]:
        base = groups.get(f"{fam}/baseline", {}).get("epoch_s")
        for var in cfg["variants"]:
            e = groups[f"{fam}/{var}"]
            e["training_overhead_pct"] = (
                100.0 * (e["epoch_s"] / base - 1.0) if base and e["epoch_s"] else None
            )
    by_model: dict[str, list[dict]] = {}
    pretrained = {v for v, sets in cfg["variants"].items() if "pretrained" in (sets or {})}
    for r in rows:  # a pretrained arm is one model at every seed: no per-model points
        if r["variant"] not in pretrained:
            by_model.setdefault(f"{r['family']}__{r['variant']}__s{r['seed']}", []).append(r)
    per_model = [
        {
            "model": mid,
            "family": rs[0]["family"],
            "variant": rs[0]["variant"],
            "mean_S": statistics.mean(r["stability_index"] for r in rs),
            "lcorr": rs[0].get(f"{eval_key}_lcorr"),
            "feature_corr": rs[0].get(f"{eval_key}_feature_corr"),
            "force_mae": rs[0].get(f"{eval_key}_force_mae"),
            "wall_eV": short_range_walls(out, mid),
        }
        for mid, rs in by_model.items()
    ]
    pairs = sorted({k for m in per_model for k in (m["wall_eV"] or {})})
    rho_wall = {
        k: spearman(
            [m["wall_eV"][k] for m in per_model if k in (m["wall_eV"] or {})],
            [m["mean_S"] for m in per_model if k in (m["wall_eV"] or {})],
        )
        for k in pairs
    }

    def rho_of(models: list[dict]) -> float:
        pts = [(m["lcorr"], m["mean_S"]) for m in models if m["lcorr"] is not None]
        return spearman([c for c, _ in pts], [s for _, s in pts])

    rho = rho_of(per_model)
    # the family sets the baseline stability, so the relationship is also read within a family
    rho_family = {
        fam: rho_of([m for m in per_model if m["family"] == fam]) for fam in cfg["families"]
    }
    cells: dict[tuple, list[float]] = {}
    for r in rows:
        key = (r["family"], r["variant"], r["system"], float(r["temperature_K"]))
        cells.setdefault(key, []).append(r["stability_index"])
    by_state = [
        {
            "family": f,
            "variant": v,
            "system": sy,
            "temperature_K": t,
            "runs": len(x),
            "mean_S": statistics.mean(x),
        }
        for (f, v, sy, t), x in sorted(cells.items())
    ]
    comparison = (
        seed_comparison(rows, list(cfg["families"]))
        if ({"baseline", "decorrelated"} <= set(cfg["variants"]))
        else {}
    )
    summary = {
        "groups": groups,
        "spearman_lcorr_vs_S": rho,
        "seed_comparison": comparison,
        "spearman_lcorr_vs_S_by_family": rho_family,
        "n_models": len(per_model),
        "n_runs": len(rows),
        "mean_S_by_state_point": by_state,
        "seeds_with_runs": sorted({int(r["seed"]) for r in rows}),
        "spearman_wall_vs_S": rho_wall,
        "per_model": per_model,
        "software_errors": collect_errors(cfg, out),
    }
    inv = [(m["feature_corr"], m["mean_S"]) for m in per_model if m.get("feature_corr") is not None]
    # the invariant feature correlation (a property of the potential) against S, per model
    summary["spearman_feature_corr_vs_S"] = (
        spearman([c for c, _ in inv], [x for _, x in inv]) if len(inv) >= 3 else None
    )
    if len(cfg["variants"]) > 1:
        from gnnff.study.stats import all_comparisons

        controls = {
            v: (sets or {}).get("control", "baseline") for v, sets in cfg["variants"].items()
        }
        summary["seed_statistics"] = all_comparisons(
            rows, list(cfg["families"]), list(cfg["variants"]), controls=controls
        )
    atomic_write_text(out / "summary.md", render_markdown(cfg, summary))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    try:
        from gnnff.study.plots import plot_matched_runs, plot_seed_arms, plot_study

        plot_study(rows, per_model, rho, out / "plots", summary.get("spearman_feature_corr_vs_S"))
        plot_matched_runs(matched_runs(rows), out / "plots")
        plot_seed_arms(summary.get("seed_statistics") or [], rows, out / "plots")
    except MissingExtraError as exc:
        print(f"note: study plots skipped: {exc}")
    except Exception as exc:  # plots never lose the numbers
        print(f"warning: study plots failed: {exc}")
    return summary


def _ended_by(rows: list[dict]) -> dict[str, int]:
    """How the runs ended: criterion (with the species pair for close contacts) -> count."""
    counts: dict[str, int] = {}
    for r in rows:
        crit = r.get("failed_criterion") or "none (stable)"
        if not finished(r):
            crit = f"status {r['status']}"
        elif crit == "close_contact" and r.get("failed_pair"):
            crit = f"close_contact {r['failed_pair']}"
        counts[crit] = counts.get(crit, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _clean(v):
    return [x for x in v if x is not None and not (isinstance(x, float) and np.isnan(x))]


def _median(v):
    v = _clean(v)
    return statistics.median(v) if v else None


def _mean(v):
    v = _clean(v)
    return statistics.mean(v) if v else None
