"""``EdgeModel``: what every model family builds (the eager model interface).

Export, training, the calculators and the test suite use a model only through this interface:

* attributes ``config`` (the resolved hyperparameters, written to model files), ``family``,
  ``species`` (element symbols; species index = position), ``num_species``, ``cutoff`` (A),
  ``num_layers`` (feature layers for the decorrelation loss and diagnostics; 0 = none);
* buffers ``per_species_shift`` / ``per_species_scale`` [num_species] (E_i = scale[s_i] *
  raw_i + shift[s_i], eV) and ``avg_num_neighbors`` (scalar);
* ``energy_from_edges(edge_vec [E,3] A, species [N] int64, edge_index [2,E] int64 (row 0 =
  centre), num_atoms, return_features=False, feature_kind="residual") -> (atomic energies
  [N] eV, per-layer edge features)``, TorchScript-compatible and strictly local: atom i's
  energy depends only on its own edges (the exported module differentiates it for forces and
  virials, see ``gnnff.potentials.files.exported.ExportedModel``);
* eager setters ``set_species_shift_scale``, ``set_avg_num_neighbors`` and, for families whose
  config has a ``softmax`` entry, ``set_softmax_backend`` (it swaps every submodule attribute
  named ``softmax`` and records the backend in ``config``, so export reproduces it).

A family subclasses :class:`EdgeModel`, calls ``super().__init__(cfg)`` and implements
``energy_from_edges``. Class-level TorchScript annotations of the base are merged into every
subclass (TorchScript reads only the subclass's own ``__annotations__``).
"""

# no `from __future__ import annotations`: TorchScript reads the class annotations
from typing import Any

import torch

from .softmax import backend_spec, make_softmax_backend


def exporting_graph() -> bool:
    """True while ``torch.export`` traces the model (for an AOTInductor package): checks that
    branch on tensor values are skipped then, the package's host code makes them instead.
    Always False in TorchScript and eager runs."""
    if torch.jit.is_scripting():
        return False
    else:
        return _TRACING[0] or bool(torch.compiler.is_exporting())


_TRACING = [False]  # set by gnnff.potentials.files.aoti while it traces a model


class EdgeModel(torch.nn.Module):
    """Base of the model families (see the module docstring for the interface)."""

    species: list[str]
    cutoff: float
    num_layers: int
    num_species: int
    family: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        merged: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if issubclass(klass, EdgeModel):
                merged.update(klass.__dict__.get("__annotations__", {}))
        cls.__annotations__ = merged

    def __init__(self, cfg: dict[str, Any]) -> None:
        """cfg: the resolved config (``gnnff.potentials.config.resolve_model_config``)."""
        super().__init__()
        self.config = cfg
        self.family = str(cfg["family"])
        self.species = list(cfg["species"])
        self.num_species = len(self.species)
        self.cutoff = float(cfg["cutoff"])
        self.num_layers = int(cfg.get("num_layers", 0))
        self.register_buffer("per_species_shift", torch.zeros(self.num_species))
        self.register_buffer("per_species_scale", torch.ones(self.num_species))
        self.register_buffer("avg_num_neighbors", torch.tensor(float(cfg["avg_num_neighbors"])))

    # ---------------------------------------------------------------- setters (eager only)
    @torch.jit.unused
    def set_species_shift_scale(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Set per-species energy shift (eV) and scale, each [num_species]:
        E_i = scale[s_i] * raw_i + shift[s_i]."""
        shift = torch.as_tensor(shift).reshape(-1)
        scale = torch.as_tensor(scale).reshape(-1)
        for name, t in (("shift", shift), ("scale", scale)):
            if t.numel() != self.num_species:
                raise ValueError(
                    f"{name} needs one value per species ({self.num_species}: {self.species}), "
                    f"got {t.numel()}"
                )
        with torch.no_grad():
            self.per_species_shift.copy_(shift)  # type: ignore[operator]
            self.per_species_scale.copy_(scale)  # type: ignore[operator]

    @torch.jit.unused
    def set_avg_num_neighbors(self, x: float) -> None:
        """Set the neighbour-count normalisation of the environment sums."""
        x = float(x)
        if not x > 0:
            raise ValueError(f"avg_num_neighbors must be > 0, got {x}")
        with torch.no_grad():
            self.avg_num_neighbors.fill_(x)  # type: ignore[operator]
        self.config["avg_num_neighbors"] = x

    @torch.jit.unused
    def softmax_holders(self) -> dict[str, torch.nn.Module]:
        """The submodules that hold an attention softmax backend (attribute ``softmax``), by
        qualified name ("" = the model itself)."""
        return {
            name: mod
            for name, mod in self.named_modules()
            if isinstance(getattr(mod, "softmax", None), torch.nn.Module)
        }

    @torch.jit.unused
    def set_softmax_backend(self, name: str, bits: int | None = None, config: Any = None) -> None:
        """Swap the attention softmax (every submodule attribute named ``softmax``) for the
        registered backend ``name`` (weights unchanged) and record it in ``config["softmax"]``
        (backend name and its resolved bit width), so that export rebuilds the same backend.
        ValueError when the family has no attention softmax or the name is unknown."""
        if "softmax" not in self.config:
            raise ValueError(
                f"family {self.family!r} has no attention softmax (its config has no 'softmax'; "
                "families with one, e.g. 'allegro-attn', do)"
            )
        spec = backend_spec(make_softmax_backend(name, bits, config))  # checks name and bits
        for holder in self.softmax_holders().values():
            holder.softmax = make_softmax_backend(name, bits, config)
        self.config["softmax"] = spec

    # ---------------------------------------------------------------- the model
    def check_inputs(
        self,
        edge_vec: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        num_atoms: int,
    ) -> None:
        """ValueError for inputs that do not fit together or the model's species."""
        if species.shape[0] != num_atoms:
            raise ValueError(
                "species has "
                + str(species.shape[0])
                + " entries but num_atoms is "
                + str(num_atoms)
            )
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError("edge_index must have shape [2, E]")
        if edge_vec.shape[0] != edge_index.shape[1]:
            raise ValueError(
                "edge_vec has "
                + str(edge_vec.shape[0])
                + " rows but edge_index has "
                + str(edge_index.shape[1])
                + " edges"
            )
        if num_atoms > 0 and not exporting_graph():
            smin = int(species.min())
            smax = int(species.max())
            if smin < 0 or smax >= self.num_species:
                raise ValueError(
                    "species index out of range: got values in ["
                    + str(smin)
                    + ", "
                    + str(smax)
                    + "] but the model knows "
                    + str(self.num_species)
                    + " species "
                    + str(self.species)
                    + " (indices 0.."
                    + str(self.num_species - 1)
                    + ")"
                )

    def energy_from_edges(
        self,
        edge_vec: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        num_atoms: int,
        return_features: bool = False,
        feature_kind: str = "residual",
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Atomic energies [num_atoms] (eV) and per-layer edge features (see the module
        docstring); families implement it."""
        raise NotImplementedError

    def forward(
        self,
        edge_vec: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        num_atoms: int,
    ) -> torch.Tensor:
        """Atomic energies [num_atoms] (eV); see :meth:`energy_from_edges`."""
        return self.energy_from_edges(edge_vec, species, edge_index, num_atoms, False, "residual")[
            0
        ]
