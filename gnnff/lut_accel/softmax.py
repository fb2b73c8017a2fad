"""Vectorised, TorchScript-compatible LUT-softmax emulation (dense and segment forms).

The integer datapath is documented in :mod:`gnnff.lut_accel.config`. Everything after the
float64 input stage (``d = max - x``, ``i = floor(d * inv_step + 0.5)``) is int64 arithmetic, so
the codes are bit-exact and deterministic; :mod:`gnnff.lut_accel.reference` computes the same
integers one element at a time. The float weight of a code ``P`` is ``P / 2^b``.

Gradients are straight-through: the forward value is the LUT result, the backward pass is the
Jacobian of the exact float softmax (``y = y_lut + (y_f - y_f.detach())``, exact because
``y_f - y_f.detach()`` is exactly 0 for finite values).

Logits may contain ``-inf`` (masked entries, weight exactly 0); NaN, ``+inf`` and groups whose
logits are all ``-inf`` are rejected with a ``ValueError``.
"""

import torch

from gnnff.segment_ops import segment_max

METHOD_REXP = 0
METHOD_LUT2D = 1


def check_segment_inputs(logits: torch.Tensor, segment: torch.Tensor, num_segments: int) -> None:
    """Raise ``ValueError`` naming the problem if the segment-softmax inputs are malformed."""
    if logits.dim() != 1:
        raise ValueError(
            "LUT softmax: logits must be 1-D [E], got shape "
            + str(logits.shape)
            + "; flatten them and pass one segment id per entry"
        )
    if not logits.is_floating_point():
        raise ValueError("LUT softmax: logits must be a floating-point tensor")
    if segment.dim() != 1 or segment.size(0) != logits.size(0):
        raise ValueError(
            "LUT softmax: segment must be 1-D with one id per logit; got logits "
            + str(logits.shape)
            + " and segment "
            + str(segment.shape)
        )
    if segment.dtype != torch.int64:
        raise ValueError("LUT softmax: segment ids must be int64 (use segment.long())")
    if num_segments < 0:
        raise ValueError("LUT softmax: num_segments must be >= 0, got " + str(num_segments))
    if segment.numel() > 0:
        lo = int(segment.min())
        hi = int(segment.max())
        if lo < 0 or hi >= num_segments:
            raise ValueError(
                "LUT softmax: segment ids must lie in [0, num_segments="
                + str(num_segments)
                + "), got range ["
                + str(lo)
                + ", "
                + str(hi)
                + "]"
            )


def _check_values(x: torch.Tensor) -> None:
    # max() propagates NaN, so one reduction catches both NaN and +inf
    if not bool(torch.max(x) < float("inf")):
        raise ValueError(
            "LUT softmax: logits contain NaN or +inf; only finite values and -inf (masked "
            "entries) are accepted - check the layer that produced them"
        )


def _numerators(d: torch.Tensor, num_table: torch.Tensor, inv_step: float) -> torch.Tensor:
    """Numerator codes N for distances d >= 0 (float64, any shape); 0 beyond the table."""
    length = num_table.numel()
    idx = torch.clamp(torch.floor(d * inv_step + 0.5), max=float(length)).to(torch.int64)
    padded = torch.cat([num_table, torch.zeros(1, dtype=num_table.dtype, device=d.device)])
    return torch.take(padded, idx)  # index table_len reads the appended 0


