"""The residual-stream gauge on the bundled models: whiten x_l by a function-preserving
reparameterisation and see which correlation figures move.

    python benchmarks/gauge_check.py [--data gnnff/potentials/pretrained/sio2_test_small.extxyz]

For each bundled model (float64): the diagnostics of gnnff.training.diagnostics on the data,
then ZCA whitening of the residual stream (T = C^-1/2 of the covariance pooled over layers and
edges of the data) applied with gnnff.potentials.allegro.reparam.reparameterize_residual_stream, the
largest force change it causes (eV/A), and the diagnostics again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(1, str(HERE.parent))

MODELS = (
    "sio2-allegro-baseline",
    "sio2-allegro-decorrelated",
    "sio2-attn-baseline",
    "sio2-attn-decorrelated",
)


def _edges(model, atoms):
    import torch

    from gnnff.potentials import neighbor_list

    ei, sh = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, model.cutoff)
    pos = torch.tensor(atoms.positions)
    ei_t = torch.as_tensor(ei)
    sh_t = torch.as_tensor(sh, dtype=torch.float64)
    sp = torch.tensor([model.species.index(s) for s in atoms.get_chemical_symbols()])
    return pos, sp, ei_t, sh_t


def diagnose(model, frames) -> tuple[dict, list]:
    import torch

    from gnnff.training.diagnostics import FeatureDiagnostics

    diag = FeatureDiagnostics(model.num_layers, model.num_species)
    forces, residual = [], []
    from gnnff.potentials import ExportedModel

    em = ExportedModel(model)
    for atoms in frames:
        pos, sp, ei, sh = _edges(model, atoms)
        vec = pos[ei[1]] - pos[ei[0]] + sh
        with torch.no_grad():
            _, feats = model.energy_from_edges(vec, sp, ei, len(atoms), True, "all")
        diag.update(list(feats), sp, ei)
        residual += list(feats[: model.num_layers])
        forces.append(em(pos, sp, ei, sh, len(atoms))["forces"].detach())
    return diag.summary(), forces, residual


def main() -> None:
    import ase.io
    import torch

    from gnnff.potentials import eager_from_file
    from gnnff.potentials.allegro.reparam import reparameterize_residual_stream, zca_whitening
    from gnnff.potentials.bundled import model_file

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data", default=str(HERE.parent / "gnnff/potentials/pretrained/sio2_test_small.extxyz")
    )
    p.add_argument("--models", default=",".join(MODELS))
    args = p.parse_args()
    frames = ase.io.read(args.data, index=":")
    print(
        f"{'model':24s} {'residual_stream_corr':>22s} {'feature_corr':>14s} "
        f"{'tensor_norm_corr':>17s} {'max |dF| eV/A':>14s}"
    )
    for name in args.models.split(","):
        model = eager_from_file(model_file(name)).to(torch.float64)
        d0, f0, residual = diagnose(model, frames)
        t = zca_whitening([torch.cat(residual)])
        new = reparameterize_residual_stream(model, t)
        d1, f1, _ = diagnose(new, frames)
        df = max(float((a - b).abs().max()) for a, b in zip(f0, f1, strict=True))
        for label, d, dfs in ((name, d0, ""), ("  whitened", d1, f"{df:.1e}")):
            print(
                f"{label:24s} {d['residual_stream_corr']:22.4f} {d['feature_corr']:14.4f} "
                f"{d['tensor_norm_corr']:17.4f} {dfs:>14s}"
            )


if __name__ == "__main__":
    main()
