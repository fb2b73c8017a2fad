"""Held-out stability summaries and the active-learning record that `gnnff study bundle
--heldout/--stabilize` stores (gnnff.study.heldout), on hand-made run folders."""

from __future__ import annotations

import json

import pytest

from gnnff.study.heldout import active_learning_record, heldout_markdown, heldout_stability


def _eval_dir(tmp_path, max_rounds=0):
    tmp_path = tmp_path / f"eval{max_rounds}"
    runs, rows = [], []
    results = [  # (composition, T, S, stable ps, criterion)
        ("SiO1.10", 1000.0, 1.0, 10.0, None),
        ("SiO1.10", 1000.0, 0.25, 2.5, "close_contact"),
        ("SiO1.10", 1500.0, 1.0, 10.0, None),
        ("SiO1.55", 1000.0, 1.0, 10.0, None),
    ]
    for k, (comp, temp, s, tau, crit) in enumerate(results):
        runs.append({"structure": f"/d/a-{comp}_2000K.extxyz", "index": 60 + k,
                     "temperature": temp, "seed": k})  # fmt: skip
        rows.append({"run": k, "temperature": temp, "stability_index": s,
                     "stable_time_ps": tau, "failed_criterion": crit})  # fmt: skip
    runs.append({**runs[0], "index": 99})  # planned, not finished: left out of the statistics
    cfg = {
        "initial_model": "/m/al.pt",
        "max_rounds": max_rounds,
        "explore": {"runs": runs, "time_ps": 10.0, "dt_fs": 1.0, "ensemble": "nvt",
                    "thermostat": "langevin", "engine": "ase", "check_interval": 10},
    }  # fmt: skip
    tmp_path.mkdir()
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    for k, row in enumerate(rows):
        (tmp_path / "round_001" / "explore" / f"run_{k:02d}").mkdir(parents=True)
        (tmp_path / "round_001" / "explore" / f"run_{k:02d}" / "done.json").write_text(
            json.dumps(row)
        )
    first = {"round": 1, "runs": rows, "frames_added": 0, "cpu_s": {"explore": 9}}
    summary = {"status": "max_rounds", "reference": "base training set train.extxyz",
               "frames_added_total": 0, "rounds": [first]}  # fmt: skip
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    return tmp_path


def test_heldout_groups_and_exact_interval(tmp_path):
    res = heldout_stability(_eval_dir(tmp_path))
    assert list(res["by_state"]) == ["SiO1.10 1000 K", "SiO1.10 1500 K", "SiO1.55 1000 K"]
    g = res["by_state"]["SiO1.10 1000 K"]
    assert (g["n_runs"], g["n_stable"], g["mean_stability_index"]) == (2, 1, 0.625)
    assert g["median_stable_ps"] == 6.25 and g["ended_by"] == ["close_contact", "none"]
    # Clopper-Pearson: 1 of 2 -> [0.0126, 0.9874]; 3 of 4 overall -> [0.194, 0.994]
    assert g["fraction_stable_ci95"] == pytest.approx([0.01258, 0.98742], abs=1e-4)
    assert res["overall"]["fraction_stable_ci95"] == pytest.approx([0.19412, 0.99370], abs=1e-4)
    assert res["runs"][1]["start"] == "a-SiO1.10_2000K.extxyz@61"
    table = heldout_markdown(res)
    assert "4 of 5 runs finished" in table
    assert "| SiO1.10 1000 K | 2 | 1 | 0.01-0.99 | 0.625 | 6.25 ps |" in table
    assert "| all | 4 | 3 |" in table


def test_heldout_refuses_a_loop_and_a_missing_run(tmp_path):
    with pytest.raises(ValueError, match="max_rounds: 0"):
        heldout_stability(_eval_dir(tmp_path, max_rounds=2))
    with pytest.raises(FileNotFoundError, match="holds no stabilize evaluation"):
        heldout_stability(tmp_path / "nothing")


def test_active_learning_record(tmp_path):
    summary = {
        "status": "converged",
        "frames_added_total": 36,
        "reference": "base training set train.extxyz",
        "rounds": [
            {"round": 1, "frames_added": 36, "cpu_s": {"explore": 300.0, "train": 700.0},
             "runs": [{"stability_index": 0.1}, {"stability_index": 0.3}]},
            {"round": 2, "frames_added": 0, "cpu_s": {"explore": 600.0},
             "runs": [{"stability_index": 1.0}, {"stability_index": 1.0}]},
        ],
    }  # fmt: skip
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    rec = active_learning_record(tmp_path)
    assert rec["retrainings"] == 1 and rec["frames_added_total"] == 36
    assert rec["cpu_s_total"] == {"explore": 900.0, "train": 700.0}
    assert [r["runs_stable"] for r in rec["rounds"]] == [0, 2]
    assert rec["rounds"][0]["mean_stability_index"] == pytest.approx(0.2)
