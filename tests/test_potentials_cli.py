"""`gnnff export` / `gnnff info` through the room's register() hook."""

import argparse

import pytest

from gnnff.potentials import build_model, load, save_checkpoint
from gnnff.potentials.commands import register


def run(argv):
    parser = argparse.ArgumentParser(prog="gnnff")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_export_untrained_yaml_and_info(tmp_path, capsys):
    yml = tmp_path / "model.yaml"
    yml.write_text("family: allegro-attn\nspecies: [O, Si]\ncutoff: 4.0\n")
    out = tmp_path / "m.pt"
    assert run(["export", "--untrained", str(yml), "--out", str(out), "--dtype", "float32"]) == 0
    module, meta = load(out)
    assert meta["family"] == "allegro-attn" and meta["training"] is None
    assert meta["dtype"] == "float32" and meta["cutoff"] == 4.0
    assert run(["info", str(out)]) == 0
    assert "allegro-attn" in capsys.readouterr().out


def test_export_checkpoint_and_errors(tmp_path, capsys):
    model = build_model({"family": "allegro", "species": ["Si"], "cutoff": 3.0, "num_layers": 1})
    ckpt = save_checkpoint(tmp_path / "c.pt", model, training_summary={"epochs": 1})
    out = tmp_path / "m.pt"
    assert run(["export", str(ckpt), "--out", str(out)]) == 0
    _, meta = load(out)
    assert meta["training"] == {"epochs": 1} and meta["dtype"] == "float64"
    # softmax swap on a model without attention, and info on a checkpoint: clear errors
    assert (
        run(["export", str(ckpt), "--out", str(out), "--softmax", "lut-2d", "--lut-bits", "8"]) == 1
    )
    assert "allegro-attn" in capsys.readouterr().err
    assert run(["export", str(ckpt), "--out", str(out), "--lut-bits", "16"]) == 2
    assert "--lut-bits applies to the lut-*" in capsys.readouterr().err
    assert run(["info", str(ckpt)]) == 1
    assert "not a gnnff model file" in capsys.readouterr().err
    assert run(["export", str(tmp_path / "nothing.pt"), "--out", str(tmp_path / "x.pt")]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(["export", str(ckpt), "--out", str(out), "--dtype", "float16"])


def test_export_of_a_model_file_keeps_its_metadata_and_results(tmp_path):
    """`gnnff export MODEL.pt --dtype float32`: the same potential, in the new dtype, with the
    file's training record; the bundled models export by name the same way."""
    import numpy as np
    from ase.build import bulk

    from gnnff.calculators import GNNFFCalculator
    from gnnff.potentials import export_model, read_metadata
    from gnnff.potentials.bundled import available_pretrained, model_file

    model = build_model({"family": "allegro", "species": ["Si"], "cutoff": 3.0, "num_layers": 2})
    src = export_model(model, tmp_path / "m.pt", "float64", {"epochs": 3, "note": "kept"})
    out = tmp_path / "m32.pt"
    assert run(["export", str(src), "--out", str(out), "--dtype", "float32"]) == 0
    meta, ref = read_metadata(out), read_metadata(src)
    assert meta["dtype"] == "float32" and meta["training"] == {"epochs": 3, "note": "kept"}
    assert meta["hyperparameters"] == ref["hyperparameters"]
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.rattle(0.05, seed=2)
    forces = {}
    for path in (src, out):
        atoms.calc = GNNFFCalculator(path)
        forces[path] = atoms.get_forces()
    assert np.abs(forces[out] - forces[src]).max() < 1e-4
    assert np.abs(forces[src]).max() > 1e-3  # a non-trivial comparison
    name = available_pretrained()[0]
    assert run(["export", name, "--out", str(tmp_path / "b.pt")]) == 0
    exported, bundled = read_metadata(tmp_path / "b.pt"), read_metadata(model_file(name))
    assert exported["training"] == bundled["training"]


def test_export_of_a_package_names_the_file_to_use(tmp_path, capsys):
    from test_aoti import fake_package

    path = fake_package(tmp_path / "m.pt2")
    assert run(["export", str(path), "--out", str(tmp_path / "x.pt")]) == 1
    err = capsys.readouterr().err
    assert "AOTInductor package" in err and "TorchScript model file (.pt)" in err
    assert not (tmp_path / "x.pt").exists()
