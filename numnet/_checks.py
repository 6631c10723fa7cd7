"""Input validation and torch-style errors, in one place for the CPU and CUDA ops.

Every public op checks its arguments here once, before any work, and then hands clean
arrays to a kernel that trusts them. Errors are one line that names the op, the shapes
and the rule, e.g.::

    numnet.mm: mat1 and mat2 shapes cannot be multiplied (1x5 and 1x5): columns of mat1 (5) must equal rows of mat2 (1)

The checks only read ``.shape`` and ``.dtype``, so they serve numpy arrays on the CPU
and numba device arrays on the GPU alike.
"""

import functools
import os

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class ShapeError(ValueError, RuntimeError):
    """Shapes that do not fit. A ValueError (numpy habit) and a RuntimeError (torch habit)."""


class DTypeError(TypeError, RuntimeError):
    """A dtype numnet does not compute in, or float32 mixed with float64.

    A TypeError (numpy habit) and a RuntimeError (torch raises RuntimeError for a mix).
    """


def shape_str(shape):
    """torch's way of writing a matrix shape in its mm error: (1, 5) -> '1x5'."""
    return "x".join(str(d) for d in shape)


def as_host_array(op, name, x, floats=True):
    """The numpy array behind ``x``, without copying when it already is one.

    Accepted: numpy arrays, anything numpy converts without guessing (torch CPU
    tensors share their memory this way), Python numbers and nested lists of them.
    They are read as numpy reads them: a list of Python floats, or a float, becomes
    float64 (torch would make float32); ints and bools are refused with the conversion
    that fits (unless ``floats`` is False: class indices). GPU arrays are refused with
    a pointer to ``numnet.cuda``.
    """
    if type(x) is np.ndarray:
        return x
    try:
        on_gpu = hasattr(x, "__cuda_array_interface__")
    except Exception:  # torch: a CUDA tensor that requires grad refuses to hand it over
        on_gpu = True
    if on_gpu:
        raise TypeError(
            f"{op}: {name} is a GPU array ({type(x).__name__}); use numnet.cuda.{op.split('.', 1)[-1]} "
            "for GPU arrays, or copy it to the host first"
        )
    try:
        a = np.asarray(x)
    except Exception as exc:  # torch tensors that require grad, ragged lists, ...
        raise TypeError(f"{op}: cannot read {name} as an array: {exc}") from None
    if floats and a.dtype not in FLOAT_DTYPES:  # advice that fits a list, a number or a tensor
        kind = f"a Python {type(x).__name__}" if np.isscalar(x) else f"a {type(x).__name__}"
        raise DTypeError(
            f"{op}: expected float32 or float64 arrays, got {kind} of {a.dtype}; "
            f"convert with np.asarray({name}, np.float32)"
        )
    return a


# What the checks raise about a caller's input. A public op catches them around its
# checks and raises them again from its own line (``raise e.with_traceback(None)``), so
# that a traceback shows the caller's line and the op's, not the frames of this module.
INPUT_ERRORS = (TypeError, ValueError, IndexError)


def raised_from_the_op(op):
    """The public op ``op``, whose input errors show the caller's line and one line of
    numnet's (this wrapper's) instead of every check's frame, as the CPU ops' ``try``
    blocks do. Only an input error numnet's own code raised is shortened; any other
    error (a bug, numba's) keeps its whole traceback."""

    @functools.wraps(op)
    def checked(*args, **kwargs):
        try:
            return op(*args, **kwargs)
        except INPUT_ERRORS as e:
            if not _raised_in_numnet(e.__traceback__):
                raise
            raise e.with_traceback(None)  # from here: the message says what is wrong

    return checked


def _raised_in_numnet(tb):
    """Whether the innermost frame of a traceback is numnet's own Python code."""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.dirname(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE)


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def read_floats(op, **named):
    """The numpy arrays behind the named arguments (as_host_array), checked to share one
    float dtype: one array for one name, else a list in the order given."""
    arrays = [as_host_array(op, name, x) for name, x in named.items()]
    check_dtype(op, *arrays)
    return arrays[0] if len(arrays) == 1 else arrays


def check_dtype(op, *arrays):
    """The one float dtype shared by ``arrays``; float32 or float64, never mixed."""
    dtype = arrays[0].dtype
    for a in arrays:
        if a.dtype not in FLOAT_DTYPES:
            raise DTypeError(
                f"{op}: expected float32 or float64 arrays, got {a.dtype}; convert with .astype(np.float32)"
            )
    for a in arrays:
        if a.dtype != dtype:
            raise DTypeError(
                f"{op}: expected all arrays to have the same dtype, got {dtype} and {a.dtype}; "
                "numnet does not promote (as torch): convert one with .astype() "
                "(a list or a Python float becomes float64, as in numpy: np.asarray(x, np.float32) "
                "makes float32)"
            )
    return dtype


