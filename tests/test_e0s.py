"""Per-species reference energies: the single-composition warning of training, the offset
fit and `gnnff refit-e0s` (a known offset removed, forces equal to the bit, bad input)."""

import json

import ase.io
import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator
from training_fixtures import SMALL_MODEL, config, one_thread  # noqa: F401

from gnnff.calculators import GNNFFCalculator
from gnnff.cli import main
from gnnff.errors import UsageError
from gnnff.potentials import build_model, export_model, read_metadata
from gnnff.testing.synthetic import make_dataset
from gnnff.training.data import DataError, build_structures
from gnnff.training.e0s import e0s_note, fit_energy_offset, refit_e0s, undetermined_e0s
from gnnff.training.trainer import Trainer

SPECIES = ["O", "Si"]


def _structs(frames):
    return build_structures(frames, "frames", SPECIES, 4.0)


def _sio_x(seed, n, drop):
    """``n`` labelled SiO2 cells with ``drop`` O atoms removed (labels: the synthetic ones)."""
    frames = make_dataset(n, seed=seed, n_formula=3)
    out = []
    for a in frames:
        e = a.get_potential_energy()
        keep = [i for i, s in enumerate(a.get_chemical_symbols()) if s != "O"]
        keep += [i for i, s in enumerate(a.get_chemical_symbols()) if s == "O"][drop:]
        b = a[sorted(keep)]
        b.calc = SinglePointCalculator(b, energy=e, forces=np.zeros((len(b), 3)))
        out.append(b)
    return out


def test_one_composition_ratio_leaves_the_e0s_undetermined():
    """SiO2 cells of several sizes fix only one combination of E0(Si) and E0(O): the message
    names both species, the ratio and the fixes; a second composition determines them."""
    sio2 = make_dataset(6, seed=0, n_formula=3) + make_dataset(4, seed=1, n_formula=5)
    note = undetermined_e0s(_structs(sio2), SPECIES)
    assert note is not None
    assert "O, Si" in note and "O2Si" in note and "10 energy-labelled" in note
    assert "model.e0s" in note and "gnnff refit-e0s" in note
    assert undetermined_e0s(_structs(sio2 + _sio_x(2, 2, drop=1)), SPECIES) is None


def test_one_species_or_given_e0s_need_no_warning():
    frames = make_dataset(3, seed=0, n_formula=2)
    si_only = [a[[i for i, s in enumerate(a.get_chemical_symbols()) if s == "Si"]] for a in frames]
    for a, b in zip(si_only, frames, strict=True):
        a.calc = SinglePointCalculator(a, energy=b.get_potential_energy())
    assert undetermined_e0s(_structs(si_only), SPECIES) is None
    given = {"e0s": {"O": -1.0, "Si": -2.0}, "species": SPECIES}
    assert e0s_note(_structs(frames), given) is None
    assert e0s_note(_structs(frames), {"species": SPECIES}) is not None  # default: average


def test_offset_fit_recovers_a_known_offset_and_keeps_a_composition():
    rng = np.random.default_rng(0)
    counts = rng.integers(10, 60, size=(30, 2)).astype(float)
    true = np.array([-0.3, 0.5])
    err = counts @ true + rng.normal(0, 1e-3, 30)
    np.testing.assert_allclose(fit_energy_offset(err, counts), true, atol=1e-3)
    keep = np.array([2.0, 1.0])  # SiO2 in (O, Si) order
    kept = fit_energy_offset(err, counts, keep)
    assert abs(keep @ kept) < 1e-12
    assert np.abs(err - counts @ kept).mean() < np.abs(err).mean()


