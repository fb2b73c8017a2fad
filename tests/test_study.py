"""The stability study: config validation, rank correlation, and a tiny end-to-end study that
is interrupted and resumed."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from gnnff.study.config import StudyConfigError, load_study_config
from gnnff.study.runner import run_study, study_status
from gnnff.study.summary import seed_comparison, spearman


def test_spearman_matches_definition():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert spearman(x, [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert spearman(x, [5, 4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties get mean ranks: Pearson of (1,2,3,4) and (1.5,1.5,3,4)
    assert spearman([1, 2, 3, 4], [7, 7, 8, 9]) == pytest.approx(
        np.corrcoef([1, 2, 3, 4], [1.5, 1.5, 3, 4])[0, 1]
    )
    assert np.isnan(spearman([1, 2], [1, 2]))


def _write(tmp_path, body: dict):
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(body))
    return p


def test_seed_comparison_matches_runs_and_counts_by_hand():
    def row(var, seed, start, t):
        return {
            "family": "allegro",
            "variant": var,
            "seed": seed,
            "system": "SiO2",
            "temperature_K": 1000.0,
            "start": start,
            "stable_time_ps": t,
            "stability_index": t / 10.0,
        }

    rows = [
        row("baseline", 0, 0, 1.0),
        row("decorrelated", 0, 0, 10.0),
        row("baseline", 0, 1, 2.0),
        row("decorrelated", 0, 1, 2.0),
        row("baseline", 1, 0, 10.0),
        row("decorrelated", 1, 0, 4.0),
        row("baseline", 1, 1, 3.0),
        row("decorrelated", 1, 1, 5.0),
        row("decorrelated", 2, 0, 7.0),  # no matching baseline: not compared
        {**row("baseline", 0, 2, 0.5), "status": "interrupted"},  # not a finished run
        row("decorrelated", 0, 2, 9.0),
    ]
    c = seed_comparison(rows, ["allegro"])["allegro"]
    assert (c["treated_longer"], c["treated_shorter"], c["equal"]) == (2, 1, 1)
    assert c["matched_runs"] == 4
    assert c["sign_test_p"] == pytest.approx(1.0)  # 2 vs 1 of 3: two-sided exact p = 1
    assert c["mean_S_per_seed"]["baseline"] == {0: pytest.approx(0.15), 1: pytest.approx(0.65)}
    assert c["delta_mean_S_per_seed"][0] == pytest.approx(0.6 - 0.15)
    assert c["delta_mean_S_per_seed"][1] == pytest.approx(0.45 - 0.65)
    assert (c["seeds_improved"], c["seeds_compared"]) == (1, 2)
    from gnnff.study.summary import _ended_by

    assert _ended_by(rows)["status interrupted"] == 1


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(StudyConfigError, match="did you mean 'seeds'"):
        load_study_config(
            _write(tmp_path, {"sedes": [0], "md": {"systems": {"a": {"starts": "x.extxyz"}}}})
        )
    with pytest.raises(StudyConfigError, match="md.systems is empty"):
        load_study_config(_write(tmp_path, {"seeds": [0]}))
    with pytest.raises(StudyConfigError, match="unknown model family 'nequip'"):
        load_study_config(
            _write(
                tmp_path, {"families": ["nequip"], "md": {"systems": {"a": {"starts": "x.extxyz"}}}}
            )
        )
    with pytest.raises(FileNotFoundError):
        load_study_config(tmp_path / "missing.yaml")


def _arms_config(tmp_path, variants: dict):
    base = tmp_path / "train.yaml"
    base.write_text(yaml.safe_dump({"data": {"train": "x", "valid": "x"}}))
    return _write(
        tmp_path,
        {
            "training": {"base": str(base)},
            "families": ["allegro"],
            "variants": variants,
            "md": {"systems": {"a": {"starts": "x.extxyz"}}},
        },
    )


def test_pretrained_and_control_arms(tmp_path):
    from gnnff.potentials.bundled import pretrained_path
    from gnnff.study.runner import train_unit, training_overrides
    from gnnff.study.units import ModelUnit

    good = {
        "baseline": {"decorrelation.enabled": False},
        "start": {"pretrained": "sio2-allegro-baseline"},
        "al": {"pretrained": "sio2-allegro-al", "control": "start"},
    }
    cfg = load_study_config(_arms_config(tmp_path, good))
    assert cfg["variants"]["al"]["pretrained"] == str(pretrained_path("sio2-allegro-al"))
    unit = ModelUnit("allegro", "al", 3)
    assert not any(o.startswith(("pretrained", "control")) for o in training_overrides(cfg, unit))
    info = train_unit(cfg, unit, str(tmp_path / "run"))  # copies, never trains
    assert info == {"pretrained": str(pretrained_path("sio2-allegro-al"))}
    copied = (tmp_path / "run" / "model.pt").read_bytes()
    assert copied == pretrained_path("sio2-allegro-al").read_bytes()
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"pretrained": "other.pt"}))
    with pytest.raises(ValueError, match="now says .*sio2-allegro-al.pt: move"):
        train_unit(cfg, unit, str(tmp_path / "run"))  # a redefined arm never reuses results
    bad = [
        ({"x": {"pretrained": "no-such-model"}}, "neither a file .* nor a bundled model"),
        ({"x": {"pretrained": "sio2-attn-baseline"}}, "is a 'allegro-attn' model, but"),
        ({"x": {"decorrelation.enabled": True, "control": ["baseline"]}}, "is not another arm"),
        ({"x": {"decorrelation.enabled": True, "control": "nope"}}, "control 'nope' is not"),
        (
            {"x": {"pretrained": "sio2-allegro-al", "decorrelation.enabled": True}},
            "is pretrained: training keys",
        ),
        ({"x": {"pretrainde": "sio2-allegro-al"}}, "names no training-config section"),
    ]
    for variants, message in bad:
        with pytest.raises(StudyConfigError, match=message):
            load_study_config(_arms_config(tmp_path, {"baseline": {}, **variants}))


@pytest.mark.slow  # trains and runs MD for a whole tiny study: make test-all / make bench
def test_tiny_study_end_to_end_and_resume(quick_data, tmp_path, capsys):
    base = tmp_path / "train.yaml"
    base.write_text(
        yaml.safe_dump(
            {
                "data": {"train": "x", "valid": "x"},
                "model": {
                    "family": "allegro",
                    "cutoff": 4.0,
                    "num_scalar": 8,
                    "num_tensor": 2,
                    "mlp_hidden": [8],
                },
                "training": {"epochs": 1, "batch_size": 4, "progress": False},
            }
        )
    )
    cfg_path = _write(
        tmp_path,
        {
            "data": {"dir": str(quick_data)},
            "training": {"base": str(base)},
            "families": ["allegro"],
            "variants": {
                "baseline": {"decorrelation.enabled": False},
                "decorrelated": {"decorrelation.enabled": True},
            },
            "seeds": [0],
            "md": {
                "systems": {
                    "SiO1.55": {
                        "starts": "reference_md/a-SiO1.55_{T}K.extxyz",
                        "reference": "reference_md/a-SiO1.55_{T}K.extxyz",
                    }
                },
                "n_starts": 1,
                "temperatures": [1000],
                "time_ps": 0.02,
                "stability": {"interval": 5},
            },
            "eval": ["test_id.extxyz", "ood_SiO1.10.extxyz"],
            "jobs": 1,
        },
    )
    cfg = load_study_config(cfg_path)
    out = tmp_path / "study"
    summary = run_study(cfg, out, log=lambda m: None)
    assert study_status(out, cfg) == {"models": 2, "trained": 2, "md_runs": 2, "md_done": 2}
    from gnnff.cli import main

    capsys.readouterr()
    assert main(["study", "status", str(cfg_path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "allegro__decorrelated__s0" in text and "MD runs 2/2" in text
    assert main(["study", "status", str(cfg_path), "--out", str(tmp_path / "none")]) == 2
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 2 and {r["variant"] for r in rows} == {"baseline", "decorrelated"}
    assert all(0.0 <= float(r["stability_index"]) <= 1.0 for r in rows)
    assert "allegro/decorrelated" in summary["groups"]
    assert "| allegro | baseline |" in (out / "summary.md").read_text()
    assert (out / "plots" / "stable_time.png").is_file()
    assert (out / "plots" / "stability_vs_correlation_and_mae.png").is_file()
    assert (out / "plots" / "matched_runs.png").is_file()
    assert set(summary["spearman_lcorr_vs_S_by_family"]) == {"allegro"}
    cells = summary["mean_S_by_state_point"]
    assert sum(c["runs"] for c in cells) == 2
    assert "Mean Stability Index by state point" in (out / "summary.md").read_text()
    assert summary["seed_comparison"]["allegro"]["matched_runs"] == 1
    assert "Mean Stability Index per seed" in (out / "summary.md").read_text()
    assert sum(summary["groups"]["allegro/baseline"]["ended_by"].values()) == 1
    assert "How the runs ended" in (out / "summary.md").read_text()
    assert "Train overhead: median epoch wall time" in (out / "summary.md").read_text()
    walls = json.loads((out / "eval" / "allegro__baseline__s0.dimer.json").read_text())["wall_eV"]
    assert set(walls) == {"O-O", "O-Si", "Si-Si"}
    assert set(summary["spearman_wall_vs_S"]) == set(walls)
    assert "short-range wall" in (out / "summary.md").read_text()
    # resume: a removed MD unit is redone, finished units are not retrained
    model = out / "train" / "allegro__baseline__s0" / "model.pt"
    stamp = model.stat().st_mtime_ns
    md_dir = out / "md" / "allegro__baseline__s0" / "SiO1.55_1000K_0"
    (md_dir / "report.json").unlink()
    run_study(cfg, out, log=lambda m: None)
    assert model.stat().st_mtime_ns == stamp
    assert json.loads((md_dir / "report.json").read_text())["t_run_ps"] == pytest.approx(0.02)


def _one_run_study(tmp_path):
    """A study config of one model and two MD runs (starts 0 and 1) on random SiO2 cells, with
    the bundled ``sio2-allegro-al`` as the model."""
    import ase.io

    from gnnff.testing.synthetic import make_dataset

    data = tmp_path / "data"
    data.mkdir()
    frames = make_dataset(3, seed=1, n_formula=8)
    ase.io.write(data / "train.extxyz", frames)
    ase.io.write(data / "starts_1000K.extxyz", frames)
    return {
        "data": {"dir": str(data)},
        "families": ["allegro"],
        "variants": {"baseline": {}},
        "seeds": [0],
        "eval": ["test_id.extxyz"],
        "jobs": 1,
        "threads": 1,
        "md": {
            "systems": {"SiO2": {"starts": "starts_{T}K.extxyz"}},
            "temperatures": [1000.0],
            "n_starts": 2,
            "time_ps": 0.002,
            "dt_fs": 1.0,
            "thermostat": "langevin",
            "tau_fs": 100.0,
            "dtype": "float64",
            "stability": {"interval": 1},
        },
    }


def test_a_software_error_is_an_error_not_a_failed_run(tmp_path, monkeypatch):
    """A software error at the start of an MD run is recorded in error.json, not as a failed
    run with S = 0: the study's mean S is that of the runs that ran (1.0, not 0.5), and the
    error is listed in summary.json and summary.md; running the unit again redoes it."""
    import gnnff.calculators.md as md_module
    from gnnff.potentials.bundled import pretrained_path
    from gnnff.study.md_run import StudyRunError, is_software_error, md_unit
    from gnnff.study.summary import summarize_study
    from gnnff.study.units import md_units, model_units

    cfg = _one_run_study(tmp_path)
    out = tmp_path / "study"
    model = str(pretrained_path("sio2-allegro-al"))
    good, broken = md_units(cfg, model_units(cfg))
    folder = {u: out / "md" / u.model.id / u.id for u in (good, broken)}
    report = md_unit(cfg, good, model, str(folder[good]))
    assert report["status"] == "completed" and report["stability_index"] == 1.0

    def software_error(*args, **kwargs):
        raise TypeError("run_md() got an unexpected keyword argument 'x'")

    with monkeypatch.context() as m:
        m.setattr(md_module, "run_md", software_error)
        with pytest.raises(StudyRunError, match="software error in MD run SiO2_1000K_1"):
            md_unit(cfg, broken, model, str(folder[broken]))
    assert not (folder[broken] / "report.json").exists()
    error = json.loads((folder[broken] / "error.json").read_text())
    assert error["error"].startswith("TypeError") and error["during"].startswith("set-up")

    summary = summarize_study(cfg, out)
    group = summary["groups"]["allegro/baseline"]
    assert group["runs"] == 1 and group["mean_S"] == 1.0  # 0.5 when the error counted as S = 0
    assert summary["n_runs"] == 1
    assert summary["software_errors"] == [
        {"run": "allegro__baseline__s0/SiO2_1000K_1", "error": error["error"],
         "during": error["during"]}
    ]  # fmt: skip
    assert "Software errors**: 1 MD run(s)" in (out / "summary.md").read_text()

    # a model failing mid-run is a failed run; a bug is an error wherever it is raised
    assert not is_software_error(FloatingPointError("overflow"), started=True)
    assert is_software_error(FloatingPointError("overflow"), started=False)
    assert is_software_error(AttributeError("x"), started=True)
    # run again: the error is cleared and the run is done
    again = md_unit(cfg, broken, model, str(folder[broken]))
    assert again["status"] == "completed" and not (folder[broken] / "error.json").exists()
