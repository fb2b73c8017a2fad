"""benchmarks/teacher_locality.py: which atoms count as outside the cutoff, and the floor's
summary (a known displacement gives the known floor)."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import teacher_locality as tl  # noqa: E402


def test_outside_mask_uses_the_minimum_image():
    atoms = bulk("Cu", "sc", a=2.0).repeat(5)  # 10 A box, atoms every 2 A
    out = tl.outside_mask(atoms, 0, 3.0)
    d = atoms.get_distances(0, range(len(atoms)), mic=True)
    assert not out[0] and out.sum() == int((d > 3.0).sum())
    assert d.max() < 5.0 * math.sqrt(3) + 1e-9  # through the boundary, not across the box
    # neighbours along the boundary (x = 8 A is 2 A away by the minimum image) stay inside
    across = [i for i, p in enumerate(atoms.positions) if np.allclose(p, [8.0, 0.0, 0.0])]
    assert not out[across[0]]


def test_summary_of_known_force_changes():
    rows = [
        {"cutoff": 5.0, "dF": [0.1, -0.1, 0.1], "F": [1.0, -2.0, 3.0]},
        {"cutoff": 5.0, "dF": [0.3, 0.3, -0.3], "F": [1.0, 1.0, 1.0]},
        {"cutoff": 6.0, "dF": [0.0, 0.0, 0.0], "F": [1.0, 1.0, 1.0]},
    ]
    s = tl.summarize(rows, [5.0, 6.0])
    assert s["5.0"]["centres"] == 2
    assert math.isclose(s["5.0"]["floor_mae_meV_A"], 200 / math.sqrt(2))
    assert math.isclose(s["5.0"]["floor_rmse_meV_A"], math.sqrt((0.01 + 0.09) / 2 / 2) * 1e3)
    lo, hi = s["5.0"]["floor_mae_ci95"]
    assert 100 / math.sqrt(2) - 1e-9 <= lo <= hi <= 300 / math.sqrt(2) + 1e-9
    assert math.isclose(s["5.0"]["mean_abs_F_component_meV_A"], 1500.0)
    assert s["6.0"]["floor_mae_meV_A"] == 0.0


def test_select_frames_keeps_order_and_filters_by_config_type(tmp_path):
    from ase.io import write

    cells = []
    for k, kind in enumerate(["a-HfO2", "m-HfO2", "a-HfO2"]):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.1 * k)
        atoms.info["config_type"] = kind
        cells.append(atoms)
    write(tmp_path / "one.extxyz", cells[:2])
    write(tmp_path / "two.extxyz", cells[2:])
    paths = [str(tmp_path / "one.extxyz"), str(tmp_path / "two.extxyz")]
    assert len(tl.select_frames(paths)) == 3
    picked = tl.select_frames(paths, "a-HfO2")
    assert [round(a.cell[0, 1] * 2, 6) for a in picked] == [3.6, 3.8]
    with pytest.raises(SystemExit, match="no frame of config_type 'c-HfO2'"):
        tl.select_frames(paths, "c-HfO2")
