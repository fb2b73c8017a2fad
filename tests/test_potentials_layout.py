"""The split of gnnff/potentials (issue 27): old import paths keep working for one release with
a warning naming the new home, and model files written before the split still load."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
import torch

import gnnff.potentials as potentials

MOVED = {  # old module -> (new module, a public name both give)
    "gnnff.potentials.model": ("gnnff.potentials.allegro.model", "AllegroModel"),
    "gnnff.potentials.allegro_families": ("gnnff.potentials.allegro.families", "ALLEGRO_DEFAULTS"),
    "gnnff.potentials.reparam": ("gnnff.potentials.allegro.reparam", "zca_whitening"),
    "gnnff.potentials.export": ("gnnff.potentials.files.load", "read_metadata"),
    "gnnff.potentials.aoti": ("gnnff.potentials.files.aoti", "AOTIModel"),
    "gnnff.potentials.registry": ("gnnff.potentials.bundled", "pretrained_path"),
    "gnnff.potentials.softmax_eval": ("gnnff.potentials.analysis.softmax_eval", "backend_errors"),
    "gnnff.potentials.short_range": ("gnnff.potentials.analysis.short_range", "auto_windows"),
    "gnnff.training.synthetic": ("gnnff.testing.synthetic", "make_dataset"),
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_warns_naming_its_new_home(old, monkeypatch):
    new, name = MOVED[old]
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=new.rsplit(".", 1)[0]):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_old_module_keeps_build_model_and_the_old_class_name(monkeypatch):
    monkeypatch.delitem(sys.modules, "gnnff.potentials.model", raising=False)
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("gnnff.potentials.model")
    assert old.build_model is potentials.build_model
    assert old.GNNFFModel is potentials.AllegroModel


def test_the_renamed_class_warns_naming_allegro_model():
    with pytest.warns(DeprecationWarning, match="AllegroModel"):
        cls = potentials.GNNFFModel
    assert cls is potentials.AllegroModel


def test_the_package_names_need_no_deprecated_module(recwarn):
    for name in potentials.__all__:
        getattr(potentials, name)
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_a_model_file_written_before_the_split_still_loads():
    """The bundled files were exported before the move: the TorchScript module loads, and the
    eager model rebuilt from it (through the family name) is an AllegroModel giving the same
    atomic energies."""
    from gnnff.potentials import eager_from_file, load, neighbor_list
    from gnnff.potentials.bundled import pretrained_path

    path = pretrained_path("sio2-allegro-al")
    module, meta = load(path)
    model = eager_from_file(path)
    assert isinstance(model, potentials.AllegroModel) and meta["family"] == "allegro"
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.6, 0.0, 0.0], [0.0, 1.6, 0.2]], dtype=torch.float64)
    species = torch.tensor([1, 0, 0])
    edge_index, shifts = neighbor_list(pos.numpy(), np.eye(3) * 20.0, False, float(meta["cutoff"]))
    ei = torch.as_tensor(edge_index)
    vec = pos[ei[1]] - pos[ei[0]] + torch.as_tensor(shifts, dtype=torch.float64)
    eager, _ = model.energy_from_edges(vec, species, ei, 3)
    scripted, _ = module.model.energy_from_edges(vec, species, ei, 3)
    assert torch.allclose(eager, scripted, atol=1e-10) and torch.isfinite(eager).all()
