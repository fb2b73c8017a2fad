"""What a softmax backend does to an attention model: its own logits, energies and forces.

Used by ``gnnff lut report --model M --data D``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gnnff.errors import UsageError
from gnnff.segment_ops import float_segment_softmax

from ..files.exported import ExportedModel
from ..files.load import eager_from_file
from ..neighbors import neighbor_list

BACKENDS: tuple[tuple[str, int | None], ...] = (
    ("float", None), ("lut-rexp", 8), ("lut-2d", 8), ("lut-rexp", 16), ("lut-2d", 16),
)  # fmt: skip


class _LogitRecorder(torch.nn.Module):
    """Float softmax that keeps a copy of every call's logits and segments (eager only)."""

    def __init__(self, store: list[Any]) -> None:
        super().__init__()
        self.store = store

    def forward(
        self, logits: torch.Tensor, segment: torch.Tensor, num_segments: int
    ) -> torch.Tensor:
        self.store.append((logits.detach().double(), segment.detach(), int(num_segments)))
        return float_segment_softmax(logits, segment, num_segments)


def _inputs(
    atoms: Any, species: list[str], cutoff: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    idx = {s: k for k, s in enumerate(species)}
    ei, sh = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    return (
        torch.tensor(atoms.positions, dtype=dtype),
        torch.tensor([idx[s] for s in atoms.get_chemical_symbols()]),
        torch.from_numpy(ei),
        torch.tensor(sh, dtype=dtype),
        len(atoms),
    )


def attention_logits(
    model_path: str | Path, frames: list[Any]
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """All attention logits of the model on ``frames`` (every layer and head), as one segment
    problem: (logits [E] float64, segment [E] int64, number of segments)."""
    model = eager_from_file(model_path)
    holders = model.softmax_holders()
    if not holders:
        raise UsageError(f"{model_path} is a {model.family!r} model: it has no attention")
    store: list[Any] = []
    for holder in holders.values():
        holder.softmax = _LogitRecorder(store)
    dtype = next(model.parameters()).dtype
    for atoms in frames:
        with torch.no_grad():
            pos, sp, ei, sh, n = _inputs(atoms, model.species, model.cutoff, dtype)
            vec = pos[ei[1]] - pos[ei[0]] + sh
            model.energy_from_edges(vec, sp, ei, n, False)
    logits, segments, offset = [], [], 0
    for lg, seg, g in store:
        logits.append(lg)
        segments.append(seg + offset)
        offset += g
    return torch.cat(logits), torch.cat(segments), offset


def backend_errors(
    model_path: str | Path,
    frames: list[Any],
    backends: tuple[tuple[str, int | None], ...] = BACKENDS,
) -> list[dict[str, Any]]:
    """Energy (meV/atom) and force (meV/A) MAE against the labels of ``frames``, and the
    deviation from the float backend, for the same weights under each softmax backend."""
    model = eager_from_file(model_path)
    dtype = next(model.parameters()).dtype
    inputs = [_inputs(a, model.species, model.cutoff, dtype) for a in frames]
    rows, ref = [], None
    for name, bits in backends:
        model.set_softmax_backend(name, bits)
        wrapped = ExportedModel(model.to(dtype))
        e_pred, f_pred = [], []
        for inp in inputs:
            out = wrapped(*inp)
            e_pred.append(float(out["energy"]))
            f_pred.append(out["forces"].detach().double().numpy())
        n_at = np.array([len(a) for a in frames])
        e_ref = np.array([a.get_potential_energy() for a in frames])
        f_all, f_lab = np.concatenate(f_pred), np.concatenate([a.get_forces() for a in frames])
        e = np.array(e_pred)
        if ref is None:
            ref = (e, f_all)
        rows.append(
            {
                "backend": name,
                "bits": bits,
                "energy_mae": float(np.mean(np.abs(e - e_ref) / n_at) * 1000),
                "force_mae": float(np.mean(np.abs(f_all - f_lab)) * 1000),
                "max_denergy_vs_float": float(np.max(np.abs(e - ref[0]) / n_at) * 1000),
                "max_dforce_vs_float": float(np.max(np.abs(f_all - ref[1])) * 1000),
            }
        )
    return rows
