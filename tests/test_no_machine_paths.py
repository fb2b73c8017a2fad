"""Committed docs, examples and results hold no absolute path of the machine they came from.

A path such as ``/root/run/model.pt`` in a committed result or a doc page means nothing in
another checkout and leaks the author's machine layout. The check reads the files git tracks
(``git ls-files``) under ``benchmarks/results/``, ``docs/`` and ``examples/`` plus
``README.md``, skips binary files (a NUL byte in the first 8 kB) and fails on the first
machine-specific prefix of each file, naming file, line and the fix.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECKED = ("benchmarks/results", "docs", "examples", "README.md")

# Home and work folders of one machine, pytest's temporary folders. Generic system paths
# (/usr/bin/env, /dev/null, /proc/...) are not machine-specific and stay allowed.
MACHINE_PATH = re.compile(
    r"(?<![\w.~])("
    r"/root/"
    r"|/home/[\w.-]+/"
    r"|/Users/[\w.-]+/"
    r"|/work/[\w.-]+/"
    r"|/tmp/pytest-"
    r"|/private/var/folders/"
    r"|[A-Za-z]:\\Users\\"
    r")"
)


def _committed_files() -> list[Path]:
    return _committed_files_under(*CHECKED)


def _committed_files_under(*folders: str) -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: no list of committed files")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *folders],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [REPO / name for name in listed.split("\0") if name]


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def find_machine_paths(text: str) -> list[tuple[int, str]]:
    """(line number, matched prefix) of every machine-specific absolute path in ``text``."""
    hits = []
    for number, line in enumerate(text.splitlines(), start=1):
        hits.extend((number, match.group(1)) for match in MACHINE_PATH.finditer(line))
    return hits


def test_pattern_flags_machine_paths_and_leaves_generic_ones() -> None:
    flagged = (
        "model `/root/gnnff-al/run/model.pt`",
        '"model": "/work/main/gnnff/potentials/pretrained/a.pt"',
        "data: /home/alice/data/train.extxyz",
        "tmp: /tmp/pytest-of-bob/pytest-3/x",
        "C:\\Users\\bob\\data",
    )
    for line in flagged:
        assert find_machine_paths(line), line
    allowed = (
        "#!/usr/bin/env bash",
        "2>/dev/null",
        "runs/own/model.pt",
        "../../data/sio2/train.extxyz",
        "~/work/x is a home-relative example",
        "see https://example.org/home/page/",
    )
    for line in allowed:
        assert not find_machine_paths(line), line


def test_committed_text_files_hold_no_machine_path() -> None:
    files = _committed_files()
    assert files, "git ls-files listed none of the checked folders"
    offenders = []
    for path in files:
        if not path.is_file():
            continue
        text = _text(path)
        if text is None:
            continue
        hits = find_machine_paths(text)
        if hits:
            line, prefix = hits[0]
            offenders.append(f"{path.relative_to(REPO)}:{line}: {prefix!r} ({len(hits)} in all)")
    assert not offenders, (
        "committed files hold absolute paths of a machine; write them relative to the "
        "repository root or to the run's output folder:\n" + "\n".join(offenders)
    )


def _archive_records(path: Path) -> dict[str, bytes]:
    """Every record of a TorchScript archive except tensor storages (``*/data/<n>``)."""
    with zipfile.ZipFile(path) as archive:
        return {
            name: archive.read(name)
            for name in archive.namelist()
            if not re.search(r"/data/\d+$", name)
        }


def _archive_offenders(path: Path, checkout: str) -> list[str]:
    offenders = []
    for name, data in _archive_records(path).items():
        if name.endswith(".debug_pkl"):
            offenders.append(f"{name} (debug record: source paths of the exporting machine)")
            continue
        text = data.decode("latin-1")
        if checkout in text or find_machine_paths(text):
            offenders.append(name)
    return offenders


def test_export_writes_no_source_paths_of_this_machine(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from gnnff.potentials import build_model, export_model, read_metadata

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
    path = export_model(model, tmp_path / "m.pt", "float64")
    assert not _archive_offenders(path, str(REPO)), _archive_offenders(path, str(REPO))
    assert read_metadata(path)["species"] == ["Si", "O"]
    torch.jit.load(str(path))  # the archive loads without its debug records


def test_bundled_model_files_hold_no_machine_path() -> None:
    files = [p for p in _committed_files_under("gnnff/potentials/pretrained") if p.suffix == ".pt"]
    assert files, "git ls-files listed no bundled model file"
    offenders = {
        str(p.relative_to(REPO)): f"{len(bad)} records, first {bad[0]}"
        for p in files
        if (bad := _archive_offenders(p, str(REPO)))
    }
    assert not offenders, (
        "bundled model files hold the exporting machine's paths; re-export them with "
        f"gnnff.potentials.export_model (it drops TorchScript's debug records): {offenders}"
    )
