"""The trained models shipped inside the package (``potentials/pretrained/``): the one module that
knows where their files are. Finding a model by name (:func:`pretrained_path`,
:func:`model_file`), the old names of renamed ones, and the small test sets committed beside
them (:func:`small_test_set`, one per material and labels, on which a test re-measures their
recorded errors).

``pretrained/renamed.json`` maps old bundled names to new ones (read here and by the LAMMPS
plugin): an old name keeps working for one release with a warning naming the new one.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from gnnff.errors import UsageError

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
RENAMED_FILE = PRETRAINED_DIR / "renamed.json"
SMALL_TEST_SET = PRETRAINED_DIR / "sio2_test_small.extxyz"
# the small test set of the bundled models of each material and labels: (sorted species, the
# teacher that labelled their data, None for the material's classical reference) -> file
SMALL_TEST_SETS: dict[tuple[tuple[str, ...], str | None], Path] = {
    (("O", "Si"), None): SMALL_TEST_SET,  # Munetoh Tersoff labels
    (("O", "Si"), "sevennet-0"): PRETRAINED_DIR / "sio2_sevennet_test_small.extxyz",
    (("Hf", "O"), "sevennet-0"): PRETRAINED_DIR / "hfo2_test_small.extxyz",
}


def small_test_set(species: list[str], teacher: str | None = None) -> Path:
    """The small test set committed for the bundled models of ``species`` (any order) whose
    data the ``teacher`` labelled (None: the material's classical reference potential), so a
    student is re-measured against its own teacher's labels. Raises UsageError naming the
    sets there are."""
    key = (tuple(sorted(species)), teacher)
    if key not in SMALL_TEST_SETS:
        have = ", ".join(f"{'-'.join(s)} ({t or 'classical'})" for s, t in SMALL_TEST_SETS)
        raise UsageError(
            f"no bundled small test set for species {list(key[0])} labelled by "
            f"{teacher or 'a classical potential'} (there are: {have})"
        )
    return SMALL_TEST_SETS[key]


def label_teacher(metadata: dict[str, Any]) -> str | None:
    """The teacher that labelled a model's training data (``training.labels.teacher`` of its
    metadata), or None (labels of a classical potential or unknown)."""
    labels = (metadata.get("training") or {}).get("labels") or {}
    return labels.get("teacher") if isinstance(labels, dict) else None


def available_pretrained() -> list[str]:
    """Registry names of the models shipped inside the package."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt") if not p.name.startswith("."))


def renamed_pretrained() -> dict[str, str]:
    """Old bundled-model name -> its current name (``pretrained/renamed.json``; {} if absent)."""
    if not RENAMED_FILE.is_file():
        return {}
    return dict(json.loads(RENAMED_FILE.read_text()))


def current_name(name: str) -> str:
    """``name``, or the current name of a renamed bundled model (with a FutureWarning naming
    it)."""
    new = renamed_pretrained().get(name)
    if new is None:
        return name
    warnings.warn(
        f"bundled model {name!r} was renamed {new!r}; the old name works for one more release, "
        f"use {new!r}",
        FutureWarning,
        stacklevel=3,
    )
    return new


def pretrained_path(name: str) -> Path:
    """File path of bundled model ``name`` (for ``pair_coeff`` lines: ``gnnff path NAME``).

    An old name from ``renamed.json`` gives the renamed model's path with a FutureWarning.
    Raises ValueError listing the bundled names when there is no such model."""
    if "/" not in name and os.sep not in name:
        name = current_name(name)
    path = PRETRAINED_DIR / f"{name}.pt"
    if "/" in name or os.sep in name or not path.is_file():
        names = available_pretrained()
        listing = ", ".join(names) if names else "none are bundled in this install"
        hint = (
            "; for a model file on disk give its path to GNNFFCalculator(...) instead"
            if "/" in name or name.endswith(".pt")
            else ""
        )
        raise UsageError(f"no bundled model named {name!r}; available: {listing}{hint}")
    return path


def is_bundled_name(value: str) -> bool:
    """True if ``value`` is a bundled model's current or old (renamed) name."""
    return value in available_pretrained() or value in renamed_pretrained()


def model_file(name_or_path: str | os.PathLike[str]) -> Path:
    """An existing model file's path, or the path of the bundled model of that name (old names
    of renamed models with a FutureWarning). Raises FileNotFoundError otherwise."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path)
    if is_bundled_name(name):
        return pretrained_path(name)
    raise FileNotFoundError(
        f"model {name!r} is neither a file nor a bundled model (bundled: "
        f"{', '.join(available_pretrained()) or 'none'}); make a model file with "
        "`gnnff train` or `gnnff export`"
    )


# an absolute path of some machine, whole or inside a longer string: /dir/..., C:\..., \\host\...
MACHINE_PATH = re.compile(r"(?:^|[\s\"'(=,])(?:/[\w.+-]+/|[A-Za-z]:[\\/]|\\\\\w)")


def machine_paths(meta: Any, where: str = "") -> list[str]:
    """Every string in ``meta`` (a JSON-like metadata dict) that holds an absolute path, as
    ``key.path: value``; a bundled model's metadata must hold none (it names the machine it was
    made on)."""
    if isinstance(meta, dict):
        return [hit for k, v in meta.items() for hit in machine_paths(v, f"{where}.{k}")]
    if isinstance(meta, list):
        return [hit for i, v in enumerate(meta) for hit in machine_paths(v, f"{where}[{i}]")]
    if isinstance(meta, str) and MACHINE_PATH.search(meta):
        return [f"{where.lstrip('.')}: {meta}"]
    return []


def neutral_paths(meta: Any) -> Any:
    """A copy of ``meta`` in which every string that is an absolute path keeps only its last
    two parts, the folder and the file (``/home/me/run/round_001/train.extxyz`` ->
    ``round_001/train.extxyz``); other values are unchanged. Applied to a model's metadata
    before it is bundled."""
    if isinstance(meta, dict):
        return {k: neutral_paths(v) for k, v in meta.items()}
    if isinstance(meta, list):
        return [neutral_paths(v) for v in meta]
    if isinstance(meta, str):
        for flavour in (PurePosixPath, PureWindowsPath):
            path = flavour(meta)
            if path.is_absolute() and "\n" not in meta:
                return "/".join(path.parts[-2:])
    return meta
