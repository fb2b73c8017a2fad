"""Configurations of the two LUT-softmax methods emulated by :mod:`gnnff.lut_accel`.

The datapath (this project's own definition, after Vasyltsov & Chang, arXiv:2111.10770; not a
formula taken from the paper):

* input stage: per group, ``d = max(x) - x >= 0`` in float64, quantized to an index
  ``i = floor(d * (1 / input_step) + 0.5)``, saturated at ``table_len``;
* numerator table (both methods): ``N[i] = round((2^b - 1) * e^(-i * input_step))``, b-bit
  unsigned; indices ``>= table_len`` give ``N = 0``. The largest logit has ``N = 2^b - 1``;
* denominator: the exact integer sum ``S`` of the numerators of the group (an accumulator);
* ``rexp``: a leading-one detector gives ``S = 2^e (1 + f)``; the ``comp_mant_bits`` bits after
  the leading one address the compensation table ``R[m] = round(2^b / (1 + (m + 1/2) 2^-M))``
  (about ``2^b / mantissa``); output ``P = round(N * R / 2^e)`` (one multiplier, one shifter);
* ``lut2d``: leading-one detectors split ``N = 2^en (1 + fn)`` and ``S = 2^es (1 + fs)``; the
  ``num_mant_bits`` and ``den_mant_bits`` bits after the leading ones address the 2-D quotient
  table ``T[mn, ms] = round(2^(b-1) (1 + (mn + 1/2) 2^-Mn) / (1 + (ms + 1/2) 2^-Ms))`` and the
  output is ``P = round(2 T / 2^(es - en))``, a barrel shift (no multiplier, no divider);
* output: ``P`` saturated to ``[0, 2^b - 1]``, an unsigned fixed-point fraction U0.b, so the
  float weight is ``P / 2^b`` (1.0 is represented by ``1 - 2^-b``).

Properties that follow (and that the tests check):

* normalisation: ``S`` is the exact sum of the very numerators that are divided, so the errors of
  the exp table cancel in the sum of the weights. Per element, before the final rounding,
  ``P_i = 2^b N_i / S * (1 + r_i)`` with ``|r_i| <= rel`` (:meth:`LUTConfig.relative_error_bound`:
  rexp ``2^-(M+1) + 2^-b`` from the mantissa bucket and the rounding of R; lut2d
  ``a + c + a c + 2^-(b-1)`` with ``a = 2^-(Mn+1)``, ``c = 2^-(Ms+1)``). Each rounding adds at most
  1/2 LSB and saturation at ``2^b - 1`` costs at most 1 LSB, so for a group of n entries
  ``|sum_i w_i - 1| <= rel + (n/2 + 1) / 2^b`` (:meth:`LUTConfig.sum_error_bound`);
* order: ``x_i >= x_j`` implies ``P_i >= P_j`` within a group (every stage is monotone; for lut2d
  this needs ``num_mant_bits <= b - 2``), so the float argmax always gets the largest code. Close
  logits may tie (same index, or same code), which is the only way the argmax can change.
"""

import math
from dataclasses import dataclass, field

from gnnff.errors import GNNFFError

METHODS = ("rexp", "lut2d")
SUPPORTED_BITS = (8, 16)


class LUTConfigError(GNNFFError, ValueError):
    """LUT-softmax settings that cannot be used (method, bit width, table sizes)."""


def _auto_table_len(bits: int, input_step: float) -> int:
    """Shortest table such that every entry beyond it would round to 0 anyway:
    the smallest L with (2^b - 1) e^(-L step) < 1/2."""
    return int(math.floor(math.log(2.0 * (2**bits - 1)) / input_step)) + 1


# Defaults per (method, bits); the 8-bit ones keep each method under 700 bytes of tables.
_DEFAULTS: dict[tuple[str, int], dict[str, int | float]] = {
    ("rexp", 8): {"input_step": 1.0 / 32, "comp_mant_bits": 6},
    ("rexp", 16): {"input_step": 1.0 / 256, "comp_mant_bits": 10},
    ("lut2d", 8): {"input_step": 1.0 / 16, "num_mant_bits": 4, "den_mant_bits": 5},
    ("lut2d", 16): {"input_step": 1.0 / 256, "num_mant_bits": 6, "den_mant_bits": 7},
}


