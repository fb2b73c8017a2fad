"""Data-parallel training (torchrun, gloo on CPU): 2 processes x batch b take exactly the steps
of 1 process x batch 2b."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from gnnff.testing.synthetic import write_dataset

WORKER = """
import json, sys
from gnnff.training.config import validate_config
from gnnff.training.trainer import Trainer
cfg = validate_config(json.loads(open(sys.argv[1]).read()))
Trainer(cfg, sys.argv[2], log=lambda *a: None).fit()
"""


def _config(tmp, batch_size):
    return {
        "data": {"train": str(tmp / "train.extxyz"), "valid": str(tmp / "valid.extxyz")},
        "model": {
            "family": "allegro",
            "cutoff": 4.0,
            "num_layers": 1,
            "num_scalar": 8,
            "num_tensor": 2,
            "mlp_hidden": [8],
        },
        "loss": {"energy_weight": 1.0, "forces_weight": 1.0, "stress_weight": 0.5},
        "optim": {"lr": 0.01, "lr_schedule": "none"},
        "training": {
            "epochs": 2,
            "batch_size": batch_size,
            "dtype": "float64",
            "seed": 3,
            "progress": False,
            "num_threads": 1,
            "export": "last",
        },
    }


def _run(tmp, cfg, out, nproc):
    path = tmp / f"cfg_{out}.json"
    path.write_text(json.dumps(cfg))
    worker = tmp / "worker.py"
    worker.write_text(WORKER)
    if nproc == 1:
        cmd = [sys.executable, str(worker), str(path), str(tmp / out)]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            str(worker),
            str(path),
            str(tmp / out),
        ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return torch.load(tmp / out / "checkpoint.pt", weights_only=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    # 7 structures: the last step of each epoch is short (one rank gets 1 of 3)
    write_dataset(tmp / "train.extxyz", 7, seed=1, n_formula=2)
    write_dataset(tmp / "valid.extxyz", 2, seed=2, n_formula=2)
    return tmp


@pytest.fixture(scope="module")
def one(data):
    return _run(data, _config(data, 4), "one", 1)


def test_two_processes_equal_one_with_twice_the_batch(data, one):
    two = _run(data, _config(data, 2), "two", 2)
    assert one["step"] == two["step"] == 4
    for k, v in one["model_state"].items():
        torch.testing.assert_close(two["model_state"][k], v, rtol=0, atol=1e-8, msg=k)
    a, b = one["metrics_rows"][-1], two["metrics_rows"][-1]
    assert b["train_force_mae"] == pytest.approx(a["train_force_mae"], rel=1e-8)
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-8)


@pytest.mark.slow
def test_two_processes_with_a_data_cache(data, one):
    """Rank 0 builds the cache while rank 1 waits, then both read it: the same steps."""
    cfg = _config(data, 2)
    cfg["data"]["cache"] = str(data / "cache")
    two = _run(data, cfg, "two_cached", 2)
    assert sorted(p.name for p in (data / "cache").iterdir()) == ["train", "valid"]
    for k, v in one["model_state"].items():
        torch.testing.assert_close(two["model_state"][k], v, rtol=0, atol=1e-8, msg=k)


def test_more_processes_than_frames_is_refused(data, tmp_path, monkeypatch):
    """Checked in set-up, before any collective call: a 2-process context is enough."""
    import ase.io

    from gnnff.training import distributed
    from gnnff.training.config import ConfigError, validate_config
    from gnnff.training.trainer import Trainer

    frames = ase.io.read(data / "train.extxyz", index=":1")
    ase.io.write(tmp_path / "train.extxyz", frames)
    ase.io.write(tmp_path / "valid.extxyz", frames)
    monkeypatch.setattr(
        distributed, "from_environment", lambda device: distributed.DistributedContext(0, 2)
    )
    with pytest.raises(ConfigError, match="2 data-parallel processes but only 1 training"):
        Trainer(validate_config(_config(tmp_path, 1)), tmp_path / "out", log=lambda *a: None)
    assert not (tmp_path / "out").exists()
