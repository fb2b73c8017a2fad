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
from gnnff.study.stats import spearman

__all__ = ["collect_rows", "matched_runs", "seed_comparison", "spearman", "summarize_study"]


_FINISHED = ("completed", "failed")


def _finished(r: dict[str, Any]) -> bool:
    """The run ended as planned (ran through, or failed a criterion); an interrupted run's
    stable time says nothing about the model."""
    return r.get("status", "completed") in _FINISHED


def matched_runs(
    rows: list[dict[str, Any]], treated: str = "decorrelated", control: str = "baseline"
) -> list[tuple[tuple, dict, dict]]:
    """(key, control run, treated run) for every pair of finished runs that share family, seed,
    system, temperature and start (the study gives them the same starting structure and MD
    random seed); key = that tuple."""

    def key(r):
        return (
            r["family"],
            int(r["seed"]),
            r["system"],
            float(r["temperature_K"]),
            int(r["start"]),
        )

    ctrl = {key(r): r for r in rows if r["variant"] == control and _finished(r)}
    return [
        (key(r), ctrl[key(r)], r)
        for r in rows
        if r["variant"] == treated and _finished(r) and key(r) in ctrl
    ]


def seed_comparison(
    rows: list[dict[str, Any]],
    families: list[str],
    treated: str = "decorrelated",
    control: str = "baseline",
) -> dict[str, Any]:
    """Per family: mean S of each (variant, seed) and the matched comparison of ``treated``
    against ``control``.

    Two runs are matched when they share seed, system, temperature and start (the study gives
    them the same starting structure and MD random seed). Reported: how many matched runs the
    treated model kept stable longer / shorter / equally long, the two-sided sign test p-value
    of longer vs shorter, and per seed the change in mean S over the matched runs (runs that
    were interrupted rather than finished or failed are left out). Runs of one model are not
    independent, so the seed-level figure is the one to trust; the run-level p is a guide."""
    from scipy.stats import binomtest

    out: dict[str, Any] = {}
    for fam in families:
        fr = [r for r in rows if r["family"] == fam]
        per_seed: dict[str, dict[int, float]] = {}
        for var in sorted({r["variant"] for r in fr}):
            by_seed: dict[int, list[float]] = {}
            for r in fr:
                if r["variant"] == var and _finished(r):
                    by_seed.setdefault(int(r["seed"]), []).append(float(r["stability_index"]))
            per_seed[var] = {k: statistics.mean(v) for k, v in sorted(by_seed.items())}
        longer = shorter = equal = 0
        matched_s: dict[int, list[tuple[float, float]]] = {}
        for key, c, t in matched_runs(fr, treated, control):
            t1, t0 = float(t["stable_time_ps"]), float(c["stable_time_ps"])
            longer, shorter, equal = (
                longer + (t1 > t0 + 1e-9),
                shorter + (t1 < t0 - 1e-9),
                equal + (abs(t1 - t0) <= 1e-9),
            )
            matched_s.setdefault(key[1], []).append(
                (float(t["stability_index"]), float(c["stability_index"]))
            )
        n = longer + shorter
        # per seed, the change in mean S over the same (matched) state points and starts
        delta = {k: statistics.mean(a - b for a, b in v) for k, v in sorted(matched_s.items())}
        out[fam] = {
            "mean_S_per_seed": per_seed,
            "matched_runs": longer + shorter + equal,
            "treated_longer": longer, "treated_shorter": shorter, "equal": equal,
            "sign_test_p": float(binomtest(longer, n).pvalue) if n else None,
            "delta_mean_S_per_seed": delta,
            "seeds_improved": sum(d > 0 for d in delta.values()),
            "seeds_compared": len(delta),
        }  # fmt: skip
    return out


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def collect_rows(cfg: dict, out: Path) -> list[dict[str, Any]]:
    from gnnff.study.units import md_units, model_units

    rows = []
    models = model_units(cfg)
    evals = {m.id: _load(out / "eval" / f"{m.id}.json") for m in models}
    summaries = {m.id: _load(out / "train" / m.id / "summary.json") for m in models}
    for u in md_units(cfg, models):
        rep = _load(out / "md" / u.model.id / u.id / "report.json")
        if rep is None:
            continue
        ev = evals.get(u.model.id) or {}
        tr = summaries.get(u.model.id) or {}
        row = {
            "family": u.model.family,
            "variant": u.model.variant,
            "seed": u.model.seed,
            "system": u.system,
            "temperature_K": u.temperature,
            "start": u.start,
            "stable_time_ps": rep.get("stable_time_ps"),
            "t_run_ps": rep.get("t_run_ps"),
            "stability_index": rep.get("stability_index"),
            "failed_criterion": rep.get("failed_criterion") or "",
            "failed_pair": (rep.get("failure") or {}).get("pair") or "",
            "status": rep.get("status", ""),
        }
        for name, res in ev.items():
            key = Path(name).stem
            row[f"{key}_energy_mae"] = res.get("energy_mae")
            row[f"{key}_force_mae"] = res.get("force_mae")
            row[f"{key}_lcorr"] = res.get("lcorr")  # residual-stream (basis-dependent)
            row[f"{key}_feature_corr"] = res.get("feature_corr")  # invariant
        row["valid_lcorr"] = tr.get("final_lcorr")
        rows.append(row)
    return rows


