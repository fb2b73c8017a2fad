"""The ASE stability monitor on real ASE molecular dynamics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet

from gnnff.stability import (
    StabilityConfig,
    StabilityMonitor,
    StabilityReference,
    StabilityStop,
    run_monitored,
)


class CollapsingPair(Calculator):
    """A deliberately broken potential: a stiff spring pulls atoms 0 and 1 together (other
    atoms feel nothing), so the pair collapses within a few tens of femtoseconds."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, k: float = 3.0):
        super().__init__()
        self.k = k

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        vec = self.atoms.get_distance(0, 1, mic=True, vector=True)  # r1 - r0
        forces = np.zeros((len(self.atoms), 3))
        forces[0] = self.k * vec
        forces[1] = -self.k * vec
        e = 0.5 * self.k * float(vec @ vec)
        self.results = {"energy": e, "free_energy": e, "forces": forces}


def cu_cell():
    atoms = bulk("Cu", cubic=True).repeat((2, 2, 2))  # 32 atoms, nearest neighbours 2.55 A
    return atoms


@pytest.fixture(scope="module")
def cu_ref():
    return StabilityReference.from_frames([cu_cell()], rdf_rmax=5.0, nbins=50)


def test_emt_nve_run_is_stable(tmp_path, cu_ref):
    atoms = cu_cell()
    atoms.calc = EMT()
    rng = np.random.default_rng(0)
    atoms.set_momenta(
        rng.normal(0, 1, (len(atoms), 3)) * np.sqrt(atoms.get_masses()[:, None] * units.kB * 300.0)
    )
    dyn = VelocityVerlet(atoms, 2 * units.fs)
    # window longer than the run: the RDF check is never due, the other four run every 5 steps
    config = StabilityConfig(interval=5, rdf_rmax=5.0, rdf_nbins=50)
    mon = StabilityMonitor(
        atoms, dyn, config=config, reference=cu_ref, target_temperature=300.0, out_dir=tmp_path
    )
    assert mon.tracker.ensemble == "nve"
    rep = run_monitored(dyn, 60, mon)
    assert rep["status"] == "completed" and rep["stability_index"] == 1.0
    assert rep["t_run_ps"] == pytest.approx(0.12)
    assert rep["series"]["step"] == list(range(0, 61, 5))
    assert max(abs(x) for x in rep["series"]["energy_drift_per_atom"]) < 1e-3
    assert rep["series"]["epot"][0] is not None and rep["series"]["max_force"][-1] > 0
    assert json.loads((tmp_path / "report.json").read_text())["n_checks"] == 13
    assert (tmp_path / "report.png").exists()


def _collapse_steps(n_steps: int, dt: float) -> list[float]:
    atoms = cu_cell()
    atoms.calc = CollapsingPair()
    dyn = VelocityVerlet(atoms, dt)
    dist = [atoms.get_distance(0, 1, mic=True)]
    for _ in range(n_steps):
        dyn.run(1)
        dist.append(atoms.get_distance(0, 1, mic=True))
    return dist


def test_monitor_stops_collapsing_run_on_the_right_step(tmp_path, cu_ref):
    dt = 1.0 * units.fs
    interval = 2
    dist = _collapse_steps(80, dt)
    threshold = 0.75 * cu_ref.pair_min_distances["Cu-Cu"]
    expected = next(k for k in range(0, 81, interval) if dist[k] < threshold)
    assert 4 < expected < 80

    atoms = cu_cell()
    atoms.calc = CollapsingPair()
    dyn = VelocityVerlet(atoms, dt)
    config = StabilityConfig(interval=interval, criteria=["finite", "close_contact"])
    mon = StabilityMonitor(
        atoms, dyn, config=config, reference=cu_ref, total_steps=200, out_dir=tmp_path
    )
    rep = run_monitored(dyn, 200, mon)
    assert dyn.nsteps == expected  # stopped cleanly right after the failed check
    assert rep["failed_criterion"] == "close_contact"
    assert rep["failed_step"] == expected
    assert rep["failure"]["value"] == pytest.approx(dist[expected], abs=1e-9)
    assert rep["stability_index"] == pytest.approx(expected / 200)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["failed_step"] == expected and saved["status"] == "failed"


