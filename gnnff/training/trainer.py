"""The trainer: batched energy/force(/stress) training with the decorrelation loss, metrics,
atomic checkpoints with exact resume, plots and the final export.

Loss (per batch): L = w_E mean_s((E_s - E_s^ref)/N_s)^2 + w_F mean((F - F^ref)^2)
(+ w_S mean((sigma - sigma^ref)^2)) + lambda(t) L_corr, with L_corr from
:mod:`gnnff.training.decorrelation` (computed from the features of the same forward pass, and
not computed at all when the decorrelation is disabled or lambda(t) = 0 with a non-adaptive
scheduler).
"""

from __future__ import annotations

import copy
import csv
import io
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnnff.io_utils import atomic_write, atomic_write_json, atomic_write_text, sha256_file
from gnnff.stability.reference import StabilityReference

from .config import ConfigError, default_config
from .data import (
    Batch,
    Structure,
    avg_num_neighbors,
    build_structures,
    collate,
    fit_species_shift,
    force_rms,
    isolated_atom_energies,
    read_frames,
    species_in,
    split_index,
)
from .decorrelation import (
    CorrelationAccumulator,
    edge_pair_ids,
    variant_feature_kind,
    variant_loss,
)
from .diagnostics import FeatureDiagnostics
from .labels import LabelKeys
from .schedulers import build_lambda_scheduler

CHECKPOINT_NAME = "checkpoint.pt"
# training.* fields that may differ when resuming (they do not change the optimisation path)
_RESUME_FREE = {"epochs", "progress", "num_threads", "early_stopping_patience", "device"}


# ------------------------------------------------------------------ forward pass
def predict(
    model,
    batch: Batch,
    forces: bool = True,
    stress: bool = False,
    create_graph: bool = False,
    features: bool = False,
    feature_kind: str = "residual",
) -> dict[str, Any]:
    """Energies [B] (eV), forces [N,3] (eV/A) = -dE/dpos and stress [B,3,3] (eV/A^3, ASE sign)
    from one pass through the edge vectors; ``features`` returns the per-layer edge features
    of ``feature_kind`` (see ``GNNFFModel.energy_from_edges``)."""
    i, j = batch.edge_index[0], batch.edge_index[1]
    vec = batch.pos.index_select(0, j) - batch.pos.index_select(0, i) + batch.edge_shift
    need_grad = forces or stress
    if need_grad:
        vec = vec.detach().requires_grad_(True)
    n = batch.pos.shape[0]
    atomic, feats = model.energy_from_edges(
        vec, batch.species, batch.edge_index, n, features, feature_kind
    )
    energy = torch.zeros(batch.num_structures, dtype=atomic.dtype, device=atomic.device)
    energy = energy.index_add(0, batch.batch, atomic)
    out: dict[str, Any] = {"energy": energy, "features": feats}
    if need_grad:
        if energy.requires_grad:  # False for a batch of isolated atoms (no edges, no ZBL)
            (g,) = torch.autograd.grad(
                energy.sum(), vec, create_graph=create_graph, allow_unused=True
            )
        else:
            g = None
        if g is None:
            g = torch.zeros_like(vec)
        if forces:
            f = torch.zeros_like(batch.pos).index_add(0, i, g).index_add(0, j, -g)
            out["forces"] = f
        if stress:
            edge_struct = batch.batch.index_select(0, i)
            sv = torch.zeros(batch.num_structures, 3, 3, dtype=g.dtype, device=g.device)
            sv = sv.index_add(0, edge_struct, vec.unsqueeze(-1) * g.unsqueeze(-2))
            vol = batch.volume.clamp_min(1e-12)
            out["stress"] = sv / vol[:, None, None]
    return out


def label_counts(batch: Batch) -> torch.Tensor:
    """[3] float64: structures with an energy label, labelled force components, labelled stress
    components of ``batch`` (the denominators of :func:`loss_terms`)."""
    return torch.tensor(
        [
            float(batch.energy_mask.sum()),
            3.0 * float(batch.forces_mask.sum()),
            9.0 * float(batch.stress_mask.sum()) if batch.stress is not None else 0.0,
        ],
        dtype=torch.float64,
    )


