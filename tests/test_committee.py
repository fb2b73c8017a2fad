"""Committee selection of `gnnff stabilize` (DP-GEN convention): the max force deviation's exact
values, its config errors, an exploration run with a committee of two models (stored deviations
recomputed from the calculators; the MD unchanged), and selection by the thresholds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from gnnff.active.committee import classify, max_force_deviation
from gnnff.active.config import StabilizeConfigError, load

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_stabilize import _write_configs  # noqa: E402


def test_max_force_deviation_exact_values():
    # K = 2, N = 2: atom 0 forces (+-1, 0, 0): deviation 1; atom 1 (0,0,0) and (0,0,3):
    # mean (0,0,1.5), deviation 1.5 -> max 1.5
    f = np.array([[[1.0, 0, 0], [0, 0, 0]], [[-1.0, 0, 0], [0, 0, 3.0]]])
    assert max_force_deviation(f) == pytest.approx(1.5, abs=1e-15)
    # K = 3, one atom, x forces 0, 3, 6: mean 3, <d^2> = (9 + 0 + 9) / 3 = 6 -> sqrt(6)
    f3 = np.array([[[0.0, 0, 0]], [[3.0, 0, 0]], [[6.0, 0, 0]]])
    assert max_force_deviation(f3) == pytest.approx(np.sqrt(6.0), abs=1e-15)
    # a vector deviation: (1, 2, 2) vs (-1, -2, -2): |d| = 3 for both models
    fv = np.array([[[1.0, 2, 2]], [[-1.0, -2, -2]]])
    assert max_force_deviation(fv) == pytest.approx(3.0, abs=1e-15)
    # a force common to every model does not change it; identical models give 0
    rng = np.random.default_rng(0)
    shift = rng.normal(size=(1, 2, 3))
    assert max_force_deviation(f + shift) == pytest.approx(1.5, abs=1e-12)
    assert max_force_deviation(np.repeat(shift, 4, axis=0)) == 0.0
    for bad in (np.zeros((1, 2, 3)), np.zeros((2, 2)), np.zeros((2, 0, 3)), np.zeros((2, 2, 2))):
        with pytest.raises(ValueError, match="shape"):
            max_force_deviation(bad)
    with pytest.raises(ValueError, match="non-finite"):
        max_force_deviation(np.full((2, 1, 3), np.nan))
    # the thresholds: f_lo is a candidate, f_hi is failed
    assert [classify(x, 0.1, 0.3) for x in (0.0999, 0.1, 0.2999, 0.3)] == [
        "accurate",
        "candidate",
        "candidate",
        "failed",
    ]


def test_committee_config_errors(quick_data, tmp_path):
    def cfg(committee, **explore):
        ex = {"runs": [{"structure": str(quick_data / "train.extxyz"), "temperature": 300.0}]}
        ex.update(explore)
        return _write_configs(tmp_path, quick_data, explore=ex, select={"committee": committee})

    ok = load(cfg({"size": 3, "f_lo": 0.1, "f_hi": 0.3}))["select"]["committee"]
    assert ok == {"size": 3, "f_lo": 0.1, "f_hi": 0.3, "max_frames": 10, "interval": 10}
    assert load(cfg(None))["select"]["committee"] is None  # off by default
    with pytest.raises(
        StabilizeConfigError, match=r"select.committee.size must be an integer >= 2"
    ):
        load(cfg({"size": 1, "f_lo": 0.1, "f_hi": 0.3}))
    with pytest.raises(StabilizeConfigError, match=r"f_lo \(0.3 eV/A\) must be below f_hi"):
        load(cfg({"size": 2, "f_lo": 0.3, "f_hi": 0.3}))
    with pytest.raises(StabilizeConfigError, match="needs explore.engine ase"):
        load(cfg({"size": 2, "f_lo": 0.1, "f_hi": 0.3}, engine="lammps"))
    with pytest.raises(StabilizeConfigError, match=r"needs \['f_hi'\]"):
        load(cfg({"size": 2, "f_lo": 0.1}))
    with pytest.raises(StabilizeConfigError, match="unknown key select.committee.sigma"):
        load(cfg({"size": 2, "f_lo": 0.1, "f_hi": 0.3, "sigma": 1}))


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two tiny untrained Allegro models (Si, O) with different seeds: a committee of two."""
    import torch

    from gnnff.potentials import build_model, export_model

    out = tmp_path_factory.mktemp("committee")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = build_model(
            {"family": "allegro", "species": ["Si", "O"], "cutoff": 4.0, "num_layers": 1,
             "num_scalar": 8, "num_tensor": 2, "mlp_hidden": [8]}
        )  # fmt: skip
        paths.append(str(export_model(m.double(), out / f"m{seed}.pt", dtype="float64")))
    return paths


