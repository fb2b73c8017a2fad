"""Units of work of the stability study: one model (family, variant, seed) and one MD run
(model, system, temperature, start). ``runner`` schedules them and ``summary`` reads their
results; both import them from here (no import cycle between the two)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ERROR_FILE = "error.json"  # an MD unit's software error (not a run: no Stability Index)


@dataclass(frozen=True)
class ModelUnit:
    """One trained model of the study: ``family`` x ``variant`` (e.g. baseline/decorrelated)
    x training ``seed``; ``id`` names its run folder."""

    family: str
    variant: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.family}__{self.variant}__s{self.seed}"


@dataclass(frozen=True)
class MDUnit:
    """One MD run: ``model`` on ``system`` at ``temperature`` (K) from start frame ``start``;
    ``id`` names its folder under the model's."""

    model: ModelUnit
    system: str
    temperature: float
    start: int

    @property
    def id(self) -> str:
        return f"{self.system}_{self.temperature:g}K_{self.start}"


def model_units(cfg: dict[str, Any]) -> list[ModelUnit]:
    """Every model of a study config (families x variants x seeds)."""
    return [
        ModelUnit(f, v, int(s))
        for f in cfg["families"]
        for v in cfg["variants"]
        for s in cfg["seeds"]
    ]


def md_units(cfg: dict[str, Any], models: list[ModelUnit]) -> list[MDUnit]:
    """Every MD run of ``models`` (systems x temperatures x ``n_starts`` per model)."""
    md = cfg["md"]
    return [
        MDUnit(m, name, float(t), k)
        for m in models
        for name in md["systems"]
        for t in md["temperatures"]
        for k in range(int(md["n_starts"]))
    ]
