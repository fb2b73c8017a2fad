"""Building a data cache (:mod:`gnnff.training.edge_cache`): the frames are read one at a time
(``ase.io.iread``), checked by :func:`gnnff.training.data.structure_from_frame` (so every error
is the one :func:`~gnnff.training.data.build_structures` raises), and written chunk by chunk to
raw files that become ``.npy`` arrays; the finished folder is renamed over the cache.
:func:`load_or_build` reuses a cache whose hash matches and builds it otherwise."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from gnnff.io_utils import atomic_write_json, sha256_file

from .data import DataError, Structure, check_structures, split_index, structure_from_frame
from .edge_cache import (
    ARRAYS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    CachedStructures,
    CacheError,
    cache_inputs,
    changed_inputs,
    check_replaceable,
    inputs_hash,
    read_manifest,
)
from .labels import LABEL_KEYS, LabelError, LabelKeys, check_keys_exist


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
        self.tail = ARRAYS[name][1]
        self.path = folder / f"{name}.npy"
        self.raw = folder / f".{name}.raw"
        self.fh: BinaryIO = open(self.raw, "wb")  # noqa: SIM115 (closed in finish)
        self.rows = 0

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype).reshape((-1, *self.tail))
        self.fh.write(block.tobytes())
        self.rows += int(len(block))

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
    cols: dict[str, _Column] = {}
    try:
        cols.update({n: _Column(tmp, n) for n in ARRAYS})
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
        _install(tmp, folder, inputs_hash(inputs))
    except BaseException:
        for col in cols.values():
            col.fh.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _install(tmp: Path, folder: Path, want: str) -> None:
    """Rename the finished ``tmp`` over ``folder`` (set aside first when it exists)."""
    if folder.exists():
        check_replaceable(folder)
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
        os.replace(folder, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process installed one meanwhile: keep it if it is ours
        if read_manifest(folder).get("hash") != want:
            raise
        shutil.rmtree(tmp, ignore_errors=True)


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
        check_replaceable(folder)
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
