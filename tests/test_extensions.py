"""Extension points (gnnff.extensions): a toy model family, softmax backend, stability criterion
and lambda scheduler, registered in-process without touching gnnff's files, go through config
validation, training, export, the ASE calculator and the stability tracker; entry points are
discovered lazily and a broken one fails with a clear error."""

# no `from __future__ import annotations`: TorchScript reads the toy modules' annotations
import importlib
import json
import math
from types import SimpleNamespace

import ase.io
import numpy as np
import pytest
import torch
from ase import units
from ase.md.verlet import VelocityVerlet
from training_fixtures import one_thread, quiet  # noqa: F401

from gnnff.extensions import CRITERIA, MODELS, SCHEDULERS, SOFTMAX, PluginError, Registry
from gnnff.potentials import (
    EdgeModel,
    ExportedModel,
    ModelConfigError,
    ModelFamily,
    build_model,
    load,
    make_softmax_backend,
    resolve_model_config,
)
from gnnff.segment_ops import float_segment_softmax
from gnnff.stability import Criterion, StabilityConfig, StabilityMonitor, StabilityTracker
from gnnff.testing.synthetic import make_dataset
from gnnff.training.config import ConfigError, validate_config
from gnnff.training.schedulers import LambdaScheduler


# ------------------------------------------------------------------ the toy extensions
class SharpSoftmax(torch.nn.Module):
    """Toy backend: the softmax of 2 x logits."""

    name: str

    def __init__(self) -> None:
        super().__init__()
        self.name = "toy-sharp"

    def forward(
        self, logits: torch.Tensor, segment: torch.Tensor, num_segments: int
    ) -> torch.Tensor:
        return float_segment_softmax(2.0 * logits, segment, num_segments)

    @torch.jit.export
    def dense(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        return torch.softmax(2.0 * x, dim)


def make_sharp(bits=None, config=None):
    return SharpSoftmax()


class ToyPair(EdgeModel):
    """Toy family: E_i = sum_j (1 + alpha_ij) e_ij with pair terms e_ij = W[s_i s_j] . g(r_ij),
    g a Gaussian basis times a cosine cutoff u, and alpha_ij an attention softmax over i's
    neighbours of logits w . g + log u."""

    num_basis: int

    def __init__(self, cfg: dict) -> None:
        super().__init__(cfg)
        k = int(cfg["toy_basis"])
        self.num_basis = k
        self.register_buffer("mu", torch.linspace(0.8, self.cutoff, k))
        self.pair_weight = torch.nn.Parameter(0.1 * torch.randn(self.num_species**2, k))
        self.logit = torch.nn.Linear(k, 1)
        self.softmax = make_softmax_backend(cfg["softmax"]["backend"], cfg["softmax"]["bits"])

    def energy_from_edges(
        self,
        edge_vec: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        num_atoms: int,
        return_features: bool = False,
        feature_kind: str = "residual",
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self.check_inputs(edge_vec, species, edge_index, num_atoms)
        centre = edge_index[0]
        shift = self.per_species_shift.index_select(0, species)
        scale = self.per_species_scale.index_select(0, species)
        features: list[torch.Tensor] = []
        if edge_vec.shape[0] == 0:
            return shift.clone(), features
        r = torch.linalg.norm(edge_vec, dim=-1)
        u = 0.5 * (torch.cos(math.pi * r / self.cutoff) + 1.0) * (r < self.cutoff).to(r.dtype)
        g = torch.exp(-4.0 * (r.unsqueeze(-1) - self.mu) ** 2) * u.unsqueeze(-1)  # [E, K]
        pair = species.index_select(0, centre) * self.num_species + species.index_select(
            0, edge_index[1]
        )
        e_ij = (self.pair_weight.index_select(0, pair) * g).sum(-1)
        logits = self.logit(g).squeeze(-1) + torch.log(u.clamp(min=1e-30))
        alpha = self.softmax(logits, centre, num_atoms)
        raw = torch.zeros(num_atoms, dtype=g.dtype, device=g.device)
        raw = raw.index_add(0, centre, (1.0 + alpha) * e_ij)
        if return_features:
            copies = 3 if feature_kind == "all" else 1
            for _ in range(copies):
                features.append(g)
        return scale * raw + shift, features


def _validate_toy(cfg: dict) -> None:
    if not isinstance(cfg["toy_basis"], int) or cfg["toy_basis"] < 1:
        raise ValueError(f"toy_basis must be a positive integer, got {cfg['toy_basis']!r}")
    if cfg["zbl"]:
        raise ValueError("toy-pair has no ZBL prior; set zbl: false")


TOY_FAMILY = ModelFamily(
    "toy-pair",
    ToyPair,
    defaults={"toy_basis": 4, "softmax": {"backend": "toy-sharp", "bits": None}},
    validate=_validate_toy,
)


class MaxForce(Criterion):
    """Toy criterion: the largest force component stays below ``limit`` (eV/A)."""

    name = "toy_max_force"
    order = 0.5

    def __init__(self, limit: float = 100.0) -> None:
        self.limit = float(limit)

    def check(self, snap, state):
        f = snap.force_max()
        return (True, None) if f is None else (bool(f <= self.limit), float(f))

    def thresholds(self) -> dict:
        return {"limit": self.limit}


class StepLambda(LambdaScheduler):
    """Toy scheduler: 0 before step ``at``, lambda_max from it on."""

    def __init__(self, lambda_max: float, at: int) -> None:
        self.lambda_max, self.at = lambda_max, at

    def value(self, step: int) -> float:
        return 0.0 if step < self.at else self.lambda_max


def make_step(cfg, steps_per_epoch, total_epochs):
    return StepLambda(cfg["lambda_max"], cfg["scheduler_options"]["at_step"])


def _check_step_options(options):
    if not isinstance(options["at_step"], int) or options["at_step"] < 0:
        raise ValueError(f"at_step must be an integer >= 0, got {options['at_step']!r}")


# the toy scheduler's own settings (decorrelation.scheduler_options), not the built-ins' keys
make_step.options = {"at_step": 1}
make_step.validate_options = _check_step_options


@pytest.fixture
def toys():
    """Register the four toys for one test, then remove them."""
    with (
        MODELS.registered("toy-pair", TOY_FAMILY),
        SOFTMAX.registered("toy-sharp", make_sharp),
        CRITERIA.registered("toy_max_force", MaxForce),
        SCHEDULERS.registered("toy-step", make_step),
    ):
        yield
    assert "toy-pair" not in MODELS.names()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("extdata")
    ase.io.write(d / "train.extxyz", make_dataset(8, seed=1, n_formula=3))
    ase.io.write(d / "valid.extxyz", make_dataset(4, seed=2, n_formula=3))
    return d


def _raw(data, **model):
    return {
        "data": {"train": str(data / "train.extxyz"), "valid": str(data / "valid.extxyz")},
        "model": {"family": "toy-pair", "cutoff": 4.0, "num_layers": 1, **model},
        "decorrelation": {"enabled": True, "scheduler": "toy-step", "lambda_max": 0.5},
        "training": {"epochs": 2, "batch_size": 4, "progress": False, "dtype": "float64"},
    }


# ------------------------------------------------------------------ the tests
def test_toys_through_config_training_export_ase_and_stability(toys, data, tmp_path):
    from gnnff.calculators import GNNFFCalculator
    from gnnff.training.trainer import Trainer

    # config validation knows the toys, and their own checks run
    cfg = validate_config(_raw(data))
    with pytest.raises(ValueError, match="toy_basis must be a positive integer"):
        build_model({"family": "toy-pair", "species": ["O"], "toy_basis": 0})
    with pytest.raises(ValueError, match="only applies to family 'toy-pair'"):
        build_model({"family": "allegro", "species": ["O"], "toy_basis": 3})
    # the family owns its section: no allegro keys in it, and they are refused
    own = resolve_model_config({"family": "toy-pair", "species": ["O"]})
    assert own["toy_basis"] == 4 and "num_scalar" not in own and "l_max" not in own
    with pytest.raises(ModelConfigError, match="'num_scalar' only applies to family 'allegro'"):
        build_model({"family": "toy-pair", "species": ["O"], "num_scalar": 8})
    # so does the scheduler: its options get their defaults and its own check
    assert cfg["decorrelation"]["scheduler_options"] == {"at_step": 1}
    raw = _raw(data)
    raw["decorrelation"]["scheduler_options"] = {"at_stp": 2}
    with pytest.raises(ConfigError, match=r"scheduler_options.at_stp .*did you mean 'at_step'"):
        validate_config(raw)
    raw["decorrelation"]["scheduler_options"] = {"at_step": -1}
    with pytest.raises(ConfigError, match=r"scheduler_options \('toy-step'\): at_step must"):
        validate_config(raw)
    raw["decorrelation"].update(scheduler="cosine", scheduler_options={"at_step": 2})
    with pytest.raises(ConfigError, match="the 'cosine' scheduler takes no options"):
        validate_config(raw)

    # training: the toy family and scheduler are built by name, a few steps run
    torch.manual_seed(0)
    tr = Trainer(cfg, tmp_path / "run", log=quiet)
    assert isinstance(tr.model, ToyPair) and isinstance(tr.lambda_schedule.scheduler, StepLambda)
    sched = tr.lambda_schedule.scheduler
    assert sched.value(0) == 0.0 and sched.value(3) == 0.5
    before = tr.model.pair_weight.detach().clone()
    tr.fit()
    assert not torch.equal(before, tr.model.pair_weight.detach())
    assert all(math.isfinite(r["train_loss"]) for r in tr.rows)

    # export (written by the trainer): the registered names are recorded
    path = tmp_path / "run" / "model.pt"
    scripted, meta = load(path)
    assert meta["family"] == "toy-pair"
    assert meta["softmax"] == {"backend": "toy-sharp", "bits": None}
    assert meta["hyperparameters"]["toy_basis"] == 4

    # the ASE calculator on the file == the in-memory model
    atoms = make_dataset(1, seed=7, n_formula=3)[0]
    atoms.calc = GNNFFCalculator(str(path))
    e_file, f_file = atoms.get_potential_energy(), atoms.get_forces()
    best = tr.early_stopping.best_state
    exported = best if best is not None else tr.eval_state()  # export: best
    final = tr._eval_model(exported).double()
    ref = _evaluate(ExportedModel(final), atoms)
    assert e_file == pytest.approx(float(ref["energy"]), abs=1e-9)
    np.testing.assert_allclose(f_file, ref["forces"].numpy(), atol=1e-9)

    # the stability tracker runs the toy criterion (options from criterion_options)
    scfg = StabilityConfig(
        interval=1,
        criteria=["finite", "toy_max_force"],
        criterion_options={"toy_max_force": {"limit": 1e-9}},
    )
    atoms.set_momenta(np.zeros((len(atoms), 3)))
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    mon = StabilityMonitor(atoms, dyn, config=scfg, ensemble="nve", total_steps=3).attach()
    dyn.run(3)
    rep = mon.write()
    assert rep["failed_criterion"] == "toy_max_force" and rep["failed_step"] == 0
    assert {"name": "toy_max_force", "applicable": True, "limit": 1e-9} in rep["criteria"]
    loose = StabilityTracker(
        StabilityConfig(
            criteria=["toy_max_force"], criterion_options={"toy_max_force": {"limit": 1e6}}
        ),
        ensemble="nve",
    )
    from gnnff.stability import Snapshot

    assert loose.update(Snapshot.from_atoms(atoms, 0, 0.0))


def _evaluate(module, atoms):
    from gnnff.potentials.neighbors import neighbor_list

    cutoff = float(module.model.cutoff)
    ei, sh = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    sp = torch.tensor([module.model.species.index(s) for s in atoms.get_chemical_symbols()])
    pos = torch.tensor(atoms.positions)
    return module(pos, sp, torch.as_tensor(ei), torch.as_tensor(sh), len(atoms))


def test_unknown_names_list_the_registered_ones(toys, data):
    with pytest.raises(ValueError, match=r"did you mean 'toy-pair'\?.*allegro, allegro-attn"):
        build_model({"family": "toy-pai", "species": ["O"]})
    with pytest.raises(ValueError, match="did you mean 'toy-sharp'"):
        build_model({"family": "toy-pair", "species": ["O"], "softmax": "toy-shrp"})
    with pytest.raises(ConfigError, match=r"decorrelation.scheduler: .*'toy-step'"):
        validate_config({**_raw(data), "decorrelation": {"scheduler": "toy-stp"}})
    with pytest.raises(ValueError, match=r"unknown stability criterion .*toy_max_force"):
        StabilityConfig(criteria=["toy_max_forc"])
    with pytest.raises(ValueError, match="not enabled criteria"):
        StabilityConfig(criteria=["finite"], criterion_options={"toy_max_force": {}})
    with pytest.raises(PluginError, match="already registered"):
        SOFTMAX.register("toy-sharp", lambda bits, config: None)


def test_registering_needs_no_core_file_and_leaves_the_builtins_first(toys):
    assert MODELS.names()[:2] == ("allegro", "allegro-attn") and "toy-pair" in MODELS.names()
    assert SOFTMAX.builtin_names() == ("float", "lut-rexp", "lut-2d")
    assert StabilityConfig().criteria == [
        "finite",
        "temperature",
        "close_contact",
        "energy_conservation",
        "rdf",
    ]  # fmt: skip  (plug-in criteria are enabled by name only)
    assert SCHEDULERS.builtin_names() == ("constant", "cosine", "adaptive", "decay")


# ------------------------------------------------------------------ entry points
class FakeEntryPoint:
    """What the registry uses of an importlib.metadata.EntryPoint."""

    def __init__(self, name, value, group, target=None, dist="toy-plugins"):
        self.name, self.value, self.group, self._target = name, value, group, target
        self.dist = SimpleNamespace(name=dist)
        self.loads = 0

    def load(self):
        self.loads += 1
        module, _, attr = self.value.partition(":")
        return (
            self._target
            if self._target is not None
            else getattr(importlib.import_module(module), attr)
        )


def test_entry_points_are_discovered_lazily_and_broken_ones_named(monkeypatch, capsys):
    good = FakeEntryPoint("ep-sharp", "toy_plugins.softmax:make", "gnnff.softmax", make_sharp)
    broken = FakeEntryPoint("ep-broken", "toy_plugins_missing.mod:make", "gnnff.softmax")
    asked: list[str] = []

    def fake_entry_points(group):
        asked.append(group)
        return [good, broken] if group == "gnnff.softmax" else []

    monkeypatch.setattr("gnnff.extensions.entry_points", fake_entry_points)
    SOFTMAX.reload_entry_points()
    try:
        from gnnff.potentials.softmax import make_softmax_backend

        assert make_softmax_backend("float").name == "float"  # a built-in: no discovery
        assert asked == []
        names = SOFTMAX.names()  # listed without loading them
        assert {"ep-sharp", "ep-broken"} <= set(names) and good.loads == broken.loads == 0
        assert isinstance(make_softmax_backend("ep-sharp"), SharpSoftmax) and good.loads == 1
        assert "toy_plugins.softmax:make" in SOFTMAX.origin("ep-sharp")
        with pytest.raises(PluginError) as err:
            make_softmax_backend("ep-broken")
        msg = str(err.value)
        for part in ("ep-broken", "toy_plugins_missing.mod:make", "toy-plugins",
                     "gnnff.softmax", "ModuleNotFoundError"):  # fmt: skip
            assert part in msg, msg
        # a model config naming it fails at validation with the same message
        with pytest.raises(ValueError, match="toy-plugins"):
            build_model({"family": "allegro-attn", "species": ["O"], "softmax": "ep-broken"})
        # `gnnff plugins` lists both, and says which one is broken
        from gnnff.cli import main

        assert main(["plugins", "--json"]) == 0
        listing = json.loads(capsys.readouterr().out)
        origin = {r["name"]: r["origin"] for r in listing["softmax"]}
        assert origin["float"] == "gnnff" and "toy_plugins.softmax:make" in origin["ep-sharp"]
        assert origin["ep-broken"].startswith("broken: ") and "toy-plugins" in origin["ep-broken"]
        assert [r["name"] for r in listing["schedulers"]] == list(SCHEDULERS.builtin_names())
    finally:
        if "ep-sharp" in SOFTMAX._entries:
            SOFTMAX.unregister("ep-sharp")
        monkeypatch.undo()
        SOFTMAX.reload_entry_points()
    assert "ep-sharp" not in SOFTMAX.names()


def test_the_real_loader_reads_installed_entry_points(monkeypatch):
    # the default loader asks importlib.metadata for the group (nothing installed here)
    reg = Registry("thing", "gnnff.test-no-such-group")
    calls = []
    real = importlib.metadata.entry_points

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", spy)
    assert reg.names() == ()
    assert calls == [{"group": "gnnff.test-no-such-group"}]
    with pytest.raises(PluginError, match="unknown thing 'x'.*registered: none"):
        reg.get("x")