def check_ndim(op, name, a, ndim):
    if a.ndim != ndim:
        raise ShapeError(f"{op}: {name} must be {ndim}-D, got {a.ndim}-D array of shape {tuple(a.shape)}")


def check_matmul(op, a, b, names=("mat1", "mat2")):
    """(n, k) @ (k, m): both 2-D and the inner dimensions equal."""
    check_ndim(op, names[0], a, 2)
    check_ndim(op, names[1], b, 2)
    if a.shape[1] != b.shape[0]:
        raise ShapeError(
            f"{op}: mat1 and mat2 shapes cannot be multiplied "
            f"({shape_str(a.shape)} and {shape_str(b.shape)}): "
            f"columns of {names[0]} ({a.shape[1]}) must equal rows of {names[1]} ({b.shape[0]})"
        )


def check_same_shape(op, a, b):
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeError(f"{op}: the arrays must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def check_bias(op, b, m, name="bias"):
    """A bias for m output units: shape (m,) or (1, m), broadcast over the rows."""
    shape = tuple(b.shape)
    if shape != (m,) and shape != (1, m):
        raise ShapeError(f"{op}: {name} of shape {shape} does not fit {m} output units: expected ({m},) or (1, {m})")


def check_neuron_bias(op, b):
    """A single neuron has a single bias: one element, of any shape (the result's shape)."""
    if b.size != 1:
        raise ShapeError(f"{op}: a neuron has one bias, got shape {tuple(b.shape)} ({b.size} values)")


# Activations by name; a kernel gets the position in this tuple (numnet.kernels.SIGMOID, ...).
ACTIVATIONS = ("sigmoid", "relu", "tanh", "none")


def activation_code(op, name, value):
    """The kernels' number for the activation called ``value`` (keyword ``name``)."""
    try:
        return ACTIVATIONS.index(value)
    except ValueError:
        choices = ", ".join(repr(a) for a in ACTIVATIONS)
        raise ValueError(f"{op}: {name}={value!r} is not an activation; choose one of {choices}") from None


def check_layers(op, x, layers):
    """x: (n, k0); layers: (W1, b1), (W2, b2), ... with W_i: (k_{i-1}, k_i) and b_i fitting k_i."""
    check_ndim(op, "x", x, 2)
    if len(layers) == 0:
        raise ValueError(f"{op}: layers is empty; give at least one (W, b) pair")
    width = x.shape[1]
    for i, (W, b) in enumerate(layers, start=1):
        check_ndim(op, f"layer {i} W", W, 2)
        if W.shape[0] != width:
            prev = "x" if i == 1 else f"layer {i - 1}'s output"
            raise ShapeError(
                f"{op}: layer {i}: mat1 and mat2 shapes cannot be multiplied "
                f"({x.shape[0]}x{width} and {shape_str(W.shape)}): "
                f"columns of {prev} ({width}) must equal rows of W{i} ({W.shape[0]})"
            )
        check_bias(op, b, W.shape[1], name=f"layer {i} bias")
        width = W.shape[1]


def unpack_layers(op, layers):
    """layers as a list of (W, b) pairs, each pair checked to be a pair."""
    try:
        pairs = list(layers)
    except TypeError:
        raise TypeError(f"{op}: layers must be a sequence of (W, b) pairs, got {type(layers).__name__}") from None
    for i, pair in enumerate(pairs, start=1):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"{op}: layer {i} must be a (W, b) pair, got {type(pair).__name__}")
    return pairs


# -- A compiled screen for the hot path ----------------------------------------------
# A notebook-sized forward pass computes in about a microsecond; reading every shape
# and dtype from Python would cost more than the arithmetic. ``layers_fit`` answers
# "is everything clean?" in compiled code; only when it says no do the Python checks
# above run, to name the problem.
from numba import literal_unroll  # noqa: E402
from numba.extending import overload  # noqa: E402

from numnet._jit import jit  # noqa: E402


def _same_float_dtype(a, b):
    """True when a and b share the dtype float32 or float64 (decided at compile time)."""


@overload(_same_float_dtype)
def _same_float_dtype_impl(a, b):
    same = a.dtype == b.dtype and str(a.dtype) in ("float32", "float64")
    return lambda a, b: same


def _bias_width(b):
    """m for a bias of shape (m,) or (1, m); -1 for any other shape."""


@overload(_bias_width)
def _bias_width_impl(b):
    if b.ndim == 1:
        return lambda b: b.shape[0]
    if b.ndim == 2:
        return lambda b: b.shape[1] if b.shape[0] == 1 else -1
    return lambda b: -1


@jit
def layers_fit(x, layers, out):
    """True when x: (n, k0), W_i: (k_{i-1}, k_i), b_i: (k_i,) or (1, k_i), out: (n, k_L),
    and all share one float dtype. (Arrays of other ranks fail to compile here, which
    the caller treats as a no.)"""
    fit = _same_float_dtype(x, out) and out.shape[0] == x.shape[0]
    width = x.shape[1]
    for layer in literal_unroll(layers):
        W = layer[0]
        b = layer[1]
        fit = fit and _same_float_dtype(x, W) and _same_float_dtype(x, b)
        fit = fit and W.shape[0] == width and _bias_width(b) == W.shape[1]
        width = W.shape[1]
    return fit and out.shape[1] == width


