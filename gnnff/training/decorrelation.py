"""The feature-decorrelation loss (this project's own definition, see docs below).

Definition (ours, documented in ``docs/definitions.md``; not taken from a paper):
for every interaction layer ``l`` take the scalar edge features ``X_l`` of the batch
([E, C]: E edges, C channels), optionally a random subsample of at most ``M`` edges (the same
edges for every layer). Standardize each channel over the edges,
``Z = (X - mean) / (std + eps)`` with the population std (divide by E), so that
``R = Z^T Z / E`` is the Pearson correlation matrix. Then

    L_corr = mean_l  sum_{a != b} R_ab^2 / (C (C - 1))

0 means fully decorrelated channels, 1 means all channels identical up to sign. A channel that
is constant over the edges has std 0, hence Z = 0, and contributes nothing.

Variants (``decorrelation.variant``; which features X_l are, all from the same forward pass):

- ``residual``: the scalar residual stream x_l (the original loss). Caution: x_l is a gauge —
  any invertible change of basis can be absorbed into the weights without changing the
  potential (:mod:`gnnff.potentials.allegro.reparam`), so this loss need not constrain the
  potential.
- ``post_activation``: the post-SiLU last hidden layer of every layer's latent MLP, pooled over
  all edges (fixed up to a permutation of units, which L_corr ignores).
- ``per_pair``: the same post-activation features, L_corr computed within each ordered species
  pair (centre, neighbour) with at least ``MIN_PAIR_EDGES`` sampled edges, averaged over those
  pairs with equal weight (correlation induced by the species mix does not count).
- ``tensor``: per-channel invariants of the tensor track, the norms |V_l| of every l > 0 block
  of the equivariant features entering each layer's tensor product (channels x l).
"""

from __future__ import annotations

import torch

EPS = 1e-6
"""The ``eps`` added to each channel's std (feature units)."""

VARIANTS = ("residual", "post_activation", "per_pair", "tensor")
"""Valid ``decorrelation.variant`` values."""

MIN_PAIR_EDGES = 8
"""Fewest sampled edges of a species pair for it to enter the ``per_pair`` loss."""

AUTO_EDGE_BUDGET = 4096 * 32 * 32
"""``max_edges: auto`` keeps the loss's cost (M edges x C^2 channel pairs, the Gram matrix)
at that of 4096 edges of 32 channels: M = clamp(AUTO_EDGE_BUDGET / C^2, 512, 4096)."""


def auto_max_edges(channels: int) -> int:
    """The ``max_edges: auto`` edge subsample for features of ``channels`` channels: 4096 for
    32 channels or fewer, 1024 for 64 (the post-activation width of the default model), never
    below 512. The bias of a squared correlation estimated from M samples is ~(1 - rho^2)^2 / M
    (< 2e-3 at M = 512), small against the L_corr values the loss acts on (0.1-0.7); the
    ``per_pair`` loss splits M over the species pairs (~250 edges each of 4 pairs at M = 1024:
    bias < 4e-3)."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    return int(min(4096, max(512, AUTO_EDGE_BUDGET // (channels * channels))))


_FEATURE_KIND = {
    "residual": "residual",
    "post_activation": "post_activation",
    "per_pair": "post_activation",
    "tensor": "tensor",
}


def variant_feature_kind(variant: str) -> str:
    """The ``feature_kind`` of ``GNNFFModel.energy_from_edges`` a loss variant needs."""
    if variant not in _FEATURE_KIND:
        raise ValueError(
            f"unknown decorrelation variant {variant!r} (valid: {', '.join(VARIANTS)})"
        )
    return _FEATURE_KIND[variant]


def edge_pair_ids(
    species: torch.Tensor, edge_index: torch.Tensor, num_species: int
) -> torch.Tensor:
    """Ordered species-pair id of every edge, ``s_centre * num_species + s_neighbour``, [E]."""
    centre = species.index_select(0, edge_index[0])
    return centre * num_species + species.index_select(0, edge_index[1])


def _batched_correlation(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Pearson correlation of the channels of each of L stacked feature sets x [L, M, C];
    returns [L, C, C]. One batched matmul; elementwise work only on [L, C, C]:
    R = S / ((s + eps)(s + eps)^T) with S the covariance and s = sqrt(diag S)."""
    centred = x - x.mean(dim=1, keepdim=True)
    cov = torch.bmm(centred.transpose(1, 2), centred) / x.shape[1]
    # clamp: sqrt'(0) is infinite, and a constant channel must give a zero gradient, not NaN
    d = torch.diagonal(cov, dim1=1, dim2=2).clamp_min(1e-30).sqrt() + eps
    return cov / (d.unsqueeze(2) * d.unsqueeze(1))


