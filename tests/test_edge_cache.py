"""The on-disk training data cache: exactly the structures build_structures makes, rebuilt when
an input changes or the folder is damaged, the same errors, identical training."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from training_fixtures import SMALL_MODEL, one_thread, quiet  # noqa: F401

from gnnff.testing.synthetic import make_dataset
from gnnff.training.config import ConfigError, validate_config
from gnnff.training.data import (
    DataError,
    avg_num_neighbors,
    build_structures,
    fit_species_shift,
    force_rms,
    isolated_atom_energies,
)
from gnnff.training.edge_cache import CachedStructures, CacheError
from gnnff.training.edge_cache_build import load_or_build
from gnnff.training.labels import LabelKeys
from gnnff.training.trainer import Trainer

SPECIES = ["O", "Si"]


def mixed_frames(seed=3):
    """Labelled SiO2 cells where some frames lack forces, energy or (non-periodic) stress,
    plus one isolated atom of each species."""
    frames = make_dataset(7, seed=seed)
    for k, atoms in enumerate(frames):
        r = atoms.calc.results
        if k == 1:  # energy only
            atoms.calc = SinglePointCalculator(atoms, energy=r["energy"])
        elif k == 2:  # forces only
            atoms.calc = SinglePointCalculator(atoms, forces=r["forces"])
        elif k == 4:  # a cluster: no stress, volume 0
            atoms.pbc = False
            atoms.calc = SinglePointCalculator(atoms, energy=r["energy"], forces=r["forces"])
    for sym, e in (("Si", -0.5), ("O", -0.25)):
        atom = Atoms(sym, positions=[[5.0, 5.0, 5.0]], cell=np.eye(3) * 10.0, pbc=False)
        atom.calc = SinglePointCalculator(atom, energy=e, forces=np.zeros((1, 3)))
        frames.append(atom)
    return frames


@pytest.fixture()
def data_file(tmp_path):
    path = tmp_path / "mixed.extxyz"
    ase.io.write(path, mixed_frames())
    return path


def direct(path, species=SPECIES, cutoff=4.0, keys=None):
    return build_structures(ase.io.read(path, ":"), path, species, cutoff, keys=keys)


def assert_same(cached, structs):
    assert len(cached) == len(structs)
    for k, (a, b) in enumerate(zip(cached[:], structs, strict=True)):
        for name in ("pos", "species", "edge_index", "edge_shift", "forces", "stress"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), (k, name)
            if x is not None:
                assert x.dtype == y.dtype and np.array_equal(x, y), (k, name)
        assert a.energy == b.energy and a.volume == b.volume, k


def test_cached_structures_equal_build_structures(data_file, tmp_path):
    structs = direct(data_file)
    assert [s.energy is None for s in structs].count(True) == 1  # the fixture has gaps
    assert [s.forces is None for s in structs].count(True) == 1
    assert sum(s.stress is None for s in structs) == 5
    lines = []
    cached = load_or_build(tmp_path / "c", data_file, SPECIES, 4.0, log=lines.append)
    assert "building" in lines[0]
    assert_same(cached, structs)
    assert_same(CachedStructures(tmp_path / "c"), structs)  # reopened from disk
    assert cached[-1].pos.shape == (1, 3) and cached[-9].energy == structs[0].energy
    with pytest.raises(IndexError):
        cached[len(structs)]
    # the dataset statistics from the arrays equal the per-structure ones exactly
    assert np.array_equal(fit_species_shift(cached, 2), fit_species_shift(structs, 2))
    assert np.array_equal(
        isolated_atom_energies(cached, SPECIES), isolated_atom_energies(structs, SPECIES)
    )
    assert isolated_atom_energies(cached, SPECIES).tolist() == [-0.25, -0.5]
    assert force_rms(cached) == force_rms(structs)
    assert avg_num_neighbors(cached) == avg_num_neighbors(structs)
    m = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert m["num_frames"] == 9 and m["labelled"] == {"energy": 8, "forces": 8, "stress": 4}
    assert isinstance(np.load(tmp_path / "c" / "positions.npy", mmap_mode="r"), np.memmap)
    lines.clear()
    load_or_build(tmp_path / "c", data_file, SPECIES, 4.0, log=lines.append)
    assert len(lines) == 1 and "reusing" in lines[0]


def test_changed_inputs_rebuild(data_file, tmp_path):
    folder = tmp_path / "c"
    lines = []

    def hashed():
        return json.loads((folder / "manifest.json").read_text())["hash"]

    load_or_build(folder, data_file, SPECIES, 4.0, log=lines.append)
    h0 = hashed()
    cases = [
        (dict(cutoff=3.0), "cutoff 4.0 -> 3.0"),
        (dict(species=["Si", "O"]), "species ['O', 'Si'] -> ['Si', 'O']"),
        (dict(keys=LabelKeys(virial_key="virial")), "label_keys"),
    ]
    for change, why in cases:
        kw = dict(species=SPECIES, cutoff=4.0) | change
        h_before = hashed()
        if "keys" in change:  # a key option that names a key no frame has: the same error
            with pytest.raises(DataError) as ours:
                load_or_build(folder, data_file, **kw, log=lines.append)
            with pytest.raises(DataError) as theirs:
                direct(data_file, **kw)
            assert str(ours.value) == str(theirs.value)
            assert why in lines[-1] and hashed() == h_before  # the old cache is left as is
            continue
        lines.clear()
        cached = load_or_build(folder, data_file, **kw, log=lines.append)
        assert why in lines[0] and hashed() not in (h0, h_before)
        assert_same(cached, direct(data_file, **kw))
    lines.clear()  # a frame selection (file@index) is an input too
    cached = load_or_build(folder, f"{data_file}@2:-1", SPECIES, 4.0, log=lines.append)
    assert "index ':' -> '2:-1'" in lines[0]
    sel = ase.io.read(data_file, "2:-1")
    assert_same(cached, build_structures(sel, data_file, SPECIES, 4.0))
    ase.io.write(data_file, mixed_frames(seed=4))  # new content under the same name
    lines.clear()
    cached = load_or_build(folder, data_file, SPECIES, 4.0, log=lines.append)
    assert "data file changed" in lines[0]
    assert_same(cached, direct(data_file))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.")]  # no leftovers


@pytest.mark.parametrize("damage", ["missing_npy", "truncated_npy", "old_format", "manifest"])
def test_damaged_cache_is_rebuilt_or_refused(data_file, tmp_path, damage):
    folder = tmp_path / "c"
    load_or_build(folder, data_file, SPECIES, 4.0, log=quiet)
    if damage == "missing_npy":
        (folder / "edge_shift.npy").unlink()
    elif damage == "truncated_npy":
        p = folder / "positions.npy"
        p.write_bytes(p.read_bytes()[:-24])
    elif damage == "old_format":
        m = json.loads((folder / "manifest.json").read_text())
        m["format_version"] = 0
        (folder / "manifest.json").write_text(json.dumps(m))
    else:
        (folder / "manifest.json").unlink()
        with pytest.raises(CacheError, match="holds no manifest.json"):
            load_or_build(folder, data_file, SPECIES, 4.0, log=quiet)
        return
    lines = []
    cached = load_or_build(folder, data_file, SPECIES, 4.0, log=lines.append)
    assert "building" in lines[0] and ("unusable" in lines[0] or "format_version" in lines[0])
    assert_same(cached, direct(data_file))


def test_bad_frame_gives_the_same_error_and_no_cache(tmp_path):
    frames = mixed_frames()
    frames[5].positions[3] = frames[5].positions[0]  # coincident atoms in frame 5
    path = tmp_path / "bad.extxyz"
    ase.io.write(path, frames)
    with pytest.raises(DataError) as theirs:
        direct(path)
    with pytest.raises(DataError) as ours:
        load_or_build(tmp_path / "c", path, SPECIES, 4.0, log=quiet)
    assert str(ours.value) == str(theirs.value) and "frame 5" in str(ours.value)
    with pytest.raises(DataError, match="species") as ours:  # unknown species
        load_or_build(tmp_path / "c", path, ["O"], 4.0, log=quiet)
    with pytest.raises(DataError) as theirs:
        direct(path, species=["O"])
    assert str(ours.value) == str(theirs.value)
    assert list(tmp_path.iterdir()) == [path]  # neither a cache nor a temporary folder


def config(folder, cache, **sections):
    raw = {
        "data": {"train": "train.extxyz", "valid": "valid.extxyz", "cache": cache},
        "model": dict(SMALL_MODEL),
        "training": {"epochs": 2, "progress": False, **sections.get("training", {})},
    }
    return validate_config(raw, base_dir=folder)


def test_config_cache_values(tmp_path):
    ase.io.write(tmp_path / "train.extxyz", make_dataset(2, seed=1))
    ase.io.write(tmp_path / "valid.extxyz", make_dataset(1, seed=2))
    assert config(tmp_path, None)["data"]["cache"] is None
    assert config(tmp_path, True)["data"]["cache"] == str(tmp_path / "train.extxyz.gnnff-cache")
    assert config(tmp_path, "c")["data"]["cache"] == str(tmp_path / "c")  # relative to the yaml
    for bad in (3, "", ["a"]):
        with pytest.raises(ConfigError, match="data.cache must be null"):
            config(tmp_path, bad)
    with pytest.raises(ConfigError, match="is not a folder"):
        config(tmp_path, "train.extxyz")


def test_training_with_cache_is_identical(tmp_path):
    ase.io.write(tmp_path / "train.extxyz", make_dataset(10, seed=5, n_formula=3))
    ase.io.write(tmp_path / "valid.extxyz", make_dataset(3, seed=2, n_formula=3))
    sections = {"training": {"dtype": "float64", "batch_size": 3}}
    runs = {}
    for name, cache in (("memory", None), ("cache", str(tmp_path / "cache"))):
        cfg = config(tmp_path, cache, **sections)
        lines = []
        tr = Trainer(cfg, tmp_path / f"run_{name}", log=lines.append)
        assert any("data cache" in s for s in lines) == (cache is not None)
        summary = tr.fit()
        runs[name] = (tr.model.state_dict(), tr.stability_reference, tr.cfg["model"], summary)
    (s0, r0, m0, y0), (s1, r1, m1, y1) = runs["memory"], runs["cache"]
    assert s0.keys() == s1.keys() and all(torch.equal(s0[k], s1[k]) for k in s0)
    assert r0 == r1 and m0 == m1 and y0["final_valid"] == y1["final_valid"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["train", "valid"]
    lines = []  # a second run reuses the caches, the species read from the manifest
    tr = Trainer(config(tmp_path, str(tmp_path / "cache")), tmp_path / "again", log=lines.append)
    assert [s.split(": ")[1].split(" ")[0] for s in lines[:2]] == ["reusing", "reusing"]
    assert tr.cfg["model"]["species"] == m0["species"] == ["O", "Si"]


def test_cli_data_only_builds_the_cache(tmp_path, capsys):
    from gnnff.cli import main

    ase.io.write(tmp_path / "train.extxyz", make_dataset(4, seed=1, n_formula=3))
    ase.io.write(tmp_path / "valid.extxyz", make_dataset(2, seed=2, n_formula=3))
    yaml = tmp_path / "run.yaml"
    yaml.write_text(
        "data: {train: train.extxyz, valid: valid.extxyz, cache: cache}\n"
        "model: {cutoff: 4.0, num_layers: 1, num_scalar: 8, num_tensor: 2}\n"
    )
    assert main(["train", str(yaml), "--data-only"]) == 0
    out = capsys.readouterr().out
    assert "data ok: train 4, valid 2 structures; species ['O', 'Si']" in out
    assert out.count("building") == 2
    assert (tmp_path / "cache" / "valid" / "manifest.json").is_file()
    assert main(["train", str(yaml)]) == 2
    assert "--out is required" in capsys.readouterr().err


def test_chunked_build_equals_one_pass(data_file, tmp_path):
    """Frames written 2 at a time: the same arrays, and the same close-contact reference as
    StabilityReference.from_frames over all frames at once."""
    from gnnff.stability.reference import StabilityReference
    from gnnff.training.edge_cache_build import build_cache

    manifest = build_cache(tmp_path / "c", data_file, SPECIES, 4.0, chunk=2)
    assert_same(CachedStructures(tmp_path / "c"), direct(data_file))
    ref = StabilityReference.from_frames(
        ase.io.read(data_file, ":"), with_rdf=False, distance_cutoff=4.0
    )
    assert manifest["pair_min_distances"] == ref.pair_min_distances
    assert len(ref.pair_min_distances) == 3


def test_resume_may_switch_the_cache(tmp_path):
    from gnnff.potentials import resolve_model_config
    from gnnff.training.checkpointing import check_resume

    ase.io.write(tmp_path / "train.extxyz", make_dataset(2, seed=1))
    ase.io.write(tmp_path / "valid.extxyz", make_dataset(1, seed=2))
    old, new = config(tmp_path, None), config(tmp_path, True)
    model = resolve_model_config({**old["model"], "species": SPECIES})
    old["model"], new["model"] = model, dict(model)  # as stored after set-up
    check_resume({"config": old}, new, tmp_path / "checkpoint.pt")  # no error
    new["data"]["energy_key"] = "REF_energy"
    with pytest.raises(ConfigError, match="data.energy_key"):
        check_resume({"config": old}, new, tmp_path / "checkpoint.pt")
