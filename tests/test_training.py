"""The trainer: forces/stress, exact baseline at lambda = 0, exact resume, learning, outputs."""

import argparse
import copy
import csv
import json

import ase.io
import numpy as np
import pytest
import torch
from training_fixtures import SMALL_MODEL, config, one_thread, quiet  # noqa: F401

from gnnff.testing.synthetic import make_dataset
from gnnff.training.config import ConfigError
from gnnff.training.data import collate
from gnnff.training.loss import predict
from gnnff.training.trainer import Trainer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("trdata")
    ase.io.write(d / "train.extxyz", make_dataset(48, seed=1))
    ase.io.write(d / "valid.extxyz", make_dataset(8, seed=2))
    ase.io.write(d / "small.extxyz", make_dataset(10, seed=5, n_formula=3))
    return d


def test_forces_and_stress_match_finite_differences(data, tmp_path):
    cfg = config(data, train="small.extxyz", training={"dtype": "float64"})
    tr = Trainer(cfg, tmp_path / "fd", log=quiet)
    s = copy.deepcopy(tr.data["train"][0])
    model = tr.model
    batch = collate([s], torch.float64)
    out = predict(model, batch, forces=True, stress=True)

    def energy(pos, cell_strain=None):
        st = copy.deepcopy(s)
        st.pos = pos
        if cell_strain is not None:
            st.pos = pos @ cell_strain.T
            st.edge_shift = s.edge_shift @ cell_strain.T
        return float(
            predict(model, collate([st], torch.float64), forces=False)["energy"][0].detach()
        )

    h = 1e-5
    for a, k in [(0, 0), (3, 1), (7, 2)]:
        p1, p2 = s.pos.copy(), s.pos.copy()
        p1[a, k] += h
        p2[a, k] -= h
        fd = -(energy(p1) - energy(p2)) / (2 * h)
        assert float(out["forces"][a, k].detach()) == pytest.approx(fd, abs=1e-6)
    # stress = (1/V) dE/d(strain), same edges, positions and shifts deformed together
    for a, b in [(0, 0), (1, 2)]:
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h
        ep = energy(s.pos, np.eye(3) + eps)
        em = energy(s.pos, np.eye(3) - eps)
        fd = (ep - em) / (2 * h) / s.volume / (1 if a == b else 2)
        assert float(out["stress"][0, a, b].detach()) == pytest.approx(fd, abs=1e-7)


def test_lambda_zero_is_exactly_the_baseline(data, tmp_path):
    runs = {}
    for name, dec in [
        ("off", {"enabled": False}),
        ("zero", {"enabled": True, "scheduler": "constant", "lambda_max": 0.0}),
    ]:
        cfg = config(data, train="small.extxyz", decorrelation=dec)
        tr = Trainer(cfg, tmp_path / name, log=quiet)
        batch = collate(tr.data["train"][:3], tr.dtype)
        loss, _, terms, per_layer = tr.compute_loss(batch, tr.lambda_now())
        assert per_layer is None  # not even computed
        loss.backward()
        grads = [None if p.grad is None else p.grad.clone() for p in tr.model.parameters()]
        assert sum(g is not None for g in grads) > len(grads) // 2
        tr.model.zero_grad()
        tr.fit()
        runs[name] = (loss.detach(), grads, tr.model.state_dict())
    (l0, g0, s0), (l1, g1, s1) = runs["off"], runs["zero"]
    assert torch.equal(l0, l1)
    for a, b in zip(g0, g1, strict=True):
        assert (a is None and b is None) or torch.equal(a, b)
    assert all(torch.equal(s0[k], s1[k]) for k in s0)


def test_decorrelation_term_enters_loss(data, tmp_path):
    cfg = config(
        data,
        train="small.extxyz",
        decorrelation={"enabled": True, "scheduler": "constant", "lambda_max": 0.5},
    )
    tr = Trainer(cfg, tmp_path / "on", log=quiet)
    batch = collate(tr.data["train"][:3], tr.dtype)
    loss, _, terms, per_layer = tr.compute_loss(batch, 0.5)
    assert per_layer is not None and per_layer.shape == (2,)
    base = terms["energy"] + terms["forces"]
    assert float(loss.detach()) == pytest.approx(
        float((base + 0.5 * terms["corr"]).detach()), rel=1e-6
    )


