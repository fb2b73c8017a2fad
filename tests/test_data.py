"""Reference data: generation, determinism, validation and bad input."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest

from gnnff.cli import main
from gnnff.data.check import DataCheckError, check_file
from gnnff.data.generate import DataGenerationError, generate_dataset
from gnnff.data.presets import PresetError, list_presets, load_preset
from gnnff.io_utils import sha256_file

SPLITS = ["train", "valid", "test_id", "ood_SiO1.10", "ood_SiO1.55"]


def test_quick_dataset_layout_and_labels(quick_data):
    manifest = json.loads((quick_data / "manifest.json").read_text())
    assert manifest["preset"] == "sio2-tersoff" and manifest["quick"]
    for split in SPLITS:
        frames = ase.io.read(quick_data / f"{split}.extxyz", index=":")
        assert len(frames) == manifest["frames"][f"{split}.extxyz"] > 0
        for atoms in frames:
            assert 48 <= len(atoms) <= 96
            assert np.isfinite(atoms.get_forces()).all()
            assert atoms.get_stress().shape == (6,)
    train = ase.io.read(quick_data / "train.extxyz", index=":")
    assert {a.get_chemical_formula() for a in train} <= {"O32Si16", "O48Si24", "O64Si32"}
    ood = ase.io.read(quick_data / "ood_SiO1.10.extxyz", index=":")
    ratio = sum(a.symbols.count("O") for a in ood) / sum(a.symbols.count("Si") for a in ood)
    assert abs(ratio - 1.10) < 0.06
    assert list((quick_data / "reference_md").glob("*.extxyz"))
    for name, digest in manifest["sha256"].items():
        assert sha256_file(quick_data / name) == digest
    assert not list(quick_data.rglob("*.tmp"))


def test_same_seed_gives_identical_files(quick_data, tmp_path):
    generate_dataset(
        "sio2-tersoff", tmp_path / "again", seed=0, quick=True, progress=False, check=False
    )
    first = json.loads((quick_data / "manifest.json").read_text())["sha256"]
    second = json.loads((tmp_path / "again" / "manifest.json").read_text())["sha256"]
    assert first == second


def test_check_passes_and_relabels_exactly(quick_data):
    summary = check_file(quick_data / "train.extxyz", n_sample=3)
    assert summary["relabel_max_energy_err"] <= 1e-6
    assert summary["relabel_max_force_err"] <= 1e-6
    assert summary["min_distance"] > 0.7


def _corrupt(src, dst, edit):
    frames = ase.io.read(src, index=":")
    edit(frames)
    ase.io.write(dst, frames, format="extxyz")


def test_check_catches_close_atoms(quick_data, tmp_path):
    def edit(frames):
        frames[0].positions[1] = frames[0].positions[0] + [0.3, 0, 0]

    _corrupt(quick_data / "valid.extxyz", tmp_path / "bad.extxyz", edit)
    with pytest.raises(DataCheckError, match="apart"):
        check_file(tmp_path / "bad.extxyz", preset="sio2-tersoff")


def test_check_catches_wrong_labels(quick_data, tmp_path):
    def edit(frames):
        frames[0].calc.results["forces"][3, 1] += 1e-4

    _corrupt(quick_data / "valid.extxyz", tmp_path / "bad.extxyz", edit)
    with pytest.raises(DataCheckError, match="disagrees"):
        check_file(tmp_path / "bad.extxyz", preset="sio2-tersoff", n_sample=1)


def test_check_catches_nan_and_foreign_species(quick_data, tmp_path):
    def edit(frames):
        frames[0].calc.results["energy"] = float("nan")
        frames[1][0].symbol = "Hf"

    _corrupt(quick_data / "valid.extxyz", tmp_path / "bad.extxyz", edit)
    with pytest.raises(DataCheckError) as err:
        check_file(tmp_path / "bad.extxyz", preset="sio2-tersoff")
    assert "non-finite" in str(err.value) and "Hf" in str(err.value)


def test_unknown_preset_lists_presets():
    with pytest.raises(PresetError, match="sio2-tersoff"):
        load_preset("hfo2-magic")
    assert "sio2-tersoff" in list_presets()


def test_preset_typo_gets_did_you_mean(tmp_path):
    text = (load_preset.__globals__["PRESET_DIR"] / "sio2-tersoff.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("frame_spacing_fs:", "frame_spacing:"))
    with pytest.raises(PresetError, match="did you mean 'frame_spacing_fs'"):
        load_preset(str(bad))


def test_refuses_non_empty_output_and_touches_nothing(tmp_path):
    keep = tmp_path / "precious.txt"
    keep.write_text("do not lose me")
    with pytest.raises(DataGenerationError, match="--overwrite"):
        generate_dataset("sio2-tersoff", tmp_path, quick=True, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["precious.txt"]
    assert keep.read_text() == "do not lose me"


def test_cli_errors_are_clear(tmp_path, capsys):
    (tmp_path / "x").write_text("x")
    assert main(["data", "generate", "--quick", "--out", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["data", "generate", "--preset", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "bundled presets" in capsys.readouterr().err
