"""Comparing two results: where they differ, by how much, and by how much they may.

This is numnet's tolerance policy, in one place. It is used by numnet's own tests and
parity suite, and it is public so that you can check your own kernels the same way.

How much may two float results differ?

* **Elementwise sigmoid** ``1/(1+exp(-x))``: each implementation rounds three times
  (exp within 1 ULP -- SLEEF's expf in torch, LLVM's in Numba -- then the add and the
  divide, half an ULP each), so each is within 2 ULP of the exact value and two of
  them within ``SIGMOID_ULP = 4`` ULP of each other. Measured against torch 2.13
  (float32 and float64, 2.1 million inputs in [-800, 800]): at most 4 ULP, 96% equal.
  Below the smallest normal number (x < -87.3 in float32, x < -708.4 in float64) the
  result is subnormal; there e^-x has already overflowed, so torch and numnet both
  return 0 (torch documents 0 for x <= -89 in float32). Such results may differ from
  the exact one by less than the smallest normal number (``np.finfo(dtype).tiny``).
* **A sum of k products** (dot, one entry of mm, linear with its bias as term k+1):
  summed in any order in floating point, the result is within ``gamma_k * sum|terms|``
  of the exact sum, ``gamma_k = k*u / (1 - k*u)``, u the unit roundoff (Higham,
  *Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 3.5). Two
  implementations that add in different orders (torch adds in blocks, numnet left to
  right) are thus within ``2 * gamma_k * sum|terms|`` of each other; that is
  :func:`sum_bound`. The bound grows with k and with the magnitudes, not with the
  result, so cancellation (a result near 0) does not make it fail spuriously.
  Products that underflow add at most one smallest subnormal each.
* **Overflow**: where ``sum|terms|`` exceeds the dtype's largest finite value, the
  order of additions can decide between a finite value, +-inf and NaN. Both answers
  are honest IEEE arithmetic, so such elements are reported and not compared.
* **The other activations** (``numnet.forward(..., hidden=, output=)``): relu and "none"
  compute no new value (max(z, 0) and z are exact), so they add no rounding; tanh
  within ``TANH_ULP = 4`` of another implementation: numnet's tanh is its own
  (numnet.elementwise.tanh64, the same bits on the CPU and the GPU; float32 is the
  float64 result rounded), measured within 1 ULP of the exact value (tests/
  test_activations.py, 4 million inputs against long double); SLEEF's (torch's vector
  path) is documented within 1, glibc's and CUDA's within 2: two of them within 3, plus
  1 of slack. Measured against torch 2.13 (parity/test_elementwise_parity.py): at most
  2 ULP. An input difference e moves an output by at most the
  activation's largest slope times e: 1/4 for sigmoid, 1 for relu, tanh and none
  (``ACTIVATION_SLOPE``); :func:`forward_bound` carries both through the layers.
* **log_softmax, softmax**: ``(x - max) - log(sum(e^(x - max)))`` and ``e^(x - max) / sum``,
  each step's rounding bounded to first order (:func:`softmax_tolerance`), exp and log
  within ``EXP_ULP`` and ``LOG_ULP`` per implementation.
* **Gradients** (``numnet.loss_and_grads``): a first-order running error analysis of
  backpropagation (:func:`grads_tolerance`) that carries each quantity's bound from the
  forward pass through the loss, each activation's derivative, and every matrix product
  and column sum (sum_bound again). relu's derivative jumps at 0: where the reference
  pre-activation is within its bound of 0, the two sides may take either branch, and
  the bound allows it.
* **SGD** needs no tolerance: ``numnet.SGD`` computes torch's update with the same
  roundings (one fused multiply-add for p - lr * buf), so it matches torch bit for bit.
* NaN must meet NaN and +-inf must meet the same inf, everywhere else.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from numnet._typing import ArrayLike, DTypeLike

SIGMOID_ULP = 4


def unit_roundoff(dtype: DTypeLike) -> float:
    """u = 2**-24 for float32, 2**-53 for float64."""
    return float(np.finfo(dtype).eps) / 2


def gamma(k: int, dtype: DTypeLike) -> float:
    """gamma_k = k u / (1 - k u): the relative error bound of a k-term sum."""
    ku = k * unit_roundoff(dtype)
    return ku / (1 - ku) if ku < 1 else np.inf


def sum_bound(k: int, scale: ArrayLike, dtype: DTypeLike) -> np.ndarray:
    """How far two k-term sums of the same terms, added in any two orders, may differ.

    scale: sum |term| (an array, computed in float64 from the inputs).
    """
    tiny = float(np.finfo(dtype).smallest_subnormal)
    return 2 * gamma(k, dtype) * np.asarray(scale, np.float64) + 2 * k * tiny


def finite_abs(a):
    """|a| in float64, with inf and NaN entries as 0: such factors make a result
    non-finite in every order, so they add nothing to the rounding scale."""
    a = np.asarray(a, np.float64)
    return np.where(np.isfinite(a), np.abs(a), 0.0)


def mm_scale(a, b, matmul):
    """sum_p |a_ip b_pj| over finite factors: the scale of sum_bound for a @ b.

    matmul: a float64 matrix product to trust for this (a Python loop, torch in float64).
    A product of finite factors that overflows makes the scale inf: order-dependent.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(matmul(finite_abs(a), finite_abs(b)), np.float64)


