"""Schedulers for the decorrelation coefficient lambda(t) (this project's own definitions).

``t`` counts optimizer steps from 0. Epoch lengths in the config are converted to steps by the
trainer (``steps = round(epochs * steps_per_epoch)``).

- ``constant``: lambda(t) = lambda_max (the ablation).
- ``cosine``: smooth ramp over W warm-up steps, lambda(t) = lambda_max (1 - cos(pi t / W)) / 2
  for t < W; afterwards either ``hold`` (lambda_max) or ``anneal``:
  lambda(t) = lambda_end + (lambda_max - lambda_end) (1 + cos(pi (t - W) / A)) / 2 for
  W <= t < W + A and lambda_end after that.
- ``adaptive``: keeps lambda L_corr near a fraction ``f`` of the force loss. Starting from
  lambda_0 = ``lambda_init``, after every step with detached losses L_F and L_corr,
  lambda <- clip((1 - beta) lambda + beta f L_F / max(L_corr, 1e-12), lambda_min, lambda_max).
- ``decay``: strongest at the start, then relaxes (shape the features early, let the fit
  finish unconstrained). ``cosine``: lambda(t) = lambda_end + (lambda_max - lambda_end)
  (1 + cos(pi t / D)) / 2 for t < D, lambda_end after; ``exponential``:
  lambda(t) = lambda_end + (lambda_max - lambda_end) exp(-t / D) (D the e-folding time).

Schedulers are registered by name in :data:`gnnff.extensions.SCHEDULERS` as factories
``(decorrelation_config, steps_per_epoch, total_epochs) -> LambdaScheduler`` (the four above
here; other packages through the ``gnnff.schedulers`` entry-point group). A scheduler reads
the ``decorrelation`` section's settings (lambda_max, warmup_epochs, ...); its ``state_dict``
is saved in checkpoints so a resumed run continues it.
"""

from __future__ import annotations

import math
from typing import Any

from gnnff.extensions import SCHEDULERS