def test_resume_2_plus_2_equals_4(data, tmp_path):
    sections = dict(
        train="small.extxyz",
        decorrelation={
            "enabled": True,
            "scheduler": "cosine",
            "warmup_epochs": 3,
            "max_edges": 64,
            "lambda_max": 0.2,
        },
        training={"ema_decay": 0.9, "dtype": "float64", "batch_size": 3},
        optim={"lr_schedule": "plateau", "plateau_patience": 0},
    )
    full = config(data, **copy.deepcopy(sections))
    full["training"]["epochs"] = 4
    a = Trainer(full, tmp_path / "full", log=quiet)
    a.fit()

    half = config(data, **copy.deepcopy(sections))
    Trainer(half, tmp_path / "split", log=quiet).fit()
    with pytest.raises(ConfigError, match="already holds a training run"):
        Trainer(half, tmp_path / "split", log=quiet)
    more = copy.deepcopy(half)
    more["training"]["epochs"] = 4
    b = Trainer(more, tmp_path / "split", resume=True, log=quiet)
    assert b.epoch == 2
    b.fit()

    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert all(torch.equal(a.ema[k], b.ema[k]) for k in a.ema)

    def rows(p):
        with open(p / "metrics.csv") as fh:
            reader = csv.DictReader(fh)
            return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in reader]

    ra, rb = rows(tmp_path / "full"), rows(tmp_path / "split")
    assert len(ra) == 4 and ra == rb

    bad = copy.deepcopy(more)
    bad["decorrelation"]["lambda_max"] = 0.3
    with pytest.raises(ConfigError, match=r"config differs.*decorrelation.lambda_max"):
        Trainer(bad, tmp_path / "split", resume=True, log=quiet)
    with pytest.raises(ConfigError, match="no checkpoint.pt"):
        Trainer(more, tmp_path / "nothing", resume=True, log=quiet)


