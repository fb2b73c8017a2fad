"""LUT-softmax emulator: bit-exactness against the element-wise reference, numerical
properties, straight-through gradients, TorchScript round trip and input validation."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnnff.extensions import SOFTMAX, PluginError
from gnnff.lut_accel.backends import LUTSoftmax
from gnnff.lut_accel.config import LUTConfig, default_config
from gnnff.lut_accel.reference import (
    quantize_distance,
    reference_dense_codes,
    reference_segment_codes,
)
from gnnff.lut_accel.tables import compensation_table, numerator_table, quotient_table
from gnnff.potentials.softmax import make_softmax_backend
from gnnff.segment_ops import float_segment_softmax

CONFIGS = [("lut-rexp", 8), ("lut-rexp", 16), ("lut-2d", 8), ("lut-2d", 16)]
BACKENDS = {key: make_softmax_backend(*key) for key in CONFIGS}
HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)
adversarial = st.sampled_from(
    [
        0.0,
        -0.0,
        1.0,
        -1.0,
        3.14159,
        -1e30,
        1e30,
        -float("inf"),
        1e-30,
        -3.4e38,
        0.03125,
        0.015625,
        2.5,
        -2.5,
    ]
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread for this module's small kernels, restored afterwards (no global state
    set at import: conftest.py's setting holds for the other modules)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@st.composite
def grouped_logits(draw, max_size: int = 120):
    """Logits [E] with segment ids (ties, single-element groups, empty groups, -inf, huge and
    tiny values, all-equal groups); every non-empty group keeps one finite logit."""
    num_segments = draw(st.integers(1, 12))
    size = draw(st.integers(1, max_size))
    style = draw(st.sampled_from(["spread", "ties", "equal", "mixed", "narrow", "grid"]))
    if style == "spread":
        vals = draw(st.lists(finite, min_size=size, max_size=size))
    elif style == "ties":
        pool = draw(st.lists(finite, min_size=1, max_size=3))
        vals = draw(st.lists(st.sampled_from(pool), min_size=size, max_size=size))
    elif style == "equal":
        vals = [draw(finite)] * size
    elif style == "grid":  # multiples of 1/512: exact half-steps of every default quantizer
        vals = [
            k / 512 for k in draw(st.lists(st.integers(-4000, 4000), min_size=size, max_size=size))
        ]
    elif style == "narrow":
        vals = draw(st.lists(st.floats(-8, 8, width=32), min_size=size, max_size=size))
    else:
        vals = draw(st.lists(st.one_of(finite, adversarial), min_size=size, max_size=size))
    seg = draw(st.lists(st.integers(0, num_segments - 1), min_size=size, max_size=size))
    # an all -inf group is (correctly) rejected; make each group's first entry finite
    seen: set[int] = set()
    for i, g in enumerate(seg):
        if g not in seen:
            seen.add(g)
            if vals[i] == -float("inf"):
                vals[i] = -1.0
    return vals, seg, num_segments


def _codes(key, vals, seg, num_segments, dtype=torch.float32):
    x = torch.tensor(vals, dtype=dtype)
    return BACKENDS[key].segment_codes(x, torch.tensor(seg, dtype=torch.int64), num_segments)


@pytest.mark.parametrize("key", CONFIGS)
@HYP
@given(data=grouped_logits())
def test_segment_codes_bit_exact_vs_reference(key, data):
    vals, seg, num_segments = data
    cfg = BACKENDS[key].config
    x = torch.tensor(vals, dtype=torch.float32)
    got = _codes(key, vals, seg, num_segments).tolist()
    assert got == reference_segment_codes(x.tolist(), seg, num_segments, cfg)
    assert all(0 <= p <= (1 << cfg.bits) - 1 for p in got)


@pytest.mark.parametrize("key", CONFIGS)
@HYP
@given(data=grouped_logits())
def test_sum_bound_and_order(key, data):
    vals, seg, num_segments = data
    cfg = BACKENDS[key].config
    x = torch.tensor(vals, dtype=torch.float64)
    w = BACKENDS[key](x, torch.tensor(seg), num_segments)
    assert bool(((w >= 0) & (w <= 1)).all())
    codes = _codes(key, vals, seg, num_segments, torch.float64)
    for g in set(seg):
        idx = [i for i, s in enumerate(seg) if s == g]
        total = float(w[idx].sum())
        assert abs(total - 1.0) <= cfg.sum_error_bound(len(idx)) + 1e-12
        # weak order preservation: larger logit -> code at least as large
        order = sorted(idx, key=lambda i: float(x[i]))
        c = [int(codes[i]) for i in order]
        assert c == sorted(c)
        # the float argmax gets the largest code (ties allowed, no tolerance needed)
        assert int(codes[order[-1]]) == max(c)


@pytest.mark.parametrize("key", CONFIGS)
def test_huge_groups_bit_exact(key):
    cfg = BACKENDS[key].config
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(20000, generator=gen, dtype=torch.float64) * 4
    seg = torch.cat(
        [torch.zeros(15000, dtype=torch.int64), torch.randint(1, 5, (5000,), generator=gen)]
    )
    got = BACKENDS[key].segment_codes(x, seg, 6).tolist()
    assert got == reference_segment_codes(x.tolist(), seg.tolist(), 6, cfg)
    w = BACKENDS[key](x, seg, 6)
    sums = torch.zeros(6, dtype=torch.float64).index_add(0, seg, w)
    for g in range(5):
        n = int((seg == g).sum())
        assert abs(float(sums[g]) - 1) <= cfg.sum_error_bound(n)
    assert float(sums[5]) == 0.0  # empty segment: no outputs, nothing summed


@pytest.mark.parametrize("key", CONFIGS)
def test_quantizer_rounds_half_steps_up(key):
    cfg = BACKENDS[key].config
    step = cfg.input_step
    vals = [0.0] + [-(k + 0.5) * step for k in range(40)]
    got = _codes(key, vals, [0] * len(vals), 1, torch.float64).tolist()
    assert got == reference_segment_codes(vals, [0] * len(vals), 1, cfg)
    assert [quantize_distance((k + 0.5) * step, cfg) for k in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("key", CONFIGS)
def test_special_groups(key):
    cfg = BACKENDS[key].config
    q = (1 << cfg.bits) - 1
    # a single element, all-equal, very negative and masked logits
    single = _codes(key, [3.0], [0], 1).tolist()[0]
    assert abs(single / 2**cfg.bits - 1) <= cfg.sum_error_bound(1)
    if key[0] == "lut-rexp":
        assert single == q  # lut2d: the mantissa midpoints give 2^b - 2 at 8 bits
    eq = _codes(key, [-1e30] * 10, [0] * 10, 1).tolist()
    assert len(set(eq)) == 1 and abs(eq[0] * 10 / 2**cfg.bits - 1) <= cfg.sum_error_bound(10)
    got = _codes(key, [0.0, -1e30, -float("inf"), -50.0], [0] * 4, 1).tolist()
    assert got[0] == single and got[1:] == [0, 0, 0]


@pytest.mark.parametrize("key", CONFIGS)
@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_dense_bit_exact_and_matches_segment(key, dim):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 7, 9, generator=gen) * 3
    x[1, 2, :] = 0.5  # all equal along the last dim
    mod = BACKENDS[key]
    got = mod.dense_codes(x, dim).numpy()
    np.testing.assert_array_equal(got, reference_dense_codes(x.numpy(), mod.config, dim))
    rows = torch.movedim(x, dim, -1).reshape(-1, x.shape[dim])
    seg = torch.arange(rows.shape[0]).repeat_interleave(rows.shape[1])
    seg_codes = mod.segment_codes(rows.reshape(-1), seg, rows.shape[0]).reshape(rows.shape)
    np.testing.assert_array_equal(
        torch.movedim(torch.tensor(got), dim, -1).reshape(rows.shape), seg_codes.numpy()
    )
    w = mod.dense(x, dim)
    assert torch.equal(w, torch.tensor(got, dtype=x.dtype) / 2**mod.bits)


@pytest.mark.parametrize("key", CONFIGS)
def test_straight_through_gradient_is_float_jacobian(key):
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(30, generator=gen, dtype=torch.float64) * 2
    seg = torch.randint(0, 4, (30,), generator=gen)
    mod = BACKENDS[key]
    jac_lut = torch.autograd.functional.jacobian(lambda v: mod(v, seg, 4), x)
    jac_float = torch.autograd.functional.jacobian(lambda v: float_segment_softmax(v, seg, 4), x)
    torch.testing.assert_close(jac_lut, jac_float, rtol=0, atol=1e-14)
    # forward value under autograd is still the exact LUT result
    xr = x.clone().requires_grad_(True)
    assert torch.equal(mod(xr, seg, 4).detach(), mod(x, seg, 4))
    assert torch.equal(
        mod(xr, seg, 4).detach(), mod.segment_codes(x, seg, 4).double() / 2**mod.bits
    )
    # dense form too
    xd = (torch.randn(3, 6, generator=gen, dtype=torch.float64)).requires_grad_(True)
    jd = torch.autograd.functional.jacobian(lambda v: mod.dense(v, -1), xd)
    jf = torch.autograd.functional.jacobian(lambda v: torch.softmax(v, -1), xd)
    torch.testing.assert_close(jd, jf, rtol=0, atol=1e-14)


@pytest.mark.parametrize("key", CONFIGS)
def test_torchscript_round_trip(key, tmp_path):
    mod = BACKENDS[key]
    path = tmp_path / "sm.pt"
    torch.jit.save(torch.jit.script(mod), str(path))
    loaded = torch.jit.load(str(path))
    assert torch.equal(loaded.num_table, mod.num_table)
    assert torch.equal(loaded.second_table, mod.second_table)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(500, generator=gen) * 3
    seg = torch.randint(0, 40, (500,), generator=gen)
    assert torch.equal(loaded(x, seg, 41), mod(x, seg, 41))
    assert torch.equal(loaded.segment_codes(x, seg, 41), mod.segment_codes(x, seg, 41))
    xd = x.reshape(20, 25)
    assert torch.equal(loaded.dense(xd, -1), mod.dense(xd, -1))
    xg = x.clone().requires_grad_(True)
    (loaded(xg, seg, 41) * torch.arange(500.0)).sum().backward()
    xf = x.clone().requires_grad_(True)
    (float_segment_softmax(xf, seg, 41) * torch.arange(500.0)).sum().backward()
    torch.testing.assert_close(xg.grad, xf.grad)


def test_backends_listing_and_factory():
    assert SOFTMAX.builtin_names() == ("float", "lut-rexp", "lut-2d")
    for name in SOFTMAX.builtin_names():
        for bits in (8, 16):
            mod = make_softmax_backend(name, bits)
            assert mod.name == name
            torch.jit.script(mod)
    assert make_softmax_backend("lut-2d").bits == 8  # bits=None -> 8
    with pytest.raises(PluginError, match="unknown softmax backend 'lut2d'; did you mean 'lut-2d'"):
        make_softmax_backend("lut2d")
    custom = LUTConfig(method="rexp", bits=8, input_step=0.1, table_len=40, comp_mant_bits=3)
    mod = make_softmax_backend("lut-rexp", config=custom)
    assert isinstance(mod, LUTSoftmax) and mod.num_table.numel() == 40
    x = torch.tensor([0.0, -0.3, -2.0, -7.0])
    assert mod.segment_codes(
        x, torch.zeros(4, dtype=torch.long), 1
    ).tolist() == reference_segment_codes(x.tolist(), [0] * 4, 1, custom)


def test_table_bytes_and_contents():
    total8 = {}
    for method in ("rexp", "lut2d"):
        for bits in (8, 16):
            cfg = default_config(method, bits)
            q = (1 << bits) - 1
            num = numerator_table(cfg)
            assert num[0] == q and all(a >= b for a, b in zip(num, num[1:], strict=False))
            assert num[-1] >= 1  # auto length: the first entry beyond would round to 0
            assert round(q * math.exp(-cfg.num_len * cfg.input_step)) == 0
            second = compensation_table(cfg) if method == "rexp" else quotient_table(cfg)
            assert len(second) == cfg.second_table_len()
            assert all(0 < v <= q for v in second)
            tb = cfg.table_bytes()
            assert tb["total"] == (len(num) + len(second)) * bits // 8
            if bits == 8:
                total8[method] = tb["total"]
    assert total8["rexp"] <= 700 and total8["lut2d"] <= 700
    # pure function of the parameters
    assert numerator_table.__wrapped__(default_config("rexp", 8)) == numerator_table(
        default_config("rexp", 8)
    )


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="unsupported bit width"):
        make_softmax_backend("lut-rexp", 12)
    with pytest.raises(ValueError, match="unsupported bit width"):
        default_config("lut2d", 4)
    with pytest.raises(ValueError, match="input_step must be a positive"):
        LUTConfig(method="rexp", input_step=0.0)
    with pytest.raises(ValueError, match="input_step must be a positive"):
        LUTConfig(method="rexp", input_step=float("nan"))
    with pytest.raises(ValueError, match="table_len"):
        LUTConfig(method="rexp", table_len=-3)
    with pytest.raises(ValueError, match="comp_mant_bits"):
        LUTConfig(method="rexp", bits=8, comp_mant_bits=7)
    with pytest.raises(ValueError, match="unknown LUT-softmax method"):
        LUTConfig(method="cordic")
    with pytest.raises(ValueError, match="unknown softmax backend"):
        make_softmax_backend("lut-3d", 8)
    with pytest.raises(ValueError, match="needs a LUTConfig with method"):
        make_softmax_backend("lut-2d", config=default_config("rexp", 8))


@pytest.mark.parametrize("scripted", [False, True])
def test_bad_inputs_raise_clear_errors(scripted):
    mod = make_softmax_backend("lut-2d", 8)
    if scripted:
        mod = torch.jit.script(mod)
    err = (ValueError, torch.jit.Error) if scripted else ValueError
    seg = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(err, match="NaN or \\+inf"):
        mod(torch.tensor([0.0, float("nan"), 1.0]), seg, 1)
    with pytest.raises(err, match="NaN or \\+inf"):
        mod(torch.tensor([0.0, float("inf"), 1.0]), seg, 1)
    with pytest.raises(err, match="only -inf"):
        mod(torch.full((3,), -float("inf")), seg, 1)
    with pytest.raises(err, match="segment ids must lie in"):
        mod(torch.zeros(3), torch.tensor([0, 1, 2]), 2)
    with pytest.raises(err, match="segment ids must lie in"):
        mod(torch.zeros(3), torch.tensor([0, -1, 0]), 2)
    with pytest.raises(err, match="one id per logit"):
        mod(torch.zeros(3), torch.zeros(4, dtype=torch.int64), 1)
    with pytest.raises(err, match="must be 1-D"):
        mod(torch.zeros(3, 1), seg, 1)
    with pytest.raises(err, match="int64"):
        mod(torch.zeros(3), seg.int(), 1)
    with pytest.raises(err, match="dim 2 out of range"):
        mod.dense(torch.zeros(3, 4), 2)
    # empty input and empty segments are fine
    assert mod(torch.zeros(0), torch.zeros(0, dtype=torch.int64), 5).numel() == 0
    w = mod(torch.tensor([1.0, 2.0]), torch.tensor([0, 3]), 6)
    assert w.tolist() == [254 / 256, 254 / 256]
