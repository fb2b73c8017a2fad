"""AOTInductor model packages (``.pt2``, issue 28): the same energies, forces and virials as
the TorchScript file of the same model (to 1e-10 in float64) through the ASE calculator and
LAMMPS (1 and 2 MPI ranks), and clear errors for packages that cannot run here.

Compiling a package takes a minute or two on 2 cores, so the tests that need one are marked
slow and share one compiled tiny model (module-scoped fixture); the error paths that need no
compiler run in ``make test``."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from gnnff.calculators import GNNFFCalculator
from gnnff.potentials import build_model, contract, export_model, load
from gnnff.potentials.files.aoti import INFO_FILE, torch_release

REPO = Path(__file__).resolve().parents[1]
MAX_ATOMS, MAX_EDGES = 1000, 60000  # the fixture package's bounds


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(3)
    model = build_model(
        {
            "family": "allegro-attn",
            "species": ["Si", "O"],
            "cutoff": 4.0,
            "num_scalar": 8,
            "num_tensor": 2,
            "mlp_hidden": [8],
            "zbl": True,
        }
    )
    model.set_species_shift_scale(torch.tensor([-4.0, -6.0]), torch.tensor([0.8, 1.3]))
    return model.double()


def sio2_like(repeat: tuple[int, int, int] = (2, 1, 1), seed: int = 2) -> Atoms:
    atoms = bulk("Si", "diamond", 5.43, cubic=True).repeat(repeat)
    atoms.symbols[::3] = "O"
    atoms.set_cell(
        atoms.cell.array + [[0.0, 0.0, 0.0], [0.4, 0.0, 0.0], [0.0, -0.3, 0.0]], scale_atoms=True
    )  # triclinic
    atoms.rattle(0.1, seed=seed)
    return atoms


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gnnff.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


# ------------------------------------------------------------------ no compiler needed
def test_unknown_format_lists_the_valid_ones(tmp_path):
    proc = _run_cli(
        "export", "--untrained", "x.yaml", "--out", str(tmp_path / "m.pt2"), "--format", "onnx"
    )
    assert proc.returncode == 2
    assert "unknown model format 'onnx'; valid formats: torchscript, aoti" in proc.stderr
    assert not (tmp_path / "m.pt2").exists()


@pytest.mark.parametrize(
    ("fmt", "out", "fix"), [("aoti", "m.pt", "--out m.pt2"), ("torchscript", "m.pt2", "--out m.pt")]
)
def test_extension_must_fit_the_format(tmp_path, fmt, out, fix):
    with pytest.raises(ValueError, match=f"must end in .*{fix}"):
        export_model(tiny_model(), tmp_path / out, format=fmt)
    assert not (tmp_path / out).exists()


def test_package_options_need_format_aoti(tmp_path):
    with pytest.raises(ValueError, match="apply to --format aoti"):
        export_model(tiny_model(), tmp_path / "m.pt", max_atoms=100)


def fake_package(path: Path, **info: object) -> Path:
    """A .pt2 with the layout and extra files of a package but no loadable code: enough for
    the checks made before loading."""
    meta = contract.make_metadata(
        species=["Si", "O"],
        cutoff=4.0,
        family="allegro",
        hyperparameters={},
        dtype="float64",
        softmax={"backend": "float", "bits": None},
        training=None,
        gnnff_version="0",
    )
    full = {
        "torch_version": torch_release(),
        "device": "cpu",
        "dtype": "float64",
        "max_atoms": None,
        "max_edges": None,
        **info,
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("m/archive_format", "pt2")
        zf.writestr("m/.data/version", "1\n")
        zf.writestr("m/data/aotinductor/model/x.wrapper.so", b"")
        zf.writestr("m/extra/metadata.json", json.dumps(meta))
        zf.writestr(f"m/extra/{INFO_FILE}", json.dumps(full))
    return path


def test_package_from_another_torch_release_is_refused(tmp_path):
    path = fake_package(tmp_path / "old.pt2", torch_version="2.11.0")
    with pytest.raises(ValueError) as err:
        load(path)
    msg = str(err.value)
    assert "compiled for torch 2.11.0" in msg and f"this is torch {torch_release()}" in msg
    assert "gnnff export CHECKPOINT --format aoti --dtype float64 --out model.pt2" in msg


def test_package_for_another_device_is_refused(tmp_path):
    path = fake_package(tmp_path / "gpu.pt2", device="cuda")
    with pytest.raises(
        ValueError,
        match="compiled for device 'cuda', but it is asked to run on "
        "'cpu'.*--format aoti --dtype float64",
    ):
        GNNFFCalculator(path)


def test_pt2_that_is_not_a_package_is_refused(tmp_path):
    (tmp_path / "x.pt2").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not an AOTInductor package"):
        load(tmp_path / "x.pt2")


# ------------------------------------------------------------------ compiled (slow)
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("aoti")
    model = tiny_model()
    return {
        "model": model,
        "pt": export_model(model, folder / "m.pt", "float64"),
        "pt2": export_model(
            model,
            folder / "m.pt2",
            "float64",
            format="aoti",
            max_atoms=MAX_ATOMS,
            max_edges=MAX_EDGES,
        ),
    }


def results(path: Path, atoms: Atoms) -> dict[str, np.ndarray]:
    a = atoms.copy()
    a.calc = GNNFFCalculator(path)
    out = {
        "energy": a.get_potential_energy(),
        "energies": a.get_potential_energies(),
        "forces": a.get_forces(),
    }
    if a.pbc.all():
        out["stress"] = a.get_stress()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("structure", ["triclinic", "cluster", "single_atom"])
def test_package_equals_torchscript_through_ase(files, structure):
    atoms = {
        "triclinic": sio2_like(),
        "cluster": Atoms("SiOSi", positions=[[0, 0, 0], [1.6, 0, 0], [1.6, 1.5, 0.3]]),
        "single_atom": Atoms("O", positions=[[0, 0, 0]]),  # no edges: padding alone
    }[structure]
    ref, got = results(files["pt"], atoms), results(files["pt2"], atoms)
    assert set(got) == set(ref)
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=1e-10, err_msg=key)
    if structure != "single_atom":
        assert np.abs(ref["forces"]).max() > 1e-3  # the comparison is not between zeros


@pytest.mark.slow
def test_package_forward_with_ghosts_equals_torchscript_and_eager(files):
    """n_local < N (LAMMPS-style ghosts) and periodic shifts, straight through forward."""
    from gnnff.potentials import ExportedModel

    calc = GNNFFCalculator(files["pt"])
    atoms = sio2_like(seed=5)
    inp = calc.model_inputs(atoms)
    n_local = len(atoms) - 5  # the last five atoms act as ghosts: no edge starts there
    keep = inp["edge_index"][0] < n_local
    args = (
        inp["pos"],
        inp["species"],
        inp["edge_index"][:, keep],
        inp["edge_shift"][keep],
        n_local,
    )
    ts, _ = load(files["pt"])
    pkg, _ = load(files["pt2"])
    eager = ExportedModel(files["model"]).eval()
    ref, got, direct = ts(*args), pkg(*args), eager(*args)
    contract.check_outputs(got, len(atoms), n_local, torch.float64)
    for key in contract.OUTPUT_NAMES:
        torch.testing.assert_close(got[key], ref[key], rtol=0, atol=1e-10, msg=key)
        torch.testing.assert_close(got[key], direct[key], rtol=0, atol=1e-10, msg=key)


@pytest.mark.slow
def test_package_errors_name_the_bound_and_the_fix(files):
    big = sio2_like((8, 4, 4))  # 1024 atoms > MAX_ATOMS
    big.calc = GNNFFCalculator(files["pt2"])
    with pytest.raises(
        ValueError,
        match=f"1024 atoms exceed the bound max_atoms={MAX_ATOMS}.*"
        "--format aoti --dtype float64 --max-atoms 2048",
    ):
        big.get_potential_energy()
    with pytest.raises(ValueError, match="compiled in float64; it cannot run in float32"):
        GNNFFCalculator(files["pt2"], dtype="float32")
    with pytest.raises(ValueError, match="runs in one pass"):
        GNNFFCalculator(files["pt2"], max_block_edges=1000)
    with pytest.raises(ValueError, match="weights are compiled in"):
        from gnnff.potentials import eager_from_file

        eager_from_file(files["pt2"])


@pytest.mark.slow
def test_package_calculator_pickles(files):
    atoms = sio2_like()
    atoms.calc = GNNFFCalculator(files["pt2"])
    e = atoms.get_potential_energy()
    clone = pickle.loads(pickle.dumps(atoms.calc))
    b = atoms.copy()
    b.calc = clone
    assert b.get_potential_energy() == pytest.approx(e, abs=1e-12)


# ------------------------------------------------------------------ LAMMPS
def _lammps():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import lammps_fixtures as lf
    from test_lammps_plugin import EVAL, GATHER, header, run

    return lf, EVAL, GATHER, header, run


@pytest.fixture(scope="module")
def plugin() -> str:
    from gnnff.lammps.build import build_plugin

    return str(build_plugin(quiet=True))


def test_lammps_refuses_a_package_from_another_torch_release(plugin, tmp_path):
    lf, eval_, gather, header, run = _lammps()
    atoms = lf.sio2_like_cell((1, 1, 1), seed=3)
    lf.write_lammps_data(atoms, tmp_path / "c.data", ("O", "Si"))
    pkg = fake_package(tmp_path / "old.pt2", torch_version="2.11.0")
    spec = {
        "commands": header(tmp_path / "c.data")
        + ["pair_style gnnff", f"pair_coeff * * {pkg} O Si", *eval_],
        "gather": gather,
        "computes": [],
    }
    res = run(spec, plugin)
    msg = res.get("error", "")
    assert f"was compiled for torch 2.11.0, but this plugin runs torch {torch_release()}" in msg
    assert "gnnff export CHECKPOINT --format aoti --dtype float64 --out model.pt2" in msg


@pytest.mark.slow
@pytest.mark.parametrize("nprocs", [1, 2])
def test_lammps_package_equals_torchscript(plugin, files, tmp_path, nprocs):
    lf, eval_, gather, header, run = _lammps()
    atoms = lf.sio2_like_cell((2, 2, 1), seed=3)  # 72 atoms: fits the package's bound per rank
    lf.write_lammps_data(atoms, tmp_path / "c.data", ("O", "Si"))
    out = {}
    for kind in ("pt", "pt2"):
        spec = {
            "commands": header(tmp_path / "c.data")
            + ["pair_style gnnff", f"pair_coeff * * {files[kind]} O Si", *eval_],
            "gather": gather,
            "computes": ["thermo_pe", "vir:6"],
        }
        (tmp_path / kind).mkdir()
        out[kind] = run(spec, plugin, nprocs, tmp_path / kind)
        assert "error" not in out[kind], out[kind].get("error")
    ref, got = out["pt"], out["pt2"]
    assert got["thermo_pe"] == pytest.approx(ref["thermo_pe"], abs=1e-10)
    # eV, eV/A; per-atom stress and pressure in bar (A^3): 1e-10 eV each
    tol = {
        "f": 1e-10,
        "c_pe": 1e-10,
        "c_st": 1e-10 * lf.NKTV2P_METAL,
        "vir": 1e-10 * lf.NKTV2P_METAL / atoms.get_volume(),
    }
    for key, atol in tol.items():
        np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=atol, err_msg=key)
    assert np.abs(np.asarray(ref["f"])).max() > 1e-3


@pytest.mark.slow
def test_lammps_names_the_exceeded_bound(plugin, files, tmp_path):
    lf, eval_, gather, header, run = _lammps()
    atoms = lf.sio2_like_cell((6, 6, 4), seed=3)  # 1296 atoms on one rank > MAX_ATOMS
    lf.write_lammps_data(atoms, tmp_path / "c.data", ("O", "Si"))
    spec = {
        "commands": header(tmp_path / "c.data")
        + ["pair_style gnnff", f"pair_coeff * * {files['pt2']} O Si", *eval_],
        "gather": gather,
        "computes": [],
    }
    msg = run(spec, plugin).get("error", "")
    assert f"atoms (local + ghost), more than the {MAX_ATOMS} that the AOTInductor" in msg
    assert "--format aoti --max-atoms N" in msg


@pytest.mark.slow
def test_train_format_aoti_writes_the_package_of_model_pt(files, tmp_path):
    """`gnnff train --format aoti`: model.pt2 next to model.pt, same metadata and results."""
    import shutil

    from gnnff.potentials import read_metadata
    from gnnff.training.commands import _write_package

    shutil.copy(files["pt"], tmp_path / "model.pt")
    _write_package(str(tmp_path))
    assert read_metadata(tmp_path / "model.pt2") == read_metadata(tmp_path / "model.pt")
    atoms = sio2_like(seed=7)
    ref, got = results(tmp_path / "model.pt", atoms), results(tmp_path / "model.pt2", atoms)
    for key in ref:
        np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=1e-10, err_msg=key)


def test_eval_of_a_package_names_the_torchscript_file(tmp_path):
    from gnnff.errors import UsageError
    from gnnff.training.evaluation import evaluate_model_file

    with pytest.raises(UsageError, match=r"AOTInductor package.*model\.pt\)"):
        evaluate_model_file(tmp_path / "model.pt2", tmp_path / "data.extxyz")
