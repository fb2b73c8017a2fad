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
    assert run(["export", str(out), "--out", str(tmp_path / "x.pt")]) == 1
    assert "exported model file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(["export", str(ckpt), "--out", str(out), "--dtype", "float16"])
