"""Shared fixtures: the quick SiO2 data set is generated once per test session."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def quick_data(tmp_path_factory):
    """Folder with the quick ``sio2-tersoff`` data set (seed 0)."""
    from gnnff.data.generate import generate_dataset

    out = tmp_path_factory.mktemp("quick_sio2")
    generate_dataset("sio2-tersoff", out, seed=0, quick=True, progress=False)
    return out


@pytest.fixture
def standin(monkeypatch, tmp_path):
    """The stand-in teacher ``standin`` (Lennard-Jones, Si and O) registered for one test; its
    call counter (see ``teacher_fixtures.register_standin``)."""
    from teacher_fixtures import register_standin

    return register_standin(monkeypatch, tmp_path)
