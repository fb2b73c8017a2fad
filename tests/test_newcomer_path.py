"""The newcomer's path (issue 29): the example script makes its output folder, the one rule for
relative paths (config file vs command line) and its error message, ``gnnff stabilize --set``,
one verdict line for every engine, defaults in ``--help``, and plots that show what a run has."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from gnnff.active.config import StabilizeConfigError
from gnnff.active.config import load as load_stabilize
from gnnff.cli import main
from gnnff.io_utils import resolve_path
from gnnff.training.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def _labelled_frames(path: Path, n: int = 3) -> None:
    from ase.build import bulk
    from ase.calculators.emt import EMT

    frames = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        frames.append(atoms)
    import ase.io

    ase.io.write(path, frames, format="extxyz")


def _script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = ROOT / "examples" / "own_data" / "to_ref_keys.py"
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=120)  # fmt: skip


def test_to_ref_keys_writes_into_a_folder_that_does_not_exist_yet(tmp_path):
    _labelled_frames(tmp_path / "in.extxyz")
    proc = _script("in.extxyz", "data/own/train.extxyz", "--clusters", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import ase.io

    frames = ase.io.read(tmp_path / "data" / "own" / "train.extxyz", ":")
    assert len(frames) == 3 + 1  # the frames and one isolated atom (Cu)
    assert "REF_energy" in frames[0].info and "REF_forces" in frames[0].arrays


def test_to_ref_keys_missing_input_is_one_line_not_a_traceback(tmp_path):
    proc = _script("nope.extxyz", "out/x.extxyz", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "nope.extxyz does not exist" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing written before the error


def test_resolve_path_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = resolve_path("a/b.xyz", tmp_path / "cfg")
    assert r.path == (tmp_path / "cfg" / "a" / "b.xyz").resolve()
    assert r.rule == f"relative to the config file's folder {(tmp_path / 'cfg').resolve()}"
    r = resolve_path("a/b.xyz")
    assert r.path == (tmp_path / "a" / "b.xyz").resolve()
    assert r.rule.startswith("relative to the working directory")
    assert resolve_path(str(tmp_path / "x")).rule == "absolute"


def _train_yaml(folder: Path) -> Path:
    (folder / "cfg" / "data").mkdir(parents=True)
    (folder / "cfg" / "data" / "train.extxyz").write_text("")
    (folder / "cfg" / "data" / "valid.extxyz").write_text("")
    path = folder / "cfg" / "train.yaml"
    path.write_text(yaml.safe_dump({"data": {"train": "data/train.extxyz",
                                             "valid": "data/valid.extxyz"}}))  # fmt: skip
    return path


def test_config_paths_relative_to_the_file_and_set_paths_to_the_working_directory(
    tmp_path, monkeypatch
):
    path = _train_yaml(tmp_path)
    (tmp_path / "mine.extxyz").write_text("")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path)
    assert cfg["data"]["train"] == str((tmp_path / "cfg" / "data" / "train.extxyz").resolve())
    cfg = load_config(path, ["data.valid=mine.extxyz"])  # typed in the shell: the cwd
    assert cfg["data"]["valid"] == str((tmp_path / "mine.extxyz").resolve())
    assert cfg["data"]["train"] == str((tmp_path / "cfg" / "data" / "train.extxyz").resolve())


def test_missing_data_file_names_the_resolved_path_and_the_rule(tmp_path, monkeypatch):
    path = _train_yaml(tmp_path)
    (tmp_path / "cfg" / "data" / "train.extxyz").unlink()
    monkeypatch.chdir(tmp_path)
    folder = (tmp_path / "cfg").resolve()
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    resolved = folder / "data" / "train.extxyz"
    expected = f"data.train: data/train.extxyz (relative to the config file's folder {folder}"
    assert msg.startswith(f"{expected} -> {resolved}) does not exist")
    assert f"gnnff data generate --preset PRESET --out {resolved.parent}`" in msg
    assert "`gnnff data presets` lists them" in msg
    with pytest.raises(ConfigError, match=r"data.train: data/train.extxyz \(relative to the "
                       f"working directory {tmp_path.resolve()} -> "):  # fmt: skip
        load_config(path, ["data.train=data/train.extxyz"])


def _stabilize_yaml(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "train.yaml").write_text("")
    (folder / "start.extxyz").write_text("")
    cfg = {
        "train_config": "train.yaml",
        "reference": {"preset": "sio2-tersoff"},
        "explore": {"runs": [{"structure": "start.extxyz", "temperature": 1000.0}]},
    }
    (folder / "stab.yaml").write_text(yaml.safe_dump(cfg))
    return folder / "stab.yaml"


def test_stabilize_set_applies_and_resolves_paths_from_the_working_directory(tmp_path, monkeypatch):
    path = _stabilize_yaml(tmp_path / "loop")
    (tmp_path / "other.yaml").write_text("")
    monkeypatch.chdir(tmp_path)
    cfg = load_stabilize(path, ["max_rounds=2", "explore.time_ps=0.5", "train_config=other.yaml",
                                "select.committee={size: 2, f_lo: 0.1, f_hi: 0.3}"])  # fmt: skip
    assert cfg["max_rounds"] == 2 and cfg["explore"]["time_ps"] == 0.5
    assert cfg["train_config"] == str((tmp_path / "other.yaml").resolve())
    assert cfg["select"]["committee"]["size"] == 2
    assert cfg["explore"]["runs"][0]["structure"] == str(tmp_path / "loop" / "start.extxyz")
    assert load_stabilize(path)["max_rounds"] == 5


@pytest.mark.parametrize(
    "override, message",
    [
        ("max_round=2", "unknown key max_round (did you mean 'max_rounds'?)"),
        ("explore.time_pss=1", "unknown key explore.time_pss (did you mean 'time_ps'?)"),
        ("select.committee.sise=3", "unknown key select.committee.sise (did you mean 'size'?)"),
        ("max_rounds.x=1", "max_rounds is not a section"),
        ("max_rounds", "--set expects KEY=VALUE"),
    ],
)
def test_stabilize_set_rejects_unknown_keys(tmp_path, override, message):
    with pytest.raises(StabilizeConfigError, match=re.escape(message)):
        load_stabilize(_stabilize_yaml(tmp_path), [override])


def test_stabilize_cli_set_error_is_one_line(tmp_path, capsys):
    path = _stabilize_yaml(tmp_path)
    rc = main(["stabilize", str(path), "--out", str(tmp_path / "out"), "--set", "max_round=1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "did you mean 'max_rounds'?" in err and not (tmp_path / "out").exists()


REPORT = {
    "status": "failed",
    "stable_time_ps": 0.25,
    "t_run_ps": 1.0,
    "stability_index": 0.25,
    "failed_criterion": "close_contact",
    "failed_step": 500,
}


def test_one_verdict_line_for_md_and_lammps(tmp_path):
    from gnnff.calculators.md import format_report_line
    from gnnff.lammps.commands import run_verdict
    from gnnff.stability import format_verdict

    line = "failed: stable 0.25 ps of 1 ps, S = 0.250, ended by close_contact at step 500"
    assert format_verdict(REPORT) == line
    assert format_report_line(REPORT) == line  # gnnff md
    (tmp_path / "report.json").write_text(json.dumps(REPORT))
    (tmp_path / "run.json").write_text("{}")
    info = {"status": "failed", "stability_index": 0.25}
    assert run_verdict(info, tmp_path) == f"{line}\nreport.json, run.json in {tmp_path}"
    done = {**REPORT, "status": "completed", "stable_time_ps": 1.0, "stability_index": 1.0,
            "failed_criterion": None}  # fmt: skip
    assert format_verdict(done) == "completed: stable 1 ps of 1 ps, S = 1.000"
    unmonitored = {"status": "unmonitored", "error": "no stability records: ..."}
    assert run_verdict(unmonitored, tmp_path / "none").startswith(
        "unmonitored: no stability records"
    )


def test_lammps_run_has_json_flag_and_md_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["lammps", "run", "--help"])
    assert "--json" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["md", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    # --temperature defaults to 300 K unless a ramp sets it: the help says so in words
    assert "target (default 300)" in text and "time step (fs) (default: 1.0)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def _rows(stress: bool, decorrelated: bool) -> list[dict]:
    rows = []
    for epoch in range(1, 4):
        row = {"epoch": epoch, "train_loss": 1.0 / epoch, "valid_loss": 1.2 / epoch,
               "train_force_mae": 100.0 / epoch, "valid_force_mae": 110.0 / epoch,
               "train_energy_mae": 5.0 / epoch, "valid_energy_mae": 6.0 / epoch,
               "valid_lcorr": 0.3, "valid_feature_corr": 0.1, "valid_feature_corr_l0": 0.1,
               "lambda": 0.05 if decorrelated else 0.0}  # fmt: skip
        if stress:
            row.update(train_stress_mae=0.5 / epoch, valid_stress_mae=0.6 / epoch)
        if decorrelated:
            row.update(train_lcorr=0.2, train_lcorr_l0=0.2)
        rows.append(row)
    return rows


def test_curves_show_stress_when_trained_on_it_and_no_gauge_as_a_model_property(tmp_path):
    from gnnff.training.plots import curve_panels, plot_curves

    titles = [t for t, _ in curve_panels(_rows(stress=True, decorrelated=True))]
    assert titles == [
        "loss (without lambda L_corr)",
        "MAE (force meV/A, energy meV/atom)",
        "stress MAE (GPa)",
        "feature correlation (invariant, valid)",
        "L_corr (loss term, basis-dependent)",
        "lambda (end of epoch)",
    ]
    assert dict(curve_panels(_rows(True, True)))["L_corr (loss term, basis-dependent)"] == [
        "train_lcorr",
        "train_lcorr_l0",
    ]
    panels = dict(curve_panels(_rows(stress=False, decorrelated=False)))
    assert "stress MAE (GPa)" not in panels and "L_corr (loss term, basis-dependent)" not in panels
    shown = [k for keys in panels.values() for k in keys]
    assert "valid_lcorr" not in shown  # the residual-stream gauge is not plotted
    assert plot_curves(_rows(True, True), tmp_path / "curves.png").stat().st_size > 0


def _tracker_report(ensemble: str, steps: int) -> dict:
    from ase.build import bulk

    from gnnff.stability import Snapshot, StabilityConfig, StabilityTracker

    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    tracker = StabilityTracker(StabilityConfig(), None, ensemble, 300.0, (steps - 1) * 0.001)
    for k in range(steps):
        tracker.update(Snapshot(step=k, time_ps=k * 0.001, numbers=atoms.numbers,
                                positions=atoms.positions, cell=np.array(atoms.cell),
                                pbc=atoms.pbc, potential_energy=-10.0, kinetic_energy=1.0,
                                temperature=300.0, forces=np.zeros((len(atoms), 3))))  # fmt: skip
    return tracker.report()


def test_report_png_panels_of_a_short_nvt_run(tmp_path):
    from gnnff.stability.plot import plot_report, report_panels

    rep = _tracker_report("nvt", 5)
    assert not any(np.isfinite([np.nan if v is None else v for v in rep["series"]["rdf_error"]]))
    assert report_panels(rep) == ["temperature", "min_distance", "max_force"]
    fig = plot_report(rep, tmp_path / "report.png")
    assert [ax.get_label() for ax in fig.axes] == ["temperature", "min_distance", "max_force"]
    assert fig.axes[-1].get_xlabel() == "time (ps)"
    nve = report_panels(_tracker_report("nve", 5))
    assert nve == ["temperature", "energy_drift", "min_distance", "max_force"]
    with_rdf = {**rep, "series": {**rep["series"], "rdf_error": [None, 0.2, 0.3, None, 0.1]}}
    assert report_panels(with_rdf)[-1] == "rdf_error"
