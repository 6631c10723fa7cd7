"""The elementwise maths of numnet, one source for both devices: e^x, log x, the
activations and their derivatives, the softmax rows, the losses' rows and SGD's update.

Each function here is plain Python on scalars (or on one row of an array), compiled by
numba for the CPU (numnet.kernels, numnet.backward_kernels call them in their loops)
and, called from a CUDA kernel, compiled by numba-cuda for the GPU (numnet.cuda calls
the same functions). The arithmetic is the same instructions on both: IEEE adds,
multiplies and divides, numnet._llvm.fma where a fused multiply-add is meant, and
numnet._device's ``mul``/``add``/``sub`` wherever a product is added, so that NVVM,
which would fuse it, rounds twice as the CPU does. No libm, no libdevice function is
called: e^x, log x and tanh x are numnet's own algorithms below, so numnet.cuda gives
numnet's bits, element for element (tests/test_same_bits.py; tests/test_ptx.py checks
the GPU's instructions).

**e^x.** float32: glibc's expf (the algorithm, table and constants of
sysdeps/ieee754/flt-32/e_expf.c, from Arm's optimized-routines), computed in float64
and rounded once: the same bits as the C library's expf on every float32 input
(checked on all 2^32 of them against glibc 2.36). float64 (``exp64``): x = (k/N) ln 2 + r
with N = 32, |r| <= ln 2 / 64 (Cody and Waite's two-part ln 2 / N, with fma); e^r - 1 by
its Taylor polynomial to degree 6 (the next term is below 2^-57); 2^(k/N) = 2^q 2^(i/N)
with 2^(i/N) from a table of hi + lo pairs computed at import (decimal, 60 digits).
Within 0.6 ULP of e^x; subnormal results are scaled in two steps and rounded once.
**log x** (``log64``): x = 2^e m, m in [sqrt(1/2), sqrt(2)); log m = log(1 + f) by
fdlibm's e_log.c scheme (s = f / (2 + f), log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2))))
with R the Taylor series of 2 atanh(s)/s - 2 to 11 terms, and e ln 2 in two parts.
float32 log x is log64 rounded to float32. **tanh** (``tanh64``): x for |x| < 2^-27; the
Taylor series (Bernoulli numbers, 20 terms) below TANH_SERIES = 0.55; (1 - t) / (1 + t)
with t = e^-2|x| above; float32 tanh is tanh64 rounded. These three compute in float64
for float32 too, as glibc's expf does (tests/test_ptx.py allows float64 in float32
kernels only there, FLOAT64_INSIDE). Cost, from the PTX for sm_90: expf 13 float64
instructions per element, tanh about 60; nothing on GPUs with full-rate float64, while
one that runs float64 at 1/64 of the float32 rate makes a float32 sigmoid bound by its
float64 units rather than by memory (README, CUDA section).
"""

import decimal
from fractions import Fraction

import numpy as np
from numba import types
from numba.extending import overload

from numnet._device import add, mul, sub
from numnet._jit import jit
from numnet._llvm import float_bits, float_from_bits, fma

# -- float32 e^x: glibc's expf --------------------------------------------------------