# -- Losses, targets and optimiser settings (numnet.backward, numnet.cuda.backward) ----------

# Losses by name; the kernels get the position in this tuple.
LOSSES = ("mse", "cross_entropy")


def loss_code(op, value):
    """The kernels' number for the loss called ``value``."""
    try:
        return LOSSES.index(value)
    except ValueError:
        choices = ", ".join(repr(a) for a in LOSSES)
        raise ValueError(f"{op}: loss={value!r} is not a loss; choose one of {choices}") from None


def check_mse_target(op, target, shape, dtype):
    """mse compares the network's output with a target of the same shape and dtype."""
    if tuple(target.shape) != tuple(shape):
        raise ShapeError(
            f"{op}: mse target of shape {tuple(target.shape)} does not match the output's shape "
            f"{tuple(shape)}: they must be equal (numnet does not broadcast a target)"
        )
    if target.dtype != dtype:
        raise DTypeError(
            f"{op}: mse target is {target.dtype}, the network computes in {dtype}: "
            "they must be the same (numnet does not promote); convert one with .astype()"
        )


def check_class_target(op, target, batch, n_classes):
    """cross_entropy's target: integer class indices of shape (batch,), each in [0, n_classes).

    Any integer dtype is accepted (torch wants int64 or uint8). Returns the indices as a
    new int64 array, so the kernels compile once whatever integer type came in. Values
    are read on the host: a GPU target is copied over for this check.
    """
    if target.dtype.kind not in "iu":
        hint = (
            "; class probabilities are not supported, use one-hot targets with loss='mse'"
            if target.dtype.kind == "f"
            else ""
        )
        raise DTypeError(f"{op}: cross_entropy target must be integer class indices, got {target.dtype}{hint}")
    if target.ndim != 1:
        raise ShapeError(
            f"{op}: cross_entropy target must be 1-D, one class index per row of x, got shape {tuple(target.shape)}"
        )
    if target.shape[0] != batch:
        raise ShapeError(
            f"{op}: cross_entropy target of shape {tuple(target.shape)} does not match the batch: "
            f"x has {batch} rows, so target must have shape ({batch},)"
        )
    if batch:
        low, high = target.min(), target.max()
        if low < 0 or high >= n_classes:
            bad = low if low < 0 else high
            at = int((target == bad).argmax())
            raise IndexError(
                f"{op}: target {int(bad)} at position {at} is out of range for {n_classes} classes: "
                f"class indices must be in [0, {n_classes})"
            )
    return target.astype(np.int64)


def check_sgd_settings(op, lr, momentum):
    """lr >= 0 and momentum >= 0, finite numbers (torch.optim.SGD's rules)."""
    for name, value in (("lr", lr), ("momentum", momentum)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{op}: {name} must be a number, got {type(value).__name__}") from None
        if not np.isfinite(number) or number < 0:
            raise ValueError(f"{op}: invalid {name} {value!r}: it must be a finite number >= 0")
    return float(lr), float(momentum)


def check_params(op, pairs, on_device=lambda a: False):
    """The arrays an optimiser updates in place: writeable numpy arrays (or, for
    numnet.cuda, arrays for which ``on_device`` says True), all of one float dtype."""
    arrays = []
    for i, (W, b) in enumerate(pairs, start=1):
        for name, a in ((f"layer {i} W", W), (f"layer {i} bias", b)):
            if not on_device(a):
                if type(a) is not np.ndarray:
                    raise TypeError(
                        f"{op}: {name} must be a numpy array, since it is updated in place; got {type(a).__name__}"
                    )
                if not a.flags.writeable:
                    raise ValueError(f"{op}: {name} is read-only; it is updated in place, so it must be writeable")
            arrays.append(a)
    check_dtype(op, *arrays)


def check_grads(op, pairs, grads):
    """grads as loss_and_grads returns them: one (dW, db) per layer, shaped and typed like it."""
    grads = unpack_layers(op, grads)
    if len(grads) != len(pairs):
        raise ValueError(f"{op}: got gradients for {len(grads)} layers, the optimiser has {len(pairs)}")
    for i, ((W, b), (dW, db)) in enumerate(zip(pairs, grads), start=1):
        for name, p, g in ((f"layer {i} W", W, dW), (f"layer {i} bias", b, db)):
            if tuple(g.shape) != tuple(p.shape):
                raise ShapeError(
                    f"{op}: the gradient of {name} has shape {tuple(g.shape)}, the parameter {tuple(p.shape)}: "
                    "they must be equal"
                )
            if g.dtype != p.dtype:
                raise DTypeError(
                    f"{op}: the gradient of {name} is {g.dtype}, the parameter {p.dtype}: they must be the same"
                )
    return grads
