"""Slow, obviously correct references: plain Python loops and NumPy, in float64.

numnet never imports this file. Each reference returns the exact-as-float64 value and,
for the sums, ``scale`` = sum |term| that numnet.testing.sum_bound turns into a tolerance.
"""
import math

import numpy as np

from numnet import testing
from numnet.testing import finite_abs, mm_scale


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


def matmul_loop(a, b):
    """(n, k) @ (k, m) in float64 by a Python triple loop, p in order."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n, k = a.shape
    m = b.shape[1]
    out = np.zeros((n, m))
    with np.errstate(all="ignore"):
        for i in range(n):
            for j in range(m):
                for p in range(k):
                    out[i, j] += a[i, p] * b[p, j]
    return out


def mm_ref(a, b):
    """a @ b in float64; returns (value, scale), scale = sum |a_ip b_pj| (numnet.testing)."""
    return matmul_loop(a, b), mm_scale(a, b, matmul_loop)


def dot_ref(a, b):
    """sum(a * b) over all elements; returns (value, scale) as 0-d float64 arrays."""
    value, scale = mm_ref(np.reshape(a, (1, -1)), np.reshape(b, (-1, 1)))
    return value.reshape(()), scale.reshape(())


def linear_ref(x, W, b):
    """x @ W + b; returns (value, scale), the bias counted as one more term."""
    value, scale = mm_ref(x, W)
    row = np.asarray(b, np.float64).reshape(-1)
    with np.errstate(all="ignore"):
        return value + row, scale + finite_abs(row)


def neuron_ref(x, w, b):
    """sigma(sum(x * w) + b), shaped like b; returns (value, pre-activation scale)."""
    s, scale = dot_ref(x, w)
    b = np.asarray(b, np.float64)
    with np.errstate(all="ignore"):
        return sigmoid_ref(s + b), scale + finite_abs(b)


def forward_ref(x, layers):
    """sigma(... sigma(x @ W1 + b1) ... @ WL + bL) in float64."""
    h = np.asarray(x, np.float64)
    for W, b in layers:
        h = sigmoid_ref(linear_ref(h, W, b)[0])
    return h


def tolerance(op, *args):
    """numnet.testing.op_tolerance with these references."""
    return testing.op_tolerance(op, args, matmul=matmul_loop, sigmoid=sigmoid_ref)


def rounded(value, dtype):
    """The float64 reference rounded to ``dtype`` (overflowing to inf where it must)."""
    with np.errstate(over="ignore"):
        return np.asarray(value).astype(dtype)
