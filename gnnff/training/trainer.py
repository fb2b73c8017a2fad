"""The trainer's core loop: set-up (:mod:`gnnff.training.setup`), the epoch/step loop
(single process or data-parallel, :mod:`gnnff.training.distributed`), validation and the final
evaluation and export. Everything else is a callback (:mod:`gnnff.training.callbacks`,
:mod:`gnnff.training.checkpointing`); the loss is :func:`gnnff.training.loss.training_loss`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GNNFFError
from .callbacks import (
    EMA,
    Callback,
    EarlyStopping,
    LambdaScheduling,
    MetricsLog,
    ProgressBar,
    StepResult,
)
from .checkpointing import Checkpointing, open_checkpoint, rng_state, set_rng_state
from .config import ConfigError
from .data import Batch, Structure, collate
from .decorrelation import CorrelationAccumulator
from .e0s import e0s_note
from .evaluation import ErrorStats, evaluate
from .final import finish_run
from .loss import label_counts, training_loss
from .schedulers import build_lambda_scheduler
from .setup import (
    build_optimizer,
    build_training_model,
    decorrelation_layers,
    load_training_data,
    seed_everything,
    steps_per_epoch,
)


class TrainingDivergedError(GNNFFError, FloatingPointError):
    """The training loss became NaN or infinite; the message names the settings to change."""


class Trainer:
    """Train a gnnff model from a validated config (see :mod:`gnnff.training.config`).

    ``Trainer(cfg, run_dir, resume=False).fit()`` writes ``metrics.csv``, ``checkpoint.pt``
    (every epoch, atomically), ``curves.png``, ``correlation.png``, ``summary.json`` and the
    exported ``model.pt`` into ``run_dir``, and returns the training summary dict (``{}`` on
    data-parallel ranks other than 0)."""

    def __init__(
        self,
        cfg: dict[str, Any],
        run_dir: str | Path,
        resume: bool = False,
        log: Callable[[str], Any] = print,
        init_state: dict[str, torch.Tensor] | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        """``resume``: continue the run in ``run_dir`` from its checkpoint (ConfigError when
        there is none or the config differs beyond ``training.epochs`` and the other free
        fields); without it, a ``run_dir`` holding a checkpoint is an error. ``log``: receives
        the progress lines. ``init_state``: weights to start from (fine-tuning; a state dict
        of a model with the same config, e.g. ``eager_from_file(path).state_dict()``),
        including its energy shift and scale; ignored when resuming (the checkpoint has the
        weights). ``callbacks``: extra :class:`~gnnff.training.callbacks.Callback` objects,
        called after the built-in ones; they see the resumed state on ``on_train_begin``."""
        from gnnff.potentials.device import resolve_device

        from .distributed import from_environment

        self.cfg = copy.deepcopy(cfg)
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.log = log
        tr = self.cfg["training"]
        try:
            self.device = resolve_device(tr["device"])
        except ValueError as exc:
            raise ConfigError(f"training.device: {exc}") from None
        self.dtype = getattr(torch, tr["dtype"])
        if tr["num_threads"]:
            torch.set_num_threads(tr["num_threads"])
        self.dist = from_environment(self.device)

        ckpt = open_checkpoint(self.run_dir, resume, self.cfg)
        seed = tr["seed"]
        seed_everything(seed)
        # with a data cache, rank 0 builds it while the other ranks wait, then they reuse it
        cache_first = self.dist.enabled and bool(self.cfg["data"].get("cache"))
        if cache_first and not self.dist.is_main:
            self.dist.barrier()
        data = load_training_data(self.cfg, log=self.log)
        if cache_first and self.dist.is_main:
            self.dist.barrier()
        self.data = data.structures
        self.data_hashes = data.hashes
        self.stability_reference = data.stability_reference
        self.model = build_training_model(
            data, init_state if ckpt is None else None, self.device, self.dtype
        )
        self.cfg["model"] = copy.deepcopy(self.model.config)
        self.e0s_note = e0s_note(self.data["train"], self.cfg["model"])
        if self.e0s_note and ckpt is None and init_state is None and self.dist.is_main:
            self.log(f"warning: {self.e0s_note}")
        dc = self.cfg["decorrelation"]
        self.corr_layers = decorrelation_layers(dc, self.model.num_layers)
        self.steps_per_epoch = steps_per_epoch(
            len(self.data["train"]), tr["batch_size"], self.dist.world_size
        )
        self.optimizer, self.lr_sched = build_optimizer(self.model, self.cfg["optim"], tr["epochs"])

        self.lambda_schedule = LambdaScheduling(
            build_lambda_scheduler(dc, self.steps_per_epoch, tr["epochs"]), dc["enabled"]
        )
        self._ema = EMA(tr["ema_decay"], self.model)
        self.early_stopping = EarlyStopping(tr["early_stopping_patience"])
        builtin: list[Callback] = [
            self.lambda_schedule,
            self._ema,
            MetricsLog(),
            self.early_stopping,
            Checkpointing(self.stability_reference),
        ]
        if tr["progress"]:
            builtin.append(ProgressBar())
        self.callbacks: list[Callback] = builtin + list(callbacks)
        self.shuffle_gen = torch.Generator().manual_seed(seed)
        self.subsample_gen = torch.Generator().manual_seed(seed + 1)
        self.epoch = 0
        self.step = 0
        self.rows: list[dict[str, Any]] = []
        self.stop_training = False
        self.summary: dict[str, Any] = {}
        self.final_correlation: CorrelationAccumulator | None = None
        if ckpt is not None:
            self.load_state_dict(ckpt)

    # ---------------------------------------------------------------- state
    @property
    def ema(self) -> dict[str, torch.Tensor] | None:
        """The EMA weights (None when ``training.ema_decay`` is 0)."""
        return self._ema.weights

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint entries besides the model: the loop's state and every callback's
        (ValueError when two name the same entry)."""
        state: dict[str, Any] = {
            "config": copy.deepcopy(self.cfg),
            "optimizer_state": self.optimizer.state_dict(),
            "lr_scheduler_state": None if self.lr_sched is None else self.lr_sched.state_dict(),
            "shuffle_generator": self.shuffle_gen.get_state(),
            "subsample_generator": self.subsample_gen.get_state(),
            "rng": rng_state(),
            "epoch": self.epoch,
            "step": self.step,
            "metrics_rows": self.rows,
        }
        for cb in self.callbacks:
            extra = cb.state_dict()
            clash = sorted(set(extra) & set(state))
            if clash:
                raise ValueError(
                    f"callback {type(cb).__name__} saves checkpoint entries {clash} that "
                    "another part of the trainer already uses; rename them"
                )
            state.update(extra)
        return state

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Restore the model, the loop and every callback from a checkpoint dict."""
        self.model.load_state_dict(ckpt["model_state"])
        self.optimizer.load_state_dict(ckpt["optimizer_state"])
        if self.lr_sched is not None and ckpt.get("lr_scheduler_state") is not None:
            self.lr_sched.load_state_dict(ckpt["lr_scheduler_state"])
        self.shuffle_gen.set_state(ckpt["shuffle_generator"])
        self.subsample_gen.set_state(ckpt["subsample_generator"])
        set_rng_state(ckpt["rng"])
        self.epoch = int(ckpt["epoch"])
        self.step = int(ckpt["step"])
        self.rows = list(ckpt["metrics_rows"])
        for cb in self.callbacks:
            cb.load_state_dict(ckpt)

    # ---------------------------------------------------------------- one step
    def lambda_now(self) -> float:
        """lambda(t) for the step about to run (0 when the decorrelation is disabled)."""
        return self.lambda_schedule.value(self.step)

    def compute_loss(
        self, batch: Batch, lam: float, denominators: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, Any], dict[str, torch.Tensor], torch.Tensor | None]:
        """(loss, predictions, loss terms, per-layer L_corr or None) for one batch
        (:func:`~gnnff.training.loss.training_loss`; ``denominators``: the global label
        counts in data-parallel training)."""
        return training_loss(
            self.model,
            batch,
            lam,
            self.cfg,
            self.corr_layers,
            self.lambda_schedule.needs_losses,
            self.subsample_gen,
            self.dist.world_size,
            denominators,
        )

    def _step(self, chunk: list[Structure], lam: float) -> tuple[StepResult, dict[str, Any]]:
        """Forward and backward pass and optimizer step on this rank's share ``chunk`` of one
        global batch (empty: a data-parallel rank without structures in the last step)."""
        tr = self.cfg["training"]
        self.optimizer.zero_grad(set_to_none=True)
        batch = collate(chunk, self.dtype, self.device) if chunk else None
        den: torch.Tensor | None = None
        if self.dist.enabled:  # every loss term is divided by the global label counts
            zeros = torch.zeros(3, dtype=torch.float64)
            den = self.dist.sum_(label_counts(batch) if batch is not None else zeros)
        out: dict[str, Any] = {}
        per_layer: torch.Tensor | None = None
        if batch is None:
            loss = torch.zeros((), dtype=self.dtype, device=self.device)
            terms = {"forces": loss}
        else:
            loss, out, terms, per_layer = self.compute_loss(batch, lam, den)
        if loss.requires_grad or self.dist.enabled:  # isolated atoms, fixed E0s: nothing to fit
            if loss.requires_grad:
                torch.autograd.backward(loss)
            self.dist.sum_gradients(self.model)
            if tr["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), tr["grad_clip"])
            self.optimizer.step()
        return StepResult(loss, lam, terms, per_layer, batch), out

    def eval_state(self) -> dict[str, torch.Tensor]:
        """The weights used for validation and export (EMA when enabled)."""
        state = self.ema if self.ema is not None else self.model.state_dict()
        return {k: v.detach().clone() for k, v in state.items()}

    def _eval_model(self, state: dict[str, torch.Tensor] | None = None) -> Any:
        if state is None and self.ema is None:
            return self.model
        m = copy.deepcopy(self.model)
        m.load_state_dict(state if state is not None else self.ema)
        return m

    def evaluate_split(
        self, structs: Sequence[Structure], state: dict[str, torch.Tensor] | None = None
    ) -> tuple[dict[str, float], CorrelationAccumulator]:
        """:func:`~gnnff.training.evaluation.evaluate` of ``state`` (default: the validation
        weights, EMA when enabled) on ``structs``."""
        lo, batch_size = self.cfg["loss"], self.cfg["training"]["valid_batch_size"]
        stress = lo["stress_weight"] > 0
        model = self._eval_model(state)
        return evaluate(model, structs, batch_size, self.dtype, str(self.device), stress, lo)

    # ---------------------------------------------------------------- epochs
    def train_epoch(self) -> dict[str, Any]:
        """One pass over the shuffled training set; returns the epoch's ``train_*`` metrics,
        ``lambda`` (the last step's) and ``train_lcorr``/``train_lcorr_l{k}`` when computed."""
        train = self.data["train"]
        self.model.train()
        perm = torch.randperm(len(train), generator=self.shuffle_gen).tolist()
        stats = ErrorStats()
        loss_sum, corr_sum, corr_n = 0.0, None, 0
        lam = 0.0
        step_size = self.cfg["training"]["batch_size"] * self.dist.world_size
        for start in range(0, len(perm), step_size):
            chunk = [train[k] for k in self.dist.share(perm[start : start + step_size])]
            lam = self.lambda_now()
            res, out = self._step(chunk, lam)
            if res.per_layer is not None:
                pl = res.per_layer.detach().double().cpu()
                corr_sum = pl if corr_sum is None else corr_sum + pl
                corr_n += 1
            self.step += 1
            if res.batch is not None:
                stats.add_batch(out, res.batch)
            if self.dist.enabled:  # each rank holds its part of the global batch's loss
                global_loss = float(self.dist.sum_(res.loss.detach().double().reshape(1))[0])
                loss_sum += global_loss * len(perm[start : start + step_size])
            else:
                loss_sum += float(res.loss.detach()) * len(chunk)
            for cb in self.callbacks:
                cb.on_batch_end(self, res)
        if self.dist.enabled:
            stats.all_reduce(self.dist)
        row = {f"train_{k}": v for k, v in stats.summary().items()}
        row["train_loss"] = loss_sum / len(train)
        row["lambda"] = lam
        if corr_sum is not None:
            per = (corr_sum / corr_n).tolist()
            row["train_lcorr"] = float(np.mean(per))
            for k, layer in enumerate(self.corr_layers):
                row[f"train_lcorr_l{layer % self.model.num_layers}"] = per[k]
        return row

    def fit(self) -> dict[str, Any]:
        """Train up to ``training.epochs`` (or until a callback sets ``stop_training``), then,
        on rank 0, evaluate and export; returns the summary (``{}`` on other ranks)."""
        main = self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        for cb in self.callbacks:
            cb.on_train_begin(self)
        while self.epoch < self.cfg["training"]["epochs"] and not self.stop_training:
            t0 = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            row: dict[str, Any] = {"epoch": self.epoch + 1, "lr": lr}
            for cb in self.callbacks:
                cb.on_epoch_begin(self)
            row.update(self.train_epoch())
            valid, _ = self.evaluate_split(self.data["valid"])
            row.update({f"valid_{k}": v for k, v in valid.items()})
            if not math.isfinite(row["train_loss"]):
                raise TrainingDivergedError(
                    f"training loss became {row['train_loss']} in epoch {self.epoch + 1}; lower "
                    "optim.lr or set training.grad_clip"
                )
            if isinstance(self.lr_sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.lr_sched.step(valid["loss"])
            elif self.lr_sched is not None:
                self.lr_sched.step()
            self.epoch += 1
            row["epoch_seconds"] = time.perf_counter() - t0
            self.rows.append(row)
            for cb in self.callbacks:
                cb.on_epoch_end(self, row)
        if main:
            self.summary = self.finish()
        for cb in self.callbacks:
            cb.on_train_end(self)
        self.dist.barrier()  # rank 0 evaluates and exports
        return self.summary

    def finish(self) -> dict[str, Any]:
        """Evaluate the chosen weights (``training.export``: best or last) on the validation
        and test sets, write summary.json and the exported model.pt; returns the summary
        (:func:`~gnnff.training.final.finish_run`)."""
        best = self.early_stopping.best_state
        use_best = self.cfg["training"]["export"] == "best" and best is not None
        summary, self.final_correlation = finish_run(
            self.run_dir,
            self._eval_model(best if use_best else self.eval_state()),
            self.cfg,
            self.data,
            self.data_hashes,
            self.stability_reference,
            dtype=self.dtype,
            device=str(self.device),
            epochs_run=self.epoch,
            weights="best" if use_best else "last",
            best_epoch=self.early_stopping.best_epoch,
            ema=self.ema is not None,
            e0s_note=self.e0s_note,
        )
        return summary
