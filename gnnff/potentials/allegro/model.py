"""Strictly-local equivariant edge models: ``allegro`` and its attention variant
``allegro-attn`` (:class:`AllegroModel`, registered by :mod:`gnnff.potentials.allegro.families`;
``gnnff.potentials.build_model`` builds them by name).

Every quantity lives on the directed edges i->j of a full neighbour list. Layer by layer,
each edge carries invariant latents x_ij [E, num_scalar] and equivariant features
V_ij [E, num_tensor, D] (D components of the irreps 0e+1o(+2e)). A layer forms, per centre i,
the environment sum_k w_ik Y(r_ik) over i's own neighbours only, so the energy of atom i
depends only on atoms within one cutoff of i (strict locality, as in Allegro: no message
passing between centres), takes its channel-wise tensor product with V_ij, feeds the scalar
outputs into a residual update of x_ij and mixes the tensor outputs into the next V_ij.

In ``allegro-attn`` the environment sum is attention-weighted (our definition):
alpha_ik = softmax_k(l_ik + log u(r_ik)) over the neighbours k of i, l_ik = Linear(x_ik), and
the value term is also multiplied by u(r_ik). The log u term drives a neighbour's weight to zero
as it reaches the cutoff and the extra u keeps the single-neighbour case continuous too.
"""

import math

import torch
from e3nn import o3

from gnnff.potentials.softmax import make_softmax_backend

from ..base import EdgeModel, exporting_graph
from ..blocks import (
    MLP,
    BesselBasis,
    ChannelwiseTensorProduct,
    IrrepLinear,
    PolynomialEnvelope,
    ZBLPrior,
    variance_preserving_init,
)
from ..config import pair_tables, resolve_model_config

# log u is clamped at 1e-30 so that edges at or beyond the cutoff (u = 0) get a finite logit


