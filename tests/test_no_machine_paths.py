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
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: no list of committed files")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *CHECKED],
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
