"""Every preset file shipped under examples/ loads and passes the preset checks (no sampling):
a typo in a committed preset fails here, not after minutes of MD in a user's run."""

from pathlib import Path

import pytest

from gnnff.data.presets import load_preset

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PRESETS = sorted(ROOT.glob("examples/data/*.yaml")) + [
    ROOT / "examples/stabilize/sio2_crystals_rattle.yaml",
    ROOT / "examples/study/bench_starts_preset.yaml",
]


@pytest.mark.parametrize("path", EXAMPLE_PRESETS, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_preset_loads(path):
    preset = load_preset(str(path))
    assert preset["systems"], path
    names = {s["name"] for s in preset["systems"]}
    for ref in preset.get("reference_md", {}).get("systems", []):
        assert ref in names
