"""Bringing your own (DFT-shaped) data: label keys, isolated atoms and E0s, partial labels,
load-time validation, ASE formats, and serving the trained model in ASE and LAMMPS."""

from __future__ import annotations

import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gnnff.testing.synthetic import PairMorse, make_dataset, random_sio2
from gnnff.training import Trainer
from gnnff.training.config import ConfigError, validate_config
from gnnff.training.data import DataError, build_structures, collate, read_frames
from gnnff.training.evaluation import EV_PER_A3_TO_GPA
from gnnff.training.labels import LabelKeys
from gnnff.training.loss import loss_terms

E0 = {"O": -2.25, "Si": -5.5}  # eV, made-up isolated-atom energies


def _ref(atoms: Atoms, stress: bool = True) -> Atoms:
    """``atoms`` labelled the way DFT workflows store labels: REF_* keys, no calculator."""
    a = atoms.copy()
    a.calc = PairMorse(4.0)
    e = a.get_potential_energy() + sum(E0[s] for s in a.get_chemical_symbols())
    f = a.get_forces()
    s = a.get_stress() if stress else None
    a.calc = None
    a.info["REF_energy"] = e
    a.arrays["REF_forces"] = f
    if s is not None:
        a.info["REF_stress"] = s
    return a


def _isolated(symbol: str) -> Atoms:
    a = Atoms(symbol, positions=[[0.0, 0.0, 0.0]], pbc=False)
    a.info["REF_energy"] = E0[symbol]
    a.arrays["REF_forces"] = np.zeros((1, 3))
    a.info["config_type"] = "IsolatedAtom"
    return a


def _cluster(seed: int) -> Atoms:
    bulk = random_sio2(3, density=2.2, rng=np.random.default_rng(seed))
    c = Atoms(bulk.get_chemical_symbols(), positions=bulk.positions, pbc=False)
    c.center(vacuum=6.0)
    return _ref(c, stress=False)


def _dft_like_set(tmp_path: Path) -> tuple[Path, Path]:
    periodic = [_ref(a) for a in make_dataset(6, seed=11, n_formula=3)]
    train = [_isolated("Si"), *periodic[:4], _cluster(1), _isolated("O")]
    valid = [*periodic[4:], _cluster(2)]
    ase.io.write(tmp_path / "train.extxyz", train, format="extxyz")
    ase.io.write(tmp_path / "valid.extxyz", valid, format="extxyz")
    return tmp_path / "train.extxyz", tmp_path / "valid.extxyz"


