"""Pair distances, per-species-pair minimum distances and radial distribution functions.

All distances come from one vesin half neighbour list (``full_list=False``), so each unordered
pair (including periodic self-images) appears once. Units: Angstrom.

RDF normalisation (this project's convention):
    g_ab(r_k) = V * n_ab(k) / (N_a * N_b * V_k),  V_k = 4/3 pi (r_{k+1}^3 - r_k^3)
where n_ab(k) counts ordered pairs (i of species a, j of species b) in shell k (periodic images
included) and the total g is the same with all atoms as one species. For a fully periodic cell
V is the cell volume and g(r) -> 1 at large r for an uncorrelated system. For open boundaries
there is no well-defined volume: V is the cell volume when the cell has one, otherwise the
volume of the atoms' bounding box (each side at least 1 A). g(r) then does not tend to 1 (atoms
near the surface have fewer neighbours); it is still a consistent fingerprint as long as the
run and its reference use the same boundaries, which is all the RDF criterion needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase.data import chemical_symbols


def pair_key(a: str, b: str) -> str:
    """Canonical name of a species pair: symbols sorted alphabetically, e.g. ``"O-Si"``."""
    return "-".join(sorted((a, b)))


def symbols_of(numbers: np.ndarray) -> list[str]:
    """Sorted list of the distinct chemical symbols in ``numbers`` [N]."""
    return sorted({chemical_symbols[int(z)] for z in np.unique(numbers)})


def all_pair_keys(symbols: list[str]) -> list[str]:
    """Every unordered species pair of ``symbols``, sorted."""
    keys = {pair_key(a, b) for a in symbols for b in symbols}
    return sorted(keys)


def half_pair_distances(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every unordered pair closer than ``cutoff`` (A): returns i [P], j [P], distance [P] (A).

    positions [N,3] A, cell [3,3] A (rows; ignored along open directions), pbc [3] bool.
    """
    from vesin import NeighborList

    positions = np.ascontiguousarray(positions, dtype=np.float64)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    box = np.array(cell, dtype=np.float64).reshape(3, 3)
    # vesin handles mixed boundaries; lattice vectors along open directions are not used,
    # and a zero row keeps them from being misread as periodic lengths.
    box[~pbc] = 0.0
    if len(positions) < 2 and not pbc.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    nl = NeighborList(cutoff=float(cutoff), full_list=False)
    i, j, d = nl.compute(points=positions, box=box, periodic=pbc, quantities="ijd")
    return i.astype(np.int64), j.astype(np.int64), np.asarray(d, dtype=np.float64)


def rdf_volume(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> float:
    """Volume (A^3) used to normalise g(r); see the module docstring for open boundaries."""
    vol = abs(float(np.linalg.det(np.asarray(cell, dtype=np.float64).reshape(3, 3))))
    if vol > 1e-6:
        return vol
    span = np.ptp(np.asarray(positions, dtype=np.float64), axis=0) if len(positions) else 0.0
    return float(np.prod(np.maximum(span, 1.0)))


def rdf_edges(rmax: float, nbins: int) -> np.ndarray:
    """Bin edges [nbins+1] (A) on [0, rmax]."""
    return np.linspace(0.0, float(rmax), int(nbins) + 1)


@dataclass
class FrameGeometry:
    """What one frame contributes to the stability checks.

    pair_min: minimum distance (A) of each species pair found within the search radius (pairs
    with no neighbour inside the radius are absent). rdf_total [nbins] and rdf_partial
    {pair: [nbins]} are None/empty when no RDF was asked for.
    """

    pair_min: dict[str, float]
    rdf_total: np.ndarray | None = None
    rdf_partial: dict[str, np.ndarray] = field(default_factory=dict)


def frame_geometry(
    numbers: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    radius: float,
    rdf_rmax: float | None = None,
    rdf_nbins: int = 0,
) -> FrameGeometry:
    """Per-pair minimum distances within ``radius`` and, if ``rdf_rmax`` is given, the total
    and partial g(r) on ``rdf_nbins`` bins over [0, rdf_rmax], all from one neighbour list."""
    numbers = np.asarray(numbers, dtype=np.int64)
    cutoff = max(float(radius), float(rdf_rmax or 0.0))
    i, j, d = half_pair_distances(positions, cell, pbc, cutoff)

    symbols = symbols_of(numbers)
    sym_index = {s: k for k, s in enumerate(symbols)}
    ns = len(symbols)
    species = np.array([sym_index[chemical_symbols[int(z)]] for z in numbers], dtype=np.int64)
    si, sj = species[i], species[j]
    lo, hi = np.minimum(si, sj), np.maximum(si, sj)
    pair_id = lo * ns + hi  # symbols are sorted, so (lo, hi) is the canonical key order

    pair_min: dict[str, float] = {}
    within = d < radius
    if np.any(within):
        mins = np.full(ns * ns, np.inf)
        np.minimum.at(mins, pair_id[within], d[within])
        for pid in np.flatnonzero(np.isfinite(mins)):
            a, b = symbols[pid // ns], symbols[pid % ns]
            pair_min[pair_key(a, b)] = float(mins[pid])

    geom = FrameGeometry(pair_min=pair_min)
    if rdf_rmax is None or rdf_nbins <= 0:
        return geom

    edges = rdf_edges(rdf_rmax, rdf_nbins)
    dr = edges[1] - edges[0]
    in_range = d < rdf_rmax
    bins = np.minimum((d[in_range] / dr).astype(np.int64), rdf_nbins - 1)
    counts = np.bincount(
        pair_id[in_range] * rdf_nbins + bins, minlength=ns * ns * rdf_nbins
    ).reshape(ns * ns, rdf_nbins)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    volume = rdf_volume(positions, cell, pbc)
    n_of = np.bincount(species, minlength=ns).astype(np.float64)
    n_total = float(len(numbers))

    for a in range(ns):
        for b in range(a, ns):
            c = counts[a * ns + b].astype(np.float64)
            ordered = 2.0 * c if a == b else c
            g = volume * ordered / (n_of[a] * n_of[b] * shell)
            geom.rdf_partial[pair_key(symbols[a], symbols[b])] = g
    total_ordered = 2.0 * counts.sum(axis=0).astype(np.float64)
    geom.rdf_total = volume * total_ordered / (n_total * n_total * shell)
    return geom


def rdf_distance(g: np.ndarray, g_ref: np.ndarray, rmax: float) -> float:
    """Integral of |g - g_ref| dr over [0, rmax] (A), rectangle rule on the common bins."""
    g = np.asarray(g, dtype=np.float64)
    g_ref = np.asarray(g_ref, dtype=np.float64)
    if g.shape != g_ref.shape:
        raise ValueError(
            f"RDF grids differ ({g.shape[0]} vs {g_ref.shape[0]} bins): build the reference "
            "with the same rdf_rmax and rdf_nbins as the run"
        )
    return float(np.sum(np.abs(g - g_ref)) * (float(rmax) / len(g)))