# glibc's __exp2f_data: 2^(i/32) for i = 0..31 as float64 bits, minus i << 47 (so that
# adding k << 47 for k = 32q + i makes the float64 2^(k/32)), and the polynomial for
# 2^(r/32) - 1 on |r| <= 1/2, its coefficients pre-divided by 32, 32^2, 32^3.
_EXP2F_TABLE = np.array(
    [
        0x3FF0000000000000,
        0x3FEFD9B0D3158574,
        0x3FEFB5586CF9890F,
        0x3FEF9301D0125B51,
        0x3FEF72B83C7D517B,
        0x3FEF54873168B9AA,
        0x3FEF387A6E756238,
        0x3FEF1E9DF51FDEE1,
        0x3FEF06FE0A31B715,
        0x3FEEF1A7373AA9CB,
        0x3FEEDEA64C123422,
        0x3FEECE086061892D,
        0x3FEEBFDAD5362A27,
        0x3FEEB42B569D4F82,
        0x3FEEAB07DD485429,
        0x3FEEA47EB03A5585,
        0x3FEEA09E667F3BCD,
        0x3FEE9F75E8EC5F74,
        0x3FEEA11473EB0187,
        0x3FEEA589994CCE13,
        0x3FEEACE5422AA0DB,
        0x3FEEB737B0CDC5E5,
        0x3FEEC49182A3F090,
        0x3FEED503B23E255D,
        0x3FEEE89F995AD3AD,
        0x3FEEFF76F2FB5E47,
        0x3FEF199BDD85529C,
        0x3FEF3720DCEF9069,
        0x3FEF5818DCFBA487,
        0x3FEF7C97337B9B5F,
        0x3FEFA4AFA2A490DA,
        0x3FEFD0765B6E4540,
    ],
    np.uint64,
)
_INV_LN2_32 = float.fromhex("0x1.71547652b82fep+0") * 32  # 32 / ln 2
_SHIFT = float.fromhex("0x1.8p+52")  # adding it rounds a float64 to an integer (ties to even)
_C0 = float.fromhex("0x1.c6af84b912394p-5") / 32**3
_C1 = float.fromhex("0x1.ebfce50fac4f3p-3") / 32**2
_C2 = float.fromhex("0x1.62e42ff0c52d6p-1") / 32
_EXPF_OVERFLOW = np.float32(float.fromhex("0x1.62e42ep6"))  # above: e^x > max float32
_EXPF_UNDERFLOW = np.float32(-float.fromhex("0x1.9fe368p6"))  # below: e^x < 2^-150


@jit(inline="always")
def expf(x):
    """e^x for a float32 x, as glibc's expf computes it (same bits).

    x * 32/ln2 = k + r, k an integer, |r| <= 1/2; e^x = 2^(k/32) * 2^(r/32), the first
    factor from the table, the second a cubic in r, all in float64, rounded once to
    float32 at the end. Saturates to inf above 88.72 and to 0 below -103.97; NaN stays NaN.
    """
    xd = np.float64(x)
    kd = fma(_INV_LN2_32, xd, _SHIFT)  # k + 1.5 * 2^52: k sits in the low bits
    ki = float_bits(kd)
    kd -= _SHIFT
    r = fma(_INV_LN2_32, xd, -kd)
    s = float_from_bits(_EXP2F_TABLE[ki & np.uint64(31)] + (ki << np.uint64(47)))  # 2^(k/32)
    y = fma(fma(_C0, r, _C1), r * r, fma(_C2, r, 1.0)) * s
    e = np.float32(y)
    if x > _EXPF_OVERFLOW:
        e = np.float32(np.inf)
    if x < _EXPF_UNDERFLOW:
        e = np.float32(0)
    if x != x:
        e = x + x
    return e


# -- float64 e^x, log x, tanh x: numnet's own --------------------------------------------

decimal.getcontext().prec = 60
_LN2 = decimal.Decimal(2).ln()
_N = 32  # exp64: 2^(k/N), k = N q + i, i from the table


def _split(value):
    """(hi, lo): float64s with hi + lo = value to about 2^-106 relative."""
    hi = float(value)
    return hi, float(value - decimal.Decimal(hi))


_EXP_TABLE = np.array([_split(decimal.Decimal(2) ** (decimal.Decimal(i) / _N)) for i in range(_N)])  # (N, 2)
_INV_LN2_N = float(_N / _LN2)
_LN2_N_HI, _LN2_N_LO = _split(_LN2 / _N)
_E2, _E3, _E4, _E5, _E6 = (1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720)  # 1/n!
_EXP_OVERFLOW = 709.782712893384  # above: e^x > max float64
_EXP_UNDERFLOW = -745.1332191019412  # below: e^x < 2^-1075, rounds to 0


