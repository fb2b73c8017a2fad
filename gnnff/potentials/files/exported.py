"""The exported TorchScript module: the model contract's ``forward``
(``gnnff.potentials.contract``, docs/model_contract.md) around an eager ``EdgeModel``."""

import torch

from ..base import EdgeModel

__all__ = ["ExportedModel"]


class ExportedModel(torch.nn.Module):
    """The contract's forward: energies, forces, virial and per-atom virial from one autograd
    pass through the edge vectors.

    ``max_block_edges`` (0 = off) bounds memory: the centres are split into blocks of at most
    about that many edges (a centre's edges always stay together, so a block can exceed it by
    one centre's neighbours) and each block's energy is differentiated on its own, its graph
    freed before the next. The potential is strictly local (an atom's energy depends only on its
    own edges), so the result equals the one-pass result up to summation order; peak memory
    scales with the block instead of the system. Set it on a loaded module
    (``module.max_block_edges = 50000``) or through ``GNNFFCalculator(max_block_edges=...)``."""

    def __init__(self, model: EdgeModel) -> None:
        super().__init__()
        self.model = model
        self.max_block_edges: int = 0

    def _blocked_gradient(
        self,
        vec: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        n: int,
        n_local: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(atomic energies [n_local], dE/dvec [E,3]) block by block."""
        centre = edge_index[0]
        shift: torch.Tensor = self.model.per_species_shift  # type: ignore[assignment]
        base = shift.index_select(0, species)
        counts = torch.bincount(centre, minlength=n)
        start = torch.cumsum(counts, 0) - counts
        block_of_centre = torch.div(start, self.max_block_edges, rounding_mode="floor")
        edge_block = block_of_centre.index_select(0, centre)
        g = torch.zeros_like(vec)
        atomic = base.clone()
        n_blocks = int(edge_block.max()) + 1
        for b in range(n_blocks):
            idx = torch.nonzero(edge_block == b).reshape(-1)
            if idx.numel() == 0:
                continue
            vb = vec.index_select(0, idx).requires_grad_(True)
            ab, _ = self.model.energy_from_edges(
                vb, species, edge_index.index_select(1, idx), n, False
            )
            part = (ab - base)[:n_local]
            eb = part.sum()
            if eb.requires_grad:
                gb = torch.autograd.grad([eb], [vb], allow_unused=True)[0]
                if gb is not None:
                    g = g.index_copy(0, idx, gb)
            atomic = atomic + torch.cat(
                [part.detach(), torch.zeros(n - n_local, dtype=part.dtype, device=part.device)]
            )
        return atomic[:n_local], g

    def forward(
        self,
        pos: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
        n_local: int,
    ) -> dict[str, torch.Tensor]:
        # mypy sees registered buffers as Tensor | Module (potentials.model is not yet strict)
        dtype: torch.dtype = self.model.per_species_shift.dtype  # type: ignore[assignment]
        pos = pos.to(dtype)
        edge_shift = edge_shift.to(dtype)
        n = pos.shape[0]
        if n_local < 0 or n_local > n:
            raise ValueError("n_local must lie in [0, N]; got " + str(n_local))
        centre = edge_index[0]
        neighbor = edge_index[1]
        if edge_index.shape[1] > 0 and int(centre.max()) >= n_local:
            raise ValueError("edge_index row 0 (centres) must be < n_local")
        if not torch.is_grad_enabled():
            raise RuntimeError(
                "gnnff models compute forces with autograd: call them with gradients enabled "
                "(not inside torch.no_grad() or torch.inference_mode())"
            )
        vec = pos.detach().index_select(0, neighbor) - pos.detach().index_select(0, centre)
        vec = vec + edge_shift.detach()
        g: torch.Tensor | None = None
        if 0 < self.max_block_edges < vec.shape[0]:
            atomic, g = self._blocked_gradient(vec, species, edge_index, n, n_local)
            energy = atomic.sum()
        else:
            vec = vec.requires_grad_(True)
            atomic, _ = self.model.energy_from_edges(vec, species, edge_index, n, False)
            atomic = atomic[:n_local]
            energy = atomic.sum()
            if energy.requires_grad:
                g = torch.autograd.grad([energy], [vec], allow_unused=True)[0]
        if g is None:
            g = torch.zeros_like(vec)
        vec = vec.detach()
        forces = torch.zeros((n, 3), dtype=dtype, device=pos.device)
        forces = forces.index_add(0, centre, g).index_add(0, neighbor, -g)
        edge_virial = -vec.unsqueeze(-1) * g.unsqueeze(-2)  # [E, 3, 3]
        half = 0.5 * edge_virial
        atomic_virial = torch.zeros((n, 3, 3), dtype=dtype, device=pos.device)
        atomic_virial = atomic_virial.index_add(0, centre, half).index_add(0, neighbor, half)
        return {
            "energy": energy.detach(),
            "atomic_energy": atomic.detach(),
            "forces": forces,
            "virial": edge_virial.sum(0),
            "atomic_virial": atomic_virial,
        }
