"""Stability monitoring of LAMMPS runs exactly as LAMMPS runs them (fix gnnff/stability and
`gnnff lammps run`), and the setups that would silently give wrong physics (issue 16).

Every case runs on 1 MPI rank and on 2 ranks where one rank owns no atoms (the structure sits
in the left half of a long box, `processors 2 1 1`)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lammps_fixtures as lf  # noqa: E402

pytest.importorskip("lammps")
if shutil.which("g++") is None:
    pytest.skip("no C++ compiler to build the plugin", allow_module_level=True)
from test_lammps_plugin import run as run_spec  # noqa: E402

SPECIES = ("O", "Si")
LAYOUTS = {1: [], 2: ["processors 2 1 1"]}  # 2 ranks: rank 1 owns no atom
# a `gnnff lammps run` costs ~10-20 s (MPI start, torch import): the 2-rank runs are slow tests
RANKS = [1, pytest.param(2, marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def plugin() -> str:
    from gnnff.lammps.build import build_plugin

    return str(build_plugin(quiet=True))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return lf.write_toy_model(tmp_path_factory.mktemp("stab") / "toy.pt")


def cluster(seed: int = 1, symbols: tuple[str, ...] = SPECIES) -> Atoms:
    """SiO2-like cluster (36 atoms) in the left half of a 60 x 30 x 30 A periodic box."""
    slab = lf.sio2_like_cell((2, 2, 1), seed=seed)
    return Atoms(slab.get_chemical_symbols(), positions=slab.positions + 8.0,
                 cell=np.diag([60.0, 30.0, 30.0]), pbc=True)  # fmt: skip


def head(data: Path, nprocs: int) -> str:
    return "\n".join(["units metal", "atom_style atomic", "boundary p p p", *LAYOUTS[nprocs],
                      f"read_data {data}"])  # fmt: skip


def drive(tmp: Path, script: str, nprocs: int, **kw) -> tuple[dict, dict]:
    from gnnff.lammps.driver import run_lammps_input

    (tmp / "in.case").write_text(script)
    info = run_lammps_input(tmp / "in.case", tmp / "run", np_=nprocs, **kw)
    return info, json.loads((tmp / "run" / "report.json").read_text())


STAB = "interval: 10\ncriteria: [finite, temperature, close_contact]\n"


@pytest.mark.parametrize("nprocs", RANKS)
def test_script_monitored_as_lammps_runs_it(model, tmp_path, nprocs):
    """fix halt, a run in an included file, a jump loop, `run N pre no post no`, `run N upto`:
    every step LAMMPS runs is monitored, steps and t_run are LAMMPS's own."""
    lf.write_lammps_data(cluster(), tmp_path / "c.data", SPECIES)
    (tmp_path / "in.part").write_text("run 10\n")
    (tmp_path / "stab.yaml").write_text(STAB)
    script = (
        head(tmp_path / "c.data", nprocs)
        + f"""
pair_style gnnff
pair_coeff * * {model} O Si
velocity all create 300 1 loop geom
timestep 0.001
fix nve all nve
variable x equal step
fix h all halt 5 v_x > 0 error continue
run 40
unfix h
include in.part
label loop
variable i loop 2
run 10 pre no post no
next i
jump SELF loop
run 40 upto
"""
    )
    (tmp_path / "stab.yaml").write_text("interval: 10\ncriteria: [finite, close_contact]\n")
    info, rep = drive(tmp_path, script, nprocs, stability=tmp_path / "stab.yaml")
    assert info["status"] == "halted" and rep["status"] == "halted"
    assert rep["halt"]["step"] == 5 and rep["halt"]["time_ps"] == pytest.approx(0.005)
    # 5 steps (halted) + 10 (include) + 2 x 10 (loop) + 5 (upto 40) = 40 steps of 1 fs
    assert rep["t_run_ps"] == pytest.approx(0.040) and rep["stability_index"] == 1.0
    # checks: every 10 steps, plus the first step of each run with a setup (0, 5, 35; a
    # `run ... pre no` has none)
    assert rep["series"]["step"] == [0, 5, 10, 20, 30, 35, 40]
    assert rep["last_step"] == 40 and rep["n_atoms"] == 36
    # LAMMPS tallied the energy on every checked step (the fix asks for its next check step)
    assert all(e is not None for e in rep["series"]["epot"])


