"""`gnnff md`: ASE MD with the monitor, its outputs, and an interrupted run."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
import torch

from gnnff.calculators import GNNFFCalculator
from gnnff.calculators.md import MDSettings, run_md
from gnnff.cli import main
from gnnff.data.structures import composition_counts, random_packing
from gnnff.potentials import build_model, export_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("md")
    torch.manual_seed(0)
    model = build_model(
        {
            "family": "allegro",
            "species": ["Si", "O"],
            "cutoff": 4.0,
            "num_scalar": 8,
            "num_tensor": 2,
            "mlp_hidden": [8],
        }
    )
    # a nearly flat model: MD with it stays sane for a few dozen steps
    for p in model.parameters():
        p.data.mul_(0.05)
    export_model(model, d / "m.pt")
    atoms = random_packing(
        composition_counts({"Si": 1, "O": 2}, 24), 2.2, 1.8, np.random.default_rng(0)
    )
    ase.io.write(d / "start.extxyz", atoms)
    return d


def test_gnnff_md_cli_writes_trajectory_and_report(setup, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "md",
            "--model",
            str(setup / "m.pt"),
            "--structure",
            str(setup / "start.extxyz"),
            "--ensemble",
            "nvt",
            "--temperature",
            "300",
            "--time-ps",
            "0.03",
            "--traj-interval",
            "5",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["t_run_ps"] == pytest.approx(0.03)
    assert 0.0 <= report["stability_index"] <= 1.0
    assert (out / "report.png").stat().st_size > 0
    frames = ase.io.read(out / "md.traj", index=":")
    assert len(frames) >= 2
    run = json.loads((out / "run.json").read_text())
    assert run["steps_done"] > 0 and run["settings"]["ensemble"] == "nvt"
    assert "S =" in capsys.readouterr().out


class _InterruptAfter(GNNFFCalculator):
    """Raises KeyboardInterrupt on the n-th force evaluation (a Ctrl-C mid-run)."""

    def __init__(self, *args, n: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.n = 0, n

    def calculate(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        super().calculate(*args, **kwargs)


def test_interrupted_run_leaves_valid_outputs(setup, tmp_path):
    atoms = ase.io.read(setup / "start.extxyz")
    calc = _InterruptAfter(setup / "m.pt", n=23)
    settings = MDSettings(
        ensemble="nve", temperature=300, time_ps=0.1, traj_interval=5, check_interval=5
    )
    with pytest.raises(KeyboardInterrupt):
        run_md(atoms, calc, settings, tmp_path, progress=False)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "interrupted"
    assert 0 < report["stable_time_ps"] < 0.1
    frames = ase.io.read(tmp_path / "md.traj", index=":")
    assert 2 <= len(frames) <= 5
    assert json.loads((tmp_path / "run.json").read_text())["steps_done"] < 100


def test_close_contact_reference_from_model_file(setup, tmp_path):
    """Without --reference, close contacts are judged against the training-data distances the
    model file stores; 'none' falls back on covalent radii; a file overrides both."""
    from gnnff.potentials import eager_from_file, read_metadata
    from gnnff.stability import StabilityReference

    meta = read_metadata(setup / "m.pt")
    stored = {"O-O": 2.2, "O-Si": 1.5, "Si-Si": 2.8}
    ref = StabilityReference(pair_min_distances=stored, species=["O", "Si"], n_frames=3)
    summary = {"stability_reference": ref.to_dict()}
    export_model(
        eager_from_file(setup / "m.pt"),
        tmp_path / "m_ref.pt",
        dtype=meta["dtype"],
        training_summary=summary,
    )
    explicit = tmp_path / "ref.json"
    StabilityReference(
        pair_min_distances={"O-O": 2.0, "O-Si": 1.6, "Si-Si": 3.0}, species=["O", "Si"]
    ).save(explicit)
    sources = {}
    for name, reference in [("model", "model"), ("none", "none"), ("file", str(explicit))]:
        out = tmp_path / name
        assert (
            main(
                [
                    "md",
                    "--model",
                    str(tmp_path / "m_ref.pt"),
                    "--structure",
                    str(setup / "start.extxyz"),
                    "--time-ps",
                    "0.02",
                    "--reference",
                    reference,
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        report = json.loads((out / "report.json").read_text())
        sources[name] = next(c for c in report["criteria"] if c["name"] == "close_contact")
    factor = sources["model"]["factor"]
    for key, d in stored.items():
        assert sources["model"]["pair_source"][key] == "reference"
        assert sources["model"]["pair_min_distance"][key] == pytest.approx(factor * d)
        assert sources["none"]["pair_source"][key] == "covalent"
    assert sources["file"]["pair_min_distance"]["O-Si"] == pytest.approx(factor * 1.6)


def test_md_bad_input(setup, tmp_path):
    assert (
        main(
            [
                "md",
                "--model",
                str(setup / "m.pt"),
                "--structure",
                str(tmp_path / "no.xyz"),
                "--time-ps",
                "0.01",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "md",
                "--model",
                "no-such-model",
                "--structure",
                str(setup / "start.extxyz"),
                "--time-ps",
                "0.01",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    with pytest.raises(ValueError, match="time_ps"):
        MDSettings(time_ps=-1).validate()


def test_md_refuses_to_overwrite_and_bad_input_leaves_earlier_run(setup, tmp_path):
    out = tmp_path / "keep"
    args = [
        "md",
        "--model",
        str(setup / "m.pt"),
        "--structure",
        str(setup / "start.extxyz"),
        "--time-ps",
        "0.01",
        "--traj-interval",
        "2",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert main(args) == 2  # a second run into the same folder needs --overwrite
    # a structure the model cannot take fails before anything in --out is touched
    bad = tmp_path / "h2o.extxyz"
    ase.io.write(
        bad,
        ase.Atoms(
            "H2O", positions=[[0, 0, 0], [0.9, 0, 0], [0, 0.9, 0]], cell=[10, 10, 10], pbc=True
        ),
    )
    calc = GNNFFCalculator(setup / "m.pt")
    with pytest.raises(ValueError, match="knows only"):
        run_md(ase.io.read(bad), calc, MDSettings(time_ps=0.01), out, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert main(args + ["--overwrite"]) == 0
    # thermostat options make no sense for NVE
    assert (
        main(
            args[:-2]
            + ["--ensemble", "nve", "--thermostat", "bussi", "--out", str(tmp_path / "nve")]
        )
        == 2
    )


def test_md_settings_and_structure_errors(setup, tmp_path):
    from gnnff.calculators.md import read_structure

    with pytest.raises(ValueError, match="temperature > 0"):
        MDSettings(ensemble="nvt", temperature=0.0).validate()
    MDSettings(ensemble="nve", temperature=0.0).validate()  # a run from rest is fine
    with pytest.raises(ValueError, match="shorter than one"):
        MDSettings(time_ps=0.0001, dt_fs=1.0).validate()
    with pytest.raises(ValueError, match="traj_interval"):
        MDSettings(traj_interval=0).validate()
    with pytest.raises(ValueError, match="seed"):
        MDSettings(seed=-1).validate()
    garbage = tmp_path / "garbage.xyz"
    garbage.write_text("hello world\n")
    with pytest.raises(ValueError, match="could not read .*garbage.xyz"):
        read_structure(garbage)
    with pytest.raises(ValueError, match="no frame 99"):
        read_structure(setup / "start.extxyz", 99)
    assert (
        main(
            [
                "md",
                "--model",
                str(setup / "m.pt"),
                "--structure",
                str(garbage),
                "--time-ps",
                "0.01",
                "--out",
                str(tmp_path / "g"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "g").exists()


def test_failed_run_writes_label_free_failure_frames(setup, tmp_path):
    """A run that fails leaves failing.extxyz: the frames up to the failing check, no model
    labels, the failure's fields, and the offending pair's atom indices (also in the report)."""
    from gnnff.stability import StabilityReference
    from gnnff.stability.failing import read_failing_frames

    atoms = ase.io.read(setup / "start.extxyz")
    atoms.info.update(temperature=1234.0, frame=7)  # start-file info must not leak into frames
    # a reference whose Si-Si minimum is larger than any Si-Si distance here: the first check
    # fails by close contact (a Si-Si pair), at step 0
    ref = StabilityReference(
        pair_min_distances={"O-O": 0.5, "O-Si": 0.5, "Si-Si": 9.0}, species=["O", "Si"]
    )
    settings = MDSettings(
        ensemble="nvt", temperature=500.0, time_ps=0.03, check_interval=5, failure_frames=3
    )
    report = run_md(
        atoms,
        GNNFFCalculator(setup / "m.pt"),
        settings,
        tmp_path / "run",
        reference=ref,
        progress=False,
    )
    assert report["status"] == "failed" and report["failed_criterion"] == "close_contact"
    assert report["failed_step"] == 0
    frames = read_failing_frames(tmp_path / "run" / "failing.extxyz")
    assert len(frames) == 1  # failure at the first check: nothing before it
    f = frames[-1]
    assert f.calc is None and "frame" not in f.info
    assert f.info["is_failure"] and f.info["criterion"] == "close_contact"
    assert f.info["pair"] == "Si-Si" and f.info["step"] == 0
    i, j = f.info["atom_indices"]
    assert f[i].symbol == "Si" and f[j].symbol == "Si"
    assert f.get_distance(i, j, mic=True) == pytest.approx(report["failure"]["value"], rel=1e-6)
    on_disk = json.loads((tmp_path / "run" / "report.json").read_text())
    assert on_disk["failure"]["atom_indices"] == [i, j]


def test_failure_frames_setting_is_checked():
    with pytest.raises(ValueError, match="failure_frames must be an integer >= 0"):
        MDSettings(failure_frames=-1).validate()
