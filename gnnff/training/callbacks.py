"""Training callbacks: the hooks the trainer's loop calls, and the built-in ones.

The protocol (:class:`Callback`): every method is optional (the base class does nothing) and
receives the trainer (read it through :class:`TrainerView`). The loop calls, in this order::

    on_train_begin(trainer)                  after set-up (and resume), before the first epoch
    per epoch:
        on_epoch_begin(trainer)              trainer.epoch = epochs completed so far
        per optimisation step:
            on_batch_end(trainer, step)      after the optimizer step; trainer.step counts it
        on_epoch_end(trainer, row)           after validation; trainer.epoch counts this epoch,
                                             row (= trainer.rows[-1]) holds its metrics
    on_train_end(trainer)                    after the loop (and, on rank 0, after the final
                                             evaluation and export: trainer.summary is set)

Setting ``trainer.stop_training = True`` (any event) ends training after the current epoch.
A callback that carries state across a resume returns it from ``state_dict()`` (entries of the
checkpoint dict; names must not clash with other entries) and reads it back in
``load_state_dict(checkpoint)`` (use ``.get``: older checkpoints lack new keys). Callbacks run
on every data-parallel rank (check ``trainer.dist.is_main`` before writing files), in the order
given: the built-ins first (:class:`LambdaScheduling`, :class:`EMA`, :class:`MetricsLog`,
:class:`EarlyStopping`, ``checkpointing.Checkpointing``, :class:`ProgressBar`), then the
user's (``Trainer(..., callbacks=[...])``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from gnnff.io_utils import atomic_write_text

from .data import Batch, Structure
from .decorrelation import CorrelationAccumulator
from .distributed import DistributedContext
from .schedulers import LambdaScheduler


@dataclass
class StepResult:
    """One optimisation step as the callbacks see it. ``loss`` (scalar, this rank's part of
    the global loss), ``lam`` (the lambda(t) used), ``terms`` (the loss terms of
    :func:`gnnff.training.loss.loss_terms`, plus ``corr`` when the decorrelation loss was
    computed), ``per_layer`` ([layers] L_corr, or None), ``batch`` (this rank's batch; None for
    an empty share in data-parallel training)."""

    loss: torch.Tensor
    lam: float
    terms: dict[str, torch.Tensor]
    per_layer: torch.Tensor | None
    batch: Batch | None


class TrainerView(Protocol):
    """What a callback may read from the trainer (:class:`gnnff.training.trainer.Trainer`)."""

    cfg: dict[str, Any]  # the training config (its model section resolved: species, ...)
    run_dir: Path
    resume: bool
    data: dict[str, Sequence[Structure]]  # train, valid (and test) structures
    dist: DistributedContext
    epoch: int  # completed epochs
    step: int  # completed optimisation steps
    rows: list[dict[str, Any]]  # one metrics row per completed epoch
    stop_training: bool  # set True to stop after the current epoch
    steps_per_epoch: int
    log: Callable[[str], Any]
    summary: dict[str, Any]  # set on rank 0 before on_train_end
    final_correlation: CorrelationAccumulator | None  # likewise (the final validation's)

    @property
    def model(self) -> torch.nn.Module: ...

    def eval_state(self) -> dict[str, torch.Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...


class Callback:
    """Base class of training callbacks (see the module docstring for the event order)."""

    def on_train_begin(self, trainer: TrainerView) -> None:
        """Before the first epoch (after resume: before the first resumed epoch)."""

    def on_epoch_begin(self, trainer: TrainerView) -> None:
        """Before an epoch's first step."""

    def on_batch_end(self, trainer: TrainerView, step: StepResult) -> None:
        """After each optimisation step."""

    def on_epoch_end(self, trainer: TrainerView, row: dict[str, Any]) -> None:
        """After an epoch's validation; ``row`` is its metrics row."""

    def on_train_end(self, trainer: TrainerView) -> None:
        """After the last epoch (and rank 0's final evaluation and export)."""

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint entries to save (default none)."""
        return {}

    def load_state_dict(self, checkpoint: Mapping[str, Any]) -> None:
        """Restore from a checkpoint dict on resume (default nothing)."""


class LambdaScheduling(Callback):
    """The decorrelation coefficient lambda(t) (:mod:`gnnff.training.schedulers`): ``value``
    gives it for the step about to run (0 when the decorrelation is disabled); after each step
    that computed L_corr the scheduler observes the detached force and correlation losses
    (the adaptive scheduler's feedback). Checkpoint entry: ``lambda_scheduler_state``."""

    def __init__(self, scheduler: LambdaScheduler, enabled: bool) -> None:
        self.scheduler = scheduler
        self.enabled = enabled

    @property
    def needs_losses(self) -> bool:
        """Whether L_corr must be computed even at lambda = 0 (to feed the scheduler)."""
        return self.scheduler.needs_losses

    def value(self, step: int) -> float:
        return float(self.scheduler.value(step)) if self.enabled else 0.0

    def on_batch_end(self, trainer: TrainerView, step: StepResult) -> None:
        if step.per_layer is not None:
            self.scheduler.observe(
                float(step.terms["forces"].detach()), float(step.terms["corr"].detach())
            )

    def state_dict(self) -> dict[str, Any]:
        return {"lambda_scheduler_state": self.scheduler.state_dict()}

    def load_state_dict(self, checkpoint: Mapping[str, Any]) -> None:
        self.scheduler.load_state_dict(checkpoint["lambda_scheduler_state"])


class EMA(Callback):
    """Exponential moving average of the weights, w_ema <- d w_ema + (1 - d) w after every
    step (integer buffers copied); ``decay`` 0 disables it (``weights`` is None). Validation
    and export use the EMA weights when enabled. Checkpoint entries: ``ema_state`` (when
    enabled) and ``use_ema_for_export``."""

    def __init__(self, decay: float, model: torch.nn.Module) -> None:
        self.decay = decay
        self.weights: dict[str, torch.Tensor] | None = None
        if decay:
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def on_batch_end(self, trainer: TrainerView, step: StepResult) -> None:
        if self.weights is None:
            return
        with torch.no_grad():
            for k, v in trainer.model.state_dict().items():
                if v.dtype.is_floating_point:
                    self.weights[k].mul_(self.decay).add_(v, alpha=1 - self.decay)
                else:
                    self.weights[k].copy_(v)

    def state_dict(self) -> dict[str, Any]:
        if self.weights is None:
            return {"use_ema_for_export": False}
        return {
            "ema_state": {k: v.cpu() for k, v in self.weights.items()},
            "use_ema_for_export": True,
        }

    def load_state_dict(self, checkpoint: Mapping[str, Any]) -> None:
        if self.weights is not None:
            device = next(iter(self.weights.values())).device
            self.weights = {k: v.to(device) for k, v in checkpoint["ema_state"].items()}


class EarlyStopping(Callback):
    """Tracks the best validation loss (its epoch and weights, for ``training.export: best``)
    and stops training after ``patience`` epochs without improvement (0: never stops).
    Checkpoint entries: ``best_loss``, ``best_epoch``, ``best_state``, ``bad_epochs``."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_loss = float("inf")
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0

    def on_epoch_end(self, trainer: TrainerView, row: dict[str, Any]) -> None:
        if row["valid_loss"] < self.best_loss:
            self.best_loss, self.best_epoch = row["valid_loss"], trainer.epoch
            self.best_state = {k: v.cpu() for k, v in trainer.eval_state().items()}
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self.patience and self.bad_epochs >= self.patience:
            trainer.stop_training = True
            if trainer.dist.is_main:
                trainer.log(f"early stopping: no valid improvement for {self.patience} epochs")

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, checkpoint: Mapping[str, Any]) -> None:
        self.best_loss = float(checkpoint["best_loss"])
        self.best_epoch = int(checkpoint["best_epoch"])
        self.best_state = checkpoint.get("best_state")
        self.bad_epochs = int(checkpoint["bad_epochs"])


class MetricsLog(Callback):
    """Rank 0: the start (not when resuming) and per-epoch log lines, ``metrics.csv``
    (rewritten atomically every epoch, one row per epoch, floats to 8 significant digits) and,
    at the end, ``curves.png`` and ``correlation.png`` (a plotting failure is logged, never
    raised)."""

    def on_train_begin(self, trainer: TrainerView) -> None:
        if trainer.dist.is_main and not trainer.resume:
            dc = "on" if trainer.cfg["decorrelation"]["enabled"] else "off"
            trainer.log(
                f"training on {len(trainer.data['train'])} structures, validating on "
                f"{len(trainer.data['valid'])}; species {trainer.cfg['model']['species']}, "
                f"decorrelation {dc}"
            )

    def on_epoch_end(self, trainer: TrainerView, row: dict[str, Any]) -> None:
        if not trainer.dist.is_main:
            return
        keys: list[str] = []
        for r in trainer.rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, restval="")
        w.writeheader()
        for r in trainer.rows:
            w.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in r.items()})
        atomic_write_text(trainer.run_dir / "metrics.csv", buf.getvalue())
        nan = float("nan")
        trainer.log(
            f"epoch {row['epoch']}: valid E {row.get('valid_energy_mae', nan):.2f} "
            f"meV/atom, F {row.get('valid_force_mae', nan):.1f} meV/A, "
            f"residual-stream corr {row['valid_lcorr']:.4f}, feature corr "
            f"{row['valid_feature_corr']:.4f}, lambda {row['lambda']:.4g}, "
            f"{row['epoch_seconds']:.1f} s"
        )

    def on_train_end(self, trainer: TrainerView) -> None:
        if not trainer.dist.is_main or trainer.final_correlation is None:
            return
        from ..errors import MissingExtraError
        from .plots import plot_correlation, plot_curves

        try:
            plot_curves(trainer.rows, trainer.run_dir / "curves.png")
            plot_correlation(
                trainer.final_correlation.matrices(), trainer.run_dir / "correlation.png"
            )
        except MissingExtraError as exc:
            trainer.log(f"note: curves.png and correlation.png skipped: {exc}")
        except Exception as exc:  # plots must never lose a finished run
            trainer.log(f"warning: plotting failed: {exc}")


class ProgressBar(Callback):
    """A tqdm bar over each epoch's steps (``training.progress``) showing the step's loss and
    lambda; it disappears after the epoch's last step."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_epoch_begin(self, trainer: TrainerView) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=trainer.steps_per_epoch, desc=f"epoch {trainer.epoch + 1}", leave=False
        )

    def on_batch_end(self, trainer: TrainerView, step: StepResult) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{float(step.loss.detach()):.4g}", lam=f"{step.lam:.3g}")
            self.bar.update(1)
            if self.bar.n >= self.bar.total:  # cleared before validation and the epoch's log
                self.bar.close()
                self.bar = None

    def on_epoch_end(self, trainer: TrainerView, row: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