def _config(train: Path, valid: Path, **over) -> dict:
    raw = {
        "data": {
            "train": str(train),
            "valid": str(valid),
            "energy_key": "REF_energy",
            "forces_key": "REF_forces",
            "stress_key": "REF_stress",
        },
        "model": {
            "family": "allegro",
            "cutoff": 4.0,
            "num_layers": 1,
            "num_scalar": 8,
            "num_tensor": 4,
            "mlp_hidden": [8],
            "e0s": "isolated_atoms",
        },
        "loss": {"energy_weight": 1.0, "forces_weight": 1.0, "stress_weight": 1.0},
        "training": {
            "epochs": 2,
            "batch_size": 1,
            "valid_batch_size": 2,
            "dtype": "float64",
            "progress": False,
            "seed": 0,
        },
    }
    for dotted, value in over.items():
        sec, key = dotted.split("__")
        raw.setdefault(sec, {})[key] = value
    return validate_config(raw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("own")
    train, valid = _dft_like_set(tmp)
    summary = Trainer(_config(train, valid), tmp / "run", log=lambda *a: None).fit()
    return tmp, summary


def test_trains_on_ref_keys_isolated_atoms_and_mixed_stress(trained):
    tmp, summary = trained
    fv = summary["final_valid"]
    # the cluster has no stress: 2 of the 3 validation structures carry one
    assert fv["stress_frames"] == 2 and fv["energy_frames"] == 3 and fv["force_frames"] == 3
    assert np.isfinite(fv["force_mae"]) and np.isfinite(fv["stress_mae"])
    from gnnff.calculators import GNNFFCalculator

    # E0s are pinned to the isolated-atom energies: an isolated atom's energy is exactly E0
    calc = GNNFFCalculator(tmp / "run" / "model.pt")
    for sym, e0 in E0.items():
        a = Atoms(sym, positions=[[0, 0, 0]], pbc=False)
        a.calc = calc
        assert a.get_potential_energy() == pytest.approx(e0, abs=1e-12)
        assert np.all(a.get_forces() == 0.0)


def test_trained_model_same_energy_in_ase_and_lammps(trained):
    import lammps_fixtures as lf
    from test_lammps_plugin import EVAL, GATHER, header, run

    from gnnff.calculators import GNNFFCalculator
    from gnnff.lammps.build import build_plugin

    tmp, _ = trained
    model = tmp / "run" / "model.pt"
    plugin = str(build_plugin(quiet=True))
    frames = read_frames(tmp / "valid.extxyz")
    for k, atoms in enumerate(frames):
        a = Atoms(
            atoms.get_chemical_symbols(),
            positions=atoms.positions,
            cell=atoms.cell if atoms.pbc.all() else np.diag([30.0, 30.0, 30.0]),
            pbc=True,
        )
        a.calc = GNNFFCalculator(model)
        e_ase = a.get_potential_energy()
        lf.write_lammps_data(a, tmp / f"v{k}.data", ("O", "Si"))
        spec = {
            "commands": header(tmp / f"v{k}.data")
            + ["pair_style gnnff", f"pair_coeff * * {model} O Si", *EVAL],
            "gather": GATHER,
            "computes": ["thermo_pe", "vir:6"],
        }
        res = run(spec, plugin, 1, tmp)
        assert "error" not in res, res.get("error")
        assert res["thermo_pe"] == pytest.approx(e_ase, rel=1e-8)


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_isolated_atoms_in_any_batch_composition(tmp_path, batch_size):
    train, valid = _dft_like_set(tmp_path)
    cfg = _config(
        train,
        valid,
        training__batch_size=batch_size,
        training__epochs=1,
        model__e0s="average",
        loss__stress_weight=0.0,
    )
    Trainer(cfg, tmp_path / "run", log=lambda *a: None).fit()
    assert (tmp_path / "run" / "model.pt").is_file()


def test_e0s_mapping_sets_the_shift(tmp_path):
    train, valid = _dft_like_set(tmp_path)
    cfg = _config(train, valid, model__e0s={"Si": -1.0, "O": -3.0}, training__epochs=1)
    t = Trainer(cfg, tmp_path / "run", log=lambda *a: None)
    sp = t.model.species
    np.testing.assert_array_equal(
        t.model.per_species_shift.numpy(), [{"Si": -1.0, "O": -3.0}[s] for s in sp]
    )
    cfg = _config(train, valid, model__e0s={"Si": -1.0}, training__epochs=1)
    with pytest.raises(ConfigError, match=r"e0s mapping has no energy for \['O'\]"):
        Trainer(cfg, tmp_path / "run2", log=lambda *a: None)


def test_isolated_atoms_mode_needs_every_element(tmp_path):
    train, valid = _dft_like_set(tmp_path)
    frames = [f for f in read_frames(train) if not (len(f) == 1 and f[0].symbol == "O")]
    ase.io.write(tmp_path / "noO.extxyz", frames, format="extxyz")
    with pytest.raises(DataError, match=r"no single-atom frame with an energy for \['O'\]"):
        Trainer(_config(tmp_path / "noO.extxyz", valid), tmp_path / "run", log=lambda *a: None)
    assert not (tmp_path / "run").exists()


def test_default_keys_name_the_alternatives(tmp_path):
    train, valid = _dft_like_set(tmp_path)
    cfg = _config(train, valid, data__energy_key=None, data__forces_key=None, data__stress_key=None)
    with pytest.raises(
        DataError,
        match=r"carries info:REF_energy.*data.energy_key: REF_energy"
        r".*data.forces_key: REF_forces",
    ):
        Trainer(cfg, tmp_path / "run", log=lambda *a: None)


def test_key_option_no_frame_has_lists_keys(tmp_path):
    train, valid = _dft_like_set(tmp_path)
    cfg = _config(train, valid, data__energy_key="dft_energy")
    with pytest.raises(
        DataError,
        match=r"data.energy_key = 'dft_energy'.*Keys present:.*"
        r"info:REF_energy",
    ):
        Trainer(cfg, tmp_path / "run", log=lambda *a: None)
    assert not (tmp_path / "run").exists()


def test_coincident_atoms_caught_at_load_with_file_frame_atoms(tmp_path):
    train, valid = _dft_like_set(tmp_path)
    frames = read_frames(valid)
    bad = frames[1].copy()
    bad.positions[5] = bad.positions[2]
    frames[1] = bad
    ase.io.write(tmp_path / "bad.extxyz", frames, format="extxyz")
    cfg = _config(train, tmp_path / "bad.extxyz")
    with pytest.raises(
        DataError,
        match=r"bad.extxyz frame 1: atoms [25] and [25] sit at the "
        "same place",
    ):
        Trainer(cfg, tmp_path / "run", log=lambda *a: None)
    assert not (tmp_path / "run").exists()


def test_masked_loss_equals_loss_on_labelled_subset(tmp_path):
    train, _ = _dft_like_set(tmp_path)
    keys = LabelKeys("REF_energy", "REF_forces", "REF_stress")
    structs = build_structures(read_frames(train), train, ["O", "Si"], 4.0, keys=keys)
    periodic = [s for s in structs if s.stress is not None]
    cluster = [s for s in structs if s.volume == 0 and len(s.pos) > 1][0]
    rng = np.random.default_rng(0)
    mixed = [periodic[0], cluster, periodic[1]]
    batch = collate(mixed, torch.float64)
    n_atoms = batch.pos.shape[0]
    out = {
        "energy": torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64),
        "forces": torch.as_tensor(rng.normal(size=(n_atoms, 3))),
        "stress": torch.as_tensor(rng.normal(size=(3, 3, 3))),
    }
    terms = loss_terms(out, batch)
    only = collate([periodic[0], periodic[1]], torch.float64)
    expect = ((out["stress"][[0, 2]] - only.stress) ** 2).mean()
    assert float(terms["stress"]) == pytest.approx(float(expect), rel=1e-14)
    # energies and forces: every frame is labelled, plain means
    e = ((out["energy"] - batch.energy) / batch.num_atoms) ** 2
    assert float(terms["energy"]) == pytest.approx(float(e.mean()), rel=1e-14)


