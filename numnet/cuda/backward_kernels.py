"""The CUDA kernels of the backward pass: the twins of ``numnet.backward_kernels``.

The same maths (see that module's docstring for the chain rule they implement), written
for one thread per output element or per row: every kernel finds its place with
``cuda.grid``, guards it against the array bounds and takes its output as an argument;
numnet.cuda.backward has checked the input, moved it to the GPU and picked the launch
shape. The products are the CPU's: ``acc = fma(a, b, acc)`` over their index in order
(numnet.cuda.kernels.fma: one rounding on a GPU and in the simulator), so they equal the
CPU's bit for bit. The elementwise maths (act_grad, the softmax and loss rows, SGD's
update) is numnet.elementwise's, the CPU's own functions compiled for the GPU, so it
gives the CPU's bits too; the losses add their rows' sums in order, as the CPU does.
2-D kernels stride over rows by the grid's height (numnet.cuda.kernels.MAX_GRID_Y).

The forward pass itself is numnet.cuda.forward's, run one layer at a time.
"""

from numba import cuda

from numnet.cuda.kernels import fma, plain
from numnet.elementwise import act_grad, cross_entropy_row, log_softmax_row, mse_row, sgd_update, softmax_row


@cuda.jit
def matmul_tn_kernel(h, delta, out):
    """out = h^T @ delta: the weight gradient.  h: (n, k), delta: (n, m) -> out: (k, m).

    One thread per out[p, j]: acc = fma(h[i, p], delta[i, j], acc), i in order; x runs along j,
    so neighbouring threads read neighbouring delta[i, j]; rows p by a grid stride.
    """
    j, row = cuda.grid(2)
    if j < out.shape[1]:
        for p in range(row, out.shape[0], cuda.gridDim.y * cuda.blockDim.y):
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
    f'(y[i, p]) * sum_j delta[i, j] W[p, j], fused, j in order; rows i by a grid stride.
    """
    p, row = cuda.grid(2)
    if p < out.shape[1]:
        one = out.dtype.type(1)
        for i in range(row, out.shape[0], cuda.gridDim.y * cuda.blockDim.y):
            acc = out.dtype.type(0)
            for j in range(delta.shape[1]):
                acc = fma(delta[i, j], W[p, j], acc)
            out[i, p] = act_grad(acc, y[i, p], act, one)


# -- Losses and the softmax: a thread per row, numnet.elementwise's rows ---------------------


@cuda.jit
def log_softmax_kernel(x, out):
    """out = log_softmax(x) along rows, x, out: (n, c); a thread per row (grid-stride)."""
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        log_softmax_row(plain(x), i, plain(out))


@cuda.jit
def softmax_kernel(x, out):
    """out[i, j] = e^(x[i, j] - m_i) * (1 / sum_k e^(x[i, k] - m_i)), as the CPU and torch."""
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        softmax_row(plain(x), i, plain(out))


@cuda.jit
def mse_kernel(y, target, act, norm, delta, row_sums):
    """row_sums[i] = sum_j (y - t)^2 over row i, and delta = norm (y - t) * f'(z), with
    norm = 2/N (rounded to y's dtype by the caller, as on the CPU). y, target, delta: (n, m)."""
    for i in range(cuda.grid(1), y.shape[0], cuda.gridsize(1)):
        row_sums[i] = mse_row(plain(y), plain(target), i, act, norm, plain(delta))


@cuda.jit
def cross_entropy_kernel(y, target, act, inv, logp, delta, row_sums):
    """row_sums[i] = logp[i, t_i] with logp = log_softmax(y), and
    delta[i, j] = (e^logp[i, j] * inv - [j = t_i] * inv) * f'(z), inv = 1/n (torch's order).
    y, logp, delta: (n, c), target: (n,) int64."""
    for i in range(cuda.grid(1), y.shape[0], cuda.gridsize(1)):
        row_sums[i] = cross_entropy_row(plain(y), target[i], i, act, inv, plain(logp), plain(delta))


@cuda.jit
def mean_kernel(row_sums, count, sign, out):
    """out[0] = sign * (sum_i row_sums[i]) / count, i in order, by one thread: the loss
    from the per-row sums (sign -1 for cross_entropy's -mean log p), as the CPU adds them."""
    if cuda.grid(1) == 0:
        acc = row_sums.dtype.type(0)
        for i in range(row_sums.shape[0]):
            acc += row_sums[i]
        out[0] = sign * acc / count


@cuda.jit
def sgd_kernel(p, g, buf, lr, momentum, first):
    """torch.optim.SGD's step in place, one thread per parameter p[i, j] (r, c), by
    numnet.elementwise.sgd_update (the CPU's); rows by a grid stride. With momentum 0 the
    caller passes buf = g."""
    j, row = cuda.grid(2)
    if j < p.shape[1]:
        for i in range(row, p.shape[0], cuda.gridDim.y * cuda.blockDim.y):
            p[i, j], buf[i, j] = sgd_update(p[i, j], g[i, j], buf[i, j], lr, momentum, first)
