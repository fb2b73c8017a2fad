"""On-disk cache of a training data file: every frame's positions, species, neighbour list and
labels as flat numpy arrays (``.npy`` files opened as read-only memory maps), so that a run
over 1e5 frames holds neither ASE objects nor a Python object per frame (``data.cache`` in
:mod:`gnnff.training.config`).

A cache folder (F frames, N atoms and E edges in all) holds ``manifest.json`` and

=================  ============  ==========================================================
positions          [N,3] f8      A
species            [N] i4        index into the model's species list
forces             [N,3] f8      eV/A (0 in frames without a force label)
edge_index         [E,2] i4      (centre, neighbour), numbered within the frame
edge_shift         [E,3] f8      A (periodic image shift of the neighbour)
atom_offsets       [F+1] i8      frame k's atoms are ``atom_offsets[k]:atom_offsets[k+1]``
edge_offsets       [F+1] i8      likewise for its edges
energy, volume     [F] f8        eV (0 where missing), A^3 (0: not periodic in 3 directions)
stress             [F,3,3] f8    eV/A^3, ASE sign (0 where missing)
*_mask             [F] bool      ``energy_mask``, ``forces_mask``, ``stress_mask``
=================  ============  ==========================================================

The manifest records the format version, the inputs and their hash: SHA-256 of the canonical
JSON of {format version, the data file's SHA-256, the frame selection (``file@index``),
cutoff, species, label keys, the ASE and vesin versions, the SHA-256 of the source of the
modules that make the arrays}. A cache whose hash differs from the one wanted is rebuilt, and
the log says which input changed. The frames are read one at a time (``ase.io.iread``) and
checked by :func:`gnnff.training.data.structure_from_frame`, so every error is the one
:func:`~gnnff.training.data.build_structures` raises. Builds are atomic: a temporary folder
next to the cache is filled and then renamed over it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from .data import DataError, Structure
from .labels import LABEL_KEYS, LabelKeys

FORMAT = "gnnff-edge-cache"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# name -> (dtype, trailing shape); the first axis counts atoms, edges or frames (table above)
ARRAYS: dict[str, tuple[str, tuple[int, ...]]] = {
    "positions": ("<f8", (3,)),
    "species": ("<i4", ()),
    "forces": ("<f8", (3,)),
    "edge_index": ("<i4", (2,)),
    "edge_shift": ("<f8", (3,)),
    "energy": ("<f8", ()),
    "energy_mask": ("|b1", ()),
    "forces_mask": ("|b1", ()),
    "stress": ("<f8", (3, 3)),
    "stress_mask": ("|b1", ()),
    "volume": ("<f8", ()),
    "atom_offsets": ("<i8", ()),
    "edge_offsets": ("<i8", ()),
}
# the modules whose source the arrays depend on (part of the hash)
_SOURCES = (
    "gnnff.training.data",
    "gnnff.training.labels",
    "gnnff.training.edge_cache",
    "gnnff.training.edge_cache_build",
    "gnnff.potentials.neighbors",
    "gnnff.stability.geometry",
    "gnnff.stability.reference",
)


class CacheError(DataError):
    """A cache folder that cannot be used or replaced; the message names it and the fix."""


def cache_inputs(
    data_sha256: str, index: str, species: Sequence[str], cutoff: float, keys: LabelKeys
) -> dict[str, Any]:
    """Everything the cached arrays depend on (hashed by :func:`inputs_hash`)."""
    import importlib.util

    import ase
    import vesin

    code = hashlib.sha256()
    for name in _SOURCES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None
        code.update(Path(spec.origin).read_bytes())
    return {
        "format_version": FORMAT_VERSION,
        "data_sha256": data_sha256,
        "index": index,
        "cutoff": float(cutoff),
        "species": list(species),
        "label_keys": {k: getattr(keys, k) for k in LABEL_KEYS},
        "ase": ase.__version__,
        "vesin": getattr(vesin, "__version__", "?"),
        "code_sha256": code.hexdigest(),
    }


def inputs_hash(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def check_replaceable(folder: Path) -> None:
    """Refuse to replace a folder that is not a gnnff cache (it may hold the user's files)."""
    if not folder.is_dir():
        raise CacheError(
            f"data cache {folder} exists and is not a folder; move it or fix data.cache"
        )
    if any(folder.iterdir()) and not (folder / MANIFEST).is_file():
        raise CacheError(
            f"data cache folder {folder} is not empty but holds no {MANIFEST}, so it is not a "
            "gnnff data cache (or its manifest was deleted); delete the folder or point "
            "data.cache elsewhere"
        )


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of the cache in ``folder``; CacheError when it is missing or not one."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CacheError(f"{path} cannot be read ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CacheError(f"{path} is not a gnnff data cache manifest")
    return manifest


def changed_inputs(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Which of the hashed inputs differ, in words (for the log line of a rebuild)."""
    words = {"data_sha256": "data file changed", "code_sha256": "gnnff's data code changed"}
    diffs = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            diffs.append(words.get(k) or f"{k} {old.get(k)!r} -> {new.get(k)!r}")
    return "; ".join(diffs) or "hash differs"


class CachedStructures(Sequence[Structure]):
    """The structures of a cache folder, built one at a time from read-only memory maps;
    usable wherever a ``list[Structure]`` is (indexing, slicing, ``len``) and a
    :class:`~gnnff.training.data.FrameTable` for the dataset statistics.

    Raises CacheError when the folder is not a complete cache of the current format."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise CacheError(
                f"{self.folder} has cache format version {self.manifest.get('format_version')},"
                f" this gnnff reads {FORMAT_VERSION}; rebuild it"
            )
        self.arrays: dict[str, np.ndarray] = {}
        for name, (dtype, tail) in ARRAYS.items():
            p = self.folder / f"{name}.npy"
            want = self.manifest.get("arrays", {}).get(name, {})
            try:
                a = np.load(p, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise CacheError(f"{p} cannot be read ({exc}); rebuild the cache") from None
            if a.dtype.str != dtype or list(a.shape) != want.get("shape") or a.shape[1:] != tail:
                raise CacheError(f"{p} has shape {a.shape} {a.dtype}, the manifest {want}")
            self.arrays[name] = a
        a = self.arrays
        self.atom_offsets = np.array(a["atom_offsets"])
        self.edge_offsets = np.array(a["edge_offsets"])
        if (
            self.atom_offsets[-1] != len(a["positions"])
            or self.edge_offsets[-1] != len(a["edge_index"])
            or len(self.atom_offsets) != len(a["energy"]) + 1
        ):
            raise CacheError(f"{self.folder}: the offsets do not match the arrays; rebuild it")
        self.num_atoms = np.diff(self.atom_offsets)
        self.num_edges = np.diff(self.edge_offsets)
        self.energy = np.array(a["energy"])
        self.energy_mask = np.array(a["energy_mask"])

    def __len__(self) -> int:
        return len(self.num_atoms)

    @overload
    def __getitem__(self, i: int) -> Structure: ...

    @overload
    def __getitem__(self, i: slice) -> list[Structure]: ...

    def __getitem__(self, i: int | slice) -> Structure | list[Structure]:
        if isinstance(i, slice):
            return [self.structure(k) for k in range(*i.indices(len(self)))]
        k = int(i)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(f"structure {i} out of range ({len(self)} structures)")
        return self.structure(k)

    def structure(self, k: int) -> Structure:
        """Frame ``k`` as a :class:`Structure` (arrays copied out of the maps)."""
        a = self.arrays
        a0, a1 = int(self.atom_offsets[k]), int(self.atom_offsets[k + 1])
        e0, e1 = int(self.edge_offsets[k]), int(self.edge_offsets[k + 1])
        return Structure(
            pos=np.array(a["positions"][a0:a1]),
            species=np.array(a["species"][a0:a1], dtype=np.int64),
            edge_index=np.array(a["edge_index"][e0:e1].T, dtype=np.int64, order="C"),
            edge_shift=np.array(a["edge_shift"][e0:e1]),
            energy=float(self.energy[k]) if self.energy_mask[k] else None,
            forces=np.array(a["forces"][a0:a1]) if a["forces_mask"][k] else None,
            stress=np.array(a["stress"][k]) if a["stress_mask"][k] else None,
            volume=float(a["volume"][k]),
        )

    def species_counts(self, num_species: int, block: int = 4096) -> np.ndarray:
        """[F, num_species] atoms of each species per frame (in blocks of frames)."""
        out = np.zeros((len(self), num_species), dtype=np.int64)
        for f0 in range(0, len(self), block):
            f1 = min(f0 + block, len(self))
            a0, a1 = self.atom_offsets[f0], self.atom_offsets[f1]
            frame = np.repeat(np.arange(f1 - f0), self.num_atoms[f0:f1])
            sp = np.asarray(self.arrays["species"][a0:a1], dtype=np.int64)
            counts = np.bincount(frame * num_species + sp, minlength=(f1 - f0) * num_species)
            out[f0:f1] = counts.reshape(f1 - f0, num_species)
        return out

    def first_species(self, frame: int) -> int:
        return int(self.arrays["species"][self.atom_offsets[frame]])

    def labelled_forces(self) -> np.ndarray:
        """[n,3] the force labels of the frames that have them, in frame order (one copy)."""
        mask = np.repeat(np.asarray(self.arrays["forces_mask"]), self.num_atoms)
        return np.asarray(self.arrays["forces"][mask])
