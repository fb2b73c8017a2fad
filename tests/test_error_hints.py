"""Every command line a message suggests exists: the ``gnnff ...`` commands, their flags, the
``pip install`` pins and the ``make`` targets named in string literals of the package (error
messages, help texts, docstrings), checked against the real argparse tree."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from gnnff.cli import _ROOMS, build_parser

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "gnnff").rglob("*.py"))
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
OTHER_TOOLS = {"--nproc_per_node"}  # torchrun's, in `torchrun --nproc_per_node N gnnff train`


def _strings(tree: ast.AST):
    """(line, text) of every string literal; an f-string's fields read as ``{}``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "{}" for v in node.values]
            yield node.lineno, "".join(map(str, parts))


def _argument_flags(tree: ast.AST) -> set[str]:
    """Option strings of the ``add_argument`` calls in a module (its own parsers)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            out |= {a.value for a in node.args if isinstance(a, ast.Constant)}
    return out


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _all_flags(parser: argparse.ArgumentParser) -> set[str]:
    flags = set(parser._option_string_actions)
    for sub in _subcommands(parser).values():
        flags |= _all_flags(sub)
    return flags


PARSER = build_parser()


def check_command(line: str) -> tuple[list[str], set[str]]:
    """Problems of one suggested ``gnnff`` command line (the text after ``gnnff``) and the
    flags of the commands it names. Words in capitals, values and ``...`` are placeholders;
    ``a|b`` lists alternatives; a word where the parser expects a subcommand must be one."""
    parser, path, problems, flags = PARSER, ["gnnff"], [], set(PARSER._option_string_actions)
    for tok in line.split():
        if tok in ("|", "...", "&&") or tok.startswith("$"):
            break
        if tok.startswith("-"):
            for flag in tok.split("/"):
                flag = flag.split("=")[0].rstrip(".,:;)")
                if flag and flag not in parser._option_string_actions:
                    problems.append(f"`{' '.join(path)}` has no option {flag}")
            continue
        subs = _subcommands(parser)
        if not subs:
            continue  # a positional value
        names = tok.split("|")
        unknown = [n for n in names if n not in subs]
        if unknown:
            problems.append(f"`{' '.join(path)}` has no subcommand {unknown} ({sorted(subs)})")
            break
        parser = subs[names[0]]
        path.append(names[0])
        for name in names:
            flags |= set(subs[name]._option_string_actions)
    return problems, flags


def _room_flags() -> dict[str, set[str]]:
    """Room folder (``potentials``, ...; ``""`` for top-level modules) -> the flags of every
    command its command modules register."""
    out: dict[str, set[str]] = {}
    for name in _ROOMS:
        import importlib

        parser = argparse.ArgumentParser()
        importlib.import_module(name).register(parser.add_subparsers())
        parts = name.split(".")
        room = parts[1] if len(parts) > 2 else ""
        out.setdefault(room, set()).update(_all_flags(parser))
    out["lut_accel"] = out.get("lut_accel", set()) | out["potentials"]
    return out


def test_parser_walk_catches_wrong_commands_and_flags():
    """The check itself can fail: a misspelt subcommand or flag is reported."""
    assert check_command("stabilize CONFIG --out DIR --set max_rounds=2")[0] == []
    assert check_command("lammps run in.x --np 2 --json")[0] == []
    assert check_command("data generate|check|presets")[0] == []
    assert check_command("stabilise CONFIG")[0]
    assert check_command("md --temp 300")[0]
    assert check_command("lammps run --np 2 --nproc 2")[0]


def test_every_suggested_gnnff_command_exists():
    problems = []
    for path in SOURCES:
        for line, text in _strings(ast.parse(path.read_text())):
            for m in re.finditer(r"`gnnff ([^`]*)`", text):
                for p in check_command(m.group(1))[0]:
                    problems.append(f"{path.relative_to(ROOT)}:{line}: {p}")
    assert not problems, "\n".join(problems)


def test_every_flag_named_in_a_message_exists_for_its_command():
    """A ``--flag`` in a module's strings is an option of the commands that module's room
    registers, of a ``gnnff ...`` command named in the same string, or of the module's own
    parser (``python -m gnnff.study.power``)."""
    rooms = _room_flags()
    everything = set().union(*rooms.values(), PARSER._option_string_actions, OTHER_TOOLS)
    problems = []
    for path in SOURCES:
        rel = path.relative_to(ROOT / "gnnff")
        room = rel.parts[0] if len(rel.parts) > 1 else ""
        tree = ast.parse(path.read_text())
        own = _argument_flags(tree) | set(PARSER._option_string_actions)
        allowed = own | rooms.get(room, set()) | OTHER_TOOLS
        if rel.name in ("cli.py", "io_utils.py"):
            allowed = everything  # the shared layers speak of every command
        for line, text in _strings(tree):
            named = set()
            for m in re.finditer(r"gnnff ([a-z][^`\"']*)", text):
                named |= check_command(m.group(1))[1]
            for flag in FLAG.findall(text):
                if flag not in allowed | named:
                    problems.append(f"gnnff/{rel}:{line}: {flag} is no option of its command")
    assert not problems, "\n".join(problems)


def test_pip_pins_match_pyproject_and_make_targets_exist():
    deps = (ROOT / "pyproject.toml").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
    problems = []
    for path in SOURCES:
        for line, text in _strings(ast.parse(path.read_text())):
            for pin in re.findall(r'pip install "([^"]+==[^"]+)"', text):
                if f'"{pin}"' not in deps:
                    problems.append(f"{path.name}:{line}: pip install {pin} is not pyproject's pin")
            for target in re.findall(r"`make ([a-z][a-z-]*)`", text):
                if target not in targets:
                    problems.append(f"{path.name}:{line}: no Makefile target {target!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("command", ["md", "lammps run", "stabilize", "train", "data generate"])
def test_help_of_suggested_commands_runs(command, capsys):
    from gnnff.cli import main

    with pytest.raises(SystemExit) as exc:
        main([*command.split(), "--help"])
    assert exc.value.code == 0
    assert f"usage: gnnff {command}" in capsys.readouterr().out
