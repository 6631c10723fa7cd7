"""Slow, obviously correct references: plain Python loops and NumPy, in float64.

numnet never imports this file. Each reference returns the exact-as-float64 value and,
for the sums, ``scale`` = sum |term| that numnet.testing.sum_bound turns into a tolerance.
"""
import math

import numpy as np


def sigmoid_ref(x):
    """1 / (1 + e^-x) in float64, elementwise, computed the stable way for each sign."""
    x = np.asarray(x, np.float64)
    out = np.empty(x.shape)
    for i, v in np.ndenumerate(x):
        if math.isnan(v):
            out[i] = math.nan
        elif v >= 0:
            out[i] = 1.0 / (1.0 + math.exp(-v))
        else:
            e = math.exp(v)
            out[i] = e / (1.0 + e)
    return out


def mm_ref(a, b):
    """(n, k) @ (k, m) with a Python triple loop in float64; returns (value, scale)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n, k = a.shape
    m = b.shape[1]
    value = np.zeros((n, m))
    scale = np.zeros((n, m))
    with np.errstate(all="ignore"):
        for i in range(n):
            for j in range(m):
                for p in range(k):
                    term = a[i, p] * b[p, j]
                    value[i, j] += term
                    # Infinite and NaN factors make the result non-finite in every
                    # order; only products of finite factors can overflow (scale > max
                    # marks that) or round differently.
                    if math.isfinite(a[i, p]) and math.isfinite(b[p, j]):
                        scale[i, j] += abs(term)
    return value, scale


def dot_ref(a, b):
    """sum(a * b) over all elements; returns (value, scale) as 0-d float64 arrays."""
    value, scale = mm_ref(np.reshape(a, (1, -1)), np.reshape(b, (-1, 1)))
    return value.reshape(()), scale.reshape(())


def linear_ref(x, W, b):
    """x @ W + b; returns (value, scale), the bias counted as one more term."""
    value, scale = mm_ref(x, W)
    row = np.asarray(b, np.float64).reshape(-1)
    with np.errstate(all="ignore"):
        return value + row, scale + np.where(np.isfinite(row), np.abs(row), 0.0)


def neuron_ref(x, w, b):
    """sigma(sum(x * w) + b), shaped like b; returns (value, pre-activation scale)."""
    s, scale = dot_ref(x, w)
    b = np.asarray(b, np.float64)
    with np.errstate(all="ignore"):
        return sigmoid_ref(s + b), scale + np.where(np.isfinite(b), np.abs(b), 0.0)


def forward_ref(x, layers):
    """sigma(... sigma(x @ W1 + b1) ... @ WL + bL) in float64."""
    h = np.asarray(x, np.float64)
    for W, b in layers:
        h = sigmoid_ref(linear_ref(h, W, b)[0])
    return h


def forward_bound(x, layers, dtype):
    """How far two float ``dtype`` evaluations of forward(x, layers) may differ.

    Returns (bound, scale) for numnet.testing.compare. Layer by layer, with e the bound
    on the inputs' difference: the pre-activations differ by at most
    sum_p e_p |W_pj| + sum_bound(k + 1, scale); sigmoid has slope at most 1/4 and each
    side rounds it within SIGMOID_ULP/2 ULP. Where a sum could overflow, the whole row
    downstream is order-dependent: its scale is inf.
    """
    from numnet.testing import SIGMOID_ULP, sum_bound

    h = np.asarray(x, np.float64)
    e = np.zeros(h.shape)
    overflow = np.zeros(h.shape[0], bool)
    eps = float(np.finfo(dtype).eps)
    for W, b in layers:
        z, scale = linear_ref(h, W, b)
        k = np.asarray(W).shape[0]
        absW = np.where(np.isfinite(W), np.abs(np.asarray(W, np.float64)), 0.0)
        e_z = mm_ref(e, absW)[0] + sum_bound(k + 1, scale, dtype)
        h = sigmoid_ref(z)
        e = np.where(np.isfinite(z), e_z / 4 + SIGMOID_ULP * eps * np.abs(h), 0.0)
        overflow |= (scale > float(np.finfo(dtype).max)).any(axis=1)
    out_scale = np.where(overflow[:, None], np.inf, 0.0) + np.zeros(h.shape)
    return e, out_scale


def rounded(value, dtype):
    """The float64 reference rounded to ``dtype`` (overflowing to inf where it must)."""
    with np.errstate(over="ignore"):
        return np.asarray(value).astype(dtype)