@pytest.mark.slow
def test_exploration_with_a_committee_of_two_models(quick_data, tmp_path, two_models):
    """MD driven by the main model, the member evaluated every 2 steps: every checked frame is
    a candidate (f_hi huge), its stored deviation equals one recomputed from the two
    calculators, and the run's stability is that of the same run without a committee."""
    import ase.io

    from gnnff.active.loop import StabilizeLoop
    from gnnff.calculators import GNNFFCalculator

    main, member = two_models
    start = str(quick_data / "reference_md" / "a-SiO1.10_1000K.extxyz")
    explore = {
        "time_ps": 0.01,
        "check_interval": 5,
        "runs": [{"structure": start, "temperature": 1000.0, "seed": 3}],
    }

    def explore_with(committee, name):
        p = _write_configs(
            tmp_path, quick_data, initial_model=main, max_rounds=0, explore=explore,
            select={"committee": committee},
        )  # fmt: skip
        loop = StabilizeLoop(load(p), tmp_path / name, log=lambda *a: None)
        members = [member] if committee else None
        (row,) = loop._explore(tmp_path / name / "round_001", main, members)
        return row, tmp_path / name / "round_001" / "explore" / "run_00"

    row, rund = explore_with({"size": 2, "f_lo": 0.0, "f_hi": 1e6, "interval": 2}, "com")
    counts = json.loads((rund / "committee.json").read_text())
    frames = ase.io.read(rund / "committee.extxyz", index=":")
    steps = [a.info["step"] for a in frames]
    assert counts["checked"] == counts["candidate"] == len(frames) >= 3
    assert counts["accurate"] == counts["failed"] == 0
    assert steps == list(range(0, 2 * len(frames), 2))
    calcs = [GNNFFCalculator(main), GNNFFCalculator(member)]
    for a in frames:
        assert a.calc is None  # no model labels
        assert {"time_ps", "temperature", "source"} <= set(a.info)
        assert a.info["time_ps"] == pytest.approx(a.info["step"] / 1000.0)
        forces = []
        for c in calcs:
            b = a.copy()
            b.calc = c
            forces.append(b.get_forces())
        dev = max_force_deviation(np.stack(forces))
        assert dev > 1e-3  # two different models disagree
        assert a.info["model_deviation"] == pytest.approx(dev, rel=1e-5, abs=1e-6)
    assert counts["max_deviation"] == pytest.approx(max(a.info["model_deviation"] for a in frames))
    plain, plain_dir = explore_with(None, "plain")
    assert plain == row  # the committee does not change the MD: the same report, check by check
    report = (rund / "report.json").read_text().replace(str(tmp_path / "com"), "")
    assert (plain_dir / "report.json").read_text().replace(str(tmp_path / "plain"), "") == report
    assert not (plain_dir / "committee.extxyz").exists()


