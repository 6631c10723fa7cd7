"""Training on the CPU: softmax, the loss and its gradients by backpropagation, and SGD.

The functional API the notebook's network needs to learn: arrays in, arrays out, the
layers a list of (W, b) pairs with z = x @ W + b (W: (n_in, n_out)), as numnet.forward.

- ``log_softmax(x)``, ``softmax(x)``: over the last axis, stable for any finite input;
- ``loss_and_grads(x, target, layers, ...)``: the loss of ``forward(x, layers, ...)`` and
  its gradient with respect to every W and b, by the chain rule written out as kernels
  (numnet/backward_kernels.py), not by numerical differentiation;
- ``SGD(layers, lr, momentum)``: torch.optim.SGD's update, in place.

NaN and inf are not errors: they propagate as in torch (a NaN in x, the target or a
weight gives a NaN loss and NaN gradients where torch has them), and SGD applies them.
``numnet train`` checks the loss after every step and stops if it is not finite.
"""

import numpy as np

from numnet import _checks as C
from numnet import backward_kernels as BK
from numnet import kernels as K
from numnet._typing import Activation, Array, ArrayLike, Grads, Layers, Loss

MSE, CROSS_ENTROPY = 0, 1  # positions in numnet._checks.LOSSES


def _rows(op, x):
    """x as a 2-D array of rows along its last axis (a 0-d x is one row of one value)."""
    x = C.read_floats(op, x=x)
    if x.ndim == 2:
        return x, x.shape
    shape = x.shape
    c = shape[-1] if x.ndim else 1
    rows = int(np.prod(shape[:-1], dtype=np.int64)) if x.ndim > 1 else 1
    return np.ascontiguousarray(x).reshape(rows, c), shape


def log_softmax(x: ArrayLike) -> Array:
    """log(softmax(x)) over the last axis: x - max(x) - log(sum(e^(x - max(x)))).

    Same shape and dtype as x (float32 or float64, any number of dimensions; 0-d gives
    0, as torch does). Stable: no overflow for any finite x, and the row's largest entry
    gives exactly its log-probability. A row with a NaN or +inf is NaN, as in torch.

    >>> numnet.log_softmax(np.array([1000.0, 1000.0]))
    array([-0.69314718, -0.69314718])
    """
    op = "numnet.log_softmax"
    try:
        rows, shape = _rows(op, x)
    except C.INPUT_ERRORS as e:
        raise e.with_traceback(None)  # from here: C.INPUT_ERRORS says why
    out = np.empty(rows.shape, rows.dtype)
    BK.log_softmax_kernel(rows, out)
    return out.reshape(shape)


def softmax(x: ArrayLike) -> Array:
    """e^x / sum(e^x) over the last axis, computed stably as e^(x - max(x)) / sum(...).

    Same shape and dtype as x; each row sums to 1 within rounding.

    >>> numnet.softmax(np.array([0.0, 1000.0]))
    array([0., 1.])
    """
    op = "numnet.softmax"
    try:
        rows, shape = _rows(op, x)
    except C.INPUT_ERRORS as e:
        raise e.with_traceback(None)  # from here: C.INPUT_ERRORS says why
    out = np.empty(rows.shape, rows.dtype)
    BK.softmax_kernel(rows, out)
    return out.reshape(shape)


def read_network(op, x, target, layers, hidden, output, loss, read):
    """The checked arguments of loss_and_grads, shared with numnet.cuda.loss_and_grads:
    (x, target, pairs, dtype, hidden, output, loss) with the names turned into codes and
    ``read(op, name, array)`` applied to every array (host or device)."""
    hidden = C.activation_code(op, "hidden", hidden)
    output = C.activation_code(op, "output", output)
    loss = C.loss_code(op, loss)
    pairs = C.unpack_layers(op, layers)
    x = read(op, "x", x)
    pairs = [(read(op, f"layer {i} W", W), read(op, f"layer {i} bias", b)) for i, (W, b) in enumerate(pairs, start=1)]
    dtype = C.check_dtype(op, x, *(a for pair in pairs for a in pair))
    C.check_layers(op, x, pairs)
    target = read(op, "target", target, floats=False)
    out_shape = (x.shape[0], pairs[-1][0].shape[1])
    if loss == MSE:
        C.check_mse_target(op, target, out_shape, dtype)
    else:
        host = target.copy_to_host() if getattr(target, "__cuda_ndarray__", False) else target
        target = C.check_class_target(op, host, *out_shape)
    return x, target, pairs, dtype, hidden, output, loss


