"""The CPU ops against the float64 references in tests/naive.py, with the tolerances of
numnet.testing, over hypothesis-chosen shapes, dtypes and values."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numnet
from numnet.testing import assert_close

from . import naive
from .strategies import arrays, dims, dtypes, layouts, notebook_network, notebook_neuron


@pytest.fixture(autouse=True)
def no_runtime_warnings():
    """numnet prints no RuntimeWarning for any input: make any warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# -- the notebook -------------------------------------------------------------------


def test_notebook_neuron_by_sum_and_by_matrix_product():
    features, weights, bias = notebook_neuron()
    output1 = numnet.neuron(features, weights, bias)
    output2 = numnet.sigmoid(numnet.linear(features, weights.reshape(5, 1), bias))
    assert output1.shape == output2.shape == (1, 1)
    assert output1.dtype == output2.dtype == np.float32
    # torch 2.13's two values, bit for bit: torch.sum adds the five products as
    # (((p0 + p4) + p1) + p2) + p3 (numnet.sums), torch.mm and numnet.mm left to right.
    assert output1.item() == 0.15950655937194824
    assert output2.item() == 0.15950657427310944
    assert np.nextafter(output1, np.float32(1)) == output2  # one ULP apart
    assert f"{output1.item():.4f}" == f"{output2.item():.4f}" == "0.1595"
    p = features.reshape(-1) * weights.reshape(-1)
    assert numnet.dot(features, weights) == (((p[0] + p[4]) + p[1]) + p[2]) + p[3]


def test_notebook_two_layer_network():
    x, W1, W2, B1, B2 = notebook_network()
    output = numnet.forward(x, [(W1, B1), (W2, B2)])
    assert output.shape == (1, 1) and output.dtype == np.float32
    assert output.item() == 0.3170831501483917  # torch 2.13, addmm + sigmoid, bit for bit
    assert f"{output.item():.4f}" == "0.3171"
    hidden = numnet.sigmoid(numnet.linear(x, W1, B1))
    assert numnet.sigmoid(numnet.linear(hidden, W2, B2)).item() == output.item()


# -- values against the references ---------------------------------------------------


@st.composite
def matrix_pair(draw, corners=True):
    dtype = draw(dtypes)
    n, k, m = draw(dims), draw(dims), draw(dims)
    return draw(arrays(dtype, (n, k), corners)), draw(arrays(dtype, (k, m), corners))