def _split(v: torch.Tensor, mbits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Leading-one position e = floor(log2 v) and the ``mbits`` bits after the leading one
    (zero-padded for short v) of non-negative int64 v; v = 0 gives e = -1 and a negative index.

    Uses frexp on the exact float64 image of v (exact for v < 2^53): v = f 2^(e+1) with
    f in [1/2, 1), and the bits after the leading one are floor((2 f - 1) 2^mbits), every step
    exact (Sterbenz subtraction, power-of-two scaling)."""
    f, ex = torch.frexp(v.to(torch.float64))
    mant = torch.floor((2.0 * f - 1.0) * float(1 << mbits)).to(torch.int64)
    return ex.to(torch.int64) - 1, mant


def _rexp_codes(
    n: torch.Tensor, s: torch.Tensor, comp_table: torch.Tensor, bits: int, mbits: int
) -> torch.Tensor:
    e, ms = _split(s, mbits)  # s >= 2^b - 1, so e >= b - 1 >= 1
    r = torch.take(comp_table, ms)
    half = torch.bitwise_right_shift(torch.bitwise_left_shift(torch.ones_like(e), e), 1)
    p = torch.bitwise_right_shift(n * r + half, e)
    return torch.clamp(p, max=(1 << bits) - 1)


def _lut2d_codes(
    n: torch.Tensor,
    s: torch.Tensor,
    quot_table: torch.Tensor,
    bits: int,
    num_mbits: int,
    den_mbits: int,
) -> torch.Tensor:
    en, mn = _split(n, num_mbits)
    es, ms = _split(s, den_mbits)
    mn = torch.clamp(mn, min=0)  # n = 0 is masked below
    t = torch.take(quot_table, mn * (1 << den_mbits) + ms)
    k = torch.clamp(es - en, min=0)
    # round(2 t / 2^k): add 2^(k-1) (0 when k = 0) then shift
    half = torch.bitwise_right_shift(torch.bitwise_left_shift(torch.ones_like(k), k), 1)
    p = torch.bitwise_right_shift(2 * t + half, k)
    p = torch.clamp(p, max=(1 << bits) - 1)
    return torch.where(n > 0, p, torch.zeros_like(p))


def _codes(
    n: torch.Tensor,
    s: torch.Tensor,
    method: int,
    bits: int,
    second_table: torch.Tensor,
    mbits_a: int,
    mbits_b: int,
) -> torch.Tensor:
    if method == 0:  # METHOD_REXP (TorchScript cannot read module globals)
        return _rexp_codes(n, s, second_table, bits, mbits_a)
    if method == 1:  # METHOD_LUT2D
        return _lut2d_codes(n, s, second_table, bits, mbits_a, mbits_b)
    raise ValueError(
        "LUT softmax: unknown method id " + str(method) + "; use 0 (rexp) or 1 (lut2d)"
    )


def lut_segment_codes(
    logits: torch.Tensor,
    segment: torch.Tensor,
    num_segments: int,
    method: int,
    bits: int,
    inv_step: float,
    num_table: torch.Tensor,
    second_table: torch.Tensor,
    mbits_a: int,
    mbits_b: int,
) -> torch.Tensor:
    """Integer output codes P [E] (int64, in [0, 2^b - 1]) of the segment LUT softmax.

    method: METHOD_REXP (mbits_a = comp_mant_bits) or METHOD_LUT2D (mbits_a / mbits_b =
    num_mant_bits / den_mant_bits). num_table / second_table: int64 tables from
    :mod:`gnnff.lut_accel.tables`.
    """
    check_segment_inputs(logits, segment, num_segments)
    if logits.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=logits.device)
    x = logits.detach().to(torch.float64)
    _check_values(x)
    mx = segment_max(x, segment, num_segments).index_select(0, segment)
    if bool(torch.isneginf(mx).any()):
        raise ValueError(
            "LUT softmax: a segment has only -inf logits (every entry masked); its softmax is "
            "undefined - drop that segment or unmask one entry"
        )
    n = _numerators(mx - x, num_table, inv_step)
    s = torch.zeros(num_segments, dtype=torch.int64, device=x.device).index_add(0, segment, n)
    return _codes(n, s.index_select(0, segment), method, bits, second_table, mbits_a, mbits_b)


def lut_dense_codes(
    x: torch.Tensor,
    dim: int,
    method: int,
    bits: int,
    inv_step: float,
    num_table: torch.Tensor,
    second_table: torch.Tensor,
    mbits_a: int,
    mbits_b: int,
) -> torch.Tensor:
    """Integer output codes (int64, same shape as ``x``) of the LUT softmax over ``dim``."""
    if not x.is_floating_point():
        raise ValueError("LUT softmax: input must be a floating-point tensor")
    if x.dim() == 0:
        raise ValueError("LUT softmax: input must have at least one dimension, got a scalar")
    if dim < -x.dim() or dim >= x.dim():
        raise ValueError(
            "LUT softmax: dim " + str(dim) + " out of range for a " + str(x.dim()) + "-D input"
        )
    if x.numel() == 0:
        return torch.zeros(x.shape, dtype=torch.int64, device=x.device)
    xd = x.detach().to(torch.float64)
    _check_values(xd)
    m = torch.amax(xd, dim=dim, keepdim=True)
    if bool(torch.isneginf(m).any()):
        raise ValueError(
            "LUT softmax: a slice has only -inf logits (every entry masked); its softmax is "
            "undefined - unmask one entry"
        )
    n = _numerators(m - xd, num_table, inv_step)
    s = torch.sum(n, dim=dim, keepdim=True).expand_as(n)
    return _codes(n, s, method, bits, second_table, mbits_a, mbits_b)


def codes_to_weights(codes: torch.Tensor, bits: int, dtype: torch.dtype) -> torch.Tensor:
    """Float weights ``P / 2^b`` of integer codes (exact in float32/float64)."""
    return codes.to(dtype) / float(1 << bits)
