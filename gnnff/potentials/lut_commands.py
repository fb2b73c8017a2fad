"""``gnnff lut report`` with ``--model``: the LUT emulator's report on a model's own attention
logits and its energy/force error under each softmax backend.

This adapter combines two rooms (the emulator in ``lut_accel`` and the models here), so it lives
in ``potentials``, which may import ``lut_accel``; ``lut_accel`` itself never imports
``potentials``. ``gnnff.cli`` registers the ``lut`` command through this module.
"""

from __future__ import annotations

import argparse
from typing import Any

from gnnff.errors import UsageError
from gnnff.lut_accel import commands as lut_commands


def register(subparsers: Any) -> None:
    """Add ``gnnff lut`` (with ``report --model/--data``) to the top-level parser."""
    lut_commands.register(subparsers, model_section=model_section)


def model_section(args: argparse.Namespace) -> dict[str, Any]:
    """The report's ``model`` section: softmax error statistics on the attention logits of
    ``args.model`` (file or bundled name; family ``allegro-attn``) over the first
    ``args.max_frames`` frames of ``args.data`` (labelled, ASE-readable), and energy/force MAE
    per backend (``potentials.softmax_eval.backend_errors``)."""
    import ase.io

    from gnnff.lut_accel.report import softmax_error_stats
    from gnnff.potentials.analysis.softmax_eval import attention_logits, backend_errors
    from gnnff.potentials.bundled import model_file
    from gnnff.potentials.softmax import make_softmax_backend

    if args.max_frames < 1:
        raise UsageError(f"--max-frames must be >= 1, got {args.max_frames}")
    args.model = str(model_file(args.model))
    frames = ase.io.read(args.data, index=f":{args.max_frames}")
    frames = frames if isinstance(frames, list) else [frames]
    logits, segment, groups = attention_logits(args.model, frames)
    rows = backend_errors(args.model, frames)
    for row in rows:
        if row["backend"] != "float":
            backend = make_softmax_backend(row["backend"], row["bits"])
            row["logits"] = softmax_error_stats(logits, segment, groups, backend)
    return {"model": str(args.model), "data": str(args.data), "frames": len(frames),
            "attention_groups": groups, "attention_logits": int(logits.numel()),
            "results": rows}  # fmt: skip
