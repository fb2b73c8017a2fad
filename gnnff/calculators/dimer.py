"""Short-range check of a model: the energy of every species pair as an isolated dimer.

Atoms that fuse in MD ("close contact") usually meet a model with no repulsive wall at short
range. E(r) of two atoms in vacuum is far from any training structure, so it is a coarse probe,
but a curve that falls as r shrinks below the training data's closest approach shows where a
model has nothing that pushes atoms apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms

from gnnff.errors import require_extra


def dimer_curves(calc, species: list[str], r: np.ndarray) -> dict[str, np.ndarray]:
    """E(r) (eV) of each unordered species pair (``"O-Si"``) in vacuum at separations ``r`` (A),
    relative to the pair's energy at the largest r."""
    from gnnff.stability.geometry import pair_key

    curves = {}
    for a_i, a in enumerate(species):
        for b in species[a_i:]:
            e = []
            for d in r:
                atoms = Atoms([a, b], positions=[[0.0, 0.0, 0.0], [float(d), 0.0, 0.0]])
                atoms.calc = calc
                e.append(atoms.get_potential_energy())
            e = np.asarray(e)
            curves[pair_key(a, b)] = e - e[np.argmax(r)]
    return curves


def wall_heights(
    curves: dict[str, np.ndarray], r: np.ndarray, pair_min: dict[str, float], factor: float = 0.75
) -> dict[str, float]:
    """E(factor x d_min) - E(d_min) (eV) per pair, d_min = the training data's closest approach
    (linear interpolation on the curve): > 0 means the model pushes atoms apart below d_min,
    <= 0 that nothing stops them from reaching the close-contact threshold; nan when ``r`` does
    not cover [factor x d_min, d_min]."""
    order = np.argsort(r)
    out = {}
    for key, e in curves.items():
        if key not in pair_min:
            continue
        d = pair_min[key]
        if factor * d < r.min() or d > r.max():  # not sampled: no extrapolation
            out[key] = float("nan")
            continue
        out[key] = float(
            np.interp(factor * d, r[order], e[order]) - np.interp(d, r[order], e[order])
        )
    return out


def plot_dimers(
    curves: dict[str, np.ndarray],
    r: np.ndarray,
    pair_min: dict[str, float],
    path: str | Path,
    title: str = "",
    reference: dict[str, np.ndarray] | None = None,
    reference_label: str = "reference",
) -> None:
    """E(r) per pair (solid; the model's), the reference's curves dashed in the same colour
    when given, and the training data's d_min / close-contact distances."""
    require_extra("matplotlib", "plots", "dimer.png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    keys = list(dict.fromkeys([*curves, *(reference or {})]))
    for k, key in enumerate(keys):
        if key in curves:
            ax.plot(r, curves[key], color=f"C{k}", label=key)
        if reference and key in reference:
            ax.plot(r, reference[key], color=f"C{k}", ls="--", lw=1.2,
                    label=f"{key} ({reference_label})")  # fmt: skip
        if key in pair_min:
            ax.axvline(pair_min[key], color=f"C{k}", ls="-.", lw=0.8)
            ax.axvline(0.75 * pair_min[key], color=f"C{k}", ls=":", lw=0.8)
    lo = min(float(np.min(e)) for e in [*curves.values(), *(reference or {}).values()])
    ax.set_ylim(max(lo - 1.0, -50.0), 20.0)
    ax.set_xlabel("separation r (A)")
    ax.set_ylabel("E(r) - E(r_max) (eV)")
    ax.set_title(title or "isolated dimers", fontsize=9)
    handles, _ = ax.get_legend_handles_labels()
    if pair_min:
        handles += [
            plt.Line2D([], [], color="grey", ls="-.", lw=0.8, label="training d_min"),
            plt.Line2D([], [], color="grey", ls=":", lw=0.8, label="0.75 d_min (close contact)"),
        ]
    ax.legend(handles=handles, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