# -- Activations ---------------------------------------------------------------------------

# How far two implementations of each activation may be apart, in ULP of the result.
# relu and none compute no new value (max(z, 0) and z are exact), so 0.
TANH_ULP = 4
ACTIVATION_ULP = {"sigmoid": SIGMOID_ULP, "relu": 0, "tanh": TANH_ULP, "none": 0}
# The most each activation's slope can be (its Lipschitz constant): sigma' <= 1/4,
# |tanh'| <= 1, relu' and none' in {0, 1}. An input difference e moves f(z) by <= slope * e.
ACTIVATION_SLOPE = {"sigmoid": 0.25, "relu": 1.0, "tanh": 1.0, "none": 1.0}
# No two outputs of sigmoid (in [0, 1]) or tanh (in [-1, 1]) differ by more than the
# width of its range, whatever the bound on their inputs (which may have overflowed).
ACTIVATION_RANGE = {"sigmoid": 1.0, "relu": np.finfo(np.float64).max, "tanh": 2.0, "none": np.finfo(np.float64).max}
# Per implementation, in ULP: SLEEF's exp/log u10 (torch's CPU vector paths) are within
# 1 ULP; numnet's (numnet.elementwise: glibc's expf, its own exp64 and log64, the same on
# the CPU and the GPU) measured within 1 (tests/test_activations.py); CUDA's libdevice
# expf, which torch's GPU kernels use, within 2.
EXP_ULP = 2
LOG_ULP = 1


def activation64(name, z, sigmoid):
    """f(z) in float64 for the activation called ``name``; ``sigmoid`` a trusted reference.
    relu keeps NaN and -0.0 as torch.relu does."""
    z = np.asarray(z, np.float64)
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return np.asarray(sigmoid(z), np.float64)
        if name == "relu":
            return np.where(z < 0, 0.0, z)
        if name == "tanh":
            return np.tanh(z)
    return z


@dataclass
class _Layer:
    """One layer of a float64 reference forward pass, with the bounds of forward_bound:
    input h (n, k) within e_h, pre-activation z (n, m) within e_z, output y within e_y."""

    h: np.ndarray
    e_h: np.ndarray
    z: np.ndarray
    e_z: np.ndarray
    y: np.ndarray
    e_y: np.ndarray
    act: str