@pytest.mark.slow  # 30 epochs x 2 runs: make test-all / make bench run it
def test_training_learns_and_decorrelation_lowers_lcorr(data, tmp_path, capsys):
    results = {}
    for name, dec in [
        ("base", {"enabled": False}),
        ("dec", {"enabled": True, "scheduler": "constant", "lambda_max": 0.1}),
    ]:
        cfg = config(data, decorrelation=dec, optim={"lr": 5e-3}, training={"epochs": 30})
        tr = Trainer(cfg, tmp_path / name, log=quiet)
        untrained, _ = tr.evaluate_split(tr.data["valid"])
        summary = tr.fit()
        results[name] = (untrained, summary)
    for name in ("base", "dec"):
        untrained, summary = results[name]
        assert summary["final_valid"]["force_mae"] * 5 < untrained["force_mae"], name
    assert results["dec"][1]["final_lcorr"] < results["base"][1]["final_lcorr"] - 0.05

    run = tmp_path / "dec"
    for f in (
        "metrics.csv",
        "checkpoint.pt",
        "curves.png",
        "correlation.png",
        "model.pt",
        "summary.json",
    ):
        assert (run / f).is_file(), f
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 30
    for col in (
        "train_energy_mae",
        "valid_force_mae",
        "valid_force_rmse",
        "valid_lcorr_l0",
        "valid_lcorr_l1",
        "train_lcorr_l1",
        "lambda",
        "lr",
        "epoch_seconds",
    ):
        assert col in rows[0], col
    assert float(rows[-1]["lambda"]) == 0.1

    from gnnff.potentials import load
    from gnnff.training.commands import register

    _, meta = load(run / "model.pt")
    summary = meta["training"]
    assert len(summary["data"]["train"]["sha256"]) == 64
    assert summary["decorrelation"]["enabled"] is True
    # the model carries the training data's per-pair minimum distances (close-contact reference)
    from gnnff.stability import StabilityReference

    stored = StabilityReference.from_model_metadata(meta)
    direct = StabilityReference.from_frames(
        ase.io.read(data / "train.extxyz", index=":"), with_rdf=False, distance_cutoff=4.0
    )
    assert stored.species == ["O", "Si"] and stored.n_frames == 48
    # the checkpoint carries it too, so `gnnff export CHECKPOINT` keeps it
    from gnnff.potentials import load_checkpoint

    ckpt_ref = load_checkpoint(run / "checkpoint.pt")["training_summary"]["stability_reference"]
    assert (
        ckpt_ref["pair_min_distances"]
        == meta["training"]["stability_reference"]["pair_min_distances"]
    )
    assert stored.pair_min_distances.keys() == direct.pair_min_distances.keys()
    for key, d in direct.pair_min_distances.items():
        assert stored.pair_min_distances[key] == pytest.approx(d, abs=1e-9), key

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["eval", str(run / "model.pt"), str(data / "valid.extxyz"), "--json"])
    assert args.func(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["force_mae"] == pytest.approx(summary["final_valid"]["force_mae"], rel=1e-3)
    assert res["lcorr"] == pytest.approx(summary["final_lcorr"], rel=1e-3)
    assert len(res["lcorr_per_layer"]) == 2


def test_stress_training_and_early_stopping(data, tmp_path):
    cfg = config(
        data,
        train="small.extxyz",
        loss={"stress_weight": 1.0},
        optim={"lr": 0.0, "lr_schedule": "none"},
        training={"epochs": 5, "early_stopping_patience": 1, "ema_decay": 0.5},
    )
    tr = Trainer(cfg, tmp_path / "stress", log=quiet)
    batch = collate(tr.data["train"][:2], tr.dtype)
    _, out, terms, _ = tr.compute_loss(batch, 0.0)
    assert "stress" in terms and out["stress"].shape == (2, 3, 3)
    summary = tr.fit()
    # lr = 0: the valid loss never improves after epoch 1, so patience 1 stops after epoch 2
    assert summary["epochs_run"] == 2
    assert "stress_mae" in summary["final_valid"]
    with open(tmp_path / "stress" / "metrics.csv") as fh:
        assert "valid_stress_mae" in fh.readline()


def test_species_inferred_and_avg_neighbors_fitted(data, tmp_path):
    cfg = config(data, train="small.extxyz")
    assert "species" not in cfg["model"]
    tr = Trainer(cfg, tmp_path / "inf", log=quiet)
    assert tr.model.species == ["O", "Si"]
    s = tr.data["train"]
    expect = sum(x.edge_index.shape[1] for x in s) / sum(len(x.pos) for x in s)
    assert float(tr.model.avg_num_neighbors) == pytest.approx(expect, rel=1e-6)
    shift = tr.model.per_species_shift.double().numpy()
    counts = np.stack([np.bincount(x.species, minlength=2) for x in s])
    resid = counts @ shift - np.array([x.energy for x in s])
    # least squares: residual orthogonal to the count columns
    assert np.abs(counts.T @ resid).max() < 1e-3 * np.abs(counts.T @ counts @ shift).max()


def test_cli_init_model_fine_tunes_from_the_file(data, tmp_path, capsys):
    """`gnnff train --init-model`: the run starts from the file's weights (at lr 0 its model
    gives the same energies and forces) and takes the model section from its metadata; a
    missing file is refused with exit 2 before anything is written."""
    from gnnff.calculators import GNNFFCalculator
    from gnnff.cli import main

    yaml = tmp_path / "run.yaml"
    yaml.write_text(
        f"data: {{train: {data / 'small.extxyz'}, valid: {data / 'valid.extxyz'}}}\n"
        "model: {cutoff: 4.0, num_layers: 1, num_scalar: 8, num_tensor: 2}\n"
        "training: {epochs: 1, batch_size: 4, progress: false}\n"
    )
    assert main(["train", str(yaml), "--out", str(tmp_path / "a")]) == 0
    first = tmp_path / "a" / "model.pt"
    args = ["train", str(yaml), "--out", str(tmp_path / "b"), "--init-model", str(first)]
    args += ["--set", "optim.lr=0.0", "--set", "model.num_scalar=16"]
    assert main(args) == 0
    assert "fine-tuning from" in capsys.readouterr().out
    atoms = ase.io.read(data / "valid.extxyz", 0)
    results = []
    for model in (first, tmp_path / "b" / "model.pt"):
        atoms.calc = GNNFFCalculator(str(model))
        results.append((atoms.get_potential_energy(), atoms.get_forces().copy()))
    assert results[1][0] == pytest.approx(results[0][0], abs=1e-10)
    np.testing.assert_allclose(results[1][1], results[0][1], atol=1e-10)
    missing = ["train", str(yaml), "--out", str(tmp_path / "c"), "--init-model", "nope.pt"]
    assert main(missing) == 2
    assert "nope.pt" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
