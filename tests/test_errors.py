"""Every bad input gets a one-line error, raised before any work, naming the op, the
shapes and the rule. The same cases run for the CUDA ops in tests/test_cuda.py."""

import os

import numpy as np
import pytest

import numnet

f32, f64 = np.float32, np.float64


def ones(*shape, dtype=f32):
    return np.ones(shape, dtype)


# (call, exception types the error must be, text the message must contain)
BAD_INPUTS = {
    "mm inner dims": (
        lambda ops: ops.mm(ones(1, 5), ones(1, 5)),
        (ValueError, RuntimeError),
        "mm: mat1 and mat2 shapes cannot be multiplied (1x5 and 1x5): columns of mat1 (5) must equal rows of mat2 (1)",
    ),
    "linear inner dims": (
        lambda ops: ops.linear(ones(2, 3), ones(4, 2), ones(2)),
        (ValueError, RuntimeError),
        "linear: mat1 and mat2 shapes cannot be multiplied (2x3 and 4x2)",
    ),
    "forward inner dims": (
        lambda ops: ops.forward(ones(1, 3), [(ones(3, 2), ones(2)), (ones(3, 1), ones(1))]),
        (ValueError, RuntimeError),
        "forward: layer 2: mat1 and mat2 shapes cannot be multiplied (1x2 and 3x1)",
    ),
    "mm 1-D": (
        lambda ops: ops.mm(ones(5), ones(5, 1)),
        ValueError,
        "mm: mat1 must be 2-D, got 1-D array of shape (5,)",
    ),
    "linear 3-D": (
        lambda ops: ops.linear(ones(1, 2, 3), ones(3, 2), ones(2)),
        ValueError,
        "linear: x must be 2-D, got 3-D array of shape (1, 2, 3)",
    ),
    "forward 1-D W": (
        lambda ops: ops.forward(ones(1, 3), [(ones(3), ones(1))]),
        ValueError,
        "forward: layer 1 W must be 2-D, got 1-D array of shape (3,)",
    ),
    "dot shapes": (
        lambda ops: ops.dot(ones(1, 5), ones(5, 1)),
        ValueError,
        "dot: the arrays must have the same shape, got (1, 5) and (5, 1)",
    ),
    "neuron shapes": (
        lambda ops: ops.neuron(ones(1, 5), ones(1, 4), ones(1, 1)),
        ValueError,
        "neuron: the arrays must have the same shape, got (1, 5) and (1, 4)",
    ),
    "neuron bias": (
        lambda ops: ops.neuron(ones(1, 5), ones(1, 5), ones(1, 2)),
        ValueError,
        "neuron: a neuron has one bias, got shape (1, 2) (2 values)",
    ),
    "linear bias": (
        lambda ops: ops.linear(ones(2, 3), ones(3, 4), ones(2, 4)),
        ValueError,
        "linear: bias of shape (2, 4) does not fit 4 output units: expected (4,) or (1, 4)",
    ),
    "forward bias": (
        lambda ops: ops.forward(ones(2, 3), [(ones(3, 4), ones(3))]),
        ValueError,
        "forward: layer 1 bias of shape (3,) does not fit 4 output units: expected (4,) or (1, 4)",
    ),
    "mm dtype mix": (
        lambda ops: ops.mm(ones(2, 2), ones(2, 2, dtype=f64)),
        (TypeError, RuntimeError),
        "mm: expected all arrays to have the same dtype, got float32 and float64",
    ),
    "forward dtype mix": (
        lambda ops: ops.forward(ones(1, 3), [(ones(3, 2), ones(2, dtype=f64))]),
        TypeError,
        "forward: expected all arrays to have the same dtype, got float32 and float64",
    ),
    "sigmoid int": (
        lambda ops: ops.sigmoid(np.arange(3)),
        TypeError,
        "sigmoid: expected float32 or float64 arrays, got int64; convert with .astype(np.float32)",
    ),
    "sum bool": (
        lambda ops: ops.sum(np.ones(3, bool)),
        TypeError,
        "sum: expected float32 or float64 arrays, got bool; convert with .astype(np.float32)",
    ),
    "sum of a string": (
        lambda ops: ops.sum("1.0"),
        TypeError,
        "sum: expected float32 or float64 arrays, got a Python str of <U3; convert with np.asarray(x, np.float32)",
    ),
    "dot bool": (
        lambda ops: ops.dot(np.ones(3, bool), np.ones(3, bool)),
        TypeError,
        "got bool; convert with .astype(np.float32)",
    ),
    "mm complex": (
        lambda ops: ops.mm(np.ones((2, 2), complex), np.ones((2, 2), complex)),
        TypeError,
        "got complex128; convert with .astype(np.float32)",
    ),
    "linear float16": (
        lambda ops: ops.linear(ones(2, 2, dtype=np.float16), ones(2, 2, dtype=np.float16), ones(2, dtype=np.float16)),
        TypeError,
        "got float16; convert with .astype(np.float32)",
    ),
    "forward empty": (
        lambda ops: ops.forward(ones(1, 3), []),
        ValueError,
        "forward: layers is empty; give at least one (W, b) pair",
    ),
    "forward not pairs": (
        lambda ops: ops.forward(ones(1, 3), [ones(3, 2)]),
        TypeError,
        "forward: layer 1 must be a (W, b) pair, got ndarray",
    ),
}