@jit
def exp64(x):
    """e^x for a float64 x (module docstring): within 0.6 ULP; inf above 709.78, 0 below
    -745.13, NaN stays NaN."""
    if x != x:
        return x + x
    if x > _EXP_OVERFLOW:
        return np.inf
    if x < _EXP_UNDERFLOW:
        return 0.0
    kd = fma(x, _INV_LN2_N, _SHIFT) - _SHIFT  # the integer nearest x N / ln 2
    r = fma(-kd, _LN2_N_HI, x)
    r = fma(-kd, _LN2_N_LO, r)  # x - kd ln2 / N, |r| <= ln 2 / 64
    q = fma(fma(fma(fma(_E6, r, _E5), r, _E4), r, _E3), r, _E2)
    p = mul(fma(q, r, 1.0), r)  # e^r - 1
    k = np.int64(kd)
    i = k & (_N - 1)
    hi = _EXP_TABLE[i, 0]
    scaled = add(hi, fma(hi, p, _EXP_TABLE[i, 1]))  # 2^(i/N) e^r, in [0.98, 2)
    q1 = (k >> 5) // 2  # 2^q in two normal factors: a subnormal result is rounded once
    q2 = (k >> 5) - q1
    return mul(
        mul(scaled, float_from_bits(np.uint64(q1 + 1023) << np.uint64(52))),
        float_from_bits(np.uint64(q2 + 1023) << np.uint64(52)),
    )


def _ln2_parts():
    """ln 2 as hi + lo, hi with its low 32 bits zero, so that e * hi is exact (|e| < 2^11)."""
    hi_bits = np.float64(float(_LN2)).view(np.uint64) & ~np.uint64((1 << 32) - 1)
    hi = float(hi_bits.view(np.float64))
    return hi, float(_LN2 - decimal.Decimal(hi))


_LN2_HI, _LN2_LO = _ln2_parts()
_SQRT2 = float(decimal.Decimal(2).sqrt())
# 2 atanh(s)/s - 2 = sum_j 2 z^j / (2j + 1). Arrays, not tuples: a kernel indexes a
# global array in constant memory, a tuple indexed in a loop would go to local memory.
_LOG_R = np.array([2 / (2 * j + 1) for j in range(1, 12)])
_TWO54 = 2.0**54


@jit
def log64(x):
    """log x for a float64 x (module docstring): within 1 ULP; -inf at 0, NaN below 0,
    inf at inf, NaN stays NaN."""
    if x != x or x < 0.0:
        return np.nan
    if x == 0.0:
        return -np.inf
    if x == np.inf:
        return x
    e = np.int64(0)
    if x < 2.2250738585072014e-308:  # subnormal: scaled into the normal range first
        x = x * _TWO54
        e = np.int64(-54)
    bits = float_bits(x)
    e += np.int64(bits >> np.uint64(52)) - 1023
    m = float_from_bits((bits & np.uint64(0xFFFFFFFFFFFFF)) | np.uint64(0x3FF0000000000000))  # [1, 2)
    if m > _SQRT2:
        m = m * 0.5
        e += 1
    f = m - 1.0  # exact
    s = f / (2.0 + f)
    z = mul(s, s)
    R = _LOG_R[10]
    for j in range(9, -1, -1):
        R = fma(R, z, _LOG_R[j])
    R = mul(R, z)
    hfsq = mul(mul(0.5, f), f)
    log1pf = sub(f, sub(hfsq, mul(s, add(hfsq, R))))
    ed = np.float64(e)
    return add(mul(ed, _LN2_HI), add(log1pf, mul(ed, _LN2_LO)))