def test_virial_key_gives_stress(tmp_path):
    atoms = make_dataset(1, seed=4, n_formula=2)[0]
    stress = atoms.get_stress(voigt=False)
    a = atoms.copy()
    a.calc = None
    a.info["REF_energy"] = 1.0
    a.info["REF_virial"] = (-stress * a.get_volume()).ravel()
    ase.io.write(tmp_path / "v.extxyz", a, format="extxyz")
    keys = LabelKeys(energy_key="REF_energy", virial_key="REF_virial")
    (s,) = build_structures(
        read_frames(tmp_path / "v.extxyz"), tmp_path / "v.extxyz", ["O", "Si"], 4.0, keys=keys
    )
    np.testing.assert_allclose(s.stress, stress, rtol=1e-10, atol=1e-12)
    assert s.forces is None


@pytest.mark.parametrize(
    "fmt,name", [("extxyz", "d.extxyz"), ("traj", "d.traj"), ("json", "d.json"), ("db", "d.db")]
)
def test_ase_formats_give_the_same_structures(tmp_path, fmt, name):
    frames = make_dataset(3, seed=5, n_formula=2)
    ase.io.write(tmp_path / name, frames, format=fmt)
    ref = build_structures(frames, "mem", ["O", "Si"], 4.0)
    got = build_structures(read_frames(tmp_path / name), tmp_path / name, ["O", "Si"], 4.0)
    tol = 1e-7 if fmt == "extxyz" else 1e-12  # extxyz stores 8 significant digits
    for a, b in zip(ref, got, strict=True):
        assert a.energy == pytest.approx(b.energy, rel=tol)
        np.testing.assert_allclose(a.forces, b.forces, rtol=tol, atol=tol)
        np.testing.assert_allclose(a.stress, b.stress, rtol=tol, atol=tol * 1e-2)
    # ASE's file@index selects frames
    assert len(read_frames(f"{tmp_path / name}@1:")) == 2


