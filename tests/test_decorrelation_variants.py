"""Decorrelation-loss variants: definitions, config errors, exact baseline at lambda = 0, and
each variant lowering its own L_corr."""

import math

import ase.io
import numpy as np
import pytest
import torch
from training_fixtures import SMALL_MODEL, config, one_thread, quiet  # noqa: F401

from gnnff.potentials import build_model
from gnnff.testing.synthetic import make_dataset
from gnnff.training.config import ConfigError
from gnnff.training.data import collate
from gnnff.training.decorrelation import (
    VARIANTS,
    auto_max_edges,
    decorrelation_loss,
    edge_pair_ids,
    per_pair_decorrelation_loss,
    variant_feature_kind,
    variant_loss,
)
from gnnff.training.loss import predict
from gnnff.training.schedulers import DecayLambda, build_lambda_scheduler
from gnnff.training.trainer import Trainer


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("vardata")
    ase.io.write(d / "train.extxyz", make_dataset(24, seed=1))
    ase.io.write(d / "valid.extxyz", make_dataset(8, seed=2))
    ase.io.write(d / "small.extxyz", make_dataset(8, seed=5, n_formula=3))
    return d


# ------------------------------------------------------------------ definitions
def test_per_pair_loss_is_the_mean_over_pairs_of_the_pooled_loss():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5)))
    pid = torch.tensor(rng.integers(0, 3, size=300))
    pid[:4] = 7  # a pair with too few edges: skipped
    got, per = per_pair_decorrelation_loss([x, x**2], pid, max_edges=None, min_edges=8)
    ref = []
    for layer in (x, x**2):
        vals = [decorrelation_loss([layer[pid == p]], None)[0].item() for p in (0, 1, 2)]
        ref.append(np.mean(vals))
    assert per.tolist() == pytest.approx(ref, rel=1e-10)
    assert got.item() == pytest.approx(np.mean(ref), rel=1e-10)
    # a pooled correlation produced only by the pair means is not counted per pair
    a = torch.randn(400, 2, dtype=torch.float64)
    labels = torch.arange(400) % 2
    shifted = a + 10.0 * labels.unsqueeze(1).double()  # both channels shift with the pair
    pooled = decorrelation_loss([shifted], None)[0].item()
    within = per_pair_decorrelation_loss([shifted], labels, None)[0].item()
    assert pooled > 0.9 and within < 0.05


def test_edge_pair_ids_and_variant_kinds():
    species = torch.tensor([0, 1, 1])
    ei = torch.tensor([[0, 1, 2, 2], [1, 0, 0, 1]])
    assert edge_pair_ids(species, ei, 2).tolist() == [1, 2, 2, 3]
    assert [variant_feature_kind(v) for v in VARIANTS] == [
        "residual",
        "post_activation",
        "post_activation",
        "tensor",
    ]
    with pytest.raises(ValueError, match="residual, post_activation, per_pair, tensor"):
        variant_feature_kind("whitened")
    with pytest.raises(ValueError, match="pair ids"):
        variant_loss("per_pair", [torch.randn(10, 3)], None)


def test_model_features_of_each_kind():
    torch.manual_seed(0)
    model = build_model(
        {"family": "allegro", "species": ["O", "Si"], "l_max": 2, **SMALL_MODEL}
    ).double()
    vec = torch.randn(40, 3, dtype=torch.float64) * 0.8 + torch.tensor([1.5, 0.5, 0.0])
    ei = torch.stack([torch.arange(40) % 6, (torch.arange(40) + 1) % 6])
    species = torch.tensor([0, 1, 0, 1, 0, 0])
    e_plain = model(vec, species, ei, 6)
    e_all, feats = model.energy_from_edges(vec, species, ei, 6, True, "all")
    assert torch.equal(e_plain, e_all)  # features do not change the energy
    assert [tuple(f.shape) for f in feats] == [(40, 16)] * 2 + [(40, 32)] * 2 + [(40, 8)] * 2
    # post-activation features = SiLU of the latent MLP's first Linear on [x, scalars]
    hidden = feats[2]
    assert bool((hidden > -0.2785).all())  # SiLU's minimum
    _, post = model.energy_from_edges(vec, species, ei, 6, True, "post_activation")
    assert all(torch.equal(a, b) for a, b in zip(post, feats[2:4], strict=True))
    # tensor norms of layer 0 = norms of the l = 1, 2 blocks of W x0 (x) Y
    _, res = model.energy_from_edges(vec, species, ei, 6, True, "tensor")
    assert torch.equal(res[0], feats[4])
    with pytest.raises(ValueError, match="feature_kind"):
        model.energy_from_edges(vec, species, ei, 6, True, "hidden")