def _tanh_series(terms):
    """The Taylor coefficients a_1.. of tanh x = x + x sum_n a_n x^(2n), as float64:
    a_n = 2^(2n+2) (2^(2n+2) - 1) B_(2n+2) / (2n+2)!, B the Bernoulli numbers."""
    count = 2 * terms + 3
    B = [Fraction(0)] * count
    B[0] = Fraction(1)
    for m in range(1, count):  # sum_k C(m+1, k) B_k = 0
        acc = Fraction(0)
        binom = 1
        for k in range(m):
            acc += binom * B[k]
            binom = binom * (m + 1 - k) // (k + 1)
        B[m] = -acc / (m + 1)
    fact = [1]
    for i in range(1, count):
        fact.append(fact[-1] * i)
    return np.array(
        [
            float(Fraction(4 ** (n + 1) * (4 ** (n + 1) - 1)) * B[2 * n + 2] / fact[2 * n + 2])
            for n in range(1, terms + 1)
        ]
    )


_TANH = _tanh_series(20)
_TANH_TERMS = len(_TANH)
TANH_SERIES = 0.55  # tanh64: below, the series; above, (1 - t) / (1 + t)


@jit
def tanh64(x):
    """tanh x for a float64 x (module docstring): within 2 ULP; +-1 for large |x|, NaN
    stays NaN, -0.0 stays -0.0."""
    a = abs(x)
    if a < 2.0**-27:
        return x
    if a < TANH_SERIES:
        z = mul(x, x)
        P = _TANH[_TANH_TERMS - 1]
        for n in range(_TANH_TERMS - 2, -1, -1):
            P = fma(P, z, _TANH[n])
        return fma(x, mul(z, P), x)
    t = exp64(-2.0 * a)
    y = sub(1.0, t) / add(1.0, t)
    return -y if x < 0.0 else y


def exp(v):
    """e^v in v's dtype: expf for float32, exp64 for float64."""


@overload(exp)
def _exp_impl(v):
    if v == types.float32:
        return lambda v: expf(v)
    return lambda v: exp64(v)


def log(v):
    """log v in v's dtype: log64, rounded to float32 for a float32."""


@overload(log)
def _log_impl(v):
    if v == types.float32:
        return lambda v: np.float32(log64(np.float64(v)))
    return lambda v: log64(v)


def tanh(v):
    """tanh v in v's dtype: tanh64, rounded to float32 for a float32."""


@overload(tanh)
def _tanh_impl(v):
    if v == types.float32:
        return lambda v: np.float32(tanh64(np.float64(v)))
    return lambda v: tanh64(v)


# -- the activations and their derivatives ---------------------------------------------------

# The activations, numbered as numnet._checks.ACTIVATIONS names them.
SIGMOID, RELU, TANH, IDENTITY = 0, 1, 2, 3


# error_model="numpy": no ZeroDivisionError check on the division (1 + e^-v >= 1 anyway),
# whose branch would keep LLVM from vectorising a loop of sigmoids.
@jit(error_model="numpy")
def sigma(v, one):
    """sigma(v) = 1 / (1 + e^-v), with ``one`` the constant 1 in v's dtype.

    Stable as written in IEEE arithmetic: for v << 0, e^-v overflows to inf and the
    result is exactly 0; for v >> 0, e^-v underflows to 0 and the result is 1; NaN stays
    NaN. This is torch's CPU formula, so the results agree to a few ULP.
    """
    return one / add(one, exp(-v))


@jit(error_model="numpy")
def activate(v, act, one):
    """f(v) for activation number ``act``: sigma(v), relu(v) = max(v, 0), tanh(v) or v.

    relu keeps NaN and -0.0 as torch.relu does (only v < 0 becomes 0).
    """
    if act == SIGMOID:
        return sigma(v, one)
    if act == RELU:
        zero = one - one
        return zero if v < zero else v
    if act == TANH:
        return tanh(v)
    return v


@jit
def act_grad(g, y, act, one):
    """g * f'(z), from the activation's output y = f(z); torch's formulas, in its order.

    sigmoid: g (1 - y) y;  tanh: g (1 - y y);  relu: 0 where y <= 0, else g (so a NaN
    output passes g on, as torch's threshold_backward does);  none: g.
    """
    if act == SIGMOID:
        return mul(mul(g, sub(one, y)), y)
    if act == RELU:
        zero = one - one
        return zero if y <= zero else g
    if act == TANH:
        return mul(g, sub(one, mul(y, y)))
    return g


