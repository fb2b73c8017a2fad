"""Small I/O helpers shared by every room: atomic writes, hashing, YAML, and the one rule for
relative paths (:func:`resolve_path`)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gnnff.errors import UsageError


def atomic_write(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Write ``path`` atomically: ``writer(tmp_path)`` fills a temporary file in the same
    folder, which is then renamed over ``path``. A crash never leaves a file that looks
    complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give a normal file's mode
        writer(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    def write(p: Path) -> None:
        p.write_text(text)

    return atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@dataclass(frozen=True)
class ResolvedPath:
    """A path as the user gave it, made absolute, with the rule that was applied (so an error
    can say why a relative path points where it does)."""

    given: str
    path: Path
    rule: str
    """``"absolute"``, ``"relative to the working directory DIR"`` or ``"relative to the
    config file's folder DIR"``."""

    def describe(self, key: str) -> str:
        """``"KEY: GIVEN (RULE)"``, adding the absolute path when the rule does not show it."""
        where = "" if self.rule == "absolute" else f" -> {self.path}"
        return f"{key}: {self.given} ({self.rule}{where})"

    def missing(self, key: str, fix: str) -> str:
        """The message for a path that does not exist: what was given, where it was looked
        for and why, and ``fix``."""
        return f"{self.describe(key)} does not exist; {fix}"


def resolve_path(
    value: str | os.PathLike[str], config_dir: str | os.PathLike[str] | None = None
) -> ResolvedPath:
    """Make ``value`` absolute by gnnff's one rule for relative paths: a path written inside a
    config file is relative to that file's folder (``config_dir``); a path typed on the command
    line (a flag, ``--set section.key=PATH``) is relative to the current working directory
    (``config_dir`` None). ``~`` is expanded. The path need not exist."""
    given = os.fspath(value)
    p = Path(given).expanduser()
    if p.is_absolute():
        return ResolvedPath(given, p, "absolute")
    if config_dir is None:
        base, rule = Path.cwd(), "relative to the working directory"
    else:
        base, rule = Path(config_dir).resolve(), "relative to the config file's folder"
    return ResolvedPath(given, (base / p).resolve(), f"{rule} {base}")


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _yaml_loader() -> Any:
    """A safe YAML loader that also reads ``1e-3`` and ``1E5`` as numbers (YAML 1.2 floats;
    PyYAML's YAML 1.1 rules would make them strings and a config check would reject them)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Loader


def yaml_value(text: str) -> Any:
    """Parse one YAML scalar or document from a string (``--set`` values)."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Read a YAML file; a missing file or a syntax error raises ValueError naming the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"YAML file {path} does not exist")
    try:
        return yaml.load(path.read_text(), Loader=_yaml_loader())
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML (fix the line shown): {exc}") from None


def read_frames(path: str | os.PathLike[str], index: int | str = ":") -> list[Any]:
    """Frames of any ASE-readable structure file (``index`` as in ``ase.io.read``), with
    errors that name the file and the fix instead of a format parser's traceback."""
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"structure file {path} does not exist")
    try:
        got = ase.io.read(path, index=index)
    except (StopIteration, IndexError):
        raise UsageError(
            f"{path} has no frame {index!r}; give an index below its number of "
            "frames (negative counts from the end)"
        ) from None
    except Exception as exc:  # ASE raises format-specific errors of many types
        raise UsageError(
            f"could not read {path} as a structure file ({type(exc).__name__}: {exc}); give a "
            "file ASE can read (extxyz, cif, POSCAR, LAMMPS data, ...) with a matching suffix"
        ) from None
    frames = got if isinstance(got, list) else [got]
    if not frames:
        raise UsageError(f"{path} holds no frames at index {index!r}")
    return frames
