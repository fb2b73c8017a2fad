"""``gnnff train``, ``gnnff eval`` and ``gnnff refit-e0s``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers) -> None:
    """Add the ``train``, ``eval`` and ``refit-e0s`` subcommands."""
    p = subparsers.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train a gnnff model (energy/force/stress loss, optional feature-"
        "decorrelation loss with a lambda(t) scheduler). Writes metrics.csv, checkpoint.pt, "
        "curves.png, correlation.png, summary.json and model.pt into --out. The config "
        "schema is documented in gnnff.training.config. Data-parallel on N processes: "
        "torchrun --nproc_per_node N $(which gnnff) train CONFIG --out DIR (batch_size is per "
        "process; see gnnff.training.distributed).",
    )
    p.add_argument("config", help="training config (YAML)")
    p.add_argument("--out", help="run folder (required unless --data-only)")
    p.add_argument(
        "--data-only",
        action="store_true",
        help="read and check every split and build the data.cache arrays (if set), then stop",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    p.add_argument(
        "--init-model",
        default=None,
        metavar="MODEL",
        help="fine-tune: start from the weights (energy shift and scale included) of this "
        "TorchScript model file or bundled model; its hyperparameters replace the config's "
        "model section (give it again with --resume)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config field (YAML value), e.g. --set training.epochs=5; repeatable. "
        "Paths given here are relative to the working directory (those in the YAML: to its "
        "folder)",
    )
    p.add_argument(
        "--format",
        choices=("torchscript", "aoti"),
        default="torchscript",
        help="aoti: also write model.pt2, an AOTInductor package for CPU (minutes; "
        "docs/model_contract.md), next to model.pt (default: torchscript, model.pt only)",
    )
    p.set_defaults(func=_train)

    e = subparsers.add_parser(
        "eval",
        help="errors and feature correlation of a model file on labelled data",
        description="Energy/force/stress MAE and RMSE of an exported model on an extxyz file, "
        "and the model's feature correlations on that data: the invariant feature_corr "
        "(post-activation hidden units per species pair) and the basis-dependent "
        "residual_stream_corr (formerly reported as L_corr).",
    )
    e.add_argument("model", help="exported model file (model.pt), or a bundled model's name")
    e.add_argument(
        "data",
        help="labelled structure file (extxyz or any format ase.io.read "
        "reads; FILE@INDEX selects frames, e.g. vasprun.xml@:)",
    )
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    for key, where in (
        ("energy", "atoms.info"),
        ("forces", "atoms.arrays"),
        ("stress", "atoms.info"),
        ("virial", "atoms.info"),
    ):
        e.add_argument(
            f"--{key}-key",
            default=None,
            metavar="KEY",
            help=f"read the {key} label from {where}[KEY] (e.g. REF_{key}) instead "
            "of the calculator results",
        )
    e.add_argument(
        "--reference",
        default=None,
        metavar="SPEC",
        help="label DATA with this reference first and compare the model with it: "
        "teacher:NAME (e.g. teacher:sevennet-0, needs gnnff[teacher]), preset:NAME or "
        "calculator:package.module:Class; labels are cached per frame (--label-cache)",
    )
    e.add_argument(
        "--label-cache",
        default=None,
        metavar="DIR",
        help="per-frame label cache of --reference (default: .<data name>.label-cache beside "
        "DATA; rerunning reuses it)",
    )
    e.add_argument(
        "--threads", type=int, default=None, help="torch threads of a teacher (--reference)"
    )
    e.add_argument(
        "--group-by",
        default=None,
        metavar="KEY",
        help="also report the errors per value of atoms.info[KEY] (e.g. config_type); frames "
        "without it form the group '(none)'",
    )
    e.set_defaults(func=_eval)

    r = subparsers.add_parser(
        "refit-e0s",
        help="refit a model's per-species reference energies (E0s) on labelled frames",
        description="Shift a model's per-species reference energies (E0s) by the least-squares "
        "offset of its energy errors on labelled frames, e.g. frames of compositions its "
        "training set lacked (a training set of one composition ratio leaves the E0s "
        "undetermined; gnnff train warns). The weights are unchanged: forces, stresses and "
        "fixed-composition MD are equal to the bit. Writes a new TorchScript file with the "
        "fit in its metadata (training.energy_offset).",
    )
    r.add_argument("model", help="exported model file (model.pt), or a bundled model's name")
    r.add_argument("data", help="energy-labelled frames (any ASE format; FILE@INDEX allowed)")
    r.add_argument("--out", required=True, help="the refitted model file to write (*.pt)")
    r.add_argument(
        "--keep",
        default=None,
        metavar="FORMULA",
        help="leave the energies of this composition unchanged, e.g. the training set's "
        "(HfO2); default: free least-squares fit",
    )
    r.add_argument(
        "--energy-key", default=None, metavar="KEY", help="read the energy from atoms.info[KEY]"
    )
    r.set_defaults(func=_refit_e0s)


def _train(args: argparse.Namespace) -> int:
    from gnnff.errors import GNNFFError

    from .config import load_config
    from .trainer import Trainer

    if args.out is None and not args.data_only:
        print("gnnff train: error: --out is required (the run folder)", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, args.overrides)
        if args.data_only:
            from .setup import load_training_data

            data = load_training_data(cfg)
            sizes = ", ".join(f"{k} {len(v)}" for k, v in data.structures.items())
            print(f"data ok: {sizes} structures; species {data.model_config['species']}")
            return 0
        init_state = None
        if args.init_model is not None:
            init_state = _init_from_model(cfg, args.init_model)
        trainer = Trainer(cfg, args.out, resume=args.resume, init_state=init_state)
        summary = trainer.fit()
    except (GNNFFError, FileNotFoundError) as exc:  # ConfigError, DataError, bad --init-model
        print(f"gnnff train: error: {exc}", file=sys.stderr)
        return 2
    if not summary:  # a data-parallel rank other than 0: rank 0 reports
        return 0
    if args.format == "aoti":
        _write_package(args.out)
    fv = summary["final_valid"]
    print(
        f"done: {args.out}/model.pt  valid energy MAE {fv.get('energy_mae', float('nan')):.2f} "
        f"meV/atom, force MAE {fv.get('force_mae', float('nan')):.1f} meV/A, "
        f"feature corr {summary['final_feature_corr']:.4f}, residual-stream corr "
        f"{summary['final_lcorr']:.4f}"
    )
    return 0


def _init_from_model(cfg: dict[str, Any], model: str) -> dict[str, Any]:
    """``--init-model``: the weights of a model file or bundled model (:func:`fine_tune_start`)."""
    from gnnff.potentials.bundled import model_file

    from .setup import fine_tune_start

    state = fine_tune_start(cfg, model_file(model))
    print(f"fine-tuning from {model}: model section taken from its metadata")
    return state


def _write_package(out: str) -> None:
    """``OUT/model.pt2``: ``OUT/model.pt`` (the same weights, softmax and metadata) as an
    AOTInductor package for CPU."""
    from pathlib import Path

    from gnnff.potentials import eager_from_file, export_model, read_metadata

    source = Path(out) / "model.pt"
    meta = read_metadata(source)
    print(f"compiling {Path(out) / 'model.pt2'} (AOTInductor, a few minutes) ...", flush=True)
    export_model(
        eager_from_file(source),
        source.with_suffix(".pt2"),
        meta["dtype"],
        meta["training"],
        format="aoti",
    )


def _eval(args: argparse.Namespace) -> int:
    from gnnff.potentials.bundled import model_file

    from .data import DataError
    from .evaluation import evaluate_model_file, format_report
    from .labels import LabelKeys

    keys = LabelKeys(args.energy_key, args.forces_key, args.stress_key, args.virial_key)
    try:
        path = model_file(args.model)
        if args.reference is not None:
            res = _eval_against_reference(path, args)
        else:
            res = evaluate_model_file(path, args.data, keys, args.group_by)
    except (DataError, FileNotFoundError, ValueError) as exc:
        print(f"gnnff eval: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(format_report(res))
    return 0


def _eval_against_reference(model_path: Any, args: argparse.Namespace) -> dict[str, Any]:
    """``gnnff eval --reference``: label the frames of ``args.data`` with the reference (cached
    per frame), then evaluate the model on those labels. The reference is checked against
    the model's species before any frame is labelled."""
    import tempfile
    from pathlib import Path

    import ase.io

    from gnnff.data.labelling import Labeller
    from gnnff.data.reference import (
        parse_reference_arg,
        reference_label,
        reference_provenance,
        validate_reference,
    )
    from gnnff.potentials import read_metadata

    from .data import read_frames, split_index
    from .evaluation import evaluate_model_file

    if any(k is not None for k in (args.energy_key, args.forces_key, args.stress_key)):
        from gnnff.errors import UsageError

        raise UsageError("--reference labels the data itself; drop the --*-key options")
    species = list(read_metadata(model_path)["species"])
    spec = validate_reference(parse_reference_arg(args.reference), species)
    frames = read_frames(args.data, "evaluation data")
    data_file = Path(split_index(args.data)[0])
    cache = args.label_cache or data_file.parent / f".{data_file.name}.label-cache"
    result = Labeller(spec, cache, args.threads).label(frames, progress=True, desc="labelling")
    with tempfile.TemporaryDirectory(prefix="gnnff-eval-") as tmp:
        labelled = Path(tmp) / "labelled.extxyz"
        ase.io.write(labelled, result.frames, format="extxyz")
        res = evaluate_model_file(model_path, labelled, group_by=args.group_by)
    res["data"] = str(args.data)
    provenance = reference_provenance(spec)
    res["reference"] = provenance
    res["reference_label"] = reference_label(provenance)
    res["frames_skipped"] = len(result.skipped)
    return res


def _refit_e0s(args: argparse.Namespace) -> int:
    from gnnff.errors import UsageError
    from gnnff.potentials.bundled import model_file

    from .data import DataError
    from .e0s import refit_e0s
    from .labels import LabelKeys

    try:
        rep = refit_e0s(
            model_file(args.model),
            args.data,
            args.out,
            keep=args.keep,
            keys=LabelKeys(args.energy_key, None, None, None),
        )
    except (DataError, UsageError, FileNotFoundError) as exc:
        print(f"gnnff refit-e0s: error: {exc}", file=sys.stderr)
        return 2
    shift = ", ".join(f"{s} {v:+.4f}" for s, v in rep["delta_eV"].items())
    print(f"E0 shift added (eV/atom): {shift}  (fit on {rep['frames']} frames)")
    print("| composition | frames | energy MAE before (meV/atom) | after |")
    print("|---|---|---|---|")
    for row in rep["rows"]:
        print(
            f"| {row['formula']} | {row['frames']} | {row['energy_mae_before']:.2f} "
            f"| {row['energy_mae_after']:.2f} |"
        )
    print(f"wrote {args.out}")
    return 0
