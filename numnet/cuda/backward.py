"""Training on CUDA GPUs: the twins of ``numnet.log_softmax``, ``numnet.softmax``,
``numnet.loss_and_grads`` and ``numnet.SGD``, with the same signatures, checks and errors.

Where the data lives decides where the results live, as for the other numnet.cuda ops:
numpy in, numpy out; any GPU array among the inputs (numba device arrays; on a real GPU
CuPy arrays and torch CUDA tensors too) and the loss and gradients stay on the GPU as
numba device arrays. Every layer's output stays on the GPU between the forward and the
backward pass. A cross_entropy target is read on the host for its range check (a GPU
target is copied over: one integer per row).
"""

import numpy as np

from numnet import _checks as C
from numnet._typing import Activation, ArrayLike, GPUArray, Grads, Layers, Loss
from numnet.backward import CROSS_ENTROPY, MSE, read_network
from numnet.cuda.ops import (
    _bias_row,
    _flat,
    _gpu,
    _is_gpu_array,
    _on_gpu,
    _read,
    _require_gpu,
    _result,
    cuda,
    forward,
    launch,
    launch_shape,
)

try:
    from numnet.cuda import backward_kernels as BK
except Exception:  # numba-cuda missing: every op raises CudaUnavailableError first
    BK = None


def _rows_op(op, kernel, x):
    """Apply a row kernel along x's last axis (any shape; 0-d is one row of one value)."""
    _require_gpu(op)
    x = _read(op, "x", x)
    dtype = C.check_dtype(op, x)
    c = x.shape[x.ndim - 1] if x.ndim else 1  # not shape[-1]: the simulator's device arrays refuse it
    rows = x.size // c if c else int(np.prod(x.shape[: x.ndim - 1], dtype=np.int64))
    out = cuda.device_array(x.shape, dtype)
    if out.size:
        launch(kernel, launch_shape(rows))(_flat(x).reshape(rows, c), out.reshape(rows, c))
    return _result(out, _on_gpu(x))


@C.raised_from_the_op
def log_softmax(x: ArrayLike) -> GPUArray:
    """log(softmax(x)) over the last axis, stable; same shape and dtype as x.
    See numnet.log_softmax."""
    return _rows_op("numnet.cuda.log_softmax", BK and BK.log_softmax_kernel, x)


@C.raised_from_the_op
def softmax(x: ArrayLike) -> GPUArray:
    """e^x / sum(e^x) over the last axis, stable; same shape and dtype as x.
    See numnet.softmax."""
    return _rows_op("numnet.cuda.softmax", BK and BK.softmax_kernel, x)


def _mean(row_sums, count, sign, dtype):
    """sign * sum(row_sums) / count as a 0-d device array: NaN for count 0, as torch."""
    out = cuda.device_array((), dtype)
    if count == 0:
        out.copy_to_device(np.array(np.nan, dtype))
    else:
        launch(BK.mean_kernel, launch_shape(1))(row_sums, dtype.type(count), dtype.type(sign), out.reshape(1))
    return out


@C.raised_from_the_op
def loss_and_grads(
    x: ArrayLike,
    target: ArrayLike,
    layers: Layers,
    hidden: Activation = "sigmoid",
    output: Activation = "sigmoid",
    loss: Loss = "mse",
) -> tuple[GPUArray, Grads]:
    """The loss of ``numnet.cuda.forward(x, layers, hidden, output)`` against ``target``,
    and its gradients [(dW1, db1), ...]: numnet.loss_and_grads on the GPU (see there for
    the losses, the targets, and NaN)."""
    op = "numnet.cuda.loss_and_grads"
    _require_gpu(op)
    target_on_gpu = _is_gpu_array(target)  # a class target comes back as a host array
    x, target, pairs, dtype, hidden, output, loss = read_network(op, x, target, layers, hidden, output, loss, _read)
    on_gpu = target_on_gpu or _on_gpu(x, target, *(a for pair in pairs for a in pair))
    n = x.shape[0]
    Ws = [_gpu(W) for W, _ in pairs]
    # The forward pass one layer at a time, by numnet.cuda.forward (its kernel and launch
    # shape), keeping every layer's output h_i: (n, k_i) on the GPU for the backward pass.
    hs = [_gpu(x)]
    for i, (W, (_, b)) in enumerate(zip(Ws, pairs), start=1):
        act = C.ACTIVATIONS[output if i == len(pairs) else hidden]
        hs.append(forward(hs[-1], [(W, _bias_row(b))], hidden=act, output=act))
    y = hs[-1]
    delta = cuda.device_array(y.shape, dtype)  # dl/dz_L: (n, k_L)
    row_sums = cuda.device_array(n, dtype)
    if loss == MSE:
        count = y.size
        norm = dtype.type(2.0 / count) if count else dtype.type(1)
        if n:
            launch(BK.mse_kernel, launch_shape(n))(y, _gpu(target), output, norm, delta, row_sums)
        value = _mean(row_sums, count, 1, dtype)
    else:
        assert loss == CROSS_ENTROPY
        inv = dtype.type(1) / dtype.type(n) if n else dtype.type(1)
        if n:
            logp = cuda.device_array(y.shape, dtype)
            classes = cuda.to_device(target)
            launch(BK.cross_entropy_kernel, launch_shape(n))(y, classes, output, inv, logp, delta, row_sums)
        value = _mean(row_sums, n, -1, dtype)
    grads = [None] * len(pairs)
    for i in range(len(pairs) - 1, -1, -1):
        W, b = Ws[i], pairs[i][1]
        k, m = W.shape
        dW = cuda.device_array((k, m), dtype)
        db = cuda.device_array(m, dtype)
        if dW.size:
            launch(BK.matmul_tn_kernel, launch_shape(k, m))(hs[i], delta, dW)
        if m:
            launch(BK.column_sum_kernel, launch_shape(m))(delta, db)
        grads[i] = (_result(dW, on_gpu), _result(db.reshape(b.shape), on_gpu))
        if i:
            below = cuda.device_array((n, k), dtype)  # dl/dz_i: (n, k_i)
            if below.size:
                launch(BK.backprop_kernel, launch_shape(n, k))(delta, W, hs[i], hidden, below)
            delta = below
    return _result(value, on_gpu), grads


