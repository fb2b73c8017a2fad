"""LUT softmax inside the attention model: TorchScript round trip, re-export, model report."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator

from gnnff.data.structures import composition_counts, random_packing
from gnnff.potentials import (
    ExportedModel,
    build_model,
    eager_from_file,
    export_model,
    load,
    read_metadata,
)
from gnnff.potentials.analysis.softmax_eval import attention_logits, backend_errors


def frames(n: int = 3):
    out = []
    for k in range(n):
        a = random_packing(
            composition_counts({"Si": 1, "O": 2}, 24), 2.2, 1.5, np.random.default_rng(k)
        )
        rng = np.random.default_rng(100 + k)
        a.calc = SinglePointCalculator(
            a, energy=-150.0 + rng.normal(), forces=rng.normal(size=(len(a), 3))
        )
        out.append(a)
    return out


@pytest.fixture(scope="module")
def attn_file(tmp_path_factory):
    torch.manual_seed(3)
    model = build_model(
        {
            "family": "allegro-attn",
            "species": ["Si", "O"],
            "cutoff": 4.0,
            "num_scalar": 16,
            "num_tensor": 4,
            "mlp_hidden": [16],
            "attn_heads": 2,
        }
    )
    # sharpen the attention so the LUT's quantisation is visible
    for layer in model.layers:
        torch.nn.init.normal_(layer.logit.weight, std=2.0)
    return export_model(model.double(), tmp_path_factory.mktemp("lut") / "attn.pt")


@pytest.mark.parametrize("backend,bits", [("lut-rexp", 8), ("lut-2d", 8), ("lut-rexp", 16)])
def test_scripted_lut_model_equals_eager(attn_file, tmp_path, backend, bits):
    from gnnff.potentials.analysis.softmax_eval import _inputs

    model = eager_from_file(attn_file)
    model.set_softmax_backend(backend, bits)
    path = export_model(model, tmp_path / "lut.pt", softmax={"backend": backend, "bits": bits})
    scripted, meta = load(path)
    assert meta["softmax"] == {"backend": backend, "bits": bits}
    inp = _inputs(frames(1)[0], model.species, model.cutoff, torch.float64)
    a = ExportedModel(model)(*inp)
    b = scripted(*inp)
    assert torch.equal(a["energy"], b["energy"])  # the LUT forward is integer-exact
    for key in ("forces", "virial"):  # autograd order may differ in the last bit
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-12)
    reloaded, _ = load(path)
    c = reloaded(*inp)
    for key in ("energy", "forces", "virial", "atomic_energy"):
        assert torch.equal(b[key], c[key]), key
    # the same weights re-read from the LUT file, with float softmax again
    again = eager_from_file(path)
    again.set_softmax_backend("float", None)
    e = ExportedModel(again)(*inp)
    d = ExportedModel(eager_from_file(attn_file))(*inp)
    assert torch.equal(e["energy"], d["energy"])


def test_model_report_rows(attn_file):
    fr = frames(3)
    logits, segment, groups = attention_logits(attn_file, fr)
    assert logits.numel() == segment.numel() > 0 and groups > 0
    assert int(segment.max()) < groups and torch.isfinite(logits).all()
    rows = backend_errors(attn_file, fr)
    by = {(r["backend"], r["bits"]): r for r in rows}
    assert by[("float", None)]["max_dforce_vs_float"] == 0.0
    lut8 = by[("lut-2d", 8)]
    assert 0.0 < lut8["max_dforce_vs_float"] < 1e3  # meV/A: changed, but not garbage
    assert by[("lut-rexp", 16)]["max_denergy_vs_float"] <= lut8["max_denergy_vs_float"] + 1e-9
    assert all(np.isfinite(r["energy_mae"]) and np.isfinite(r["force_mae"]) for r in rows)


def test_report_refuses_non_attention_model(tmp_path):
    m = build_model({"family": "allegro", "species": ["Si", "O"], "cutoff": 4.0})
    path = export_model(m, tmp_path / "a.pt")
    with pytest.raises(ValueError, match="no attention"):
        attention_logits(path, frames(1))


def test_a_backend_swapped_at_run_time_is_exported_and_reloaded(attn_file, tmp_path, capsys):
    """Export reproduces the model it is given: a non-default backend set on the in-memory
    model (no ``softmax=`` argument) is what the file runs, records and reloads with."""
    from gnnff.calculators import GNNFFCalculator
    from gnnff.cli import main
    from gnnff.lut_accel.backends import LUTSoftmax
    from gnnff.lut_accel.config import LUTConfig
    from gnnff.potentials.analysis.softmax_eval import _inputs

    model = eager_from_file(attn_file)
    model.set_softmax_backend("lut-2d")  # bits left to the backend's default (8)
    assert model.config["softmax"] == {"backend": "lut-2d", "bits": 8}
    path = export_model(model, tmp_path / "swapped.pt")
    meta = read_metadata(path)
    assert meta["softmax"] == {"backend": "lut-2d", "bits": 8}
    assert meta["hyperparameters"]["softmax"] == meta["softmax"]
    atoms = frames(1)[0][:9]  # few atoms: the eager LUT emulator is slow
    atoms.calc = None
    inp = _inputs(atoms, model.species, model.cutoff, torch.float64)
    ref = ExportedModel(model)(*inp)
    float_ref = ExportedModel(eager_from_file(attn_file))(*inp)
    assert float(ref["energy"]) != float(float_ref["energy"])  # the LUT does change it
    # the TorchScript file, through the ASE calculator, == the in-memory model
    atoms.calc = GNNFFCalculator(str(path))
    assert atoms.get_potential_energy() == pytest.approx(float(ref["energy"]), abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), ref["forces"].numpy(), rtol=0, atol=1e-10)
    # `gnnff info` and the eager rebuild name the same backend
    assert main(["info", str(path)]) == 0
    assert "softmax:     lut-2d (bits 8)" in capsys.readouterr().out
    again = eager_from_file(path)
    assert again.config["softmax"] == {"backend": "lut-2d", "bits": 8}
    assert all(layer.softmax.name == "lut-2d" for layer in again.layers)

    # a backend assigned directly (not through set_softmax_backend), with a non-default LUT
    # configuration, is exported as it is: the file runs the model's own tables
    custom = LUTConfig(method="rexp", bits=8, input_step=0.1, table_len=40, comp_mant_bits=3)
    direct = eager_from_file(attn_file)
    for layer in direct.layers:
        layer.softmax = LUTSoftmax(custom)
    scripted2, meta2 = load(export_model(direct, tmp_path / "direct.pt"))
    assert meta2["softmax"] == {"backend": "lut-rexp", "bits": 8}
    assert getattr(scripted2.model.layers, "0").softmax.num_table.numel() == 40