def test_training_on_one_composition_warns_and_records_it(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    ase.io.write(data / "train.extxyz", make_dataset(8, seed=1))
    ase.io.write(data / "valid.extxyz", make_dataset(2, seed=2))
    lines = []
    cfg = config(data, training={"epochs": 1, "batch_size": 4, "progress": False})
    summary = Trainer(cfg, tmp_path / "run", log=lines.append).fit()
    warnings = [s for s in lines if s.startswith("warning: model.e0s")]
    assert len(warnings) == 1 and "O, Si" in warnings[0]
    assert summary["e0s_note"] == warnings[0].removeprefix("warning: ")
    assert read_metadata(tmp_path / "run" / "model.pt")["training"]["e0s_note"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model({"family": "allegro", "species": SPECIES, **SMALL_MODEL})
    return export_model(model, tmp_path_factory.mktemp("m") / "model.pt", "float64")


@pytest.fixture(scope="module")
def own_labels(model_file):
    """SiO2 and SiO_x frames with the model's own energies and forces."""
    calc = GNNFFCalculator(str(model_file))
    frames = make_dataset(3, seed=3, n_formula=3) + _sio_x(4, 3, drop=2) + _sio_x(5, 2, drop=3)
    out = []
    for a in frames:
        a.calc = calc
        out.append((a.copy(), a.get_potential_energy(), a.get_forces()))
    return out


def _offset_frames(path, own_labels, delta):
    """``own_labels`` frames whose energy labels are the model's minus counts @ delta (so
    that the model's error is exactly counts @ delta), written to ``path``."""
    frames = []
    for atoms, e, f in own_labels:
        a = atoms.copy()
        n = [a.get_chemical_symbols().count(s) for s in SPECIES]
        a.calc = SinglePointCalculator(a, energy=e - np.dot(n, delta), forces=f)
        frames.append(a)
    ase.io.write(path, frames)
    return frames


def test_refit_removes_a_known_offset_and_leaves_forces_equal(tmp_path, model_file, own_labels):
    delta = np.array([0.137, -0.291])  # eV per O, per Si
    frames = _offset_frames(tmp_path / "frames.extxyz", own_labels, delta)
    out = tmp_path / "refit.pt"
    rep = refit_e0s(model_file, tmp_path / "frames.extxyz", out)
    np.testing.assert_allclose([-rep["delta_eV"][s] for s in SPECIES], delta, atol=1e-9)
    assert {r["formula"] for r in rep["rows"]} == {"O2Si", "O4Si3", "OSi"}
    assert all(r["energy_mae_after"] < 1e-6 for r in rep["rows"])
    old, new = GNNFFCalculator(str(model_file)), GNNFFCalculator(str(out))
    for a in frames:
        ref = a.get_potential_energy()
        b = a.copy()
        b.calc = new
        assert b.get_potential_energy() == pytest.approx(ref, abs=1e-8)
        c = a.copy()
        c.calc = old
        assert np.array_equal(b.get_forces(), c.get_forces())
        assert np.array_equal(b.get_stress(), c.get_stress())
    record = read_metadata(out)["training"]["energy_offset"]
    assert record["fit_frames"] == 8 and record["keep"] is None
    assert record["fit_data"] == "frames.extxyz"


def test_refit_keeping_a_composition_leaves_its_energies(tmp_path, model_file, own_labels):
    delta = np.array([0.2, 0.05])
    frames = _offset_frames(tmp_path / "frames.extxyz", own_labels, delta)
    out = tmp_path / "kept.pt"
    rep = refit_e0s(model_file, tmp_path / "frames.extxyz", out, keep="SiO2")
    shift = np.array([rep["delta_eV"][s] for s in SPECIES])
    assert abs(np.dot([2.0, 1.0], shift)) < 1e-12
    sio2 = frames[0].copy()
    sio2.calc = GNNFFCalculator(str(out))
    own = frames[0].copy()
    own.calc = GNNFFCalculator(str(model_file))
    assert sio2.get_potential_energy() == pytest.approx(own.get_potential_energy(), abs=1e-9)


def test_refit_bad_input_is_refused_before_anything_is_written(tmp_path, model_file, own_labels):
    _offset_frames(tmp_path / "frames.extxyz", own_labels, np.zeros(2))
    data = tmp_path / "frames.extxyz"
    out = tmp_path / "new.pt"
    with pytest.raises(UsageError, match="not in the model"):
        refit_e0s(model_file, data, out, keep="HfO2")
    with pytest.raises(UsageError, match="not a chemical formula"):
        refit_e0s(model_file, data, out, keep="Si(O")
    with pytest.raises(UsageError, match=r"\*\.pt"):
        refit_e0s(model_file, data, tmp_path / "new.pt2")
    with pytest.raises(UsageError, match="is the input model"):
        refit_e0s(model_file, data, model_file)
    forces_only = make_dataset(2, seed=0)
    for a in forces_only:
        a.calc = SinglePointCalculator(a, forces=a.get_forces())
    ase.io.write(tmp_path / "forces.extxyz", forces_only)
    with pytest.raises(DataError, match="no frame has an energy label"):
        refit_e0s(model_file, tmp_path / "forces.extxyz", out)
    for a in forces_only:
        a.calc = None
    ase.io.write(tmp_path / "bare.extxyz", forces_only)
    with pytest.raises(DataError, match="no energy or force labels"):
        refit_e0s(model_file, tmp_path / "bare.extxyz", out)
    assert not out.exists()


def test_refit_e0s_command(tmp_path, model_file, own_labels, capsys):
    _offset_frames(tmp_path / "frames.extxyz", own_labels, np.array([0.1, -0.1]))
    out = tmp_path / "cli.pt"
    args = ["refit-e0s", str(model_file), str(tmp_path / "frames.extxyz"), "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "E0 shift added (eV/atom): O -0.1000, Si +0.1000" in text and "| O2Si | 3 |" in text
    assert out.is_file()
    assert main([*args[:-1], str(tmp_path / "x.pt"), "--keep", "Xe"]) == 2
    assert "not in the model" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
    meta = read_metadata(out)
    assert json.dumps(meta["training"]["energy_offset"])  # serialisable record
