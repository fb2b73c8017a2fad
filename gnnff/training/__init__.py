"""Training: datasets (extxyz through ASE), losses (energy, force, stress and this project's
feature-decorrelation loss), lambda(t) schedulers, the trainer with exact resume, evaluation.

Public names are imported lazily (``gnnff._lazy``) so that ``gnnff --help`` stays free of torch.
"""

from __future__ import annotations

from gnnff._lazy import lazy_exports

_EXPORTS = {
    "Trainer": "trainer",
    "Callback": "callbacks",
    "predict": "loss",
    "evaluate": "evaluation",
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

__all__ = [
    "AdaptiveLambda",
    "Callback",
    "ConfigError",
    "ConstantLambda",
    "CorrelationAccumulator",
    "CosineLambda",
    "DataError",
    "Trainer",
    "build_lambda_scheduler",
    "correlation_matrix",
    "decorrelation_loss",
    "evaluate",
    "evaluate_model_file",
    "load_config",
    "predict",
    "validate_config",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
