"""How many seeds does a stability bench need? A simulation-based power analysis from an
existing study's per-run results (this project's recipe).

    python -m gnnff.study.power docs/study/full/results.csv [--systems SiO1.10,SiO1.55]
        [--temperatures 1000] [--t-run 2.0] [--runs-per-seed 8]

Model (log stable time, fitted to the finished runs of the chosen systems/temperatures):
log T = mu_cell + u_seed + e_run, u_seed ~ N(0, sigma_seed^2) (a trained model's own
stability), e_run ~ N(0, sigma_run^2) (start and MD noise). The variance components are the
one-way random-effects (ANOVA, method-of-moments) estimates within every (system, temperature,
family, variant) cell, pooled over cells; runs that reached the end of the study count at their
run length (censored, so the spread is if anything underestimated).

A simulated bench: n seeds per arm, each seed with ``state_points x starts`` runs, each
stable time censored at ``t_run`` ps; the treated arm's stable times are multiplied by
``effect`` (2 = a doubling of the median). The seed effects of the baseline and treated
model of one seed correlate with ``rho`` (0: drawn independently, the conservative case;
:func:`seed_correlation` estimates it from two arms of the existing study, since the same seed
shares data split, initialisation and shuffling). Per seed the statistic is the median of
its runs' log stable times; a two-sided paired Wilcoxon signed-rank test over seeds at
``alpha`` decides. Power = the fraction of ``n_sim`` benches that reach p < alpha.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from gnnff.errors import UsageError


def variance_components(
    rows: list[dict[str, Any]],
    systems: list[str] | None = None,
    temperatures: list[float] | None = None,
) -> dict[str, float]:
    """Pooled sigma_seed and sigma_run of log stable time (see the module docstring)."""
    cells: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("status") not in ("completed", "failed"):
            continue
        if systems and r["system"] not in systems:
            continue
        if temperatures and float(r["temperature_K"]) not in temperatures:
            continue
        key = (r["system"], float(r["temperature_K"]), r["family"], r["variant"])
        cells[key][int(r["seed"])].append(math.log(max(float(r["stable_time_ps"]), 1e-3)))
    ss_w = df_w = 0.0
    ms_b_terms, n_per = [], []
    for seeds in cells.values():
        groups = [np.asarray(v) for v in seeds.values() if len(v) >= 1]
        if len(groups) < 2:
            continue
        k = np.mean([len(g) for g in groups])
        grand = np.mean(np.concatenate(groups))
        ss_w += sum(float(((g - g.mean()) ** 2).sum()) for g in groups)
        df_w += sum(len(g) - 1 for g in groups)
        ms_b_terms.append(sum(len(g) * (g.mean() - grand) ** 2 for g in groups) / (len(groups) - 1))
        n_per.append(k)
    if not ms_b_terms or df_w <= 0:
        raise UsageError(
            "not enough finished runs (>= 2 seeds with runs per cell) to estimate "
            "the variance components"
        )
    ms_w = ss_w / df_w
    k = float(np.mean(n_per))
    ms_b = float(np.mean(ms_b_terms))
    return {
        "sigma_run": math.sqrt(ms_w),
        "sigma_seed": math.sqrt(max((ms_b - ms_w) / k, 0.0)),
        "cells": len(ms_b_terms),
        "runs_per_seed_cell": k,
        "mean_log_stable_time": float(
            np.mean(
                [
                    np.mean(np.concatenate([np.asarray(v) for v in s.values()]))
                    for s in cells.values()
                ]
            )
        ),
    }


def seed_correlation(
    rows: list[dict[str, Any]],
    a: str,
    b: str,
    systems: list[str] | None = None,
    temperatures: list[float] | None = None,
) -> float:
    """Pearson correlation, over (cell, seed), of the per-seed mean log stable time of arm ``a``
    and arm ``b`` of the same family, each centred within its (system, temperature, family)
    cell."""
    means: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        if r.get("status") not in ("completed", "failed") or r["variant"] not in (a, b):
            continue
        if systems and r["system"] not in systems:
            continue
        if temperatures and float(r["temperature_K"]) not in temperatures:
            continue
        key = (r["system"], float(r["temperature_K"]), r["family"], int(r["seed"]), r["variant"])
        means[key].append(math.log(max(float(r["stable_time_ps"]), 1e-3)))
    cells: dict[tuple, dict[int, tuple]] = defaultdict(dict)
    for (sy, t, fam, sd, var), v in means.items():
        other = (sy, t, fam, sd, b if var == a else a)
        if var == a and other in means:
            cells[(sy, t, fam)][sd] = (float(np.mean(v)), float(np.mean(means[other])))
    xs, ys = [], []
    for seeds in cells.values():
        if len(seeds) < 2:
            continue
        arr = np.asarray(list(seeds.values()))
        arr = arr - arr.mean(0)
        xs += arr[:, 0].tolist()
        ys += arr[:, 1].tolist()
    if len(xs) < 3 or np.std(xs) == 0 or np.std(ys) == 0:
        return 0.0
    return float(np.corrcoef(xs, ys)[0, 1])


def simulate_power(
    n_seeds: int,
    sigma_seed: float,
    sigma_run: float,
    mu: float,
    effect: float = 2.0,
    runs_per_seed: int = 8,
    t_run: float = 2.0,
    alpha: float = 0.05,
    n_sim: int = 2000,
    seed: int = 0,
    rho: float = 0.0,
) -> float:
    """Fraction of simulated benches whose paired Wilcoxon test over ``n_seeds`` seeds gives
    p < alpha (see the module docstring); ``mu``: mean log stable time (log ps)."""
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(seed)
    cap = math.log(t_run)
    hits = 0
    for _ in range(n_sim):
        stats = []
        u0 = rng.normal(0.0, sigma_seed, n_seeds)[:, None]
        for shift in (0.0, math.log(effect)):
            u = (
                u0
                if shift == 0.0
                else rho * u0
                + math.sqrt(max(1 - rho * rho, 0.0))
                * (rng.normal(0.0, sigma_seed, n_seeds)[:, None])
            )
            e = rng.normal(0.0, sigma_run, (n_seeds, runs_per_seed))
            stats.append(np.median(np.minimum(mu + shift + u + e, cap), axis=1))
        d = stats[1] - stats[0]
        d = d[np.abs(d) > 1e-12]
        if len(d) and wilcoxon(d, alternative="two-sided").pvalue < alpha:
            hits += 1
    return hits / n_sim


def seeds_needed(
    comp: dict[str, float],
    effect: float = 2.0,
    runs_per_seed: int = 8,
    t_run: float = 2.0,
    target: float = 0.8,
    max_seeds: int = 30,
    n_sim: int = 1000,
    rho: float = 0.0,
) -> tuple[int | None, dict[int, float]]:
    """Smallest n with power >= target, and the power curve {n: power} (n = 4, 6, 8, ...)."""
    curve = {}
    for n in range(4, max_seeds + 1, 2):
        curve[n] = simulate_power(
            n,
            comp["sigma_seed"],
            comp["sigma_run"],
            comp["mean_log_stable_time"],
            effect,
            runs_per_seed,
            t_run,
            n_sim=n_sim,
            rho=rho,
        )
        if curve[n] >= target:
            return n, curve
    return None, curve


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="a study's results.csv")
    p.add_argument("--systems", default="SiO1.10,SiO1.55")
    p.add_argument("--temperatures", default="1000")
    p.add_argument("--t-run", type=float, default=2.0, help="bench run length, ps")
    p.add_argument(
        "--runs-per-seed",
        type=int,
        default=8,
        help="state points x starts per seed (default 2 x 2 x 2 = 8)",
    )
    p.add_argument("--effect", type=float, default=2.0, help="stable-time ratio to detect")
    p.add_argument("--target", type=float, default=0.8, help="power wanted")
    p.add_argument("--n-sim", type=int, default=1000)
    p.add_argument("--max-seeds", type=int, default=40)
    p.add_argument(
        "--rho",
        default="auto",
        help="seed-effect correlation of paired arms: a number, or 'auto' (estimated "
        "from the study's two --arms; 0 is also reported)",
    )
    p.add_argument(
        "--arms",
        default="baseline,decorrelated",
        help="the two arms whose same-seed correlation --rho auto estimates",
    )
    args = p.parse_args(argv)
    with open(Path(args.results)) as fh:
        rows = list(csv.DictReader(fh))
    comp = variance_components(
        rows,
        [s for s in args.systems.split(",") if s],
        [float(t) for t in args.temperatures.split(",") if t],
    )
    print(
        f"from {args.results} ({args.systems} at {args.temperatures} K): "
        f"sigma_seed {comp['sigma_seed']:.2f}, sigma_run {comp['sigma_run']:.2f} (log ps), "
        f"mean log T {comp['mean_log_stable_time']:.2f} ({comp['cells']} cells)"
    )
    systems = [s for s in args.systems.split(",") if s]
    temps = [float(t) for t in args.temperatures.split(",") if t]
    if args.rho == "auto":
        arms = [a for a in args.arms.split(",") if a]
        if len(arms) != 2:
            p.error(f"--arms needs two arm names separated by a comma, got {args.arms!r}")
        known = sorted({r["variant"] for r in rows})
        if not set(arms) <= set(known):
            p.error(f"--arms {args.arms}: the results have the arms {', '.join(known)}")
        rho_est = seed_correlation(rows, arms[0], arms[1], systems, temps)
        print(f"seed-effect correlation {arms[0]} vs {arms[1]} (same seed): {rho_est:.2f}")
        rhos = [0.0, max(rho_est, 0.0)]
    else:
        rhos = [float(args.rho)]
    for rho in rhos:
        n, curve = seeds_needed(
            comp,
            args.effect,
            args.runs_per_seed,
            args.t_run,
            args.target,
            args.max_seeds,
            n_sim=args.n_sim,
            rho=rho,
        )
        print(
            f"rho {rho:.2f}: power per seeds per arm: "
            + ", ".join(f"{k}: {v:.2f}" for k, v in curve.items())
        )
        if n is None:
            print(f"  power {args.target} not reached with <= {max(curve)} seeds per arm")
        else:
            print(
                f"  seeds per arm for power {args.target} to detect x{args.effect:g} median "
                f"stable time at p < 0.05 (paired Wilcoxon over seeds): {n}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
