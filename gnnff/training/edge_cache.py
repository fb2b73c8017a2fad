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
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, overload

import numpy as np

from gnnff.io_utils import atomic_write_json, sha256_file

from .data import DataError, Structure, check_structures, split_index, structure_from_frame
from .labels import LABEL_KEYS, LabelError, LabelKeys, check_keys_exist

FORMAT = "gnnff-edge-cache"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# name -> (dtype, trailing shape); the first axis counts atoms (a), edges (e) or frames (f)
ARRAYS: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "positions": ("<f8", "a", (3,)),
    "species": ("<i4", "a", ()),
    "forces": ("<f8", "a", (3,)),
    "edge_index": ("<i4", "e", (2,)),
    "edge_shift": ("<f8", "e", (3,)),
    "energy": ("<f8", "f", ()),
    "energy_mask": ("|b1", "f", ()),
    "forces_mask": ("|b1", "f", ()),
    "stress": ("<f8", "f", (3, 3)),
    "stress_mask": ("|b1", "f", ()),
    "volume": ("<f8", "f", ()),
    "atom_offsets": ("<i8", "o", ()),
    "edge_offsets": ("<i8", "o", ()),
}
_SOURCES = ("gnnff.training.data", "gnnff.training.labels", "gnnff.potentials.neighbors")
_SOURCES_STABILITY = ("gnnff.stability.geometry", "gnnff.stability.reference")


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
    for name in _SOURCES + _SOURCES_STABILITY:
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


def iter_frames(spec: str | Path, split: str = "data") -> Iterator[Any]:
    """The frames of ``spec`` (a path or ``path@index``) one at a time (``ase.io.iread``);
    DataError for a missing, unreadable or empty file, worded as
    :func:`gnnff.training.data.read_frames`."""
    import ase.io

    path, index = split_index(spec)
    if not path.is_file():
        raise DataError(f"{split} file not found: {path}")
    frames = ase.io.iread(str(path), index=index, do_not_split_by_at_sign=True)
    count = 0
    while True:
        try:
            atoms = next(frames)
        except StopIteration:
            break
        except Exception as exc:  # ASE raises format-specific errors of many types
            raise DataError(
                f"cannot read the {split} file: could not read {path} as a structure file "
                f"({type(exc).__name__}: {exc}); give a file ASE can read (extxyz, cif, "
                "POSCAR, LAMMPS data, ...) with a matching suffix"
            ) from None
        count += 1
        yield atoms
    if not count:
        raise DataError(f"cannot read the {split} file: {path} holds no frames at index {index!r}")


def scan_species(spec: str | Path, split: str = "data") -> list[str]:
    """Element symbols of ``spec``'s frames, sorted by atomic number (one streamed pass)."""
    from ase.data import chemical_symbols

    numbers: set[int] = set()
    for atoms in iter_frames(spec, split):
        numbers.update(int(z) for z in np.unique(atoms.numbers))
    return [chemical_symbols[z] for z in sorted(numbers)]


class _Column:
    """One array written chunk by chunk to a raw file, then turned into a ``.npy`` file."""

    def __init__(self, folder: Path, name: str) -> None:
        self.dtype = np.dtype(ARRAYS[name][0])
        self.tail = ARRAYS[name][2]
        self.path = folder / f"{name}.npy"
        self.raw = folder / f".{name}.raw"
        self.fh: BinaryIO = open(self.raw, "wb")  # noqa: SIM115 (closed in finish)
        self.rows = 0

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype).reshape((-1, *self.tail))
        self.fh.write(block.tobytes())
        self.rows += block.shape[0]

    def finish(self) -> None:
        self.fh.close()
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (self.rows, *self.tail),
        }
        with open(self.path, "wb") as out, open(self.raw, "rb") as src:
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(src, out, 1 << 22)
            out.flush()
            os.fsync(out.fileno())
        self.raw.unlink()