@given(st.data())
def test_sigmoid_matches_reference(data):
    dtype = data.draw(dtypes)
    shape = data.draw(st.lists(dims, max_size=3).map(tuple))
    x = data.draw(arrays(dtype, shape))
    out = numnet.sigmoid(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert_close(out, naive.rounded(naive.sigmoid_ref(x), dtype), **naive.tolerance("sigmoid", x))


@given(matrix_pair())
def test_mm_matches_reference(ab):
    a, b = ab
    value, _ = naive.mm_ref(a, b)
    assert_close(numnet.mm(a, b), naive.rounded(value, a.dtype), **naive.tolerance("mm", a, b))


@given(st.data())
def test_dot_matches_reference(data):
    dtype = data.draw(dtypes)
    shape = data.draw(st.lists(dims, max_size=3).map(tuple))
    a, b = data.draw(arrays(dtype, shape)), data.draw(arrays(dtype, shape))
    value, _ = naive.dot_ref(a, b)
    out = numnet.dot(a, b)
    assert out.shape == () and out.dtype == dtype
    assert_close(out, naive.rounded(value, dtype), **naive.tolerance("dot", a, b))


@given(matrix_pair(), st.booleans(), st.data())
def test_linear_matches_reference(xW, row_bias, data):
    x, W = xW
    m = W.shape[1]
    b = data.draw(arrays(x.dtype, (1, m) if row_bias else (m,)))
    value, _ = naive.linear_ref(x, W, b)
    assert_close(numnet.linear(x, W, b), naive.rounded(value, x.dtype), **naive.tolerance("linear", x, W, b))


@given(st.data())
def test_neuron_matches_reference(data):
    dtype = data.draw(dtypes)
    shape = data.draw(st.lists(dims, max_size=2).map(tuple))
    x, w = data.draw(arrays(dtype, shape)), data.draw(arrays(dtype, shape))
    b = data.draw(arrays(dtype, data.draw(st.sampled_from([(), (1,), (1, 1)]))))
    value, _ = naive.neuron_ref(x, w, b)
    out = numnet.neuron(x, w, b)
    assert out.shape == b.shape and out.dtype == dtype
    assert_close(out, naive.rounded(value, dtype), **naive.tolerance("neuron", x, w, b))


@given(st.data())
def test_forward_matches_reference(data):
    dtype = data.draw(dtypes)
    widths = data.draw(st.lists(dims, min_size=2, max_size=5))
    batch = data.draw(dims)
    x = data.draw(arrays(dtype, (batch, widths[0])))
    layers = [
        (data.draw(arrays(dtype, (k_in, k_out))), data.draw(arrays(dtype, (k_out,))))
        for k_in, k_out in zip(widths, widths[1:])
    ]
    out = numnet.forward(x, layers)
    assert out.shape == (batch, widths[-1]) and out.dtype == dtype
    assert_close(out, naive.rounded(naive.forward_ref(x, layers), dtype), **naive.tolerance("forward", x, layers))


# -- layouts, read-only inputs, inputs left alone -----------------------------------------


@given(matrix_pair())
def test_every_layout_gives_the_same_bits_and_leaves_inputs_alone(ab):
    a, b = ab
    bias = np.linspace(-1, 1, b.shape[1]).astype(a.dtype)
    expected = {
        "mm": numnet.mm(a, b),
        "linear": numnet.linear(a, b, bias),
        "forward": numnet.forward(a, [(b, bias)]),
        "sigmoid": numnet.sigmoid(a),
        "dot": numnet.dot(a, a),
    }
    for name, (va, vb) in {k: (layouts(a)[k], layouts(b)[k]) for k in layouts(a)}.items():
        before = (va.copy(), vb.copy())
        got = {
            "mm": numnet.mm(va, vb),
            "linear": numnet.linear(va, vb, bias),
            "forward": numnet.forward(va, [(vb, bias)]),
            "sigmoid": numnet.sigmoid(va),
            "dot": numnet.dot(va, va),
        }
        for op in expected:
            assert got[op].tobytes() == expected[op].tobytes(), (op, name)
        assert va.tobytes() == before[0].tobytes() and vb.tobytes() == before[1].tobytes()


# -- the corners on purpose ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_saturates_without_warnings(dtype):
    x = np.array([-1000, -100, 0, 100, 1000, -np.inf, np.inf, np.nan], dtype)
    out = numnet.sigmoid(x)
    assert out[0] == 0 and out[4] == 1 and out[2] == 0.5
    assert out[5] == 0 and out[6] == 1 and np.isnan(out[7])
    assert numnet.sigmoid(dtype(-1000)).item() == 0.0  # 0-d in, 0-d out


@pytest.mark.parametrize("dtype, low", [(np.float32, -110.0), (np.float64, -760.0)])
def test_sigmoid_in_the_subnormal_band(dtype, low):
    """Where sigma(x) is subnormal, e^-x has overflowed: numnet returns 0 like torch, off
    by less than the smallest normal number (numnet.testing's atol for sigmoid)."""
    x = np.linspace(low, low + 40, 4001).astype(dtype)
    out = numnet.sigmoid(x)
    assert (out[:10] == 0).all()
    assert_close(out, naive.rounded(naive.sigmoid_ref(x), dtype), **naive.tolerance("sigmoid", x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_dimensions_behave_as_in_torch(dtype):
    assert numnet.mm(np.ones((0, 3), dtype), np.ones((3, 2), dtype)).shape == (0, 2)
    assert numnet.mm(np.ones((2, 3), dtype), np.ones((3, 0), dtype)).shape == (2, 0)
    zeros = numnet.mm(np.ones((2, 0), dtype), np.ones((0, 4), dtype))
    assert zeros.shape == (2, 4) and not zeros.any()
    assert numnet.dot(np.ones(0, dtype), np.ones(0, dtype)).item() == 0.0
    assert numnet.sigmoid(np.ones((0, 5), dtype)).shape == (0, 5)
    # k = 0: the layer adds only its bias.
    out = numnet.forward(np.ones((3, 0), dtype), [(np.ones((0, 2), dtype), np.zeros(2, dtype))])
    assert (out == 0.5).all()


def test_nan_and_inf_propagate():
    a = np.array([[np.nan, 1.0], [np.inf, 1.0], [np.inf, -np.inf]], np.float32)
    b = np.array([[1.0], [1.0]], np.float32)
    out = numnet.mm(a, b)
    assert np.isnan(out[0, 0]) and out[1, 0] == np.inf and np.isnan(out[2, 0])
    assert np.isnan(numnet.mm(np.array([[np.inf]]), np.array([[0.0]]))[0, 0])  # inf * 0


def test_float32_accumulates_in_float32_on_purpose():
    a = np.array([1e8, 1.0, -1e8], np.float32)
    ones = np.ones(3, np.float32)
    # Left to right in float32: 1e8 + 1 rounds to 1e8, so the 1 is lost. float64 keeps it.
    assert numnet.dot(a, ones).item() == 0.0
    assert numnet.dot(a.astype(np.float64), ones.astype(np.float64)).item() == 1.0
    assert numnet.mm(a[None, :], ones[:, None]).item() == 0.0


def test_lists_and_numbers_are_read_as_numpy_reads_them():
    out = numnet.mm([[1.0, 2.0]], [[3.0], [4.0]])
    assert out.dtype == np.float64 and out.tolist() == [[11.0]]
    assert numnet.dot([1.0, 2.0], [3.0, 4.0]).item() == 11.0
    assert numnet.sigmoid(0.0).item() == 0.5
    assert numnet.forward([[0.0]], [([[1.0]], [0.0])]).tolist() == [[0.5]]


def test_results_are_new_arrays():
    x = np.zeros((2, 2), np.float32)
    out = numnet.sigmoid(x)
    out[0, 0] = 7
    assert x[0, 0] == 0
