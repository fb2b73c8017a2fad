"""Plain-Python reference of the LUT-softmax datapath, one element at a time, written for clarity.

It shares nothing with the vectorised torch code except the tables (pure functions of the
config), so the tests can prove that :mod:`gnnff.lut_accel.softmax` is bit-exact. Leading-one
positions come from ``int.bit_length`` and all integer arithmetic is Python's exact ``int``.
"""

import math
from collections.abc import Sequence

import numpy as np

from gnnff.lut_accel.config import LUTConfig
from gnnff.lut_accel.tables import numerator_table, second_table


def quantize_distance(d: float, cfg: LUTConfig) -> int:
    """Table index of distance ``d = max - x >= 0``: floor(d * (1/step) + 0.5), saturated at
    table_len (indices >= table_len read 0)."""
    v = d * cfg.inv_step + 0.5
    if v >= cfg.num_len:  # also catches d = +inf (a -inf logit)
        return cfg.num_len
    return math.floor(v)


def numerator(d: float, cfg: LUTConfig) -> int:
    """Numerator code N of distance d."""
    i = quantize_distance(d, cfg)
    return numerator_table(cfg)[i] if i < cfg.num_len else 0


def leading_one(v: int) -> int:
    """Position of the leading one of v > 0 (floor(log2 v))."""
    return v.bit_length() - 1


def mantissa_bits(v: int, mbits: int) -> int:
    """The ``mbits`` bits that follow the leading one of v > 0 (zero-padded when v is short)."""
    e = leading_one(v)
    top = v >> (e - mbits) if e >= mbits else v << (mbits - e)
    return top - (1 << mbits)


def rexp_code(n: int, s: int, cfg: LUTConfig) -> int:
    """rexp output code: P = round(N * R[mantissa(S)] / 2^e), e = leading one of S; saturated."""
    e = leading_one(s)
    r = second_table(cfg)[mantissa_bits(s, cfg.comp_mant_bits)]
    p = (n * r + (1 << (e - 1))) >> e if e > 0 else n * r
    return min(p, (1 << cfg.bits) - 1)


def lut2d_code(n: int, s: int, cfg: LUTConfig) -> int:
    """lut2d output code: P = round(2 T[mant(N), mant(S)] / 2^(eS - eN)); 0 when N = 0."""
    if n == 0:
        return 0
    mn = mantissa_bits(n, cfg.num_mant_bits)
    ms = mantissa_bits(s, cfg.den_mant_bits)
    t = second_table(cfg)[(mn << cfg.den_mant_bits) + ms]
    k = leading_one(s) - leading_one(n)
    p = 2 * t if k == 0 else (2 * t + (1 << (k - 1))) >> k
    return min(p, (1 << cfg.bits) - 1)


def reference_segment_codes(
    logits: Sequence[float], segment: Sequence[int], num_segments: int, cfg: LUTConfig
) -> list[int]:
    """Integer output codes of the segment LUT softmax, element by element."""
    xs = [float(v) for v in logits]
    seg = [int(v) for v in segment]
    if len(xs) != len(seg):
        raise ValueError("logits and segment must have the same length")
    for x in xs:
        if math.isnan(x) or x == math.inf:
            raise ValueError("logits contain NaN or +inf")
    for g in seg:
        if not 0 <= g < num_segments:
            raise ValueError(f"segment id {g} outside [0, {num_segments})")
    # 1. group maximum
    group_max = [-math.inf] * num_segments
    for x, g in zip(xs, seg, strict=True):
        group_max[g] = max(group_max[g], x)
    # 2. numerators from the quantized distance d = max - x
    nums = []
    for x, g in zip(xs, seg, strict=True):
        if group_max[g] == -math.inf:
            raise ValueError(f"segment {g} has only -inf logits")
        nums.append(numerator(group_max[g] - x, cfg))
    # 3. integer denominators
    sums = [0] * num_segments
    for n, g in zip(nums, seg, strict=True):
        sums[g] += n
    # 4. output codes
    code = rexp_code if cfg.method == "rexp" else lut2d_code
    return [code(n, sums[g], cfg) for n, g in zip(nums, seg, strict=True)]


def reference_dense_codes(x: np.ndarray, cfg: LUTConfig, dim: int = -1) -> np.ndarray:
    """Integer codes of the LUT softmax of ``x`` over axis ``dim`` (one slice at a time)."""
    arr = np.moveaxis(np.asarray(x, dtype=np.float64), dim, -1)
    flat = arr.reshape(-1, arr.shape[-1]) if arr.size else arr.reshape(0, arr.shape[-1])
    out = np.zeros(flat.shape, dtype=np.int64)
    for row in range(flat.shape[0]):
        vals = flat[row].tolist()
        out[row] = reference_segment_codes(vals, [0] * len(vals), 1, cfg)
    return np.moveaxis(out.reshape(arr.shape), -1, dim)
