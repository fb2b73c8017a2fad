"""The model contract (gnnff.potentials.contract) against everything that writes or reads model
files: export, the toy model of the LAMMPS tests, the C++ plugin (its source and its behaviour)
and docs/model_contract.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from gnnff.potentials import build_model, contract, export_model, load

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lammps_fixtures as lf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CPP = REPO / "gnnff" / "lammps" / "pair_gnnff.cpp"


def _plugin_reads() -> dict[str, set[str]]:
    """String literals the plugin uses as metadata keys and output names."""
    src = CPP.read_text()
    meta = set(re.findall(r'meta(?:\.at|\.value|\.contains)?[\[(]\s*"([^"]+)"', src))
    outputs = set(re.findall(r'\bget\("([^"]+)"\)', src))
    extra = set(re.findall(r'ExtraFilesMap\s+\w+\{\{"([^"]+)"', src))
    defaults = dict(re.findall(r'meta\.value\("([^"]+)",\s*std::string\("([^"]+)"\)\)', src))
    return {"meta": meta, "outputs": outputs, "extra": extra, "defaults": defaults}


def test_plugin_source_reads_exactly_the_contract():
    reads = _plugin_reads()
    want = (
        set(contract.PLUGIN_REQUIRED_METADATA)
        | set(contract.PLUGIN_OPTIONAL_METADATA)
        | set(contract.PLUGIN_OPTIONAL_SECTIONS)
    )
    assert reads["meta"] == want, f"plugin reads {sorted(reads['meta'])}, contract {sorted(want)}"
    assert reads["meta"] <= set(contract.METADATA_KEYS)
    assert reads["outputs"] == set(contract.PLUGIN_OUTPUTS) <= set(contract.OUTPUT_NAMES)
    assert reads["extra"] == {contract.METADATA_FILE}
    assert reads["defaults"] == contract.PLUGIN_OPTIONAL_METADATA
    src = CPP.read_text()
    assert f'meta["format"] != "{contract.FORMAT}"' in src
    assert f"version != {contract.FORMAT_VERSION}" in src
    for dtype in contract.DTYPES:
        assert f'dtype == "{dtype}"' in src
    # forward is called with the contract's inputs, in order
    call = re.search(r"std::vector<torch::jit::IValue> inputs\{([^}]*)\}", src)
    assert call is not None and len(call.group(1).split(",")) == len(contract.INPUTS)


def test_parser_sees_a_key_the_contract_lacks(tmp_path, monkeypatch):
    # the check above can fail: a plugin reading one more key is caught
    fake = tmp_path / "pair_gnnff.cpp"
    fake.write_text(CPP.read_text() + '\nauto z = meta.at("zbl_table");\n')
    monkeypatch.setattr(sys.modules[__name__], "CPP", fake)
    assert "zbl_table" in _plugin_reads()["meta"]
    with pytest.raises(AssertionError, match="zbl_table"):
        test_plugin_source_reads_exactly_the_contract()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = {
        "family": "allegro",
        "species": ["O", "Si"],
        "cutoff": 3.5,
        "l_max": 1,
        "num_layers": 1,
        "num_scalar": 4,
        "num_tensor": 2,
        "mlp_hidden": [8],
    }
    return export_model(build_model(cfg), tmp_path_factory.mktemp("contract") / "m.pt",
                        dtype="float32")  # fmt: skip


def test_export_writes_the_contract(exported):
    with zipfile.ZipFile(exported) as zf:
        names = [n for n in zf.namelist() if n.endswith(f"/extra/{contract.METADATA_FILE}")]
        meta = json.loads(zf.read(names[0]))
    assert list(meta) == list(contract.METADATA_KEYS)
    assert meta["format"] == contract.FORMAT and meta["format_version"] == contract.FORMAT_VERSION
    module, _ = load(exported)
    args = [a.name for a in module.forward.schema.arguments][1:]  # drop self
    assert args == list(contract.INPUT_NAMES)
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.6, 0.0, 0.0], [0.0, 1.5, 0.3]])
    species = torch.tensor([0, 1, 0])
    edges = torch.tensor([[0, 1, 0, 1], [1, 0, 2, 2]])  # atom 2 is a ghost: never a centre
    out = module(pos, species, edges, torch.zeros(4, 3), 2)
    contract.check_outputs(out, n=3, n_local=2, dtype=torch.float32)
    with pytest.raises(AssertionError, match="atomic_energy"):
        contract.check_outputs({**out, "atomic_energy": out["atomic_energy"][:1]}, 3, 2)


def test_toy_model_of_the_lammps_tests_follows_the_contract(tmp_path):
    path = lf.write_toy_model(tmp_path / "toy.pt")
    module, meta = load(path)
    assert list(meta) == list(contract.METADATA_KEYS)
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.6, 0.0, 0.0]], dtype=torch.float64)
    out = module(pos, torch.tensor([0, 1]), torch.tensor([[0, 1], [1, 0]]),
                 torch.zeros(2, 3, dtype=torch.float64), 2)  # fmt: skip
    contract.check_outputs(out, n=2, n_local=2, dtype=torch.float64)


def test_make_metadata_names_missing_and_unknown_keys():
    with pytest.raises(ValueError, match=r"missing keys \['species'"):
        contract.make_metadata(cutoff=1.0)
    good = dict(species=["Si"], cutoff=3.0, family="x", hyperparameters={}, dtype="float64",
                softmax=None, training=None, gnnff_version="0")  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        contract.make_metadata(colour="red", **good)
    with pytest.raises(ValueError, match="dtype must be one of"):
        contract.make_metadata(**{**good, "dtype": "float16"})
    assert contract.expected_shape(contract.OUTPUTS[4], n=7, n_local=3) == (7, 3, 3)


def test_docs_carry_the_contract_tables():
    doc = REPO / "docs" / "model_contract.md"
    text = doc.read_text()
    assert contract.update_markdown(text) == text, (
        "docs/model_contract.md is out of date: run "
        "`python -m gnnff.potentials.contract docs/model_contract.md`"
    )
    for name in (*contract.INPUT_NAMES, *contract.OUTPUT_NAMES, *contract.METADATA_KEYS):
        assert f"| `{name}` |" in text


# ------------------------------------------------------------------ the plugin itself
needs_plugin = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "g++")) is None, reason="no C++ compiler for the plugin"
)


@pytest.fixture(scope="module")
def plugin_setup(tmp_path_factory):
    pytest.importorskip("lammps")
    from gnnff.lammps.build import build_plugin

    d = tmp_path_factory.mktemp("contract_plugin")
    atoms = lf.sio2_like_cell((1, 1, 1), seed=0)
    lf.write_lammps_data(atoms, d / "sio2.data", ("O", "Si"))
    return str(build_plugin(quiet=True)), d


def _run_plugin(plugin: str, d: Path, model: Path) -> dict:
    commands = ["units metal", "atom_style atomic", "boundary p p p",
                f"read_data {d / 'sio2.data'}", "pair_style gnnff",
                f"pair_coeff * * {model} O Si", "run 0"]  # fmt: skip
    return lf.run_lammps({"plugin": plugin, "commands": commands, "computes": ["thermo_pe"]})


@needs_plugin
@pytest.mark.parametrize("key", contract.PLUGIN_REQUIRED_METADATA)
def test_plugin_rejects_a_file_missing_a_required_key(plugin_setup, key):
    plugin, d = plugin_setup
    model = lf.write_toy_model(d / f"no_{key}.pt", drop_keys=(key,))
    res = _run_plugin(plugin, d, model)
    assert "error" in res, f"the plugin accepted a model file without {key!r}"


@needs_plugin
def test_plugin_accepts_extra_keys_and_defaults_optional_ones(plugin_setup):
    plugin, d = plugin_setup
    base = _run_plugin(plugin, d, lf.write_toy_model(d / "full.pt"))
    assert "error" not in base, base
    extra = lf.write_toy_model(d / "extra.pt", extra_keys={"future_key": {"a": 1}},
                               drop_keys=tuple(contract.PLUGIN_OPTIONAL_METADATA))  # fmt: skip
    res = _run_plugin(plugin, d, extra)
    assert "error" not in res, res
    assert res["thermo_pe"] == pytest.approx(base["thermo_pe"], rel=1e-12)


def _check_stability_reference_path(src: str) -> None:
    """The C++ reads the close-contact reference at the contract's path and keys."""
    section, sub = contract.PLUGIN_STABILITY_REFERENCE
    found = re.search(r'const json &tr = meta\["([^"]+)"\]', src)
    assert found is not None and found.group(1) == section, "plugin reads another section"
    tr_keys = set(re.findall(r'\btr(?:\.contains\(|\[)"([^"]+)"', src))
    ref_keys = set(re.findall(r'\bref(?:\.contains\(|\[)"([^"]+)"', src))
    assert tr_keys == {sub}, f"plugin reads training keys {sorted(tr_keys)}, contract {sub!r}"
    want = set(contract.PLUGIN_STABILITY_REFERENCE_KEYS)
    assert ref_keys == want, f"plugin reads reference keys {sorted(ref_keys)}, contract {want}"


def test_plugin_reads_the_stability_reference_the_contract_names():
    """The close-contact reference key that fix gnnff/stability judges against (read by
    pair_gnnff.cpp) is the contract's, and the ASE side reads the same path."""
    from gnnff.stability import StabilityReference

    src = CPP.read_text()
    _check_stability_reference_path(src)
    renamed = src.replace('"stability_reference"', '"close_contact_reference"')
    with pytest.raises(AssertionError, match="close_contact_reference"):
        _check_stability_reference_path(renamed)  # the check can fail
    ref = StabilityReference(pair_min_distances={"O-Si": 1.45}, species=["O", "Si"])
    section, sub = contract.PLUGIN_STABILITY_REFERENCE
    meta = {section: {sub: ref.to_dict()}}
    assert set(contract.PLUGIN_STABILITY_REFERENCE_KEYS) <= set(meta[section][sub])
    read = StabilityReference.from_model_metadata(meta)
    assert read is not None and read.pair_min_distances == {"O-Si": 1.45}
    assert (
        ".".join(contract.PLUGIN_STABILITY_REFERENCE)
        in (REPO / "docs/model_contract.md").read_text()
    )
