"""The CPU kernels: explicit loops compiled by Numba, one per piece of the maths.

Kernels trust their input: the public functions in ``numnet.ops`` have already checked
shapes and dtypes and allocated the output. Every kernel accumulates in the dtype of its
input on purpose (``x.dtype.type(0)``): float32 in, float32 sums, as torch does.

Sums run left to right (p = 0, 1, ..., k-1). That order is the definition written out,
and it is also the order torch.mm uses for the notebook's 1x5 @ 5x1 product.
"""
import numpy as np
from numba import literal_unroll
from numba.extending import overload

from numnet._jit import jit

@jit
def sigma(v, one):
    """sigma(v) = 1 / (1 + e^-v), with ``one`` the constant 1 in v's dtype.

    Stable as written in IEEE arithmetic: for v << 0, e^-v overflows to inf and the
    result is exactly 0; for v >> 0, e^-v underflows to 0 and the result is 1; NaN stays
    NaN. This is torch's CPU formula, so the results agree to a few ULP.
    """
    return one / (one + np.exp(-v))


# The activations, numbered as numnet._checks.ACTIVATIONS names them.
SIGMOID, RELU, TANH, IDENTITY = 0, 1, 2, 3


@jit
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
        return np.tanh(v)
    return v


@jit
def sigmoid_kernel(x, out):
    """out[i] = sigma(x[i]) over flat arrays."""
    one = x.dtype.type(1)
    for i in range(x.shape[0]):
        out[i] = sigma(x[i], one)


@jit
def dot_kernel(a, b):
    """sum_i a[i] * b[i] over flat arrays, accumulated in their dtype."""
    acc = a.dtype.type(0)
    for i in range(a.shape[0]):
        acc += a[i] * b[i]
    return acc


@jit
def neuron_kernel(x, w, b, out):
    """out[i] = sigma(sum_j x[j] * w[j] + b[i]): one neuron, its bias broadcast over out."""
    one = x.dtype.type(1)
    s = dot_kernel(x, w)
    for i in range(b.shape[0]):
        out[i] = sigma(s + b[i], one)


@jit
def mm_kernel(a, b, out):
    """out = a @ b.  a: (n, k) @ b: (k, m) -> out: (n, m).

    out[i, j] = sum_p a[i, p] * b[p, j], p in order. The loop runs i, p, j so that the
    innermost loop walks a row of b and a row of out: contiguous, vectorisable.
    """
    n, k = a.shape
    m = b.shape[1]
    zero = a.dtype.type(0)
    for i in range(n):
        for j in range(m):
            out[i, j] = zero
        for p in range(k):
            a_ip = a[i, p]
            for j in range(m):
                out[i, j] += a_ip * b[p, j]


def bias_row(b):
    """The bias as a row of m values, whether it came as (m,) or (1, m)."""


@overload(bias_row)
def _bias_row(b):
    if b.ndim == 1:
        return lambda b: b
    return lambda b: b[0]


@jit
def linear_act_kernel(x, W, bias, out, act):
    """out = f(x @ W + bias): one layer, bias and activation fused in; f numbered ``act``.

    x: (n, k) @ W: (k, m) + bias: (m,) or (1, m) -> out: (n, m). The bias is added after
    the sum, as torch.addmm does; act = IDENTITY makes this numnet.linear.
    """
    mm_kernel(x, W, out)
    row = bias_row(bias)
    one = out.dtype.type(1)
    n, m = out.shape
    for i in range(n):
        for j in range(m):
            out[i, j] = activate(out[i, j] + row[j], act, one)


@jit
def forward_kernel(x, layers, out, hidden, output):
    """h_0 = x; h_i = f(h_{i-1} @ W_i + b_i); out = h_L, with f the activation ``hidden``
    for every layer but the last, which uses ``output``.

    layers: a tuple of (W_i: (k_{i-1}, k_i), b_i: (k_i,) or (1, k_i)) pairs; out: (n, k_L).
    The whole network runs in this one compiled call. literal_unroll lets each layer
    keep its own array type (layout, read-only flag), so nothing is copied to enter.
    """
    depth = len(layers)
    h = x
    i = 0
    for layer in literal_unroll(layers):
        W = layer[0]
        b = layer[1]
        i += 1
        if i == depth:
            linear_act_kernel(h, W, b, out, output)
        else:
            h_next = np.empty((x.shape[0], W.shape[1]), dtype=out.dtype)  # (n, k_i)
            linear_act_kernel(h, W, b, h_next, hidden)
            h = h_next
