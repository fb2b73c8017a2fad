"""`gnnff stabilize`: the active-learning loop on the quick data, its labels, resume after a
kill between units, and its bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from stabilize_fixtures import Interrupted, InterruptingLoop

from gnnff.active.config import StabilizeConfigError, load
from gnnff.active.loop import StabilizeLoop


def _write_configs(tmp: Path, data: Path, **over) -> Path:
    train = {
        "data": {"train": str(data / "train.extxyz"), "valid": str(data / "valid.extxyz")},
        "model": {
            "family": "allegro",
            "cutoff": 4.0,
            "num_layers": 1,
            "num_scalar": 8,
            "num_tensor": 2,
            "mlp_hidden": [8],
        },
        "training": {"epochs": 1, "batch_size": 8, "seed": 0, "progress": False, "num_threads": 2},
    }
    (tmp / "train.yaml").write_text(yaml.safe_dump(train))
    cfg = {
        "train_config": "train.yaml",
        "reference": {"preset": "sio2-tersoff"},
        "explore": {
            "time_ps": 0.05,
            "check_interval": 5,
            "runs": [
                {
                    "structure": str(data / "reference_md" / "a-SiO1.10_1000K.extxyz"),
                    "index": 0,
                    "temperature": 3000.0,
                    "seed": 1,
                }
            ],
        },
        "select": {"failure_frames": 2, "max_frames_per_round": 3},
        "retrain": {"mode": "finetune", "epochs": 1},
        "max_rounds": 1,  # round 1 explores, labels, retrains; round 2 explores again
    }
    cfg.update(over)
    (tmp / "stab.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "stab.yaml"


@pytest.fixture(scope="module")
def loop_run(quick_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stab")
    cfg = load(_write_configs(tmp, quick_data))
    summary = StabilizeLoop(cfg, tmp / "out", log=lambda *a: None).run()
    return tmp, cfg, summary


def test_two_round_loop_end_to_end(loop_run):
    tmp, cfg, summary = loop_run
    out = tmp / "out"
    assert (out / "stabilize.md").is_file() and (out / "stabilize.png").is_file()
    rounds = summary["rounds"]
    # a one-epoch model at 3000 K fails: the loop labels and retrains, then explores again
    assert rounds[0]["runs"][0]["stability_index"] < 1.0
    assert summary["status"] in ("max_rounds", "converged")
    added = [r["frames_added"] for r in rounds]
    assert summary["frames_added_total"] == sum(added) > 0
    merged = out / "round_001" / "train.extxyz"
    import ase.io

    base = len(ase.io.read(cfg_train(tmp), index=":"))
    assert len(ase.io.read(merged, index=":")) == base + added[0]
    assert Path(summary["final_model"]).is_file()
    # a retrained model records what labelled its data: the loop's reference and the base set's
    from gnnff.potentials import read_metadata

    labels = read_metadata(out / "round_001" / "train" / "model.pt")["training"]["labels"]
    assert labels["preset"] == "sio2-tersoff" and labels["base_labels"]["preset"] == "sio2-tersoff"


def cfg_train(tmp: Path) -> str:
    return yaml.safe_load((tmp / "train.yaml").read_text())["data"]["train"]


def test_labels_equal_a_direct_reference_calculation(loop_run):
    import ase.io

    from gnnff.data.presets import load_preset
    from gnnff.data.reference_md import ReferenceMD

    tmp, _, _ = loop_run
    labelled = ase.io.read(tmp / "out" / "round_001" / "labelled.extxyz", index=":")
    assert labelled and all(a.calc is not None for a in labelled)
    spec = load_preset("sio2-tersoff")["lammps"]
    for a in labelled[:2]:
        with ReferenceMD(a, spec, 1.0, 100.0) as md:
            rot = np.linalg.solve(a.cell.array, md.atoms.cell.array)
            moved = md.atoms.copy()
            moved.positions = a.positions @ rot
            e, f = md.evaluate(moved)
        assert a.get_potential_energy() == pytest.approx(e, abs=1e-6)
        np.testing.assert_allclose(a.get_forces() @ rot, f, atol=1e-6)
    # provenance survives labelling
    assert "source_file" in labelled[0].info and "criterion" in labelled[0].info


def test_resume_after_kill_between_units_gives_the_same_result(loop_run):
    tmp, cfg, summary = loop_run
    out = tmp / "killed"
    for units in (2, 3):  # stop after a few units, twice, then finish
        with pytest.raises(Interrupted):
            InterruptingLoop(
                cfg,
                out,
                resume=(out / "config.json").exists(),
                log=lambda *a: None,
                stop_after_units=units,
            ).run()
    resumed = StabilizeLoop(cfg, out, resume=True, log=lambda *a: None).run()
    strip = [[{k: v for k, v in run.items()} for run in r["runs"]] for r in summary["rounds"]]
    got = [[{k: v for k, v in run.items()} for run in r["runs"]] for r in resumed["rounds"]]
    assert got == strip
    assert [r["frames_added"] for r in resumed["rounds"]] == [
        r["frames_added"] for r in summary["rounds"]
    ]
    a = (tmp / "out" / "round_001" / "labelled.extxyz").read_text()
    b = (out / "round_001" / "labelled.extxyz").read_text()
    assert a.replace(str(tmp / "out"), "") == b.replace(str(out), "")


def test_bad_input(quick_data, tmp_path):
    p = _write_configs(tmp_path, quick_data, reference={"calculator": "ase.calculators.emt:Nope"})
    with pytest.raises(StabilizeConfigError, match="has no 'Nope'"):
        load(p)
    p = _write_configs(tmp_path, quick_data, reference={"calculator": "json:JSONDecoder"})
    with pytest.raises(StabilizeConfigError, match="is not an ASE calculator"):
        load(p)
    p = _write_configs(tmp_path, quick_data, reference={"calculator": "no_such_pkg_x:Calc"})
    with pytest.raises(StabilizeConfigError, match="cannot import 'no_such_pkg_x'"):
        load(p)
    p = _write_configs(tmp_path, quick_data, retrain={"mode": "sometimes"})
    with pytest.raises(StabilizeConfigError, match="retrain.mode must be one of"):
        load(p)
    # exploration structures with a species the model lacks: refused before round 1
    import ase.io
    from ase import Atoms

    ase.io.write(
        tmp_path / "al.extxyz",
        Atoms("Al2", positions=[[0, 0, 0], [2, 0, 0]], cell=[8, 8, 8], pbc=True),
    )
    p = _write_configs(
        tmp_path,
        quick_data,
        explore={"runs": [{"structure": str(tmp_path / "al.extxyz"), "temperature": 300.0}]},
    )
    with pytest.raises(StabilizeConfigError, match=r"holds \['Al'\], which the model lacks"):
        StabilizeLoop(load(p), tmp_path / "o", log=lambda *a: None)
    assert not (tmp_path / "o").exists()


def test_resume_may_change_max_rounds_but_not_what_decides_results(quick_data, tmp_path):
    """max_rounds only says where the loop stops (a resumed loop may go on longer or stop
    sooner); any key that decides a round's results must match the stored config."""
    StabilizeLoop(load(_write_configs(tmp_path, quick_data, max_rounds=0)), tmp_path / "o")
    stored = json.loads((tmp_path / "o" / "config.json").read_text())
    StabilizeLoop(
        load(_write_configs(tmp_path, quick_data, max_rounds=3)), tmp_path / "o", resume=True
    )
    assert json.loads((tmp_path / "o" / "config.json").read_text())["max_rounds"] == 3
    assert stored["max_rounds"] == 0
    with pytest.raises(StabilizeConfigError, match="config differs"):
        StabilizeLoop(
            load(_write_configs(tmp_path, quick_data, seed=7)), tmp_path / "o", resume=True
        )


