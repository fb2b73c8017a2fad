"""Function-preserving reparameterisation of the scalar residual stream (the "gauge").

In both families the scalar edge latents x_l [E, S] form a residual stream
x_{l+1} = (x_l + a u(r) MLP_l([x_l, s_l])) / sqrt(1 + a^2) whose every producer ends in an
affine map and whose every consumer starts with one, with nothing nonlinear acting on x_l
directly (no layer norm, no elementwise function, no bias on x_l itself):

- producers: the last ``Linear`` of ``two_body`` (x_0 = u(r) two_body(h)) and the last
  ``Linear`` of every layer's ``latent_mlp`` (the update);
- consumers: ``init_tensor_weight``, every layer's ``env_weight`` and (``allegro-attn``)
  ``logit``, the x-columns of the first ``Linear`` of every ``latent_mlp``, and the first
  ``Linear`` of ``edge_energy``.

So for any invertible T [S, S] the substitution x -> T x, i.e. producer weights W -> T W,
biases b -> T b, consumer weights W -> W T^-1, leaves the potential unchanged. One T serves all
layers: the residual sum x_l + update ties the bases of consecutive layers together. The gauge
group is the full GL(S) (not only rotations); a shift x -> T x + c is *not* a gauge (the
consumers ``env_weight`` / ``init_tensor_weight`` have no bias to absorb it).

Any statistic of x_l that is not GL(S)-invariant (e.g. the Pearson correlation of its channels,
:func:`gnnff.training.decorrelation.decorrelation_loss` variant ``residual``) is therefore a
property of the parameterisation, not of the potential. The hidden features of the MLPs are
not affected: a Linear followed by an elementwise nonlinearity fixes the basis up to a
permutation.
"""

from __future__ import annotations

import copy

import torch

from .model import AllegroModel


def _check_transform(model: AllegroModel, t: torch.Tensor) -> torch.Tensor:
    s = int(model.config["num_scalar"])
    t = torch.as_tensor(t)
    if t.shape != (s, s):
        raise ValueError(
            f"T must be [num_scalar, num_scalar] = [{s}, {s}] for this model, got {tuple(t.shape)}"
        )
    t64 = t.to(torch.float64)
    if not bool(torch.isfinite(t64).all()):
        raise ValueError("T has non-finite entries")
    cond = float(torch.linalg.cond(t64))
    if not cond < 1e12:
        raise ValueError(
            f"T is singular or nearly so (condition number {cond:.3g}); "
            "the reparameterisation needs an invertible T"
        )
    return t64


def _first_linear(mlp) -> torch.nn.Linear:
    return mlp.net[0]


def _last_linear(mlp) -> torch.nn.Linear:
    return mlp.net[len(mlp.net) - 1]


def reparameterize_residual_stream(model: AllegroModel, t: torch.Tensor) -> AllegroModel:
    """A copy of ``model`` whose scalar residual stream is ``x' = T x`` (in every layer) and
    whose energies, forces and virials equal the original's up to round-off.

    ``t``: invertible [num_scalar, num_scalar] matrix. The products are formed in float64 and
    cast back to the model's dtype. Raises ValueError for a wrong shape or a singular T.
    Works for ``allegro`` and ``allegro-attn`` (see the module docstring for the maps used).
    """
    if not isinstance(model, AllegroModel):
        raise TypeError(
            f"need a AllegroModel (eager), got {type(model).__name__}; rebuild an "
            "exported file with gnnff.potentials.eager_from_file"
        )
    t = _check_transform(model, t)
    t_inv = torch.linalg.inv(t)
    s = t.shape[0]
    new = copy.deepcopy(model)

    def consume(lin: torch.nn.Linear, cols: slice = slice(0, s)) -> None:
        w = lin.weight.detach().to(torch.float64).clone()
        w[:, cols] = w[:, cols] @ t_inv
        lin.weight.copy_(w.to(lin.weight.dtype))

    def produce(lin: torch.nn.Linear) -> None:
        w = lin.weight.detach().to(torch.float64)
        lin.weight.copy_((t @ w).to(lin.weight.dtype))
        if lin.bias is not None:
            b = lin.bias.detach().to(torch.float64)
            lin.bias.copy_((t @ b).to(lin.bias.dtype))

    with torch.no_grad():
        produce(_last_linear(new.two_body))
        consume(new.init_tensor_weight)
        for layer in new.layers:
            consume(layer.env_weight)
            if hasattr(layer, "logit"):
                consume(layer.logit)
            # consumer first, then producer: also right when the MLP is a single Linear
            consume(_first_linear(layer.latent_mlp))
            produce(_last_linear(layer.latent_mlp))
        consume(_first_linear(new.edge_energy))
    return new


def zca_whitening(features: list[torch.Tensor], eps: float = 1e-10) -> torch.Tensor:
    """ZCA whitening matrix T = C^(-1/2) [S, S] of the residual stream, C the covariance of the
    features averaged over the given layers (each [E, S]); applying T with
    :func:`reparameterize_residual_stream` makes the channels of x (nearly) uncorrelated
    without changing the potential. ``eps`` (feature units squared) regularises zero-variance
    directions. Float64."""
    if not features:
        raise ValueError("zca_whitening needs at least one [E, S] feature tensor")
    covs = []
    for f in features:
        x = f.detach().to(torch.float64)
        if x.dim() != 2 or x.shape[0] < 2:
            raise ValueError(f"features must be [E, S] with E >= 2, got {tuple(x.shape)}")
        xc = x - x.mean(0)
        covs.append(xc.T @ xc / x.shape[0])
    cov = torch.stack(covs).mean(0)
    evals, evecs = torch.linalg.eigh(cov)
    return evecs @ torch.diag((evals.clamp_min(0) + eps).rsqrt()) @ evecs.T
