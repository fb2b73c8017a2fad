"""Seed-level study statistics, the power analysis and the bench config."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from gnnff.study.power import seed_correlation, simulate_power, variance_components
from gnnff.study.stats import all_comparisons, bootstrap_ci, paired_wilcoxon, per_seed

ROOT = Path(__file__).resolve().parents[1]


def rows_of(times: dict[tuple, list[float]]):
    out = []
    for (fam, var, seed), ts in times.items():
        for k, t in enumerate(ts):
            out.append(
                {
                    "family": fam,
                    "variant": var,
                    "seed": str(seed),
                    "system": "X",
                    "temperature_K": "1000.0",
                    "start": str(k),
                    "stable_time_ps": str(t),
                    "stability_index": str(t / 2.0),
                    "status": "failed",
                }
            )
    return out


def test_wilcoxon_over_seeds_and_smallest_p():
    x = {k: 1.0 + k for k in range(6)}
    y = {k: 0.0 for k in range(6)}
    res = paired_wilcoxon(x, y)
    assert res["n_pairs"] == 6 and res["p"] == pytest.approx(2 / 64)
    assert res["min_reachable_p"] == pytest.approx(2 / 64)
    assert paired_wilcoxon({0: 1.0, 1: 2.0}, {0: 0.0, 1: 0.0})["p"] == pytest.approx(0.5)


def test_per_seed_and_cluster_bootstrap():
    rows = rows_of(
        {("a", "baseline", s): [0.1 * (s + 1), 0.2 * (s + 1)] for s in range(5)}
        | {("a", "x", s): [0.4 * (s + 1), 0.8 * (s + 1)] for s in range(5)}
    )
    d = per_seed(rows, "a", "baseline")
    assert d[0]["median_stable_ps"] == pytest.approx(0.15) and d[4]["runs"] == 2
    b = bootstrap_ci(d)
    lo, hi = b["median_stable_ci"]
    assert lo <= b["median_stable_ps"] <= hi and b["n_seeds"] == 5
    (comp,) = all_comparisons(rows, ["a"], ["baseline", "x"])
    assert comp["wilcoxon_log_stable_time"]["median_difference"] == pytest.approx(math.log(4))
    assert comp["wilcoxon_log_stable_time"]["p"] == pytest.approx(2 / 32)
    # an arm compared against another arm than the baseline (e.g. AL vs its starting model)
    rows += rows_of({("a", "y", s): [0.8 * (s + 1), 1.6 * (s + 1)] for s in range(5)})
    comps = all_comparisons(rows, ["a"], ["baseline", "x", "y"], controls={"y": "x"})
    assert [(c["treated"], c["control"]) for c in comps] == [("x", "baseline"), ("y", "x")]
    assert comps[1]["wilcoxon_log_stable_time"]["median_difference"] == pytest.approx(math.log(2))
    # no baseline arm: only arms whose control exists are compared; the table has every arm once
    rows2 = [r for r in rows if r["variant"] != "baseline"]
    comps = all_comparisons(rows2, ["a"], ["y", "x"], controls={"y": "x"})
    assert [(c["treated"], c["control"]) for c in comps] == [("y", "x")]
    from gnnff.study.report import _seed_statistics_table

    table = _seed_statistics_table(comps, {})
    assert [line.split("|")[2].strip() for line in table[5:]] == ["x", "y"]


def test_variance_components_and_power_on_synthetic_data():
    rng = np.random.default_rng(0)
    times = {}
    for s in range(60):
        u = rng.normal(0, 1.0)
        for var in ("baseline", "decorrelated"):
            times[("a", var, s)] = list(np.exp(u + rng.normal(0, 0.5, 4)))
    rows = rows_of(times)
    comp = variance_components(rows)
    assert comp["sigma_seed"] == pytest.approx(1.0, abs=0.2)
    assert comp["sigma_run"] == pytest.approx(0.5, abs=0.07)
    assert seed_correlation(rows, "baseline", "decorrelated") > 0.6
    big = simulate_power(8, 0.3, 0.3, 0.0, effect=20.0, t_run=100.0, n_sim=100)
    none = simulate_power(8, 0.3, 0.3, 0.0, effect=1.0, t_run=100.0, n_sim=200)
    assert big > 0.95 and none < 0.15


def test_power_cli_names_the_arms_it_has(capsys):
    from gnnff.study.power import main

    with pytest.raises(SystemExit):
        main([str(ROOT / "docs/study/full/results.csv"), "--arms", "baseline,residual"])
    assert "the results have the arms baseline, decorrelated" in capsys.readouterr().err


def test_existing_study_results_give_seed_statistics():
    with open(ROOT / "docs/study/full/results.csv") as fh:
        rows = list(csv.DictReader(fh))
    comps = all_comparisons(rows, ["allegro", "allegro-attn"], ["baseline", "decorrelated"])
    assert len(comps) == 2
    for c in comps:
        assert c["treated_summary"]["n_seeds"] == 3
        assert c["wilcoxon_log_stable_time"]["min_reachable_p"] >= 0.25  # 3 seeds: no power


def test_bench_config_loads_and_refuses_missing_starts(tmp_path):
    from gnnff.study.config import load_study_config
    from gnnff.study.runner import _check_inputs, md_units, model_units

    cfg = load_study_config(ROOT / "examples/study/bench_sio_rich.yaml")
    models = model_units(cfg)
    assert len(models) == 8 * 6  # six trained arms, two pretrained ones, six seeds
    assert len(md_units(cfg, models)) == len(models) * 2 * 2 * 1
    assert cfg["variants"]["al"]["control"] == "bundled_baseline"
    cfg["data"]["dir"] = str(tmp_path)
    cfg["eval"] = []
    missing = (
        r"sio2-bench-starts-0/reference_md/a-SiO1.10_1000K.extxyz "
        r"\(md.systems.SiO1.10 at 1000 K start 0\)"
    )
    with pytest.raises(FileNotFoundError, match=missing):
        _check_inputs(cfg)


def test_bench_starts_preset_makes_only_the_bench_starts():
    from gnnff.data.generate import state_points
    from gnnff.data.presets import load_preset
    from gnnff.study.config import load_study_config

    pre = load_preset(str(ROOT / "examples/study/bench_starts_preset.yaml"))
    assert state_points(pre) == []  # no training state points: reference MD only
    cfg = load_study_config(ROOT / "examples/study/bench_sio_rich.yaml")
    assert [float(t) for t in pre["reference_md"]["temperatures"]] == [
        float(t) for t in cfg["md"]["temperatures"]
    ]
    assert {f"a-{s}" for s in cfg["md"]["systems"]} == set(pre["reference_md"]["systems"])