def _forward_layers(x, layers, dtype, matmul, sigmoid, hidden, output):
    """The reference forward pass, layer by layer, and the rows where a sum may overflow."""
    h = np.asarray(x, np.float64)
    e = np.zeros(h.shape)
    overflow = np.zeros(h.shape[0], bool)
    eps = float(np.finfo(dtype).eps)
    sub = float(np.finfo(dtype).smallest_subnormal)
    record = []
    with np.errstate(all="ignore"):
        for i, (W, b) in enumerate(layers, start=1):
            act = output if i == len(layers) else hidden
            W = np.asarray(W, np.float64)
            b = np.asarray(b, np.float64).reshape(-1)
            k = W.shape[0]
            z = np.asarray(matmul(h, W), np.float64) + b
            scale = mm_scale(h, W, matmul) + finite_abs(b)
            e_z = np.asarray(matmul(e, finite_abs(W)), np.float64) + sum_bound(k + 1, scale, dtype)
            y = activation64(act, z, sigmoid)
            rounding = ACTIVATION_ULP[act] * (eps * np.abs(y) + sub)
            e_y = np.where(np.isfinite(z), ACTIVATION_SLOPE[act] * e_z + rounding, 0.0)
            e_y = np.minimum(e_y, ACTIVATION_RANGE[act])  # finite: inf * 0 would make NaN
            overflow |= (scale > float(np.finfo(dtype).max)).any(axis=1)
            # h * inf is NaN for h = 0 and +-inf otherwise: where an input may be 0 on one
            # side and not on the other, a non-finite weight makes the result order-dependent.
            maybe_zero = ((e > 0) & (np.abs(h) <= e)).astype(np.float64)
            overflow |= (np.asarray(matmul(maybe_zero, (~np.isfinite(W)).astype(np.float64))) > 0).any(axis=1)
            record.append(_Layer(h, e, z, e_z, y, e_y, act))
            h, e = y, e_y
    return record, overflow


def forward_bound(x, layers, dtype, matmul, sigmoid, hidden="sigmoid", output="sigmoid"):
    """How far two ``dtype`` evaluations of ``numnet.forward(x, layers, hidden, output)``
    may differ; returns (bound, scale) for :func:`compare`.

    Layer by layer, with e the bound on the difference of the layer's inputs: the
    pre-activations z = h @ W + b differ by at most sum_p e_p |W_pj| +
    sum_bound(k + 1, scale); the activation moves that by at most its slope
    (ACTIVATION_SLOPE: 1/4 for sigmoid, 1 for relu, tanh and none), and the two sides
    round it within ACTIVATION_ULP of each other (SIGMOID_ULP, TANH_ULP; relu and none
    round nothing). Where z is +-inf or NaN both sides give the same exact value. Where
    a sum could overflow, or an input that may be 0 on one side only meets an infinite
    weight (0 * inf is NaN, anything else * inf is inf), the row is order-dependent from
    there on (scale inf).
    ``matmul`` and ``sigmoid`` are trusted float64 references.
    """
    record, overflow = _forward_layers(x, layers, dtype, matmul, sigmoid, hidden, output)
    last = record[-1]
    return last.e_y, np.where(overflow[:, None], np.inf, 0.0) + np.zeros(last.y.shape)


# -- log_softmax and softmax -------------------------------------------------------------------


