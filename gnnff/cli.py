"""The ``gnnff`` command: subcommands map onto the package's rooms."""

from __future__ import annotations

import argparse
import importlib
import sys

# room modules that provide ``register(subparsers)``; a room missing from an install is skipped
_ROOMS = (
    "gnnff.data.commands",
    "gnnff.potentials.commands",
    "gnnff.training.commands",
    "gnnff.calculators.commands",
    "gnnff.stability.commands",
    "gnnff.plugin.commands",
    "gnnff.lut_accel.commands",
    "gnnff.study.commands",
    "gnnff.active.commands",
    "gnnff.demo",
)


def build_parser() -> argparse.ArgumentParser:
    import gnnff

    parser = argparse.ArgumentParser(
        prog="gnnff", description="Stable GNN force fields: train, export, run MD, measure."
    )
    parser.add_argument("--version", action="version", version=f"gnnff {gnnff.__version__}")
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
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, FloatingPointError) as exc:
        # expected user errors (bad input, files, diverged training) explain themselves
        print(f"gnnff {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