@dataclass(frozen=True)
class LUTConfig:
    """One LUT-softmax configuration.

    method: ``"rexp"`` (reciprocal-exponent + compensation table) or ``"lut2d"`` (2-D quotient
        table). bits: word width b of tables and output, 8 or 16.
    input_step: quantization step of ``d = max - x`` (logit units, > 0).
    table_len: numerator-table entries (0 = automatic: the shortest table beyond which every
        entry rounds to 0).
    comp_mant_bits: rexp only, address bits of the compensation table (1..b-2).
    num_mant_bits / den_mant_bits: lut2d only, address bits taken after the leading one of the
        numerator / denominator (1..b-2 each).
    """

    method: str
    bits: int = 8
    input_step: float = 1.0 / 32
    table_len: int = 0
    comp_mant_bits: int = 6
    num_mant_bits: int = 4
    den_mant_bits: int = 5
    _resolved_len: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise LUTConfigError(
                f"unknown LUT-softmax method {self.method!r}; choose one of {', '.join(METHODS)}"
            )
        if self.bits not in SUPPORTED_BITS:
            raise LUTConfigError(
                f"unsupported bit width {self.bits!r} for LUT softmax; use 8 or 16"
            )
        step = self.input_step
        if not (isinstance(step, (int, float)) and math.isfinite(step) and step > 0):
            raise LUTConfigError(f"input_step must be a positive finite number, got {step!r}")
        if not isinstance(self.table_len, int) or self.table_len < 0:
            raise LUTConfigError(
                f"table_len must be a non-negative int (0 = automatic), got {self.table_len!r}"
            )
        for name in ("comp_mant_bits", "num_mant_bits", "den_mant_bits"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 1 <= v <= self.bits - 2:
                raise LUTConfigError(
                    f"{name} must be an int in [1, {self.bits - 2}] for {self.bits}-bit tables "
                    f"(so every entry fits in b bits), got {v!r}"
                )
        length = self.table_len or _auto_table_len(self.bits, float(step))
        if length > 1 << 20:
            raise LUTConfigError(
                f"numerator table of {length} entries is unreasonably large; "
                "increase input_step or set table_len"
            )
        object.__setattr__(self, "_resolved_len", length)

    @property
    def num_len(self) -> int:
        """Numerator-table entries actually used."""
        return self._resolved_len

    @property
    def inv_step(self) -> float:
        """1 / input_step as a float64: the quantizer multiplies by it (bit-exact everywhere)."""
        return 1.0 / float(self.input_step)

    @property
    def word_bytes(self) -> int:
        return self.bits // 8

    def second_table_len(self) -> int:
        """Entries of the compensation (rexp) or quotient (lut2d) table."""
        if self.method == "rexp":
            return 1 << self.comp_mant_bits
        return 1 << (self.num_mant_bits + self.den_mant_bits)

    def table_bytes(self) -> dict[str, int]:
        """Exact storage of the tables in bytes (entries x b/8), per table and in total."""
        first = self.num_len * self.word_bytes
        second = self.second_table_len() * self.word_bytes
        key = "compensation" if self.method == "rexp" else "quotient"
        return {"numerator": first, key: second, "total": first + second}

    def relative_error_bound(self) -> float:
        """Bound on the relative error of a weight from the reciprocal/quotient stage alone
        (before the final rounding; see the module docstring)."""
        b = self.bits
        if self.method == "rexp":
            return 2.0 ** -(self.comp_mant_bits + 1) + 2.0**-b
        a = 2.0 ** -(self.num_mant_bits + 1)
        c = 2.0 ** -(self.den_mant_bits + 1)
        return a + c + a * c + 2.0 ** -(b - 1)

    def sum_error_bound(self, n: int) -> float:
        """Bound on ``|sum of the n weights of a group - 1|``."""
        return self.relative_error_bound() + (n / 2 + 1) / 2.0**self.bits

    def describe(self) -> dict[str, object]:
        """JSON-ready summary of the configuration."""
        out: dict[str, object] = {
            "method": self.method,
            "bits": self.bits,
            "input_step": float(self.input_step),
            "table_len": self.num_len,
        }
        if self.method == "rexp":
            out["comp_mant_bits"] = self.comp_mant_bits
        else:
            out["num_mant_bits"] = self.num_mant_bits
            out["den_mant_bits"] = self.den_mant_bits
        out["table_bytes"] = self.table_bytes()
        return out


def default_config(method: str, bits: int = 8, **overrides: int | float) -> LUTConfig:
    """The default configuration of ``method`` at ``bits`` (8 or 16), with optional overrides
    of any :class:`LUTConfig` field."""
    if method not in METHODS:
        raise LUTConfigError(
            f"unknown LUT-softmax method {method!r}; choose one of {', '.join(METHODS)}"
        )
    if bits not in SUPPORTED_BITS:
        raise LUTConfigError(f"unsupported bit width {bits!r} for LUT softmax; use 8 or 16")
    kwargs: dict[str, int | float] = dict(_DEFAULTS[(method, bits)])
    kwargs.update(overrides)
    return LUTConfig(method=method, bits=bits, **kwargs)  # type: ignore[arg-type]