def _softmax_rows(y, dtype, e_y=None):
    """The float64 reference of log_softmax over the rows of y, with two-sided bounds.

    Returns (d, logp, p, e_logp, r_s, scale): d = y - max, logp, p = e^logp, e_logp the
    bound on two implementations' logp (given their inputs differ by at most e_y), r_s
    one implementation's relative error in sum(e^d), scale = |y| + |max| (overflow of d).
    """
    u = unit_roundoff(dtype)
    tiny = float(np.finfo(dtype).tiny)
    y = np.asarray(y, np.float64)
    c = y.shape[-1]
    with np.errstate(all="ignore"):
        m = y.max(axis=-1, keepdims=True) if c else np.zeros(y.shape[:-1] + (1,))
        d = y - m
        s = np.exp(d).sum(axis=-1, keepdims=True)
        log_s = np.log(s)
        logp = d - log_s
        p = np.exp(logp)
        # sum(e^d): each e^d_k carries d's rounding (u |d_k|, amplified by exp) and exp's
        # own; weighted by e^d_k / s = p_k, plus gamma_c for the sum and underflows.
        r_s = gamma(c, dtype) + 2 * EXP_ULP * u + u * (p * finite_abs(d)).sum(axis=-1, keepdims=True) + c * tiny
        # logp = (y - m) - log(s): d rounds (u |d|), log(s) carries r_s and log's own
        # error, the subtraction rounds (u |logp|). Two implementations: twice that.
        e_logp = 2 * (u * finite_abs(d) + r_s + 2 * LOG_ULP * u * finite_abs(log_s) + u * finite_abs(logp))
        if e_y is not None:  # |d logp_j| <= |dy_j| + max_k |dy_k|
            spread = np.asarray(e_y, np.float64).max(axis=-1, keepdims=True) if c else 0.0
            e_logp = e_logp + 2 * spread
        scale = finite_abs(y) + finite_abs(m)
    return d, logp, p, e_logp, r_s, scale


def softmax_tolerance(op, x):
    """compare() keywords for numnet.log_softmax(x) or numnet.softmax(x) (``op``).

    log_softmax: the e_logp of _softmax_rows (one implementation: d = x - max rounds by
    u |d|; the sum of exponentials is within r_s = gamma_c + 2 EXP_ULP u + u sum_k p_k |d_k|
    relative, to first order; log adds LOG_ULP ULP; the last subtraction half an ULP),
    doubled for two implementations. softmax = e^d * (1/s): e^d within u |d| + EXP_ULP
    ULP, s within r_s, the reciprocal and the product half an ULP each; doubled, plus
    the smallest normal number for results that underflow.
    """
    x = np.asarray(x)
    rows = x.reshape(int(np.prod(x.shape[:-1])), x.shape[-1]) if x.ndim else x.reshape(1, 1)
    d, logp, p, e_logp, r_s, scale = _softmax_rows(rows, x.dtype)
    if op == "log_softmax":
        bound = e_logp
    else:
        u = unit_roundoff(x.dtype)
        with np.errstate(all="ignore"):
            bound = 2 * p * (u * finite_abs(d) + 2 * EXP_ULP * u + r_s + 4 * u) + 2 * float(np.finfo(x.dtype).tiny)
    return {"bound": bound.reshape(x.shape), "scale": scale.reshape(x.shape)}


# -- Gradients ------------------------------------------------------------------------------


def _activation_grad(layer, g, e_g, dtype):
    """delta = g * f'(z) from f's output y, and the bound on two implementations' delta,
    given their g differ by at most e_g (and their y, z as layer's bounds say).

    f'(y) moves with y: sigma' = y(1-y) by e_y (|1-2y| + e_y), tanh' = 1-y^2 by
    e_y (2|y| + e_y); relu' is 0 or 1, and where |z| <= e_z the two sides may disagree
    on the sign of z, so there f' may differ by 1. Products of inexact factors:
    |a'b' - ab| <= |a| e_b + |b| e_a + e_a e_b. Then each side's rounding: g (1-y) y is
    three roundings (gamma_3), g (1 - y y) two plus y*y's; relu and none round nothing.
    """
    u = unit_roundoff(dtype)
    sub = float(np.finfo(dtype).smallest_subnormal)
    y, e_y = layer.y, layer.e_y
    G = finite_abs(g) + e_g  # the most |g| can be on either side
    if layer.act == "sigmoid":
        fp = y * (1 - y)
        e_fp = e_y * (np.abs(1 - 2 * y) + e_y)
        rounding = gamma(3, dtype) * G * (np.abs(fp) + e_fp)
    elif layer.act == "tanh":
        fp = 1 - y * y
        e_fp = e_y * (2 * np.abs(y) + e_y)
        rounding = G * (u * (np.abs(y) + e_y) ** 2 + gamma(2, dtype) * (np.abs(fp) + e_fp))
    elif layer.act == "relu":
        fp = np.where(y <= 0, 0.0, 1.0)  # a NaN output passes g on, as in torch
        e_fp = np.where(np.abs(layer.z) <= layer.e_z, 1.0, 0.0)
        rounding = 0.0
    else:
        fp, e_fp, rounding = np.ones(y.shape), np.zeros(y.shape), 0.0
    fp = np.where(np.isfinite(fp), fp, 0.0)
    delta = g * fp
    e_delta = e_g * np.abs(fp) + finite_abs(g) * e_fp + e_g * e_fp + 2 * rounding + 4 * sub
    return delta, e_delta


