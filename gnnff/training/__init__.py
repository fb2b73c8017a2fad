"""Training: datasets (extxyz through ASE), losses (energy, force, stress and this project's
feature-decorrelation loss), lambda(t) schedulers, the trainer with exact resume, evaluation.

Heavy modules (torch) are imported lazily so that ``gnnff --help`` stays fast."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Trainer": "trainer",
    "predict": "trainer",
    "evaluate": "trainer",
    "decorrelation_loss": "decorrelation",
    "correlation_matrix": "decorrelation",
    "CorrelationAccumulator": "decorrelation",
    "ConstantLambda": "schedulers",
    "CosineLambda": "schedulers",
    "AdaptiveLambda": "schedulers",
    "build_lambda_scheduler": "schedulers",
    "load_config": "config",
    "validate_config": "config",
    "ConfigError": "config",
    "DataError": "data",
    "evaluate_model_file": "evaluation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
