"""`gnnff stabilize --format aoti`: the final model is also written as an AOTInductor package.

The loop itself is replaced by a stand-in (its tests are tests/test_stabilize*.py) and so is the
compiler (minutes; the package's equality with the TorchScript file is tests/test_aoti.py):
what is checked here is which file is compiled, with which dtype and format, and when."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import gnnff.active.config as active_config
import gnnff.active.loop as active_loop
import gnnff.potentials as potentials_pkg
from gnnff.cli import main
from gnnff.potentials import build_model, export_model


@pytest.fixture
def final_model(tmp_path, monkeypatch) -> Path:
    torch.manual_seed(0)
    cfg = {"family": "allegro", "species": ["Si", "O"], "cutoff": 4.0, "num_layers": 1,
           "num_scalar": 8, "num_tensor": 2, "mlp_hidden": [8]}  # fmt: skip
    path = tmp_path / "loop" / "round_001" / "train" / "model.pt"
    path.parent.mkdir(parents=True)
    export_model(build_model(cfg), path, dtype="float32")

    class Loop:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def run(self) -> dict:
            return {"status": "stable", "final_model": str(path), "frames_added_total": 3,
                    "rounds": [{"runs": [{"stability_index": 1.0}]}]}  # fmt: skip

    monkeypatch.setattr(active_loop, "StabilizeLoop", Loop)
    monkeypatch.setattr(active_config, "load", lambda *args, **kwargs: {})
    return path


@pytest.fixture
def compiled(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []

    def fake_export(model, path, dtype="float64", training_summary=None, format="torchscript"):
        calls.append((Path(path), dtype, format, model))
        return Path(path)

    monkeypatch.setattr(potentials_pkg, "export_model", fake_export)
    return calls


def test_format_aoti_compiles_the_final_model_beside_it(final_model, compiled, tmp_path, capsys):
    code = main(["stabilize", "cfg.yaml", "--out", str(tmp_path / "loop"), "--format", "aoti"])
    assert code == 0
    assert [c[:3] for c in compiled] == [(final_model.with_suffix(".pt2"), "float32", "aoti")]
    assert isinstance(compiled[0][3], torch.nn.Module)  # the eager model, not the file
    assert "model.pt2" in capsys.readouterr().out


def test_default_writes_no_package(final_model, compiled, tmp_path):
    assert main(["stabilize", "cfg.yaml", "--out", str(tmp_path / "loop")]) == 0
    assert compiled == []


def test_unknown_format_lists_the_valid_ones(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["stabilize", "cfg.yaml", "--out", str(tmp_path), "--format", "onnx"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "torchscript" in err and "aoti" in err