def test_a_reference_preset_file_is_relative_to_the_config_file(quick_data, tmp_path, monkeypatch):
    """reference.preset given as a YAML file follows the path rule of every other path in the
    config (its folder), whatever the working directory; a missing one names the path."""
    import shutil

    from gnnff.data.presets import PRESET_DIR

    shutil.copy(PRESET_DIR / "sio2-tersoff.yaml", tmp_path / "my_preset.yaml")
    monkeypatch.chdir(quick_data)
    cfg = load(_write_configs(tmp_path, quick_data, reference={"preset": "my_preset.yaml"}))
    assert cfg["reference"]["preset"] == str(tmp_path / "my_preset.yaml")
    with pytest.raises(StabilizeConfigError, match=r"reference.preset: .*nope.yaml not found"):
        load(_write_configs(tmp_path, quick_data, reference={"preset": "nope.yaml"}))
    named = load(_write_configs(tmp_path, quick_data, reference={"preset": "sio2-tersoff"}))
    assert named["reference"]["preset"] == "sio2-tersoff"


def test_failed_labels_are_skipped_and_all_failing_stops(tmp_path):
    from ase import Atoms

    from gnnff.active.labelling import Labeller

    lab = Labeller({"calculator": "ase.calculators.emt:EMT", "kwargs": {}})
    ok = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]], cell=[10, 10, 10], pbc=True)
    fused = Atoms("Cu2", positions=[[0, 0, 0], [0.3, 0, 0]], cell=[10, 10, 10], pbc=True)
    res = lab.label([ok, fused])
    assert len(res.frames) == 1 and len(res.skipped) == 1
    assert "closest pair" in res.skipped[0]["reason"]
    from ase.calculators.emt import EMT

    a = ok.copy()
    a.calc = EMT()
    assert res.frames[0].get_potential_energy() == pytest.approx(a.get_potential_energy())


