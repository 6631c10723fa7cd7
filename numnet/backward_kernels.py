"""The CPU kernels of the backward pass: the gradient of each piece of the forward pass.

The network is h_0 = x, z_i = h_{i-1} @ W_i + b_i, h_i = f_i(z_i) (i = 1..L), and a loss
l(h_L). Backpropagation is the chain rule run from the loss back to the first layer,
with delta_i = dl/dz_i, shaped (n, k_i) like z_i:

    delta_L     = dl/dh_L * f_L'(z_L)            mse_kernel or cross_entropy_kernel, act_grad
    dW_i        = h_{i-1}^T @ delta_i             matmul_tn_kernel       (k_{i-1}, k_i)
    db_i        = sum over rows of delta_i        column_sum_kernel      (k_i,)
    delta_{i-1} = (delta_i @ W_i^T) * f'(z_{i-1})  backprop_kernel        (n, k_{i-1})

Each activation's derivative is written with its output y = f(z), which the forward pass
has already computed: sigma' = y (1 - y), tanh' = 1 - y^2, relu' = [y > 0], and 1.

Kernels trust their input (numnet.backward has checked it and allocated the outputs)
and accumulate in the input's dtype. Sums run left to right; the elementwise formulas
(act_grad, the softmax and loss rows, SGD's update) are numnet.elementwise's, one source
with numnet.cuda's, and follow torch's CPU kernels term by term, so results agree with
torch within numnet.testing's bounds, often bit for bit.
"""

import numpy as np
from numba import prange, types
from numba.extending import overload

from numnet import kernels as K
from numnet._jit import jit
from numnet.elementwise import act_grad, cross_entropy_row, log_softmax_row, mse_row, sgd_update, softmax_row
from numnet.kernels import IDENTITY


@jit
def act_grad_kernel(g, y, act, out):
    """out = g * f'(z) elementwise over (n, m), from the layer's output y = f(z).
    out may be g itself."""
    one = y.dtype.type(1)
    n, m = y.shape
    for i in range(n):
        for j in range(m):
            out[i, j] = act_grad(g[i, j], y[i, j], act, one)


@jit
def matmul_tn_kernel(h, delta, out, threads):
    """out = h^T @ delta: the weight gradient.  h: (n, k), delta: (n, m) -> out: (k, m).

    out[p, j] = sum_i h[i, p] * delta[i, j], i in order: numnet.kernels' product of the
    transposed view h^T (no copy) and delta, so the large ones take the blocked kernel
    on every core that ``threads`` allows, with the same bits as the plain loops.
    """
    K._mm(h.T, delta, None, out, IDENTITY, threads)


@jit
def column_sum_kernel(delta, out):
    """out[j] = sum_i delta[i, j], i in order: the bias gradient.  delta: (n, m) -> out: (m,)."""
    n, m = delta.shape
    zero = out.dtype.type(0)
    for j in range(m):
        out[j] = zero
    for i in range(n):
        for j in range(m):
            out[j] += delta[i, j]


@jit
def backprop_kernel(delta, W, y, act, out, threads):
    """out = (delta @ W^T) * f'(z): the delta of the layer below, f' from its output y = f(z).

    delta: (n, m), W: (k, m), y: (n, k) -> out: (n, k). out[i, p] = sum_j delta[i, j] W[p, j],
    j in order, by numnet.kernels' product of delta and the transposed view W^T (the
    blocked kernel for large ones); then f' in a second pass over out, which costs a few
    microseconds at the sizes numnet trains (n * k values, against n * k * m products).
    """
    K._mm(delta, W.T, None, out, IDENTITY, threads)
    act_grad_kernel(out, y, act, out)


# -- Losses and the softmax ---------------------------------------------------------------


@jit
def log_softmax_kernel(x, out):
    """out[i, j] = (x[i, j] - m_i) - log(sum_k e^(x[i, k] - m_i)), m_i = max_k x[i, k]:
    numnet.elementwise.log_softmax_row (stable; torch's order) for each row. x, out: (n, c)."""
    for i in range(x.shape[0]):
        log_softmax_row(x, i, out)


@jit
def softmax_kernel(x, out):
    """out[i, j] = e^(x[i, j] - m_i) / sum_k e^(x[i, k] - m_i), m_i = max_k x[i, k]:
    numnet.elementwise.softmax_row for each row. x, out: (n, c)."""
    if x.shape[1] == 0:
        return
    for i in range(x.shape[0]):
        softmax_row(x, i, out)


