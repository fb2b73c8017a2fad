"""What a run is compared against: per-pair minimum distances and reference g(r)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gnnff.errors import UsageError
from gnnff.io_utils import atomic_write_json
from gnnff.stability.geometry import frame_geometry, rdf_edges, symbols_of

FORMAT = "gnnff-stability-reference"
FORMAT_VERSION = 1


@dataclass
class StabilityReference:
    """Reference data for the close-contact and RDF criteria.

    pair_min_distances: smallest distance (A) of each species pair (e.g. ``"O-Si"``) over the
    reference frames, within ``distance_cutoff``. rdf_total [nbins] / rdf_partial {pair: [nbins]}:
    g(r) on ``rdf_nbins`` equal bins over [0, rdf_rmax] (A), averaged over the RDF frames;
    None / empty when no RDF was built.
    """

    pair_min_distances: dict[str, float]
    species: list[str]
    n_frames: int = 0
    distance_cutoff: float = 4.0
    rdf_rmax: float | None = None
    rdf_nbins: int | None = None
    rdf_total: np.ndarray | None = None
    rdf_partial: dict[str, np.ndarray] = field(default_factory=dict)
    n_rdf_frames: int = 0
    source: str | None = None

    @property
    def has_rdf(self) -> bool:
        return self.rdf_total is not None

    @property
    def rdf_r(self) -> np.ndarray | None:
        """Bin centres [nbins] (A) of the reference g(r)."""
        if self.rdf_rmax is None or self.rdf_nbins is None or not self.has_rdf:
            return None
        e = rdf_edges(self.rdf_rmax, self.rdf_nbins)
        centres: np.ndarray = 0.5 * (e[1:] + e[:-1])
        return centres

    @classmethod
    def from_frames(
        cls,
        frames: list[Any],
        rdf_rmax: float = 6.0,
        nbins: int = 120,
        *,
        rdf_frames: list[Any] | None = None,
        with_rdf: bool = True,
        distance_cutoff: float = 4.0,
        source: str | None = None,
    ) -> StabilityReference:
        """Build from ``ase.Atoms`` frames (e.g. the training set).

        Minimum distances come from ``frames``; the RDF from ``rdf_frames`` (default: the same
        frames). The RDF should describe the state point of the runs it judges (same phase,
        density, temperature); a training set mixing phases is a poor RDF reference — pass
        MD frames of the reference potential at that state point as ``rdf_frames`` instead.
        """
        frames = list(frames)
        if not frames:
            raise UsageError("StabilityReference.from_frames needs at least one frame")
        pair_min: dict[str, float] = {}
        species: set[str] = set()
        for atoms in frames:
            geom = frame_geometry(
                atoms.numbers, atoms.positions, np.array(atoms.cell), atoms.pbc, distance_cutoff
            )
            species.update(symbols_of(atoms.numbers))
            for key, d in geom.pair_min.items():
                pair_min[key] = min(d, pair_min.get(key, np.inf))
        ref = cls(
            pair_min_distances=dict(sorted(pair_min.items())),
            species=sorted(species),
            n_frames=len(frames),
            distance_cutoff=float(distance_cutoff),
            source=source,
        )
        if with_rdf:
            rframes = frames if rdf_frames is None else list(rdf_frames)
            if not rframes:
                raise UsageError("rdf_frames is empty: give at least one frame or with_rdf=False")
            total = np.zeros(int(nbins))
            partial: dict[str, np.ndarray] = {}
            for atoms in rframes:
                geom = frame_geometry(
                    atoms.numbers,
                    atoms.positions,
                    np.array(atoms.cell),
                    atoms.pbc,
                    0.0,
                    rdf_rmax,
                    int(nbins),
                )
                assert geom.rdf_total is not None  # rdf_rmax > 0 was asked for
                total += geom.rdf_total
                for key, g in geom.rdf_partial.items():
                    partial[key] = partial.get(key, 0.0) + g
            ref.rdf_rmax = float(rdf_rmax)
            ref.rdf_nbins = int(nbins)
            ref.rdf_total = total / len(rframes)
            # a pair absent from some frames counts as g = 0 there
            ref.rdf_partial = {k: v / len(rframes) for k, v in sorted(partial.items())}
            ref.n_rdf_frames = len(rframes)
        return ref

    def to_dict(self) -> dict[str, Any]:
        rdf_total = self.rdf_total
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "species": list(self.species),
            "n_frames": self.n_frames,
            "distance_cutoff": self.distance_cutoff,
            "pair_min_distances": {k: float(v) for k, v in self.pair_min_distances.items()},
            "rdf": None
            if rdf_total is None
            else {
                "rmax": self.rdf_rmax,
                "nbins": self.rdf_nbins,
                "n_frames": self.n_rdf_frames,
                "total": [float(x) for x in rdf_total],
                "partial": {k: [float(x) for x in v] for k, v in self.rdf_partial.items()},
            },
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StabilityReference:
        if d.get("format") != FORMAT:
            raise UsageError(
                f"not a stability reference (format={d.get('format')!r}); build one with "
                "`gnnff stability reference FRAMES.extxyz --out ref.json`"
            )
        if int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise UsageError(
                f"stability reference format_version {d['format_version']} is newer than this "
                f"gnnff understands ({FORMAT_VERSION}); upgrade gnnff"
            )
        ref = cls(
            pair_min_distances={k: float(v) for k, v in d["pair_min_distances"].items()},
            species=list(d.get("species", [])),
            n_frames=int(d.get("n_frames", 0)),
            distance_cutoff=float(d.get("distance_cutoff", 4.0)),
            source=d.get("source"),
        )
        rdf = d.get("rdf")
        if rdf:
            ref.rdf_rmax = float(rdf["rmax"])
            ref.rdf_nbins = int(rdf["nbins"])
            ref.n_rdf_frames = int(rdf.get("n_frames", 0))
            ref.rdf_total = np.asarray(rdf["total"], dtype=np.float64)
            ref.rdf_partial = {
                k: np.asarray(v, dtype=np.float64) for k, v in rdf.get("partial", {}).items()
            }
            if len(ref.rdf_total) != ref.rdf_nbins:
                raise UsageError("corrupt stability reference: rdf total length != nbins")
        return ref

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write as JSON (atomically)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StabilityReference:
        with open(path) as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path} is not valid JSON ({exc})") from None
        try:
            return cls.from_dict(data)
        except (KeyError, ValueError) as exc:
            raise UsageError(f"{path}: {exc}") from None

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], rdf_rmax: float = 6.0, nbins: int = 120
    ) -> StabilityReference:
        """A ``.json`` reference file, or any ASE-readable file of frames (e.g. extxyz)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"stability reference {path} does not exist")
        if path.suffix.lower() == ".json":
            return cls.load(path)
        from ase.io import read

        frames = read(path, index=":")
        frames = frames if isinstance(frames, list) else [frames]
        return cls.from_frames(frames, rdf_rmax=rdf_rmax, nbins=nbins, source=str(path))

    @classmethod
    def from_model_metadata(cls, meta: dict[str, Any]) -> StabilityReference | None:
        """The training-data reference a model file carries (per-pair minimum distances, no
        RDF), or None for files written before gnnff stored it."""
        d = (meta.get("training") or {}).get("stability_reference")
        return cls.from_dict(d) if d else None


def resolve_reference(
    reference: StabilityReference | str | os.PathLike[str] | None,
    model_meta: dict[str, Any] | None = None,
) -> StabilityReference | None:
    """What MD is judged against. ``None`` or ``"model"``: the training-data reference stored in
    the model file, if it has one (else none: close contacts fall back on the criterion's
    default); ``"none"``: no reference; a path: a reference JSON or frames; an instance as is."""
    if isinstance(reference, StabilityReference):
        return reference
    if reference is None or str(reference) == "model":
        return StabilityReference.from_model_metadata(model_meta) if model_meta else None
    if str(reference) == "none":
        return None
    return StabilityReference.from_path(reference)
