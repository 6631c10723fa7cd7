"""The public CPU ops: check the input once, allocate the output, call a kernel.

Inputs are numpy arrays of float32 or float64 (any layout, read-only allowed, never
modified), or anything numpy reads without copying data it does not have to: torch
CPU tensors (shared memory), Python numbers and nested lists (a list of Python floats
is float64, as in numpy). The result is always a new numpy array of the input dtype.
"""

import numpy as np

from numnet import _checks as C
from numnet import kernels as K
from numnet import sums as S
from numnet._jit import jit
from numnet._typing import Activation, Array, ArrayLike, DTypeLike, Layers


def sigmoid(x: ArrayLike) -> Array:
    """sigma(x) = 1 / (1 + e^-x), elementwise; same shape and dtype as x.

    >>> numnet.sigmoid(np.array([-1000.0, 0.0, 1000.0], np.float32))
    array([0. , 0.5, 1. ], dtype=float32)
    """
    if type(x) is not np.ndarray or x.dtype not in C.FLOAT_DTYPES:
        try:
            x = C.read_floats("numnet.sigmoid", x=x)
        except C.INPUT_ERRORS as e:
            raise e.with_traceback(None)  # from here: C.INPUT_ERRORS says why
    out = np.empty(x.shape, x.dtype)
    K.sigmoid(x.reshape(-1) if x.flags.c_contiguous else np.ascontiguousarray(x).reshape(-1), out.reshape(-1))
    return out


def _torch_threads(op, torch_threads):
    """A checked torch_threads argument; None stays None (torch's own count, which the
    kernels read only for a sum long enough to be split: it costs a microsecond)."""
    if torch_threads is None:
        return None
    if isinstance(torch_threads, bool) or not isinstance(torch_threads, (int, np.integer)) or torch_threads < 1:
        raise ValueError(f"{op}: torch_threads must be a positive int or None, got {torch_threads!r}")
    return int(torch_threads)


def sum(x: ArrayLike, torch_threads: int | None = None) -> Array:
    """The sum of every element of x: a 0-d array of its dtype, bit for bit torch.sum(x).

    Added in the order of torch 2.13's CPU kernel on x86-64 (``numnet.sums`` draws it;
    ``numnet.sum_order()`` says which order applies here). A sum of 32768 values or more
    is split as torch splits it between ``torch_threads`` threads: by default as many
    as torch starts with here (torch.get_num_threads()); give another count to get the
    bits torch gives after torch.set_num_threads(count). Any layout: x is summed in the
    order of its memory, as torch sums torch.from_numpy(x); an array with a negative
    stride (which torch cannot view) as its C-order copy. An empty array sums to 0.

    >>> numnet.sum(np.array([1.0, 2.0, 3.0], np.float32))
    array(6., dtype=float32)
    """
    op = "numnet.sum"
    # A numpy float array in C order with torch's own thread count, the usual call: straight
    # to the kernels, with nothing to check (S.total says why this path is kept short).
    if type(x) is np.ndarray and torch_threads is None and x.flags.c_contiguous and x.dtype in C.FLOAT_DTYPES:
        return np.array(S.total(x.reshape(1, -1)), x.dtype)
    try:
        x = C.read_floats(op, x=x)
        threads = _torch_threads(op, torch_threads)
    except C.INPUT_ERRORS as e:
        raise e.with_traceback(None)
    rows, vectorised = S.order_rows(x)
    total = S.total(rows, vectorised, threads)
    return np.array(total, dtype=x.dtype)


def sum_order(dtype: DTypeLike = np.float32) -> dict:
    """Which of torch's summation orders numnet.sum and numnet.dot reproduce here, as a
    dict: the CPU capability torch would pick and why, the vector lanes, the accumulators,
    the cascade's levels, the grain from which torch splits a sum, its thread count.

    >>> numnet.sum_order()["lanes"]     # on x86-64: 8 float32 lanes (32-byte vectors)
    8
    """
    return S.order(dtype)


