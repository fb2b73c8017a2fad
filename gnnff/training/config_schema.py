"""The training config's sections, keys and defaults (documented in
:mod:`gnnff.training.config`), and its error class."""

from __future__ import annotations

import copy
from typing import Any

from ..errors import GNNFFError

__all__ = ["DECORRELATION_VARIANTS", "DEFAULTS", "ConfigError", "default_config"]


class ConfigError(GNNFFError, ValueError):
    """A training config that cannot be used; the message names the key and the fix."""


DEFAULTS: dict[str, dict[str, Any]] = {
    "data": {
        "train": None,
        "valid": None,
        "test": None,
        "energy_key": None,
        "forces_key": None,
        "stress_key": None,
        "virial_key": None,
        "cache": None,
    },
    "model": {},
    "loss": {"energy_weight": 1.0, "forces_weight": 1.0, "stress_weight": 0.0},
    "decorrelation": {
        "enabled": False,
        "variant": "residual",
        "layers": "all",
        "max_edges": "auto",
        "scheduler": "cosine",
        "lambda_max": 0.05,
        "warmup_epochs": 2.0,
        "warmup_steps": None,
        "after_warmup": "hold",
        "anneal_epochs": None,
        "lambda_end": 0.0,
        "target_fraction": 0.1,
        "lambda_min": 0.0,
        "momentum": 0.1,
        "lambda_init": 0.0,
        "decay_shape": "cosine",
        "decay_epochs": None,
        # the scheduler's own settings (a plug-in scheduler declares them, see
        # config_checks.check_scheduler_options); the built-ins read the keys above
        "scheduler_options": {},
    },
    "optim": {
        "lr": 2e-3,
        "weight_decay": 0.0,
        "lr_schedule": "plateau",
        "plateau_factor": 0.5,
        "plateau_patience": 5,
        "min_lr": 1e-5,
    },
    "training": {
        "epochs": 100,
        "batch_size": 4,
        "valid_batch_size": 16,
        "seed": 0,
        "device": "cpu",
        "dtype": "float32",
        "ema_decay": None,
        "early_stopping_patience": None,
        "grad_clip": 10.0,
        "num_threads": None,
        "export": "best",
        "progress": True,
    },
}


def default_config() -> dict[str, Any]:
    """A deep copy of the full default config."""
    return copy.deepcopy(DEFAULTS)


DECORRELATION_VARIANTS = ("residual", "post_activation", "per_pair", "tensor")