class AllegroLayer(torch.nn.Module):
    """One interaction layer: environment, tensor product, latent update, tensor mixing."""

    residual_a: float
    residual_norm: float

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        s, c = cfg["num_scalar"], cfg["num_tensor"]
        self.env_weight = torch.nn.Linear(s, c, bias=False)
        self.tp = ChannelwiseTensorProduct(cfg["l_max"], c)
        self.latent_mlp = MLP([s + c * self.tp.num_scalar_paths, *cfg["mlp_hidden"], s])
        self.linear = IrrepLinear(cfg["l_max"], c, c)
        a = float(cfg["residual_coeff"])
        self.residual_a = a
        self.residual_norm = 1.0 / math.sqrt(1.0 + a * a)

    def env_weights(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        log_u: torch.Tensor,
        centre: torch.Tensor,
        num_atoms: int,
        env_norm: torch.Tensor,
    ) -> torch.Tensor:
        return self.env_weight(x) * env_norm

    def forward(
        self,
        x: torch.Tensor,
        v: torch.Tensor,
        y: torch.Tensor,
        u: torch.Tensor,
        log_u: torch.Tensor,
        centre: torch.Tensor,
        num_atoms: int,
        env_norm: torch.Tensor,
        tensor_out: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_next [E, S], v_next [E, C, D], post-activation features of the latent MLP's last
        hidden layer [E, H]). ``tensor_out`` False (the last layer: nothing reads its v_next)
        skips the tensor paths and the mixing; v_next is then an empty [E, C, 0]."""
        w = self.env_weights(x, u, log_u, centre, num_atoms, env_norm)  # [E, C]
        terms = w.unsqueeze(-1) * y.unsqueeze(1)  # [E, C, D]
        env = torch.zeros(
            (num_atoms, terms.shape[1], terms.shape[2]), dtype=terms.dtype, device=terms.device
        ).index_add(0, centre, terms)
        scalars, tensors = self.tp(env.index_select(0, centre), v, tensor_out)
        update, hidden = self.latent_mlp.forward_hidden(torch.cat([x, scalars], dim=1))
        update = update * u.unsqueeze(-1)
        x = (x + self.residual_a * update) * self.residual_norm
        return x, (self.linear(tensors) if tensor_out else tensors), hidden


class AttentionAllegroLayer(AllegroLayer):
    """Allegro layer whose environment sum is a per-centre attention average."""

    heads: int
    channels_per_head: int

    def __init__(self, cfg: dict) -> None:
        super().__init__(cfg)
        self.heads = int(cfg["attn_heads"])
        self.channels_per_head = cfg["num_tensor"] // self.heads
        self.logit = torch.nn.Linear(cfg["num_scalar"], self.heads)
        sm = cfg["softmax"]
        self.softmax = make_softmax_backend(sm["backend"], sm["bits"])

    def env_weights(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        log_u: torch.Tensor,
        centre: torch.Tensor,
        num_atoms: int,
        env_norm: torch.Tensor,
    ) -> torch.Tensor:
        e = x.shape[0]
        logits = self.logit(x) + log_u.unsqueeze(-1)  # [E, H]
        # heads become separate segments: segment id = head * N + centre
        head_offset = torch.arange(self.heads, device=x.device).unsqueeze(-1) * num_atoms
        segment = (head_offset + centre.unsqueeze(0)).reshape(-1)
        alpha = self.softmax(logits.t().reshape(-1), segment, self.heads * num_atoms)
        alpha = alpha.reshape(self.heads, e).t()
        alpha = alpha.repeat_interleave(self.channels_per_head, dim=1)  # [E, C]
        return self.env_weight(x) * alpha * u.unsqueeze(-1)


class AllegroModel(EdgeModel):
    """The allegro edge model (family ``allegro`` or ``allegro-attn``); build it with
    ``gnnff.potentials.build_model``. Energies in eV, distances in A."""

    l_max: int
    use_zbl: bool

    def __init__(self, config: dict) -> None:
        cfg = resolve_model_config(config)
        super().__init__(cfg)
        self.l_max = int(cfg["l_max"])
        s, c, k = cfg["num_scalar"], cfg["num_tensor"], cfg["species_embed_dim"]
        self.envelope = PolynomialEnvelope(self.cutoff, cfg["poly_p"])
        self.radial = BesselBasis(self.cutoff, cfg["num_bessel"])
        self.sh = o3.SphericalHarmonics(
            o3.Irreps.spherical_harmonics(cfg["l_max"]), normalize=True, normalization="component"
        )
        self.embed_centre = torch.nn.Parameter(torch.randn(self.num_species, k))
        self.embed_neighbor = torch.nn.Parameter(torch.randn(self.num_species, k))
        self.two_body = MLP([2 * k + cfg["num_bessel"], *cfg["mlp_hidden"], s])
        self.init_tensor_weight = torch.nn.Linear(s, c, bias=False)
        layer_cls = AttentionAllegroLayer if self.family == "allegro-attn" else AllegroLayer
        self.layers = torch.nn.ModuleList([layer_cls(cfg) for _ in range(self.num_layers)])
        self.edge_energy = MLP([s, *cfg["mlp_hidden"], 1])
        self.use_zbl = bool(cfg["zbl"])
        from ase.data import atomic_numbers

        zs = [atomic_numbers[sym] for sym in self.species]
        windows, strengths = pair_tables(cfg)
        self.zbl = ZBLPrior(zs, cfg["zbl_r_on"], cfg["zbl_r_off"], windows, strengths)
        if cfg["weight_init"] == "variance_preserving":
            variance_preserving_init(self)

    # ---------------------------------------------------------------- setters (eager only)
    @torch.jit.unused
    def set_zbl(self, enabled: bool) -> None:
        """Toggle the ZBL pair prior."""
        self.use_zbl = bool(enabled)
        self.config["zbl"] = bool(enabled)

    # ---------------------------------------------------------------- the model
    def energy_from_edges(
        self,
        edge_vec: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        num_atoms: int,
        return_features: bool = False,
        feature_kind: str = "residual",
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Atomic energies [num_atoms] (eV) from edge vectors r_ij = pos_j - pos_i + shift
        (edge_vec [E,3], A), species [num_atoms] int64 and edge_index [2,E] int64 (row 0 =
        centre). With ``return_features`` also per-layer edge features of ``feature_kind``
        (otherwise an empty list), all from this same pass:

        - ``residual``: the scalar residual stream x_l after every layer [E, num_scalar]
          (basis-dependent: see :mod:`gnnff.potentials.allegro.reparam`);
        - ``post_activation``: every layer's latent-MLP last hidden layer after the SiLU
          [E, mlp_hidden[-1]] (fixed by the nonlinearity up to a permutation);
        - ``tensor``: norms of the l > 0 blocks of the tensor features entering every layer's
          tensor product, [E, num_tensor * l_max] (channel-major, then l);
        - ``all``: the three lists concatenated (3 * num_layers entries, in that order).
        """
        if feature_kind not in ("residual", "post_activation", "tensor", "all"):
            raise ValueError(
                "feature_kind must be one of residual, post_activation, tensor, all; got "
                + feature_kind
            )
        self.check_inputs(edge_vec, species, edge_index, num_atoms)
        centre = edge_index[0]
        neighbor = edge_index[1]
        features: list[torch.Tensor] = []
        shift = self.per_species_shift.index_select(0, species)
        scale = self.per_species_scale.index_select(0, species)
        if edge_vec.shape[0] == 0:
            return shift.clone(), features

        r = torch.linalg.norm(edge_vec, dim=-1)
        # an AOTInductor package cannot branch on values: its host code checks lengths instead
        if not exporting_graph() and bool((r <= 0.0).any()):
            raise ValueError(
                "an edge has zero length: two atoms sit at the same position (or an atom is "
                "listed as its own neighbour without a periodic shift); remove the duplicate"
            )
        u = self.envelope(r)
        log_u = torch.log(u.clamp(min=1e-30))
        y = self.sh(edge_vec)
        si = species.index_select(0, centre)
        sj = species.index_select(0, neighbor)
        rb = self.radial(r) * u.unsqueeze(-1)
        h = torch.cat(
            [self.embed_centre.index_select(0, si), self.embed_neighbor.index_select(0, sj), rb],
            dim=1,
        )
        x = self.two_body(h) * u.unsqueeze(-1)
        v = self.init_tensor_weight(x).unsqueeze(-1) * y.unsqueeze(1)
        env_norm = torch.rsqrt(self.avg_num_neighbors)
        residual: list[torch.Tensor] = []
        hidden: list[torch.Tensor] = []
        tensor: list[torch.Tensor] = []
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            if return_features and (feature_kind == "tensor" or feature_kind == "all"):
                vl = v[:, :, 1:]  # drop the l = 0 component
                sq = vl * vl
                norms: list[torch.Tensor] = []
                for ll in range(1, self.l_max + 1):
                    norms.append(sq[:, :, ll * ll - 1 : (ll + 1) * (ll + 1) - 1].sum(-1))
                tensor.append(torch.sqrt(torch.stack(norms, dim=-1) + 1e-12).flatten(1))
            x, v, h = layer(x, v, y, u, log_u, centre, num_atoms, env_norm, k < last)
            if return_features:
                residual.append(x)
                hidden.append(h)
        if return_features:
            if feature_kind == "residual" or feature_kind == "all":
                features.extend(residual)
            if feature_kind == "post_activation" or feature_kind == "all":
                features.extend(hidden)
            if feature_kind == "tensor" or feature_kind == "all":
                features.extend(tensor)
        e_edge = self.edge_energy(x).squeeze(-1) * u * env_norm
        raw = torch.zeros(num_atoms, dtype=e_edge.dtype, device=e_edge.device)
        raw = raw.index_add(0, centre, e_edge)
        atomic = scale * raw + shift
        if self.use_zbl:
            atomic = atomic.index_add(0, centre, self.zbl(r, si, sj))
        return atomic, features