# -- rows: the softmax and the losses --------------------------------------------------------


@jit
def row_max(x, i):
    """max_j x[i, j]: -inf for an empty row, NaN if any entry is NaN (torch's maximum)."""
    m = -x.dtype.type(np.inf)
    for j in range(x.shape[1]):
        v = x[i, j]
        if v > m or v != v:  # once m is NaN, v > m is False for every v: NaN sticks
            m = v
    return m


@jit
def log_softmax_row(x, i, out):
    """out[i, j] = (x[i, j] - m) - log(sum_k e^(x[i, k] - m)), m = max_k x[i, k], k in order.

    Subtracting the row's max first is what makes this stable: every e^(x - m) is at
    most 1, so nothing overflows for any finite input, and the largest term is exactly
    1, so the sum is at least 1 and its log is finite. The order of the two subtractions
    is torch's (x - m first keeps large, close logits exact). A row with a NaN or +inf,
    or all -inf, is NaN throughout, as in torch.
    """
    m = row_max(x, i)
    s = x.dtype.type(0)
    for j in range(x.shape[1]):
        s = add(s, exp(sub(x[i, j], m)))
    log_sum = log(s)
    for j in range(x.shape[1]):
        out[i, j] = sub(sub(x[i, j], m), log_sum)


@jit
def softmax_row(x, i, out):
    """out[i, j] = e^(x[i, j] - m) * (1 / sum_k e^(x[i, k] - m)), m the row's max: stable
    as log_softmax is; torch's order (the exponentials, their sum s, each times 1/s)."""
    one = x.dtype.type(1)
    m = row_max(x, i)
    s = one - one
    for j in range(x.shape[1]):
        e = exp(sub(x[i, j], m))
        out[i, j] = e
        s = add(s, e)
    inv = one / s
    for j in range(x.shape[1]):
        out[i, j] = mul(out[i, j], inv)


@jit
def mse_row(y, target, i, act, norm, delta):
    """sum_j (y[i, j] - t[i, j])^2, j in order, and delta[i, j] = norm (y - t) f'(z), with
    norm = 2/N (N all the elements) in y's dtype, as torch's mse_loss_backward: one row of
    the MSE loss and its gradient. The loss is the sum of these row sums, rows in order."""
    one = y.dtype.type(1)
    acc = one - one
    for j in range(y.shape[1]):
        d = sub(y[i, j], target[i, j])
        acc = add(acc, mul(d, d))
        delta[i, j] = act_grad(mul(norm, d), y[i, j], act, one)
    return acc


@jit
def cross_entropy_row(y, t, i, act, inv, logp, delta):
    """logp[i, :] = log_softmax(y[i, :]); delta[i, j] = (e^logp[i, j] * inv - [j = t] inv)
    f'(z), inv = 1/n, as torch's autograd computes it; returns logp[i, t]. The loss is
    -(sum of these, rows in order) / n."""
    one = y.dtype.type(1)
    log_softmax_row(y, i, logp)
    for j in range(y.shape[1]):
        g = mul(exp(logp[i, j]), inv)
        if j == t:
            g = sub(g, inv)
        delta[i, j] = act_grad(g, y[i, j], act, one)
    return logp[i, t]


# -- the optimiser ------------------------------------------------------------------------------


@jit
def sgd_update(p, g, buf, lr, momentum, first):
    """One parameter's step of torch.optim.SGD (dampening 0, no Nesterov, no weight
    decay): returns (p, buf) after it.

        buf = g                      on the first step (``first``),
        buf = momentum * buf + g     after it (two roundings, as torch),
        p   = p - lr * buf           one fused multiply-add, fma(buf, -lr, p), as torch's
                                     p.add_(buf, alpha=-lr) on CPUs with FMA.
    """
    if first:
        buf = g
    elif momentum != 0:
        buf = add(mul(momentum, buf), g)
    return fma(buf, -lr, p), buf