def test_selection_round_robin_dedupe_and_cap(tmp_path):
    import ase.io
    from ase import Atoms

    from gnnff.active.selection import select_frames

    rng = np.random.default_rng(0)
    base = Atoms("Si4", positions=rng.uniform(0, 8, (4, 3)), cell=[8, 8, 8], pbc=True)
    files = []
    for run in range(2):
        frames = []
        for k, shift in enumerate([0.0, 0.01, 0.3]):  # the 2nd is a near-duplicate of the 1st
            a = base.copy()
            a.positions += shift + run
            a.info.update(step=10 * k, is_failure=k == 2, atom_indices=np.array([-1, -1]))
            frames.append(a)
        ase.io.write(tmp_path / f"f{run}.extxyz", frames, format="extxyz")
        files.append(tmp_path / f"f{run}.extxyz")
    chosen, counts = select_frames(files, max_frames=10, min_distance=0.05)
    # failing frames first, round-robin over runs, the 0.01 A step dropped as a duplicate
    assert [(a.info["source_file"][-9:], a.info["step"]) for a in chosen] == [
        ("f0.extxyz", 20),
        ("f1.extxyz", 20),
        ("f0.extxyz", 10),
        ("f1.extxyz", 10),
    ]
    assert counts == {"candidates": 6, "duplicates": 2, "selected": 4, "capped": 0}
    chosen, counts = select_frames(files, max_frames=3, min_distance=0.05)
    assert len(chosen) == 3 and counts["capped"] == 6 - counts["duplicates"] - 3 > 0


def test_lammps_exploration_unit(quick_data, tmp_path):
    """explore.engine lammps: one run of the bundled NVT input under fix gnnff/stability, judged
    against the base training set like an ASE run."""
    from gnnff.calculators.pretrained import pretrained_path

    p = _write_configs(
        tmp_path,
        quick_data,
        initial_model=str(pretrained_path("sio2-allegro-baseline")),
        explore={
            "engine": "lammps",
            "np": 1,
            "time_ps": 0.03,
            "check_interval": 5,
            "runs": [
                {
                    "structure": str(quick_data / "reference_md" / "a-SiO1.10_1000K.extxyz"),
                    "temperature": 1000.0,
                    "seed": 2,
                }
            ],
        },
    )
    loop = StabilizeLoop(load(p), tmp_path / "out", log=lambda *a: None)
    (row,) = loop._explore(tmp_path / "out" / "round_001", loop.cfg["initial_model"])
    rund = tmp_path / "out" / "round_001" / "explore" / "run_00"
    report = json.loads((rund / "report.json").read_text())
    assert row["stability_index"] == report["stability_index"]
    assert report["n_checks"] >= 2 and report["t_run_ps"] == pytest.approx(0.03)
    close = next(c for c in report["criteria"] if c["name"] == "close_contact")
    assert set(close["pair_source"].values()) == {"reference"}  # the base training set
    if row["stability_index"] < 1.0:
        assert (rund / "failing.extxyz").is_file()
    with pytest.raises(StabilizeConfigError, match="explore.engine lammps runs the bundled"):
        load(
            _write_configs(
                tmp_path, quick_data, explore={"engine": "lammps", "dt_fs": 0.5, "runs": []}
            )
        )