def _loss_grad(y, e_y, target, loss, dtype):
    """(value, bound, scale) of the loss and (g, e_g) of its gradient dl/dy, for two
    implementations whose outputs y differ by at most e_y.

    mse, N elements: l = sum d^2 / N with d = y - t; each term rounds three times
    (gamma_3), the sum within sum_bound(N), the mean twice (a reciprocal and a product,
    or a division); |d'^2 - d^2| <= e_y (2|d| + e_y). g = (2/N) d: 2/N, d and the
    product round once each (gamma_3), and 2/N scales e_y.
    cross_entropy, n rows: l = -mean(logp[i, t_i]), logp within e_logp (_softmax_rows,
    with the logits' e_y); g = (e^logp - onehot) / n: e^logp moves by
    p (e^e_logp - 1) and rounds within EXP_ULP; 1/n, the product and the difference
    round once each.
    """
    u = unit_roundoff(dtype)
    sub = float(np.finfo(dtype).smallest_subnormal)
    with np.errstate(all="ignore"):
        if loss == "mse":
            count = y.size
            d = y - np.asarray(target, np.float64)
            squares = d * d
            S = finite_abs(squares).sum()
            norm = 2.0 / count if count else 0.0
            g = norm * d
            e_g = norm * e_y + 2 * gamma(3, dtype) * finite_abs(g) + 2 * sub
            value = squares.sum() / count if count else np.nan
            spread = (e_y * (2 * finite_abs(d) + e_y)).sum()
            e_value = (spread + 2 * gamma(3, dtype) * S + sum_bound(count, S, dtype)) / max(count, 1)
            return value, e_value + 2 * gamma(2, dtype) * np.abs(value), S, g, e_g
        n = y.shape[0]
        d, logp, p, e_logp, r_s, _ = _softmax_rows(y, dtype, e_y)
        rows = np.arange(n)
        t = np.asarray(target).astype(np.int64)
        onehot = np.zeros(y.shape)
        onehot[rows, t] = 1.0
        g = (p - onehot) / max(n, 1)
        e_p = p * np.expm1(e_logp) + 2 * 2 * EXP_ULP * u * p + 2 * float(np.finfo(dtype).tiny)
        e_g = (e_p + 2 * u * (2 * p + onehot)) / max(n, 1) + 2 * u * np.abs(g) + 2 * sub
        picked = logp[rows, t]
        S = finite_abs(picked).sum()
        value = -picked.sum() / n if n else np.nan
        e_value = (e_logp[rows, t].sum() + sum_bound(n, S, dtype)) / max(n, 1)
        return value, e_value + 2 * gamma(2, dtype) * np.abs(value), S, g, e_g


