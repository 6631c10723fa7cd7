"""The CUDA kernels of the backward pass: the twins of ``numnet.backward_kernels``.

The same maths (see that module's docstring for the chain rule they implement), written
for one thread per output element or per row: every kernel finds its place with
``cuda.grid``, guards it against the array bounds and takes its output as an argument;
numnet.cuda.backward has checked the input, moved it to the GPU and picked the launch
shape. The products are the CPU's: ``acc = fma(a, b, acc)`` over their index in order
(numnet.cuda.kernels.fma: one rounding on a GPU and in the simulator), so they equal the
CPU's bit for bit. The elementwise formulas are written as on the CPU, but NVVM contracts
a multiply followed by an add (``one - y * y``, ``momentum * buf + g``, ``acc += d * d``)
into one fma.rn on a GPU where the CPU rounds twice: there they agree within rounding.

The forward pass itself is numnet.cuda.forward's, run one layer at a time.
"""
import math

import numpy as np
from numba import cuda

from numnet.cuda.kernels import RELU, SIGMOID, SIMULATED, TANH, exp, fma

# log(v) in a kernel: libdevice's logf or log on a GPU, numpy's in the simulator (where
# math.log would compute in float64 and raise for 0, where a GPU returns -inf).
log = np.log if SIMULATED else math.log


@cuda.jit(device=True)
def act_grad(g, y, act, one):
    """g * f'(z), from the activation's output y = f(z); torch's formulas, in its order.

    sigmoid: g (1 - y) y;  tanh: g (1 - y y);  relu: 0 where y <= 0, else g (a NaN
    output passes g on, as in torch);  none: g.
    """
    if act == SIGMOID:
        return g * (one - y) * y
    if act == RELU:
        zero = one - one
        return zero if y <= zero else g
    if act == TANH:
        return g * (one - y * y)
    return g


@cuda.jit
def matmul_tn_kernel(h, delta, out):
    """out = h^T @ delta: the weight gradient.  h: (n, k), delta: (n, m) -> out: (k, m).

    One thread per out[p, j]: acc = fma(h[i, p], delta[i, j], acc), i in order; x runs along j,
    so neighbouring threads read neighbouring delta[i, j].
    """
    j, p = cuda.grid(2)
    if p < out.shape[0] and j < out.shape[1]:
        acc = out.dtype.type(0)
        for i in range(h.shape[0]):
            acc = fma(h[i, p], delta[i, j], acc)
        out[p, j] = acc


@cuda.jit
def column_sum_kernel(delta, out):
    """out[j] = sum_i delta[i, j], i in order: the bias gradient; a thread per column,
    in a grid-stride loop."""
    for j in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        acc = out.dtype.type(0)
        for i in range(delta.shape[0]):
            acc += delta[i, j]
        out[j] = acc


@cuda.jit
def backprop_kernel(delta, W, y, act, out):
    """out = (delta @ W^T) * f'(z): the delta of the layer below, f' from its output y.

    delta: (n, m), W: (k, m), y: (n, k) -> out: (n, k); one thread per out[i, p] =
    f'(y[i, p]) * sum_j delta[i, j] W[p, j], fused, j in order.
    """
    p, i = cuda.grid(2)
    if i < out.shape[0] and p < out.shape[1]:
        acc = out.dtype.type(0)
        for j in range(delta.shape[1]):
            acc = fma(delta[i, j], W[p, j], acc)
        out[i, p] = act_grad(acc, y[i, p], act, out.dtype.type(1))


# -- Losses and the softmax: a thread per row ------------------------------------------------

@cuda.jit(device=True)
def row_max(x, i):
    """max_j x[i, j]: -inf for an empty row, NaN if any entry is NaN (torch's maximum)."""
    m = -x.dtype.type(np.inf)
    for j in range(x.shape[1]):
        v = x[i, j]
        if v > m or v != v:
            m = v
    return m


@cuda.jit(device=True)
def log_softmax_row(x, i, out):
    """out[i, :] = (x[i, :] - m) - log(sum_j e^(x[i, j] - m)), m the row's max (stable)."""
    m = row_max(x, i)
    s = x.dtype.type(0)
    for j in range(x.shape[1]):
        s += exp(x[i, j] - m)
    log_sum = log(s)
    for j in range(x.shape[1]):
        out[i, j] = (x[i, j] - m) - log_sum


@cuda.jit
def log_softmax_kernel(x, out):
    """out = log_softmax(x) along rows, x, out: (n, c); a thread per row (grid-stride)."""
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        log_softmax_row(x, i, out)


@cuda.jit
def softmax_kernel(x, out):
    """out[i, j] = e^(x[i, j] - m_i) * (1 / sum_k e^(x[i, k] - m_i)), as the CPU and torch."""
    one = x.dtype.type(1)
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        m = row_max(x, i)
        s = one - one
        for j in range(x.shape[1]):
            e = exp(x[i, j] - m)
            out[i, j] = e
            s += e
        inv = one / s
        for j in range(x.shape[1]):
            out[i, j] *= inv


@cuda.jit
def mse_kernel(y, target, act, norm, delta, row_sums):
    """row_sums[i] = sum_j (y - t)^2 over row i, and delta = norm (y - t) * f'(z), with
    norm = 2/N (rounded to y's dtype by the caller, as on the CPU). y, target, delta: (n, m)."""
    one = y.dtype.type(1)
    for i in range(cuda.grid(1), y.shape[0], cuda.gridsize(1)):
        acc = one - one
        for j in range(y.shape[1]):
            d = y[i, j] - target[i, j]
            acc += d * d
            delta[i, j] = act_grad(norm * d, y[i, j], act, one)
        row_sums[i] = acc


@cuda.jit
def cross_entropy_kernel(y, target, act, inv, logp, delta, row_sums):
    """row_sums[i] = logp[i, t_i] with logp = log_softmax(y), and
    delta[i, j] = (e^logp[i, j] * inv - [j = t_i] * inv) * f'(z), inv = 1/n (torch's order).
    y, logp, delta: (n, c), target: (n,) int64."""
    one = y.dtype.type(1)
    for i in range(cuda.grid(1), y.shape[0], cuda.gridsize(1)):
        log_softmax_row(y, i, logp)
        t = target[i]
        for j in range(y.shape[1]):
            g = exp(logp[i, j]) * inv
            if j == t:
                g -= inv
            delta[i, j] = act_grad(g, y[i, j], act, one)
        row_sums[i] = logp[i, t]


@cuda.jit
def mean_kernel(row_sums, count, sign, out):
    """out[0] = sign * (sum_i row_sums[i]) / count, i in order, by one thread: the loss
    from the per-row sums (sign -1 for cross_entropy's -mean log p)."""
    if cuda.grid(1) == 0:
        acc = row_sums.dtype.type(0)
        for i in range(row_sums.shape[0]):
            acc += row_sums[i]
        out[0] = sign * acc / count


@cuda.jit
def sgd_kernel(p, g, buf, lr, momentum, first):
    """torch.optim.SGD's step in place, one thread per parameter p[i, j] (r, c):
    buf = g (first step) or momentum * buf + g; p = fma(buf, -lr, p) (see the CPU twin).
    With momentum 0 the caller passes buf = g."""
    j, i = cuda.grid(2)
    if i < p.shape[0] and j < p.shape[1]:
        if first:
            buf[i, j] = g[i, j]
        elif momentum != 0:
            buf[i, j] = momentum * buf[i, j] + g[i, j]
        p[i, j] = fma(buf[i, j], -lr, p[i, j])