def collect_errors(cfg: dict, out: Path) -> list[dict[str, Any]]:
    """The MD units stopped by a software error (their ``error.json``, no report): not runs, so
    in no Stability Index figure; listed so that they are fixed and redone."""
    from gnnff.study.units import ERROR_FILE, md_units, model_units

    errors = []
    for u in md_units(cfg, model_units(cfg)):
        folder = out / "md" / u.model.id / u.id
        err = _load(folder / ERROR_FILE)
        if err is not None and not (folder / "report.json").is_file():
            errors.append({"run": f"{u.model.id}/{u.id}", "error": err.get("error", ""),
                           "during": err.get("during", "")})  # fmt: skip
    return errors


def _short_range_walls(out: Path, model_id: str) -> dict[str, float] | None:
    """Isolated-dimer wall E(0.75 d_min) - E(d_min) (eV) per species pair of a trained model,
    d_min from the study's training-data reference; cached beside the model's evaluation."""
    cached = out / "eval" / f"{model_id}.dimer.json"
    model = out / "train" / model_id / "model.pt"
    refs = sorted((out / "md" / "references").glob("*.json"))
    if not model.is_file() or not refs:
        return None
    stamp = model.stat().st_mtime_ns  # a retrained model invalidates the cache
    if cached.is_file():
        data = json.loads(cached.read_text())
        if data.get("model_mtime_ns") == stamp:
            return data["wall_eV"]
    from gnnff.calculators import GNNFFCalculator
    from gnnff.calculators.dimer import dimer_curves, wall_heights

    try:
        pair_min = json.loads(refs[0].read_text())["pair_min_distances"]
        calc = GNNFFCalculator(model, dtype="float64")
        r = np.linspace(0.5, calc.cutoff, 91)
        walls = wall_heights(dimer_curves(calc, calc.species, r), r, pair_min)
    except Exception as exc:  # a diagnostic must never stop the summary
        print(f"warning: short-range walls of {model_id} not computed: {exc}")
        return None
    walls = {k: v for k, v in walls.items() if np.isfinite(v)}
    atomic_write_text(cached, json.dumps({"model_mtime_ns": stamp, "wall_eV": walls}))
    return walls


def _training_seconds(out: Path, model_id: str) -> float | None:
    path = out / "train" / model_id / "metrics.csv"
    if not path.is_file():
        return None
    with open(path) as fh:
        secs = [float(r["epoch_seconds"]) for r in csv.DictReader(fh) if r.get("epoch_seconds")]
    return statistics.median(secs) if secs else None


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
                if (s := _training_seconds(out, m.id)) is not None
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
            "wall_eV": _short_range_walls(out, mid),
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
        if not _finished(r):
            crit = f"status {r['status']}"
        elif crit == "close_contact" and r.get("failed_pair"):
            crit = f"close_contact {r['failed_pair']}"
        counts[crit] = counts.get(crit, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


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


def _clean(v):
    return [x for x in v if x is not None and not (isinstance(x, float) and np.isnan(x))]


def _median(v):
    v = _clean(v)
    return statistics.median(v) if v else None


def _mean(v):
    v = _clean(v)
    return statistics.mean(v) if v else None


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