def test_stability_stop_for_dynamics_without_max_steps(cu_ref):
    class Loop:
        """Minimal dynamics without ``max_steps``."""

        def __init__(self, atoms, dt):
            self.atoms, self.dt, self.nsteps = atoms, dt, 0
            self.inner = VelocityVerlet(atoms, dt)
            self.observers = []

        def attach(self, fn, interval=1):
            self.observers.append((fn, interval))

        def run(self, steps):
            for _ in range(steps + 1):
                for fn, every in self.observers:
                    if self.nsteps % every == 0:
                        fn()
                self.inner.run(1)
                self.nsteps += 1

    atoms = cu_cell()
    atoms.calc = CollapsingPair()
    dyn = Loop(atoms, 1.0 * units.fs)
    config = StabilityConfig(interval=1, criteria=["close_contact"])
    mon = StabilityMonitor(atoms, dyn, config=config, reference=cu_ref, ensemble="nve")
    rep = run_monitored(dyn, 300, mon)
    assert rep["status"] == "failed" and dyn.nsteps == rep["failed_step"] < 300
    mon2 = StabilityMonitor(atoms, dyn, config=config, reference=cu_ref, ensemble="nve")
    with pytest.raises(StabilityStop):
        mon2()


def test_interrupted_run_still_writes_report(tmp_path, cu_ref):
    atoms = cu_cell()
    atoms.calc = EMT()
    dyn = Langevin(
        atoms,
        2 * units.fs,
        temperature_K=300,
        friction=0.02,
        fixcm=False,
        rng=np.random.default_rng(1),
    )
    config = StabilityConfig(interval=4, rdf_rmax=5.0, rdf_nbins=50)
    mon = StabilityMonitor(
        atoms, dyn, config=config, reference=cu_ref, total_steps=100, out_dir=tmp_path
    )
    assert mon.tracker.ensemble == "nvt"
    assert mon.tracker.target_temperature == pytest.approx(300.0)

    def ctrl_c():
        if dyn.nsteps == 30:
            raise KeyboardInterrupt

    dyn.attach(ctrl_c, interval=1)
    with pytest.raises(KeyboardInterrupt):
        run_monitored(dyn, 100, mon)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["status"] == "interrupted"
    assert rep["interrupt_reason"] == "KeyboardInterrupt"
    assert rep["failed_criterion"] is None
    assert rep["last_step"] == 28
    assert rep["stable_time_ps"] == pytest.approx(28 * 0.002)
    assert rep["stability_index"] == pytest.approx(28 / 100)
    assert (tmp_path / "report.png").stat().st_size > 1000


def test_failed_setup_check_stops_the_run_before_its_first_step(tmp_path, cu_ref):
    """A continued dynamics whose configuration was moved between runs (atom 1 put 0.9 A from
    atom 0, like LAMMPS's displace_atoms) fails its setup check and runs no step, as `fix
    gnnff/stability` ends a LAMMPS run at a failed setup; later runs are skipped too."""
    atoms = cu_cell()
    atoms.calc = EMT()
    dyn = VelocityVerlet(atoms, 1.0 * units.fs)
    config = StabilityConfig(interval=5, criteria=["finite", "close_contact"])
    mon = StabilityMonitor(atoms, dyn, config=config, reference=cu_ref, total_steps=20,
                           out_dir=tmp_path)  # fmt: skip
    assert run_monitored(dyn, 10, mon)["status"] == "completed" and dyn.nsteps == 10
    atoms.positions[1] = atoms.positions[0] + np.array([0.9, 0.0, 0.0])
    rep = run_monitored(dyn, 10, mon)
    assert dyn.nsteps == 10  # not a single step of the second run
    assert rep["failed_criterion"] == "close_contact" and rep["failed_step"] == 10
    assert rep["failure"]["value"] == pytest.approx(0.9, abs=1e-9)
    assert rep["series"]["step"] == [0, 5, 10, 10]  # the setup of the second run is checked
    assert rep["stability_index"] == pytest.approx(0.5)  # 10 of the 20 planned steps
    assert run_monitored(dyn, 10, mon)["failed_step"] == 10 and dyn.nsteps == 10
