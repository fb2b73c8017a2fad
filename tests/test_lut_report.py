"""`gnnff lut report` and the error statistics it is built on."""

import argparse
import json

import pytest

from gnnff.lut_accel import commands
from gnnff.lut_accel.report import realistic_logits, softmax_error_stats
from gnnff.potentials.softmax import make_softmax_backend


def test_error_stats_float_is_exact_and_lut_is_close():
    logits, seg, g = realistic_logits(seed=1, num_groups=50)
    assert seg.unique().numel() == g
    stats = softmax_error_stats(logits, seg, g, make_softmax_backend("float"))
    assert stats["max_abs_err"] < 1e-12 and stats["kl"] < 1e-12 and "table_bytes" not in stats
    s8 = softmax_error_stats(logits, seg, g, make_softmax_backend("lut-rexp", 8))
    s16 = softmax_error_stats(logits, seg, g, make_softmax_backend("lut-rexp", 16))
    assert s8["table_bytes"] == 264 and s8["bits"] == 8
    assert 0 < s16["max_abs_err"] < s8["max_abs_err"] < 0.05
    assert 0 < s16["kl"] < s8["kl"] < 0.05
    # an empty segment id is ignored, not counted as a group
    s = softmax_error_stats(logits, seg, g + 3, make_softmax_backend("lut-2d", 8))
    assert s["groups"] == g


def _parse(argv):
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_report_writes_json_and_png(tmp_path, capsys):
    args = _parse(
        ["lut", "report", "--bits", "8", "--groups", "40", "--json", "--out", str(tmp_path)]
    )
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert [r["backend"] for r in printed["results"]] == ["lut-rexp", "lut-2d"]
    assert saved["results"] == printed["results"]
    assert all(r["table_bytes"] <= 700 for r in saved["results"])
    assert (tmp_path / "error_vs_d.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_report_rejects_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        _parse(["lut", "report", "--bits", "12"])
    args = _parse(["lut", "report", "--groups", "0", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--groups"):
        args.func(args)


def test_stats_accept_logits_that_require_grad():
    logits, seg, g = realistic_logits(seed=2, num_groups=5)
    backend = make_softmax_backend("lut-2d", 16)
    plain = softmax_error_stats(logits, seg, g, backend)
    tracked = softmax_error_stats(logits.clone().requires_grad_(True), seg, g, backend)
    assert plain == tracked and isinstance(plain["mean_abs_err"], float)


def test_cli_report_on_a_models_attention_logits(tmp_path, capsys):
    from gnnff.cli import main
    from gnnff.potentials.bundled import SMALL_TEST_SET

    data = SMALL_TEST_SET
    rc = main(
        [
            "lut",
            "report",
            "--bits",
            "8",
            "--groups",
            "20",
            "--model",
            "sio2-attn-decorrelated",
            "--data",
            str(data),
            "--max-frames",
            "1",
            "--json",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    m = json.loads(capsys.readouterr().out)["model"]
    assert m["frames"] == 1 and m["attention_groups"] > 0 and m["attention_logits"] > 0
    rows = {(r["backend"], r["bits"]): r for r in m["results"]}
    assert rows[("float", None)]["max_denergy_vs_float"] == 0.0
    lut = rows[("lut-rexp", 8)]
    assert 0 < lut["logits"]["max_abs_err"] < 0.05 and lut["max_dforce_vs_float"] > 0
    # the emulator's own parser has no --model: that part lives in gnnff.potentials
    with pytest.raises(SystemExit):
        _parse(["lut", "report", "--model", "x.pt"])