def dot(a: ArrayLike, b: ArrayLike, torch_threads: int | None = None) -> Array:
    """sum(a * b) over all elements of two same-shape arrays: a 0-d array of their dtype.

    The notebook's ``torch.sum(features * weights)``, bit for bit: each product rounded
    (no fused multiply-add), then the products, in C order, summed as numnet.sum sums a
    contiguous array (the product tensor is contiguous when a and b are). torch_threads:
    as for numnet.sum.

    >>> numnet.dot(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    array(11.)
    """
    op = "numnet.dot"
    # The checks below in full, unless the inputs are plainly two numpy float arrays of
    # one dtype and shape: a dot of a thousand values costs less than the checks would.
    if (
        type(a) is np.ndarray
        and type(b) is np.ndarray
        and a.dtype is b.dtype
        and a.dtype in C.FLOAT_DTYPES
        and a.shape == b.shape
        and torch_threads is None
    ):
        threads = None
    else:
        try:
            a, b = C.read_floats(op, a=a, b=b)
            C.check_same_shape(op, a, b)
            threads = _torch_threads(op, torch_threads)
        except C.INPUT_ERRORS as e:
            raise e.with_traceback(None)
    flat_a = a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)
    flat_b = b.reshape(-1) if b.flags.c_contiguous else np.ascontiguousarray(b).reshape(-1)
    total = K.dot(flat_a, flat_b, threads)
    return np.array(total, dtype=a.dtype)


def mm(a: ArrayLike, b: ArrayLike) -> Array:
    """The matrix product a @ b.  a: (n, k) @ b: (k, m) -> (n, m).

    The notebook's ``torch.mm(features, weights.view(5, 1))``.

    >>> numnet.mm(np.ones((2, 3)), np.ones((3, 4))).shape
    (2, 4)
    """
    op = "numnet.mm"
    # The checks below in full, when the inputs are not plainly two numpy float matrices
    # of one dtype that fit: a notebook-sized product costs less than the checks would.
    if not (
        type(a) is np.ndarray
        and type(b) is np.ndarray
        and a.dtype is b.dtype
        and a.dtype in C.FLOAT_DTYPES
        and a.ndim == 2
        and b.ndim == 2
        and a.shape[1] == b.shape[0]
    ):
        try:
            a, b = C.read_floats(op, mat1=a, mat2=b)
            C.check_matmul(op, a, b)
        except C.INPUT_ERRORS as e:
            raise e.with_traceback(None)
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    K.mm(a, b, out)
    return out


def neuron(x: ArrayLike, w: ArrayLike, b: ArrayLike) -> Array:
    """sigma(sum(x * w) + b): one neuron's output, shaped like its bias b (one value).

    The notebook's ``activation(torch.sum(features * weights) + bias)`` (output1); the
    sum is numnet.dot's, in torch.sum's order, so it is torch's output1 up to the
    sigmoid (the seed's: bit for bit).
    """
    op = "numnet.neuron"
    try:
        x, w, b = C.read_floats(op, x=x, w=w, b=b)
        C.check_same_shape(op, x, w)
        C.check_neuron_bias(op, b)
    except C.INPUT_ERRORS as e:
        raise e.with_traceback(None)
    out = np.empty(b.shape, x.dtype)
    K.neuron(
        np.ascontiguousarray(x).reshape(-1),
        np.ascontiguousarray(w).reshape(-1),
        np.ascontiguousarray(b).reshape(-1),
        out.reshape(-1),
        None,
    )
    return out


def linear(x: ArrayLike, W: ArrayLike, b: ArrayLike) -> Array:
    """x @ W + b.  x: (n, k) @ W: (k, m) + b: (m,) or (1, m) -> (n, m).

    The notebook's ``torch.mm(features, W1) + B1``.
    """
    op = "numnet.linear"
    # As in mm: the full checks unless the inputs are plainly numpy arrays that fit.
    if not (
        type(x) is np.ndarray
        and type(W) is np.ndarray
        and type(b) is np.ndarray
        and x.dtype is W.dtype is b.dtype
        and x.dtype in C.FLOAT_DTYPES
        and x.ndim == 2
        and W.ndim == 2
        and x.shape[1] == W.shape[0]
        and b.shape[-1:] == W.shape[1:]
        and (b.ndim == 1 or b.shape == (1, W.shape[1]))
    ):
        try:
            x, W, b = C.read_floats(op, x=x, W=W, b=b)
            C.check_matmul(op, x, W, names=("x", "W"))
            C.check_bias(op, b, W.shape[1])
        except C.INPUT_ERRORS as e:
            raise e.with_traceback(None)
    out = np.empty((x.shape[0], W.shape[1]), x.dtype)
    K.linear_act(x, W, b, out, K.IDENTITY)
    return out