def loss_terms(
    out: dict[str, Any], batch: Batch, denominators: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Per-atom energy MSE (eV^2), force component MSE (eV^2/A^2) and stress MSE if predicted,
    each averaged over the structures (atoms) that carry that label; 0 when none does.
    ``denominators`` ([3], default :func:`label_counts` of ``batch``; summed over data-parallel
    ranks in distributed training) divide each term's local sum of squares, so that summed
    gradients equal one big batch's."""
    dt = out["energy"].dtype
    if denominators is None:
        denominators = label_counts(batch)
    den = denominators.to(device=out["energy"].device, dtype=dt).clamp_min(1.0)
    e_err = (out["energy"] - batch.energy.to(dt)) / batch.num_atoms.to(dt)
    terms = {"energy": e_err[batch.energy_mask].pow(2).sum() / den[0]}
    if "forces" in out:
        fm = batch.forces_mask
        terms["forces"] = (out["forces"][fm] - batch.forces[fm]).pow(2).sum() / den[1]
    if "stress" in out and batch.stress is not None:
        sm = batch.stress_mask
        terms["stress"] = (out["stress"][sm] - batch.stress[sm]).pow(2).sum() / den[2]
    return terms


EV_PER_A3_TO_GPA = 160.2176634  # 1 eV/A^3 in GPa (e = 1.602176634e-19 C, exact in SI 2019)


class ErrorStats:
    """Accumulates absolute and squared errors and how many structures each label came from;
    reports energy in meV/atom, forces in meV/A, stress in GPa."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}

    def add(self, name: str, err: torch.Tensor, frames: int = 1) -> None:
        e = err.detach().to(torch.float64).reshape(-1)
        s = self.sums.setdefault(name, [0.0, 0.0, 0, 0])
        s[0] += float(e.abs().sum())
        s[1] += float(e.pow(2).sum())
        s[2] += e.numel()
        s[3] += frames

    def add_batch(self, out: dict[str, Any], batch: Batch) -> None:
        n = batch.num_atoms.to(torch.float64)
        em = batch.energy_mask
        if bool(em.any()):
            err = (out["energy"].detach().double() - batch.energy) / n
            self.add("energy", err[em], int(em.sum()))
        if "forces" in out:
            fm = batch.forces_mask
            if bool(fm.any()):
                frames = int(batch.batch[fm].unique().numel())
                self.add("force", out["forces"].detach()[fm] - batch.forces[fm], frames)
        if "stress" in out and batch.stress is not None:
            sm = batch.stress_mask
            if bool(sm.any()):
                self.add("stress", out["stress"].detach()[sm] - batch.stress[sm], int(sm.sum()))

    def all_reduce(self, dist) -> None:
        """Sum the accumulated errors and counts over data-parallel ranks (every rank must
        have seen the same label kinds)."""
        for name in ("energy", "force", "stress"):
            s = self.sums.setdefault(name, [0.0, 0.0, 0, 0])
            t = dist.sum_(torch.tensor(s, dtype=torch.float64))
            self.sums[name] = [float(t[0]), float(t[1]), int(t[2]), int(t[3])]

    def summary(self) -> dict[str, float]:
        """energy_mae/rmse (meV/atom), force_mae/rmse (meV/A), stress_mae/rmse (GPa), and
        ``{name}_frames``: the number of structures that carried the label."""
        res: dict[str, float] = {}
        unit = {"energy": 1000.0, "force": 1000.0, "stress": EV_PER_A3_TO_GPA}
        for name, (sa, s2, c, frames) in self.sums.items():
            if c:
                u = unit.get(name, 1000.0)
                res[f"{name}_mae"] = u * sa / c
                res[f"{name}_rmse"] = u * math.sqrt(s2 / c)
                res[f"{name}_frames"] = frames
        return res


def evaluate(
    model,
    structs: list[Structure],
    batch_size: int = 16,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    stress: bool = False,
    weights: dict[str, float] | None = None,
) -> tuple[dict[str, float], CorrelationAccumulator]:
    """Errors of ``model`` on ``structs`` and the exact per-layer feature correlation.

    Returns (metrics, accumulator); metrics hold MAE/RMSE (meV units), ``loss`` (the weighted
    MSE without the decorrelation term, eV^2 units), ``lcorr`` / ``lcorr_l{k}`` (the
    residual-stream correlation, basis-dependent; kept under its old name) and the invariant
    ``feature_corr`` / ``feature_corr_l{k}`` and ``tensor_norm_corr``
    (:mod:`gnnff.training.diagnostics`)."""
    weights = weights or {"energy_weight": 1.0, "forces_weight": 1.0, "stress_weight": 0.0}
    was_training = model.training
    model.eval()
    stats = ErrorStats()
    acc = CorrelationAccumulator()
    diag = FeatureDiagnostics(model.num_layers, model.num_species)
    loss_sum, count = 0.0, 0
    for start in range(0, len(structs), batch_size):
        chunk = structs[start : start + batch_size]
        batch = collate(chunk, dtype, device)
        do_stress = stress and batch.stress is not None
        out = predict(
            model, batch, forces=True, stress=do_stress, features=True, feature_kind="all"
        )
        acc.update(out["features"][: model.num_layers])
        diag.update(out["features"], batch.species, batch.edge_index)
        stats.add_batch(out, batch)
        t = loss_terms(out, batch)
        t = {k: float(v.detach()) for k, v in t.items()}
        loss = weights["energy_weight"] * t["energy"] + weights["forces_weight"] * t["forces"]
        if "stress" in t:
            loss += weights["stress_weight"] * t["stress"]
        loss_sum += loss * len(chunk)
        count += len(chunk)
    model.train(was_training)
    metrics = stats.summary()
    metrics["loss"] = loss_sum / max(count, 1)
    per = acc.per_layer()
    metrics["lcorr"] = float(np.mean(per)) if per else float("nan")
    for k, v in enumerate(per):
        metrics[f"lcorr_l{k}"] = v
    d = diag.summary()
    metrics["feature_corr"] = d["feature_corr"]
    for k, v in enumerate(d["feature_corr_per_layer"]):
        metrics[f"feature_corr_l{k}"] = v
    metrics["tensor_norm_corr"] = d["tensor_norm_corr"]
    return metrics, acc


# ------------------------------------------------------------------ RNG state helpers
def _rng_state() -> dict[str, Any]:
    # the legacy global numpy RNG is saved on purpose: third-party code may draw from it
    np_state = np.random.get_state()  # noqa: NPY002
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def _config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _config_diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {a!r} -> {b!r}"]


def _comparable_model_configs(
    stored: dict[str, Any], given: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored (resolved) model config and the config given for a resume, both with every
    default filled in, so that a key dropped from the YAML counts as a change to its default.
    Values the trainer fits from the data when the config leaves them out
    (``avg_num_neighbors``, ``species``) are compared only when the config sets them."""
    from gnnff.potentials import default_model_config, resolve_model_config

    def full(cfg: dict[str, Any]) -> dict[str, Any]:
        try:
            base = default_model_config(cfg.get("family", "allegro"))
            base.update(cfg)
            return resolve_model_config(base)
        except ValueError:
            return dict(cfg)  # the normal start-up path reports the bad value

    fitted = {"avg_num_neighbors", "species"} - set(given)
    if given.get("zbl_pair_windows") == "auto":  # derived from the data like the two above
        fitted.add("zbl_pair_windows")
    species = given.get("species") or stored.get("species") or ["H"]
    a, b = full(stored), full({**given, "species": species})
    return (
        {k: v for k, v in a.items() if k not in fitted},
        {k: v for k, v in b.items() if k not in fitted},
    )


# ------------------------------------------------------------------ the trainer
class Trainer:
    """Train a gnnff model from a validated config (see :mod:`gnnff.training.config`).

    ``Trainer(cfg, run_dir, resume=False).fit()`` writes ``metrics.csv``, ``checkpoint.pt``
    (every epoch, atomically), ``curves.png``, ``correlation.png``, ``summary.json`` and the
    exported ``model.pt`` into ``run_dir``, and returns the training summary dict."""

    def __init__(
        self,
        cfg: dict[str, Any],
        run_dir: str | Path,
        resume: bool = False,
        log=print,
        init_state: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """``init_state``: weights to start from (fine-tuning; a state dict of a model with the
        same config, e.g. ``eager_from_file(path).state_dict()``), including its energy shift
        and scale; ignored when resuming (the checkpoint has the weights)."""
        self.init_state = init_state
        self.cfg = copy.deepcopy(cfg)
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.log = log
        tr = self.cfg["training"]
        from gnnff.potentials.device import resolve_device

        try:
            self.device = resolve_device(tr["device"])
        except ValueError as exc:
            raise ConfigError(f"training.device: {exc}") from None
        self.dtype = getattr(torch, tr["dtype"])
        if tr["num_threads"]:
            torch.set_num_threads(tr["num_threads"])
        from .distributed import from_environment

        self.dist = from_environment(self.device)
        self._setup()

    # ---------------------------------------------------------------- setup
    def _setup(self) -> None:
        cfg, tr = self.cfg, self.cfg["training"]
        ckpt_path = self.run_dir / CHECKPOINT_NAME
        ckpt = None
        if self.resume:
            if not ckpt_path.is_file():
                raise ConfigError(
                    f"--resume: no {CHECKPOINT_NAME} in {self.run_dir}; start without --resume"
                )
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            self._check_resume(ckpt)
        elif ckpt_path.exists():
            raise ConfigError(
                f"{self.run_dir} already holds a training run ({CHECKPOINT_NAME}); pass --resume "
                "to continue it or choose another --out folder"
            )

        seed = tr["seed"]
        torch.manual_seed(seed)
        np.random.seed(seed)  # noqa: NPY002
        random.seed(seed)

        from gnnff.potentials import build_model, resolve_model_config

        d = cfg["data"]
        frames = {k: read_frames(d[k], k) for k in ("train", "valid", "test") if d[k]}
        mcfg = dict(cfg["model"])
        fit_neighbors = "avg_num_neighbors" not in mcfg  # an explicit value is kept
        present = species_in(frames["train"])
        if not mcfg.get("species"):
            mcfg["species"] = present
        try:
            mcfg = resolve_model_config(mcfg)
        except ValueError as exc:
            raise ConfigError(f"model section: {exc}") from exc
        cfg["model"] = mcfg
        unseen = sorted(set(mcfg["species"]) - set(present))
        if unseen:
            raise ConfigError(
                f"model.species lists {unseen}, which no training frame contains: the model "
                "would claim to know elements it never saw. Remove them from model.species "
                "or add training data with them"
            )
        lo = cfg["loss"]
        need_stress = lo["stress_weight"] > 0
        self.use_stress = need_stress
        keys = LabelKeys.from_config(d)
        # every split is validated here, before anything is written to the run folder
        self.data: dict[str, list[Structure]] = {
            k: build_structures(
                f,
                split_index(d[k])[0],
                mcfg["species"],
                mcfg["cutoff"],
                need_stress=need_stress and k == "train",
                keys=keys,
                need_energy=lo["energy_weight"] > 0 and k == "train",
                need_forces=lo["forces_weight"] > 0 and k == "train",
            )
            for k, f in frames.items()
        }
        self.data_hashes = {k: sha256_file(split_index(d[k])[0]) for k in frames}
        # stored in every checkpoint and model file: MD without an explicit reference judges
        # close contacts against the training data
        self.stability_reference = StabilityReference.from_frames(
            frames["train"],
            with_rdf=False,
            distance_cutoff=float(mcfg["cutoff"]),
            # the file's name, not its path: model files travel to other machines
            source=f"training set {split_index(d['train'])[0].name} "
            f"(sha256 {self.data_hashes['train'][:12]})",
        ).to_dict()

        if mcfg.get("zbl_pair_windows") == "auto":  # the prior starts where the data ends
            from gnnff.potentials.short_range import auto_windows

            mcfg["zbl_pair_windows"] = auto_windows(
                self.stability_reference["pair_min_distances"], mcfg["species"]
            )
        self.model = build_model(mcfg)
        train = self.data["train"]
        shift = self._e0s(train, mcfg)
        scale = np.full(len(mcfg["species"]), force_rms(train))
        self.model.set_species_shift_scale(torch.tensor(shift), torch.tensor(scale))
        if fit_neighbors:
            self.model.set_avg_num_neighbors(avg_num_neighbors(train))
        if self.init_state is not None and ckpt is None:
            try:
                self.model.load_state_dict(self.init_state)
            except RuntimeError as exc:
                raise ConfigError(
                    f"the starting weights do not fit the model config: {exc}. "
                    "Use the model section the weights were trained with"
                ) from None
            self.model.set_avg_num_neighbors(float(self.model.avg_num_neighbors))
        self.model.to(device=self.device, dtype=self.dtype)
        cfg["model"] = copy.deepcopy(self.model.config)

        dc = cfg["decorrelation"]
        nl = self.model.num_layers
        layers = list(range(nl)) if dc["layers"] == "all" else list(dc["layers"])
        bad = [k for k in layers if not -nl <= k < nl]
        if bad:
            raise ConfigError(
                f"decorrelation.layers {bad} out of range: the model has {nl} layers (0..{nl - 1})"
            )
        self.corr_layers = layers
        if len(train) < self.dist.world_size:
            raise ConfigError(
                f"{self.dist.world_size} data-parallel processes but only {len(train)} training "
                "structures: every process needs at least one; use fewer processes "
                "(torchrun --nproc_per_node)"
            )
        self.steps_per_epoch = math.ceil(len(train) / (tr["batch_size"] * self.dist.world_size))

        op = cfg["optim"]
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=op["lr"], weight_decay=op["weight_decay"]
        )
        if op["lr_schedule"] == "plateau":
            self.lr_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer,
                factor=op["plateau_factor"],
                patience=op["plateau_patience"],
                min_lr=op["min_lr"],
            )
        elif op["lr_schedule"] == "cosine":
            self.lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=tr["epochs"], eta_min=op["min_lr"]
            )
        else:
            self.lr_sched = None
        self.lam_sched = build_lambda_scheduler(dc, self.steps_per_epoch, tr["epochs"])
        self.ema: dict[str, torch.Tensor] | None = None
        if tr["ema_decay"]:
            self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.shuffle_gen = torch.Generator().manual_seed(seed)
        self.subsample_gen = torch.Generator().manual_seed(seed + 1)
        self.epoch = 0
        self.step = 0
        self.rows: list[dict[str, Any]] = []
        self.best_loss = float("inf")
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0
        if ckpt is not None:
            self._load_state(ckpt)

    def _e0s(self, train: list[Structure], mcfg: dict[str, Any]) -> np.ndarray:
        """The per-species energy shift [S] (eV) from ``model.e0s``."""
        e0s, species = mcfg["e0s"], mcfg["species"]
        if e0s == "average":
            return fit_species_shift(train, len(species))
        if e0s == "isolated_atoms":
            return isolated_atom_energies(train, species)
        return np.array([float(e0s[s]) for s in species])

    def _check_resume(self, ckpt: dict[str, Any]) -> None:
        old = ckpt.get("config")
        if not isinstance(old, dict):
            raise ConfigError(f"{self.run_dir / CHECKPOINT_NAME} has no training config")
        diffs = []
        for sec in self.cfg:
            a, b = old.get(sec), self.cfg[sec]
            if sec == "model" and isinstance(a, dict) and isinstance(b, dict):
                a, b = _comparable_model_configs(a, b)
            elif sec == "decorrelation" and isinstance(a, dict):
                # keys added later (variant, decay_*) take the defaults the old run used
                a = {**default_config()["decorrelation"], **a}
            if sec == "training":
                a = {k: v for k, v in (a or {}).items() if k not in _RESUME_FREE}
                b = {k: v for k, v in b.items() if k not in _RESUME_FREE}
            diffs += _config_diff(a, b, f"{sec}.")
        if diffs:
            raise ConfigError(
                f"cannot resume {self.run_dir}: the config differs from the run's "
                f"({'; '.join(diffs)}). Use the original config (only training.epochs, "
                f"{', '.join(sorted(_RESUME_FREE - {'epochs'}))} may change) or a new --out"
            )

    def _load_state(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model_state"])
        self.optimizer.load_state_dict(ckpt["optimizer_state"])
        if self.lr_sched is not None and ckpt.get("lr_scheduler_state") is not None:
            self.lr_sched.load_state_dict(ckpt["lr_scheduler_state"])
        self.lam_sched.load_state_dict(ckpt["lambda_scheduler_state"])
        if self.ema is not None:
            self.ema = {k: v.to(self.device) for k, v in ckpt["ema_state"].items()}
        self.shuffle_gen.set_state(ckpt["shuffle_generator"])
        self.subsample_gen.set_state(ckpt["subsample_generator"])
        _set_rng_state(ckpt["rng"])
        self.epoch = int(ckpt["epoch"])
        self.step = int(ckpt["step"])
        self.rows = list(ckpt["metrics_rows"])
        self.best_loss = float(ckpt["best_loss"])
        self.best_epoch = int(ckpt["best_epoch"])
        self.best_state = ckpt.get("best_state")
        self.bad_epochs = int(ckpt["bad_epochs"])

    def _checkpoint(self) -> dict[str, Any]:
        from gnnff.potentials import save_checkpoint_dict

        return save_checkpoint_dict(
            self.model,
            # `gnnff export CHECKPOINT` then writes the close-contact reference into the model
            training_summary={"stability_reference": self.stability_reference},
            ema_state=None if self.ema is None else {k: v.cpu() for k, v in self.ema.items()},
            use_ema_for_export=self.ema is not None,
            config=copy.deepcopy(self.cfg),
            optimizer_state=self.optimizer.state_dict(),
            lr_scheduler_state=None if self.lr_sched is None else self.lr_sched.state_dict(),
            lambda_scheduler_state=self.lam_sched.state_dict(),
            shuffle_generator=self.shuffle_gen.get_state(),
            subsample_generator=self.subsample_gen.get_state(),
            rng=_rng_state(),
            epoch=self.epoch,
            step=self.step,
            metrics_rows=self.rows,
            best_loss=self.best_loss,
            best_epoch=self.best_epoch,
            best_state=self.best_state,
            bad_epochs=self.bad_epochs,
        )

    # ---------------------------------------------------------------- one step
    def lambda_now(self) -> float:
        if not self.cfg["decorrelation"]["enabled"]:
            return 0.0
        return float(self.lam_sched.value(self.step))

    def compute_loss(
        self, batch: Batch, lam: float, denominators: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, Any], dict[str, torch.Tensor], torch.Tensor | None]:
        """(loss, predictions, loss terms, per-layer L_corr or None) for one batch
        (``denominators``: see :func:`loss_terms`, for data-parallel training)."""
        dc = self.cfg["decorrelation"]
        want_corr = dc["enabled"] and (lam != 0.0 or self.lam_sched.needs_losses)
        out = predict(
            self.model,
            batch,
            forces=True,
            stress=self.use_stress and batch.stress is not None,
            create_graph=True,
            features=want_corr,
            feature_kind=variant_feature_kind(dc["variant"]),
        )
        terms = loss_terms(out, batch, denominators)
        lo = self.cfg["loss"]
        loss = lo["energy_weight"] * terms["energy"] + lo["forces_weight"] * terms["forces"]
        if "stress" in terms:
            loss = loss + lo["stress_weight"] * terms["stress"]
        per_layer = None
        if want_corr:
            feats = [out["features"][k] for k in self.corr_layers]
            if lam == 0.0:
                feats = [f.detach() for f in feats]
            pairs = None
            if dc["variant"] == "per_pair":
                pairs = edge_pair_ids(batch.species, batch.edge_index, self.model.num_species)
            lc, per_layer = variant_loss(
                dc["variant"], feats, pairs, dc["max_edges"], self.subsample_gen
            )
            terms["corr"] = lc
            if lam != 0.0:
                loss = loss + lam * lc / self.dist.world_size  # ranks' gradients are summed
        return loss, out, terms, per_layer

    def _distributed_step(self, chunk: list[Structure], lam: float):
        """One data-parallel step's forward pass on this rank's share (possibly empty)."""
        batch = collate(chunk, self.dtype, self.device) if chunk else None
        counts = label_counts(batch) if batch is not None else torch.zeros(3, dtype=torch.float64)
        den = self.dist.sum_(counts)
        if batch is None:
            zero = torch.zeros((), dtype=self.dtype, device=self.device)
            return zero, {}, {"forces": zero}, None, None
        loss, out, terms, per_layer = self.compute_loss(batch, lam, den)
        return loss, out, terms, per_layer, batch

    def _ema_update(self) -> None:
        if self.ema is None:
            return
        decay = self.cfg["training"]["ema_decay"]
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                if v.dtype.is_floating_point:
                    self.ema[k].mul_(decay).add_(v, alpha=1 - decay)
                else:
                    self.ema[k].copy_(v)

    def eval_state(self) -> dict[str, torch.Tensor]:
        """The weights used for validation and export (EMA when enabled)."""
        if self.ema is not None:
            return {k: v.detach().clone() for k, v in self.ema.items()}
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _eval_model(self, state: dict[str, torch.Tensor] | None = None):
        if state is None and self.ema is None:
            return self.model
        m = copy.deepcopy(self.model)
        m.load_state_dict(state if state is not None else self.ema)
        return m

    def evaluate_split(self, structs: list[Structure], state=None):
        return evaluate(
            self._eval_model(state),
            structs,
            self.cfg["training"]["valid_batch_size"],
            self.dtype,
            str(self.device),
            self.use_stress,
            self.cfg["loss"],
        )

    # ---------------------------------------------------------------- epochs
    def train_epoch(self) -> dict[str, Any]:
        tr = self.cfg["training"]
        train = self.data["train"]
        self.model.train()
        perm = torch.randperm(len(train), generator=self.shuffle_gen).tolist()
        stats = ErrorStats()
        loss_sum, corr_sum, corr_n = 0.0, None, 0
        lam = 0.0
        bar = None
        if tr["progress"]:
            from tqdm import tqdm

            bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {self.epoch + 1}", leave=False)
        step_size = tr["batch_size"] * self.dist.world_size
        for start in range(0, len(perm), step_size):
            chunk = [train[k] for k in self.dist.share(perm[start : start + step_size])]
            lam = self.lambda_now()
            self.optimizer.zero_grad(set_to_none=True)
            if self.dist.enabled:
                loss, out, terms, per_layer, batch = self._distributed_step(chunk, lam)
            else:
                batch = collate(chunk, self.dtype, self.device)
                loss, out, terms, per_layer = self.compute_loss(batch, lam)
            if loss.requires_grad or self.dist.enabled:
                # (a batch of isolated atoms with fixed E0s has nothing to fit)
                if loss.requires_grad:
                    loss.backward()
                self.dist.sum_gradients(self.model)
                if tr["grad_clip"]:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), tr["grad_clip"])
                self.optimizer.step()
            self._ema_update()
            if per_layer is not None:
                self.lam_sched.observe(
                    float(terms["forces"].detach()), float(terms["corr"].detach())
                )
                pl = per_layer.detach().double().cpu()
                corr_sum = pl if corr_sum is None else corr_sum + pl
                corr_n += 1
            self.step += 1
            if batch is not None:
                stats.add_batch(out, batch)
            if self.dist.enabled:  # each rank holds its part of the global batch's loss
                global_loss = float(self.dist.sum_(loss.detach().double().reshape(1))[0])
                loss_sum += global_loss * len(perm[start : start + step_size])
            else:
                loss_sum += float(loss.detach()) * len(chunk)
            if bar is not None:
                bar.set_postfix(loss=f"{float(loss.detach()):.4g}", lam=f"{lam:.3g}")
                bar.update(1)
        if bar is not None:
            bar.close()
        if self.dist.enabled:
            stats.all_reduce(self.dist)
        res = {f"train_{k}": v for k, v in stats.summary().items()}
        res["train_loss"] = loss_sum / len(train)
        res["lambda"] = lam
        if corr_sum is not None:
            per = (corr_sum / corr_n).tolist()
            res["train_lcorr"] = float(np.mean(per))
            for k, layer in enumerate(self.corr_layers):
                res[f"train_lcorr_l{layer % self.model.num_layers}"] = per[k]
        return res

    def fit(self) -> dict[str, Any]:
        tr = self.cfg["training"]
        main = self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.resume and main:
            self.log(
                f"training on {len(self.data['train'])} structures, validating on "
                f"{len(self.data['valid'])}; species {self.model.species}, "
                f"decorrelation {'on' if self.cfg['decorrelation']['enabled'] else 'off'}"
            )
        stop = False
        while self.epoch < tr["epochs"] and not stop:
            t0 = time.perf_counter()
            row: dict[str, Any] = {
                "epoch": self.epoch + 1,
                "lr": self.optimizer.param_groups[0]["lr"],
            }
            row.update(self.train_epoch())
            valid, _ = self.evaluate_split(self.data["valid"])
            row.update({f"valid_{k}": v for k, v in valid.items()})
            if not math.isfinite(row["train_loss"]):
                raise FloatingPointError(
                    f"training loss became {row['train_loss']} in epoch {self.epoch + 1}; lower "
                    "optim.lr or set training.grad_clip"
                )
            if isinstance(self.lr_sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.lr_sched.step(valid["loss"])
            elif self.lr_sched is not None:
                self.lr_sched.step()
            if valid["loss"] < self.best_loss:
                self.best_loss, self.best_epoch = valid["loss"], self.epoch + 1
                self.best_state = {k: v.cpu() for k, v in self.eval_state().items()}
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
            self.epoch += 1
            row["epoch_seconds"] = time.perf_counter() - t0
            self.rows.append(row)
            if not main:  # rank 0 alone writes; the others follow the same stopping rule
                patience = tr["early_stopping_patience"]
                stop = bool(patience and self.bad_epochs >= patience)
                continue
            self._write_metrics()
            ckpt = self._checkpoint()
            atomic_write(self.run_dir / CHECKPOINT_NAME, lambda p, c=ckpt: torch.save(c, p))
            self.log(
                f"epoch {row['epoch']}: valid E {valid.get('energy_mae', float('nan')):.2f} "
                f"meV/atom, F {valid.get('force_mae', float('nan')):.1f} meV/A, "
                f"residual-stream corr {valid['lcorr']:.4f}, feature corr "
                f"{valid['feature_corr']:.4f}, lambda {row['lambda']:.4g}, "
                f"{row['epoch_seconds']:.1f} s"
            )
            patience = tr["early_stopping_patience"]
            if patience and self.bad_epochs >= patience:
                self.log(f"early stopping: no valid improvement for {patience} epochs")
                stop = True
        if not main:
            self.dist.barrier()  # rank 0 evaluates and exports
            return {}
        summary = self.finish()
        self.dist.barrier()
        return summary

    def _write_metrics(self) -> None:
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, restval="")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in r.items()})
        atomic_write_text(self.run_dir / "metrics.csv", buf.getvalue())

    def finish(self) -> dict[str, Any]:
        """Evaluate the chosen weights, write plots, summary.json and the exported model.pt."""
        from gnnff.potentials import export_model

        from .plots import plot_correlation, plot_curves

        use_best = self.cfg["training"]["export"] == "best" and self.best_state is not None
        state = self.best_state if use_best else self.eval_state()
        final = self._eval_model(state)
        valid, acc = evaluate(
            final,
            self.data["valid"],
            self.cfg["training"]["valid_batch_size"],
            self.dtype,
            str(self.device),
            self.use_stress,
            self.cfg["loss"],
        )
        test = None
        if "test" in self.data:
            test, _ = evaluate(
                final,
                self.data["test"],
                self.cfg["training"]["valid_batch_size"],
                self.dtype,
                str(self.device),
                self.use_stress,
                self.cfg["loss"],
            )
        summary = {
            "data": {
                k: {"path": self.cfg["data"][k], "sha256": h} for k, h in self.data_hashes.items()
            },
            "decorrelation": copy.deepcopy(self.cfg["decorrelation"]),
            "loss": copy.deepcopy(self.cfg["loss"]),
            "seed": self.cfg["training"]["seed"],
            "epochs_run": self.epoch,
            "weights": "best" if use_best else "last",
            "best_epoch": self.best_epoch,
            "ema": self.ema is not None,
            "final_valid": valid,
            "final_lcorr": valid["lcorr"],
            "final_lcorr_per_layer": [valid[f"lcorr_l{k}"] for k in range(len(acc.n))],
            # final_lcorr is the residual-stream (basis-dependent) quantity, kept for old readers
            "final_residual_stream_corr": valid["lcorr"],
            "final_feature_corr": valid["feature_corr"],
        }
        if test is not None:
            summary["final_test"] = test
        summary["stability_reference"] = self.stability_reference
        atomic_write_json(self.run_dir / "summary.json", summary)
        try:
            plot_curves(self.rows, self.run_dir / "curves.png")
            plot_correlation(acc.matrices(), self.run_dir / "correlation.png")
        except Exception as exc:  # plots must never lose a finished run
            self.log(f"warning: plotting failed: {exc}")
        export_model(final, self.run_dir / "model.pt", dtype="float64", training_summary=summary)
        self.summary = summary
        return summary
