"""Bundled models: they load by name (ASE and `gnnff path`) and reproduce the MAE recorded in
their metadata on the small test set committed beside them."""

from __future__ import annotations

import pytest

from gnnff.calculators import available_pretrained, load_pretrained
from gnnff.calculators.pretrained import pretrained_path
from gnnff.potentials import read_metadata
from gnnff.potentials.bundled import small_test_set
from gnnff.study.bundle import SMALL_TEST, measure_small_test

NAMES = available_pretrained()


def test_models_are_bundled():
    assert {
        "sio2-allegro-decorrelated",
        "sio2-allegro-baseline",
        "sio2-attn-decorrelated",
        "sio2-attn-baseline",
    } <= set(NAMES)
    assert SMALL_TEST.is_file()


# make test checks the shipped active-learning model; the other bundled models are `slow`
# (8 s each; the same code path)
@pytest.mark.parametrize(
    "name",
    [n if n == "sio2-allegro-al" else pytest.param(n, marks=pytest.mark.slow) for n in NAMES],
)
def test_bundled_model_reproduces_recorded_mae(name):
    path = pretrained_path(name)
    assert path.stat().st_size < 5 * 1024 * 1024
    bundle = read_metadata(path)["training"]["bundle"]
    assert bundle["name"] == name
    assert bundle["small_test_set"] == small_test_set(read_metadata(path)["species"]).name
    recorded = bundle["small_test_mae"]
    measured = measure_small_test(path)
    for key in ("energy_mae", "force_mae"):
        assert measured[key] == pytest.approx(recorded[key], rel=1e-6), key
    assert 0.0 <= bundle["stability"]["mean_stability_index"] <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_bundled_model_carries_its_close_contact_reference(name):
    """MD with a bundled model and no --reference judges close contacts against the training
    data: every pair present there, at distances no real SiO2 structure undercuts by much."""
    from gnnff.stability import StabilityReference

    ref = StabilityReference.from_model_metadata(read_metadata(pretrained_path(name)))
    assert ref is not None and ref.species == ["O", "Si"] and ref.n_frames > 100
    d = ref.pair_min_distances
    assert set(d) == {"O-O", "O-Si", "Si-Si"}
    assert 1.2 < d["O-Si"] < 1.6 and 1.2 < d["O-O"] < 2.6 and 1.9 < d["Si-Si"] < 3.1


@pytest.mark.parametrize("name", NAMES)
def test_bundled_metadata_holds_no_machine_path(name):
    """A bundled model's metadata names no folder of the machine it was made on (bundling
    keeps the last two parts of an absolute path: folder and file)."""
    from gnnff.potentials.bundled import machine_paths

    assert machine_paths(read_metadata(pretrained_path(name))) == []


def test_bundling_cuts_absolute_paths_to_folder_and_file():
    from gnnff.potentials.bundled import machine_paths, neutral_paths

    meta = {"data": {"train": {"path": "/home/me/run/round_001/train.extxyz", "sha256": "ab"},
                     "valid": {"path": "data/sio2/valid.extxyz"}},
            "units": ["eV/A", "C:\\Users\\me\\sio2\\test.xyz"],
            "note": "made in /home/me/x"}  # fmt: skip
    assert machine_paths(meta) == [
        "data.train.path: /home/me/run/round_001/train.extxyz",
        "units[1]: C:\\Users\\me\\sio2\\test.xyz",
        "note: made in /home/me/x",
    ]
    clean = neutral_paths(meta)
    assert clean["data"] == {"train": {"path": "round_001/train.extxyz", "sha256": "ab"},
                             "valid": {"path": "data/sio2/valid.extxyz"}}  # fmt: skip
    assert clean["units"] == ["eV/A", "sio2/test.xyz"]
    assert machine_paths(clean) == ["note: made in /home/me/x"]  # inside a text: reported


@pytest.mark.parametrize("name", NAMES)
def test_loads_by_name(name, capsys):
    from gnnff.cli import main

    calc = load_pretrained(name)
    assert calc.species == ["O", "Si"]
    assert main(["path", name]) == 0
    assert capsys.readouterr().out.strip() == str(pretrained_path(name))


def test_active_learning_model_records_its_loop_and_held_out_stability():
    """`sio2-allegro-al` carries how it was made (rounds, frames added, CPU seconds) and its
    held-out stability by state point, judged against the base training set."""
    if "sio2-allegro-al" not in NAMES:
        pytest.skip("sio2-allegro-al is not bundled in this install")
    bundle = read_metadata(pretrained_path("sio2-allegro-al"))["training"]["bundle"]
    al = bundle["active_learning"]
    assert al["frames_added_total"] > 0 and al["retrainings"] >= 1
    assert set(al["cpu_s_total"]) >= {"explore", "label", "train"}
    stab = bundle["stability"]
    assert stab["settings"]["time_ps"] == 10.0
    assert stab["overall"]["n_runs"] == stab["settings"]["runs_finished"] >= 3
    for group in stab["by_state"].values():
        lo, hi = group["fraction_stable_ci95"]
        assert 0.0 <= lo <= group["fraction_stable"] <= hi <= 1.0