@pytest.mark.slow
def test_fix_halt_alone_is_reported_halted(model, tmp_path):
    lf.write_lammps_data(cluster(), tmp_path / "c.data", SPECIES)
    script = (
        head(tmp_path / "c.data", 1)
        + f"""
pair_style gnnff
pair_coeff * * {model} O Si
velocity all create 300 1 loop geom
timestep 0.001
fix nve all nve
variable x equal step
fix h all halt 5 v_x > 0 error continue
run 40
"""
    )
    info, rep = drive(tmp_path, script, 1)
    assert info["status"] == rep["status"] == "halted"
    assert rep["halt"]["step"] == 5 and rep["t_run_ps"] == pytest.approx(0.005)
    assert rep["failed_criterion"] is None and rep["stability_index"] == 1.0


def close_pair_cluster() -> tuple[Atoms, int, int]:
    """The cluster with two Si atoms 0.9 A apart (Si-Si threshold 0.75 x 2 x 1.11 = 1.665 A)."""
    atoms = cluster()
    si = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Si"]
    i, j = si[0], si[1]
    d = atoms.positions[i] - atoms.positions
    d[i] = np.inf
    away = atoms.positions[i] + 0.9 * np.array([0.0, 0.0, 1.0])
    atoms.positions[j] = away
    return atoms, i, j


@pytest.mark.parametrize("nprocs", RANKS)
def test_step0_close_contact_same_in_both_engines(model, tmp_path, nprocs):
    """A start with a Si-Si pair at 0.9 A fails close_contact at step 0 in gnnff md and in
    gnnff lammps run (S = 0 in both), and LAMMPS writes the failing frame."""
    from ase.io import read

    from gnnff.calculators import GNNFFCalculator
    from gnnff.calculators.md import MDSettings, run_md
    from gnnff.stability import StabilityConfig
    from gnnff.stability.failing import INFO_FIELDS

    atoms, i, j = close_pair_cluster()
    lf.write_lammps_data(atoms, tmp_path / "c.data", SPECIES)
    script = (
        head(tmp_path / "c.data", nprocs)
        + f"""
pair_style gnnff
pair_coeff * * {model} O Si
velocity all create 300 1 loop geom
timestep 0.001
fix nve all nve
run 20
"""
    )
    info, rep = drive(tmp_path, script, nprocs)
    cfg = StabilityConfig(interval=10)
    ase_rep = run_md(atoms, GNNFFCalculator(model), MDSettings(
        ensemble="nve", temperature=300, time_ps=0.02, dt_fs=1.0, check_interval=10),
        tmp_path / "ase", stability_config=cfg, progress=False)  # fmt: skip
    for r in (rep, ase_rep):
        assert r["failed_criterion"] == "close_contact" and r["failed_step"] == 0
        assert r["stability_index"] == 0.0 and r["failure"]["pair"] == "Si-Si"
        assert r["failure"]["value"] == pytest.approx(0.9, abs=1e-9)
        assert r["failure"]["threshold"] == pytest.approx(0.75 * 2 * 1.11)
    assert info["status"] == "failed" and rep["series"]["step"] == [0]  # the run stopped
    frames = read(tmp_path / "run" / "failing.extxyz", ":")
    assert len(frames) == 1
    fr = frames[0]
    assert set(INFO_FIELDS) <= set(fr.info) and fr.info["is_failure"]
    assert fr.info["criterion"] == "close_contact" and fr.info["pair"] == "Si-Si"
    assert fr.info["step"] == 0 and fr.info["failed_step"] == 0
    a, b = fr.info["atom_indices"]
    assert sorted((a, b)) == sorted((i, j))  # atom IDs follow the data file's order
    assert fr.get_distance(a, b, mic=True) == pytest.approx(0.9, abs=1e-9)
    assert fr.calc is None and "forces" not in fr.arrays  # model labels are not written
    np.testing.assert_allclose(
        fr.positions - fr.positions[0], atoms.positions - atoms.positions[0], atol=1e-9
    )
    ase_fr = read(tmp_path / "ase" / "failing.extxyz", ":")  # the ASE side, same fields
    assert len(ase_fr) == 1 and set(INFO_FIELDS) <= set(ase_fr[0].info)
    assert ase_fr[0].info["criterion"] == "close_contact" and ase_fr[0].info["pair"] == "Si-Si"
    assert ase_fr[0].info["step"] == 0 and ase_fr[0].info["is_failure"]