def test_observer_counts_thresholds_and_interval():
    """The observer on a frame with two Lennard-Jones calculators (main and member differ in
    sigma): the deviation is that of the two force sets, checked every ``interval`` steps only,
    and a frame at or above f_hi is counted failed and not kept."""
    from ase.calculators.lj import LennardJones

    from gnnff.active.committee import CommitteeObserver

    rng = np.random.default_rng(2)
    atoms = Atoms("Ar6", positions=rng.uniform(0, 6, (6, 3)), cell=[6, 6, 6], pbc=True)
    atoms.calc = LennardJones(sigma=1.0, epsilon=0.01, rc=2.9)
    member = LennardJones(sigma=1.05, epsilon=0.01, rc=2.9)
    ref = atoms.copy()
    ref.calc = member
    dev = max_force_deviation(np.stack([atoms.get_forces(), ref.get_forces()]))
    assert dev > 0
    for f_lo, f_hi, kind in ((0.0, 2 * dev, "candidate"), (0.0, dev, "failed"),
                             (2 * dev, 3 * dev, "accurate")):  # fmt: skip
        obs = CommitteeObserver([member], f_lo, f_hi, interval=3, dt_fs=2.0, source="x")
        for step in range(7):  # checks at 0, 3, 6
            obs(atoms, step)
        assert obs.counts["checked"] == obs.counts[kind] == 3
        assert len(obs.frames) == (3 if kind == "candidate" else 0)
        assert obs.max_deviation == pytest.approx(dev, rel=1e-12)
    obs = CommitteeObserver([member], 0.0, 2 * dev, interval=3, dt_fs=2.0, source="x")
    obs(atoms, 6)
    (frame,) = obs.frames
    assert frame.info["model_deviation"] == pytest.approx(dev, rel=1e-12)
    assert frame.info["time_ps"] == pytest.approx(0.012) and frame.calc is None


def _frame(pos, **info) -> Atoms:
    a = Atoms("Si4", positions=pos, cell=[8, 8, 8], pbc=True)
    a.info.update(info)
    return a


def test_committee_selection_thresholds_dedupe_and_cap(tmp_path):
    import ase.io

    from gnnff.active.selection import select_committee_frames

    rng = np.random.default_rng(1)
    base = rng.uniform(0, 8, (4, 3))
    runs = [tmp_path / "run_00", tmp_path / "run_01"]
    for d in runs:
        d.mkdir()
    frames = [
        _frame(base + 0.5, step=10, model_deviation=0.2),
        _frame(base + 1.0, step=20, model_deviation=0.5),  # >= f_hi: unphysical, not selected
        _frame(base + 0.51, step=30, model_deviation=0.25),  # 0.01 A from step 10: duplicate
        _frame(base + 1.5, step=40, model_deviation=0.1),  # == f_lo: a candidate
    ]
    ase.io.write(runs[0] / "committee.extxyz", frames, format="extxyz")
    (runs[1] / "committee.extxyz").write_text("")  # a run without candidates
    failing = _frame(base + 1.5 + 0.02, step=45)  # a failure frame of run 0 near step 40
    failing.info["source_file"] = str(runs[0] / "failing.extxyz")
    files = [d / "committee.extxyz" for d in runs]
    chosen, counts = select_committee_frames(files, [failing], 10, 0.05, 0.1, 0.3)
    # largest deviation first: 0.5 out of range, 0.25 kept, 0.2 a duplicate of it, 0.1 a
    # duplicate of the failure frame
    assert [a.info["step"] for a in chosen] == [30]
    assert counts == {
        "committee_candidates": 4,
        "committee_out_of_range": 1,
        "committee_duplicates": 2,
        "committee_selected": 1,
    }
    chosen, counts = select_committee_frames(files, [], 10, 0.05, 0.1, 0.6)
    assert [a.info["step"] for a in chosen] == [20, 30, 40]
    chosen, counts = select_committee_frames(files, [], 1, 0.05, 0.1, 0.6)
    assert [a.info["step"] for a in chosen] == [20] and counts["committee_selected"] == 1


