"""Bad input: clear errors naming the problem and the fix, and no data lost on the way."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from gnnff.cli import main
from gnnff.io_utils import load_yaml, yaml_value


def test_yaml_reads_exponent_floats(tmp_path):
    # PyYAML's YAML 1.1 rules read 1e-3 as a string; configs must see a number
    assert yaml_value("1e-3") == pytest.approx(1e-3)
    assert yaml_value("-2E5") == -2e5 and yaml_value("3") == 3 and yaml_value("abc") == "abc"
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 5e-4\n")
    assert load_yaml(p) == {"optim": {"lr": pytest.approx(5e-4)}}
    p.write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match="c.yaml is not valid YAML"):
        load_yaml(p)


def test_model_config_values_are_typed():
    from gnnff.potentials import resolve_model_config

    base = {"family": "allegro", "species": ["Si", "O"]}
    with pytest.raises(ValueError, match="'zbl' must be true or false"):
        resolve_model_config({**base, "zbl": "no"})
    with pytest.raises(ValueError, match="'cutoff' must be a number"):
        resolve_model_config({**base, "cutoff": "abc"})
    assert resolve_model_config({**base, "cutoff": 4})["cutoff"] == 4.0


def test_resume_compares_the_full_model_config():
    from gnnff.potentials import resolve_model_config
    from gnnff.training.checkpointing import _comparable_model_configs, _config_diff

    stored = resolve_model_config(
        {"family": "allegro", "species": ["O", "Si"], "zbl": True, "avg_num_neighbors": 23.5}
    )
    # the YAML drops the zbl line: that is a change to the default, not "unset"
    a, b = _comparable_model_configs(stored, {"family": "allegro"})
    assert _config_diff(a, b) == ["zbl: True -> False"]
    # the same YAML resumes cleanly; fitted avg_num_neighbors and inferred species are ignored
    a, b = _comparable_model_configs(stored, {"family": "allegro", "zbl": True})
    assert _config_diff(a, b) == []
    a, b = _comparable_model_configs(
        stored, {"family": "allegro", "zbl": True, "species": ["O", "Si", "H"]}
    )
    assert _config_diff(a, b) and "species" in _config_diff(a, b)[0]


def _study(tmp_path, **md):
    base = tmp_path / "train.yaml"
    base.write_text(
        yaml.safe_dump({"data": {"train": "x", "valid": "x"}, "model": {"family": "allegro"}})
    )
    body = {
        "training": {"base": str(base)},
        "families": ["allegro"],
        "seeds": [0],
        "md": {"systems": {"a": {"starts": "x.extxyz"}}, **md},
    }
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(body))
    return p


@pytest.mark.parametrize(
    "md, match",
    [
        ({"thermostat": "langvin"}, "thermostat must be one of"),
        ({"time_ps": -10}, "time_ps must be positive"),
        ({"dt_fs": 0}, "dt_fs must be positive"),
        ({"dtype": "float16"}, "md.dtype"),
        ({"temperatures": [0]}, "temperature > 0"),
        ({"stability": {"intervall": 5}}, "did you mean|unknown stability setting"),
        ({"n_starts": 0}, "md.n_starts"),
    ],
)
def test_study_md_settings_fail_at_load(tmp_path, md, match):
    from gnnff.study.config import StudyConfigError, load_study_config

    with pytest.raises(StudyConfigError, match=match):
        load_study_config(_study(tmp_path, **md))


def test_study_variant_keys_and_base_are_checked_at_load(tmp_path):
    from gnnff.study.config import StudyConfigError, load_study_config

    p = _study(tmp_path)
    cfg = yaml.safe_load(p.read_text())
    cfg["variants"] = {"baseline": {"decorelation.enabled": False}}
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(StudyConfigError, match="did you mean 'decorrelation'"):
        load_study_config(p)
    cfg["variants"] = {"baseline": {"decorrelation.enabeld": False}}
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(StudyConfigError, match="decorrelation.enabled"):
        load_study_config(p)
    cfg["variants"] = {"baseline": {"decorrelation.enabled": False}}
    cfg["training"]["base"] = str(tmp_path / "missing.yaml")
    p.write_text(yaml.safe_dump(cfg))
    with pytest.raises(StudyConfigError, match="missing.yaml does not exist"):
        load_study_config(p)


def test_neighbor_list_guards():
    from gnnff.potentials.neighbors import neighbor_list

    pos = np.array([[0.0, 0, 0], [1.5, 0, 0]])
    with pytest.raises(ValueError, match="cell vectors there are zero"):
        neighbor_list(pos, np.zeros((3, 3)), [True, False, False], 5.0)
    # an atom that flew away in an open system: vesin would kill the process
    far = np.vstack([pos, [[1e7, 0, 0]]])
    with pytest.raises(ValueError, match="come apart"):
        neighbor_list(far, np.zeros((3, 3)), False, 5.0)
    assert neighbor_list(pos, np.diag([4.0, 0, 0]), [True, False, False], 5.0)[0].shape[1] > 0


def test_device_names():
    from gnnff.potentials.device import resolve_device

    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")


def test_bundled_names_work_everywhere_and_paths_are_explained(capsys):
    from gnnff.calculators import GNNFFCalculator, available_pretrained, load_pretrained

    name = available_pretrained()[0]
    assert GNNFFCalculator(name).species  # a registry name is accepted like a path
    assert main(["info", name]) == 0
    with pytest.raises(ValueError, match="give its path to GNNFFCalculator"):
        load_pretrained("/somewhere/model.pt")


def test_cli_reports_file_errors_without_traceback(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    from gnnff.calculators import available_pretrained

    rc = main(["dimer", "--model", available_pretrained()[0], "--points", "5", "--out", str(afile)])
    assert rc == 2 and "gnnff dimer: error" in capsys.readouterr().err


def test_stability_commands_validate(tmp_path, capsys):
    bad = tmp_path / "report.json"
    bad.write_text("not json")
    assert main(["stability", "summarize", str(bad)]) == 2
    assert "report.json is not a JSON stability report" in capsys.readouterr().err
    traj = tmp_path / "t.extxyz"
    import ase
    import ase.io

    ase.io.write(
        traj, ase.Atoms("Si2", positions=[[0, 0, 0], [2.3, 0, 0]], cell=[8, 8, 8], pbc=True)
    )
    assert (
        main(["stability", "analyze", str(traj), "--dt-fs", "-1", "--out", str(tmp_path / "a")])
        == 2
    )
    assert "--dt-fs must be > 0" in capsys.readouterr().err
    assert (
        main(
            [
                "stability",
                "reference",
                str(traj),
                "--rdf-nbins",
                "0",
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
        == 2
    )


def test_data_generate_validates_before_touching_out(tmp_path):
    old = tmp_path / "olddata"
    old.mkdir()
    (old / "train.extxyz").write_text("keep me")
    from gnnff.data.generate import DataGenerationError, _swap_in, generate_dataset

    with pytest.raises(DataGenerationError, match="seed"):
        generate_dataset("sio2-tersoff", old, seed=-1, quick=True, overwrite=True, progress=False)
    assert (old / "train.extxyz").read_text() == "keep me"
    new = tmp_path / ".new"
    new.mkdir()
    (new / "train.extxyz").write_text("new")
    _swap_in(new, old)
    assert (old / "train.extxyz").read_text() == "new" and not new.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["olddata"]


def test_bundle_arguments_are_checked_first(tmp_path):
    from gnnff.calculators.pretrained import available_pretrained, pretrained_path
    from gnnff.study.bundle import check_bundle_args

    model = pretrained_path(available_pretrained()[0])
    with pytest.raises(ValueError, match="registry name"):
        check_bundle_args(model, "../escape", tmp_path)
    with pytest.raises(FileNotFoundError, match="lacks train.extxyz"):
        check_bundle_args(model, "ok-name", tmp_path)