@pytest.mark.slow
def test_parallel_exploration_and_evaluation_only(quick_data, tmp_path):
    """explore.workers 2 runs two starts in worker processes (same table, in run order, as one
    at a time), max_rounds 0 only measures initial_model, and a loop started with one worker
    resumes with two (workers do not decide results)."""
    from gnnff.calculators.pretrained import pretrained_path

    md = str(quick_data / "reference_md" / "a-SiO1.10_1000K.extxyz")
    runs = [{"structure": md, "index": i, "temperature": 1000.0, "seed": i + 1} for i in (0, 1)]
    model = str(pretrained_path("sio2-allegro-baseline"))

    def config(workers: int) -> dict:
        explore = {"time_ps": 0.02, "check_interval": 5, "workers": workers, "runs": runs}
        return load(
            _write_configs(tmp_path, quick_data, initial_model=model, max_rounds=0, explore=explore)
        )

    serial = StabilizeLoop(config(1), tmp_path / "serial", log=lambda *a: None).run()
    parallel = StabilizeLoop(config(2), tmp_path / "parallel", log=lambda *a: None).run()
    for summary in (serial, parallel):
        assert len(summary["rounds"]) == 1 and summary["frames_added_total"] == 0
        assert summary["final_model"] == model  # nothing retrained
    rows_s, rows_p = serial["rounds"][0]["runs"], parallel["rounds"][0]["runs"]
    assert [r["run"] for r in rows_p] == [0, 1] and [r["index"] for r in rows_p] == [0, 1]
    for a, b in zip(rows_s, rows_p, strict=True):
        assert b["stable_time_ps"] == pytest.approx(a["stable_time_ps"], abs=0.011)
    assert json.loads((tmp_path / "parallel" / "round_001" / "cpu.json").read_text())["explore"] > 0
    resumed = StabilizeLoop(config(2), tmp_path / "serial", resume=True, log=lambda *a: None)
    assert resumed.run()["rounds"][0]["runs"] == rows_s
    with pytest.raises(StabilizeConfigError, match="explore.workers must be an integer >= 1"):
        config(0)


def test_an_evaluation_report_plots_each_run(tmp_path, monkeypatch):
    """A one-exploration evaluation (max_rounds 0, nothing added) plots each run's stable time
    and what ended it (a per-round plot would hold one point); a loop plots its rounds."""
    from gnnff.active import report

    drawn: list[str] = []
    monkeypatch.setattr(report, "_plot", lambda rows, path: drawn.append("rounds"))
    monkeypatch.setattr(report, "_plot_runs", lambda runs, path: drawn.append(f"{len(runs)} runs"))
    run = {"run": 0, "structure": "a.extxyz", "temperature": 1000.0, "stability_index": 0.5,
           "stable_time_ps": 1.0, "failed_criterion": "close_contact",
           "failed_pair": "O-O"}  # fmt: skip
    rnd = {"round": 1, "runs": [run, run | {"run": 1, "stability_index": 1.0,
                                            "stable_time_ps": 2.0, "failed_criterion": None}],
           "frames_added": 0}  # fmt: skip
    summary = {"status": "max_rounds", "final_model": "m.pt", "frames_added_total": 0,
               "reference": "base training set", "rounds": [rnd]}  # fmt: skip
    report.write_report(summary, tmp_path)
    report.write_report(summary | {"frames_added_total": 3, "rounds": [rnd | {"frames_added": 3}]},
                        tmp_path)  # fmt: skip
    assert drawn == ["2 runs", "rounds"]
    monkeypatch.undo()
    report.write_report(summary, tmp_path)  # the real per-run plot
    assert (tmp_path / "stabilize.png").stat().st_size > 1000
