"""numnet.forward with each activation (sigmoid, relu, tanh, none) against the float64
references in tests/naive.py, with numnet.testing's activation-aware bounds
(forward_bound: slopes 1/4, 1, 1, 1; rounding SIGMOID_ULP, 0, TANH_ULP, 0), on the
CPU and, small, on numnet.cuda; the corners each activation must keep; and a check
that the bound fails a wrong activation."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numnet
from numnet import elementwise, testing
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
        layers = [
            (rng.normal(0, 1, (4, 3)).astype(dtype), rng.normal(0, 1, 3).astype(dtype)),
            (rng.normal(0, 1, (3, 2)).astype(dtype), rng.normal(0, 1, 2).astype(dtype)),
        ]
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
    with pytest.raises(
        ValueError,
        match=rf"^{name}: {keyword}='gelu' is not an activation; "
        r"choose one of 'sigmoid', 'relu', 'tanh', 'none'$",
    ):
        ops.forward(np.ones((1, 2)), [(np.ones((2, 2)), np.ones(2))], **{keyword: "gelu"})


@numba.njit
def _each(name, x):
    """numnet.elementwise's exp, log or tanh (name 0, 1, 2) of every element of x."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        if name == 0:
            out[i] = elementwise.exp(x[i])
        elif name == 1:
            out[i] = elementwise.log(x[i])
        else:
            out[i] = elementwise.tanh(x[i])
    return out


def _exact(fn, x, dtype):
    """fn in long double (64-bit significand on x86-64), rounded to dtype: within 0.5 ULP
    + 2^-11 ULP of float64's exact value, so a 1-ULP check has room for nothing else."""
    with np.errstate(all="ignore"):
        return fn(x.astype(np.longdouble)).astype(dtype)


def _inputs(dtype, low, high, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.uniform(low, high, 200_000), rng.uniform(-1, 1, 50_000), rng.uniform(-1e-3, 1e-3, 20_000)]
    ).astype(dtype)


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs an 80-bit long double (x86-64)")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_log_tanh_within_one_ulp(dtype):
    """numnet's own e^x (float64; float32 is glibc's expf), log x and tanh x, one source on
    both devices (numnet.elementwise): within 1 ULP of the exact value, the figure
    numnet.testing's EXP_ULP, LOG_ULP and TANH_ULP count on; inf, 0, NaN where due."""
    finfo = np.finfo(dtype)
    big = float(np.log(finfo.max))
    cases = [
        (0, np.exp, _inputs(dtype, np.log(finfo.smallest_subnormal) * 1.01, big * 1.01, 1)),
        (1, np.log, np.abs(_inputs(dtype, -3, 3, 2)) * dtype(10) ** _inputs(dtype, -30, 30, 3)),
        (2, np.tanh, _inputs(dtype, -25, 25, 4)),
    ]
    for name, fn, x in cases:
        got, exact = _each(name, x), _exact(fn, x, dtype)
        normal = np.isfinite(exact) & (np.abs(exact) >= finfo.tiny)
        report = compare(got[normal], exact[normal], ulp=1)
        assert report.ok, (fn.__name__, report)
        assert np.array_equal(got[~normal], exact[~normal], equal_nan=True) or fn is np.exp, fn.__name__
    corners = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0], dtype)
    with np.errstate(all="ignore"):
        for name, fn in ((0, np.exp), (1, np.log), (2, np.tanh)):
            got, want = _each(name, corners), fn(corners)
            number = ~np.isnan(want)  # (a NaN's sign bit means nothing)
            assert np.array_equal(got, want, equal_nan=True), fn
            assert np.array_equal(np.signbit(got[number]), np.signbit(want[number])), fn
    assert _each(1, np.ones(1, dtype))[0] == 0 and _each(0, np.zeros(1, dtype))[0] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_within_its_stated_ulp(dtype):
    """TANH_ULP = 4 against the exact value (numpy's float64 tanh, rounded), through
    numnet.forward: numnet's tanh (numnet.elementwise.tanh64) is within 1 ULP
    (test_exp_log_tanh_within_one_ulp); here at most 2 against float64 numpy's."""
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
