"""The model-file contract in one place: what an exported gnnff model takes, returns and
declares. ``export`` writes files from it, tests check the C++ plugin and the ASE side against
it, and docs/model_contract.md carries its tables (``python -m gnnff.potentials.contract
docs/model_contract.md`` rewrites them; tests/test_contract.py fails when they differ).

A model file is a TorchScript archive (``torch.jit.save``, ``*.pt``) or an AOTInductor package
(``*.pt2``, ``gnnff.potentials.files.aoti``), one of ``FORMATS``, chosen by its extension
(``FORMAT_SUFFIX``); both hold the extra file ``METADATA_FILE`` and their
``forward(pos, species, edge_index, edge_shift, n_local)`` returns a ``Dict[str, Tensor]`` with
``OUTPUTS`` (docs/model_contract.md, "Formats"). Shapes use N (local + ghost atoms), E (edges) and
n_local (atoms whose energy is wanted, the first n_local of N).

This module imports no torch: engines and docs read it cheaply.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gnnff.errors import GNNFFError

FORMAT = "gnnff-model"
FORMATS = ("torchscript", "aoti")
"""File formats of a model: a TorchScript archive or an AOTInductor package."""
FORMAT_SUFFIX = {"torchscript": ".pt", "aoti": ".pt2"}
"""The extension loaders (ASE calculator, LAMMPS plugin) choose the format by."""
FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
DTYPES = ("float32", "float64")


class ModelFileError(GNNFFError, ValueError):
    """A model file (or training checkpoint) this gnnff cannot read: format, version, metadata
    or weights."""


@dataclass(frozen=True)
class TensorField:
    """One input or output of ``forward``: ``shape`` in N/E/n_local, ``dtype`` ("model" =
    the file's ``dtype``), ``unit`` (ASE metal units) and meaning."""

    name: str
    shape: str
    dtype: str
    unit: str
    meaning: str


@dataclass(frozen=True)
class MetadataKey:
    """One key of ``metadata.json``: its JSON type and meaning. Every exported file carries
    every key; ``PLUGIN_REQUIRED_METADATA`` names those the LAMMPS plugin cannot do without."""

    name: str
    type: str
    meaning: str


INPUTS: tuple[TensorField, ...] = (
    TensorField("pos", "[N,3]", "model", "A",
                "Cartesian positions of local atoms first, then ghosts"),
    TensorField("species", "[N]", "int64", "-", "index into metadata `species`"),
    TensorField("edge_index", "[2,E]", "int64", "-",
                "row 0 = centre i (< n_local), row 1 = neighbour j (< N); a full list (both "
                "i->j and j->i for local pairs), every edge within the cutoff"),
    TensorField("edge_shift", "[E,3]", "model", "A",
                "Cartesian periodic shift; r_ij = pos[j] - pos[i] + shift (zeros in LAMMPS)"),
    TensorField("n_local", "int", "int", "-", "atoms whose energy is wanted"),
)  # fmt: skip

OUTPUTS: tuple[TensorField, ...] = (
    TensorField("energy", "[]", "model", "eV", "sum of `atomic_energy`"),
    TensorField("atomic_energy", "[n_local]", "model", "eV", "per-atom energies"),
    TensorField("forces", "[N,3]", "model", "eV/A", "-dE/dpos, on local and ghost atoms"),
    TensorField("virial", "[3,3]", "model", "eV",
                "-sum_edges r_ij (x) dE/dr_ij; ASE stress = -virial / volume"),
    TensorField("atomic_virial", "[N,3,3]", "model", "eV",
                "per-atom split of the virial, each edge's term shared half/half by i and j"),
)  # fmt: skip

METADATA: tuple[MetadataKey, ...] = (
    MetadataKey("format", "str", f'"{FORMAT}"'),
    MetadataKey("format_version", "int", f"{FORMAT_VERSION} (readers refuse other versions)"),
    MetadataKey("species", "list[str]", "element symbols in type order (`species` indices)"),
    MetadataKey("cutoff", "float", "radial cutoff (A); edges at r >= cutoff contribute zero"),
    MetadataKey("family", "str",
                "registered model family that built the file (e.g. `allegro-attn`)"),
    MetadataKey("hyperparameters", "dict", "the full model config (rebuilds the eager model)"),
    MetadataKey("dtype", "str", " or ".join(f'"{d}"' for d in DTYPES) + ": floating dtype"),
    MetadataKey("softmax", "dict",
                'attention softmax the model runs: {"backend": a registered backend '
                '("float", "lut-rexp", "lut-2d", ...), "bits": null, 8 or 16}; "float" for a '
                'family without one'),
    MetadataKey("training", "dict or null", "training summary, null for an untrained model"),
    MetadataKey("gnnff_version", "str", "version of gnnff that wrote the file"),
)  # fmt: skip

INPUT_NAMES = tuple(f.name for f in INPUTS)
OUTPUT_NAMES = tuple(f.name for f in OUTPUTS)
METADATA_KEYS = tuple(k.name for k in METADATA)

# what the LAMMPS plugin (gnnff/lammps/pair_gnnff.cpp) reads; tests/test_contract.py parses the
# C++ source and checks it reads exactly these
PLUGIN_REQUIRED_METADATA = ("format", "format_version", "species", "cutoff")
PLUGIN_OPTIONAL_METADATA = {"dtype": "float64"}  # key -> value assumed when absent
# sections the plugin reads when present (training: the close-contact reference that
# `fix gnnff/stability` judges against; without it the fix falls back on covalent radii;
# hyperparameters: the widths that size its default edge blocks, the rule of
# gnnff.calculators.memory.cpu_block_edges; without them the default widths count)
PLUGIN_OPTIONAL_SECTIONS = ("training", "hyperparameters")
# where in `training` the plugin reads that reference (tests/test_contract.py checks the C++
# source): {pair "A-B", symbols in alphabetical order: the training set's smallest distance of
# that pair, A} and a free-text source; written by training (the `gnnff stability reference`
# JSON format, without RDF) and read by ASE runs through StabilityReference.from_model_metadata
PLUGIN_STABILITY_REFERENCE = ("training", "stability_reference")
PLUGIN_STABILITY_REFERENCE_KEYS = ("pair_min_distances", "source")
PLUGIN_OUTPUTS = ("forces", "atomic_energy", "virial", "atomic_virial")  # energy: summed

HOW_TO_MAKE = (
    "make one with `gnnff export CHECKPOINT --out model.pt` "
    "(or `gnnff export --untrained MODEL.yaml --out model.pt`)"
)


def make_metadata(**values: Any) -> dict[str, Any]:
    """``metadata.json`` content from ``values`` for every key of ``METADATA`` except
    ``format``/``format_version`` (filled in), in the contract's key order.

    Raises ``ValueError`` naming missing or unknown keys, or a ``dtype`` not in ``DTYPES``.
    """
    given = {"format": FORMAT, "format_version": FORMAT_VERSION, **values}
    missing = [k for k in METADATA_KEYS if k not in given]
    unknown = [k for k in given if k not in METADATA_KEYS]
    if missing or unknown:
        raise ModelFileError(f"model metadata: missing keys {missing}, unknown keys {unknown}; the "
                         f"contract's keys are {list(METADATA_KEYS)}")  # fmt: skip
    if given["dtype"] not in DTYPES:
        raise ModelFileError(
            f"model metadata: dtype must be one of {DTYPES}, got {given['dtype']!r}"
        )
    return {k: given[k] for k in METADATA_KEYS}


def validate_metadata(meta: Any, path: str | Path) -> None:
    """Raise ``ValueError`` if ``meta`` (parsed ``metadata.json`` of ``path``) is not of this
    format and version."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a gnnff model file (format is not {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model format_version {meta.get('format_version')!r}; this gnnff reads "
            f"version {FORMAT_VERSION}: re-export it with this gnnff version"
        )


def expected_shape(field: TensorField, n: int, n_local: int, num_edges: int = 0) -> tuple[int, ...]:
    """The concrete shape of ``field`` for N = ``n`` atoms, ``n_local`` local atoms and E =
    ``num_edges`` edges (``()`` for a scalar)."""
    if field.shape == "int":
        return ()
    sizes = {"N": n, "n_local": n_local, "E": num_edges}
    inner = field.shape.strip("[]")
    return tuple(sizes[d] if d in sizes else int(d) for d in inner.split(",") if d)


def check_outputs(out: dict[str, Any], n: int, n_local: int, dtype: Any = None) -> None:
    """Raise ``AssertionError`` naming the first way ``out`` (a model's ``forward`` result,
    tensors) breaks the contract: keys, shapes, floating dtype ``dtype`` when given."""
    keys = sorted(out)
    if keys != sorted(OUTPUT_NAMES):
        raise AssertionError(f"outputs {keys}, contract {sorted(OUTPUT_NAMES)}")
    for field in OUTPUTS:
        value = out[field.name]
        shape = tuple(value.shape)
        want = expected_shape(field, n, n_local)
        if shape != want:
            raise AssertionError(f"output {field.name!r} has shape {shape}, contract {want}")
        if dtype is not None and value.dtype != dtype:
            raise AssertionError(f"output {field.name!r} is {value.dtype}, not {dtype}")


# ------------------------------------------------------------------ docs
BEGIN = "<!-- contract:begin (generated by gnnff.potentials.contract) -->"
END = "<!-- contract:end -->"


def render_markdown() -> str:
    """The contract's tables in Markdown (the generated part of docs/model_contract.md)."""

    def type_of(f: TensorField) -> str:
        if f.shape == f.dtype:
            return f.dtype
        return f"{f.shape} " + ("model dtype" if f.dtype == "model" else f.dtype)

    lines = [f"## forward({', '.join(INPUT_NAMES)}) -> Dict[str, Tensor]",
             "| input | shape / type | unit | meaning |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| `{f.name}` | {type_of(f)} | {f.unit} | {f.meaning} |"
              for f in INPUTS]  # fmt: skip
    lines += ["", "| output | shape | unit | meaning |", "|---|---|---|---|"]
    lines += [f"| `{f.name}` | {f.shape} | {f.unit} | {f.meaning} |" for f in OUTPUTS]
    lines += ["", f"## {METADATA_FILE}", f"Extra file `{METADATA_FILE}` of the archive, "
              f"format `{FORMAT}` version {FORMAT_VERSION}; every key is written by export.",
              "", "| key | type | meaning |", "|---|---|---|"]  # fmt: skip
    lines += [f"| `{k.name}` | {k.type} | {k.meaning} |" for k in METADATA]
    required = ", ".join(f"`{k}`" for k in PLUGIN_REQUIRED_METADATA)
    optional = ", ".join(
        [f"`{k}` (default {v})" for k, v in PLUGIN_OPTIONAL_METADATA.items()]
        + [f"`{k}` when present" for k in PLUGIN_OPTIONAL_SECTIONS]
    )
    outputs = ", ".join(f"`{k}`" for k in PLUGIN_OUTPUTS)
    ref = ".".join(PLUGIN_STABILITY_REFERENCE)
    ref_keys = " and ".join(f"`{ref}.{k}`" for k in PLUGIN_STABILITY_REFERENCE_KEYS)
    lines += ["", f"The LAMMPS plugin requires {required}, reads {optional} and uses the "
              f"outputs {outputs} (the total energy is the sum of `atomic_energy` over its "
              f"local atoms). Of `training` it reads {ref_keys}: the close-contact reference "
              "that `fix gnnff/stability` judges against ({pair \"A-B\", symbols in "
              "alphabetical order: the training set's smallest distance of that pair in A}; "
              "without it the fix uses covalent radii). Of `hyperparameters` it reads the "
              "widths (`mlp_hidden`, `num_scalar`, `num_tensor`, `l_max`, `species_embed_dim`, "
              "`num_bessel`) that size its default edge blocks, as the ASE calculator sizes "
              "them on CPU (`gnnff.calculators.memory.cpu_block_edges`); an absent or malformed "
              "width counts as the default."]  # fmt: skip
    return "\n".join(lines) + "\n"


def update_markdown(text: str) -> str:
    """``text`` with the part between the ``BEGIN``/``END`` markers replaced by
    :func:`render_markdown`; raises ``ValueError`` if the markers are missing."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"no {BEGIN!r} ... {END!r} markers to fill")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{render_markdown()}{END}{tail}"


if __name__ == "__main__":  # python -m gnnff.potentials.contract docs/model_contract.md
    doc = Path(sys.argv[1])
    doc.write_text(update_markdown(doc.read_text()))
    print(f"updated {doc}")
