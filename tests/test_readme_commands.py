"""The README's user guide runs as written, in the order written, from a fresh checkout.

Convention (README.md, section "User guide", up to the next ``## `` heading):

* every fenced block opened with ```` ```bash ```` is a command block and runs, in order, in one
  copy of the repository (the files git tracks, plus untracked files it does not ignore), each
  block as one ``bash -e -o pipefail`` script, so later blocks see what earlier ones wrote;
* a block whose preceding line is ``<!-- readme-test: skip (REASON) -->`` is illustrative (long
  runs, MPI clusters, ...): it is not run, and the reason is required;
* other fences (```` ```yaml ````, ```` ```python ````, a bare ```` ``` ```` for LAMMPS input)
  are never run;
* the environment lines ``make setup`` and ``source .venv/bin/activate`` stand for the
  environment this test already runs in: they are replaced by ``true``, the interpreter's
  ``bin`` folder (``gnnff``, ``python``, ``lmp``) goes first on ``PATH`` and the copy first on
  ``PYTHONPATH``. Everything else runs unchanged.

The guide's commands use the ``--quick`` data and short runs, so the whole guide takes a few
minutes on 2 cores (marked slow). The extraction itself is checked by a fast test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
GUIDE_HEADING = "## User guide"
SKIP_MARK = re.compile(r"^<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->$")
ENVIRONMENT_LINE = re.compile(r"^\s*(make setup|(source|\.) \.venv/bin/activate)\s*(#.*)?$")
BLOCK_TIMEOUT_S = 900


@dataclass(frozen=True)
class CommandBlock:
    line: int  # 1-based line of the opening fence in README.md
    script: str
    skip_reason: str | None


def guide_blocks(text: str) -> list[CommandBlock]:
    """The ```bash blocks of the user guide, in order, with their skip reasons.

    Raises ValueError when the guide section is missing, a fence is not closed, or a skip
    comment has no reason.
    """
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == GUIDE_HEADING)
    except StopIteration:
        raise ValueError(f"README.md has no {GUIDE_HEADING!r} section") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks: list[CommandBlock] = []
    i = start + 1
    while i < end:
        fence = lines[i].strip()
        if not fence.startswith("```"):
            i += 1
            continue
        close = next((j for j in range(i + 1, end) if lines[j].strip() == "```"), None)
        if close is None:
            raise ValueError(f"README.md line {i + 1}: fence not closed inside the guide")
        if fence == "```bash":
            previous = lines[i - 1].strip()
            reason = None
            if previous.startswith("<!--") and "readme-test" in previous:
                match = SKIP_MARK.match(previous)
                if match is None:
                    raise ValueError(
                        f"README.md line {i}: write the skip mark as "
                        "'<!-- readme-test: skip (REASON) -->'"
                    )
                reason = match.group("reason").strip()
            blocks.append(CommandBlock(i + 1, "\n".join(lines[i + 1 : close]), reason))
        i = close + 1
    return blocks


def runnable_script(block: CommandBlock) -> str:
    """The block's script with the environment lines replaced by ``true``."""
    return "\n".join(
        "true" if ENVIRONMENT_LINE.match(line) else line for line in block.script.splitlines()
    )


def test_guide_extraction_finds_runnable_blocks_and_honours_skip_marks() -> None:
    sample = "\n".join(
        [
            "# t",
            "```bash",
            "echo before-guide",
            "```",
            "## User guide",
            "```bash",
            "make setup",
            "source .venv/bin/activate   # comment",
            "gnnff --help",
            "```",
            "```yaml",
            "a: 1",
            "```",
            "<!-- readme-test: skip (long) -->",
            "```bash",
            "gnnff stabilize x.yaml",
            "```",
            "## Results",
            "```bash",
            "echo after-guide",
            "```",
        ]
    )
    blocks = guide_blocks(sample)
    assert [(b.line, b.skip_reason) for b in blocks] == [(6, None), (15, "long")]
    assert runnable_script(blocks[0]).splitlines() == ["true", "true", "gnnff --help"]
    with pytest.raises(ValueError, match="skip mark"):
        guide_blocks(sample.replace("skip (long)", "skip"))

    real = guide_blocks(README.read_text())
    run = [b for b in real if b.skip_reason is None]
    assert len(run) >= 4, "the README's user guide lost its runnable command blocks"
    assert "gnnff train" in "\n".join(b.script for b in run)


def _copy_checkout(dest: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: cannot tell committed files from local outputs")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


@pytest.mark.slow
def test_readme_user_guide_commands_run_in_order(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    _copy_checkout(checkout)
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(checkout) + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    blocks = [b for b in guide_blocks(README.read_text()) if b.skip_reason is None]
    assert blocks
    for block in blocks:
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", runnable_script(block)],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
        assert result.returncode == 0, (
            f"README.md block at line {block.line} failed (exit {result.returncode}):\n"
            f"{block.script}\n--- output (tail) ---\n{(result.stdout + result.stderr)[-4000:]}"
        )
    assert (checkout / "runs/own/model.pt").is_file()
    assert (checkout / "runs/md/report.json").is_file()
    assert (checkout / "runs/lmp/report.json").is_file()


def test_readme_relative_links_point_to_committed_paths() -> None:
    """Every relative link of the README (the one-click way to the moved results) resolves."""
    text = README.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    relative = [t for t in targets if not re.match(r"^[a-z]+:", t)]
    assert relative, "the README links to no documentation page"
    missing = [t for t in relative if not (REPO / t).exists()]
    assert not missing, f"README.md links to paths that do not exist: {missing}"
    for page in (
        "docs/results/index.md",
        "docs/results/stability_study.md",
        "docs/results/bundled_models.md",
        "docs/results/performance.md",
        "docs/results/al_decorrelation.md",
    ):
        assert page in relative, f"README.md no longer links to {page}"
