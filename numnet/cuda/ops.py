"""The public GPU ops: check the input once, move the data, pick a launch shape, launch.

The same ops, signatures, checks and error messages as ``numnet.ops``, with the op
named ``numnet.cuda.<op>``. Where the data lives decides where the result lives:

- numpy arrays (any layout; torch CPU tensors, numbers and lists as in numnet.ops) are
  copied to the GPU, and the result comes back as a numpy array;
- GPU arrays (numba device arrays, and on a real GPU anything with
  ``__cuda_array_interface__``: CuPy arrays, torch CUDA tensors) are used where they lie,
  without a copy, and the result is a numba device array on the GPU (``cupy.asarray``
  or ``torch.as_tensor(..., device="cuda")`` take it back without a copy);
- a mix of the two: the host arrays are copied to the GPU for the call and the result
  stays on the GPU, as for GPU inputs.

Without a GPU every op raises CudaUnavailableError, which says how to run the kernels
in Numba's CUDA simulator instead. Importing this module never needs a GPU.
"""

import math
import warnings

import numpy as np

from numnet import _checks as C
from numnet._typing import Activation, ArrayLike, GPUArray, Layers

try:
    from numba import cuda

    from numnet.cuda import kernels as K
except Exception as exc:  # numba-cuda missing, or its CUDA bindings
    cuda = K = None
    _import_error = exc


class CudaUnavailableError(RuntimeError):
    """numnet.cuda has neither a usable GPU nor Numba's CUDA simulator."""


def is_available() -> bool:
    """True when numnet.cuda can run: a CUDA GPU with its driver, or the simulator
    (NUMBA_ENABLE_CUDASIM=1). Never raises."""
    try:
        return cuda is not None and bool(cuda.is_available())
    except Exception:
        return False


def on_simulator() -> bool:
    """True when the kernels run in Numba's CUDA simulator rather than on a GPU."""
    return K is not None and K.SIMULATED


def unavailable_message() -> str:
    """Why numnet.cuda cannot run here, and how to run it in the simulator instead."""
    if cuda is None:
        why = f"numba.cuda cannot be imported ({_import_error})"
    else:
        why = "numba finds no usable CUDA GPU (that needs an NVIDIA driver and the CUDA libraries)"
    return (
        f"{why}. To run numnet's CUDA kernels without a GPU, in Numba's CUDA simulator "
        "(slow, for tests), set NUMBA_ENABLE_CUDASIM=1 before numba or numnet is imported, "
        "e.g. `NUMBA_ENABLE_CUDASIM=1 python script.py`. On a machine with an NVIDIA GPU, "
        "install the CUDA libraries: pip install 'numnet[cuda]'."
    )


def _require_gpu(op):
    if not is_available():
        raise CudaUnavailableError(f"{op}: {unavailable_message()}")


# -- Where the data lives ---------------------------------------------------------------


def _is_gpu_array(x):
    # torch refuses to hand over the interface of a CUDA tensor that requires grad
    # (RuntimeError); it is still a GPU array, and _read says why it cannot be used.
    try:
        return getattr(x, "__cuda_ndarray__", False) or hasattr(x, "__cuda_array_interface__")
    except Exception:
        return True


def _read(op, name, x, floats=True):
    """A numba device array for a GPU array (a view, no copy), else a numpy array."""
    if getattr(x, "__cuda_ndarray__", False):  # numba's own (also the simulator's)
        return x
    if not _is_gpu_array(x):
        return C.as_host_array(op, name, x, floats)
    if K.SIMULATED:
        raise TypeError(
            f"{op}: {name} is a {type(x).__name__} on a GPU, and numba runs in its CUDA "
            "simulator (NUMBA_ENABLE_CUDASIM=1), which only knows its own device arrays"
        )
    try:
        return cuda.as_cuda_array(x)
    except Exception as exc:
        raise TypeError(f"{op}: cannot read {name} as a GPU array: {exc}") from None


def _on_gpu(*arrays):
    return any(getattr(a, "__cuda_ndarray__", False) for a in arrays)


def _gpu(x):
    """x on the GPU: a device array as it is (any strides), a host array copied over."""
    if getattr(x, "__cuda_ndarray__", False):
        return x
    return cuda.to_device(np.ascontiguousarray(x))


def _flat(x):
    """x's elements as a 1-D array on the GPU, in C order; a view where the layout allows."""
    if not getattr(x, "__cuda_ndarray__", False):
        return cuda.to_device(np.ascontiguousarray(x).reshape(-1))
    if x.ndim == 1:
        return x  # the kernels read strided 1-D arrays as they are
    if not x.is_c_contiguous():
        dense = cuda.device_array(x.shape, x.dtype)
        dense[:] = x  # a copy on the GPU, by numba's strided assignment kernel
        x = dense
    return x.reshape(x.size)