def correlation_matrix(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Pearson correlation ``R = Z^T Z / E`` of the channels of ``x`` [E, C]; returns [C, C]."""
    if x.dim() != 2:
        raise ValueError(f"features must be [E, C], got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        return torch.zeros(x.shape[1], x.shape[1], dtype=x.dtype, device=x.device)
    return _batched_correlation(x.unsqueeze(0), eps)[0]


def offdiag_mean_square(r: torch.Tensor) -> torch.Tensor:
    """``sum_{a != b} R_ab^2 / (C (C - 1))`` for a [C, C] matrix (0 for C < 2)."""
    c = r.shape[0]
    if c < 2:
        return r.new_zeros(())
    total = r.pow(2).sum() - torch.diagonal(r).pow(2).sum()
    return total / (c * (c - 1))


def resolve_max_edges(max_edges: int | str | None, features: list[torch.Tensor]) -> int | None:
    """The edge subsample size for ``features`` (per-layer [E, C_l]): ``max_edges`` itself, or
    for "auto" :func:`auto_max_edges` of the widest layer. ValueError for another string."""
    if max_edges == "auto":
        if not features:
            raise ValueError("no features: cannot size the 'auto' edge subsample")
        return auto_max_edges(max(int(x.shape[-1]) for x in features))
    if isinstance(max_edges, str):
        raise ValueError(f"max_edges must be an integer, None or 'auto', got {max_edges!r}")
    return max_edges


def subsample_edges(
    num_edges: int,
    max_edges: int | None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor | None:
    """Indices of a random subset of at most ``max_edges`` edges, or None to keep all."""
    if max_edges is None or max_edges <= 0 or num_edges <= max_edges:
        return None
    perm = torch.randperm(num_edges, generator=generator)
    return perm[:max_edges].to(device)


def _stacked_lcorr(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-layer L_corr of stacked features x [L, M, C]; returns [L]. Batched so that the loss
    (and its backward under the trainer's create_graph) is a few dozen small kernels per step,
    not a few per layer."""
    c = x.shape[2]
    if c < 2:
        return x.new_zeros(x.shape[0])
    r = _batched_correlation(x, eps)
    diag = torch.diagonal(r, dim1=1, dim2=2)
    return (r.pow(2).sum(dim=(1, 2)) - diag.pow(2).sum(dim=1)) / (c * (c - 1))


def decorrelation_loss(
    features: list[torch.Tensor],
    max_edges: int | str | None = 4096,
    generator: torch.Generator | None = None,
    eps: float = EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``L_corr`` of a list of per-layer edge features (each [E, C_l]).

    Returns ``(L_corr [], per_layer [L])``; differentiable with respect to the features. The
    random edge subsample (when E > max_edges) draws from ``generator`` only, so the global RNG
    (data shuffling, dropout) is unaffected by switching the loss on or off.
    """
    if not features:
        raise ValueError("decorrelation_loss needs at least one layer of features")
    n_edges = features[0].shape[0]
    for x in features:
        if x.dim() != 2:
            raise ValueError(f"features must be [E, C], got shape {tuple(x.shape)}")
        if x.shape[0] != n_edges:
            raise ValueError("all layers must have the same number of edges to subsample")
    if n_edges == 0:
        stacked = features[0].new_zeros(len(features))
        return stacked.mean(), stacked
    idx = subsample_edges(
        n_edges, resolve_max_edges(max_edges, features), generator, features[0].device
    )
    rows = [x if idx is None else x.index_select(0, idx) for x in features]
    if all(x.shape[1] == rows[0].shape[1] for x in rows):
        stacked = _stacked_lcorr(torch.stack(rows), eps)
    else:  # layers of different widths: one at a time
        stacked = torch.cat([_stacked_lcorr(x.unsqueeze(0), eps) for x in rows])
    return stacked.mean(), stacked


class CorrelationAccumulator:
    """Exact Pearson correlation of every layer's features over a whole data set, streamed batch
    by batch (float64 running sums), with the same ``eps`` convention as
    :func:`correlation_matrix`. Used for the "feature correlation of a model" diagnostic."""

    def __init__(self, eps: float = EPS) -> None:
        self.eps = eps
        self.n: list[int] = []
        self.s1: list[torch.Tensor] = []
        self.s2: list[torch.Tensor] = []

    def update(self, features: list[torch.Tensor]) -> None:
        if not self.n:
            self.n = [0] * len(features)
            self.s1 = [torch.zeros(f.shape[1], dtype=torch.float64) for f in features]
            self.s2 = [torch.zeros(f.shape[1], f.shape[1], dtype=torch.float64) for f in features]
        for k, f in enumerate(features):
            x = f.detach().to("cpu", torch.float64)
            self.n[k] += x.shape[0]
            self.s1[k] += x.sum(0)
            self.s2[k] += x.T @ x

    def matrices(self) -> list[torch.Tensor]:
        """Per-layer correlation matrices [C, C] (float64)."""
        out = []
        for n, s1, s2 in zip(self.n, self.s1, self.s2, strict=True):
            mean = s1 / max(n, 1)
            cov = s2 / max(n, 1) - torch.outer(mean, mean)
            std = torch.diagonal(cov).clamp_min(0).sqrt()
            out.append(cov / torch.outer(std + self.eps, std + self.eps))
        return out

    def per_layer(self) -> list[float]:
        """Per-layer L_corr over everything seen."""
        return [float(offdiag_mean_square(r)) for r in self.matrices()]


def per_pair_decorrelation_loss(
    features: list[torch.Tensor],
    pair_ids: torch.Tensor,
    max_edges: int | str | None = 4096,
    generator: torch.Generator | None = None,
    eps: float = EPS,
    min_edges: int = MIN_PAIR_EDGES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``L_corr`` within each species pair, averaged over the pairs (equal weights).

    features: per-layer [E, C_l]; pair_ids [E] (e.g. :func:`edge_pair_ids`). The edge subsample
    is drawn exactly as in :func:`decorrelation_loss`; pairs with fewer than ``min_edges``
    sampled edges are skipped (zero loss when none qualifies). Returns (L [], per_layer [L]).
    """
    if not features:
        raise ValueError("per_pair_decorrelation_loss needs at least one layer of features")
    n_edges = features[0].shape[0]
    if pair_ids.shape != (n_edges,):
        raise ValueError(f"pair_ids must be [E] = [{n_edges}], got {tuple(pair_ids.shape)}")
    for x in features:
        if x.dim() != 2 or x.shape[0] != n_edges:
            raise ValueError("all layers must be [E, C] with the same E")
    zero = features[0].new_zeros(len(features))
    if n_edges == 0:
        return zero.mean(), zero
    idx = subsample_edges(
        n_edges, resolve_max_edges(max_edges, features), generator, features[0].device
    )
    pid = pair_ids if idx is None else pair_ids.index_select(0, idx)
    order = torch.argsort(pid, stable=True)  # edges grouped by pair: contiguous slices
    _, counts = torch.unique_consecutive(pid.index_select(0, order), return_counts=True)
    sizes = counts.tolist()
    # one gather per layer (subsample and grouping composed): each gather's backward
    # allocates a gradient of the full [E, C] features
    pick = order if idx is None else idx.index_select(0, order)
    rows = [x.index_select(0, pick) for x in features]
    if all(x.shape[1] == rows[0].shape[1] for x in rows):
        groups = [torch.stack(rows)]  # [L, M, C]
    else:  # layers of different widths: one at a time
        groups = [x.unsqueeze(0) for x in rows]
    per_layer = []
    for g in groups:
        total, used = g.new_zeros(g.shape[0]), 0
        for chunk, n in zip(torch.split(g, sizes, dim=1), sizes, strict=True):
            if n >= min_edges:
                total = total + _stacked_lcorr(chunk, eps)
                used += 1
        per_layer.append(total / max(used, 1))
    per = torch.cat(per_layer)
    return per.mean(), per


def variant_loss(
    variant: str,
    features: list[torch.Tensor],
    pair_ids: torch.Tensor | None,
    max_edges: int | str | None = "auto",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_corr [], per_layer [L]) of ``variant`` (see the module docstring) on the features of
    its kind (:func:`variant_feature_kind`); ``pair_ids`` [E] is needed by ``per_pair`` only.
    ``max_edges``: an edge count, None (all edges) or "auto" (:func:`auto_max_edges` of the
    widest layer)."""
    variant_feature_kind(variant)  # validates
    if variant == "per_pair":
        if pair_ids is None:
            raise ValueError("the per_pair variant needs the edges' species-pair ids")
        return per_pair_decorrelation_loss(features, pair_ids, max_edges, generator)
    return decorrelation_loss(features, max_edges, generator)


class PairCorrelationAccumulator:
    """Exact per-species-pair Pearson correlation of every layer's features over a data set,
    streamed batch by batch (float64 running sums, one :class:`CorrelationAccumulator` per
    pair). ``per_layer()`` averages each layer's L_corr over the pairs with >= 2 edges."""

    def __init__(self, eps: float = EPS) -> None:
        self.eps = eps
        self.pairs: dict[int, CorrelationAccumulator] = {}

    def update(self, features: list[torch.Tensor], pair_ids: torch.Tensor) -> None:
        pid = pair_ids.detach().cpu()
        for p in torch.unique(pid).tolist():
            sel = (pid == p).nonzero().squeeze(1)
            acc = self.pairs.setdefault(int(p), CorrelationAccumulator(self.eps))
            acc.update([f.detach().cpu().index_select(0, sel) for f in features])

    def per_pair(self) -> dict[int, list[float]]:
        """{pair id: per-layer L_corr} for the pairs seen on >= 2 edges."""
        return {p: a.per_layer() for p, a in sorted(self.pairs.items()) if min(a.n) >= 2}

    def per_layer(self) -> list[float]:
        vals = list(self.per_pair().values())
        if not vals:
            return []
        return [float(sum(v[k] for v in vals) / len(vals)) for k in range(len(vals[0]))]