def test_gnnff_eval_reads_ref_keys_and_reports_gpa(trained, capsys):
    from gnnff.cli import main

    tmp, summary = trained
    rc = main(
        [
            "eval",
            str(tmp / "run" / "model.pt"),
            str(tmp / "valid.extxyz"),
            "--energy-key",
            "REF_energy",
            "--forces-key",
            "REF_forces",
            "--stress-key",
            "REF_stress",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "GPa" in out and "(2 structures)" in out
    stress_line = [line for line in out.splitlines() if line.strip().startswith("stress")][0]
    assert float(stress_line.split()[2]) == pytest.approx(
        summary["final_valid"]["stress_mae"], abs=1e-3
    )
    assert EV_PER_A3_TO_GPA == pytest.approx(160.2176634, rel=1e-8)


def test_eval_group_by_splits_the_errors_and_recombines_to_the_total(trained, tmp_path, capsys):
    from gnnff.cli import main
    from gnnff.training.evaluation import evaluate_model_file

    tmp, _ = trained
    frames = ase.io.read(tmp / "valid.extxyz", ":")
    assert len(frames) == 3
    frames[0].info["config_type"] = "bulk"
    frames[1].info["config_type"] = "bulk"
    frames[2].info.pop("config_type", None)
    data = tmp_path / "tagged.extxyz"
    ase.io.write(data, frames, format="extxyz")
    keys = LabelKeys("REF_energy", "REF_forces", "REF_stress")
    res = evaluate_model_file(tmp / "run" / "model.pt", data, keys, group_by="config_type")
    groups = res["groups"]
    assert list(groups) == ["bulk", "(none)"]
    assert [g["num_structures"] for g in groups.values()] == [2, 1]
    assert sum(g["num_atoms"] for g in groups.values()) == res["num_atoms"]
    # per-group force MAE by hand, from the calculator's forces
    from gnnff.calculators import GNNFFCalculator

    calc = GNNFFCalculator(tmp / "run" / "model.pt")
    errs, labels = {}, {}
    for a in frames:
        name = a.info.get("config_type", "(none)")
        b = a.copy()
        b.calc = calc
        errs.setdefault(name, []).append(np.abs(b.get_forces() - a.arrays["REF_forces"]).ravel())
        labels.setdefault(name, []).append(np.abs(a.arrays["REF_forces"]).ravel())
    for name, g in groups.items():
        assert g["force_mae"] == pytest.approx(1000 * np.concatenate(errs[name]).mean(), rel=1e-6)
        assert g["force_label_mean_abs"] == pytest.approx(
            1000 * np.concatenate(labels[name]).mean(), rel=1e-9
        )
    # the groups' errors, weighted by their force components, are the total
    n = {k: 3 * g["num_atoms"] for k, g in groups.items()}
    total = sum(g["force_mae"] * n[k] for k, g in groups.items()) / sum(n.values())
    assert res["force_mae"] == pytest.approx(total, rel=1e-9)
    # only the two periodic frames carry stress
    assert groups["bulk"]["stress_frames"] + groups["(none)"].get("stress_frames", 0) == 2
    rc = main(
        [
            "eval",
            str(tmp / "run" / "model.pt"),
            str(data),
            "--energy-key",
            "REF_energy",
            "--forces-key",
            "REF_forces",
            "--group-by",
            "config_type",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "per config_type:" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("    ")][1:] == [
        "bulk",
        "(none)",
    ]