# _forward_if_fit's answers.
UNFIT, DONE, LARGE = 0, 1, 2


@jit
def _forward_if_fit(x, layers, out, hidden, output):
    """One compiled call for the hot path: screen the shapes and dtypes, then compute.

    Returns UNFIT when they do not fit (the Python checks then say why), DONE when the
    network was small and ``out`` holds its output (forward_kernel), LARGE when a layer
    is large enough for the blocked kernel: the caller then runs the layers one by one.
    (Keeping the blocked kernel out of this function keeps it cheap to compile for each
    new combination of layer types.)
    """
    if not C.layers_fit(x, layers, out):
        return UNFIT
    if not K.network_is_small(x, layers):
        return LARGE
    K.forward_kernel(x, layers, out, hidden, output)
    return DONE


def _forward_by_layers(x, pairs, out, hidden, output):
    """A large network, one linear_act_kernel call per layer (each takes every core)."""
    h = x
    for i, (W, b) in enumerate(pairs, start=1):
        last = i == len(pairs)
        h_next = out if last else np.empty((x.shape[0], W.shape[1]), x.dtype)  # (n, k_i)
        K.linear_act(h, W, b, h_next, output if last else hidden)
        h = h_next
    return out


_SIGMOID = C.ACTIVATIONS.index("sigmoid")


def forward(x: ArrayLike, layers: Layers, hidden: Activation = "sigmoid", output: Activation = "sigmoid") -> Array:
    """f_out(... f(f(x @ W1 + b1) @ W2 + b2) ... @ WL + bL), in one compiled call.

    layers: a sequence of (W, b) pairs, W: (n_in, n_out), b: (n_out,) or (1, n_out).
    x: (batch, n_in). hidden, output: the activation after every hidden layer and after
    the last one: "sigmoid" (the default, the notebook's), "relu", "tanh" or "none".
    The notebook's two-layer network is ``forward(features, [(W1, B1), (W2, B2)])``.
    Large networks run layer by layer, each layer's product on every core.
    """
    if hidden == "sigmoid" and output == "sigmoid":
        hidden_code = output_code = _SIGMOID
    else:
        try:
            hidden_code = C.activation_code("numnet.forward", "hidden", hidden)
            output_code = C.activation_code("numnet.forward", "output", output)
        except C.INPUT_ERRORS as e:
            raise e.with_traceback(None)
    # Fast path: numpy arrays that fit, checked in compiled code (see layers_fit).
    if type(x) is np.ndarray:
        try:
            pairs = tuple(layers)  # numba types a tuple of (W, b) tuples, not a list
            if type(pairs[0]) is not tuple or type(pairs[-1]) is not tuple:
                pairs = tuple(map(tuple, pairs))
            out = np.empty((len(x), pairs[-1][0].shape[1]), x.dtype)
            done = _forward_if_fit(x, pairs, out, hidden_code, output_code)
        except Exception:
            done = UNFIT  # anything unusual: the checks below name it, or convert it
        if done == DONE:
            return out
        if done == LARGE:
            return _forward_by_layers(x, pairs, out, hidden_code, output_code)
    op = "numnet.forward"
    try:
        pairs = C.unpack_layers(op, layers)
        x = C.as_host_array(op, "x", x)
        pairs = tuple(
            (C.as_host_array(op, f"layer {i} W", W), C.as_host_array(op, f"layer {i} bias", b))
            for i, (W, b) in enumerate(pairs, start=1)
        )
        C.check_dtype(op, x, *(a for pair in pairs for a in pair))
        C.check_layers(op, x, pairs)
    except C.INPUT_ERRORS as e:
        raise e.with_traceback(None)
    out = np.empty((x.shape[0], pairs[-1][0].shape[1]), x.dtype)
    done = _forward_if_fit(x, pairs, out, hidden_code, output_code)
    if done == LARGE:
        return _forward_by_layers(x, pairs, out, hidden_code, output_code)
    if done != DONE:
        raise AssertionError(f"{op}: the compiled screen refused input the checks accepted")
    return out
