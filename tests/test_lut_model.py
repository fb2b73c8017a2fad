"""LUT softmax inside the attention model: TorchScript round trip, re-export, model report."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator

from gnnff.data.structures import composition_counts, random_packing
from gnnff.potentials import ExportedModel, build_model, eager_from_file, export_model, load
from gnnff.potentials.softmax_eval import attention_logits, backend_errors


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
    from gnnff.potentials.softmax_eval import _inputs

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
