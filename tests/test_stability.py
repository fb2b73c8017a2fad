"""Stability criteria, tracker, reference, config, summaries and CLI on synthetic runs."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from gnnff.stability import (
    Snapshot,
    StabilityConfig,
    StabilityReference,
    StabilityTracker,
    load_reports,
    summarize_runs,
)
from gnnff.stability.commands import register
from gnnff.stability.geometry import frame_geometry, pair_key

DT_PS = 0.001  # 1 fs per step


def nacl() -> Atoms:
    # 64 atoms, d(Na-Cl) = 2.82 A
    return bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat((2, 2, 2))


def jittered(atoms: Atoms, rng, sigma: float = 0.03) -> Atoms:
    a = atoms.copy()
    a.positions += rng.normal(0.0, sigma, a.positions.shape)
    return a


def snap(atoms: Atoms, step: int, **kw) -> Snapshot:
    defaults = dict(
        potential_energy=-100.0,
        kinetic_energy=None,
        temperature=300.0,
        forces=np.zeros((len(atoms), 3)),
    )
    defaults.update(kw)
    return Snapshot(
        step=step,
        time_ps=step * DT_PS,
        numbers=atoms.numbers,
        positions=atoms.positions,
        cell=np.array(atoms.cell),
        pbc=atoms.pbc,
        **defaults,
    )


@pytest.fixture(scope="module")
def ref() -> StabilityReference:
    rng = np.random.default_rng(1)
    frames = [jittered(nacl(), rng) for _ in range(4)]
    return StabilityReference.from_frames(frames, rdf_rmax=5.0, nbins=50)


def run(tracker: StabilityTracker, frames) -> dict:
    for s in frames:
        tracker.update(s)
    return tracker.report()


def cfg(**kw) -> StabilityConfig:
    kw.setdefault("rdf_rmax", 5.0)
    kw.setdefault("rdf_nbins", 50)
    kw.setdefault("rdf_window_ps", 0.01)
    return StabilityConfig(**kw)


# -- geometry --------------------------------------------------------------------------
def test_pair_min_distances_match_brute_force():
    rng = np.random.default_rng(0)
    atoms = jittered(nacl(), rng, 0.1)
    geom = frame_geometry(atoms.numbers, atoms.positions, np.array(atoms.cell), atoms.pbc, 4.0)
    d = atoms.get_all_distances(mic=True)
    sym = atoms.get_chemical_symbols()
    expect: dict[str, float] = {}
    for i in range(len(atoms)):
        for j in range(i + 1, len(atoms)):
            k = pair_key(sym[i], sym[j])
            expect[k] = min(expect.get(k, np.inf), d[i, j])
    assert set(geom.pair_min) == {"Cl-Cl", "Cl-Na", "Na-Na"}
    for k, v in expect.items():
        assert geom.pair_min[k] == pytest.approx(v, abs=1e-10)


def test_mixed_and_open_boundaries():
    rng = np.random.default_rng(3)
    pos = rng.random((30, 3)) * 6.0
    atoms = Atoms("Ar30", positions=pos, cell=[6, 6, 6], pbc=[True, True, False])
    geom = frame_geometry(atoms.numbers, pos, np.array(atoms.cell), atoms.pbc, 5.0)
    d = atoms.get_all_distances(mic=True)
    assert geom.pair_min["Ar-Ar"] == pytest.approx(d[np.triu_indices(30, 1)].min())
    open_geom = frame_geometry(atoms.numbers, pos, np.zeros((3, 3)), [False] * 3, 5.0, 5.0, 20)
    assert open_geom.rdf_total is not None and np.all(np.isfinite(open_geom.rdf_total))


def test_rdf_normalisation_ideal_gas():
    rng = np.random.default_rng(0)
    n, box = 600, 10.0
    numbers = np.array([11] * 300 + [17] * 300)
    geom = frame_geometry(
        numbers, rng.random((n, 3)) * box, np.eye(3) * box, [True] * 3, 2.0, 5.0, 25
    )
    assert geom.rdf_total[5:].mean() == pytest.approx(1.0, abs=0.03)
    for g in geom.rdf_partial.values():
        assert g[5:].mean() == pytest.approx(1.0, abs=0.05)


# -- criteria --------------------------------------------------------------------------
def test_stable_run_has_index_one(ref):
    rng = np.random.default_rng(2)
    tr = StabilityTracker(cfg(), ref, "nve", 300.0, total_time_ps=0.05)
    frames = [
        snap(jittered(nacl(), rng), k, kinetic_energy=2.0, potential_energy=-100.0)
        for k in range(0, 51, 2)
    ]
    rep = run(tr, frames)
    assert rep["status"] == "completed"
    assert rep["stability_index"] == 1.0
    assert rep["stable_time_ps"] == pytest.approx(0.05)
    assert rep["failed_criterion"] is None
    assert rep["n_atoms"] == 64
    assert set(rep["series"]["min_distance"]) == {"Cl-Cl", "Cl-Na", "Na-Na"}
    assert any(x is not None for x in rep["series"]["rdf_error"])
    assert max(x for x in rep["series"]["rdf_error"] if x is not None) < 1.0


@pytest.mark.parametrize("pair,i,j", [("Cl-Na", 0, 1), ("Na-Na", 0, 2)])
def test_close_contact_fires_on_step(ref, pair, i, j):
    rng = np.random.default_rng(4)
    base = nacl()
    assert pair_key(*(base.get_chemical_symbols()[k] for k in (i, j))) == pair
    frames = []
    for k in range(20):
        a = jittered(base, rng)
        if k >= 13:
            vec = a.get_distance(i, j, mic=True, vector=True)
            a.positions[j] = a.positions[i] + vec / np.linalg.norm(vec) * 1.0
        frames.append(snap(a, k))
    tr = StabilityTracker(cfg(criteria=["finite", "close_contact"]), ref, "nvt", 300.0, 0.019)
    rep = run(tr, frames)
    assert tr.failed
    assert rep["failed_criterion"] == "close_contact"
    assert rep["failed_step"] == 13
    assert rep["failure"]["pair"] == pair
    assert rep["failure"]["value"] == pytest.approx(1.0, abs=1e-9)
    assert rep["failure"]["threshold"] == pytest.approx(0.75 * ref.pair_min_distances[pair])
    assert rep["stability_index"] == pytest.approx(0.013 / 0.019)


def test_temperature_jump(ref):
    frames = [snap(nacl(), k, temperature=300.0 if k < 7 else 1200.0) for k in range(12)]
    tr = StabilityTracker(cfg(criteria=["temperature"]), ref, "nvt", 300.0, 0.011)
    rep = run(tr, frames)
    assert (rep["failed_criterion"], rep["failed_step"]) == ("temperature", 7)
    assert rep["failure"]["threshold"] == pytest.approx(900.0)
    assert rep["failure"]["value"] == pytest.approx(1200.0)


def test_temperature_from_kinetic_energy_and_absolute_tmax(ref):
    from ase import units

    n = 64
    ekin = [1.5 * n * units.kB * t for t in (300, 310, 650)]
    frames = [snap(nacl(), k, temperature=None, kinetic_energy=e) for k, e in enumerate(ekin)]
    tr = StabilityTracker(cfg(criteria=["temperature"], t_max=600.0), ref, "nvt", 300.0, 0.002)
    rep = run(tr, frames)
    assert rep["failed_step"] == 2
    assert rep["series"]["temperature"][0] == pytest.approx(300.0)


def test_nan_forces(ref):
    frames = []
    for k in range(10):
        f = np.zeros((64, 3))
        if k == 5:
            f[3, 1] = np.nan
        frames.append(snap(nacl(), k, forces=f))
    tr = StabilityTracker(cfg(), ref, "nvt", 300.0, 0.009)
    rep = run(tr, frames)
    assert (rep["failed_criterion"], rep["failed_step"]) == ("finite", 5)
    assert rep["failure"]["value"] == 1


def test_engine_nonfinite_count(ref):
    frames = [snap(nacl(), k, n_nonfinite=0 if k < 3 else 2) for k in range(5)]
    rep = run(StabilityTracker(cfg(), ref, "nvt", 300.0, 0.004), frames)
    assert (rep["failed_criterion"], rep["failed_step"]) == ("finite", 3)


def test_nve_energy_drift(ref):
    # E_tot drifts by 0.3 eV per step over 64 atoms: 0.0046875 eV/atom/step -> > 0.05 at step 11
    frames = [
        snap(nacl(), k, potential_energy=-100.0 + 0.3 * k, kinetic_energy=5.0) for k in range(30)
    ]
    rep = run(
        StabilityTracker(cfg(criteria=["energy_conservation"]), ref, "nve", 300.0, 0.029), frames
    )
    assert (rep["failed_criterion"], rep["failed_step"]) == ("energy_conservation", 11)
    assert rep["failure"]["value"] == pytest.approx(11 * 0.3 / 64)
    # the same drift is not checked under a thermostat
    tr = StabilityTracker(cfg(criteria=["energy_conservation"]), ref, "nvt", 300.0, 0.029)
    rep = run(tr, frames)
    assert rep["status"] == "completed"
    info = {c["name"]: c for c in rep["criteria"]}
    assert info["energy_conservation"]["applicable"] is False


@pytest.mark.parametrize("use_ref_rdf", [True, False])
def test_rdf_detects_melted_structure(ref, use_ref_rdf):
    rng = np.random.default_rng(5)
    base = nacl()
    frames = []
    for k in range(40):
        a = jittered(base, rng)
        if k >= 25:  # "melted": atoms scattered at random through the cell
            a.positions = rng.random((64, 3)) @ np.array(a.cell)
        frames.append(snap(a, k))
    config = cfg(
        criteria=["finite", "rdf"],
        rdf_window_ps=0.005,
        rdf_reference="auto" if use_ref_rdf else "first_window",
    )
    tr = StabilityTracker(config, ref, "nvt", 300.0, 0.039)
    rep = run(tr, frames)
    assert rep["failed_criterion"] == "rdf"
    # frames every 1 fs and a 5 fs window: caught within one window of the change
    assert 25 <= rep["failed_step"] < 30
    errors = [e for e in rep["series"]["rdf_error"][:25] if e is not None]
    assert errors and max(errors) < 1.0
    assert rep["failure"]["value"] > 1.0


def test_partial_rdf_mode(ref):
    rng = np.random.default_rng(6)
    frames = [snap(jittered(nacl(), rng), k) for k in range(12)]
    tr = StabilityTracker(cfg(criteria=["rdf"], rdf_mode="partial"), ref, "nvt", 300.0, 0.011)
    rep = run(tr, frames)
    assert rep["status"] == "completed"
    assert any(e is not None and e > 0 for e in rep["series"]["rdf_error"])


def test_first_failure_wins_and_tracker_keeps_recording(ref):
    frames = [snap(nacl(), k, temperature=300.0 if k < 3 else 5000.0) for k in range(6)]
    frames[4].forces[0, 0] = np.inf
    tr = StabilityTracker(cfg(), ref, "nvt", 300.0, 0.005)
    rep = run(tr, frames)
    assert (rep["failed_criterion"], rep["failed_step"]) == ("temperature", 3)
    assert len(rep["series"]["step"]) == 6
    assert tr.update(frames[5]) is False


def test_engine_diagnostics_without_positions(ref):
    # a LAMMPS-style frame with only the engine's global minimum distance (A)
    frames = []
    for k in range(6):
        s = snap(nacl(), k, min_distance=2.7 if k < 4 else 1.5)
        s.positions = None
        frames.append(s)
    rep = run(StabilityTracker(cfg(), ref, "nvt", 300.0, 0.005), frames)
    assert (rep["failed_criterion"], rep["failed_step"]) == ("close_contact", 4)
    assert rep["series"]["engine_min_distance"][4] == 1.5


def test_lost_atoms_message_and_record_failure(ref):
    tr = StabilityTracker(cfg(), ref, "nvt", 300.0, 1.0)
    tr.update(snap(nacl(), 0))
    small = nacl()[:-1]
    with pytest.raises(ValueError, match="atoms were lost"):
        tr.update(snap(small, 1))
    tr.record_failure("lost_atoms", 1, 0.001, detail="LAMMPS lost atoms")
    rep = tr.report()
    assert rep["failed_criterion"] == "lost_atoms" and rep["stability_index"] == 0.001


def test_default_thresholds_written_into_report(ref):
    tr = StabilityTracker(StabilityConfig(), ref, "nve", 300.0, 1.0)
    tr.update(snap(nacl(), 0, kinetic_energy=1.0))
    info = {c["name"]: c for c in tr.report()["criteria"]}
    assert info["temperature"]["t_max"] == pytest.approx(900.0)
    assert info["close_contact"]["factor"] == 0.75
    assert info["energy_conservation"]["max_drift_per_atom"] == 0.05
    assert info["rdf"]["max_error"] == 1.0 and info["rdf"]["window_ps"] == 0.5
    # the RDF grid of the reference takes precedence over the config's
    assert info["rdf"]["rmax"] == 5.0 and info["rdf"]["reference_source"] == "reference"


def test_contact_fallbacks_without_reference():
    tr = StabilityTracker(cfg(criteria=["close_contact"]), None, "nvt", 300.0, 1.0)
    tr.update(snap(nacl(), 0))
    th = tr.report()["criteria"][0]
    assert th["pair_source"]["Cl-Na"] == "covalent"
    tr = StabilityTracker(
        cfg(criteria=["close_contact"], contact_fallback="initial"), None, "nvt", 300.0, 1.0
    )
    tr.update(snap(nacl(), 0))
    th = tr.report()["criteria"][0]
    assert th["pair_min_distance"]["Cl-Na"] == pytest.approx(0.75 * 2.82)


# -- reports, config, reference I/O ----------------------------------------------------
def test_report_json_round_trip(tmp_path, ref):
    rng = np.random.default_rng(7)
    frames = [
        snap(jittered(nacl(), rng), k, temperature=300.0 if k < 8 else 2000.0) for k in range(10)
    ]
    tr = StabilityTracker(cfg(), ref, "nvt", 300.0, 0.009)
    run(tr, frames)
    rep = tr.write(tmp_path / "out")
    loaded = json.loads((tmp_path / "out" / "report.json").read_text())
    assert loaded == json.loads(json.dumps(rep))
    assert (tmp_path / "out" / "report.png").stat().st_size > 1000
    for key in (
        "stable_time_ps",
        "stability_index",
        "failed_criterion",
        "failed_step",
        "t_run_ps",
        "n_atoms",
        "ensemble",
        "target_temperature",
        "criteria",
        "series",
        "gnnff_version",
    ):
        assert key in loaded
    assert loaded["stability_index"] == pytest.approx(0.008 / 0.009)
    assert load_reports([tmp_path / "out"])[0]["failed_step"] == 8


def test_summarize_runs():
    def rep(tau, s, crit=None, status="completed"):
        return {
            "stable_time_ps": tau,
            "stability_index": s,
            "failed_criterion": crit,
            "status": "failed" if crit else status,
            "t_run_ps": 4.0,
        }

    summary = summarize_runs(
        [
            rep(1.0, 0.25, "close_contact"),
            rep(2.0, 0.5, "temperature"),
            rep(4.0, 1.0),
            rep(4.0, 1.0),
            rep(3.0, 0.75, status="interrupted"),
        ]
    )
    assert summary["n_runs"] == 5
    assert summary["median_stable_time_ps"] == 3.0
    assert summary["mean_stability_index"] == pytest.approx(0.7)
    assert summary["fraction_stable"] == pytest.approx(0.4)
    assert summary["ended_by"] == {
        "close_contact": 1,
        "interrupted": 1,
        "none": 2,
        "temperature": 1,
    }
    with pytest.raises(ValueError, match="at least one"):
        summarize_runs([])


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'contact_factor'"):
        StabilityConfig.from_dict({"contact_facter": 0.5})
    with pytest.raises(ValueError, match="did you mean 'close_contact'"):
        StabilityConfig(criteria=["close_contacts"])
    with pytest.raises(ValueError, match="rdf_threshold must be a positive"):
        StabilityConfig(rdf_threshold=-1)
    with pytest.raises(ValueError, match="rdf_mode must be one of"):
        StabilityConfig(rdf_mode="partials")
    with pytest.raises(ValueError, match="interval"):
        StabilityConfig(interval=0)
    path = tmp_path / "c.yaml"
    path.write_text("stability:\n  interval: 5\n  t_max: 2000\n  criteria: [finite, rdf]\n")
    c = StabilityConfig.from_yaml(path)
    assert (c.interval, c.t_max, c.criteria) == (5, 2000, ["finite", "rdf"])
    assert StabilityConfig.from_dict(c.to_dict()) == c
    path.write_text("intervall: 5\n")
    with pytest.raises(ValueError, match=r"c\.yaml.*did you mean 'interval'"):
        StabilityConfig.from_yaml(path)


def test_reference_round_trip(tmp_path, ref):
    path = ref.save(tmp_path / "ref.json")
    back = StabilityReference.load(path)
    assert back.pair_min_distances == pytest.approx(ref.pair_min_distances)
    np.testing.assert_allclose(back.rdf_total, ref.rdf_total)
    assert set(back.rdf_partial) == {"Cl-Cl", "Cl-Na", "Na-Na"}
    assert ref.pair_min_distances["Cl-Na"] < 2.82
    (tmp_path / "bad.json").write_text('{"format": "something"}')
    with pytest.raises(ValueError, match="not a stability reference"):
        StabilityReference.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="has no RDF"):
        no_rdf = StabilityReference.from_frames([nacl()], with_rdf=False)
        StabilityTracker(cfg(rdf_reference="reference"), no_rdf, "nvt", 300.0, 1.0)


def test_snapshot_from_atoms_uses_only_current_results():
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", cubic=True)
    atoms.calc = EMT()
    atoms.get_forces()
    s = Snapshot.from_atoms(atoms, 0, 0.0)
    assert s.forces is not None and s.potential_energy is not None
    atoms.positions[0, 0] += 0.1  # results are now stale: no silent recomputation
    s = Snapshot.from_atoms(atoms, 1, 0.001)
    assert s.forces is None and s.potential_energy is None
    with pytest.raises(ValueError, match="positions has shape"):
        Snapshot(0, 0.0, [29, 29], np.zeros((3, 3)), np.eye(3), [True] * 3)


# -- CLI -------------------------------------------------------------------------------
def _parser():
    p = argparse.ArgumentParser(prog="gnnff")
    register(p.add_subparsers(dest="command"))
    return p


def test_cli_reference_and_analyze(tmp_path, capsys):
    rng = np.random.default_rng(8)
    train = [jittered(nacl(), rng) for _ in range(3)]
    write(tmp_path / "train.extxyz", train)
    traj = []
    for k in range(30):
        a = jittered(nacl(), rng)
        if k >= 20:
            a.positions[1] = a.positions[0] + np.array([0.9, 0.0, 0.0])
        a.set_momenta(np.zeros((64, 3)))
        a.calc = SinglePointCalculator(a, energy=-50.0, forces=np.zeros((64, 3)))
        a.info["step"] = 10 * k
        traj.append(a)
    write(tmp_path / "traj.extxyz", traj)

    p = _parser()
    args = p.parse_args(
        [
            "stability",
            "reference",
            str(tmp_path / "train.extxyz"),
            "--out",
            str(tmp_path / "ref.json"),
            "--rdf-rmax",
            "5",
            "--rdf-nbins",
            "50",
        ]
    )
    assert args.func(args) == 0
    assert StabilityReference.load(tmp_path / "ref.json").n_frames == 3

    args = p.parse_args(
        [
            "stability",
            "analyze",
            str(tmp_path / "traj.extxyz"),
            "--reference",
            str(tmp_path / "ref.json"),
            "--dt-fs",
            "1",
            "--out",
            str(tmp_path / "rep"),
        ]
    )
    assert args.func(args) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert (rep["failed_criterion"], rep["failed_step"]) == ("close_contact", 200)
    assert rep["t_run_ps"] == pytest.approx(0.29)
    assert rep["series"]["epot"][0] == -50.0

    # an extxyz reference is accepted directly
    args = p.parse_args(
        [
            "stability",
            "analyze",
            str(tmp_path / "traj.extxyz"),
            "--reference",
            str(tmp_path / "train.extxyz"),
            "--dt-fs",
            "1",
            "--out",
            str(tmp_path / "rep2"),
        ]
    )
    assert args.func(args) == 0

    args = p.parse_args(
        [
            "stability",
            "summarize",
            str(tmp_path / "rep"),
            str(tmp_path / "rep2"),
            "--out",
            str(tmp_path / "summary.json"),
        ]
    )
    assert args.func(args) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["n_runs"] == 2

    for a in traj:
        del a.info["step"]
    write(tmp_path / "nostep.extxyz", traj)
    args = p.parse_args(
        ["stability", "analyze", str(tmp_path / "nostep.extxyz"), "--out", str(tmp_path / "rep3")]
    )
    assert args.func(args) == 2
    assert "--dt-fs" in capsys.readouterr().err