def loss_and_grads(
    x: ArrayLike,
    target: ArrayLike,
    layers: Layers,
    hidden: Activation = "sigmoid",
    output: Activation = "sigmoid",
    loss: Loss = "mse",
) -> tuple[Array, Grads]:
    """The loss of ``forward(x, layers, hidden, output)`` against ``target``, and its
    gradients: ``loss, grads = loss_and_grads(...)`` with grads = [(dW1, db1), ...] shaped
    like layers and loss a 0-d array, all of x's dtype.

    x: (n, n_in); layers: (W, b) pairs as for numnet.forward; hidden, output: "sigmoid"
    (the default), "relu", "tanh" or "none". loss:

    - "mse" (the default): mean of (y - target)^2 over all n * n_out elements; target
      has the output's shape (n, n_out) and dtype (no broadcasting, no promotion).
    - "cross_entropy": the network's output y are logits (use output="none" for the
      usual classifier); target holds one class index per row, shape (n,), any integer
      dtype, each in [0, n_out); the mean over the batch of -log softmax(y)[target], as
      torch.nn.functional.cross_entropy.

    An empty batch gives a NaN loss and zero gradients, as in torch. NaN and inf
    propagate as in torch (see the module docstring); nothing raises on them.

    >>> x = np.array([[1.0, 2.0]]); layers = [(np.array([[0.5], [-0.5]]), np.array([0.0]))]
    >>> loss, [(dW, db)] = numnet.loss_and_grads(x, np.array([[1.0]]), layers, output="none")
    >>> loss, dW.ravel(), db   # y = -0.5: loss (y - 1)^2, dl/dy = 2 (y - 1) = -3
    (array(2.25), array([-3., -6.]), array([-3.]))
    """
    op = "numnet.loss_and_grads"
    try:
        x, target, pairs, dtype, hidden, output, loss = read_network(
            op, x, target, layers, hidden, output, loss, C.as_host_array
        )
    except C.INPUT_ERRORS as e:
        raise e.with_traceback(None)
    n = x.shape[0]
    # The forward pass, keeping every layer's output h_i: the backward pass needs them.
    hs = [x]
    for i, (W, b) in enumerate(pairs, start=1):
        h = np.empty((n, W.shape[1]), dtype)  # (n, k_i)
        K.linear_act(hs[-1], W, b, h, output if i == len(pairs) else hidden)
        hs.append(h)
    delta = np.empty(hs[-1].shape, dtype)  # dl/dz_L: (n, k_L)
    if loss == MSE:
        value = BK.mse_kernel(hs[-1], target, output, delta)
    else:
        value = BK.cross_entropy_kernel(hs[-1], target, output, np.empty(hs[-1].shape, dtype), delta)
    grads = [None] * len(pairs)
    for i in range(len(pairs) - 1, -1, -1):
        W, b = pairs[i]
        dW = np.empty(W.shape, dtype)
        db = np.empty(b.shape, dtype)
        BK.matmul_tn_kernel(hs[i], delta, dW, K.product_threads(n, *W.shape))
        BK.column_sum_kernel(delta, db.reshape(-1))
        grads[i] = (dW, db)
        if i:
            below = np.empty(hs[i].shape, dtype)  # dl/dz_i: (n, k_i)
            BK.backprop_kernel(delta, W, hs[i], hidden, below, K.product_threads(n, *W.shape))
            delta = below
    return np.array(value, dtype), grads