def _bias_row(b):
    """The bias as a row of m values on the GPU, whether it came as (m,) or (1, m)."""
    b = _gpu(b)
    return b if b.ndim == 1 else b[0]


def _result(out, on_gpu):
    return out if on_gpu else out.copy_to_host()


def launch_shape(n, m=None):
    """(blocks, threads per block) for a 1-D kernel over n items, or a 2-D one over (n, m).

    1-D kernels loop with a grid stride, so the grid stops growing at MAX_BLOCKS blocks of
    THREADS; it depends on n alone, which keeps dot's summation order fixed. 2-D kernels
    give each output element a thread, in TILE x TILE blocks, x along the columns, y
    along the rows up to MAX_GRID_Y blocks (the GPU's limit), the kernels striding over
    the rest.
    """
    if m is None:
        return min(max(math.ceil(n / K.THREADS), 1), K.MAX_BLOCKS), K.THREADS
    return (math.ceil(m / K.TILE), min(math.ceil(n / K.TILE), K.MAX_GRID_Y)), (K.TILE, K.TILE)


def mm_launch_shape(n, m):
    """(blocks, threads per block) for mm_kernel and linear_act_kernel over an (n, m)
    output: TILE x TILE threads per block, each block a BLOCK x BLOCK tile, x along the
    columns, at most MAX_GRID_Y blocks along the rows (the kernels stride over the rest)."""
    return (math.ceil(m / K.BLOCK), min(math.ceil(n / K.BLOCK), K.MAX_GRID_Y)), (K.TILE, K.TILE)