def test_no_frame_selected_names_the_committee_thresholds(quick_data, tmp_path):
    from gnnff.active.loop import StabilizeError, StabilizeLoop
    from gnnff.calculators.pretrained import pretrained_path

    start = str(quick_data / "reference_md" / "a-SiO1.10_1000K.extxyz")
    p = _write_configs(
        tmp_path, quick_data, initial_model=str(pretrained_path("sio2-allegro-baseline")),
        explore={"runs": [{"structure": start, "temperature": 1000.0}]},
        select={"committee": {"size": 2, "f_lo": 0.05, "f_hi": 0.4}},
    )  # fmt: skip
    loop = StabilizeLoop(load(p), tmp_path / "out", log=lambda *a: None)
    rdir = tmp_path / "out" / "round_001"
    (rdir / "explore" / "run_00").mkdir(parents=True)
    (rdir / "explore" / "run_00" / "committee.extxyz").write_text("")
    row = {"run": 0, "stability_index": 0.5, "failed_criterion": "close_contact",
           "failed_pair": "Si-Si", "threshold": 1.9}  # fmt: skip
    with pytest.raises(StabilizeError, match=r"\[f_lo, f_hi\) = \[0.05, 0.4\) eV/A"):
        loop._select_and_label(rdir, [row])


@pytest.mark.slow
def test_loop_with_a_committee(quick_data, tmp_path):
    """A loop from an initial model with a committee of 2: round 0 fine-tunes the member,
    each retraining trains main model and member, committee frames come after failure frames,
    and stabilize.md reports the accurate / candidate / failed fractions."""
    import torch
    from stabilize_fixtures import Interrupted, InterruptingLoop

    from gnnff.active.loop import StabilizeLoop
    from gnnff.potentials import build_model, export_model

    torch.manual_seed(0)
    m = build_model(
        {"family": "allegro", "species": ["Si", "O"], "cutoff": 4.0, "num_layers": 1,
         "num_scalar": 8, "num_tensor": 2, "mlp_hidden": [8]}
    ).double()  # fmt: skip
    # large random forces: the untrained model's MD fails, so the loop labels and retrains
    m.set_species_shift_scale(torch.tensor([0.0, 0.0]), torch.tensor([30.0, 30.0]))
    initial = str(export_model(m, tmp_path / "hot.pt", dtype="float64"))

    start = str(quick_data / "reference_md" / "a-SiO1.10_1000K.extxyz")
    p = _write_configs(
        tmp_path, quick_data, initial_model=initial,
        explore={"time_ps": 0.03, "check_interval": 5,
                 "runs": [{"structure": start, "temperature": 3000.0, "seed": 1}]},
        select={"failure_frames": 1, "max_frames_per_round": 2,
                "committee": {"size": 2, "f_lo": 0.0, "f_hi": 1e6, "max_frames": 2}},
    )  # fmt: skip
    out = tmp_path / "out"
    with pytest.raises(Interrupted):  # stopped after the member of round 0 (a unit)
        InterruptingLoop(load(p), out, log=lambda *a: None, stop_after_units=1).run()
    assert (out / "round_000" / "train_member_1" / "model.pt").is_file()
    summary = StabilizeLoop(load(p), out, resume=True, log=lambda *a: None).run()
    again = StabilizeLoop(load(p), out, resume=True, log=lambda *a: None).run()
    assert again["rounds"] == summary["rounds"]  # every unit cached
    assert (out / "round_000" / "train_member_1" / "model.pt").is_file()
    cpu0 = json.loads((out / "round_000" / "cpu.json").read_text())
    assert set(cpu0) == {"train_member_1"} and summary["initial_training_cpu_s"] > 0
    first = summary["rounds"][0]
    assert first["members"] == [str(out / "round_000" / "train_member_1" / "model.pt")]
    assert first["committee"]["checked"] == first["committee"]["candidate"] > 0
    report = (out / "stabilize.md").read_text()
    assert "| round | checked | accurate | candidate | failed |" in report
    assert first["runs"][0]["stability_index"] < 1.0  # retrained: main model and member
    sel = json.loads((out / "round_001" / "select.json").read_text())
    assert sel["committee_selected"] == 2 and sel["selected"] <= 2
    assert first["frames_added"] == sel["selected"] + 2
    assert (out / "round_001" / "train_member_1" / "model.pt").is_file()
    assert summary["rounds"][1]["members"] == [
        str(out / "round_001" / "train_member_1" / "model.pt")
    ]
