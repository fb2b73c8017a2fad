"""The end of a training run (rank 0): evaluate the chosen weights on the validation and test
sets, write ``summary.json`` and export ``model.pt`` (float64 TorchScript, with the summary in
its metadata)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from gnnff.io_utils import atomic_write_json

from .data import Structure
from .decorrelation import CorrelationAccumulator
from .evaluation import evaluate


def label_provenance(train_path: str | Path) -> dict[str, Any] | None:
    """What labelled the training data (teacher name, version, weights sha256, ...): the
    ``labels`` entry of the ``manifest.json`` that ``gnnff data generate`` wrote beside the
    training file, without its per-frame log (``{"preset": NAME}`` for a classical preset's
    data set); None when there is none."""
    import json

    manifest = Path(train_path).parent / "manifest.json"
    try:
        found = json.loads(manifest.read_text())
        labels = found.get("labels")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(labels, dict):
        # a classical preset's data set: its potential labelled every frame
        return {"preset": found["preset"]} if isinstance(found.get("preset"), str) else None
    return {k: v for k, v in labels.items() if k not in ("skipped", "from_cache")}


def finish_run(
    run_dir: Path,
    model: Any,
    cfg: dict[str, Any],
    data: dict[str, Sequence[Structure]],
    data_hashes: dict[str, str],
    stability_reference: dict[str, Any],
    *,
    dtype: torch.dtype,
    device: str,
    epochs_run: int,
    weights: str,
    best_epoch: int,
    ema: bool,
    e0s_note: str | None = None,
) -> tuple[dict[str, Any], CorrelationAccumulator]:
    """Evaluate ``model`` (the exported weights: ``weights`` is ``best`` or ``last``, EMA
    when ``ema``) and export it; returns (summary, the validation's correlation accumulator).

    The summary holds the data files and their SHA-256, the decorrelation and loss sections,
    the seed, ``epochs_run``, ``best_epoch``, ``final_valid`` (and ``final_test`` with a test
    split; :func:`~gnnff.training.evaluation.evaluate` metrics), the final correlations and
    the training data's close-contact reference, ``labels`` (what labelled the training
    data: :func:`label_provenance`) and ``e0s_note`` when given (the training energies leave the
    E0s undetermined: :func:`gnnff.training.e0s.e0s_note`)."""
    from gnnff.potentials import export_model

    tr = cfg["training"]
    use_stress = cfg["loss"]["stress_weight"] > 0
    args = (tr["valid_batch_size"], dtype, device, use_stress, cfg["loss"])
    valid, acc = evaluate(model, data["valid"], *args)
    summary: dict[str, Any] = {
        "data": {k: {"path": cfg["data"][k], "sha256": h} for k, h in data_hashes.items()},
        "decorrelation": copy.deepcopy(cfg["decorrelation"]),
        "loss": copy.deepcopy(cfg["loss"]),
        "seed": tr["seed"],
        "epochs_run": epochs_run,
        "weights": weights,
        "best_epoch": best_epoch,
        "ema": ema,
        "final_valid": valid,
        "final_lcorr": valid["lcorr"],
        "final_lcorr_per_layer": [valid[f"lcorr_l{k}"] for k in range(len(acc.n))],
        # final_lcorr is the residual-stream (basis-dependent) quantity, kept for old readers
        "final_residual_stream_corr": valid["lcorr"],
        "final_feature_corr": valid["feature_corr"],
    }
    if "test" in data:
        summary["final_test"], _ = evaluate(model, data["test"], *args)
    summary["stability_reference"] = stability_reference
    if e0s_note:
        summary["e0s_note"] = e0s_note
    labels = label_provenance(cfg["data"]["train"])
    if labels:
        summary["labels"] = labels
    atomic_write_json(run_dir / "summary.json", summary)
    export_model(model, run_dir / "model.pt", dtype="float64", training_summary=summary)
    return summary, acc