class SGD:
    """Stochastic gradient descent with momentum, as torch.optim.SGD (dampening 0, no
    Nesterov, no weight decay), updating the layers' arrays in place:

        buf = grad (first step), then buf = momentum * buf + grad;   p -= lr * buf

    With momentum 0 (the default) this is p -= lr * grad. layers: the (W, b) pairs given
    to loss_and_grads (numpy arrays, writeable); ``step(grads)`` takes its grads.

    >>> opt = numnet.SGD(layers, lr=0.1, momentum=0.9)
    >>> loss, grads = numnet.loss_and_grads(x, target, layers); opt.step(grads)
    """

    def __init__(self, layers: Layers, lr: float, momentum: float = 0.0) -> None:
        op = "numnet.SGD"
        try:
            self.lr, self.momentum = C.check_sgd_settings(op, lr, momentum)
            self.layers = [tuple(pair) for pair in C.unpack_layers(op, layers)]
            C.check_params(op, self.layers)
        except C.INPUT_ERRORS as e:
            raise e.with_traceback(None)
        self.buffers = None  # momentum buffers, made by the first step (torch's convention)
        self._fused = _fused_arrays(self.layers)  # for train_step; None: it takes two calls
        self._codes = {}
        self._unfit = set()  # train_step: argument kinds its compiled call failed to compile for

    def step(self, grads: Grads) -> None:
        """p -= lr * buf for every W and b, buf the momentum buffer (or the gradient)."""
        op = "numnet.SGD.step"
        try:
            grads = [
                (C.as_host_array(op, f"layer {i} dW", dW), C.as_host_array(op, f"layer {i} db", db))
                for i, (dW, db) in enumerate(C.unpack_layers(op, grads), start=1)
            ]
            C.check_grads(op, self.layers, grads)
        except C.INPUT_ERRORS as e:
            raise e.with_traceback(None)
        params = [_matrix(p) for pair in self.layers for p in pair]
        gradients = [_matrix(g) for pair in grads for g in pair]
        first = self.buffers is None and self.momentum != 0
        if first:
            self.buffers = [np.empty(p.shape, p.dtype) for p in params]
        dtype = params[0].dtype.type
        lr, momentum = dtype(self.lr), dtype(self.momentum)
        for k, (p, g) in enumerate(zip(params, gradients)):
            buf = g if self.momentum == 0 else self.buffers[k]
            BK.sgd_kernel(p, g, buf, lr, momentum, first)

    def train_step(
        self,
        x: ArrayLike,
        target: ArrayLike,
        hidden: Activation = "sigmoid",
        output: Activation = "sigmoid",
        loss: Loss = "mse",
    ) -> Array:
        """One training step: ``loss, grads = loss_and_grads(x, target, layers, hidden,
        output, loss); self.step(grads)``, returning the loss; the same bits, in one
        compiled call where it can (no Python between the kernels, gradients in scratch
        arrays kept from step to step: a small network's step costs a fraction of the two
        calls'). Any input the compiled call does not take (other layouts of the layers,
        an unusual target) runs the two calls, which check it and raise what they raise.

        >>> opt = numnet.SGD(layers, lr=0.1, momentum=0.9)
        >>> loss = opt.train_step(x, target, hidden="relu", output="none", loss="cross_entropy")
        """
        key = (hidden, output, loss)
        codes = self._codes.get(key)
        if codes is None:
            op = "numnet.SGD.train_step"
            try:
                codes = self._codes[key] = (
                    C.activation_code(op, "hidden", hidden),
                    C.activation_code(op, "output", output),
                    C.loss_code(op, loss),
                )
            except C.INPUT_ERRORS as e:
                raise e.with_traceback(None)
        if (
            self._fused is not None
            and type(x) is np.ndarray
            and type(target) is np.ndarray
            and target.ndim == (2 if codes[2] == MSE else 1)
            and x.ndim == 2
            and not (self._unfit and _kind(x, target) in self._unfit)
        ):
            Ws, Bs, dWs, dBs = self._fused
            first = self.buffers is None and self.momentum != 0
            buffers = self.buffers
            if first:
                buffers = [np.empty(p.shape, p.dtype) for pair in zip(Ws, Bs) for p in pair]
            bufs_W, bufs_B = (dWs, dBs) if self.momentum == 0 else (tuple(buffers[0::2]), tuple(buffers[1::2]))
            dtype = Ws[0].dtype.type
            widest = max(Ws, key=lambda W: W.size)  # its product decides whether threads pay
            try:
                done, value = BK.train_step_kernel(
                    x,
                    target,
                    Ws,
                    Bs,
                    dWs,
                    dBs,
                    bufs_W,
                    bufs_B,
                    codes[0],
                    codes[1],
                    dtype(self.lr),
                    dtype(self.momentum),
                    first,
                    K.step_threads(len(x), *widest.shape),
                )
            except Exception:  # argument types it was not written for (a dtype mix, ...)
                done = False
                self._unfit.add(_kind(x, target))  # numba would try to compile them again each step
            if done:
                if first:
                    self.buffers = buffers
                return np.array(value, dtype)
        try:
            value, grads = loss_and_grads(x, target, self.layers, hidden, output, loss)
        except C.INPUT_ERRORS as e:  # loss_and_grads's checks: shown from this line alone
            raise e.with_traceback(None)
        self.step(grads)
        return value


def _kind(x, target):
    """What numba's type for x and target depends on: SGD.train_step's compiled call
    either compiles for both or not, whatever their values."""
    return tuple((a.dtype, a.ndim, a.flags.c_contiguous, a.flags.f_contiguous, a.flags.writeable) for a in (x, target))


def _fused_arrays(layers):
    """(Ws, Bs, dWs, dBs) for SGD.train_step's one compiled call: the weights, the biases
    as (1, m) views, and gradient scratch like them; None unless every W is a C-ordered
    matrix (they then share one numba type, which a tuple indexed at run time needs)."""
    Ws = tuple(W for W, _ in layers)
    if not all(W.ndim == 2 and W.flags.c_contiguous for W in Ws):
        return None
    Bs = tuple(_matrix(b) for _, b in layers)
    if not all(b.ndim == 2 and b.flags.c_contiguous for b in Bs):
        return None
    return Ws, Bs, tuple(np.empty_like(W) for W in Ws), tuple(np.empty_like(b) for b in Bs)


def _matrix(a):
    """A 1-D bias as a (1, m) view, so that one 2-D kernel updates W and b alike."""
    return a.reshape(1, -1) if a.ndim == 1 else a