# ------------------------------------------------------------------ config and schedulers
def test_config_errors(data):
    with pytest.raises(
        ConfigError,
        match=r"variant.*choose one of residual, post_activation, "
        r"per_pair, tensor",
    ):
        config(data, decorrelation={"variant": "whitened"})
    with pytest.raises(ConfigError, match=r"scheduler.*constant, cosine, adaptive, decay"):
        config(data, decorrelation={"scheduler": "linear"})
    with pytest.raises(ConfigError, match="mlp_hidden is empty"):
        config(
            data, model={"mlp_hidden": []}, decorrelation={"enabled": True, "variant": "per_pair"}
        )
    with pytest.raises(ConfigError, match="l_max is 0"):
        config(data, model={"l_max": 0}, decorrelation={"enabled": True, "variant": "tensor"})
    with pytest.raises(ConfigError, match=r"max_edges must be an integer >= 2, null .* or 'auto'"):
        config(data, decorrelation={"max_edges": "all"})
    cfg = config(data)
    assert cfg["decorrelation"]["variant"] == "residual"  # old configs keep their loss
    assert cfg["decorrelation"]["max_edges"] == "auto"


def test_auto_max_edges_keeps_the_gram_cost_of_4096_edges_of_32_channels():
    assert auto_max_edges(32) == 4096 and auto_max_edges(8) == 4096  # never above the old 4096
    assert auto_max_edges(64) == 1024  # post-activation width of the default model
    assert auto_max_edges(48) == 4096 * 32 * 32 // (48 * 48)
    assert auto_max_edges(1024) == 512  # floor
    with pytest.raises(ValueError, match="channels must be >= 1"):
        auto_max_edges(0)
    # "auto" in variant_loss is the explicit count of the widest layer, same generator draws
    rng = np.random.default_rng(3)
    feats = [torch.tensor(rng.normal(size=(3000, 64))), torch.tensor(rng.normal(size=(3000, 16)))]
    auto = variant_loss("post_activation", feats, None, "auto", torch.Generator().manual_seed(1))
    explicit = variant_loss("post_activation", feats, None, 1024, torch.Generator().manual_seed(1))
    assert torch.equal(auto[1], explicit[1])
    with pytest.raises(ValueError, match="max_edges must be an integer, None or 'auto'"):
        variant_loss("residual", feats, None, "some", None)


def test_decay_schedule():
    cos = DecayLambda(0.4, 10, "cosine", 0.1)
    assert cos.value(0) == pytest.approx(0.4)
    assert cos.value(5) == pytest.approx(0.25)
    assert cos.value(10) == cos.value(99) == pytest.approx(0.1)
    exp = DecayLambda(0.4, 10, "exponential", 0.0)
    assert exp.value(10) == pytest.approx(0.4 / math.e)
    vals = [exp.value(t) for t in range(50)]
    assert all(a > b for a, b in zip(vals, vals[1:], strict=False))
    cfg = {
        "scheduler": "decay",
        "lambda_max": 1.0,
        "lambda_end": 0.0,
        "decay_shape": "cosine",
        "decay_epochs": None,
    }
    s = build_lambda_scheduler(cfg, steps_per_epoch=4, total_epochs=5)
    assert s.value(0) == 1.0 and s.value(10) == pytest.approx(0.5) and s.value(20) == 0.0