def grads_tolerance(x, target, layers, dtype, matmul, sigmoid, hidden="sigmoid", output="sigmoid", loss="mse"):
    """How far two ``dtype`` evaluations of ``numnet.loss_and_grads`` may differ: the
    :func:`compare` keywords ``{"loss": {...}, "grads": [({dW...}, {db...}), ...]}``.

    A first-order running error analysis of backpropagation, in float64, with the
    reference values' magnitudes; every step's bound is for two implementations (each
    side's rounding counted twice), as sum_bound is:

    - the forward pass as forward_bound: each layer's output within e_y;
    - the loss and dl/dy within _loss_grad's bounds, given e_y;
    - delta = dl/dz through the activation's derivative (_activation_grad): the
      derivative's own movement with y, relu's ambiguous sign where |z| <= e_z, rounding;
    - dW = h^T delta: |h|^T e_delta + e_h^T |delta| + e_h^T e_delta + sum_bound(n) of
      (|h| + e_h)^T (|delta| + e_delta); db = column sums: sum e_delta + sum_bound(n);
    - the delta below: (e_delta |W|^T + sum_bound(m)) through the activation below.

    Sums run in any order (torch's blocked BLAS, numnet's left to right, a GPU's fused
    multiply-adds), so sum_bound covers them. Where a forward sum may overflow, every
    gradient (a sum over all rows) is order-dependent and not compared (scale inf).
    matmul, sigmoid: trusted float64 references, as for forward_bound.
    """
    big = float(np.finfo(dtype).max)
    record, overflow = _forward_layers(x, layers, dtype, matmul, sigmoid, hidden, output)
    last = record[-1]
    with np.errstate(all="ignore"):
        value, e_value, loss_scale, g, e_g = _loss_grad(last.y, last.e_y, target, loss, dtype)
        poisoned = bool(overflow.any()) or not loss_scale <= big
        delta, e_delta = _activation_grad(last, g, e_g, dtype)
        grads = []
        for i in range(len(layers) - 1, -1, -1):
            layer = record[i]
            n = layer.h.shape[0]
            H, D = finite_abs(layer.h) + layer.e_h, finite_abs(delta) + e_delta  # the most |h|, |delta| can be
            scale_W = np.asarray(matmul(H.T, D), np.float64)
            e_W = (
                np.asarray(matmul(finite_abs(layer.h).T, e_delta), np.float64)
                + np.asarray(matmul(layer.e_h.T, D), np.float64)
                + sum_bound(n, scale_W, dtype)
            )
            scale_b = D.sum(axis=0)
            e_b = e_delta.sum(axis=0) + sum_bound(n, scale_b, dtype)
            b_shape = np.shape(layers[i][1])
            if poisoned:
                scale_W, scale_b = scale_W + np.inf, scale_b + np.inf
            grads.append(
                (
                    {"bound": e_W, "scale": scale_W},
                    {"bound": e_b.reshape(b_shape), "scale": scale_b.reshape(b_shape)},
                )
            )
            if i:
                W = np.asarray(layers[i][0], np.float64)
                scale_g = np.asarray(matmul(D, finite_abs(W).T), np.float64)
                g = np.asarray(matmul(delta, W.T), np.float64)
                e_g = np.asarray(matmul(e_delta, finite_abs(W).T), np.float64) + sum_bound(W.shape[1], scale_g, dtype)
                poisoned = poisoned or not (scale_g <= big).all()
                delta, e_delta = _activation_grad(record[i - 1], g, e_g, dtype)
    loss_tolerance = {"bound": np.asarray(e_value), "scale": np.asarray(np.inf if poisoned else loss_scale)}
    return {"loss": loss_tolerance, "grads": grads[::-1]}