class LambdaScheduler:
    """Base class: ``value(step)`` gives lambda for the step about to run."""

    needs_losses = False

    def value(self, step: int) -> float:
        raise NotImplementedError

    def observe(self, force_loss: float, corr_loss: float) -> None:
        """Feed the detached losses of the step just taken (used by ``adaptive`` only)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class ConstantLambda(LambdaScheduler):
    def __init__(self, lambda_max: float) -> None:
        self.lambda_max = float(lambda_max)

    def value(self, step: int) -> float:
        return self.lambda_max


class CosineLambda(LambdaScheduler):
    def __init__(
        self,
        lambda_max: float,
        warmup_steps: int,
        after_warmup: str = "hold",
        anneal_steps: int | None = None,
        lambda_end: float = 0.0,
    ) -> None:
        if after_warmup not in ("hold", "anneal"):
            raise ValueError(f"after_warmup must be 'hold' or 'anneal', got {after_warmup!r}")
        self.lambda_max = float(lambda_max)
        self.warmup = max(int(warmup_steps), 0)
        self.after = after_warmup
        self.anneal = None if anneal_steps is None else max(int(anneal_steps), 1)
        self.lambda_end = float(lambda_end)

    def value(self, step: int) -> float:
        if step < self.warmup:
            return self.lambda_max * 0.5 * (1.0 - math.cos(math.pi * step / self.warmup))
        if self.after == "hold" or self.anneal is None:
            return self.lambda_max
        s = step - self.warmup
        if s >= self.anneal:
            return self.lambda_end
        c = 0.5 * (1.0 + math.cos(math.pi * s / self.anneal))
        return self.lambda_end + (self.lambda_max - self.lambda_end) * c


class AdaptiveLambda(LambdaScheduler):
    needs_losses = True

    def __init__(
        self,
        target_fraction: float,
        lambda_min: float = 0.0,
        lambda_max: float = 1.0,
        momentum: float = 0.1,
        lambda_init: float = 0.0,
    ) -> None:
        if not 0 <= lambda_min <= lambda_max:
            raise ValueError(
                f"adaptive bounds need 0 <= lambda_min <= lambda_max, got {lambda_min}, "
                f"{lambda_max}"
            )
        if not 0 < momentum <= 1:
            raise ValueError(f"adaptive momentum must be in (0, 1], got {momentum}")
        self.target = float(target_fraction)
        self.lo, self.hi = float(lambda_min), float(lambda_max)
        self.beta = float(momentum)
        self.lam = min(max(float(lambda_init), self.lo), self.hi)

    def value(self, step: int) -> float:
        return self.lam

    def observe(self, force_loss: float, corr_loss: float) -> None:
        goal = self.target * force_loss / max(corr_loss, 1e-12)
        lam = (1.0 - self.beta) * self.lam + self.beta * goal
        self.lam = min(max(lam, self.lo), self.hi)

    def state_dict(self) -> dict[str, Any]:
        return {"lam": self.lam}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lam = float(state["lam"])


class DecayLambda(LambdaScheduler):
    def __init__(
        self, lambda_max: float, decay_steps: int, shape: str = "cosine", lambda_end: float = 0.0
    ) -> None:
        if shape not in ("cosine", "exponential"):
            raise ValueError(f"decay shape must be 'cosine' or 'exponential', got {shape!r}")
        self.lambda_max = float(lambda_max)
        self.lambda_end = float(lambda_end)
        self.steps = max(int(decay_steps), 1)
        self.shape = shape

    def value(self, step: int) -> float:
        span = self.lambda_max - self.lambda_end
        if self.shape == "exponential":
            return self.lambda_end + span * math.exp(-step / self.steps)
        if step >= self.steps:
            return self.lambda_end
        return self.lambda_end + span * 0.5 * (1.0 + math.cos(math.pi * step / self.steps))


@SCHEDULERS.register("constant", builtin=True)
def _constant(cfg: dict[str, Any], steps_per_epoch: int, total_epochs: int) -> LambdaScheduler:
    return ConstantLambda(cfg["lambda_max"])


@SCHEDULERS.register("cosine", builtin=True)
def _cosine(cfg: dict[str, Any], steps_per_epoch: int, total_epochs: int) -> LambdaScheduler:
    warm = cfg["warmup_steps"]
    if warm is None:
        warm = round(cfg["warmup_epochs"] * steps_per_epoch)
    anneal = cfg["anneal_epochs"]
    if cfg["after_warmup"] == "anneal":
        if anneal is None:
            anneal_steps = max(total_epochs * steps_per_epoch - warm, 1)
        else:
            anneal_steps = round(anneal * steps_per_epoch)
    else:
        anneal_steps = None
    return CosineLambda(
        cfg["lambda_max"], warm, cfg["after_warmup"], anneal_steps, cfg["lambda_end"]
    )


@SCHEDULERS.register("adaptive", builtin=True)
def _adaptive(cfg: dict[str, Any], steps_per_epoch: int, total_epochs: int) -> LambdaScheduler:
    return AdaptiveLambda(
        cfg["target_fraction"],
        cfg["lambda_min"],
        cfg["lambda_max"],
        cfg["momentum"],
        cfg["lambda_init"],
    )


@SCHEDULERS.register("decay", builtin=True)
def _decay(cfg: dict[str, Any], steps_per_epoch: int, total_epochs: int) -> LambdaScheduler:
    total = max(total_epochs * steps_per_epoch, 1)
    if cfg["decay_epochs"] is None:
        steps = total if cfg["decay_shape"] == "cosine" else max(round(total / 5), 1)
    else:
        steps = max(round(cfg["decay_epochs"] * steps_per_epoch), 1)
    return DecayLambda(cfg["lambda_max"], steps, cfg["decay_shape"], cfg["lambda_end"])


def build_lambda_scheduler(
    cfg: dict[str, Any], steps_per_epoch: int, total_epochs: int
) -> LambdaScheduler:
    """Scheduler from the (validated) ``decorrelation`` config section: the registered
    scheduler ``cfg["scheduler"]`` (:data:`gnnff.extensions.SCHEDULERS`; a factory
    ``(cfg, steps_per_epoch, total_epochs) -> LambdaScheduler``). Raises PluginError (a
    ValueError) for an unknown name, TypeError when the factory returns no LambdaScheduler."""
    kind = cfg["scheduler"]
    sched = SCHEDULERS.get(kind)(cfg, steps_per_epoch, total_epochs)
    if not isinstance(sched, LambdaScheduler):
        raise TypeError(
            f"decorrelation scheduler {kind!r} ({SCHEDULERS.origin(kind)}) returned a "
            f"{type(sched).__name__}; it must return a gnnff.training.schedulers.LambdaScheduler"
        )
    return sched
