"""The short-range prior: ZBL repulsion with a switching window per species pair, placed where
the training data ends (this project's recipe).

A model learns nothing below the training set's closest approach d_min(A-B) of a pair; MD that
leaves the training distribution (e.g. Si-rich SiO_x, where Si-Si pairs sit at 1.5-2.2 A while
SiO2 training data holds none below ~2.2 A) then meets whatever the network extrapolates. The
default ZBL window (1-2 A for every pair) is below where such runs fail. Here each pair gets
[r_on, r_off] = [f d_min, d_min] (default f = 0.65: Si-Si [1.44, 2.22] A for d_min 2.22 A), so
the prior is fully on well below the data, off at and above d_min — it changes no prediction
on any training structure — and the strength factor s_AB can be fitted to a reference's
short-range energies (:func:`fit_pair_scale`).

Windows in A, energies in eV.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..base import EdgeModel
from ..blocks import ZBLPrior
from ..build import build_model
from ..config import canonical_pair

DEFAULT_ON_FRACTION = 0.65


def auto_windows(
    pair_min: dict[str, float], species: list[str], on_fraction: float = DEFAULT_ON_FRACTION
) -> dict[str, list[float]]:
    """{pair: [on_fraction * d_min, d_min]} for every pair of ``species`` present in
    ``pair_min`` (the training set's per-pair minimum distances, e.g.
    ``StabilityReference.pair_min_distances``); pairs absent from it are left out (they keep
    the global window). Raises ValueError for on_fraction outside (0, 1)."""
    if not 0.0 < on_fraction < 1.0:
        raise ValueError(f"on_fraction must lie in (0, 1), got {on_fraction}")
    out = {}
    for key, d in pair_min.items():
        try:
            pair = canonical_pair(key, species)
        except ValueError:
            continue  # a species this model does not know
        d = float(d)
        if d > 0:
            out[pair] = [on_fraction * d, d]
    return out


def _current_window(model: EdgeModel, pair: str) -> list[float]:
    table = model.config.get("zbl_pair_windows") or {}
    if isinstance(table, dict) and pair in table:
        return list(table[pair])
    return [float(model.config["zbl_r_on"]), float(model.config["zbl_r_off"])]


def with_short_range_prior(
    model: EdgeModel,
    pair_min: dict[str, float],
    on_fraction: float = DEFAULT_ON_FRACTION,
    scale: dict[str, float] | None = None,
) -> tuple[EdgeModel, list[str]]:
    """Attach the per-pair prior to an already trained model without changing any of its
    predictions on the training data: a pair gets the window [f d_min, d_min] only if its
    current prior is inactive at and above d_min (ZBL off, or its r_off <= d_min); other pairs
    keep their window (changing it would change training-set energies). ``scale``: strength
    factor per pair (default 1). Returns (new model, the pairs whose window changed)."""
    if not isinstance(model, EdgeModel):
        raise TypeError(f"need an eager EdgeModel, got {type(model).__name__}")
    use_zbl = bool(model.config.get("zbl"))
    species = list(model.species)
    wanted = auto_windows(pair_min, species, on_fraction)
    cfg = copy.deepcopy(model.config)
    windows = dict(cfg.get("zbl_pair_windows") or {})
    changed = []
    for pair, window in wanted.items():
        off_now = _current_window(model, pair)[1]
        if not use_zbl or off_now <= window[1] + 1e-12:
            windows[pair] = window
            changed.append(pair)
    cfg["zbl"] = True
    if not use_zbl:  # pairs not in the table must stay off: zero-width far window
        for a_i, a in enumerate(species):
            for b in species[a_i:]:
                windows.setdefault("-".join(sorted((a, b))), None)
        zero = {k for k, v in windows.items() if v is None}
        windows = {k: v for k, v in windows.items() if v is not None}
        scale = {**{k: 0.0 for k in zero}, **(scale or {})}
    cfg["zbl_pair_windows"] = windows
    if scale:
        table = dict(cfg.get("zbl_pair_scale") or {})
        table.update({canonical_pair(k, species): float(v) for k, v in scale.items()})
        cfg["zbl_pair_scale"] = table
    dtype: torch.dtype = model.per_species_shift.dtype  # type: ignore[assignment]
    new = build_model(cfg)  # the same family as ``model``
    new.load_state_dict(model.state_dict())
    return new.to(dtype).train(model.training), changed


def prior_pair_energy(model: EdgeModel, pair: str, r: np.ndarray) -> np.ndarray:
    """The prior's energy (eV) of one isolated A-B pair at separations ``r`` [n] (A): ZBL with
    the model's switching window for that pair and strength 1 (both directed edges)."""
    from ase.data import atomic_numbers

    key = canonical_pair(pair, list(model.species))
    a, b = key.split("-")
    on, off = _current_window(model, key)
    prior = ZBLPrior([atomic_numbers[a], atomic_numbers[b]], on, off).to(torch.float64)
    rt = torch.as_tensor(np.asarray(r, dtype=np.float64))
    zero, one = torch.zeros(len(rt), dtype=torch.long), torch.ones(len(rt), dtype=torch.long)
    with torch.no_grad():
        energy: np.ndarray = (prior(rt, zero, one) + prior(rt, one, zero)).numpy()
    return energy


def fit_pair_scale(
    e_ref: np.ndarray, e_without_prior: np.ndarray, e_prior_unit: np.ndarray
) -> float:
    """Least-squares strength s >= 0 with e_without_prior + s e_prior_unit ~ e_ref over the
    given points (all [n], eV, relative to a common point where the prior is 0, e.g. d_min):
    s = max(0, sum(D P) / sum(P^2)), D = e_ref - e_without_prior. ValueError when the prior
    is zero at every point (no information)."""
    d = np.asarray(e_ref, float) - np.asarray(e_without_prior, float)
    p = np.asarray(e_prior_unit, float)
    if d.shape != p.shape:
        raise ValueError(f"curves differ in shape: {d.shape} vs {p.shape}")
    denom = float(p @ p)
    if denom <= 0.0:
        raise ValueError("the prior is zero at every fitted point: choose points below d_min")
    return max(0.0, float(d @ p) / denom)