def op_tolerance(op: str, args: Any, matmul: Callable, sigmoid: Callable) -> dict:
    """The :func:`compare` keywords (``ulp=`` or ``bound=`` and ``scale=``) for numnet op
    ``op`` called with ``args``: "sigmoid", "sum", "dot", "mm", "neuron", "linear",
    "forward" (x, layers[, hidden, output]), "log_softmax" and "softmax" (x,), and
    "loss_and_grads" (x, target, layers[, hidden, output, loss]: see grads_tolerance).

    matmul, sigmoid: trusted float64 references for the scales (see mm_scale).
    """
    if op == "sigmoid":
        return {"ulp": SIGMOID_ULP, "atol": float(np.finfo(np.asarray(args[0]).dtype).tiny)}
    if op == "forward":
        x, layers, *activations = args
        bound, scale = forward_bound(x, layers, np.asarray(x).dtype, matmul, sigmoid, *activations)
        return {"bound": bound, "scale": scale}
    if op in ("log_softmax", "softmax"):
        return softmax_tolerance(op, args[0])
    if op == "loss_and_grads":
        x, target, layers, *names = args
        return grads_tolerance(x, target, layers, np.asarray(x).dtype, matmul, sigmoid, *names)
    dtype = np.asarray(args[0]).dtype
    if op == "mm":
        a, b = args
        return {"bound": sum_bound(np.shape(a)[1], s := mm_scale(a, b, matmul), dtype), "scale": s}
    if op == "linear":
        x, W, b = args
        scale = mm_scale(x, W, matmul) + finite_abs(b).reshape(-1)
        return {"bound": sum_bound(np.shape(W)[0] + 1, scale, dtype), "scale": scale}
    if op == "sum":  # any two orders of the same terms (torch's, a GPU's tree)
        scale = np.asarray(finite_abs(args[0]).sum())
        return {"bound": sum_bound(max(np.size(args[0]), 1), scale, dtype), "scale": scale}
    a, b = args[0], args[1]
    row, column = np.reshape(a, (1, -1)), np.reshape(b, (-1, 1))
    scale = mm_scale(row, column, matmul).reshape(())
    if op == "dot":
        return {"bound": sum_bound(row.shape[1], scale, dtype), "scale": scale}
    if op == "neuron":  # sigma(sum + b): the sum's bound through sigma's slope (<= 1/4)
        bias = np.asarray(args[2], np.float64)
        with np.errstate(all="ignore"):
            value = np.asarray(sigmoid(np.asarray(matmul(row, column)).reshape(()) + bias), np.float64)
        scale = scale + finite_abs(bias)
        eps = float(np.finfo(dtype).eps)
        bound = sum_bound(row.shape[1] + 1, scale, dtype) / 4 + SIGMOID_ULP * eps * np.abs(value)
        return {"bound": bound, "scale": scale}
    raise ValueError(f"op_tolerance: unknown op {op!r}")