def _write_chunk(cols: dict[str, _Column], structs: list[Structure], offsets: list[int]) -> None:
    if not structs:
        return
    for s in structs:
        offsets[0] += len(s.pos)
        offsets[1] += s.edge_index.shape[1]
        cols["atom_offsets"].write(np.array([offsets[0]]))
        cols["edge_offsets"].write(np.array([offsets[1]]))
    cols["positions"].write(np.concatenate([s.pos for s in structs]))
    cols["species"].write(np.concatenate([s.species for s in structs]))
    zero = [np.zeros((len(s.pos), 3)) if s.forces is None else s.forces for s in structs]
    cols["forces"].write(np.concatenate(zero))
    cols["edge_index"].write(np.concatenate([s.edge_index.T for s in structs]))
    cols["edge_shift"].write(np.concatenate([s.edge_shift for s in structs]))
    cols["energy"].write(np.array([s.energy or 0.0 for s in structs]))
    cols["stress"].write(
        np.stack([np.zeros((3, 3)) if s.stress is None else s.stress for s in structs])
    )
    cols["volume"].write(np.array([s.volume for s in structs]))
    for label in ("energy", "forces", "stress"):
        cols[f"{label}_mask"].write(np.array([getattr(s, label) is not None for s in structs]))


def _merge_reference(ref: dict[str, Any], frames: list[Any], cutoff: float) -> None:
    """Fold the minimum pair distances of ``frames`` into ``ref`` (as
    ``StabilityReference.from_frames`` over all frames would give them)."""
    from gnnff.stability.reference import StabilityReference

    if not frames:
        return
    part = StabilityReference.from_frames(frames, with_rdf=False, distance_cutoff=cutoff)
    for key, d in part.pair_min_distances.items():
        ref[key] = min(d, ref.get(key, np.inf))


