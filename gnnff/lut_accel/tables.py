"""Table generation: pure functions of a :class:`LUTConfig`, computed in exact arithmetic.

``e^-d`` is evaluated with :mod:`decimal` at 50 significant digits and the ratios with
:class:`fractions.Fraction`, then rounded half-up to integers, so the tables are the same on
every platform (no dependence on the C library's ``exp``).
"""

import decimal
from fractions import Fraction
from functools import lru_cache

from gnnff.lut_accel.config import LUTConfig


def _round_half_up(x: Fraction) -> int:
    return (x.numerator * 2 + x.denominator) // (2 * x.denominator)


@lru_cache(maxsize=64)
def numerator_table(cfg: LUTConfig) -> tuple[int, ...]:
    """``N[i] = round((2^b - 1) e^(-i * input_step))`` for i in [0, table_len), b-bit unsigned."""
    q = (1 << cfg.bits) - 1
    ctx = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN)
    step = decimal.Decimal(float(cfg.input_step))  # exact value of the float
    out = []
    for i in range(cfg.num_len):
        val = ctx.multiply(decimal.Decimal(q), ctx.exp(ctx.minus(ctx.multiply(step, i))))
        out.append(int(val.quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP)))
    return tuple(out)


@lru_cache(maxsize=64)
def compensation_table(cfg: LUTConfig) -> tuple[int, ...]:
    """rexp: ``R[m] = round(2^b / (1 + (m + 1/2) 2^-M))`` for m in [0, 2^M), M = comp_mant_bits:
    about ``2^b`` over the mantissa of the denominator (the exponent is applied by a shift)."""
    if cfg.method != "rexp":
        raise ValueError(f"compensation_table needs a 'rexp' config, got {cfg.method!r}")
    q = (1 << cfg.bits) - 1
    mbits = cfg.comp_mant_bits
    return tuple(
        min(q, _round_half_up(Fraction(1 << cfg.bits) / (1 + Fraction(2 * m + 1, 2 << mbits))))
        for m in range(1 << mbits)
    )


@lru_cache(maxsize=64)
def quotient_table(cfg: LUTConfig) -> tuple[int, ...]:
    """lut2d: flattened ``T[mn * 2^Ms + ms] = round(2^(b-1) (1 + (mn + 1/2) 2^-Mn) /
    (1 + (ms + 1/2) 2^-Ms))``, the quotient of the two mantissas in U1.(b-1), saturated to
    ``2^b - 1``."""
    if cfg.method != "lut2d":
        raise ValueError(f"quotient_table needs a 'lut2d' config, got {cfg.method!r}")
    q = (1 << cfg.bits) - 1
    mn_bits, ms_bits = cfg.num_mant_bits, cfg.den_mant_bits
    half = Fraction(1 << (cfg.bits - 1))
    out = []
    for mn in range(1 << mn_bits):
        num = 1 + Fraction(2 * mn + 1, 2 << mn_bits)
        for ms in range(1 << ms_bits):
            den = 1 + Fraction(2 * ms + 1, 2 << ms_bits)
            out.append(min(q, _round_half_up(half * num / den)))
    return tuple(out)


def second_table(cfg: LUTConfig) -> tuple[int, ...]:
    """The method's second table: compensation (rexp) or quotient (lut2d)."""
    return compensation_table(cfg) if cfg.method == "rexp" else quotient_table(cfg)
