"""Feature-correlation diagnostics of a model on a data set (this project's definitions).

- ``feature_corr`` (the "feature correlation of a model", a property of the potential): the
  L_corr (mean squared off-diagonal Pearson correlation) of the post-SiLU last hidden layer of
  every layer's latent MLP, computed within each ordered species pair (centre, neighbour) over
  the whole data set and averaged over the pairs, then over the layers. It does not change under
  the residual-stream reparameterisation of :mod:`gnnff.potentials.allegro.reparam` (the hidden
  units are outputs of the same functions before and after), and Pearson correlation ignores the
  remaining permutation of units.
- ``tensor_norm_corr``: L_corr of the norms of the l > 0 tensor features entering each layer
  (pooled over edges); unchanged by per-channel, per-l rescaling of the tensor track.
- ``residual_stream_corr`` (formerly reported as "feature correlation L_corr"): L_corr of the
  scalar residual stream x_l, pooled over edges. Basis-dependent: a change of basis absorbed
  into the weights moves it freely without changing any prediction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .decorrelation import CorrelationAccumulator, PairCorrelationAccumulator, edge_pair_ids


class FeatureDiagnostics:
    """Streams the ``feature_kind="all"`` features of batches (3 L tensors: residual,
    post-activation, tensor norms; see ``GNNFFModel.energy_from_edges``) and reports the three
    correlation statistics of the module docstring."""

    def __init__(self, num_layers: int, num_species: int) -> None:
        self.num_layers = int(num_layers)
        self.num_species = int(num_species)
        self.residual = CorrelationAccumulator()
        self.post_activation = PairCorrelationAccumulator()
        self.tensor = CorrelationAccumulator()

    def update(
        self, features: list[torch.Tensor], species: torch.Tensor, edge_index: torch.Tensor
    ) -> None:
        """features: the 3 L per-layer tensors of one batch; species [N], edge_index [2, E]."""
        nl = self.num_layers
        if len(features) != 3 * nl:
            raise ValueError(
                f"expected 3 * {nl} feature tensors (feature_kind='all'), got {len(features)}"
            )
        self.residual.update(list(features[:nl]))
        pid = edge_pair_ids(species, edge_index, self.num_species)
        hidden = list(features[nl : 2 * nl])
        if all(h.shape[1] > 0 for h in hidden):  # MLPs without a hidden layer: no features
            self.post_activation.update(hidden, pid)
        self.tensor.update(list(features[2 * nl :]))

    def summary(self) -> dict[str, Any]:
        """``feature_corr``, ``tensor_norm_corr``, ``residual_stream_corr`` (NaN when no edge
        was seen, and ``feature_corr`` NaN for MLPs without a hidden layer) and their
        ``*_per_layer`` lists."""
        out: dict[str, Any] = {}
        for name, per in (
            ("feature_corr", self.post_activation.per_layer()),
            ("tensor_norm_corr", self.tensor.per_layer() if self.tensor.n else []),
            ("residual_stream_corr", self.residual.per_layer() if self.residual.n else []),
        ):
            out[name] = float(np.mean(per)) if per else float("nan")
            out[f"{name}_per_layer"] = per
        return out


def feature_diagnostics(
    model, edge_vec: torch.Tensor, species: torch.Tensor, edge_index: torch.Tensor
) -> dict[str, Any]:
    """The diagnostics of one structure (or one collated batch) for an eager or scripted
    ``GNNFFModel``: edge_vec [E, 3] (A), species [N], edge_index [2, E]."""
    n = int(species.shape[0])
    with torch.no_grad():
        _, feats = model.energy_from_edges(edge_vec, species, edge_index, n, True, "all")
    diag = FeatureDiagnostics(int(model.num_layers), int(model.num_species))
    diag.update(list(feats), species, edge_index)
    return diag.summary()