def ulp_distance(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """How many representable floats lie between a and b, elementwise (int64 array).

    -0.0 and +0.0 are 0 apart; a NaN is as far from anything as int64 allows.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    ints = {4: np.int32, 8: np.int64}[a.dtype.itemsize]

    def ordered(v):
        i = np.ascontiguousarray(v).view(ints).astype(np.int64)
        return np.where(i < 0, np.int64(np.iinfo(ints).min) - i, i)

    with np.errstate(over="ignore"):
        d = np.abs(ordered(a) - ordered(b))
    return np.where(np.isnan(a) | np.isnan(b), np.iinfo(np.int64).max, d)


@dataclass
class Report:
    """The outcome of :func:`compare`; ``str(report)`` is a one-paragraph verdict."""

    name: str
    ok: bool
    shape: tuple
    dtype: str
    max_abs_err: float
    max_ulp: int
    worst_index: tuple
    worst_actual: float
    worst_expected: float
    worst_allowed: float
    n_mismatched: int
    n_order_dependent: int
    tolerance: str

    def __str__(self):
        verdict = "ok" if self.ok else f"FAIL: {self.n_mismatched} element(s) out of tolerance"
        text = (
            f"{self.name}: {verdict}; shape {self.shape} {self.dtype}, "
            f"max abs err {self.max_abs_err:.3g}, max {self.max_ulp} ULP, tolerance {self.tolerance}"
        )
        if self.worst_index is not None:
            text += (
                f"; worst at {self.worst_index}: got {self.worst_actual!r}, "
                f"expected {self.worst_expected!r}, allowed +-{self.worst_allowed:.3g}"
            )
        if self.n_order_dependent:
            text += f"; {self.n_order_dependent} element(s) not compared (overflow, order-dependent)"
        return text


def compare(
    actual: ArrayLike,
    expected: ArrayLike,
    *,
    ulp: int | None = None,
    atol: float = 0.0,
    bound: ArrayLike | None = None,
    scale: ArrayLike | None = None,
    name: str = "result",
) -> Report:
    """Compare ``actual`` with ``expected`` (same shape and dtype) elementwise.

    Give exactly one tolerance: ``ulp`` (an ULP count; with ``atol``, an element also
    passes when it is within atol absolutely) or ``bound`` (absolute, per element or
    scalar, e.g. from :func:`sum_bound`). ``scale`` (sum |terms| per element) marks
    elements whose sum may overflow as order-dependent.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        raise AssertionError(
            f"{name}: expected shape {expected.shape} {expected.dtype}, got shape {actual.shape} {actual.dtype}"
        )
    if (ulp is None) == (bound is None):
        raise ValueError("compare: give exactly one of ulp= or bound=")
    wide_a = actual.astype(np.float64)
    wide_e = expected.astype(np.float64)
    same_special = (np.isnan(wide_a) & np.isnan(wide_e)) | (np.isinf(wide_a) & (wide_a == wide_e))
    finite = np.isfinite(wide_a) & np.isfinite(wide_e)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(finite, np.abs(wide_a - wide_e), np.inf)
    err = np.where(same_special, 0.0, err)
    ulps = np.where(same_special, 0, ulp_distance(actual, expected))
    if ulp is not None:
        bad = (ulps > ulp) & ~(err <= atol)
        allowed = np.zeros(actual.shape) + float("nan")
        tolerance = f"{ulp} ULP" + (f" or {atol:.3g} absolute" if atol else "")
    else:
        allowed = np.broadcast_to(np.asarray(bound, np.float64), actual.shape)
        bad = ~(err <= allowed) & ~same_special
        tolerance = "2*gamma_k*sum|terms| (sum_bound)"
    order_dependent = np.zeros(actual.shape, bool)
    if scale is not None:
        order_dependent = np.asarray(scale, np.float64) > float(np.finfo(actual.dtype).max)
        order_dependent = np.broadcast_to(order_dependent, actual.shape)
        bad = bad & ~order_dependent
    counted = ~order_dependent
    worst = None
    if actual.size:
        key = np.where(counted, np.where(bad, np.inf, err), -1.0)
        if bad.any():
            key = np.where(bad, ulps.astype(np.float64) + 1, -1.0)
        flat = int(np.argmax(key))
        worst = tuple(int(i) for i in np.unravel_index(flat, actual.shape))
    return Report(
        name=name,
        ok=not bad.any(),
        shape=actual.shape,
        dtype=str(actual.dtype),
        max_abs_err=float(err[counted].max()) if counted.any() else 0.0,
        max_ulp=int(ulps[counted].max()) if counted.any() else 0,
        worst_index=worst,
        worst_actual=actual[worst].item() if worst is not None else None,
        worst_expected=expected[worst].item() if worst is not None else None,
        worst_allowed=((float(allowed[worst]) if bound is not None else float(ulp)) if worst is not None else 0.0),
        n_mismatched=int(bad.sum()),
        n_order_dependent=int((order_dependent & ~same_special).sum()),
        tolerance=tolerance,
    )


def assert_close(actual: ArrayLike, expected: ArrayLike, **tolerance: Any) -> Report:
    """:func:`compare`, raising AssertionError with the report when it fails."""
    report = compare(actual, expected, **tolerance)
    if not report.ok:
        raise AssertionError(str(report))
    return report