@jit
def mse_kernel(y, target, act, delta):
    """l = sum (y - t)^2 / N over all N = n * m elements; returns l, and writes
    delta = dl/dz = (2/N)(y - t) * f'(z), with f the output activation and y = f(z).

    Each row's sum (numnet.elementwise.mse_row), then the rows' sums in order: the order
    numnet.cuda sums in, a thread per row. 2/N is computed in float64 and rounded to y's
    dtype, and the gradient is norm * (y - t), as torch's mse_loss_backward computes it.
    y, target, delta: (n, m). N = 0 gives NaN (the mean of nothing), as torch does.
    """
    n, m = y.shape
    count = n * m
    one = y.dtype.type(1)
    acc = one - one
    norm = y.dtype.type(2.0 / count) if count else one
    for i in range(n):
        acc += mse_row(y, target, i, act, norm, delta)
    if count == 0:
        return y.dtype.type(np.nan)
    return acc / y.dtype.type(count)


@jit
def cross_entropy_kernel(y, target, act, logp, delta):
    """l = -(1/n) sum_i log softmax(y_i)[t_i]: torch's cross_entropy of the logits y: (n, c)
    (the network's output, y = f(z_L)) and class indices target: (n,), mean over the
    batch. Returns l; writes logp = log_softmax(y) and
    delta = dl/dz_L = (softmax(y) - onehot(t)) / n * f'(z_L)
    (numnet.elementwise.cross_entropy_row for each row, the rows' terms summed in order).
    n = 0 gives NaN, as torch does.
    """
    n, c = y.shape
    one = y.dtype.type(1)
    inv = one / y.dtype.type(n) if n else one
    acc = one - one
    for i in range(n):
        acc += cross_entropy_row(y, target[i], i, act, inv, logp, delta)
    if n == 0:
        return y.dtype.type(np.nan)
    return -acc / y.dtype.type(n)


# -- The optimiser ----------------------------------------------------------------------


@jit
def sgd_kernel(p, g, buf, lr, momentum, first):
    """One step of torch.optim.SGD (dampening 0, no Nesterov, no weight decay), in place,
    each parameter by numnet.elementwise.sgd_update:

        buf = g                      on the first step (``first``),
        buf = momentum * buf + g     after it,
        p   = p - lr * buf           (one fused multiply-add, fma(buf, -lr, p)).

    With momentum 0 torch keeps no buffer and steps with g itself: pass buf = g.
    p, g, buf: (r, c).
    """
    _sgd_rows(p, g, buf, lr, momentum, first, 0, p.shape[0])


@jit(inline="always")
def _sgd_rows(p, g, buf, lr, momentum, first, start, stop):
    """sgd_kernel on rows start .. stop - 1."""
    for i in range(start, stop):
        for j in range(p.shape[1]):
            p[i, j], buf[i, j] = sgd_update(p[i, j], g[i, j], buf[i, j], lr, momentum, first)


