"""`gnnff export` and `gnnff info`: write and inspect exported model files; `gnnff plugins`:
the registered model families, softmax backends, stability criteria and lambda schedulers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gnnff.errors import UsageError


def register(subparsers: Any) -> None:
    """Add the ``export`` and ``info`` subcommands to the ``gnnff`` parser."""
    from .contract import FORMATS

    p = subparsers.add_parser(
        "export",
        help="export a checkpoint (or an untrained model config) to a model file",
        description="Write a model file (docs/model_contract.md) for ASE and LAMMPS: a "
        "TorchScript file (--format torchscript, model.pt, the default) or an AOTInductor "
        "package (--format aoti, model.pt2, compiled for this torch release and --device; "
        "takes minutes). Loaders pick the format by the extension.",
    )
    p.add_argument(
        "checkpoint",
        nargs="?",
        help="training checkpoint written by `gnnff train`, or a TorchScript model file or "
        "bundled model name (re-exported with its metadata: e.g. compiled for this machine "
        "with --format aoti, or cast with --dtype)",
    )
    p.add_argument(
        "--untrained",
        metavar="MODEL.yaml",
        help="export randomly initialised weights from a model config (family, species, cutoff)",
    )
    p.add_argument("--out", required=True, help="output model file, e.g. model.pt")
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default=None,
        help="default: a model file's own dtype, else float64",
    )
    add_format_arguments(p, FORMATS)
    p.add_argument(
        "--softmax",
        metavar="BACKEND",
        default=None,
        help="export with this registered attention softmax backend (built in: float, "
        "lut-rexp, lut-2d; packages add more), for families with attention "
        "(default: the backend the model runs)",
    )
    p.add_argument(
        "--lut-bits",
        "--softmax-bits",
        dest="lut_bits",
        type=int,
        default=None,
        help="bit width of the --softmax backend (LUT backends: 8 or 16, default 8)",
    )
    p.add_argument("--seed", type=int, default=0, help="weight seed for --untrained")
    p.set_defaults(func=_cmd_export)

    q = subparsers.add_parser("info", help="print the metadata of a model file")
    q.add_argument("model", help="exported model file, or the name of a bundled model")
    q.add_argument("--json", action="store_true", help="print the raw metadata JSON")
    q.set_defaults(func=_cmd_info)

    r = subparsers.add_parser(
        "plugins",
        help="list the registered model families, softmax backends, criteria and schedulers",
        description="Every registered name per kind and where it comes from (gnnff, an entry "
        "point of an installed package); see docs/architecture.md, 'Extending gnnff'.",
    )
    r.add_argument("--json", action="store_true", help="print the listing as JSON")
    r.set_defaults(func=_cmd_plugins)


def add_format_arguments(p: argparse.ArgumentParser, formats: tuple[str, ...]) -> None:
    """``--format``, ``--device``, ``--max-atoms``, ``--max-edges`` (shared with train)."""
    p.add_argument(
        "--format",
        default="torchscript",
        metavar="FORMAT",
        help=f"model file format: {' or '.join(formats)} (default: torchscript; aoti writes a "
        ".pt2 AOTInductor package, see docs/model_contract.md)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="--format aoti: the device the package is compiled for (cpu, cuda; default cpu)",
    )
    p.add_argument(
        "--max-atoms",
        type=int,
        default=None,
        metavar="N",
        help="--format aoti: largest number of atoms (LAMMPS: local + ghost per rank) a call "
        "may have (default: no bound)",
    )
    p.add_argument(
        "--max-edges",
        type=int,
        default=None,
        metavar="E",
        help="--format aoti: largest number of edges a call may have (default: no bound)",
    )


def _load_yaml(path: str) -> dict[str, Any]:
    from ..io_utils import load_yaml

    cfg = load_yaml(path)
    if not isinstance(cfg, dict):
        raise UsageError(f"{path} must hold a mapping (family, species, cutoff, ...)")
    return cfg.get("model", cfg) if isinstance(cfg.get("model"), dict) else cfg


def _cmd_export(args: argparse.Namespace) -> int:
    import torch

    from . import build_model, export_model, load_checkpoint, model_from_checkpoint

    if (args.checkpoint is None) == (args.untrained is None):
        print("error: give either CHECKPOINT or --untrained MODEL.yaml", file=sys.stderr)
        return 2
    softmax = None
    if args.lut_bits is not None and args.softmax is None:
        print(
            "error: --lut-bits applies to the lut-* softmax backends (or another backend "
            "with a bit width); add --softmax NAME, e.g. --softmax lut-2d",
            file=sys.stderr,
        )
        return 2
    if args.softmax is not None:
        softmax = {"backend": args.softmax, "bits": args.lut_bits}
    from .files.formats import check_format

    try:  # bad --format, --out or bounds fail here, before anything is built
        check_format(args.format, args.out, args.device, args.max_atoms, args.max_edges)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.untrained:
            torch.manual_seed(args.seed)
            mcfg = _load_yaml(args.untrained)
            if not mcfg.get("species"):
                raise UsageError(
                    f"{args.untrained} lists no species: an untrained export has "
                    "no data to infer them from; add e.g. species: [Si, O]"
                )
            model = build_model(mcfg)
            summary = None
        elif _is_model_file(args.checkpoint):
            try:
                model, summary, file_dtype = _model_of_file(args.checkpoint)
            except RuntimeError as exc:  # torch.jit.load of a file this torch cannot read
                raise ValueError(f"{args.checkpoint}: cannot load it ({exc})") from exc
            args.dtype = args.dtype or file_dtype
        else:
            ckpt = load_checkpoint(args.checkpoint)
            model = model_from_checkpoint(ckpt)
            summary = ckpt.get("training_summary")
        args.dtype = args.dtype or "float64"
        if args.format == "aoti":
            print("compiling the AOTInductor package (a few minutes) ...", flush=True)
        path = export_model(
            model,
            args.out,
            args.dtype,
            summary,
            softmax,
            args.format,
            args.device,
            args.max_atoms,
            args.max_edges,
        )
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {path} ({args.format}, {model.family}, species {' '.join(model.species)}, "
        f"{args.dtype})"
    )
    return 0


def _is_model_file(value: str) -> bool:
    """True for a bundled model's name, a TorchScript file (a zip with ``constants.pkl``) or a
    ``*.pt2`` path; a checkpoint (``torch.save``) or a missing path is not one."""
    from .bundled import is_bundled_name
    from .files.formats import is_package, is_torchscript

    path = Path(value)
    if not path.is_file():
        return is_bundled_name(value)
    return is_package(path) or is_torchscript(path)


def _model_of_file(value: str) -> tuple[Any, dict[str, Any] | None, str]:
    """(eager model, the file's ``training`` record, its dtype) of a model file or bundled
    name; ModelFileError (a ValueError naming what to do) for a package or a file of another
    format version (``eager_from_file``)."""
    from .bundled import model_file
    from .files.load import eager_from_file, read_metadata

    path = model_file(value)
    model = eager_from_file(path)
    meta = read_metadata(path)
    return model, meta.get("training"), meta.get("dtype", "float64")


def _cmd_info(args: argparse.Namespace) -> int:
    from . import read_metadata
    from .bundled import model_file

    try:
        args.model = str(model_file(args.model))
        meta = read_metadata(args.model)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    hp = meta.get("hyperparameters", {})
    sm = meta.get("softmax") or {}
    print(f"file:        {args.model}")
    version = f"v{meta['format_version']} (gnnff {meta['gnnff_version']})"
    print(f"format:      {meta['format']} {version}")
    print(f"family:      {meta['family']}")
    print(f"species:     {' '.join(meta['species'])}")
    print(f"cutoff:      {meta['cutoff']} A")
    print(f"dtype:       {meta['dtype']}")
    if args.model.endswith(".pt2"):
        from .files.aoti import INFO_FILE, read_extra

        info = read_extra(Path(args.model), INFO_FILE) or {}
        print(
            f"package:     AOTInductor, torch {info.get('torch_version')}, device "
            f"{info.get('device')}, max_atoms {info.get('max_atoms')}, max_edges "
            f"{info.get('max_edges')}"
        )
    print(f"softmax:     {sm.get('backend')} (bits {sm.get('bits')})")
    keys = ("l_max", "num_layers", "num_scalar", "num_tensor", "mlp_hidden", "zbl")
    print("size:        " + ", ".join(f"{k}={hp[k]}" for k in keys if k in hp))
    training = meta.get("training")
    labels = (training or {}).get("labels")
    if labels:  # what labelled the training data (a teacher: its version and weights hash)
        from gnnff.data.reference import reference_label

        what = reference_label(labels)
        extra = (
            f" ({labels['package']} {labels['version']}, weights sha256 "
            f"{labels['weights_sha256'][:12]}...)"
            if "weights_sha256" in labels
            else ""
        )
        print(f"labels:      {what}{extra}")
    print(f"training:    {'untrained' if training is None else json.dumps(training)[:400]}")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from gnnff.extensions import describe

    listing = describe()
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for kind, rows in listing.items():
        print(f"{kind}:")
        for row in rows:
            print(f"  {row['name']:<22} {row['origin']}")
    return 0
