"""`gnnff stabilize` from no data (issue 25 point 3): a preset samples rattled crystals, the
stand-in teacher labels them, round 0 trains on them, and the loop goes on as usual; interrupted
(Ctrl-C in the bootstrap's labelling, kills between units) and resumed it gives the same
result. Bad input is refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from stabilize_fixtures import Interrupted, InterruptingLoop
from teacher_fixtures import lj, rattled_quartz

from gnnff.active.config import StabilizeConfigError, load
from gnnff.active.loop import StabilizeLoop


def quiet(*args) -> None:
    pass


def _preset() -> dict:
    """Alpha-quartz, one cell (9 atoms), rattled at 300 and 900 K, 4 frames each, and a
    Tersoff reference-MD trajectory at 900 K (2 frames)."""
    from gnnff.data.presets import load_preset

    src = load_preset("sio2-tersoff")
    quartz = rattled_quartz(4)
    return {
        "name": "tiny-quartz",
        "description": "one rattled alpha-quartz cell (test)",
        "lammps": src["lammps"],  # declared sampler; the rattle needs no MD
        "id_split": {"train": 0.75, "valid": 0.125, "test_id": 0.125},
        "systems": [quartz],
        "equilibration_fs": 100,
        "reference_md": {
            "systems": ["alpha-quartz"],
            "temperatures": [900],
            "time_fs": 200,
            "frame_spacing_fs": 100,
        },
    }


def _write(tmp: Path, **over) -> Path:
    (tmp / "preset.yaml").write_text(yaml.safe_dump(_preset()))
    train = {  # data files that do not exist: the bootstrap provides them
        "data": {"train": "nothing/train.extxyz", "valid": "nothing/valid.extxyz"},
        "model": {
            "family": "allegro",
            "cutoff": 4.0,
            "num_layers": 1,
            "num_scalar": 8,
            "num_tensor": 2,
            "mlp_hidden": [8],
        },
        "training": {"epochs": 1, "batch_size": 4, "seed": 0, "progress": False},
    }
    (tmp / "train.yaml").write_text(yaml.safe_dump(train))
    cfg = {
        "train_config": "train.yaml",
        "bootstrap": {"preset": "preset.yaml", "seed": 3},
        "reference": {"teacher": "standin"},
        "explore": {
            "time_ps": 0.04,
            "check_interval": 5,
            "runs": [{"structure": "bootstrap:train.extxyz", "temperature": 3000.0, "seed": 1}],
        },
        "select": {"failure_frames": 2, "max_frames_per_round": 3},
        "retrain": {"mode": "finetune", "epochs": 1},
        "max_rounds": 2,
    }
    cfg.update(over)
    (tmp / "stab.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "stab.yaml"


def _frames_of_quartz():
    from gnnff.data.structures import crystal_structure

    return crystal_structure(_preset()["systems"][0]["crystal"], [1, 1, 1])


def _frames(path: Path):
    import ase.io

    return ase.io.read(path, index=":")


def test_bootstrap_interrupted_in_labelling_resumes_and_trains(standin, tmp_path):
    """The fast path: Ctrl-C while the teacher labels the bootstrap, --resume, then round 0
    trains on the bootstrap and one exploration measures it (max_rounds 0)."""
    runs = [
        {"structure": "bootstrap:train.extxyz", "temperature": 3000.0, "seed": 1},
        {"structure": "bootstrap:reference_md/alpha-quartz_900K.extxyz", "temperature": 900.0},
    ]
    cfg = load(_write(tmp_path, max_rounds=0, explore={"time_ps": 0.02, "runs": runs}))
    out = tmp_path / "out"
    standin["interrupt_at"] = 3
    with pytest.raises(KeyboardInterrupt):
        StabilizeLoop(cfg, out, log=quiet).run()
    assert not (out / "round_000" / "bootstrap").exists()  # nothing half-written
    assert not list((out / "round_000").glob(".bootstrap*"))
    assert len(list((out / "round_000" / "label_cache").glob("*.npz"))) == 3
    standin["interrupt_at"] = None
    with pytest.raises(StabilizeConfigError, match="--resume"):
        StabilizeLoop(cfg, out, log=quiet)
    summary = StabilizeLoop(cfg, out, resume=True, log=quiet).run()
    assert standin["n"] == 10  # 3 labels before the Ctrl-C, the other 7 after it
    boot = out / "round_000" / "bootstrap"
    manifest = json.loads((boot / "manifest.json").read_text())
    assert manifest["labels"]["teacher"] == "standin" and "from_cache" not in manifest["labels"]
    assert summary["bootstrap"]["frames"] == {
        "train.extxyz": 6,
        "valid.extxyz": 1,
        "test_id.extxyz": 1,
        "reference_md/alpha-quartz_900K.extxyz": 2,
    }
    for f in _frames(boot / "train.extxyz"):  # the teacher's labels
        g = f.copy()
        g.calc = lj()
        assert f.get_potential_energy() == pytest.approx(g.get_potential_energy(), abs=1e-6)
        np.testing.assert_allclose(f.get_forces(), g.get_forces(), atol=1e-6)
    trained = json.loads((out / "round_000" / "train" / "summary.json").read_text())
    assert trained["data"]["train"]["path"] == str((boot / "train.extxyz").resolve())
    assert trained["data"]["test"]["path"] == str((boot / "test_id.extxyz").resolve())
    assert trained["labels"]["teacher"] == "standin"  # the model records its teacher
    rows = summary["rounds"][0]["runs"]
    assert len(summary["rounds"]) == 1
    assert [r["structure"] for r in rows] == ["train.extxyz", "alpha-quartz_900K.extxyz"]
    # close contacts: the teacher-labelled bootstrap frames, never the student's MD
    from gnnff.stability.reference import StabilityReference

    explore = out / "round_001" / "explore"
    want = StabilityReference.from_frames(
        _frames(boot / "train.extxyz"), with_rdf=False, distance_cutoff=4.0
    )
    for name in ("reference.json", "reference_run_01.json"):
        used = json.loads((explore / name).read_text())
        assert used["pair_min_distances"] == pytest.approx(want.pair_min_distances)
    # RDF: the teacher-labelled reference-MD trajectory the run starts from; a run from
    # elsewhere is not judged by RDF (its only reference would be its own first window)
    rdf = StabilityReference.load(explore / "reference_run_01.json")
    md = StabilityReference.from_frames(
        _frames(boot / "reference_md" / "alpha-quartz_900K.extxyz"), distance_cutoff=4.0
    )
    assert rdf.n_rdf_frames == 2
    np.testing.assert_allclose(rdf.rdf_total, md.rdf_total)
    names = [
        [
            c["name"]
            for c in json.loads((explore / f"run_0{k}" / "report.json").read_text())["criteria"]
        ]
        for k in (0, 1)
    ]
    assert "rdf" not in names[0] and "close_contact" in names[0]
    assert "rdf" in names[1]
    assert summary["reference"] == "bootstrap training set train.extxyz (labelled by standin)"
    assert set(json.loads((out / "round_000" / "cpu.json").read_text())) == {"bootstrap", "train"}


@pytest.mark.slow
def test_loop_from_nothing_runs_two_rounds_and_resumes_the_same(standin, tmp_path):
    cfg = load(_write(tmp_path))
    out = tmp_path / "out"
    summary = StabilizeLoop(cfg, out, log=quiet).run()

    # round 0 trained on the bootstrap; two rounds labelled failure frames and retrained
    assert json.loads((out / "round_000" / "train" / "summary.json").read_text())
    rounds = summary["rounds"]
    assert len(rounds) == 3 and summary["status"] == "max_rounds"
    assert [r["frames_added"] > 0 for r in rounds] == [True, True, False]
    merged = _frames(out / "round_002" / "train.extxyz")
    assert len(merged) == 6 + rounds[0]["frames_added"] + rounds[1]["frames_added"]
    for f in _frames(out / "round_002" / "labelled.extxyz"):
        g = f.copy()
        g.calc = lj()
        np.testing.assert_allclose(f.get_forces(), g.get_forces(), atol=1e-6)
    # the same loop, Ctrl-C in the bootstrap's labelling, then killed twice between units
    killed = tmp_path / "killed"
    standin["interrupt_at"] = standin["n"] + 3
    with pytest.raises(KeyboardInterrupt):
        StabilizeLoop(cfg, killed, log=quiet).run()
    assert not (killed / "round_000" / "bootstrap").exists()  # nothing half-written
    assert len(list((killed / "round_000" / "label_cache").glob("*.npz"))) == 3
    standin["interrupt_at"] = None
    for units in (2, 4):
        with pytest.raises(Interrupted):
            InterruptingLoop(cfg, killed, resume=True, log=quiet, stop_after_units=units).run()
    resumed = StabilizeLoop(cfg, killed, resume=True, log=quiet).run()
    assert [r["runs"] for r in resumed["rounds"]] == [r["runs"] for r in rounds]
    assert [r["frames_added"] for r in resumed["rounds"]] == [r["frames_added"] for r in rounds]
    assert resumed["bootstrap"] == summary["bootstrap"]
    for name in ("round_000/bootstrap/train.extxyz", "round_000/bootstrap/valid.extxyz"):
        assert (killed / name).read_bytes() == (out / name).read_bytes()
    for r in ("round_001", "round_002"):
        a = (out / r / "labelled.extxyz").read_text().replace(str(out), "")
        b = (killed / r / "labelled.extxyz").read_text().replace(str(killed), "")
        assert a == b


def test_bad_bootstrap_input_is_refused_before_anything_is_written(standin, tmp_path, monkeypatch):
    with pytest.raises(StabilizeConfigError, match="bootstrap needs a reference"):
        load(_write(tmp_path, reference=None))
    with pytest.raises(StabilizeConfigError, match="exclude each other"):
        load(_write(tmp_path, initial_model="train.yaml"))
    with pytest.raises(StabilizeConfigError, match="unknown key bootstrap.quik"):
        load(_write(tmp_path, bootstrap={"preset": "preset.yaml", "quik": True}))
    with pytest.raises(StabilizeConfigError, match="bootstrap.preset: .*no_such.yaml not found"):
        load(_write(tmp_path, bootstrap={"preset": "no_such.yaml"}))
    runs = [{"structure": "bootstrap:train.extxyz", "temperature": 300.0}]
    with pytest.raises(StabilizeConfigError, match="there is no bootstrap section"):
        load(_write(tmp_path, bootstrap=None, explore={"runs": runs}))
    out = tmp_path / "out"
    # a preset with species the reference lacks: refused when the loop is set up
    cfg = load(_write(tmp_path, bootstrap={"preset": "hfo2-sevennet", "quick": True}))
    with pytest.raises(StabilizeConfigError, match="holds \\['Hf', 'O'\\].*no parameters for Hf"):
        StabilizeLoop(cfg, out, log=quiet)
    runs = [{"structure": "bootstrap:test.extxyz", "temperature": 300.0}]
    cfg = load(_write(tmp_path, explore={"runs": runs}))
    with pytest.raises(StabilizeConfigError, match="will hold .*'test_id.extxyz'"):
        StabilizeLoop(cfg, out, log=quiet)
    # no data, no bootstrap: the error says how to start from nothing
    import ase.io

    ase.io.write(tmp_path / "start.extxyz", _frames_of_quartz())
    runs = [{"structure": "start.extxyz", "temperature": 300.0}]
    cfg = load(_write(tmp_path, bootstrap=None, explore={"runs": runs}))
    with pytest.raises(StabilizeConfigError, match="data.train.*add a bootstrap section"):
        StabilizeLoop(cfg, out, log=quiet)
    assert not out.exists()
    # the teacher's extra not installed: the install line
    import gnnff.data.teacher as teacher_mod

    real = teacher_mod.importlib.util.find_spec
    monkeypatch.setattr(
        teacher_mod.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "sevenn" else real(name, *a),
    )
    with pytest.raises(StabilizeConfigError, match=r'pip install "gnnff\[teacher\]"'):
        load(_write(tmp_path, reference={"teacher": "sevennet-0"}))