def build_cache(
    folder: str | Path,
    spec: str | Path,
    species: Sequence[str],
    cutoff: float,
    keys: LabelKeys | None = None,
    *,
    split: str = "data",
    data_sha256: str | None = None,
    chunk: int = 256,
) -> dict[str, Any]:
    """Read ``spec`` frame by frame, check every frame as
    :func:`~gnnff.training.data.build_structures` does (same DataError) and write the cache
    into ``folder`` atomically (an existing cache there is replaced). Returns the manifest.
    At most ``chunk`` frames are held at a time."""
    from ase.data import chemical_symbols

    folder = Path(folder)
    keys = keys or LabelKeys()
    path, index = split_index(spec)
    name = path.name
    data_sha256 = data_sha256 or sha256_file(path)
    inputs = cache_inputs(data_sha256, index, species, cutoff, keys)
    sp_index = {s: k for k, s in enumerate(species)}
    opts = {
        o: (getattr(keys, o), "arrays" if o == "forces_key" else "info")
        for o in LABEL_KEYS
        if getattr(keys, o) is not None
    }
    found = dict.fromkeys(opts, False)
    first: list[Any] = []  # the first 50 frames, for the error naming the keys present

    def note_keys(atoms: Any) -> None:
        if len(first) < 50:
            first.append(atoms)
        for o, (key, store) in opts.items():
            found[o] = found[o] or key in getattr(atoms, store)

    def check_keys() -> None:  # the error check_keys_exist gives over all frames
        missing = LabelKeys(**{o: getattr(keys, o) for o in opts if not found[o]})
        try:
            check_keys_exist(first, missing, name)
        except LabelError as exc:
            raise DataError(str(exc)) from None

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        cols = {n: _Column(tmp, n) for n in ARRAYS}
        offsets = [0, 0]
        cols["atom_offsets"].write(np.zeros(1))
        cols["edge_offsets"].write(np.zeros(1))
        structs: list[Structure] = []
        atoms_buf: list[Any] = []
        pair_min: dict[str, float] = {}
        numbers: set[int] = set()
        labelled = {"energy": 0, "forces": 0, "stress": 0}
        frames = iter_frames(spec, split)
        for k, atoms in enumerate(frames):
            note_keys(atoms)
            try:
                s = structure_from_frame(
                    atoms, f"{name} frame {k}", list(species), sp_index, cutoff, keys
                )
            except DataError:
                for rest in frames:  # a key no frame has is reported first, as in one pass
                    note_keys(rest)
                check_keys()
                raise
            numbers.update(int(z) for z in np.unique(atoms.numbers))
            for label in labelled:
                labelled[label] += getattr(s, label) is not None
            structs.append(s)
            atoms_buf.append(atoms)
            if len(structs) >= chunk:
                _write_chunk(cols, structs, offsets)
                _merge_reference(pair_min, atoms_buf, cutoff)
                structs, atoms_buf = [], []
        check_keys()
        _write_chunk(cols, structs, offsets)
        _merge_reference(pair_min, atoms_buf, cutoff)
        num_frames = cols["energy"].rows
        check_structures(name, cutoff, keys, num_frames, offsets[1] > 0, labelled)
        for col in cols.values():
            col.finish()
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "hash": inputs_hash(inputs),
            "inputs": inputs,
            "data": str(spec),
            "num_frames": num_frames,
            "num_atoms": offsets[0],
            "num_edges": offsets[1],
            "present_species": [chemical_symbols[z] for z in sorted(numbers)],
            "labelled": labelled,
            "pair_min_distances": dict(sorted(pair_min.items())),
            "arrays": {
                n: {"dtype": c.dtype.str, "shape": [c.rows, *c.tail]} for n, c in cols.items()
            },
        }
        atomic_write_json(tmp / MANIFEST, manifest)
        _install(tmp, folder, manifest["hash"])
    except BaseException:
        for col in locals().get("cols", {}).values():
            col.fh.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _install(tmp: Path, folder: Path, want: str) -> None:
    """Rename the finished ``tmp`` over ``folder`` (set aside first when it exists)."""
    if folder.exists():
        _check_replaceable(folder)
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
        os.replace(folder, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process installed one meanwhile: keep it if it is ours
        if read_manifest(folder).get("hash") != want:
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _check_replaceable(folder: Path) -> None:
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
        for name, (dtype, _, tail) in ARRAYS.items():
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


def load_or_build(
    folder: str | Path,
    spec: str | Path,
    species: Sequence[str],
    cutoff: float,
    keys: LabelKeys | None = None,
    *,
    split: str = "data",
    data_sha256: str | None = None,
    log: Callable[[str], Any] = print,
) -> CachedStructures:
    """The cache of ``spec`` in ``folder``: reused when its hash is the one these inputs give
    and its arrays are complete, else (re)built, with a log line saying why."""
    folder = Path(folder)
    keys = keys or LabelKeys()
    path, index = split_index(spec)
    data_sha256 = data_sha256 or sha256_file(path)
    inputs = cache_inputs(data_sha256, index, species, cutoff, keys)
    reason = "no cache yet"
    if folder.exists():
        _check_replaceable(folder)
        try:
            manifest = read_manifest(folder)
            if manifest.get("hash") == inputs_hash(inputs):
                cached = CachedStructures(folder)
                log(f"data cache {folder}: reusing ({len(cached)} frames, {path.name})")
                return cached
            reason = changed_inputs(manifest.get("inputs", {}), inputs)
        except CacheError as exc:
            reason = f"unusable ({exc})"
    log(f"data cache {folder}: building from {path.name}: {reason}")
    t0 = time.perf_counter()
    build_cache(folder, spec, species, cutoff, keys, split=split, data_sha256=data_sha256)
    cached = CachedStructures(folder)
    log(
        f"data cache {folder}: built {len(cached)} frames, {cached.manifest['num_edges']} "
        f"edges in {time.perf_counter() - t0:.1f} s"
    )
    return cached
