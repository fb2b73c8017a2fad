"""Labelling selected frames with the reference method (:mod:`gnnff.data.labelling`: a
gnnff data preset, any ASE calculator or a foundation-model teacher), and placing the labels
where the training config reads them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from gnnff.data.labelling import MIN_DISTANCE, Labeller, LabellingError, LabelResult

__all__ = ["MIN_DISTANCE", "LabelResult", "Labeller", "LabellingError", "with_label_keys"]


def with_label_keys(frames: list[Atoms], data_cfg: dict[str, Any]) -> list[Atoms]:
    """Frames whose labels sit where the training config reads them (``data.*_key``): calculator
    results by default, else ``info``/``arrays`` under the configured keys."""
    keys = {
        "energy": data_cfg.get("energy_key"),
        "forces": data_cfg.get("forces_key"),
        "stress": data_cfg.get("stress_key"),
    }
    if not any(keys.values()):
        return frames
    out = []
    for a in frames:
        b = a.copy()
        res = a.calc.results
        b.calc = None
        for name, key in keys.items():
            if key and name in res:
                value = np.asarray(res[name])
                if name == "forces":
                    b.arrays[key] = value
                else:
                    b.info[key] = value.ravel() if value.ndim else float(value)
        rest = {k: v for k, v in res.items() if not keys.get(k)}
        if rest:
            b.calc = SinglePointCalculator(b, **rest)
        out.append(b)
    return out
