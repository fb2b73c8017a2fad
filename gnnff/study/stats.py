"""Seed-level statistics of a stability study (this project's recipe).

Runs of one model share its weights, so they are not independent samples of "what this loss
does": the training seed is the unit. Per arm (family x variant) and seed we take the median
stable time and the mean Stability Index S over that seed's finished runs (all state points
and starts); arms are compared with a paired Wilcoxon signed-rank test over seeds (pairs =
the same seed in both arms; on log stable time and on S), and each arm's median stable time and
mean S get a percentile bootstrap CI that resamples seeds (a cluster bootstrap: the runs of a
drawn seed come along together).

An arm that is not trained (a pretrained model, ``gnnff.study.config``) is one model at every
seed: its "seeds" are MD random seeds only, its CI covers MD noise, not training noise, and a
test against a trained arm pairs MD seeds with training seeds.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np

FINISHED = ("completed", "failed")


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); nan for < 3 points."""
    if len(x) < 3:
        return float("nan")

    def ranks(v):
        v = np.asarray(v, dtype=float)
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for val in np.unique(v):  # ties share their mean rank
            idx = v == val
            r[idx] = r[idx].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def per_seed(rows: list[dict[str, Any]], family: str, variant: str) -> dict[int, dict[str, Any]]:
    """{seed: {"stable_times": [ps], "S": [..], "median_stable_ps", "mean_S", "runs"}} over the
    finished runs of one arm."""
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r["family"] != family or r["variant"] != variant:
            continue
        if r.get("status", "completed") not in FINISHED:
            continue
        d = out.setdefault(int(r["seed"]), {"stable_times": [], "S": []})
        d["stable_times"].append(float(r["stable_time_ps"]))
        d["S"].append(float(r["stability_index"]))
    for d in out.values():
        d["median_stable_ps"] = statistics.median(d["stable_times"])
        d["mean_S"] = statistics.mean(d["S"])
        d["runs"] = len(d["S"])
    return dict(sorted(out.items()))


def bootstrap_ci(
    seeds: dict[int, dict[str, Any]], n_boot: int = 4000, level: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Median stable time (ps, over all runs) and mean S of an arm with cluster-bootstrap CIs
    (seeds resampled with replacement). Returns point values, [lo, hi] lists and n_seeds."""
    keys = list(seeds)
    if not keys:
        return {
            "n_seeds": 0,
            "median_stable_ps": None,
            "median_stable_ci": None,
            "mean_S": None,
            "mean_S_ci": None,
        }
    rng = np.random.default_rng(seed)
    times = [np.asarray(seeds[k]["stable_times"]) for k in keys]
    s_vals = [np.asarray(seeds[k]["S"]) for k in keys]
    med, mean_s = [], []
    for _ in range(n_boot):
        pick = rng.integers(0, len(keys), len(keys))
        med.append(float(np.median(np.concatenate([times[i] for i in pick]))))
        mean_s.append(float(np.mean(np.concatenate([s_vals[i] for i in pick]))))
    a = 100 * (1 - level) / 2
    return {
        "n_seeds": len(keys),
        "median_stable_ps": float(np.median(np.concatenate(times))),
        "median_stable_ci": [float(np.percentile(med, a)), float(np.percentile(med, 100 - a))],
        "mean_S": float(np.mean(np.concatenate(s_vals))),
        "mean_S_ci": [float(np.percentile(mean_s, a)), float(np.percentile(mean_s, 100 - a))],
    }


def paired_wilcoxon(x: dict[int, float], y: dict[int, float]) -> dict[str, Any]:
    """Two-sided paired Wilcoxon signed-rank test of x - y over the seeds both have (exact
    p-value for small n, zero differences dropped, scipy.stats.wilcoxon). p is None with fewer
    than one nonzero pair; with n pairs the smallest possible two-sided p is 2 / 2^n, so n >= 6
    seeds are needed for p < 0.05 to be reachable at all."""
    from scipy.stats import wilcoxon

    common = sorted(set(x) & set(y))
    diffs = [x[k] - y[k] for k in common]
    nonzero = [d for d in diffs if abs(d) > 1e-12]
    res: dict[str, Any] = {
        "n_pairs": len(common),
        "median_difference": statistics.median(diffs) if diffs else None,
        "p": None,
    }
    if nonzero:
        res["p"] = float(wilcoxon(nonzero, alternative="two-sided").pvalue)
    res["min_reachable_p"] = 2.0 / 2 ** len(nonzero) if nonzero else None
    return res


def arm_comparison(
    rows: list[dict[str, Any]], family: str, treated: str, control: str = "baseline"
) -> dict[str, Any]:
    """Seed-level comparison of one arm against the control arm of the same family: both arms'
    bootstrap summaries, and the paired Wilcoxon tests on log median stable time and mean S."""
    a, b = per_seed(rows, family, treated), per_seed(rows, family, control)

    def log_med(d):
        return {k: math.log(max(v["median_stable_ps"], 1e-6)) for k, v in d.items()}

    return {
        "family": family,
        "treated": treated,
        "control": control,
        "treated_summary": bootstrap_ci(a),
        "control_summary": bootstrap_ci(b),
        "wilcoxon_log_stable_time": paired_wilcoxon(log_med(a), log_med(b)),
        "wilcoxon_mean_S": paired_wilcoxon(
            {k: v["mean_S"] for k, v in a.items()}, {k: v["mean_S"] for k, v in b.items()}
        ),
    }


def all_comparisons(
    rows: list[dict[str, Any]],
    families: list[str],
    variants: list[str],
    control: str = "baseline",
    controls: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """:func:`arm_comparison` of every variant that is not ``control`` against ``control``, or
    against ``controls[variant]`` where given (e.g. an active-learning model against the model
    it started from)."""
    controls = controls or {}
    pairs = [(var, controls.get(var, control)) for var in variants]
    return [
        arm_comparison(rows, fam, var, ctl)
        for fam in families
        for var, ctl in pairs
        if ctl != var and ctl in variants
    ]
