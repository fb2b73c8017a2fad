"""Neighbour lists in the model contract's form, computed with vesin."""

from __future__ import annotations

from typing import Any

import numpy as np

from gnnff.errors import UsageError

_MAX_OPEN_SPAN_CUTOFFS = 1e4  # 2e4 cutoffs worked in vesin 0.6.2, 2e5 crashed the process


def neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: Any, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    """Full neighbour list within ``cutoff`` (A).

    positions [N,3] A, cell [3,3] A (rows are lattice vectors; ignored along non-periodic
    directions), pbc [3] bool. Returns ``edge_index`` [2,E] int64 (row 0 = centre i,
    row 1 = neighbour j; both directions listed, self-images included when the cell is small)
    and ``edge_shift`` [E,3] float64, the Cartesian shift with r_ij = pos[j] - pos[i] + shift.
    """
    from vesin import NeighborList

    positions = np.ascontiguousarray(positions, dtype=np.float64)
    if len(positions) == 0:
        return np.zeros((2, 0), dtype=np.int64), np.zeros((0, 3))
    cell, pbc = _vesin_box(positions, cell, pbc, cutoff)
    nl = NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, s = nl.compute(points=positions, box=cell, periodic=pbc, quantities="ijS")
    shift = s.astype(np.float64) @ cell if len(s) else np.zeros((0, 3))
    edge_index = np.stack([i.astype(np.int64), j.astype(np.int64)])
    return edge_index, shift


def _vesin_box(
    positions: np.ndarray, cell: np.ndarray, pbc: Any, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    """(box [3,3], periodic [3] bool) for vesin: checks the periodic cell, and along open
    directions a box side long enough to hold every atom that never brings an image within
    the cutoff. UsageError for a degenerate periodic cell or atoms spread absurdly far."""
    cell = np.ascontiguousarray(cell, dtype=np.float64)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    if pbc.any() and np.linalg.matrix_rank(cell[pbc], tol=1e-9) < pbc.sum():
        axes = "".join("xyz"[k] for k in np.flatnonzero(pbc))
        raise UsageError(
            f"periodic along {axes}, but the cell vectors there are zero or parallel; set the "
            "cell (atoms.set_cell(...)) or make those directions non-periodic (atoms.pbc)"
        )
    if not pbc.all():
        span = positions.max(axis=0) - positions.min(axis=0)
    open_span = 0.0 if pbc.all() else float(span[~pbc].max())
    if open_span > _MAX_OPEN_SPAN_CUTOFFS * cutoff:
        # vesin's cell list dies on a floating-point exception for such boxes
        raise UsageError(
            f"the atoms span {open_span:.3g} A along a non-periodic direction, more than "
            f"{_MAX_OPEN_SPAN_CUTOFFS:g} cutoffs: the structure has come apart (an atom flew "
            "away?); check the positions"
        )
    if not pbc.any():
        cell = np.zeros((3, 3))
    elif not pbc.all():
        # vesin needs a valid box; along open directions give a box side that is long enough
        # to hold every atom and never brings an image within the cutoff.
        cell = cell.copy()
        for k in np.flatnonzero(~pbc):
            if np.linalg.norm(cell[k]) < 1e-12:
                cell[k] = 0.0
                cell[k, k] = 1.0
            norm = cell[k] / np.linalg.norm(cell[k])
            cell[k] = norm * (np.linalg.norm(span) + 2.0 * cutoff + 1.0)
    return cell, pbc


COINCIDENT_TOL = 1e-6  # A: two atoms closer than this sit at the same place


def coincident_pair(
    positions: np.ndarray, edge_index: np.ndarray, edge_shift: np.ndarray
) -> tuple[int, int, float] | None:
    """(i, j, distance in A) of the shortest edge if it is shorter than
    :data:`COINCIDENT_TOL` (two atoms at the same place), else None. Inputs as returned by
    :func:`neighbor_list`."""
    if edge_index.shape[1] == 0:
        return None
    vec = positions[edge_index[1]] - positions[edge_index[0]] + edge_shift
    r2 = np.einsum("ij,ij->i", vec, vec)
    k = int(np.argmin(r2))
    if r2[k] >= COINCIDENT_TOL**2:
        return None
    return int(edge_index[0, k]), int(edge_index[1, k]), float(np.sqrt(r2[k]))


def device_neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: Any, cutoff: float, device: Any
) -> tuple[Any, Any]:
    """:func:`neighbor_list` computed on ``device`` (a torch.device; CUDA or CPU) with
    vesin-torch: the same edges (possibly in another order) as torch tensors on ``device``,
    ``edge_index`` [2,E] int64 and ``edge_shift`` [E,3] float64 (A). The positions are copied
    to the device once; the edges never pass through the host. Raises MissingExtraError
    (``pip install "gnnff[gpu]"``) without vesin-torch, UsageError as :func:`neighbor_list`."""
    import torch

    from gnnff.errors import require_extra

    vesin_torch = require_extra("vesin_torch", "gpu", "the neighbour list on the device")
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    if len(positions) == 0:
        return (
            torch.zeros((2, 0), dtype=torch.int64, device=device),
            torch.zeros((0, 3), dtype=torch.float64, device=device),
        )
    box, periodic = _vesin_box(positions, cell, pbc, cutoff)
    points = torch.as_tensor(positions, device=device)
    box_t = torch.as_tensor(box, device=device)
    nl = vesin_torch.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, s = nl.compute(
        points=points, box=box_t, periodic=torch.as_tensor(periodic, device=device),
        quantities="ijS",
    )  # fmt: skip
    edge_index = torch.stack([i.to(torch.int64), j.to(torch.int64)])
    return edge_index, s.to(torch.float64) @ box_t
