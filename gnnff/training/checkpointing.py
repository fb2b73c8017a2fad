"""Checkpoints and exact resume: the resume rule (which config changes a resume allows), the
random-number-generator state every checkpoint carries, and the :class:`Checkpointing`
callback (rank 0 writes ``checkpoint.pt`` atomically after every epoch).

A checkpoint is :func:`gnnff.potentials.save_checkpoint_dict` of the model with the trainer's
state (:meth:`gnnff.training.trainer.Trainer.state_dict`: config, optimizer, lr scheduler,
shuffle and subsampling generators, global RNGs, epoch, step, metrics rows) and every
callback's entries (lambda scheduler, EMA, best weights / early stopping); resuming from it
continues bit-identically to an uninterrupted run.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnnff.io_utils import atomic_write

from .callbacks import Callback, TrainerView
from .config import ConfigError, default_config

CHECKPOINT_NAME = "checkpoint.pt"
# training.* fields that may differ when resuming (they do not change the optimisation path)
_RESUME_FREE = {"epochs", "progress", "num_threads", "early_stopping_patience", "device"}


class Checkpointing(Callback):
    """Rank 0 writes the checkpoint (``run_dir/checkpoint.pt``, atomically: a crash leaves
    the previous one) at the end of every epoch; ``training_summary`` carries the training
    data's close-contact reference, so ``gnnff export CHECKPOINT`` writes it into the model."""

    def __init__(self, stability_reference: dict[str, Any]) -> None:
        self.stability_reference = stability_reference

    def on_epoch_end(self, trainer: TrainerView, row: dict[str, Any]) -> None:
        if not trainer.dist.is_main:
            return
        from gnnff.potentials import save_checkpoint_dict

        ckpt = save_checkpoint_dict(
            trainer.model,  # type: ignore[arg-type]  # a GNNFFModel
            training_summary={"stability_reference": self.stability_reference},
            **trainer.state_dict(),
        )
        atomic_write(trainer.run_dir / CHECKPOINT_NAME, lambda p: torch.save(ckpt, p))


def open_checkpoint(run_dir: Path, resume: bool, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint to resume from (None for a fresh run).

    Raises ConfigError when ``resume`` and ``run_dir`` has no checkpoint, when not ``resume``
    and it has one (a finished or interrupted run is never overwritten), and when the
    checkpoint's config differs from ``cfg`` beyond the fields a resume may change."""
    path = run_dir / CHECKPOINT_NAME
    if not resume:
        if path.exists():
            raise ConfigError(
                f"{run_dir} already holds a training run ({CHECKPOINT_NAME}); pass --resume "
                "to continue it or choose another --out folder"
            )
        return None
    if not path.is_file():
        raise ConfigError(f"--resume: no {CHECKPOINT_NAME} in {run_dir}; start without --resume")
    ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    check_resume(ckpt, cfg, path)
    return ckpt


def check_resume(ckpt: dict[str, Any], cfg: dict[str, Any], path: Path) -> None:
    """Raise ConfigError naming every config difference between the checkpoint at ``path`` and
    ``cfg`` other than the free ``training`` fields (``_RESUME_FREE``) and ``data.cache``.
    ``decorrelation.max_edges: auto`` against a run that stored an edge count is no
    difference: ``cfg`` takes the stored count (set in place)."""
    old = ckpt.get("config")
    if not isinstance(old, dict):
        raise ConfigError(f"{path} has no training config")
    diffs = []
    for sec in cfg:
        a, b = old.get(sec), cfg[sec]
        if sec == "model" and isinstance(a, dict) and isinstance(b, dict):
            a, b = _comparable_model_configs(a, b)
        elif sec == "decorrelation" and isinstance(a, dict):
            # keys added later (variant, decay_*) take the defaults the old run used
            a = {**default_config()["decorrelation"], **a}
            if b.get("max_edges") == "auto" and a.get("max_edges") != "auto":
                # runs from before "auto" stored their edge count (the old default 4096):
                # the resumed run keeps it, so that it continues exactly
                b["max_edges"] = a.get("max_edges")
        if sec == "training":
            a = {k: v for k, v in (a or {}).items() if k not in _RESUME_FREE}
            b = {k: v for k, v in b.items() if k not in _RESUME_FREE}
        elif sec == "data":  # the cache changes where the data is kept, not the run
            a = {k: v for k, v in (a or {}).items() if k != "cache"}
            b = {k: v for k, v in b.items() if k != "cache"}
        diffs += _config_diff(a, b, f"{sec}.")
    if diffs:
        raise ConfigError(
            f"cannot resume {path.parent}: the config differs from the run's "
            f"({'; '.join(diffs)}). Use the original config (only training.epochs, "
            f"{', '.join(sorted(_RESUME_FREE - {'epochs'}))} may change) or a new --out"
        )


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


def rng_state() -> dict[str, Any]:
    """The global torch, numpy (legacy) and Python RNG states, as tensors and plain values
    (loadable with ``torch.load(..., weights_only=True)``)."""
    # the legacy global numpy RNG is saved on purpose: third-party code may draw from it
    np_state: Any = np.random.get_state()  # noqa: NPY002
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


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the global RNGs from :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