@pytest.mark.parametrize(
    "style, nprocs",
    [
        ("hybrid/overlay", 1),
        pytest.param("hybrid/overlay", 2, marks=pytest.mark.slow),
        pytest.param("hybrid/scaled", 1, marks=pytest.mark.slow),
    ],
)
def test_hybrid_pair_coeff_uses_the_models_reference(tmp_path, style, nprocs):
    from gnnff.stability import StabilityReference

    stored = {"O-O": 2.1, "O-Si": 1.45, "Si-Si": 2.7}
    ref = StabilityReference(pair_min_distances=stored, species=["O", "Si"], n_frames=2)
    model = lf.write_toy_model(tmp_path / "ref.pt", training={"stability_reference": ref.to_dict()})
    lf.write_lammps_data(cluster(), tmp_path / "c.data", SPECIES)
    scale = " 1.0" if style == "hybrid/scaled" else ""
    script = (
        head(tmp_path / "c.data", nprocs)
        + f"""
pair_style {style}{scale} gnnff{scale} zbl 1.0 2.0
pair_coeff * * gnnff {model} O Si
pair_coeff 1 1 zbl 8 8
pair_coeff 1 2 zbl 8 14
pair_coeff 2 2 zbl 14 14
velocity all create 300 1 loop geom
timestep 0.001
fix nve all nve
run 10
"""
    )
    (tmp_path / "stab.yaml").write_text(STAB)
    info, rep = drive(tmp_path, script, nprocs, stability=tmp_path / "stab.yaml")
    crit = next(c for c in rep["criteria"] if c["name"] == "close_contact")
    for key, d in stored.items():
        assert crit["pair_source"][key] == "reference"
        assert crit["pair_min_distance"][key] == pytest.approx(0.75 * d)
    assert crit["judged_by"] == "fix gnnff/stability"  # the fix's thresholds, not recomputed


