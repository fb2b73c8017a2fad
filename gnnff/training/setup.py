"""Setting up a training run from a validated config: the data (every split read and checked
before anything is written), the model with its fitted energy shift/scale and neighbour
normalisation, and the optimizer with its learning-rate schedule."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from gnnff.io_utils import sha256_file
from gnnff.stability.reference import StabilityReference

from .config import ConfigError
from .data import (
    DataError,
    Structure,
    avg_num_neighbors,
    build_structures,
    check_structures,
    fit_species_shift,
    force_rms,
    isolated_atom_energies,
    read_frames,
    species_in,
    split_index,
)
from .labels import LabelKeys


@dataclass
class TrainingData:
    """The splits' structures (``train``, ``valid`` and ``test`` when given), their files'
    SHA-256, the training data's close-contact reference (a ``StabilityReference`` dict) and
    the model config resolved against the data (``species`` filled in)."""

    structures: dict[str, Sequence[Structure]]
    hashes: dict[str, str]
    stability_reference: dict[str, Any]
    model_config: dict[str, Any]
    fit_neighbors: bool  # avg_num_neighbors is fitted (the config leaves it out)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy's legacy global RNG and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002
    random.seed(seed)


def load_training_data(cfg: dict[str, Any], log: Callable[[str], Any] = print) -> TrainingData:
    """Read and check every split of ``cfg["data"]`` and resolve ``cfg["model"]``; with
    ``data.cache`` set, through the on-disk cache (:func:`_load_cached`, ``log`` gets its
    build/reuse lines).

    Raises ConfigError for a bad model section or a ``model.species`` element absent from
    the training data, DataError (:mod:`gnnff.training.data`) for unreadable or unlabelled
    frames."""
    if cfg["data"].get("cache"):
        return _load_cached(cfg, log)
    d, lo = cfg["data"], cfg["loss"]
    frames = {k: read_frames(d[k], k) for k in ("train", "valid", "test") if d[k]}
    mcfg = dict(cfg["model"])
    fit_neighbors = "avg_num_neighbors" not in mcfg  # an explicit value is kept
    present = species_in(frames["train"])
    if not mcfg.get("species"):
        mcfg["species"] = present
    mcfg = _resolve_model(mcfg)
    _check_unseen(mcfg["species"], present)
    need_stress = lo["stress_weight"] > 0
    keys = LabelKeys.from_config(d)
    structures: dict[str, Sequence[Structure]] = {
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
    hashes = {k: sha256_file(split_index(d[k])[0]) for k in frames}
    # stored in every checkpoint and model file: MD without an explicit reference judges
    # close contacts against the training data
    reference = StabilityReference.from_frames(
        frames["train"],
        with_rdf=False,
        distance_cutoff=float(mcfg["cutoff"]),
        # the file's name, not its path: model files travel to other machines
        source=f"training set {split_index(d['train'])[0].name} (sha256 {hashes['train'][:12]})",
    ).to_dict()
    return TrainingData(structures, hashes, reference, mcfg, fit_neighbors)


def _check_unseen(species: list[str], present: list[str]) -> None:
    unseen = sorted(set(species) - set(present))
    if unseen:
        raise ConfigError(
            f"model.species lists {unseen}, which no training frame contains: the model "
            "would claim to know elements it never saw. Remove them from model.species "
            "or add training data with them"
        )


def _resolve_model(mcfg: dict[str, Any]) -> dict[str, Any]:
    from gnnff.potentials import resolve_model_config

    try:
        resolved: dict[str, Any] = resolve_model_config(mcfg)
    except ValueError as exc:
        raise ConfigError(f"model section: {exc}") from exc
    return resolved


def _load_cached(cfg: dict[str, Any], log: Callable[[str], Any]) -> TrainingData:
    """:func:`load_training_data` through the on-disk cache ``data.cache`` (one subfolder per
    split): the splits are checked frame by frame while the cache is built (the errors of
    ``build_structures``), the label requirements and the close-contact reference come from
    the manifest. Species left out of the config are read from the training cache's manifest
    when it is of the same file, else in one streamed pass over the file."""
    from .edge_cache import read_manifest
    from .edge_cache_build import load_or_build, scan_species

    d, lo = cfg["data"], cfg["loss"]
    root = Path(d["cache"])
    splits = [k for k in ("train", "valid", "test") if d[k]]
    paths = {k: split_index(d[k])[0] for k in splits}
    for k in splits:
        if not paths[k].is_file():
            raise DataError(f"{k} file not found: {paths[k]}")
    hashes = {k: sha256_file(paths[k]) for k in splits}
    mcfg = dict(cfg["model"])
    fit_neighbors = "avg_num_neighbors" not in mcfg
    if not mcfg.get("species"):  # present species: from a cache of this very file if any
        present = None
        try:
            m = read_manifest(root / "train")
            this = (hashes["train"], split_index(d["train"])[1])
            if (m["inputs"]["data_sha256"], m["inputs"]["index"]) == this:
                present = list(m["present_species"])
        except (DataError, KeyError, TypeError):
            pass
        mcfg["species"] = present or scan_species(d["train"], "train")
    mcfg = _resolve_model(mcfg)
    keys = LabelKeys.from_config(d)
    caches = {}
    for k in splits:
        caches[k] = cached = load_or_build(
            root / k,
            d[k],
            mcfg["species"],
            mcfg["cutoff"],
            keys,
            split=k,
            data_sha256=hashes[k],
            log=log,
        )
        m = cached.manifest
        if k == "train":
            _check_unseen(mcfg["species"], m["present_species"])
            check_structures(
                paths[k].name,
                mcfg["cutoff"],
                keys,
                m["num_frames"],
                m["num_edges"] > 0,
                m["labelled"],
                need_energy=lo["energy_weight"] > 0,
                need_forces=lo["forces_weight"] > 0,
                need_stress=lo["stress_weight"] > 0,
            )
    train = caches["train"]
    reference = StabilityReference(
        pair_min_distances=dict(train.manifest["pair_min_distances"]),
        species=sorted(train.manifest["present_species"]),
        n_frames=len(train),
        distance_cutoff=float(mcfg["cutoff"]),
        source=f"training set {paths['train'].name} (sha256 {hashes['train'][:12]})",
    ).to_dict()
    structures: dict[str, Sequence[Structure]] = dict(caches)
    return TrainingData(structures, hashes, reference, mcfg, fit_neighbors)


def build_training_model(
    data: TrainingData,
    init_state: dict[str, torch.Tensor] | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Any:
    """The model of ``data.model_config`` (``zbl_pair_windows: auto`` taken from the training
    data's pair minimum distances) with the per-species energy shift from ``model.e0s``, the
    force-RMS scale and (unless set) the fitted mean neighbour count; ``init_state`` replaces
    the weights (fine-tuning: raises ConfigError when they do not fit the config)."""
    from gnnff.potentials import build_model

    mcfg = data.model_config
    if mcfg.get("zbl_pair_windows") == "auto":  # the prior starts where the data ends
        from gnnff.potentials.analysis.short_range import auto_windows

        mcfg["zbl_pair_windows"] = auto_windows(
            data.stability_reference["pair_min_distances"], mcfg["species"]
        )
    model = build_model(mcfg)
    train = data.structures["train"]
    shift = _e0s(train, mcfg)
    scale = np.full(len(mcfg["species"]), force_rms(train))
    model.set_species_shift_scale(torch.tensor(shift), torch.tensor(scale))
    if data.fit_neighbors:
        model.set_avg_num_neighbors(avg_num_neighbors(train))
    if init_state is not None:
        try:
            model.load_state_dict(init_state)
        except RuntimeError as exc:
            raise ConfigError(
                f"the starting weights do not fit the model config: {exc}. "
                "Use the model section the weights were trained with"
            ) from None
        model.set_avg_num_neighbors(float(cast(torch.Tensor, model.avg_num_neighbors)))
    model.to(device=device, dtype=dtype)
    return model


def fine_tune_start(cfg: dict[str, Any], model_path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of model file ``model_path`` (energy shift and scale included), the
    ``init_state`` of a fine-tuning :class:`~gnnff.training.trainer.Trainer`; sets the file's
    hyperparameters as ``cfg``'s model section, so that the weights fit."""
    from gnnff.potentials import eager_from_file, read_metadata

    cfg["model"] = dict(read_metadata(model_path)["hyperparameters"])
    return dict(eager_from_file(model_path).state_dict())


def _e0s(train: Sequence[Structure], mcfg: dict[str, Any]) -> np.ndarray:
    """The per-species energy shift [S] (eV) from ``model.e0s``."""
    e0s, species = mcfg["e0s"], mcfg["species"]
    if e0s == "average":
        return fit_species_shift(train, len(species))
    if e0s == "isolated_atoms":
        return isolated_atom_energies(train, species)
    return np.array([float(e0s[s]) for s in species])


def decorrelation_layers(dc: dict[str, Any], num_layers: int) -> list[int]:
    """The layer indices ``decorrelation.layers`` names (``all`` or a list; negative counts
    from the end); ConfigError when one is out of range."""
    nl = num_layers
    layers = list(range(nl)) if dc["layers"] == "all" else list(dc["layers"])
    bad = [k for k in layers if not -nl <= k < nl]
    if bad:
        raise ConfigError(
            f"decorrelation.layers {bad} out of range: the model has {nl} layers (0..{nl - 1})"
        )
    return layers


def steps_per_epoch(num_train: int, batch_size: int, world_size: int) -> int:
    """Optimisation steps per epoch (each takes ``world_size x batch_size`` structures);
    ConfigError when a data-parallel rank would get no structure at all."""
    if num_train < world_size:
        raise ConfigError(
            f"{world_size} data-parallel processes but only {num_train} training structures: "
            "every process needs at least one; use fewer processes (torchrun --nproc_per_node)"
        )
    return math.ceil(num_train / (batch_size * world_size))


def build_optimizer(
    model: torch.nn.Module, op: dict[str, Any], epochs: int
) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with ``optim.lr``/``weight_decay`` and the epoch-wise lr schedule (``plateau``:
    ReduceLROnPlateau on the valid loss, ``cosine`` over ``epochs``, ``none``: None)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=op["lr"], weight_decay=op["weight_decay"])
    sched: Any = None
    if op["lr_schedule"] == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            factor=op["plateau_factor"],
            patience=op["plateau_patience"],
            min_lr=op["min_lr"],
        )
    elif op["lr_schedule"] == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs, eta_min=op["min_lr"]
        )
    return optimizer, sched
