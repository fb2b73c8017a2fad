"""lambda(t) schedulers follow their documented formulas."""

import math

import pytest

from gnnff.training.config import validate_config
from gnnff.training.schedulers import (
    AdaptiveLambda,
    ConstantLambda,
    CosineLambda,
    build_lambda_scheduler,
)


def test_constant():
    s = ConstantLambda(0.3)
    assert [s.value(t) for t in (0, 1, 10_000)] == [0.3, 0.3, 0.3]


def test_cosine_warmup_then_hold():
    s = CosineLambda(2.0, warmup_steps=10, after_warmup="hold")
    for t in range(10):
        assert s.value(t) == pytest.approx(2.0 * 0.5 * (1 - math.cos(math.pi * t / 10)))
    assert s.value(0) == 0.0
    assert s.value(5) == pytest.approx(1.0)
    assert s.value(10) == 2.0 and s.value(999) == 2.0
    vals = [s.value(t) for t in range(12)]
    assert all(b >= a for a, b in zip(vals, vals[1:], strict=False))


def test_cosine_anneal():
    s = CosineLambda(1.0, warmup_steps=4, after_warmup="anneal", anneal_steps=8, lambda_end=0.2)
    assert s.value(4) == pytest.approx(1.0)
    for k in range(8):
        expect = 0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * k / 8))
        assert s.value(4 + k) == pytest.approx(expect)
    assert s.value(12) == 0.2 and s.value(100) == 0.2


def test_cosine_without_warmup_starts_at_max():
    assert CosineLambda(0.5, warmup_steps=0).value(0) == 0.5


def test_adaptive_update_rule_and_bounds():
    s = AdaptiveLambda(target_fraction=0.1, lambda_min=0.01, lambda_max=1.0, momentum=0.5)
    assert s.value(0) == 0.01  # lambda_init 0 clipped to the lower bound
    s.observe(force_loss=2.0, corr_loss=0.5)  # goal 0.4
    assert s.value(1) == pytest.approx(0.5 * 0.01 + 0.5 * 0.4)
    for _ in range(60):
        s.observe(2.0, 0.5)
    assert s.value(2) == pytest.approx(0.4, rel=1e-6)  # lambda L_corr = 0.1 L_F
    for _ in range(60):
        s.observe(1000.0, 0.01)
    assert s.value(3) == 1.0
    for _ in range(60):
        s.observe(0.0, 0.5)
    assert s.value(4) == 0.01
    s2 = AdaptiveLambda(0.1, 0.01, 1.0, 0.5)
    s2.load_state_dict(s.state_dict())
    assert s2.value(0) == s.value(0)


def test_build_from_config_converts_epochs_to_steps(tmp_path):
    f = tmp_path / "a.extxyz"
    f.write_text("")
    cfg = validate_config(
        {
            "data": {"train": str(f), "valid": str(f)},
            "decorrelation": {
                "scheduler": "cosine",
                "warmup_epochs": 2,
                "lambda_max": 0.4,
                "after_warmup": "anneal",
            },
            "training": {"epochs": 5},
        }
    )
    s = build_lambda_scheduler(cfg["decorrelation"], steps_per_epoch=3, total_epochs=5)
    assert isinstance(s, CosineLambda)
    assert s.warmup == 6 and s.anneal == 9
    assert s.value(6) == pytest.approx(0.4) and s.value(15) == 0.0