def check_bad_input(ops, prefix, case):
    call, kinds, text = BAD_INPUTS[case]
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    with pytest.raises(kinds[0]) as info:
        call(ops)
    for kind in kinds:
        assert isinstance(info.value, kind), (case, type(info.value))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(prefix), message
    assert text in message, message


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_a_clear_error(case):
    check_bad_input(numnet, "numnet.", case)


def test_object_arrays_are_refused():
    with pytest.raises(TypeError, match="got object; convert with"):
        numnet.sigmoid(np.array([1.0, None], dtype=object))


def test_ragged_lists_are_refused_clearly():
    with pytest.raises((TypeError, ValueError), match="numnet.mm"):
        numnet.mm([[1.0, 2.0], [3.0]], [[1.0]])


def test_errors_come_before_any_work():
    """A shape error leaves nothing half-done: inputs untouched, nothing returned."""
    a = ones(2, 3)
    before = a.copy()
    with pytest.raises(ValueError):
        numnet.forward(a, [(ones(3, 2), ones(2)), (ones(4, 1), ones(1))])
    assert (a == before).all()


@pytest.mark.parametrize(
    "value, kind", [([1, 2, 3], "a list of int64"), (2, "a Python int of int64"), ((True, False), "a tuple of bool")]
)
def test_advice_fits_a_list_or_a_number(value, kind):
    """A list or a number has no .astype: the advice is what works for it."""
    with pytest.raises(TypeError) as info:
        numnet.sigmoid(value)
    assert str(info.value) == (
        f"numnet.sigmoid: expected float32 or float64 arrays, got {kind}; convert with np.asarray(x, np.float32)"
    )


def test_a_list_of_floats_is_float64_and_the_mix_says_so():
    assert numnet.sigmoid([-1.0, 0.0, 1.0]).dtype == np.float64
    with pytest.raises(TypeError, match=r"a list or a Python float becomes float64.*np.asarray\(x, np.float32\)"):
        numnet.mm([[1.0, 2.0]], np.ones((2, 1), np.float32))


def numnet_frames(exc):
    """The frames of ``exc``'s traceback that lie in numnet's package."""
    import traceback

    package = os.path.dirname(numnet.__file__)
    return [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(package)]


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_a_traceback_shows_one_frame_of_numnet(case):
    """As torch's: the user's line and the message; of numnet's, the public function's
    line at most (not the frames of numnet._checks)."""
    call, kinds, _ = BAD_INPUTS[case]
    with pytest.raises(kinds if isinstance(kinds, type) else kinds[0]) as info:
        call(numnet)
    frames = numnet_frames(info.value)
    assert len(frames) <= 1, [f"{f.filename}:{f.lineno} {f.name}" for f in frames]


def test_training_errors_show_one_frame_of_numnet():
    layers = [(ones(3, 2), ones(2))]
    for call in (
        lambda: numnet.loss_and_grads(ones(4, 3), ones(4, 3), layers),
        lambda: numnet.SGD(layers, lr=-1.0),
        lambda: numnet.SGD(layers, lr=0.1).step([(ones(2, 2), ones(2))]),
        lambda: numnet.SGD(layers, lr=0.1).train_step(ones(4, 3), ones(4, 5)),
        lambda: numnet.softmax([1, 2]),
    ):
        with pytest.raises((TypeError, ValueError)) as info:
            call()
        assert len(numnet_frames(info.value)) <= 1, numnet_frames(info.value)
