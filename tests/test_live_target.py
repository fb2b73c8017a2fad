"""The temperature check follows the run it judges (ASE side; issue 29): a thermostat ramp and
a second stage are judged against the thermostat's target at each check, an NVE run against
its own initial temperature; a real overheating still fails. LAMMPS: test_lammps_live_target.py.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT

from gnnff.stability import StabilityConfig, StabilityMonitor, StabilityTracker
from gnnff.stability.snapshot import Snapshot

TEMP_ONLY = StabilityConfig(interval=10, criteria=["finite", "temperature"])


def copper() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))  # 32 atoms
    atoms.calc = EMT()
    return atoms


def velocities_at(atoms: Atoms, temperature: float, seed: int = 3) -> None:
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    thermalize_momenta(atoms, temperature, exact_temperature=True, rng=np.random.default_rng(seed))
    Stationary(atoms)


def snap(step: int, temperature: float) -> Snapshot:
    return Snapshot(step=step, time_ps=step * 1e-3, numbers=[29], positions=[[0.0, 0.0, 0.0]],
                    cell=np.eye(3) * 10, pbc=True, temperature=temperature)  # fmt: skip


# -- the rule, on the tracker ----------------------------------------------------------
def test_bound_is_factor_times_the_live_target_at_each_check():
    tr = StabilityTracker(TEMP_ONLY, None, "nvt", None, 0.3)
    for step, target, temp in ((0, 300.0, 300.0), (100, 1000.0, 2800.0), (200, 1700.0, 5000.0)):
        tr.update(snap(step, temp), target_temperature=target)
    assert tr.series["t_max"] == [900.0, 3000.0, 5100.0]
    assert not tr.failed
    tr.update(snap(210, 5200.0), target_temperature=1710.0)  # 5200 > 3 x 1710 = 5130
    ff = tr.first_failure
    assert ff["criterion"] == "temperature" and ff["step"] == 210
    assert ff["threshold"] == pytest.approx(5130.0) and ff["target_temperature"] == 1710.0
    rep = tr.report()
    assert rep["target_temperature"] == 300.0  # the first target seen
    temp = next(c for c in rep["criteria"] if c["name"] == "temperature")
    assert temp["target_source"] == "thermostat"


def test_nve_target_is_each_runs_own_initial_temperature():
    tr = StabilityTracker(TEMP_ONLY, None, "nve", None, 0.2)
    tr.update(snap(0, 300.0))
    tr.update(snap(50, 450.0))
    tr.update(snap(100, 1200.0), run_start=True)  # a second run after `velocity ... 1200`
    tr.update(snap(150, 3000.0))
    assert not tr.failed and tr.series["t_max"] == [900.0, 900.0, 3600.0, 3600.0]
    tr.update(snap(200, 3700.0))
    assert tr.first_failure["step"] == 200 and tr.first_failure["threshold"] == 3600.0
    # the same frames as one run: 1200 K is judged against the first run's 300 K
    one = StabilityTracker(TEMP_ONLY, None, "nve", None, 0.2)
    for step, temp in ((0, 300.0), (50, 450.0), (100, 1200.0)):
        one.update(snap(step, temp))
    assert one.first_failure["step"] == 100


def test_a_given_target_or_tmax_is_kept_over_the_thermostat():
    given = StabilityTracker(TEMP_ONLY, None, "nvt", 300.0, 0.1)
    given.update(snap(0, 1000.0), target_temperature=1200.0)
    assert given.first_failure["threshold"] == 900.0
    cfg = StabilityConfig(interval=10, criteria=["temperature"], t_max=2000.0)
    fixed = StabilityTracker(cfg, None, "nvt", None, 0.1)
    fixed.update(snap(0, 1900.0), target_temperature=100.0)
    assert not fixed.failed and fixed.series["t_max"] == [2000.0]


# -- gnnff md: the heating ramp ---------------------------------------------------------
def ramp_settings(**kw):
    from gnnff.calculators.md import MDSettings

    base = dict(ensemble="nvt", temperature=300.0, temperature_end=2400.0, time_ps=0.3, seed=2,
                dt_fs=1.0, thermostat="langevin", tau_fs=10.0, check_interval=10)  # fmt: skip
    return MDSettings(**(base | kw))


@pytest.mark.parametrize("thermostat", ["langevin", "bussi"])
def test_gnnff_md_ramp_is_judged_against_the_live_target(tmp_path, thermostat):
    """300 -> 2400 K over 300 steps: T passes 3 x 300 K long before the end (the frozen
    target's false failure), but never 3 x the ramp's target at the check."""
    from gnnff.calculators.md import run_md

    settings = ramp_settings(thermostat=thermostat)
    rep = run_md(copper(), EMT(), settings, tmp_path, stability_config=TEMP_ONLY,
                 reference="none", progress=False)  # fmt: skip
    assert rep["status"] == "completed" and rep["stability_index"] == 1.0
    steps = rep["series"]["step"]
    assert steps[0] == 0 and steps[-1] == 300
    expected = [settings.target_at(s) for s in steps]
    np.testing.assert_allclose(rep["series"]["target_temperature"], expected)
    np.testing.assert_allclose(rep["series"]["t_max"], [3.0 * t for t in expected])
    assert expected[-1] == pytest.approx(2400.0)
    assert max(rep["series"]["temperature"]) > 1200.0  # the old frozen 900 K bound fails


def test_gnnff_md_overheating_under_a_ramp_still_fails(tmp_path):
    from gnnff.calculators.md import run_md

    atoms = copper()
    velocities_at(atoms, 6000.0)
    rep = run_md(atoms, EMT(), ramp_settings(), tmp_path, stability_config=TEMP_ONLY,
                 reference="none", progress=False)  # fmt: skip
    assert rep["failed_criterion"] == "temperature" and rep["failed_step"] == 0
    assert rep["failure"]["threshold"] == pytest.approx(900.0)
    assert rep["failure"]["value"] == pytest.approx(6000.0, rel=0.01)


def test_monitor_two_stages_follow_the_new_thermostat_target():
    """Stage 1 at 300 K, then new velocities at 1200 K and the thermostat set to 1200 K."""
    from ase.md.langevin import Langevin

    atoms = copper()
    velocities_at(atoms, 300.0)
    dyn = Langevin(atoms, timestep=1.0 * units.fs, temperature_K=300.0, friction=0.05,
                   fixcm=False, rng=np.random.default_rng(1))  # fmt: skip
    mon = StabilityMonitor(atoms, dyn, config=TEMP_ONLY, total_steps=100).attach()
    dyn.run(50)
    velocities_at(atoms, 1200.0)
    dyn.set_temperature(temperature_K=1200.0)
    mon.new_run()
    dyn.run(50)
    rep = mon.tracker.report()
    assert rep["status"] == "completed", rep["failure"]
    assert rep["series"]["t_max"][-1] == pytest.approx(3600.0)
    assert rep["series"]["t_max"][0] == pytest.approx(900.0)
    assert max(rep["series"]["temperature"]) > 900.0
    # a genuine overheating in stage 2 still fails against 3 x 1200 K
    velocities_at(atoms, 8000.0)
    assert not mon.new_run()  # the new stage's setup is checked at once
    ff = mon.tracker.first_failure
    assert ff["step"] == 100 and ff["threshold"] == pytest.approx(3600.0)


def test_monitor_nve_second_stage_uses_its_own_initial_temperature():
    from ase.md.verlet import VelocityVerlet

    atoms = copper()
    velocities_at(atoms, 300.0)
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    mon = StabilityMonitor(atoms, dyn, config=TEMP_ONLY, total_steps=60).attach()
    dyn.run(30)
    velocities_at(atoms, 1500.0)
    mon.new_run()
    dyn.run(30)
    rep = mon.tracker.report()
    assert rep["status"] == "completed", rep["failure"]
    assert rep["series"]["t_max"][0] == pytest.approx(900.0)
    assert rep["series"]["step"][3:5] == [30, 30]  # the end of run 1, the setup of run 2
    assert rep["series"]["temperature"][4] == pytest.approx(1500.0)
    assert rep["series"]["t_max"][4:] == pytest.approx([4500.0] * 4)


def test_nose_hoover_target_is_read_live():
    from ase.md.nose_hoover_chain import NoseHooverChainNVT

    from gnnff.stability.monitor import guess_target_temperature

    atoms = copper()
    dyn = NoseHooverChainNVT(atoms, timestep=units.fs, temperature_K=750.0, tdamp=100 * units.fs)
    assert guess_target_temperature(dyn) == pytest.approx(750.0)


# -- gnnff md options -----------------------------------------------------------------
def md_args(**kw) -> argparse.Namespace:
    base = dict(temperature=None, temperature_ramp=None, heating_ramp=False, time_ps=None,
                ensemble="nvt")  # fmt: skip
    return argparse.Namespace(**(base | kw))


def test_md_temperature_options():
    from gnnff.calculators.commands import _md_temperatures

    assert _md_temperatures(md_args(time_ps=1.0)) == (300.0, None, 1.0)
    assert _md_temperatures(md_args(heating_ramp=True)) == (300.0, 3000.0, 10.0)
    assert _md_temperatures(md_args(heating_ramp=True, time_ps=2.0)) == (300.0, 3000.0, 2.0)
    assert _md_temperatures(md_args(temperature_ramp=[300.0, 2400.0], time_ps=1.0)) == (
        300.0,
        2400.0,
        1.0,
    )
    with pytest.raises(ValueError, match="give one of --temperature, --temperature-ramp"):
        _md_temperatures(md_args(temperature=300.0, temperature_ramp=[300.0, 900.0]))
    with pytest.raises(ValueError, match="NVT run"):
        _md_temperatures(md_args(heating_ramp=True, ensemble="nve"))
    with pytest.raises(ValueError, match="--time-ps is required"):
        _md_temperatures(md_args(temperature=500.0))
    with pytest.raises(ValueError, match="langevin or bussi"):
        ramp_settings(thermostat="nose-hoover").validate()


def test_report_plot_draws_the_bound_of_every_check(tmp_path):
    """report.png's T_max line follows the live bound (a ramp), not the last check's value."""
    from ase.build import bulk

    from gnnff.stability import Snapshot, StabilityConfig, StabilityTracker
    from gnnff.stability.plot import plot_report

    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    tracker = StabilityTracker(StabilityConfig(), None, "nvt", None, 0.004)
    targets = [300.0, 600.0, 900.0, 1200.0, 1500.0]
    for k, target in enumerate(targets):
        snap = Snapshot(step=k, time_ps=k * 0.001, numbers=atoms.numbers,
                        positions=atoms.positions, cell=np.array(atoms.cell), pbc=atoms.pbc,
                        potential_energy=-10.0, kinetic_energy=1.0, temperature=target,
                        forces=np.zeros((len(atoms), 3)))  # fmt: skip
        tracker.update(snap, target_temperature=target)
    rep = tracker.report()
    fig = plot_report(rep, tmp_path / "report.png")
    ax = next(a for a in fig.axes if a.get_label() == "temperature")
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "T_max")
    np.testing.assert_allclose(line.get_ydata(), [3.0 * t for t in targets])


# -- a ramp has no structural reference in its own start -----------------------------------
RDF_TOO = StabilityConfig(
    interval=10, criteria=["finite", "temperature", "rdf"], rdf_window_ps=0.05
)


def rdf_entry(rep: dict) -> dict:
    return next(c for c in rep["criteria"] if c["name"] == "rdf")


@pytest.mark.parametrize("temperature_end", [2400.0, None])
def test_rdf_against_the_first_window_does_not_apply_under_a_ramp(tmp_path, temperature_end):
    """A heating ramp melts the structure on purpose: its first window (at 300 K) is no
    reference for its 2400 K end, so the RDF says why it does not apply (the heating-ramp
    scores of issue 25 were ended by exactly that false failure); at a fixed target it applies."""
    from gnnff.calculators.md import run_md

    settings = ramp_settings(temperature_end=temperature_end, time_ps=0.1)
    rep = run_md(copper(), EMT(), settings, tmp_path, stability_config=RDF_TOO,
                 reference="none", progress=False)  # fmt: skip
    entry = rdf_entry(rep)
    if temperature_end is None:
        assert entry["applicable"] is True and entry["reference_source"] == "first_window"
    else:
        assert entry["applicable"] is False
        assert "changed over the run (300 -> 2400 K)" in entry["reason"]
        assert "rdf_reference" in entry["reason"]
        assert rep["stability_index"] == 1.0


def test_a_reference_rdf_still_judges_a_ramp():
    """With a reference g(r) (not the run's own start) the RDF applies under a ramp; a target
    that moves by less than 5 % is no ramp."""
    from types import SimpleNamespace

    from gnnff.stability.criteria import CriterionContext, NotApplicable
    from gnnff.stability.rdf_criterion import RDFStructure

    cfg = StabilityConfig()
    ref = SimpleNamespace(has_rdf=True, rdf_rmax=6.0, rdf_nbins=120, rdf_total=np.ones(120),
                          rdf_partial={})  # fmt: skip
    crit = RDFStructure.from_config(cfg, CriterionContext(reference=ref, target_ramp=(300, 3000)))
    assert crit.reference_source == "reference"
    assert RDFStructure.from_config(cfg, CriterionContext(target_ramp=(1000, 1040)))
    with pytest.raises(NotApplicable, match="ramped"):
        RDFStructure.from_config(cfg, CriterionContext(target_ramp=(1000, 900)))
