"""The per-pair short-range prior against the reference (Munetoh Tersoff) at short Si-Si range.

    python benchmarks/short_range_prior.py [--models sio2-allegro-baseline,sio2-attn-baseline]
        [--out DIR] [--seed 0]

For each model: attach the prior post hoc
(gnnff.potentials.analysis.short_range.with_short_range_prior: window [0.65 d_min, d_min]
per pair whose current prior ends below the training data; no training-set prediction
changes), then compare with Tersoff

- the pushed pair: a SiO1.10 glass (84 atoms, random packing at 2.2 g/cm^3, Tersoff melt
  3000 K 1.5 ps, quench to 1000 K 1.5 ps, 0.5 ps at 1000 K); the Si-Si pair closest to 2.4 A is
  pushed together symmetrically along its axis, 2.4 -> 1.4 A, all other atoms fixed;
- the isolated Si-Si dimer (20 A box).

The prior's Si-Si strength is then fitted (least squares, s >= 0) to the Tersoff pushed-pair
energies on the points inside the window, and the fitted model is evaluated the same way.
Energies are relative to the pair at 2.4 A (pushed) or 4.9 A (dimer). Output: a table per model
and prior_vs_tersoff.json in --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(1, str(HERE.parent))


def _tersoff_spec() -> dict:
    from gnnff.data.presets import load_preset

    return load_preset("sio2-tersoff")["lammps"]


def sio110_glass(seed: int):
    from gnnff.data.reference_md import ReferenceMD
    from gnnff.data.structures import composition_counts, random_packing

    rng = np.random.default_rng(seed)
    atoms = random_packing(composition_counts({"Si": 1.0, "O": 1.10}, 84), 2.2, 1.6, rng)
    with ReferenceMD(atoms, _tersoff_spec(), 1.0, 100.0) as md:
        md.set_velocities(3000.0, seed + 1)
        md.nvt(3000.0, 3000.0, 1500.0, seed + 2)
        md.nvt(3000.0, 1000.0, 1500.0, seed + 3)
        md.nvt(1000.0, 1000.0, 500.0, seed + 4)
        return md.label()


def pushed_frames(atoms, targets: np.ndarray):
    """Frames with the Si-Si pair closest to targets[0] moved to each target distance."""
    from ase.geometry import get_distances

    si = [k for k, s in enumerate(atoms.get_chemical_symbols()) if s == "Si"]
    vec, dist = get_distances(atoms.positions[si], cell=atoms.cell, pbc=True)
    best, pair = np.inf, None
    for a in range(len(si)):
        for b in range(a + 1, len(si)):
            if abs(dist[a, b] - targets[0]) < best:
                best, pair = abs(dist[a, b] - targets[0]), (a, b)
    i, j = si[pair[0]], si[pair[1]]
    v = vec[pair[0], pair[1]]  # from i to j (minimum image)
    d0 = np.linalg.norm(v)
    u = v / d0
    frames = []
    for t in targets:
        f = atoms.copy()
        f.calc = None
        shift = 0.5 * (t - d0) * u
        f.positions[i] -= shift
        f.positions[j] += shift
        frames.append(f)
    return frames, (i, j, float(d0))


def tersoff_energies(frames) -> np.ndarray:
    from gnnff.data.reference_md import ReferenceMD

    with ReferenceMD(frames[0], _tersoff_spec(), 1.0, 100.0) as md:
        out = []
        for f in frames:
            g = f.copy()
            g.positions = f.positions  # same cell and order as the session's
            out.append(md.evaluate(g)[0])
    return np.asarray(out)


def dimer_tersoff(r: np.ndarray) -> np.ndarray:
    from ase import Atoms

    frames = [
        Atoms("Si2", positions=[[5, 5, 5], [5 + d, 5, 5]], cell=np.eye(3) * 20.0, pbc=True)
        for d in r
    ]
    return tersoff_energies(frames)


def model_energies(path: Path, frames) -> np.ndarray:
    from gnnff.calculators import GNNFFCalculator

    calc = GNNFFCalculator(path, dtype="float64")
    out = []
    for f in frames:
        g = f.copy()
        g.calc = calc
        out.append(g.get_potential_energy())
    return np.asarray(out)


def run(models: list[str], out: Path, seed: int = 0) -> dict:
    from ase import Atoms

    from gnnff.potentials import eager_from_file, export_model, read_metadata
    from gnnff.potentials.analysis.short_range import fit_pair_scale, with_short_range_prior
    from gnnff.potentials.bundled import model_file
    from gnnff.stability.reference import StabilityReference

    targets = np.round(np.arange(2.4, 1.39, -0.05), 3)
    glass = sio110_glass(seed)
    frames, (i, j, d0) = pushed_frames(glass, targets)
    e_ref = tersoff_energies(frames)
    e_ref -= e_ref[0]
    r_dimer = np.round(np.arange(1.4, 4.91, 0.1), 3)
    dimers = [Atoms("Si2", positions=[[0, 0, 0], [d, 0, 0]]) for d in r_dimer]
    e_dimer_ref = dimer_tersoff(r_dimer)
    e_dimer_ref -= e_dimer_ref[-1]
    results = {
        "pushed_pair": {
            "atoms": [i, j],
            "start_distance_A": d0,
            "r": targets.tolist(),
            "tersoff_eV": e_ref.tolist(),
        },
        "dimer": {"r": r_dimer.tolist(), "tersoff_eV": e_dimer_ref.tolist()},
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            path = model_file(name)
            meta = read_metadata(path)
            pair_min = StabilityReference.from_model_metadata(meta).pair_min_distances
            base = eager_from_file(path)
            prior, changed = with_short_range_prior(base, pair_min)
            p_prior = Path(tmp) / f"{name}_prior.pt"
            export_model(prior, p_prior, training_summary=meta.get("training"))
            e_base = model_energies(path, frames)
            e_prior = model_energies(p_prior, frames)
            e_base -= e_base[0]
            e_prior -= e_prior[0]
            d_min = pair_min["Si-Si"]
            inside = (targets < d_min) & (targets >= 0.65 * d_min)
            s = fit_pair_scale(e_ref[inside], e_base[inside], (e_prior - e_base)[inside])
            fitted, _ = with_short_range_prior(base, pair_min, scale={"Si-Si": s})
            p_fit = Path(tmp) / f"{name}_fit.pt"
            export_model(fitted, p_fit, training_summary=meta.get("training"))
            e_fit = model_energies(p_fit, frames)
            e_fit -= e_fit[0]
            dim = {}
            for key, p in (("model", path), ("prior", p_prior), ("fitted", p_fit)):
                e = model_energies(p, dimers)
                dim[key] = (e - e[-1]).tolist()
            results["models"][name] = {
                "pair_min_A": pair_min,
                "changed_pairs": changed,
                "window_Si_Si_A": [0.65 * d_min, d_min],
                "fitted_Si_Si_scale": s,
                "pushed_eV": {
                    "model": e_base.tolist(),
                    "prior": e_prior.tolist(),
                    "fitted": e_fit.tolist(),
                },
                "dimer_eV": dim,
            }
    out.mkdir(parents=True, exist_ok=True)
    (out / "prior_vs_tersoff.json").write_text(json.dumps(results, indent=1))
    return results


def report(res: dict) -> str:
    r = np.asarray(res["pushed_pair"]["r"])
    ref = np.asarray(res["pushed_pair"]["tersoff_eV"])
    rd = np.asarray(res["dimer"]["r"])
    dref = np.asarray(res["dimer"]["tersoff_eV"])
    d0 = res["pushed_pair"]["start_distance_A"]
    lines = [f"pushed Si-Si pair in a SiO1.10 glass (start {d0:.2f} A), E(r) - E(2.4 A) in eV:"]
    pick = [k for k, x in enumerate(r) if round(x, 2) in (2.2, 2.0, 1.8, 1.7, 1.6, 1.5, 1.4)]
    lines.append("model / r (A)            " + "".join(f"{r[k]:>8.2f}" for k in pick))
    lines.append("Tersoff                  " + "".join(f"{ref[k]:>8.2f}" for k in pick))
    for name, m in res["models"].items():
        for key in ("model", "prior", "fitted"):
            e = np.asarray(m["pushed_eV"][key])
            label = {
                "model": name,
                "prior": "  + prior (s = 1)",
                "fitted": f"  + prior (s = {m['fitted_Si_Si_scale']:.2f})",
            }[key]
            lines.append(f"{label:25s}" + "".join(f"{e[k]:>8.2f}" for k in pick))
        err = {
            k: float(np.sqrt(np.mean((np.asarray(m["pushed_eV"][k]) - ref) ** 2)))
            for k in ("model", "prior", "fitted")
        }
        lines.append(
            "  RMS vs Tersoff over 1.4-2.4 A: "
            + ", ".join(f"{k} {v:.2f} eV" for k, v in err.items())
            + f"; pairs changed {m['changed_pairs']}"
        )
    dpick = [k for k, x in enumerate(rd) if round(x, 1) in (1.6, 1.8, 2.0, 2.2, 2.4)]
    lines.append("isolated Si-Si dimer, E(r) - E(4.9 A) in eV:")
    lines.append("model / r (A)            " + "".join(f"{rd[k]:>8.2f}" for k in dpick))
    lines.append("Tersoff                  " + "".join(f"{dref[k]:>8.2f}" for k in dpick))
    for name, m in res["models"].items():
        for key in ("model", "prior", "fitted"):
            e = np.asarray(m["dimer_eV"][key])
            lines.append(f"{name + ' ' + key:25s}" + "".join(f"{e[k]:>8.2f}" for k in dpick))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="sio2-allegro-baseline,sio2-attn-baseline")
    p.add_argument("--out", default="prior_vs_tersoff")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    res = run([m for m in args.models.split(",") if m], Path(args.out), args.seed)
    print(report(res))


if __name__ == "__main__":
    main()
