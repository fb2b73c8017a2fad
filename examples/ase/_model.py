"""Pick the model the examples run: a bundled trained model when shipped, else an untrained one.

The untrained fallback keeps the examples runnable right after ``make setup``; its physics is
meaningless (random weights), so the stability monitor will usually end its MD early.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

PREFERRED = "sio2-allegro-decorrelated"


def example_model() -> Path:
    from gnnff.calculators.pretrained import available_pretrained, pretrained_path

    if PREFERRED in available_pretrained():
        return pretrained_path(PREFERRED)
    import torch

    from gnnff.potentials import build_model, export_model

    torch.manual_seed(0)
    path = Path(tempfile.gettempdir()) / "gnnff_example_untrained.pt"
    if not path.is_file():
        model = build_model({"family": "allegro", "species": ["Si", "O"], "cutoff": 5.0})
        export_model(model, path, dtype="float64")
    print(f"note: no bundled model {PREFERRED!r} yet; using an UNTRAINED model ({path})")
    return path