@jit(parallel=True)
def _sgd_threads(p, g, buf, lr, momentum, first):
    """sgd_kernel with the rows shared between the threads (each value's update is the
    same arithmetic whichever thread makes it: the same bits)."""
    r = p.shape[0]
    for t in prange(K.THREADS):
        _sgd_rows(p, g, buf, lr, momentum, first, t * r // K.THREADS, (t + 1) * r // K.THREADS)


# A training step updates a parameter array of SGD_PARALLEL_MIN values or more on every
# core when its products ran on threads: its gradient was written half by each core, and
# one core alone waits on the other's cache for the half it did not write. Measured on the
# Intel Xeon (784-128-64-10 at batch 512, two threads, the update of the 784x128 weights
# inside the step): 107-154 us on one thread, 71-97 on two (alone, in a warm cache: 15).
# Only where the L2 has 2 MiB (kernels.LARGE_L2): the AMD EPYC has not run it.
SGD_PARALLEL_MIN = 1 << 15


@jit
def sgd_step_kernel(p, g, buf, lr, momentum, first, threads):
    """sgd_kernel, on every core for a large p when ``threads`` > 1 (SGD_PARALLEL_MIN)."""
    if K.LARGE_L2 and threads > 1 and p.size >= SGD_PARALLEL_MIN:
        _sgd_threads(p, g, buf, lr, momentum, first)
    else:
        sgd_kernel(p, g, buf, lr, momentum, first)


# -- One whole training step -----------------------------------------------------------------


@jit(inline="always")
def _threads_for(threads, n, k, m):
    """``threads`` for an (n, k) @ (k, m) product of PARALLEL_MIN multiply-adds or more
    (and for the update of its weights), else 1."""
    return threads if n * k * m >= K.PARALLEL_MIN else 1


def _loss_into(y, target, act, delta):
    """The loss of y against target, writing delta = dl/dz_L: mse_kernel for a target
    shaped like y, cross_entropy_kernel for one of class indices (decided when compiled)."""


@overload(_loss_into)
def _loss_into_impl(y, target, act, delta):
    if target.ndim == 2:
        return lambda y, target, act, delta: mse_kernel(y, target, act, delta)
    return lambda y, target, act, delta: cross_entropy_kernel(y, target, act, np.empty(y.shape, y.dtype), delta)


def _target_fits(target, like, n, m):
    """True when target suits an output of n rows of m values of like's dtype: (n, m) of
    that dtype for mse; (n,) integer class indices in [0, m) for cross-entropy."""


@overload(_target_fits)
def _target_fits_impl(target, like, n, m):
    if target.ndim == 2 and target.dtype == like.dtype:
        return lambda target, like, n, m: target.shape[0] == n and target.shape[1] == m
    if target.ndim == 1 and isinstance(target.dtype, types.Integer):

        def fits(target, like, n, m):
            if target.shape[0] != n:
                return False
            for i in range(n):
                if target[i] < 0 or target[i] >= m:
                    return False
            return True

        return fits
    return lambda target, like, n, m: False


def _same_dtype(a, b):
    """True when a and b have one dtype (decided when compiled)."""


@overload(_same_dtype)
def _same_dtype_impl(a, b):
    same = a.dtype == b.dtype
    return lambda a, b: same


@jit
def train_step_kernel(x, target, Ws, Bs, dWs, dBs, bufs_W, bufs_B, hidden, output, lr, momentum, first, threads):
    """One step of SGD on the network (Ws[i], Bs[i]): loss_and_grads then SGD.step, in
    one compiled call, by the same kernels in the same order (the same bits as the two
    calls). Returns (True, loss), or (False, 0) when the shapes or the target do not fit,
    before anything is written (the caller then runs the checked path, which says why).

    Ws[i]: (k_i, k_{i+1}); Bs[i]: (1, k_{i+1}) views of the biases; dWs, dBs: scratch for
    the gradients, shaped alike; bufs_W, bufs_B: the momentum buffers (dWs, dBs themselves
    without momentum, as SGD.step does); the loss is mse or cross-entropy by the target's
    kind (_loss_into). Products of PARALLEL_MIN multiply-adds and more use ``threads``.
    """
    depth = len(Ws)
    n = x.shape[0]
    dtype = Ws[0].dtype
    fits = (
        _same_dtype(x, Ws[0])
        and _same_dtype(Bs[0], Ws[0])
        and x.shape[1] == Ws[0].shape[0]
        and _target_fits(target, Ws[0], n, Ws[depth - 1].shape[1])
    )
    for i in range(depth):
        fits = fits and Bs[i].shape[1] == Ws[i].shape[1] and (i == 0 or Ws[i].shape[0] == Ws[i - 1].shape[1])
    if not fits:
        return False, dtype.type(0)
    # forward, keeping every layer's output hs[i] = f(h_{i-1} @ W_i + b_i)
    hs = [K.empty_aligned((n, Ws[0].shape[1]), dtype)]
    K.linear_act_kernel(
        x,
        Ws[0],
        Bs[0],
        hs[0],
        output if depth == 1 else hidden,
        _threads_for(threads, n, Ws[0].shape[0], Ws[0].shape[1]),
    )
    for i in range(1, depth):
        k, m = Ws[i].shape
        hs.append(K.empty_aligned((n, m), dtype))
        K.linear_act_kernel(
            hs[i - 1],
            Ws[i],
            Bs[i],
            hs[i],
            output if i == depth - 1 else hidden,
            _threads_for(threads, n, k, m),
        )
    delta = K.empty_aligned(hs[depth - 1].shape, dtype)
    value = _loss_into(hs[depth - 1], target, output, delta)
    # backward: dW_i = h_{i-1}^T delta_i, db_i = column sums, delta_{i-1} = delta_i W_i^T f'
    for i in range(depth - 1, -1, -1):
        k, m = Ws[i].shape
        t = _threads_for(threads, n, k, m)
        if i == 0:
            matmul_tn_kernel(x, delta, dWs[0], t)
        else:
            matmul_tn_kernel(hs[i - 1], delta, dWs[i], t)
        column_sum_kernel(delta, dBs[i][0])
        if i > 0:
            below = K.empty_aligned((n, k), dtype)
            backprop_kernel(delta, Ws[i], hs[i - 1], hidden, below, t)
            delta = below
    for i in range(depth):
        sgd_step_kernel(
            Ws[i], dWs[i], bufs_W[i], lr, momentum, first, _threads_for(threads, n, Ws[i].shape[0], Ws[i].shape[1])
        )
        sgd_kernel(Bs[i], dBs[i], bufs_B[i], lr, momentum, first)
    return True, value
