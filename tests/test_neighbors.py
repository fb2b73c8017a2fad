"""The vesin neighbour list equals a brute-force reference on random cells and boundaries."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gnnff.potentials.neighbors import neighbor_list


def brute_force(positions, cell, pbc, cutoff):
    """Every (i, j, shift) with |pos[j] - pos[i] + shift| < cutoff, by enumerating images."""
    inv_heights = np.linalg.norm(np.linalg.inv(cell), axis=0)  # 1 / plane spacings
    reps = [int(np.ceil(cutoff * inv_heights[k])) + 1 if pbc[k] else 0 for k in range(3)]
    out = set()
    n = len(positions)
    for img in itertools.product(*[range(-r, r + 1) for r in reps]):
        shift = np.array(img) @ cell
        for i in range(n):
            d = positions + shift - positions[i]
            r = np.linalg.norm(d, axis=1)
            for j in np.flatnonzero(r < cutoff):
                if i == j and not any(img):
                    continue
                out.add((i, int(j), img))
    return out


def as_set(edge_index, shift, cell):
    imgs = np.rint(shift @ np.linalg.inv(cell)).astype(int) if len(shift) else shift
    return {
        (int(i), int(j), tuple(int(v) for v in s))
        for i, j, s in zip(edge_index[0], edge_index[1], imgs, strict=True)
    }


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 12),
    pbc=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    lengths=st.tuples(*[st.floats(2.0, 9.0)] * 3),
    tilts=st.tuples(*[st.floats(-0.4, 0.4)] * 3),
    cutoff=st.floats(1.0, 4.5),
    seed=st.integers(0, 2**16),
)
def test_matches_brute_force(n, pbc, lengths, tilts, cutoff, seed):
    rng = np.random.default_rng(seed)
    lx, ly, lz = lengths
    cell = np.array([[lx, 0, 0], [tilts[0] * lx, ly, 0], [tilts[1] * lx, tilts[2] * ly, lz]])
    positions = rng.random((n, 3)) @ cell
    pbc = np.array(pbc)
    edge_index, shift = neighbor_list(positions, cell, pbc, cutoff)
    got = as_set(edge_index, shift, cell)
    assert len(got) == edge_index.shape[1], "duplicate edges"
    want = brute_force(positions, cell, pbc, cutoff)

    def off_boundary(edges):  # round-off decides pairs at exactly r == cutoff
        def r(e):
            return np.linalg.norm(positions[e[1]] - positions[e[0]] + np.array(e[2]) @ cell)

        return {e for e in edges if abs(r(e) - cutoff) > 1e-9}

    assert off_boundary(got) == off_boundary(want)
    vec = positions[edge_index[1]] - positions[edge_index[0]] + shift
    assert (np.linalg.norm(vec, axis=1) < cutoff).all()


def test_small_cell_has_many_images():
    cell = np.eye(3) * 2.0
    edge_index, shift = neighbor_list(np.zeros((1, 3)), cell, [True] * 3, 4.5)
    # all lattice points within 4.5 A of the origin except the origin itself
    expected = sum(
        1
        for v in itertools.product(range(-3, 4), repeat=3)
        if 0 < np.linalg.norm(np.array(v) * 2.0) < 4.5
    )
    assert edge_index.shape[1] == expected
