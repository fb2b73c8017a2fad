"""Training config validation and bad-input errors (config and data)."""

import argparse

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from gnnff.testing.synthetic import make_dataset
from gnnff.training.config import (
    ConfigError,
    apply_overrides,
    load_config,
    validate_config,
)
from gnnff.training.data import DataError, build_structures, read_frames


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cfgdata")
    frames = make_dataset(3, seed=0, n_formula=2)
    ase.io.write(d / "train.extxyz", frames)
    ase.io.write(d / "valid.extxyz", frames[:1])
    return d


def base(files):
    return {"data": {"train": str(files / "train.extxyz"), "valid": str(files / "valid.extxyz")}}


def test_defaults_filled(files):
    cfg = validate_config(base(files))
    assert cfg["decorrelation"]["max_edges"] == "auto"
    assert cfg["decorrelation"]["enabled"] is False
    assert cfg["training"]["epochs"] == 100
    assert cfg["model"]["family"] == "allegro"
    assert cfg["data"]["test"] is None


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"decorelation": {}}, "did you mean 'decorrelation'"),
        ({"decorrelation": {"lamda_max": 1}}, "did you mean 'lambda_max'"),
        ({"training": {"epoch": 3}}, "did you mean 'epochs'"),
        ({"decorrelation": {"scheduler": "cosin"}}, "did you mean 'cosine'"),
        ({"training": {"batch_size": 0}}, "batch_size must be >= 1"),
        ({"training": {"dtype": "float16"}}, "training.dtype"),
        ({"decorrelation": {"layers": "first"}}, "layers"),
        ({"loss": {"energy_weight": 0, "forces_weight": 0}}, "all loss weights are 0"),
        ({"decorrelation": {"lambda_min": 2.0, "lambda_max": 1.0}}, "lambda_min"),
    ],
)
def test_bad_config(files, raw, match):
    cfg = base(files)
    cfg.update(raw)
    with pytest.raises(ConfigError, match=match):
        validate_config(cfg)


def test_missing_and_required_files(files, tmp_path):
    with pytest.raises(ConfigError, match="data.valid is required"):
        validate_config({"data": {"train": str(files / "train.extxyz")}})
    cfg = base(files)
    cfg["data"]["test"] = str(tmp_path / "nope.extxyz")
    with pytest.raises(ConfigError, match="data.test: .*nope.extxyz.*does not exist"):
        validate_config(cfg)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_relative_paths_and_overrides(files):
    y = files / "run.yaml"
    y.write_text("data:\n  train: train.extxyz\n  valid: valid.extxyz\ntraining:\n  epochs: 3\n")
    cfg = load_config(y, ["training.epochs=7", "decorrelation.enabled=true", "model.num_layers=3"])
    assert cfg["training"]["epochs"] == 7
    assert cfg["decorrelation"]["enabled"] is True
    assert cfg["model"]["num_layers"] == 3
    assert cfg["data"]["train"] == str((files / "train.extxyz").resolve())
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides({}, ["epochs"])
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        load_config(y, ["training.epoch=3"])


def _write(path, frames):
    ase.io.write(path, frames, format="extxyz")
    return path


def test_species_not_in_config(files):
    frames = read_frames(files / "train.extxyz")
    with pytest.raises(DataError, match=r"species \['O'\] that the model config lacks"):
        build_structures(frames, files / "train.extxyz", ["Si"], 4.0)


def test_nan_and_missing_labels(tmp_path):
    atoms = make_dataset(1, seed=3, n_formula=2)[0]
    f = atoms.get_forces().copy()
    f[0, 0] = np.nan
    bad = atoms.copy()
    bad.calc = SinglePointCalculator(bad, energy=atoms.get_potential_energy(), forces=f)
    p = _write(tmp_path / "nan.extxyz", [bad])
    with pytest.raises(DataError, match="NaN"):
        build_structures(read_frames(p), p, ["O", "Si"], 4.0)
    bare = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=True)
    p = _write(tmp_path / "nolabels.extxyz", [bare])
    with pytest.raises(DataError, match="frame 0 has no energy or force labels"):
        build_structures(read_frames(p), p, ["O", "Si"], 4.0)
    # a frame with an energy only is a partial label: kept, but a forces loss needs some forces
    onlye = atoms.copy()
    onlye.calc = SinglePointCalculator(onlye, energy=1.0)
    p = _write(tmp_path / "noforces.extxyz", [onlye])
    (s,) = build_structures(read_frames(p), p, ["O", "Si"], 4.0)
    assert s.energy == 1.0 and s.forces is None
    with pytest.raises(DataError, match="no frame has a forces label.*loss.forces_weight > 0"):
        build_structures(read_frames(p), p, ["O", "Si"], 4.0, need_forces=True)


