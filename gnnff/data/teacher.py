"""Foundation-model teachers: a pretrained universal potential that labels frames like DFT.

A teacher is named in a reference spec, ``reference: {teacher: sevennet-0}``. The built-in
teacher is SevenNet-0 (Park et al., J. Chem. Theory Comput. 2024; PBE labels of the Materials
Project trajectories, 89 elements), whose weights ship inside the ``sevenn`` wheel, so nothing
is downloaded at run time. It is an optional extra: ``pip install "gnnff[teacher]"``.

Every teacher reports its provenance (name, package and version, weights file name and
sha256) so that data manifests and the models trained on them say which physics they imitate.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from gnnff.errors import GNNFFError, did_you_mean
from gnnff.io_utils import sha256_file

INSTALL_HINT = 'pip install "gnnff[teacher]"'


class TeacherError(GNNFFError, ValueError):
    """A teacher is unknown, not installed, or cannot label the asked species."""


@dataclass(frozen=True)
class TeacherInfo:
    """What gnnff knows about one teacher: its package, how to build its ASE calculator, and
    where its weights file is (for the provenance hash)."""

    name: str
    package: str
    description: str
    weights_path: Callable[[], Path]
    species: Callable[[], list[str]]
    build: Callable[[str], Any]  # device -> ase Calculator


def _sevennet_weights() -> Path:
    from sevenn.util import pretrained_name_to_path

    return Path(pretrained_name_to_path("7net-0"))


@functools.cache
def _sevennet_species() -> list[str]:
    from ase.data import chemical_symbols
    from sevenn.util import load_checkpoint

    type_map = load_checkpoint(str(_sevennet_weights())).config["_type_map"]
    return sorted(chemical_symbols[int(z)] for z in type_map)


def _sevennet_build(device: str) -> Any:
    import warnings

    from sevenn.calculator import SevenNetCalculator

    with warnings.catch_warnings():
        # "no tensor product accelerator": the accelerators are CUDA-only
        warnings.simplefilter("ignore", UserWarning)
        return SevenNetCalculator(model=str(_sevennet_weights()), device=device)


TEACHERS: dict[str, TeacherInfo] = {
    "sevennet-0": TeacherInfo(
        name="sevennet-0",
        package="sevenn",
        description="SevenNet-0 (11Jul2024): PBE/MPtrj universal potential, 89 elements",
        weights_path=_sevennet_weights,
        species=_sevennet_species,
        build=_sevennet_build,
    ),
}
ALIASES = {"7net-0": "sevennet-0", "sevennet0": "sevennet-0"}


def teacher_info(name: str) -> TeacherInfo:
    """The :class:`TeacherInfo` of ``name`` (aliases accepted).

    Raises :class:`TeacherError` for an unknown name (listing the known ones) or when the
    teacher's package is not installed (naming the install line).
    """
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in TEACHERS:
        raise TeacherError(
            f"unknown teacher {name!r}{did_you_mean(key, sorted(TEACHERS))}; "
            f"known teachers: {', '.join(sorted(TEACHERS))}"
        )
    info = TEACHERS[key]
    if importlib.util.find_spec(info.package) is None:
        raise TeacherError(
            f"teacher {key!r} needs the {info.package!r} package, which is not installed: "
            f"{INSTALL_HINT}"
        )
    return info


def check_species(name: str, species: list[str]) -> None:
    """Raise :class:`TeacherError` naming every element of ``species`` the teacher lacks."""
    info = teacher_info(name)
    known = set(info.species())
    missing = sorted(set(species) - known)
    if missing:
        raise TeacherError(
            f"teacher {info.name!r} has no parameters for {', '.join(missing)}; it covers "
            f"{len(known)} elements. Choose another reference for these species"
        )


def provenance(name: str) -> dict[str, str]:
    """``{"teacher", "package", "version", "weights", "weights_sha256"}`` of a teacher."""
    info = teacher_info(name)
    return dict(_provenance(info.name, str(info.weights_path())))


@functools.cache
def _provenance(name: str, weights_file: str) -> tuple[tuple[str, str], ...]:
    """Hashed once per process and weights file (the file is ~10 MB)."""
    info = TEACHERS[name]
    weights = Path(weights_file)
    return (
        ("teacher", info.name),
        ("package", info.package),
        ("version", metadata.version(info.package)),
        ("weights", weights.name),
        ("weights_sha256", sha256_file(weights)),
    )


def build_teacher(name: str, device: str = "cpu") -> Any:
    """The teacher's ASE calculator on ``device`` ("cpu" or "cuda")."""
    return teacher_info(name).build(device)
