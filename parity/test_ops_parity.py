"""Every op against torch on shapes and values hypothesis chooses, on each path.

One helper, ``check_op``, runs an op through numnet and torch and compares shape, dtype
and values with numnet.testing's tolerances (stated and justified there). Its twin,
``check_exception``, asserts that where torch raises, numnet raises too.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from numnet.testing import assert_close
from tests import naive
from tests.strategies import arrays, dtypes

from .conftest import examples

small = st.integers(0, 6)  # dims: the simulator path runs one OS thread per CUDA thread
sizes = {"cpu": st.integers(0, 40)}


def check_op(got, expected_tensor, **tolerance):
    expected = expected_tensor.numpy()
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert_close(got, expected, **tolerance)


def run(ops, test):
    """Run the hypothesis test ``test(ops, dims)`` with the path's example count."""
    dims = st.integers(0, 40) if examples(ops) > 10 else small
    settings(max_examples=examples(ops))(given(st.data())(lambda data: test(ops, dims, data)))()


def t(a):
    return torch.from_numpy(np.asarray(a))


def test_sigmoid(ops):
    def body(ops, dims, data):
        dtype = data.draw(dtypes)
        x = data.draw(arrays(dtype, data.draw(st.lists(dims, max_size=3).map(tuple))))
        check_op(ops.sigmoid(x), torch.sigmoid(t(x)), **naive.tolerance("sigmoid", x))

    run(ops, body)


def test_dot(ops):
    def body(ops, dims, data):
        dtype = data.draw(dtypes)
        shape = data.draw(st.lists(dims, max_size=2).map(tuple))
        a, b = data.draw(arrays(dtype, shape)), data.draw(arrays(dtype, shape))
        check_op(ops.dot(a, b), torch.sum(t(a) * t(b)), **naive.tolerance("dot", a, b))

    run(ops, body)


def test_mm(ops):
    def body(ops, dims, data):
        dtype = data.draw(dtypes)
        n, k, m = data.draw(dims), data.draw(dims), data.draw(dims)
        a, b = data.draw(arrays(dtype, (n, k))), data.draw(arrays(dtype, (k, m)))
        check_op(ops.mm(a, b), torch.mm(t(a), t(b)), **naive.tolerance("mm", a, b))

    run(ops, body)


def test_linear(ops):
    def body(ops, dims, data):
        dtype = data.draw(dtypes)
        n, k, m = data.draw(dims), data.draw(dims), data.draw(dims)
        x, W = data.draw(arrays(dtype, (n, k))), data.draw(arrays(dtype, (k, m)))
        b = data.draw(arrays(dtype, data.draw(st.sampled_from([(m,), (1, m)]))))
        expected = torch.mm(t(x), t(W)) + t(b)  # the notebook's torch.mm(features, W1) + B1
        check_op(ops.linear(x, W, b), expected, **naive.tolerance("linear", x, W, b))

    run(ops, body)


def test_neuron(ops):
    def body(ops, dims, data):
        dtype = data.draw(dtypes)
        shape = data.draw(st.lists(dims, max_size=2).map(tuple))
        x, w = data.draw(arrays(dtype, shape)), data.draw(arrays(dtype, shape))
        b = data.draw(arrays(dtype, data.draw(st.sampled_from([(), (1,), (1, 1)]))))
        expected = torch.sigmoid(torch.sum(t(x) * t(w)) + t(b))
        check_op(ops.neuron(x, w, b), expected, **naive.tolerance("neuron", x, w, b))

    run(ops, body)


def test_forward(ops):
    def body(ops, dims, data):
        dtype = data.draw(dtypes)
        widths = data.draw(st.lists(dims, min_size=2, max_size=4))
        x = data.draw(arrays(dtype, (data.draw(dims), widths[0])))
        layers = [
            (data.draw(arrays(dtype, (k_in, k_out))), data.draw(arrays(dtype, (1, k_out))))
            for k_in, k_out in zip(widths, widths[1:])
        ]
        h = t(x)
        for W, b in layers:
            h = torch.sigmoid(torch.addmm(t(b), h, t(W)))
        check_op(ops.forward(x, layers), h, **naive.tolerance("forward", x, layers))

    run(ops, body)


# -- where torch raises, numnet raises ---------------------------------------------


def check_exception(numnet_call, torch_call):
    """Both raise; numnet's error is also of the class torch raised (RuntimeError)."""
    with pytest.raises(Exception) as torch_error:
        torch_call()
    with pytest.raises(Exception) as numnet_error:
        numnet_call()
    assert isinstance(numnet_error.value, type(torch_error.value)), (type(numnet_error.value), type(torch_error.value))
    assert str(numnet_error.value).startswith("numnet.")


def test_bad_shapes_raise_like_torch(ops):
    def body(ops, dims, data):
        n, k1, k2, m = (data.draw(st.integers(1, 6)) for _ in range(4))
        if k1 == k2:
            k2 += 1
        a, b = np.ones((n, k1), np.float32), np.ones((k2, m), np.float32)
        bias = np.ones(m, np.float32)
        check_exception(lambda: ops.mm(a, b), lambda: torch.mm(t(a), t(b)))
        check_exception(lambda: ops.linear(a, b, bias), lambda: torch.addmm(t(bias), t(a), t(b)))
        layers = [(np.ones((k1, k2 + 1), np.float32), np.ones(k2 + 1, np.float32)), (b, bias)]  # layer 2 misfits
        check_exception(
            lambda: ops.forward(a, layers),
            lambda: torch.sigmoid(torch.mm(torch.sigmoid(torch.mm(t(a), t(layers[0][0]))), t(b))),
        )
        check_exception(lambda: ops.mm(a[0], b), lambda: torch.mm(t(a[0]), t(b)))
        check_exception(lambda: ops.mm(a, b.astype(np.float64)), lambda: torch.mm(t(a), t(b).double()))
        # dot: torch.sum(a * b) refuses shapes that do not broadcast; numnet refuses any mismatch.
        u, v = np.ones(k1 + 1), np.ones(k2 + 1)  # both longer than 1: they do not broadcast
        check_exception(lambda: ops.dot(u, v), lambda: torch.sum(t(u) * t(v)))

    run(ops, body)


def test_dtype_mix_raises_like_torch(ops):
    a32, a64 = np.ones((2, 2), np.float32), np.ones((2, 2), np.float64)
    check_exception(lambda: ops.mm(a32, a64), lambda: torch.mm(t(a32), t(a64)))
    check_exception(lambda: ops.linear(a32, a32, a64[0]), lambda: torch.addmm(t(a64[0]), t(a32), t(a32)))


def test_torch_cpu_tensors_are_read_without_copy():
    import numnet

    x = torch.randn(3, 4)
    W = torch.randn(4, 2)
    got = numnet.mm(x, W)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert_close(got, torch.mm(x, W).numpy(), **naive.tolerance("mm", x.numpy(), W.numpy()))
    with pytest.raises(TypeError, match="numnet.sigmoid: cannot read x as an array: .*requires grad"):
        numnet.sigmoid(torch.ones(2, requires_grad=True))
