"""The ``gnnff`` command: subcommands map onto the package's rooms.

Start-up stays light: this module and each room's ``register`` import no torch, e3nn or ASE
(tests/test_cli.py checks it), so ``gnnff --help`` answers at once. Expected user errors print
one line; ``gnnff -T ...`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import sys
from typing import Any

# room modules that provide ``register(subparsers)``; a room missing from an install is skipped
_ROOMS = (
    "gnnff.data.commands",
    "gnnff.potentials.commands",
    "gnnff.training.commands",
    "gnnff.calculators.commands",
    "gnnff.stability.commands",
    "gnnff.lammps.commands",
    "gnnff.potentials.lut_commands",  # gnnff lut (lut_accel.commands + the --model part)
    "gnnff.study.commands",
    "gnnff.active.commands",
    "gnnff.demo",
)


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default ("(default: 300.0)"), unless the help text
    already names the default, the default is None / empty, or the option is a flag."""

    def _format_action(self, action: argparse.Action) -> str:
        shown = action.default
        hidden = (
            action.help == argparse.SUPPRESS
            or shown is None
            or shown == argparse.SUPPRESS
            or isinstance(shown, bool)
            or shown == []
            or not (action.option_strings or action.nargs in ("?", "*"))
            or "default" in (action.help or "").lower()
        )
        if not hidden:
            action = copy.copy(action)
            note = "(default: %(default)s)"
            action.help = f"{action.help} {note}" if action.help else note
        return super()._format_action(action)


class GnnffArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults (:class:`DefaultsHelpFormatter`); nested
    subcommands inherit it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    import gnnff

    parser = GnnffArgumentParser(
        prog="gnnff", description="Stable GNN force fields: train, export, run MD, measure."
    )
    parser.add_argument("--version", action="version", version=f"gnnff {gnnff.__version__}")
    parser.add_argument(
        "-T",
        "--traceback",
        action="store_true",
        help="on error, show the full Python traceback instead of one line",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _ROOMS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe surfaces here, not at interpreter exit
        return code
    except BrokenPipeError:
        # `gnnff info M | head`: the reader left; stop quietly, as Unix tools do
        _silence_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the pipe
    except KeyboardInterrupt:
        if args.traceback:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, FloatingPointError) as exc:
        if args.traceback:
            raise
        # expected user errors (bad input, files, diverged training) explain themselves
        print(f"gnnff {args.command}: error: {exc}  (gnnff -T: traceback)", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
