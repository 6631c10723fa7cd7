"""numnet.forward with each activation (sigmoid, relu, tanh, none) against the float64
references in tests/naive.py, with numnet.testing's activation-aware bounds
(forward_bound: slopes 1/4, 1, 1, 1; rounding SIGMOID_ULP, 0, TANH_ULP, 0), on the
CPU and, small, on numnet.cuda; the corners each activation must keep; and a check
that the bound fails a wrong activation."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numnet
from numnet import testing
from numnet._checks import ACTIVATIONS
from numnet.testing import assert_close, compare

from . import naive
from .strategies import arrays, dtypes

activations = st.sampled_from(ACTIVATIONS)


pytestmark = pytest.mark.usefixtures("no_runtime_warnings")  # tests/conftest.py


def random_network(data, dtype, max_dim=9, corners=True):
    widths = data.draw(st.lists(st.integers(0, max_dim), min_size=2, max_size=4))
    x = data.draw(arrays(dtype, (data.draw(st.integers(0, max_dim)), widths[0]), corners))
    layers = [
        (data.draw(arrays(dtype, (k_in, k_out), corners)), data.draw(arrays(dtype, (k_out,), corners)))
        for k_in, k_out in zip(widths, widths[1:])
    ]
    return x, layers


@given(st.data(), dtypes, activations, activations)
def test_forward_with_activations_matches_reference(data, dtype, hidden, output):
    """Corners included (+-inf, NaN, +-1e30, subnormals): where a relu or linear layer
    passes an overflow on, the row is reported order-dependent, not compared."""
    x, layers = random_network(data, dtype)
    out = numnet.forward(x, layers, hidden=hidden, output=output)
    assert out.shape == (x.shape[0], layers[-1][0].shape[1]) and out.dtype == dtype
    expected = naive.rounded(naive.forward_act_ref(x, layers, hidden, output), dtype)
    assert_close(out, expected, **naive.tolerance("forward", x, layers, hidden, output))


@pytest.mark.parametrize("hidden, output", [("relu", "none"), ("tanh", "relu"), ("none", "tanh"), ("sigmoid", "relu")])
def test_cuda_forward_with_activations_matches_reference(hidden, output):
    import numnet.cuda

    if not numnet.cuda.is_available():
        pytest.skip("no CUDA GPU and no simulator")
    rng = np.random.default_rng(len(hidden + output))
    for dtype in (np.float32, np.float64):
        x = rng.normal(0, 3, (5, 4)).astype(dtype)
        x[0, :3] = [np.inf, np.nan, -0.0]
        layers = [(rng.normal(0, 1, (4, 3)).astype(dtype), rng.normal(0, 1, 3).astype(dtype)),
                  (rng.normal(0, 1, (3, 2)).astype(dtype), rng.normal(0, 1, 2).astype(dtype))]
        got = numnet.cuda.forward(x, layers, hidden=hidden, output=output)
        tolerance = naive.tolerance("forward", x, layers, hidden, output)
        assert_close(got, numnet.forward(x, layers, hidden=hidden, output=output), **tolerance)
        assert_close(got, naive.rounded(naive.forward_act_ref(x, layers, hidden, output), dtype), **tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_corners(ops, dtype):
    """One unit, W = 1 and b = -0.0, so z = x exactly: out = f(x). (Not its sign of zero:
    sums start from +0, so z = +0 for x = -0.)"""
    z = np.array([[-2.0], [-0.0], [0.0], [3.0], [np.inf], [-np.inf], [np.nan], [20.0], [-20.0]], dtype)
    layer = [(np.ones((1, 1), dtype), np.array([-0.0], dtype))]
    relu = ops.forward(z, layer, output="relu")[:, 0]
    assert relu.tolist()[:6] == [0.0, 0.0, 0.0, 3.0, np.inf, 0.0] and np.isnan(relu[6])
    tanh = ops.forward(z, layer, output="tanh")[:, 0]
    assert tanh[4] == 1 and tanh[5] == -1 and np.isnan(tanh[6]) and tanh[7] == 1 and tanh[8] == -1
    assert tanh[1] == tanh[2] == 0
    none = ops.forward(z, layer, output="none")[:, 0]
    assert none[:6].tolist() == z[:6, 0].tolist() and np.isnan(none[6])


def test_default_activations_are_the_notebooks_sigmoid():
    rng = np.random.default_rng(1)
    x, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    assert numnet.forward(x, [(W, b)]).tobytes() == numnet.forward(x, [(W, b)], "sigmoid", "sigmoid").tobytes()
    assert numnet.forward(x, [(W, b)], output="none").tobytes() == numnet.linear(x, W, b).tobytes()


@pytest.mark.parametrize("keyword", ["hidden", "output"])
def test_unknown_activation_is_refused(ops, keyword):
    name = "numnet.cuda.forward" if ops is not numnet else "numnet.forward"
    with pytest.raises(ValueError, match=rf"^{name}: {keyword}='gelu' is not an activation; "
                                         r"choose one of 'sigmoid', 'relu', 'tanh', 'none'$"):
        ops.forward(np.ones((1, 2)), [(np.ones((2, 2)), np.ones(2))], **{keyword: "gelu"})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_within_its_stated_ulp(dtype):
    """TANH_ULP = 4 against the exact value (numpy's float64 tanh, rounded): numnet's tanh is
    libm's, documented within 2 ULP; measured here at most 2."""
    z = np.concatenate([np.linspace(-20, 20, 40001), np.linspace(-1e-3, 1e-3, 2001)]).astype(dtype)[:, None]
    got = numnet.forward(z, [(np.ones((1, 1), dtype), np.array([-0.0], dtype))], output="tanh")
    exact = naive.rounded(np.tanh(z.astype(np.float64)), dtype)
    report = compare(got, exact, ulp=testing.TANH_ULP)
    assert report.ok and report.max_ulp <= 2, report


def test_the_bound_fails_a_wrong_activation():
    """The bound has no room for relu where there should be none: with negative
    pre-activations, forward(relu) against the linear network's reference fails."""
    rng = np.random.default_rng(2)
    x, W, b = rng.normal(size=(6, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
    got = numnet.forward(x, [(W, b)], output="relu")
    wrong = naive.forward_act_ref(x, [(W, b)], output="none")
    report = compare(got, wrong, **naive.tolerance("forward", x, [(W, b)], "sigmoid", "relu"))
    assert not report.ok and report.n_mismatched == int((wrong < 0).sum())
