"""The teacher reference path (issue 25): reference specs, cached resumable labelling,
provenance, bad input. A tiny stand-in teacher (ASE's Lennard-Jones) replaces SevenNet-0 where
``sevenn`` is absent; SevenNet-0 itself runs in a test marked slow."""

from __future__ import annotations

import importlib.util
import json

import ase.io
import numpy as np
import pytest
from ase.calculators.lj import LennardJones
from teacher_fixtures import lj, rattled_quartz

from gnnff.data import teacher as teacher_mod
from gnnff.data.generate import DataGenerationError, generate_dataset
from gnnff.data.labelling import Labeller, LabellingError, frame_key
from gnnff.data.presets import PresetError, load_preset
from gnnff.data.reference import (
    ReferenceSpecError,
    parse_reference_arg,
    reference_provenance,
    validate_reference,
)

HAS_SEVENN = importlib.util.find_spec("sevenn") is not None


class _Flaky(LennardJones):
    """Lennard-Jones that returns NaN energies for frames whose first x is below 0.5 A."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        if atoms is not None and atoms.positions[0, 0] < 0.5:
            self.results["energy"] = float("nan")


def _frames(n: int = 4, seed: int = 0):
    from ase.spacegroup import crystal

    base = crystal(
        ["Si", "O"],
        basis=[(0.4697, 0.0, 2 / 3), (0.4135, 0.2669, 0.7858)],
        spacegroup=154,
        cellpar=[4.916, 4.916, 5.405, 90, 90, 120],
    )
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = base.copy()
        a.positions += rng.normal(0.0, 0.05, a.positions.shape)
        a.positions[0, 0] = 1.0 + rng.uniform(0.0, 0.1)
        out.append(a)
    return out


def test_labels_equal_a_direct_teacher_call(standin, tmp_path):
    spec = validate_reference({"teacher": "standin"}, species=["Si", "O"])
    res = Labeller(spec, cache_dir=tmp_path / "cache").label(_frames())
    assert len(res.frames) == 4 and not res.skipped
    for got, raw in zip(res.frames, _frames(), strict=True):
        raw.calc = lj()
        assert got.get_potential_energy() == pytest.approx(raw.get_potential_energy(), abs=1e-12)
        np.testing.assert_allclose(got.get_forces(), raw.get_forces(), atol=1e-12)
        np.testing.assert_allclose(got.get_stress(), raw.get_stress(), atol=1e-12)


def test_interrupted_labelling_resumes_from_the_cache(standin, tmp_path):
    spec = validate_reference({"teacher": "standin"})
    frames = _frames(5)

    class Interrupt(Exception):
        pass

    lab = Labeller(spec, cache_dir=tmp_path / "cache")
    calc = lab._calculator()
    original = calc.calculate

    def stop_at_third(*args, **kwargs):
        if standin["n"] >= 3:
            raise KeyboardInterrupt  # Ctrl-C while the 4th frame is in flight
        return original(*args, **kwargs)

    calc.calculate = stop_at_third
    with pytest.raises(KeyboardInterrupt):
        lab.label(frames)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3  # nothing half-written
    assert not list((tmp_path / "cache").glob("*.tmp*"))

    standin["n"] = 0
    res = Labeller(spec, cache_dir=tmp_path / "cache").label(frames)
    assert res.from_cache == 3 and standin["n"] == 2 and len(res.frames) == 5
    fresh = Labeller(spec).label(frames)
    for a, b in zip(res.frames, fresh.frames, strict=True):
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), rtol=0, atol=1e-12)


def test_cache_key_follows_the_reference(standin, tmp_path):
    a = _frames(1)[0]
    k1 = frame_key(a, "teacher A")
    assert k1 != frame_key(a, "teacher B")
    b = a.copy()
    b.positions[3, 2] += 1e-9
    assert frame_key(b, "teacher A") != k1


def test_nan_frames_are_skipped_and_all_failing_stops(tmp_path):
    spec = validate_reference({"calculator": "tests.test_teacher:_Flaky"})
    frames = _frames(3)
    frames[1].positions[0, 0] = 0.2  # this frame gets a NaN energy
    res = Labeller(spec).label(frames)
    assert len(res.frames) == 2
    assert [s["frame"] for s in res.skipped] == [1]
    assert res.skipped[0]["reason"] == "non-finite label"
    for f in frames:
        f.positions[0, 0] = 0.2
    with pytest.raises(LabellingError, match="labelled none of the 3 frames.*non-finite"):
        Labeller(spec).label(frames)


def test_provenance_names_teacher_version_and_weights_hash(standin):
    import hashlib
    from importlib import metadata

    prov = reference_provenance(validate_reference({"teacher": "standin"}))
    weights = teacher_mod.TEACHERS["standin"].weights_path()
    assert prov == {
        "teacher": "standin",
        "package": "ase",
        "version": metadata.version("ase"),
        "weights": weights.name,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }


def test_bad_reference_specs_are_refused_with_the_fix(standin):
    with pytest.raises(ReferenceSpecError, match="lacks|no parameters for Hf"):
        validate_reference({"teacher": "standin"}, species=["Hf", "O"])
    with pytest.raises(ReferenceSpecError, match="did you mean 'standin'"):
        validate_reference({"teacher": "standn"})
    with pytest.raises(ReferenceSpecError, match="exactly|must be"):
        validate_reference({"teacher": "standin", "preset": "sio2-tersoff"})
    with pytest.raises(ReferenceSpecError, match="unknown reference keys"):
        validate_reference({"teacher": "standin", "thread": 2})
    with pytest.raises(ReferenceSpecError, match="threads must be an integer"):
        validate_reference({"teacher": "standin", "threads": 0})
    assert parse_reference_arg("teacher:sevennet-0") == {"teacher": "sevennet-0"}
    with pytest.raises(ReferenceSpecError, match="teacher:NAME"):
        parse_reference_arg("sevennet-0")


def test_teacher_without_the_extra_names_the_install_line(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        teacher_mod.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "sevenn" else real(name, *a),
    )
    with pytest.raises(ReferenceSpecError, match=r'pip install "gnnff\[teacher\]"'):
        validate_reference({"teacher": "sevennet-0"})
    preset = load_preset("hfo2-sevennet")
    out = tmp_path / "out"
    with pytest.raises(DataGenerationError, match=r'pip install "gnnff\[teacher\]"'):
        generate_dataset(preset, out, progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing written


def _rattle_preset() -> dict:
    preset = load_preset("sio2-tersoff")
    quartz = rattled_quartz(3)
    preset.update(
        name="standin-quartz",
        systems=[quartz],
        labels={"teacher": "standin"},
        id_split={"train": 0.5, "valid": 0.25, "test_id": 0.25},
    )
    preset.pop("reference_md")
    return preset


def test_generate_with_a_teacher_labels_every_frame_and_resumes(standin, tmp_path):
    out = tmp_path / "data"
    manifest = generate_dataset(_rattle_preset(), out, progress=False)
    assert manifest["labels"]["teacher"] == "standin"
    assert "from_cache" not in manifest["labels"] and standin["n"] == 6
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["labels"]["weights_sha256"] == manifest["labels"]["weights_sha256"]
    import ase.io

    frames = [
        f for s in ("train", "valid", "test_id") for f in ase.io.read(out / f"{s}.extxyz", ":")
    ]
    assert len(frames) == 6
    for f in frames:  # teacher labels, not the sampler's
        g = f.copy()
        g.calc = lj()
        assert f.get_potential_energy() == pytest.approx(g.get_potential_energy(), abs=1e-6)
    from gnnff.training.final import label_provenance

    # what a model trained on this data records in its metadata (training_summary.labels)
    assert label_provenance(out / "train.extxyz") == {
        k: v for k, v in manifest["labels"].items() if k not in ("skipped", "from_cache")
    }
    assert label_provenance(tmp_path / "elsewhere" / "train.extxyz") is None
    standin["n"] = 0
    again = generate_dataset(_rattle_preset(), out, progress=False, overwrite=True)
    assert standin["n"] == 0  # every label from the cache
    assert again["labels"] == manifest["labels"]  # a resumed run writes the same manifest


def test_preset_sampler_errors_are_clear(tmp_path):
    import yaml

    preset = load_preset("sio2-tersoff")
    src = {k: v for k, v in preset.items() if not k.startswith("_") and k != "quick_mode"}
    src["systems"][0]["sampler"] = "teacher-md"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(src))
    with pytest.raises(
        PresetError, match="sampler 'teacher-md' is not available; choose one of md"
    ):
        load_preset(str(path))
    src["systems"][0]["sampler"] = "rattle"  # a-SiO2 is amorphous
    path.write_text(yaml.safe_dump(src))
    with pytest.raises(PresetError, match="rattle needs kind: crystal"):
        load_preset(str(path))


def test_hfo2_preset_has_the_papers_splits_and_polymorphs():
    preset = load_preset("hfo2-sevennet")
    assert preset["labels"] == {"teacher": "sevennet-0"}
    splits = {s["split"] for s in preset["systems"]}
    assert {"id", "ood_HfO1.10", "ood_HfO1.55"} <= splits
    from gnnff.data.structures import crystal_structure

    for s in preset["systems"]:
        if s["kind"] == "crystal":
            a = crystal_structure(s["crystal"], s["repeat"])
            assert a.get_chemical_formula() == "Hf32O64"


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SEVENN, reason='needs pip install "gnnff[teacher]"')
def test_sevennet0_labels_equal_a_direct_call(tmp_path):
    from sevenn.calculator import SevenNetCalculator

    spec = validate_reference({"teacher": "sevennet-0", "threads": 1}, species=["Si", "O"])
    frames = _frames(2)
    res = Labeller(spec, cache_dir=tmp_path / "c").label(frames)
    direct = SevenNetCalculator("7net-0", device="cpu")
    for got, raw in zip(res.frames, frames, strict=True):
        raw.calc = direct
        assert got.get_potential_energy() == pytest.approx(raw.get_potential_energy(), abs=1e-5)
        np.testing.assert_allclose(got.get_forces(), raw.get_forces(), atol=1e-5)
    assert reference_provenance(spec)["version"].startswith("0.13")


def test_dimer_reference_curves_equal_direct_calls(standin, tmp_path, capsys):
    from ase import Atoms

    from gnnff.cli import main

    out = tmp_path / "dimer"
    rc = main(["dimer", "--reference", "teacher:standin", "--species", "Si,O", "--r-min", "1.5",
               "--r-max", "4.5", "--points", "4", "--out", str(out)])  # fmt: skip
    assert rc == 0
    got = json.loads((out / "dimer.json").read_text())
    assert got["reference"]["teacher"] == "standin" and got["energy_eV"] == {}
    r = np.asarray(got["r"])

    def e(a, b, d):
        atoms = Atoms([a, b], positions=[[0, 0, 0], [d, 0, 0]])
        atoms.calc = lj()
        return atoms.get_potential_energy()

    want = [e("O", "Si", d) - e("O", "Si", r[-1]) for d in r]
    np.testing.assert_allclose(got["reference_energy_eV"]["O-Si"], want, atol=1e-12)
    assert (out / "dimer.png").is_file()
    capsys.readouterr()
    assert main(["dimer", "--out", str(out)]) != 0
    assert "give --model" in capsys.readouterr().err


def test_a_crashing_sampler_is_retried_with_new_seeds_in_its_own_process(tmp_path):
    from sampler_fixtures import CrashingJob

    from gnnff.data.samplers import MAX_ATTEMPTS, SamplerError, cached_sample

    args = ({"lammps": {}}, {"name": "x"}, None, 1.0, 300.0, 2, 50.0, 0, 0, {})
    frames = cached_sample(tmp_path / "s", "point", CrashingJob(*args, crashes=1))
    assert [f.info["attempt"] for f in frames] == [1, 1]
    assert (tmp_path / "s" / "point.extxyz").is_file()  # cached for a resumed run
    with pytest.raises(SamplerError, match=r"crashed on every attempt at p2 \(exit codes \[-11"):
        cached_sample(tmp_path / "s", "p2", CrashingJob(*args, crashes=MAX_ATTEMPTS))
    assert not (tmp_path / "s" / "p2.extxyz").exists()
    with pytest.raises(SamplerError, match=r"failed at p3: KeyError: .no such preset key"):
        cached_sample(tmp_path / "s", "p3", CrashingJob(*args, crashes=-1))  # no retry
    assert not list((tmp_path / "s").glob("p3*"))


def test_gnnff_info_names_what_labelled_the_training_data(tmp_path, capsys):
    from gnnff.cli import main
    from gnnff.potentials import build_model, export_model

    model = build_model({"family": "allegro", "species": ["Si", "O"], "cutoff": 3.0,
                         "num_scalar": 4, "num_tensor": 2, "mlp_hidden": [4]})  # fmt: skip
    labels = {"teacher": "sevennet-0", "package": "sevenn", "version": "0.13.0",
              "weights": "w.pth", "weights_sha256": "ab" * 32}  # fmt: skip
    export_model(model, tmp_path / "m.pt", training_summary={"labels": labels})
    assert main(["info", str(tmp_path / "m.pt")]) == 0
    assert "labels:      sevennet-0 (sevenn 0.13.0, weights sha256 abababababab...)" in (
        capsys.readouterr().out
    )


class _FailsOnce(LennardJones):
    """Raises on its first calculation in the process (a killed job), then works."""

    failed = False

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        if not _FailsOnce.failed:
            _FailsOnce.failed = True
            raise RuntimeError("the job was killed")
        super().calculate(atoms, properties, system_changes)


class _Unbuildable(LennardJones):
    def __init__(self, **kwargs):
        raise RuntimeError("no such binary: pw.x")


def test_a_failed_call_is_retried_on_resume_and_an_unbuildable_reference_fails_at_once(
    tmp_path,
):
    spec = validate_reference({"calculator": "tests.test_teacher:_FailsOnce"})
    frames = _frames(2)
    first = Labeller(spec, cache_dir=tmp_path / "c").label(frames)
    assert [s["frame"] for s in first.skipped] == [0] and "killed" in first.skipped[0]["reason"]
    again = Labeller(spec, cache_dir=tmp_path / "c").label(frames)
    assert not again.skipped and len(again.frames) == 2 and again.from_cache == 1
    bad = validate_reference({"calculator": "tests.test_teacher:_Unbuildable"})
    with pytest.raises(RuntimeError, match="pw.x"):
        Labeller(bad, cache_dir=tmp_path / "d").label(frames)
    assert not (tmp_path / "d").exists()


def test_eval_against_a_reference_equals_errors_computed_by_hand(standin, tmp_path, capsys):
    """``gnnff eval --reference``: the teacher labels the frames (cached), and the MAE is the one
    of the model's forces against direct teacher calls."""
    from ase.build import bulk

    from gnnff.calculators import GNNFFCalculator
    from gnnff.cli import main
    from gnnff.potentials.bundled import model_file

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(3):
        atoms = bulk("Si", "diamond", a=5.43).repeat((2, 1, 1))
        atoms.symbols[::2] = "O"
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        frames.append(atoms)
    data = tmp_path / "frames.extxyz"
    ase.io.write(data, frames)
    model = model_file("sio2-allegro-baseline")
    argv = ["eval", str(model), str(data), "--reference", "teacher:standin", "--json"]
    assert main(argv) == 0
    got = json.loads(capsys.readouterr().out)
    errs = []
    for atoms in frames:
        ref = atoms.copy()
        ref.calc = lj()
        mine = atoms.copy()
        mine.calc = GNNFFCalculator(model)
        errs.append(np.abs(mine.get_forces() - ref.get_forces()).ravel())
    assert got["force_mae"] == pytest.approx(1000 * np.mean(np.concatenate(errs)), rel=1e-4)
    assert got["reference"]["teacher"] == "standin" and got["frames_skipped"] == 0
    assert standin["n"] == 3
    assert main(argv) == 0  # the second run reads the label cache
    assert standin["n"] == 3
    capsys.readouterr()
    assert main(["eval", str(model), str(data), "--reference", "teacher:nope"]) == 2
    assert "nope" in capsys.readouterr().err