# ------------------------------------------------------------------ training
def test_lambda_zero_is_exactly_the_baseline(data, tmp_path):
    """lambda = 0 (constant and decay) gives bitwise the baseline weights after 4 steps."""
    states = {}
    runs = (
        [("off", {"enabled": False})]
        + [
            (v, {"enabled": True, "variant": v, "scheduler": "constant", "lambda_max": 0.0})
            for v in ("post_activation", "per_pair", "tensor")
        ]
        + [
            (
                "decay",
                {
                    "enabled": True,
                    "variant": "per_pair",
                    "scheduler": "decay",
                    "lambda_max": 0.0,
                    "decay_shape": "exponential",
                },
            )
        ]
    )
    for name, dec in runs:
        cfg = config(data, train="small.extxyz", decorrelation=dec, training={"batch_size": 2})
        tr = Trainer(cfg, tmp_path / name, log=quiet)
        tr.train_epoch()
        assert tr.step == 4
        states[name] = tr.model.state_dict()
    s0 = states["off"]
    assert any(
        not torch.equal(s0[k], v)
        for k, v in build_model({"family": "allegro", "species": ["O", "Si"], **SMALL_MODEL})
        .state_dict()
        .items()
        if k in s0 and s0[k].shape == v.shape
    )
    for name, s1 in states.items():
        assert all(torch.equal(s0[k], s1[k]) for k in s0), name


def _own_lcorr(model, structs, variant: str) -> float:
    batch = collate(structs, torch.float32)
    out = predict(
        model, batch, forces=False, features=True, feature_kind=variant_feature_kind(variant)
    )
    pairs = edge_pair_ids(batch.species, batch.edge_index, model.num_species)
    feats = [f.detach() for f in out["features"]]
    return float(variant_loss(variant, feats, pairs, max_edges=None)[0])


def test_each_variant_lowers_its_own_lcorr(data, tmp_path):
    models = {}
    for name, dec in [("base", {"enabled": False})] + [
        (v, {"enabled": True, "variant": v, "scheduler": "constant", "lambda_max": 0.5})
        for v in ("residual", "post_activation", "per_pair", "tensor")
    ]:
        cfg = config(data, decorrelation=dec, optim={"lr": 5e-3}, training={"epochs": 6})
        tr = Trainer(cfg, tmp_path / name, log=quiet)
        for _ in range(6):
            tr.train_epoch()
        models[name] = (tr.model, tr.data["valid"])
    for v in ("residual", "post_activation", "per_pair", "tensor"):
        base = _own_lcorr(*models["base"], v)
        own = _own_lcorr(*models[v], v)
        assert own < base - 0.02, (v, base, own)


def test_runs_from_before_the_variants_resume(data, tmp_path):
    """A checkpoint whose config predates decorrelation.variant / decay_* / max_edges "auto"
    resumes (the missing keys meant the defaults; a stored edge count is kept), and a real
    change of variant is still refused."""
    cfg = config(data, train="small.extxyz", training={"epochs": 1})
    Trainer(cfg, tmp_path / "old", log=quiet).fit()
    path = tmp_path / "old" / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    for key in ("variant", "decay_shape", "decay_epochs"):
        del ckpt["config"]["decorrelation"][key]
    ckpt["config"]["decorrelation"]["max_edges"] = 4096  # the default before "auto"
    torch.save(ckpt, path)
    more = config(data, train="small.extxyz", training={"epochs": 2})
    assert more["decorrelation"]["max_edges"] == "auto"
    resumed = Trainer(more, tmp_path / "old", resume=True, log=quiet)
    assert resumed.epoch == 1
    assert resumed.cfg["decorrelation"]["max_edges"] == 4096  # the run keeps its edge count
    other = config(
        data, train="small.extxyz", training={"epochs": 2}, decorrelation={"variant": "per_pair"}
    )
    with pytest.raises(ConfigError, match="decorrelation.variant"):
        Trainer(other, tmp_path / "old", resume=True, log=quiet)
