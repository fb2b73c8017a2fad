"""Building blocks of the gnnff edge models: radial basis, cutoff envelope, MLPs, the
channel-wise tensor product and the ZBL pair prior. All TorchScript-compatible."""

import math

import torch
from e3nn import o3


class PolynomialEnvelope(torch.nn.Module):
    """Smooth cutoff u(r) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2),
    x = r / cutoff, and u = 0 for r >= cutoff (value and first two derivatives vanish at
    the cutoff). Input r [E] in A, output [E]."""

    cutoff: float
    p: float

    def __init__(self, cutoff: float, p: int = 6) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = float(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        p = self.p
        x = r / self.cutoff
        xp = torch.pow(x, p)
        u = (
            1.0
            - 0.5 * (p + 1.0) * (p + 2.0) * xp
            + p * (p + 2.0) * xp * x
            - 0.5 * p * (p + 1.0) * xp * x * x
        )
        return torch.where(x < 1.0, u, torch.zeros_like(u))


class BesselBasis(torch.nn.Module):
    """sqrt(2/c) sin(n pi r / c) / r for n = 1..num_basis (learnable frequencies).
    Input r [E] (A, must be > 0), output [E, num_basis]."""

    cutoff: float

    def __init__(self, cutoff: float, num_basis: int = 8) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.freq = torch.nn.Parameter(torch.arange(1, num_basis + 1) * math.pi / self.cutoff)
        self.prefactor = math.sqrt(2.0 / self.cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        return self.prefactor * torch.sin(self.freq * r) / r


class MLP(torch.nn.Module):
    """Dense layers with SiLU between them (none after the last)."""

    last_hidden_index: int

    def __init__(self, sizes: list[int], bias_last: bool = True) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        for k in range(len(sizes) - 1):
            last = k == len(sizes) - 2
            layers.append(torch.nn.Linear(sizes[k], sizes[k + 1], bias=bias_last or not last))
            if not last:
                layers.append(torch.nn.SiLU())
        self.net = torch.nn.Sequential(*layers)
        # index in ``net`` of the last SiLU (-1: no hidden layer)
        self.last_hidden_index = len(layers) - 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(output, post-activation features of the last hidden layer [.., sizes[-2]]); the
        second is an empty [.., 0] tensor when the MLP has no hidden layer."""
        hidden = x[..., :0]
        for k, layer in enumerate(self.net):
            x = layer(x)
            if k == self.last_hidden_index:
                hidden = x
        return x, hidden


def irrep_blocks(l_max: int) -> o3.Irreps:
    """Irreps of the tensor track: the spherical-harmonic irreps 0e + 1o (+ 2e)."""
    return o3.Irreps.spherical_harmonics(l_max)


class ChannelwiseTensorProduct(torch.nn.Module):
    """Channel-wise ("uuu") tensor product of two [E, C, D] features whose D components are the
    irreps 0e+1o(+2e), with learnable per-channel path weights (couplings from e3nn
    ``wigner_3j``).

    Returns the scalar outputs of every path ending in 0e, [E, C * n_scalar_paths], and the
    tensor output [E, C, D] (paths summed into each output irrep, normalised by their number).
    The couplings are sparse (10 nonzero terms for l_max = 1, 83 for l_max = 2), so the product
    is evaluated term by term on contiguous [E, C] component planes with fused multiply-adds:
    several times cheaper on CPU than a dense contraction or a generic tensor product.
    """

    num_scalar_paths: int
    dim: int
    term_i: list[int]
    term_j: list[int]
    term_c: list[float]
    group_start: list[int]
    group_path: list[int]
    scalar_groups: list[int]
    component_groups: list[list[int]]

    def __init__(self, l_max: int, channels: int) -> None:
        super().__init__()
        irreps = irrep_blocks(l_max)
        ls = [mul_ir.ir.l for mul_ir in irreps]
        parities = [mul_ir.ir.p for mul_ir in irreps]
        offsets = [0]
        for l in ls:
            offsets.append(offsets[-1] + 2 * l + 1)
        triples: list[tuple[int, int, int]] = []
        for c in range(len(ls)):
            for a in range(len(ls)):
                for b in range(len(ls)):
                    if abs(ls[a] - ls[b]) <= ls[c] <= ls[a] + ls[b] and (
                        parities[a] * parities[b] == parities[c]
                    ):
                        triples.append((a, b, c))
        fan_in = [sum(1 for t in triples if t[2] == c) for c in range(len(ls))]
        self.term_i, self.term_j, self.term_c = [], [], []
        self.group_start, self.group_path = [], []
        self.scalar_groups = []
        self.component_groups = [[] for _ in range(offsets[-1])]
        for p, (a, b, c) in enumerate(triples):
            norm = math.sqrt(2 * ls[c] + 1) / math.sqrt(fan_in[c])
            w3j = o3.wigner_3j(ls[a], ls[b], ls[c]) * norm
            for k in range(2 * ls[c] + 1):
                nz = (w3j[:, :, k].abs() > 1e-9).nonzero().tolist()
                if not nz:
                    continue
                group = len(self.group_start)
                self.group_start.append(len(self.term_i))
                self.group_path.append(p)
                if ls[c] == 0:
                    self.scalar_groups.append(group)
                self.component_groups[offsets[c] + k].append(group)
                for i, j in nz:
                    self.term_i.append(offsets[a] + i)
                    self.term_j.append(offsets[b] + j)
                    self.term_c.append(float(w3j[i, j, k]))
        self.group_start.append(len(self.term_i))
        self.num_scalar_paths = len(self.scalar_groups)
        self.dim = offsets[-1]
        self.path_weight = torch.nn.Parameter(torch.ones(len(triples), channels))

    def _group(self, a: list[torch.Tensor], b: list[torch.Tensor], g: int) -> torch.Tensor:
        """Output group ``g`` ([E, C]): its terms' coupled products times its path weight."""
        start = self.group_start[g]
        acc = a[self.term_i[start]] * b[self.term_j[start]] * self.term_c[start]
        for t in range(start + 1, self.group_start[g + 1]):
            acc = torch.addcmul(acc, a[self.term_i[t]], b[self.term_j[t]], value=self.term_c[t])
        return acc * self.path_weight[self.group_path[g]]

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, tensor_out: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalars [E, C * n_scalar_paths], tensor output [E, C, D]); with ``tensor_out``
        False only the scalar paths are evaluated and the tensor output is an empty [E, C, 0]
        (a model's last layer needs nothing else: for l_max = 2 that skips 74 of 83 terms)."""
        a = torch.unbind(x1.permute(2, 0, 1).contiguous(), 0)  # D planes [E, C]
        b = torch.unbind(x2.permute(2, 0, 1).contiguous(), 0)
        if not tensor_out:
            scalars = torch.stack([self._group(a, b, g) for g in self.scalar_groups], dim=-1)
            return scalars.reshape(scalars.shape[0], -1), x1[:, :, :0]
        groups = [self._group(a, b, g) for g in range(len(self.group_path))]
        scalars = torch.stack([groups[g] for g in self.scalar_groups], dim=-1)
        comps: list[torch.Tensor] = []
        for members in self.component_groups:
            acc = groups[members[0]]
            for g in members[1:]:
                acc = acc + groups[g]
            comps.append(acc)
        out = torch.stack(comps, dim=-1)
        return scalars.reshape(scalars.shape[0], -1), out


class IrrepLinear(torch.nn.Module):
    """Channel mixing per irrep (an e3nn ``o3.Linear`` on C x (0e+1o(+2e)) laid out [E, C, D]):
    out[e, d, m] = sum_c x[e, c, m] W[l(m), c, d] / sqrt(C)."""

    def __init__(self, l_max: int, channels_in: int, channels_out: int) -> None:
        super().__init__()
        irreps = irrep_blocks(l_max)
        l_of_m = [mul_ir.ir.l for mul_ir in irreps for _ in range(mul_ir.ir.dim)]
        self.register_buffer("l_of_m", torch.tensor(l_of_m, dtype=torch.long))
        self.weight = torch.nn.Parameter(torch.randn(l_max + 1, channels_in, channels_out))
        self.norm = 1.0 / math.sqrt(channels_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.index_select(0, self.l_of_m) * self.norm  # [D, Cin, Cout]
        return torch.matmul(x.permute(2, 0, 1), w).permute(1, 2, 0)


# Universal ZBL screening function (Ziegler, Biersack, Littmark 1985)
_ZBL_C = (0.18175, 0.50986, 0.28022, 0.02817)
_ZBL_D = (3.19980, 0.94229, 0.40290, 0.20162)
# e^2 / (4 pi eps0) = 14.399645 eV A; the forward uses half of it (7.1998225)


class ZBLPrior(torch.nn.Module):
    """ZBL screened nuclear repulsion as a pair term per edge, half of each pair energy to the
    centre of each directed edge, switched off smoothly (C2 smoothstep) between r_on and r_off
    (A). Output [E] in eV.

    ``pair_windows`` / ``pair_scale`` (optional, flattened [S*S] lists indexed
    ``s_i * S + s_j``, symmetric): a switching window [r_on, r_off] and a strength factor per
    species pair (see :mod:`gnnff.potentials.analysis.short_range`); without them the global
    window and strength 1 apply (and the arithmetic is exactly the original one)."""

    r_on: float
    r_off: float
    per_pair: bool
    num_species: int

    def __init__(
        self,
        atomic_numbers: list[int],
        r_on: float,
        r_off: float,
        pair_windows: list[list[float]] | None = None,
        pair_scale: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.register_buffer("z", torch.tensor(atomic_numbers, dtype=torch.get_default_dtype()))
        self.register_buffer("zbl_c", torch.tensor(_ZBL_C, dtype=torch.get_default_dtype()))
        self.register_buffer("zbl_d", torch.tensor(_ZBL_D, dtype=torch.get_default_dtype()))
        self.r_on = float(r_on)
        self.r_off = float(r_off)
        n = len(atomic_numbers)
        self.num_species = n
        self.per_pair = pair_windows is not None or pair_scale is not None
        windows = pair_windows or [[self.r_on, self.r_off]] * (n * n)
        scale = pair_scale or [1.0] * (n * n)
        if len(windows) != n * n or len(scale) != n * n:
            raise ValueError(f"pair_windows / pair_scale need {n * n} entries (S*S)")
        dt = torch.get_default_dtype()
        # derived from the model config, so not stored in the state dict (old files still load)
        self.register_buffer(
            "pair_r_on", torch.tensor([w[0] for w in windows], dtype=dt), persistent=False
        )
        self.register_buffer(
            "pair_r_off", torch.tensor([w[1] for w in windows], dtype=dt), persistent=False
        )
        self.register_buffer("pair_scale", torch.tensor(scale, dtype=dt), persistent=False)

    def forward(self, r: torch.Tensor, si: torch.Tensor, sj: torch.Tensor) -> torch.Tensor:
        zi = self.z.index_select(0, si)
        zj = self.z.index_select(0, sj)
        a = 0.46850 / (torch.pow(zi, 0.23) + torch.pow(zj, 0.23))
        x = r / a
        phi = (self.zbl_c * torch.exp(-self.zbl_d * x.unsqueeze(-1))).sum(-1)
        if self.per_pair:
            pair = si * self.num_species + sj
            on = self.pair_r_on.index_select(0, pair)
            off = self.pair_r_off.index_select(0, pair)
            t = ((r - on) / (off - on)).clamp(0.0, 1.0)
            switch = 1.0 - t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)
            switch = switch * self.pair_scale.index_select(0, pair)
        else:
            t = ((r - self.r_on) / (self.r_off - self.r_on)).clamp(0.0, 1.0)
            switch = 1.0 - t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)
        return 7.1998225 * zi * zj / r * phi * switch


SILU_SECOND_MOMENT_GAIN = 1.6766
"""1 / sqrt(E[silu(x)^2]) for x ~ N(0, 1): the gain that keeps the second moment of a
pre-activation at 1 through a SiLU (the "normalize2mom" constant of e3nn, computed numerically)."""


def variance_preserving_init(
    model: torch.nn.Module, generator: torch.Generator | None = None
) -> None:
    """Re-initialise every ``torch.nn.Linear`` of ``model`` so that unit-variance inputs give
    unit-variance outputs: weights U(-a, a) with a = gain sqrt(3 / fan_in), gain =
    :data:`SILU_SECOND_MOMENT_GAIN` for a layer that follows a SiLU inside an :class:`MLP` and 1
    otherwise; biases 0. PyTorch's default (U(+-1/sqrt(fan_in)), variance 1/(3 fan_in)) shrinks
    the second moment about 3x per layer and 8x per SiLU + layer, so a freshly built model starts
    with nearly constant features. Modifies ``model`` in place."""
    after_silu: set[int] = set()
    for module in model.modules():
        if isinstance(module, MLP):
            prev: torch.nn.Module | None = None
            for layer in module.net:
                if isinstance(layer, torch.nn.Linear) and isinstance(prev, torch.nn.SiLU):
                    after_silu.add(id(layer))
                prev = layer
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                gain = SILU_SECOND_MOMENT_GAIN if id(module) in after_silu else 1.0
                a = gain * math.sqrt(3.0 / module.in_features)
                module.weight.uniform_(-a, a, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
