"""Shared pieces of the training tests: a small model config, a config builder and a fixture
that runs a test module on one torch thread (restoring the count afterwards)."""

from __future__ import annotations

import pytest
import torch

from gnnff.training.config import validate_config

SMALL_MODEL = {
    "cutoff": 4.0,
    "num_layers": 2,
    "num_scalar": 16,
    "num_tensor": 4,
    "mlp_hidden": [32],
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def config(data, train="train.extxyz", **sections):
    """A validated training config on ``data``/{train, valid.extxyz} with the small model."""
    raw = {
        "data": {"train": str(data / train), "valid": str(data / "valid.extxyz")},
        "model": dict(SMALL_MODEL),
        "training": {"epochs": 2, "batch_size": 4, "progress": False},
    }
    for sec, body in sections.items():
        raw.setdefault(sec, {}).update(body)
    return validate_config(raw)


def quiet(msg):
    pass