def launch(kernel, shape):
    """``kernel[shape]``, ready to call, and as quiet as on a GPU.

    numba warns that a grid under 128 blocks under-uses a GPU: numnet's small problems
    get small grids on purpose, and dot's second pass one block. The simulator computes
    with NumPy scalars, which warn (RuntimeWarning) where a GPU quietly makes inf or NaN.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
        configured = kernel[shape]
    if not K.SIMULATED:
        return configured

    def run(*args):
        with warnings.catch_warnings():
            # every numnet.cuda kernel module: kernels, backward_kernels
            warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"numnet\.cuda\.")
            configured(*args)

    return run


# -- The ops ------------------------------------------------------------------------------


@C.raised_from_the_op
def sigmoid(x: ArrayLike) -> GPUArray:
    """sigma(x) = 1 / (1 + e^-x), elementwise; same shape and dtype as x.

    >>> numnet.cuda.sigmoid(np.array([-1000.0, 0.0, 1000.0], np.float32))
    array([0. , 0.5, 1. ], dtype=float32)
    """
    op = "numnet.cuda.sigmoid"
    _require_gpu(op)
    x = _read(op, "x", x)
    C.check_dtype(op, x)
    out = cuda.device_array(x.shape, x.dtype)
    if out.size:
        launch(K.sigmoid_kernel, launch_shape(out.size))(_flat(x), out.reshape(out.size))
    return _result(out, _on_gpu(x))


@C.raised_from_the_op
def sum(x: ArrayLike) -> GPUArray:
    """The sum of every element of x: a 0-d array of its dtype.

    Summed in a fixed tree (a grid-stride pass, each block's threads in a tree, then the
    block sums in a tree), so the same input gives the same bits on every run; not
    torch.sum's order (numnet.sum's), which it matches within numnet.testing's sum bound.

    >>> numnet.cuda.sum(np.array([1.0, 2.0, 3.0]))
    array(6.)
    """
    op = "numnet.cuda.sum"
    _require_gpu(op)
    x = _read(op, "x", x)
    C.check_dtype(op, x)
    flat = _flat(x)
    blocks, threads = launch_shape(flat.size)
    partial = cuda.device_array(blocks, flat.dtype)
    launch(K.sum_partial_kernel, (blocks, threads))(flat, partial)
    out = cuda.device_array((), flat.dtype)
    launch(K.sum_kernel, (1, K.THREADS))(partial, out.reshape(1))  # one block
    return _result(out, _on_gpu(x))


def _dot_partials(a, b):
    """Pass one of dot: one partial sum per block, on the GPU."""
    flat_a, flat_b = _flat(a), _flat(b)
    blocks, threads = launch_shape(flat_a.size)
    partial = cuda.device_array(blocks, flat_a.dtype)
    launch(K.dot_kernel, (blocks, threads))(flat_a, flat_b, partial)
    return partial


@C.raised_from_the_op
def dot(a: ArrayLike, b: ArrayLike) -> GPUArray:
    """sum(a * b) over all elements of two same-shape arrays: a 0-d array of their dtype.

    Summed in a fixed tree (per block, then over the blocks), so the same input gives the
    same bits on every run; not the CPU's order (torch.sum's), which it matches within
    numnet.testing's sum bound.

    >>> numnet.cuda.dot(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    array(11.)
    """
    op = "numnet.cuda.dot"
    _require_gpu(op)
    a = _read(op, "a", a)
    b = _read(op, "b", b)
    dtype = C.check_dtype(op, a, b)
    C.check_same_shape(op, a, b)
    partial = _dot_partials(a, b)
    out = cuda.device_array((), dtype)
    launch(K.sum_kernel, (1, K.THREADS))(partial, out.reshape(1))  # one block
    return _result(out, _on_gpu(a, b))


@C.raised_from_the_op
def mm(a: ArrayLike, b: ArrayLike) -> GPUArray:
    """The matrix product a @ b.  a: (n, k) @ b: (k, m) -> (n, m).

    >>> numnet.cuda.mm(np.ones((2, 3)), np.ones((3, 4))).shape
    (2, 4)
    """
    op = "numnet.cuda.mm"
    _require_gpu(op)
    a = _read(op, "mat1", a)
    b = _read(op, "mat2", b)
    dtype = C.check_dtype(op, a, b)
    C.check_matmul(op, a, b)
    out = cuda.device_array((a.shape[0], b.shape[1]), dtype)
    if out.size:
        launch(K.mm_kernel, mm_launch_shape(*out.shape))(_gpu(a), _gpu(b), out)
    return _result(out, _on_gpu(a, b))


@C.raised_from_the_op
def neuron(x: ArrayLike, w: ArrayLike, b: ArrayLike) -> GPUArray:
    """sigma(sum(x * w) + b): one neuron's output, shaped like its bias b (one value).

    The sum is dot's (the same tree), with the bias and sigmoid fused into its second pass.
    """
    op = "numnet.cuda.neuron"
    _require_gpu(op)
    x = _read(op, "x", x)
    w = _read(op, "w", w)
    b = _read(op, "b", b)
    dtype = C.check_dtype(op, x, w, b)
    C.check_same_shape(op, x, w)
    C.check_neuron_bias(op, b)
    partial = _dot_partials(x, w)
    out = cuda.device_array(b.shape, dtype)
    launch(K.neuron_kernel, (1, K.THREADS))(partial, _flat(b), out.reshape(1))  # one block
    return _result(out, _on_gpu(x, w, b))


@C.raised_from_the_op
def linear(x: ArrayLike, W: ArrayLike, b: ArrayLike) -> GPUArray:
    """x @ W + b.  x: (n, k) @ W: (k, m) + b: (m,) or (1, m) -> (n, m), the bias added
    in the product's epilogue."""
    op = "numnet.cuda.linear"
    _require_gpu(op)
    x = _read(op, "x", x)
    W = _read(op, "W", W)
    b = _read(op, "b", b)
    dtype = C.check_dtype(op, x, W, b)
    C.check_matmul(op, x, W, names=("x", "W"))
    C.check_bias(op, b, W.shape[1])
    out = cuda.device_array((x.shape[0], W.shape[1]), dtype)
    if out.size:
        launch(K.linear_act_kernel, mm_launch_shape(*out.shape))(_gpu(x), _gpu(W), _bias_row(b), out, K.IDENTITY)
    return _result(out, _on_gpu(x, W, b))


@C.raised_from_the_op
def forward(x: ArrayLike, layers: Layers, hidden: Activation = "sigmoid", output: Activation = "sigmoid") -> GPUArray:
    """f_out(... f(f(x @ W1 + b1) @ W2 + b2) ... @ WL + bL), one kernel per layer.

    layers: a sequence of (W, b) pairs, W: (n_in, n_out), b: (n_out,) or (1, n_out).
    x: (batch, n_in). hidden, output: the activations, as for numnet.forward. Every
    layer's output stays on the GPU as the next layer's input; only the last one comes
    back, and only when the inputs came from the host.
    """
    op = "numnet.cuda.forward"
    _require_gpu(op)
    hidden = C.activation_code(op, "hidden", hidden)
    output = C.activation_code(op, "output", output)
    pairs = C.unpack_layers(op, layers)
    x = _read(op, "x", x)
    pairs = [(_read(op, f"layer {i} W", W), _read(op, f"layer {i} bias", b)) for i, (W, b) in enumerate(pairs, start=1)]
    arrays = [x, *(a for pair in pairs for a in pair)]
    dtype = C.check_dtype(op, *arrays)
    C.check_layers(op, x, pairs)
    h = _gpu(x)
    for i, (W, b) in enumerate(pairs, start=1):
        out = cuda.device_array((x.shape[0], W.shape[1]), dtype)  # (n, k_i)
        act = output if i == len(pairs) else hidden
        if out.size:
            launch(K.linear_act_kernel, mm_launch_shape(*out.shape))(h, _gpu(W), _bias_row(b), out, act)
        h = out
    return _result(h, _on_gpu(*arrays))