def test_stress_required_when_weighted(tmp_path):
    atoms = make_dataset(1, seed=3, n_formula=2)[0]
    nos = atoms.copy()
    nos.calc = SinglePointCalculator(
        nos, energy=atoms.get_potential_energy(), forces=atoms.get_forces()
    )
    p = _write(tmp_path / "nostress.extxyz", [nos])
    with pytest.raises(DataError, match="no frame has a stress label.*loss.stress_weight > 0"):
        build_structures(read_frames(p), p, ["O", "Si"], 4.0, need_stress=True)


def test_empty_split(tmp_path):
    p = tmp_path / "empty.extxyz"
    p.write_text("")
    with pytest.raises(DataError, match="holds no structures|cannot read"):
        read_frames(p, "valid")


def test_cli_reports_errors(files, capsys):
    from gnnff.training.commands import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    y = files / "bad.yaml"
    y.write_text(
        f"data:\n  train: {files / 'train.extxyz'}\n  valid: {files / 'valid.extxyz'}\n"
        "optim:\n  learning_rate: 0.1\n"
    )
    args = parser.parse_args(["train", str(y), "--out", str(files / "run")])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "unknown key optim.learning_rate" in err
    args = parser.parse_args(["eval", str(files / "missing.pt"), str(files / "valid.extxyz")])
    assert args.func(args) == 2
    assert "neither a file nor a bundled model" in capsys.readouterr().err


def test_example_configs_differ_only_in_decorrelation(files):
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1] / "examples" / "training"
    raws = {
        n: yaml.safe_load((root / f"sio2_{n}.yaml").read_text())
        for n in ("baseline", "decorrelated")
    }
    a, b = raws["baseline"], raws["decorrelated"]
    assert {k: v for k, v in a.items() if k != "decorrelation"} == {
        k: v for k, v in b.items() if k != "decorrelation"
    }
    assert a["decorrelation"]["enabled"] is False and b["decorrelation"]["enabled"] is True
    assert a["data"]["train"].endswith("data/sio2/train.extxyz")
    for raw in raws.values():
        raw["data"] = base(files)["data"]
        validate_config(raw)


def test_trainer_rejects_unseen_species_tiny_cutoff_and_bad_device(files, tmp_path):
    from gnnff.training.trainer import Trainer

    species = sorted(
        {s for a in ase.io.read(files / "train.extxyz", ":") for s in a.get_chemical_symbols()}
    )
    cfg = validate_config(
        {**base(files), "model": {"family": "allegro", "species": [*species, "H"]}}
    )
    with pytest.raises(ConfigError, match=r"lists \['H'\], which no training frame contains"):
        Trainer(cfg, tmp_path / "h", log=lambda m: None)
    cfg = validate_config({**base(files), "model": {"family": "allegro", "cutoff": 0.5}})
    with pytest.raises(DataError, match="raise model.cutoff"):
        Trainer(cfg, tmp_path / "c", log=lambda m: None)
    cfg = validate_config({**base(files), "training": {"device": "gpu"}})
    with pytest.raises(ConfigError, match="training.device: unknown device"):
        Trainer(cfg, tmp_path / "d", log=lambda m: None)


def test_exponent_floats_in_yaml_and_overrides(files, tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text(
        f"data:\n  train: {files / 'train.extxyz'}\n  valid: {files / 'valid.extxyz'}\n"
        "optim:\n  lr: 1e-3\n"
    )
    assert load_config(y)["optim"]["lr"] == pytest.approx(1e-3)
    assert load_config(y, ["optim.min_lr=2e-6"])["optim"]["min_lr"] == pytest.approx(2e-6)
    with pytest.raises(ConfigError, match="optim.lr must be >= 0"):
        load_config(y, ["optim.lr=-1e-3"])