class SGD:
    """numnet.SGD on the GPU: torch.optim.SGD's update (momentum as torch, dampening 0),
    in place. Parameters on the GPU (numba device arrays) are updated where they lie;
    numpy parameters are copied over, updated and copied back into the same arrays. The
    momentum buffers live on the GPU. On a real GPU, momentum * buf + g may be fused
    into one multiply-add (one rounding where the CPU makes two)."""

    @C.raised_from_the_op
    def __init__(self, layers: Layers, lr: float, momentum: float = 0.0) -> None:
        op = "numnet.cuda.SGD"
        _require_gpu(op)
        self.lr, self.momentum = C.check_sgd_settings(op, lr, momentum)
        self.layers = [tuple(pair) for pair in C.unpack_layers(op, layers)]
        C.check_params(op, self.layers, on_device=_on_gpu)
        self.buffers = None

    @C.raised_from_the_op
    def step(self, grads: Grads) -> None:
        """p -= lr * buf for every W and b, on the GPU."""
        op = "numnet.cuda.SGD.step"
        grads = [
            (_read(op, f"layer {i} dW", dW), _read(op, f"layer {i} db", db))
            for i, (dW, db) in enumerate(C.unpack_layers(op, grads), start=1)
        ]
        C.check_grads(op, self.layers, grads)
        params = [p for pair in self.layers for p in pair]
        gradients = [g for pair in grads for g in pair]
        first = self.buffers is None and self.momentum != 0
        if first:
            self.buffers = [cuda.device_array(_matrix_shape(p), p.dtype) for p in params]
        dtype = params[0].dtype.type
        lr, momentum = dtype(self.lr), dtype(self.momentum)
        for k, (p, g) in enumerate(zip(params, gradients)):
            if not p.size:
                continue
            device_p = p if _on_gpu(p) else cuda.to_device(np.ascontiguousarray(p))
            g = _gpu(g).reshape(_matrix_shape(p)) if g.ndim == 1 else _gpu(g)
            buf = g if self.momentum == 0 else self.buffers[k]
            P = device_p.reshape(_matrix_shape(p)) if p.ndim == 1 else device_p
            launch(BK.sgd_kernel, launch_shape(*P.shape))(P, g, buf, lr, momentum, first)
            if device_p is not p:
                p[...] = device_p.copy_to_host()

    @C.raised_from_the_op
    def train_step(
        self,
        x: ArrayLike,
        target: ArrayLike,
        hidden: Activation = "sigmoid",
        output: Activation = "sigmoid",
        loss: Loss = "mse",
    ) -> GPUArray:
        """loss_and_grads(x, target, layers, ...) then step(grads); returns the loss (the
        twin of numnet.SGD.train_step, here as the two calls)."""
        value, grads = loss_and_grads(x, target, self.layers, hidden, output, loss)
        self.step(grads)
        return value


def _matrix_shape(p):
    """A 1-D bias updated as a (1, m) matrix, so that one 2-D kernel serves W and b."""
    return (1, p.shape[0]) if p.ndim == 1 else tuple(p.shape)
