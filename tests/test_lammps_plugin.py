"""pair_style gnnff (C++ plugin) against the TorchScript model called directly, on 1 and 2 MPI
ranks, plus the stability diagnostics and the misuse errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lammps_fixtures as lf  # noqa: E402
from block_cases import BLOCK_CASES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SPECIES = ("O", "Si")
MPIRUN = Path(sys.executable).parent / "mpirun"

pytest.importorskip("lammps")
if shutil.which(os.environ.get("CXX", "g++")) is None:
    pytest.skip("no C++ compiler to build the plugin", allow_module_level=True)


@pytest.fixture(scope="session")
def plugin() -> str:
    from gnnff.lammps.build import build_plugin

    return str(build_plugin(quiet=True))


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lammps_plugin")
    lf.write_toy_model(d / "toy.pt", SPECIES, cutoff=4.0, dtype="float64")
    lf.write_toy_model(d / "toy32.pt", SPECIES, cutoff=4.0, dtype="float32")
    lf.write_toy_model(d / "nometa.pt", SPECIES, with_metadata=False)
    (d / "garbage.pt").write_bytes(b"this is not a zip archive")
    atoms = lf.sio2_like_cell((2, 2, 2), seed=0)
    lf.write_lammps_data(atoms, d / "sio2.data", SPECIES)
    return d


def header(data: Path, extra: list[str] | None = None) -> list[str]:
    return ["units metal", "atom_style atomic", "boundary p p p", *(extra or []),
            f"read_data {data}"]  # fmt: skip


def run(spec: dict, plugin: str, np_: int = 1, tmp: Path | None = None) -> dict:
    spec = {"plugin": plugin, **spec}
    if np_ == 1:
        return lf.run_lammps(spec)
    spec_path, out_path = tmp / "spec.json", tmp / "out.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [str(MPIRUN), "-np", str(np_), sys.executable, str(Path(lf.__file__)),
           str(spec_path), str(out_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out_path.read_text())


EVAL = [
    "compute pe all pe/atom",
    "compute st all stress/atom NULL virial",
    "compute vir all pressure NULL virial",
    "compute diag all gnnff/diag",
    "compute pg all pair gnnff",
    "thermo_style custom step pe c_vir[1] c_diag[1] c_diag[2] c_diag[3] c_pg[2]",
    "run 0",
]
GATHER = ["f:3", "c_pe:1", "c_st:6"]
COMPUTES = ["thermo_pe", "vir:6", "diag:3", "pg:2"]


def check_against_reference(res: dict, ref: dict, volume: float, rtol: float = 1e-8) -> None:
    assert "error" not in res, res.get("error")
    assert res["thermo_pe"] == pytest.approx(ref["energy"], rel=rtol)
    escale = np.abs(ref["energies"]).max()
    np.testing.assert_allclose(np.ravel(res["c_pe"]), ref["energies"], rtol=0, atol=rtol * escale)
    fscale = np.abs(ref["forces"]).max()
    np.testing.assert_allclose(np.array(res["f"]), ref["forces"], rtol=0, atol=rtol * fscale)
    sscale = np.abs(ref["stress"]).max()
    stress = lf.lammps_pressure_to_ase_stress(res["vir"])
    np.testing.assert_allclose(stress, ref["stress"], rtol=0, atol=rtol * sscale)
    # per-atom virial (stress/atom, -P*V per atom) sums to the global one
    peratom = lf.lammps_pressure_to_ase_stress(-np.array(res["c_st"]).sum(0) / volume)
    np.testing.assert_allclose(peratom, ref["stress"], rtol=0, atol=rtol * sscale)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_matches_direct_model_triclinic(plugin, work, tmp_path, nprocs):
    atoms = lf.sio2_like_cell((2, 2, 2), seed=0)  # the structure in sio2.data
    assert len(atoms) == 72 and abs(atoms.cell[1, 0]) > 0.1  # triclinic
    ref = lf.reference_results(work / "toy.pt", atoms)
    spec = {
        "commands": header(work / "sio2.data")
        + ["pair_style gnnff", f"pair_coeff * * {work / 'toy.pt'} O Si", *EVAL],
        "gather": GATHER,
        "computes": COMPUTES,
    }
    res = run(spec, plugin, nprocs, tmp_path)
    assert res["nprocs"] == nprocs
    check_against_reference(res, ref, atoms.get_volume())
    # diagnostics: brute-force min distance over pairs within the cutoff, max |F|
    d = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)]
    assert res["diag"][0] == pytest.approx(d.min(), rel=1e-12)
    assert res["diag"][1] == pytest.approx(np.linalg.norm(ref["forces"], axis=1).max(), rel=1e-8)
    assert res["diag"][2] == 0
    assert res["pg"][1] > 0  # edges summed over ranks


def test_float32_model_runs_in_float64_lammps(plugin, work):
    spec = {
        "commands": header(work / "sio2.data")
        + ["pair_style gnnff", f"pair_coeff * * {work / 'toy32.pt'} O Si", *EVAL],
        "gather": GATHER,
        "computes": COMPUTES,
    }
    res32 = run(spec, plugin)
    spec["commands"][spec["commands"].index(f"pair_coeff * * {work / 'toy32.pt'} O Si")] = (
        f"pair_coeff * * {work / 'toy.pt'} O Si"
    )
    res64 = run(spec, plugin)
    assert res32["thermo_pe"] == pytest.approx(res64["thermo_pe"], rel=1e-5)
    np.testing.assert_allclose(res32["f"], res64["f"], atol=1e-3)


def test_rank_with_empty_subdomain(plugin, work, tmp_path):
    """All atoms in the left half of a long box, `processors 2 1 1`: rank 1 owns nothing."""
    from ase import Atoms

    slab = lf.sio2_like_cell((2, 2, 1), seed=1)
    cell = np.diag([60.0, 30.0, 30.0])
    atoms = Atoms(slab.get_chemical_symbols(), positions=slab.positions + [8.0, 8.0, 8.0],
                  cell=cell, pbc=True)  # fmt: skip
    assert atoms.positions[:, 0].max() < 25.0
    lf.write_lammps_data(atoms, tmp_path / "cluster.data", SPECIES)
    ref = lf.reference_results(work / "toy.pt", atoms)
    spec = {
        "commands": header(tmp_path / "cluster.data", ["processors 2 1 1"])
        + ["pair_style gnnff", f"pair_coeff * * {work / 'toy.pt'} O Si", *EVAL,
           "velocity all create 300 1 loop geom", "fix nve all nve", "run 5", "run 0"],
        "gather": GATHER,
        "computes": COMPUTES,
    }  # fmt: skip
    res = run(spec, plugin, 2, tmp_path)
    assert "error" not in res, res.get("error")
    assert res["nprocs"] == 2 and sorted(res["nlocal"]) == [0, len(atoms)]
    assert np.isfinite(res["thermo_pe"])
    # a run-0 comparison on the same layout (without the MD steps)
    spec["commands"] = spec["commands"][:-4]
    res0 = run(spec, plugin, 2, tmp_path)
    check_against_reference(res0, ref, atoms.get_volume())


def test_nve_trajectory_same_on_1_and_2_ranks(plugin, work, tmp_path):
    spec = {
        "commands": header(work / "sio2.data")
        + ["pair_style gnnff", f"pair_coeff * * {work / 'toy.pt'} O Si",
           "velocity all create 600 4928 loop geom", "timestep 0.001", "fix nve all nve",
           "thermo 50", "run 100"],
        "gather": ["x:3", "v:3"],
        "computes": ["thermo_pe", "thermo_temp"],
    }  # fmt: skip
    r1 = run(spec, plugin, 1)
    r2 = run(spec, plugin, 2, tmp_path)
    assert "error" not in r1 and "error" not in r2, (r1.get("error"), r2.get("error"))
    np.testing.assert_allclose(r1["x"], r2["x"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(r1["v"], r2["v"], rtol=0, atol=1e-9)
    assert r1["thermo_pe"] == pytest.approx(r2["thermo_pe"], rel=1e-10)
    assert r1["thermo_temp"] > 100  # it moved


def test_diag_drives_fix_halt(plugin, work):
    spec = {
        "commands": header(work / "sio2.data")
        + ["pair_style gnnff", f"pair_coeff * * {work / 'toy.pt'} O Si",
           "compute diag all gnnff/diag", "variable dmin equal c_diag[1]",
           "variable fmax equal c_diag[2]",
           "thermo_style custom step pe v_dmin v_fmax", "thermo 1",
           "velocity all create 300 1 loop geom", "fix nve all nve",
           "fix stop all halt 1 v_fmax > 0.0 error soft", "run 50"],
        "computes": ["thermo_pe"],
    }  # fmt: skip
    from gnnff.lammps.library import new_lammps

    lmp = new_lammps()
    lmp.command(f"plugin load {plugin}")
    for line in spec["commands"]:
        lmp.command(line)
    step = lmp.extract_global("ntimestep")
    lmp.close()
    assert step < 50  # halted by the max-force criterion


def _error_of(plugin: str, commands: list[str]) -> str:
    res = run({"commands": commands}, plugin)
    assert "error" in res, "expected a LAMMPS error"
    return res["error"]


@pytest.mark.parametrize(
    "case, expect",
    [
        ("missing", "not found or not readable"),
        ("garbage", "is not a TorchScript model file"),
        ("nometa", "not a gnnff model"),
        ("few", "got 1 element symbol(s) for 2 atom type(s)"),
        ("many", "got 3 element symbol(s) for 2 atom type(s)"),
        ("element", "element 'N' (atom type 1) is not one of the species"),
        ("newton", "requires newton pair on"),
        ("units", "requires `units metal`"),
    ],
)
def test_misuse_errors(plugin, work, case, expect):
    data = work / "sio2.data"
    model = work / "toy.pt"
    coeff = f"pair_coeff * * {model} O Si"
    pre = []
    units = "units metal"
    if case == "missing":
        coeff = f"pair_coeff * * {work / 'nope.pt'} O Si"
    elif case in ("garbage", "nometa"):
        coeff = f"pair_coeff * * {work / (case + '.pt')} O Si"
    elif case == "few":
        coeff = f"pair_coeff * * {model} O"
    elif case == "many":
        coeff = f"pair_coeff * * {model} O Si O"
    elif case == "element":
        coeff = f"pair_coeff * * {model} N Si"
    elif case == "newton":
        pre = ["newton off"]
    elif case == "units":
        units = "units real"
    commands = [units, "atom_style atomic", *pre, f"read_data {data}", "pair_style gnnff",
                coeff, "run 0"]  # fmt: skip
    assert expect in _error_of(plugin, commands)


def test_style_visible_without_plugin_load(plugin):
    """With the package installed, `import lammps` finds the plugin through the entry point."""
    from importlib import metadata

    eps = [ep for ep in metadata.entry_points(group="lammps.plugins") if ep.name == "gnnff"]
    if not eps:
        pytest.skip("gnnff is not pip-installed (no lammps.plugins entry point)")
    code = (
        "from gnnff.lammps.library import new_lammps\n"
        "l = new_lammps()\n"
        "print(l.has_style('pair', 'gnnff'), l.has_style('compute', 'gnnff/diag'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=REPO)  # fmt: skip
    assert out.stdout.split() == ["True", "True"], out.stderr[-2000:]


def test_cache_key_tracks_versions_and_sources(monkeypatch, tmp_path):
    from gnnff.lammps import build

    monkeypatch.setenv("GNNFF_PLUGIN_DIR", str(tmp_path))
    key = build.build_key()
    assert build.plugin_dir() == str(tmp_path / key)
    assert not (tmp_path / key).exists()  # plugin_dir never builds
    real = build._version
    monkeypatch.setattr(build, "_version", lambda d: "9.9" if d == "torch" else real(d))
    assert build.build_key() != key
    monkeypatch.setattr(build, "_version", real)
    monkeypatch.setattr(build, "SRC_DIR", tmp_path / "src")
    (tmp_path / "src").mkdir()
    for name in build.SOURCES + build.HEADERS:
        (tmp_path / "src" / name).write_text("changed")
    assert build.build_key() != key


def _with_hyperparameters(src: Path, dst: Path, hyperparameters: dict) -> Path:
    """A copy of model file ``src`` whose metadata declares ``hyperparameters``."""
    import torch

    extra = {"metadata.json": ""}
    module = torch.jit.load(str(src), _extra_files=extra)
    meta = json.loads(extra["metadata.json"])
    meta["hyperparameters"] = hyperparameters
    torch.jit.save(module, str(dst), _extra_files={"metadata.json": json.dumps(meta)})
    return dst


def test_plugin_sizes_edge_blocks_as_the_ase_calculator(plugin, work, tmp_path):
    """Without `max_block_edges` the pair style chooses the CPU block size of
    ``cpu_block_edges`` (the ASE calculator's rule) from the model's metadata, and says so in
    the log; an explicit option is logged as given."""
    import torch

    from gnnff.calculators.memory import cpu_block_edges
    from gnnff.potentials import build_model, export_model

    torch.manual_seed(0)
    cfg = {"family": "allegro", "species": list(SPECIES), "cutoff": 4.0, "num_layers": 2,
           "num_scalar": 8, "num_tensor": 2, "mlp_hidden": [8]}  # fmt: skip
    base = {dt: export_model(build_model(cfg), tmp_path / f"m_{dt}.pt", dtype=dt)
            for dt in ("float32", "float64")}  # fmt: skip
    log = tmp_path / "log.lammps"
    commands = [f"log {log}", *header(work / "sio2.data"), "pair_style gnnff"]
    for k, (hp, dtype, _) in enumerate(BLOCK_CASES):
        model = _with_hyperparameters(base[dtype], tmp_path / f"case{k}.pt", hp)
        commands.append(f"pair_coeff * * {model} O Si")
    commands += ["pair_style gnnff max_block_edges 300", f"pair_coeff * * {base['float64']} O Si"]
    res = run({"commands": commands}, plugin)
    assert "error" not in res, res.get("error")
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("pair gnnff:")]
    assert len(lines) == len(BLOCK_CASES) + 1
    for line, (hp, dtype, edges) in zip(lines[:-1], BLOCK_CASES, strict=True):
        assert edges == cpu_block_edges(hp, getattr(torch, dtype))
        assert f"({dtype}, cutoff 4 A): edge blocks of {edges} (the CPU default" in line, line
    assert lines[-1].endswith("edge blocks of 300 (max_block_edges)")


def test_edge_blocks_in_lammps_equal_one_pass(plugin, work, tmp_path):
    """`pair_style gnnff max_block_edges N` (the model's edge blocks: bounded memory) gives the
    one-pass energies, forces and virial, on 2 ranks, and so does the default (blocks sized by
    the model: 10,000 edges for this float64 one; this cell has fewer); misuse is named."""
    import torch

    from gnnff.potentials import build_model, export_model

    torch.manual_seed(0)
    cfg = {"family": "allegro", "species": list(SPECIES), "cutoff": 4.0, "num_layers": 2,
           "num_scalar": 8, "num_tensor": 2, "mlp_hidden": [8]}  # fmt: skip
    model = export_model(build_model(cfg).double(), tmp_path / "m.pt", dtype="float64")
    results = []
    styles = ("pair_style gnnff max_block_edges 0", "pair_style gnnff max_block_edges 300",
              "pair_style gnnff")  # fmt: skip
    for style in styles:
        spec = {
            "commands": header(work / "sio2.data") + [style, f"pair_coeff * * {model} O Si", *EVAL],
            "gather": GATHER,
            "computes": COMPUTES,
        }
        folder = tmp_path / f"style{len(results)}"
        folder.mkdir()
        results.append(run(spec, plugin, 2, folder))
    one, blocked, default = results
    assert blocked["pg"][1] > 300  # more edges than one block: several backward passes
    assert blocked["thermo_pe"] == pytest.approx(one["thermo_pe"], rel=1e-12)
    np.testing.assert_allclose(blocked["f"], one["f"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(blocked["vir"], one["vir"], rtol=1e-10, atol=1e-10)
    assert default["thermo_pe"] == pytest.approx(one["thermo_pe"], rel=1e-12)
    np.testing.assert_allclose(default["f"], one["f"], rtol=0, atol=1e-10)
    base = ["units metal", "atom_style atomic", f"read_data {work / 'sio2.data'}"]
    toy = f"pair_coeff * * {work / 'toy.pt'} O Si"
    assert "predates edge blocking" in _error_of(
        plugin, [*base, "pair_style gnnff max_block_edges 10", toy, "run 0"]
    )
    assert "needs an integer >= 0" in _error_of(
        plugin, [*base, "pair_style gnnff max_block_edges -5", toy, "run 0"]
    )
    assert "except `max_block_edges N`" in _error_of(
        plugin, [*base, "pair_style gnnff 12", toy, "run 0"]
    )
