"""Matching the runs of two study arms: which runs count (finished ones) and which pairs share
their starting structure and MD seed; the seed-level comparison built on them."""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["finished", "matched_runs", "seed_comparison"]


_FINISHED = ("completed", "failed")


def finished(r: dict[str, Any]) -> bool:
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

    ctrl = {key(r): r for r in rows if r["variant"] == control and finished(r)}
    return [
        (key(r), ctrl[key(r)], r)
        for r in rows
        if r["variant"] == treated and finished(r) and key(r) in ctrl
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
                if r["variant"] == var and finished(r):
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
