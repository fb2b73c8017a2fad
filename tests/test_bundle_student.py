"""benchmarks/bundle_student.py: the distillation record of a loop that trained its own round 0
and of one that fine-tuned an earlier (bundled) model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import bundle_student  # noqa: E402

from gnnff.potentials import read_metadata  # noqa: E402
from gnnff.potentials.bundled import model_file  # noqa: E402


def _loop(tmp_path: Path, initial_model: str | None, round_zero: bool) -> Path:
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "config.json").write_text(json.dumps({"initial_model": initial_model}))
    if round_zero:
        (loop / "round_000").mkdir()
    rounds = [
        {"round": 1, "runs": [{"stability_index": 1.0}, {"stability_index": 0.4}],
         "frames_added": 3, "cpu_s": {"explore": 10.0}},
        {"round": 2, "runs": [{"stability_index": 1.0}] * 2, "frames_added": 0},
    ]  # fmt: skip
    summary = {"status": "converged", "rounds": rounds, "frames_added_total": 3,
               "initial_training_cpu_s": 0.0,
               "reference": "/home/me/data/train.extxyz"}  # fmt: skip
    (loop / "summary.json").write_text(json.dumps(summary))
    return loop


def test_fine_tuning_loop_carries_the_initial_models_record(tmp_path):
    initial = model_file("sio2-allegro-sevennet")
    record = bundle_student.distillation_record(_loop(tmp_path, str(initial), round_zero=False))
    assert [r["runs_at_S_1"] for r in record["rounds"]] == [1, 2]
    assert record["frames_added_total"] == 3
    assert record["reference"] == "data/train.extxyz"  # no machine path
    assert record["initial_model"] == "sio2-allegro-sevennet"
    previous = read_metadata(initial)["training"]["bundle"]["distillation"]
    assert record["previous"] == previous


def test_loop_with_its_own_round_zero_has_no_previous_record(tmp_path):
    record = bundle_student.distillation_record(_loop(tmp_path, None, round_zero=True))
    assert "previous" not in record and "initial_model" not in record