def bonded_data(atoms: Atoms, path: Path) -> Path:
    """`atom_style bond` data file of ``atoms`` (molecule 1, one bond type, no bonds yet)."""
    lf.write_lammps_data(atoms, path, SPECIES)
    text = path.read_text()
    text = re.sub(r"(\d+) atom types", r"\1 atom types\n1 bond types", text)
    lines = text.splitlines()
    k = next(n for n, ln in enumerate(lines) if ln.strip().startswith("Atoms"))
    lines[k] = "Atoms # bond"
    for n in range(k + 1, len(lines)):
        parts = lines[n].split()
        if len(parts) >= 5:
            lines[n] = " ".join([parts[0], "1", *parts[1:]])
        elif n > k + 1 and not parts:
            break
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("nprocs", [1, 2])
def test_special_bonds_that_drop_neighbours_are_refused(plugin, model, tmp_path, nprocs):
    atoms = cluster()
    data = bonded_data(atoms, tmp_path / "bond.data")
    lf.write_lammps_data(atoms, tmp_path / "atomic.data", SPECIES)

    def spec(special: list[str]) -> dict:
        return {"commands": ["units metal", "atom_style bond", "boundary p p p",
                             *LAYOUTS[nprocs],
                             f"read_data {data} extra/bond/per/atom 8 extra/special/per/atom 64",
                             "bond_style zero", "bond_coeff 1 1.6",
                             "pair_style gnnff", f"pair_coeff * * {model} O Si",
                             "create_bonds many all all 1 1.3 1.9", *special, "run 0"],
                "gather": ["f:3"], "computes": ["thermo_pe"]}  # fmt: skip

    res = run_spec(spec([]), plugin, nprocs, tmp_path)
    assert "special_bonds lj/coul 1.0 1.0 1.0" in res.get("error", ""), res
    ok = run_spec(spec(["special_bonds lj/coul 1.0 1.0 1.0"]), plugin, nprocs, tmp_path)
    assert "error" not in ok, ok["error"]
    ref = lf.reference_results(model, atoms)
    assert ok["thermo_pe"] == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(ok["f"], ref["forces"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_null_types_under_hybrid_give_the_substyle_sum(plugin, model, tmp_path, nprocs):
    """`pair_coeff * * gnnff model.pt O Si NULL`: type 3 (Ar) is lj/cut's; the energy is the
    model on the O/Si atoms alone plus lj/cut on the pairs with Ar."""
    atoms = cluster()
    symbols = atoms.get_chemical_symbols()
    o_sites = [k for k, s in enumerate(symbols) if s == "O"][:4]
    for k in o_sites:
        symbols[k] = "Ar"
    atoms.set_chemical_symbols(symbols)
    lf.write_lammps_data(atoms, tmp_path / "ar.data", ("O", "Si", "Ar"))
    base = ["units metal", "atom_style atomic", "boundary p p p", *LAYOUTS[nprocs],
            f"read_data {tmp_path / 'ar.data'}"]  # fmt: skip
    hybrid = {"commands": base + ["pair_style hybrid gnnff lj/cut 6.0",
                                  f"pair_coeff * * gnnff {model} O Si NULL",
                                  "pair_coeff 1*3 3 lj/cut 0.01 3.0", "run 0"],
              "gather": ["f:3"], "computes": ["thermo_pe"]}  # fmt: skip
    lj = {"commands": base + ["pair_style lj/cut 6.0", "pair_coeff * * 0.0 1.0",
                              "pair_coeff 1*3 3 0.01 3.0", "run 0"],
          "gather": ["f:3"], "computes": ["thermo_pe"]}  # fmt: skip
    res = run_spec(hybrid, plugin, nprocs, tmp_path)
    assert "error" not in res, res["error"]
    res_lj = run_spec(lj, plugin, nprocs, tmp_path)
    mask = np.array([s != "Ar" for s in symbols])
    ref = lf.reference_results(model, atoms[mask])
    assert res["thermo_pe"] == pytest.approx(ref["energy"] + res_lj["thermo_pe"], rel=1e-10)
    f_expect = np.array(res_lj["f"])
    f_expect[mask] += ref["forces"]
    np.testing.assert_allclose(res["f"], f_expect, rtol=0, atol=1e-9)


def test_plain_lammps_records_without_the_driver(plugin, model, tmp_path):
    """`lmp -in` with `-var gnnff_monitor "ARGS"` (or a fix line): records and the failing
    frames without any Python driver; the run stops at the failure (`stop soft`)."""
    from gnnff.lammps.records import read_records

    atoms, i, j = close_pair_cluster()
    lf.write_lammps_data(atoms, tmp_path / "c.data", SPECIES)
    rec, fail = tmp_path / "rec.jsonl", tmp_path / "fail.extxyz"
    spec = {"commands": [f'variable gnnff_monitor string "10 file {rec} failing {fail}"',
                         *head(tmp_path / "c.data", 1).splitlines(), "pair_style gnnff",
                         f"pair_coeff * * {model} O Si", "velocity all create 300 1 loop geom",
                         "fix nve all nve", "run 50", "run 50"],
            "computes": ["thermo_pe"]}  # fmt: skip
    res = run_spec(spec, plugin, 1, tmp_path)
    assert "error" not in res, res["error"]
    records = read_records(rec)
    checks = [r for r in records if r["event"] == "check"]
    ends = [r for r in records if r["event"] == "end"]
    assert checks[0]["step"] == 0 and not checks[0]["ok"]
    assert checks[0]["failed"][0]["criterion"] == "close_contact"
    assert sorted(checks[0]["failed"][0]["ids"]) == sorted((i + 1, j + 1))
    # the run stopped at step 0; LAMMPS skips the second run after a soft stop
    assert [e["step"] for e in ends] == [0] and ends[0]["halted"]
    assert len([r for r in records if r["event"] == "start"]) == 1
    assert fail.is_file()


def test_radii_table_matches_ase():
    from ase.data import covalent_radii

    text = (Path(__file__).resolve().parents[1] / "gnnff" / "lammps" / "gnnff_radii.h").read_text()
    body = text.split("RADIUS[NELEM] = {", 1)[1].split("};", 1)[0]
    values = [float(v) for v in body.replace("\n", " ").split(",") if v.strip()]
    np.testing.assert_array_equal(values, covalent_radii)


def test_t_run_counts_planned_length_after_a_failure():
    from gnnff.lammps.records import run_time

    dt = {"dt_ps": 0.001}
    recs = [
        {"event": "start", "step": 0, "time_ps": 0.0, "laststep": 100, **dt},
        {"event": "check", "step": 0, "time_ps": 0.0, "ok": True},
        {
            "event": "end",
            "step": 50,
            "time_ps": 0.05,
            "start": 0,
            "laststep": 100,
            "halted": True,
            **dt,
        },  # fix halt: counts what ran
        {
            "event": "end",
            "step": 100,
            "time_ps": 0.1,
            "start": 50,
            "laststep": 100,
            "halted": False,
            **dt,
        },  # a `run 50 pre no`
        {"event": "start", "step": 100, "time_ps": 0.1, "laststep": 300, **dt},
        {"event": "check", "step": 110, "time_ps": 0.11, "ok": False},
        {
            "event": "end",
            "step": 110,
            "time_ps": 0.11,
            "start": 100,
            "laststep": 300,
            "halted": True,
            **dt,
        },  # stopped by the failure: counts what it asked for
    ]
    t_run, halted = run_time(recs)
    assert t_run == pytest.approx(0.05 + 0.05 + 0.2)
    assert halted == {"step": 50, "time_ps": 0.05}
    t_run, _ = run_time(recs[:6])  # a LAMMPS error in the last run
    assert t_run == pytest.approx(0.05 + 0.05 + 0.2)


def test_minimize_then_run_is_monitored_from_the_runs_first_step(plugin, model, tmp_path):
    """`minimize` is not MD: no record; the run after it is checked from its first step."""
    from gnnff.lammps.records import read_records

    lf.write_lammps_data(cluster(), tmp_path / "c.data", SPECIES)
    rec = tmp_path / "rec.jsonl"
    spec = {"commands": [f'variable gnnff_monitor string "5 file {rec} failing none"',
                         *head(tmp_path / "c.data", 1).splitlines(), "pair_style gnnff",
                         f"pair_coeff * * {model} O Si", "minimize 0 1e-3 7 100",
                         "velocity all create 300 1 loop geom", "fix nve all nve", "run 10"],
            "computes": ["thermo_pe"]}  # fmt: skip
    res = run_spec(spec, plugin, 1, tmp_path)
    assert "error" not in res, res["error"]
    records = read_records(rec)
    start = next(r for r in records if r["event"] == "start")
    steps = [r["step"] for r in records if r["event"] == "check"]
    assert start["step"] == 7 and steps[0] == 7  # 7 minimizer iterations, then the run
    assert steps == [7] + [s for s in range(10, 18) if s % 5 == 0]
    assert [r["event"] for r in records].count("end") == 1


@pytest.mark.parametrize(
    "args, expect",
    [
        ("10 colour red", "unknown keyword 'colour'"),
        ("0", "N must be a positive number"),
        ("10 stop maybe", "stop must be soft, continue, error or no"),
        ("10 refmin OSi 1.2", "must look like O-Si"),
    ],
)
def test_fix_argument_errors(plugin, model, tmp_path, args, expect):
    lf.write_lammps_data(cluster(), tmp_path / "c.data", SPECIES)
    out = f"file {tmp_path / 'r.jsonl'} failing none"
    spec = {"commands": [*head(tmp_path / "c.data", 1).splitlines(), "pair_style gnnff",
                         f"pair_coeff * * {model} O Si", f"fix s all gnnff/stability {args} {out}",
                         "run 0"]}  # fmt: skip
    res = run_spec(spec, plugin, 1, tmp_path)
    assert expect in res.get("error", ""), res


def test_fix_needs_pair_gnnff(plugin, tmp_path):
    lf.write_lammps_data(cluster(), tmp_path / "c.data", SPECIES)
    spec = {
        "commands": [
            *head(tmp_path / "c.data", 1).splitlines(),
            "pair_style zero 4.0",
            "pair_coeff * *",
            f"fix s all gnnff/stability 10 file {tmp_path / 'r.jsonl'}",
            "run 0",
        ]
    }
    res = run_spec(spec, plugin, 1, tmp_path)
    assert "needs pair_style gnnff" in res.get("error", ""), res


def test_fix_arguments_follow_the_settings(tmp_path):
    from gnnff.lammps.records import fix_arguments
    from gnnff.stability import StabilityConfig, StabilityReference

    cfg = StabilityConfig(
        interval=7,
        criteria=["finite", "close_contact"],
        contact_factor=0.6,
        t_max=2000.0,
        stop_on_failure=False,
    )
    ref = StabilityReference(pair_min_distances={"O-Si": 1.45}, species=["O", "Si"])
    args = fix_arguments(cfg, ref, tmp_path, ensemble="nvt", temperature=900.0).split()
    opts = dict(zip(args[1::2], args[2::2], strict=False))
    assert args[0] == "7" and opts["temperature"] == "no" and opts["drift"] == "no"
    assert opts["contact"] == "yes" and opts["factor"] == "0.6" and opts["stop"] == "no"
    assert opts["tmax"] == "2000.0" and opts["target"] == "900.0" and opts["ensemble"] == "nvt"
    assert opts["reference"] == "none" and args[args.index("refmin") + 1 :][:2] == ["O-Si", "1.45"]
    assert fix_arguments(StabilityConfig(), "model", tmp_path).split()[-3] == "model"
    with pytest.raises(ValueError, match="spaces"):
        fix_arguments(StabilityConfig(), "model", tmp_path / "a b")


def test_replay_writes_failing_frames_for_an_rdf_failure(plugin, model, tmp_path):
    """The RDF is the one criterion the fix does not judge: it is judged on the recorded frames
    after the run (a 5 fs window, a tiny threshold: the window after the reference one fails),
    and Python writes failing.extxyz itself; the natively judged criteria keep the fix's
    verdict (all passed)."""
    from ase.io import read

    from gnnff.lammps.records import read_records, replay
    from gnnff.stability import StabilityConfig

    lf.write_lammps_data(cluster(), tmp_path / "c.data", SPECIES)
    rec, frames = tmp_path / "rec.jsonl", tmp_path / "frames.bin"
    spec = {"commands": [*head(tmp_path / "c.data", 1).splitlines(), "pair_style gnnff",
                         f"pair_coeff * * {model} O Si", "velocity all create 300 1 loop geom",
                         "timestep 0.001", "fix nve all nve",
                         f"fix s all gnnff/stability 5 file {rec} frames {frames} failing none",
                         "run 20"]}  # fmt: skip
    res = run_spec(spec, plugin, 1, tmp_path)
    assert "error" not in res, res["error"]
    records = read_records(rec)
    assert all(r["ok"] for r in records if r["event"] == "check")
    native = StabilityConfig(interval=5, criteria=["finite", "close_contact"])
    same = replay(records, frames, native, "model", failing_path=tmp_path / "none.extxyz")
    assert not same.failed and same.n_checks == 5 and not (tmp_path / "none.extxyz").exists()
    cfg = StabilityConfig(interval=5, criteria=["close_contact", "rdf"], rdf_window_ps=0.005,
                          rdf_threshold=1e-6, rdf_rmax=5.0, rdf_nbins=500)  # fmt: skip
    strict = replay(records, frames, cfg, "none", failing_path=tmp_path / "f.extxyz", keep=2)
    assert strict.failed and strict.first_failure["criterion"] == "rdf"
    assert strict.first_failure["step"] == 10  # step 5 ends the first window: the reference
    fr = read(tmp_path / "f.extxyz", ":")
    assert [f.info["step"] for f in fr] == [0, 5, 10] and fr[-1].info["criterion"] == "rdf"
    assert strict.t_run_ps == pytest.approx(0.020)  # what LAMMPS ran


def test_atoms_added_by_fix_deposit_are_monitored(plugin, model, tmp_path):
    from gnnff.lammps.records import read_records, replay
    from gnnff.stability import StabilityConfig

    lf.write_lammps_data(cluster(), tmp_path / "c.data", SPECIES)
    rec, frames = tmp_path / "rec.jsonl", tmp_path / "frames.bin"
    spec = {"commands": [*head(tmp_path / "c.data", 1).splitlines(), "pair_style gnnff",
                         f"pair_coeff * * {model} O Si", "velocity all create 300 1 loop geom",
                         "timestep 0.001", "fix nve all nve",
                         "region far block 35 55 5 25 5 25",
                         "fix dep all deposit 2 2 5 4321 region far near 3.0",
                         f"fix s all gnnff/stability 5 file {rec} frames {frames} failing none",
                         "run 10"]}  # fmt: skip
    res = run_spec(spec, plugin, 1, tmp_path)
    assert "error" not in res, res["error"]
    tracker = replay(read_records(rec), frames, StabilityConfig(
        interval=5, criteria=["finite", "close_contact"]), "model")  # fmt: skip
    assert not tracker.failed and tracker.n_atoms == 38  # 36 + 2 deposited Si
    assert tracker.series["step"] == [0, 5, 10]
