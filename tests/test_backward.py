"""numnet.log_softmax, softmax, loss_and_grads and SGD, without torch: against the float64
references in tests/naive.py (the chain rule written out in NumPy) and against central
finite differences, with numnet.testing's bounds (grads_tolerance, softmax_tolerance,
stated and justified there); every bad input and its message; NaN; empty batches; and
the same on numnet.cuda (in Numba's CUDA simulator on CPU machines, at small sizes).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import numnet
from numnet._checks import ACTIVATIONS, LOSSES
from numnet.commands.train import init_layers
from numnet.testing import assert_close, compare

from . import naive
from .strategies import arrays, dtypes

f32, f64 = np.float32, np.float64


pytestmark = pytest.mark.usefixtures("no_runtime_warnings")  # tests/conftest.py


def prefix(ops):
    return "numnet.cuda." if ops is not numnet else "numnet."


# -- networks hypothesis chooses -----------------------------------------------------------


@st.composite
def networks(draw, max_dim=6, max_depth=3, dtype=None, activations=ACTIVATIONS, losses=LOSSES):
    """(x, target, layers, hidden, output, loss): weights in [-2, 2] / sqrt(fan-in) (a
    trained network's scale), inputs and mse targets in [-2, 2], zeros and empty
    dimensions included; cross_entropy targets of a random integer dtype."""
    dtype = dtype or draw(dtypes)
    loss = draw(st.sampled_from(losses))
    depth = draw(st.integers(1, max_depth))
    widths = draw(st.lists(st.integers(0, max_dim), min_size=depth + 1, max_size=depth + 1))
    if loss == "cross_entropy":
        widths[-1] = max(widths[-1], 1)
    n = draw(st.integers(0, max_dim))
    width = 32 if dtype == f32 else 64

    def block(shape, scale=1.0):
        a = draw(hnp.arrays(dtype, shape, elements=st.floats(-2, 2, width=width)))
        return (a * dtype(scale)).astype(dtype)

    x = block((n, widths[0]))
    layers = []
    for k_in, k_out in zip(widths, widths[1:]):
        bias_shape = draw(st.sampled_from([(k_out,), (1, k_out)]))
        layers.append((block((k_in, k_out), 1 / np.sqrt(max(k_in, 1))), block(bias_shape)))
    if loss == "mse":
        target = block((n, widths[-1]))
    else:
        int_dtype = draw(st.sampled_from([np.int64, np.int32, np.int8, np.uint8]))
        target = draw(hnp.arrays(int_dtype, (n,), elements=st.integers(0, widths[-1] - 1)))
    hidden, output = draw(st.sampled_from(activations)), draw(st.sampled_from(activations))
    return x, target, layers, hidden, output, loss


def check_against_reference(got, args):
    """Shapes and dtypes as the layers', then loss and grads within grads_tolerance of
    the float64 reference (rounded to the dtype)."""
    loss, grads = got
    x, target, layers = args[:3]
    dtype = x.dtype
    assert isinstance(loss, np.ndarray) and loss.shape == () and loss.dtype == dtype
    assert len(grads) == len(layers)
    for (dW, db), (W, b) in zip(grads, layers):
        assert dW.shape == W.shape and db.shape == b.shape and dW.dtype == db.dtype == dtype
    ref_loss, ref_grads = naive.loss_and_grads_ref(*args)
    tolerance = naive.tolerance("loss_and_grads", *args)
    assert_close(loss, naive.rounded(ref_loss, dtype), name="loss", **tolerance["loss"])
    for i, ((dW, db), (rW, rb), (tW, tb)) in enumerate(zip(grads, ref_grads, tolerance["grads"]), start=1):
        assert_close(dW, naive.rounded(rW, dtype), name=f"dW{i}", **tW)
        assert_close(db, naive.rounded(rb, dtype), name=f"db{i}", **tb)


@given(networks())
def test_loss_and_grads_match_reference(net):
    check_against_reference(numnet.loss_and_grads(*net), net)


@given(networks(max_dim=3, max_depth=2))
@settings(max_examples=6)
def test_cuda_loss_and_grads_match_reference_and_cpu(net):
    from numnet import cuda

    if not cuda.is_available():
        pytest.skip("no CUDA GPU and no simulator")
    got = cuda.loss_and_grads(*net)
    check_against_reference(got, net)
    tolerance = naive.tolerance("loss_and_grads", *net)
    want = numnet.loss_and_grads(*net)
    for (dW, db), (cW, cb), (tW, tb) in zip(got[1], want[1], tolerance["grads"]):
        assert_close(dW, cW, **tW)
        assert_close(db, cb, **tb)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("hidden, output", [("sigmoid", "none"), ("tanh", "sigmoid"), ("none", "tanh")])
def test_gradients_match_finite_differences(loss, hidden, output):
    """An independent check of the chain rule (and of naive's): central differences in
    float64, (l(p + h) - l(p - h)) / 2h with h = 1e-6, agree with every gradient entry
    within 1e-7 (1 + |g|): the difference's truncation error is O(h^2 l''') ~ 1e-12 and
    its rounding O(u |l| / h) ~ 1e-10 for these smooth activations."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5, 3))
    layers = [(rng.normal(size=(3, 4)) / 2, rng.normal(size=4)), (rng.normal(size=(4, 3)) / 2, rng.normal(size=(1, 3)))]
    target = rng.normal(size=(5, 3)) if loss == "mse" else np.array([0, 2, 1, 1, 0])
    _, grads = numnet.loss_and_grads(x, target, layers, hidden, output, loss)
    h = 1e-6
    for (W, b), (dW, db) in zip(layers, grads):
        for p, g in ((W, dW), (b, db)):
            for index in np.ndindex(p.shape):
                saved = p[index]
                p[index] = saved + h
                up = numnet.loss_and_grads(x, target, layers, hidden, output, loss)[0]
                p[index] = saved - h
                down = numnet.loss_and_grads(x, target, layers, hidden, output, loss)[0]
                p[index] = saved
                assert abs((up - down) / (2 * h) - g[index]) <= 1e-7 * (1 + abs(g[index])), index


def test_the_tolerance_catches_plausible_bugs():
    """The bounds are tight enough to fail a wrong gradient: an mse averaged over rows
    instead of elements, a cross-entropy gradient without the softmax, a sigmoid
    derivative of y instead of y (1 - y) all fail; float32 gradients are allowed about
    one part in 100,000 here (the median bound), not more."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 5)).astype(f32)
    layers = [
        (rng.normal(size=(5, 6)).astype(f32) / 2, rng.normal(size=6).astype(f32)),
        (rng.normal(size=(6, 4)).astype(f32) / 2, rng.normal(size=4).astype(f32)),
    ]
    t_mse, t_ce = rng.normal(size=(8, 4)).astype(f32), rng.integers(0, 4, 8)
    for target, loss in ((t_mse, "mse"), (t_ce, "cross_entropy")):
        args = (x, target, layers, "sigmoid", "none", loss)
        _, grads = numnet.loss_and_grads(*args)
        tolerance = naive.tolerance("loss_and_grads", *args)
        dW2, ref = grads[1][0], naive.loss_and_grads_ref(*args)[1][1][0]
        assert compare(dW2, naive.rounded(ref, f32), **tolerance["grads"][1][0]).ok
        assert np.median(tolerance["grads"][1][0]["bound"] / np.abs(ref)) < 3e-5
        if loss == "mse":  # mean over rows only: dW2 times the output width
            assert not compare(dW2, naive.rounded(ref * 4, f32), **tolerance["grads"][1][0]).ok
        else:  # (onehot) / n instead of (softmax - onehot) / n
            hs = naive.forward_layers_ref(x, layers, "sigmoid", "none")
            onehot = np.zeros((8, 4))
            onehot[np.arange(8), target] = 1
            wrong = naive.matmul_loop(hs[1].T, -onehot / 8)
            assert not compare(dW2, naive.rounded(wrong, f32), **tolerance["grads"][1][0]).ok
    # sigmoid' written as y instead of y (1 - y): the first layer's gradient moves.
    args = (x, t_mse, layers, "sigmoid", "none", "mse")
    hs = naive.forward_layers_ref(x, layers, "sigmoid", "none")
    delta2 = 2 * (hs[2] - t_mse) / t_mse.size
    wrong = naive.matmul_loop(x.T, naive.matmul_loop(delta2, layers[1][0].T.astype(f64)) * hs[1])
    dW1 = numnet.loss_and_grads(*args)[1][0][0]
    assert not compare(dW1, naive.rounded(wrong, f32), **naive.tolerance("loss_and_grads", *args)["grads"][0][0]).ok


# -- softmax and log_softmax ------------------------------------------------------------------


@given(st.data())
def test_softmax_and_log_softmax_match_reference(data):
    """Over the last axis of 0- to 3-D arrays, corners included (a NaN or +inf makes its
    row NaN, as torch; -inf entries get probability 0)."""
    dtype = data.draw(dtypes)
    shape = data.draw(st.lists(st.integers(0, 6), max_size=3).map(tuple))
    x = data.draw(arrays(dtype, shape))
    for name, reference in (("log_softmax", naive.log_softmax_ref), ("softmax", naive.softmax_ref)):
        got = getattr(numnet, name)(x)
        assert got.shape == x.shape and got.dtype == dtype
        expected = naive.rounded(reference(x), dtype)
        assert_close(got, expected, name=name, **naive.tolerance(name, x))


def test_softmax_is_stable(ops):
    """Subtracting the row's max: no overflow for huge logits, no 0/0 for very negative ones."""
    x = np.array([[1000.0, 1000.0], [-1000.0, -1000.0], [0.0, 1000.0], [-1e308, 1e308]])
    assert np.allclose(ops.log_softmax(x)[:2], np.log(0.5), rtol=0, atol=1e-15)
    assert ops.softmax(x).tolist() == [[0.5, 0.5], [0.5, 0.5], [0.0, 1.0], [0.0, 1.0]]
    assert ops.log_softmax(x)[2].tolist() == [-1000.0, 0.0]
    rows = ops.log_softmax(np.array([[np.nan, 1.0], [np.inf, 1.0], [-np.inf, -np.inf], [-np.inf, 0.0]], f32))
    assert np.isnan(rows[:3]).all() and rows[3].tolist() == [-np.inf, 0.0]
    assert ops.log_softmax(np.float32(3.0)).tolist() == 0.0 and ops.softmax(np.ones((2, 0))).shape == (2, 0)


def test_cuda_softmax_matches_cpu():
    from numnet import cuda

    if not cuda.is_available():
        pytest.skip("no CUDA GPU and no simulator")
    rng = np.random.default_rng(4)
    for dtype in (f32, f64):
        x = (rng.normal(size=(3, 2, 7)) * 30).astype(dtype)
        for name in ("log_softmax", "softmax"):
            tolerance = naive.tolerance(name, x)
            assert_close(getattr(cuda, name)(x), getattr(numnet, name)(x), **tolerance)


# -- corners: empty batches, NaN, layouts ----------------------------------------------------


@pytest.mark.parametrize("loss", LOSSES)
def test_empty_batch_gives_nan_loss_and_zero_grads(ops, loss):
    """As torch: the mean of nothing is NaN; a sum over no rows is 0."""
    layers = [(np.ones((3, 2), f32), np.ones(2, f32))]
    target = np.ones((0, 2), f32) if loss == "mse" else np.zeros(0, np.int64)
    value, [(dW, db)] = ops.loss_and_grads(np.ones((0, 3), f32), target, layers, "relu", "none", loss)
    assert np.isnan(value) and value.dtype == f32
    assert dW.shape == (3, 2) and not dW.any() and db.shape == (2,) and not db.any()


def nan_pattern(grads):
    return [(np.isnan(dW), np.isnan(db)) for dW, db in grads]


@pytest.mark.parametrize("hidden", ["relu", "sigmoid"])
def test_nan_propagates_as_documented(ops, hidden):
    """NaN is not an error: it propagates as in torch. A NaN input row makes the loss and
    every gradient NaN. A NaN mse target makes the loss NaN and its output column's
    last-layer gradients NaN, and reaches earlier gradients through every unit except
    relu units that are off (relu's gradient selects 0 there, as torch's does): the
    same NaN entries as the reference's, and no others. (numnet.cuda: relu only, the
    simulator is slow; parity/ checks every activation against torch.)"""
    if ops is not numnet and hidden != "relu":
        pytest.skip("numnet.cuda runs the relu case only")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3))
    layers = [(rng.normal(size=(3, 5)), rng.normal(size=5)), (rng.normal(size=(5, 2)), rng.normal(size=2))]
    bad_x = x.copy()
    bad_x[1, 0] = np.nan
    for loss, target in (("mse", rng.normal(size=(4, 2))), ("cross_entropy", np.array([0, 1, 1, 0]))):
        value, grads = ops.loss_and_grads(bad_x, target, layers, hidden, "none", loss)
        assert np.isnan(value) and all(np.isnan(g).all() for pair in grads for g in pair)
    target = rng.normal(size=(4, 2))
    target[2, 1] = np.nan
    value, grads = ops.loss_and_grads(x, target, layers, hidden, "none", "mse")
    ref_value, ref_grads = naive.loss_and_grads_ref(x, target, layers, hidden, "none", "mse")
    assert np.isnan(value) and np.isnan(grads[1][0][:, 1]).all() and np.isfinite(grads[1][0][:, 0]).all()
    for got, want in zip(nan_pattern(grads), nan_pattern(ref_grads)):
        assert all((g == w).all() for g, w in zip(got, want))


def test_layouts_and_read_only_inputs_give_the_same_bits_and_stay_untouched():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(5, 4)).astype(f32)
    W1, b1 = rng.normal(size=(4, 3)).astype(f32), rng.normal(size=3).astype(f32)
    W2, b2 = rng.normal(size=(3, 2)).astype(f32), rng.normal(size=(1, 2)).astype(f32)
    target = np.array([0, 1, 1, 0, 1], np.uint8)
    value, grads = numnet.loss_and_grads(x, target, [(W1, b1), (W2, b2)], "tanh", "none", "cross_entropy")
    x_f, W1_t = np.asfortranarray(x), np.ascontiguousarray(W1.T).T
    frozen = [a.copy() for a in (x, W1, b1, W2, b2)]
    for a in frozen:
        a.flags.writeable = False
    for args in ((x_f, W1_t, b1, W2, b2), frozen):
        before = [a.copy() for a in args]
        layers = [(args[1], args[2]), (args[3], args[4])]
        v, g = numnet.loss_and_grads(args[0], target, layers, "tanh", "none", "cross_entropy")
        assert v.tobytes() == value.tobytes()
        assert all(a.tobytes() == b.tobytes() for p, q in zip(g, grads) for a, b in zip(p, q))
        assert all(a.tobytes() == b.tobytes() for a, b in zip(args, before))
    assert grads[1][1].shape == (1, 2)  # db shaped like its b


def test_cuda_keeps_gpu_inputs_on_the_gpu_and_matches_cpu_bits_in_the_simulator():
    """In the simulator (the CPU's fused products; elementwise code unfused, as on the
    CPU), a relu network's mse gradients are the CPU's bit for bit; GPU inputs give GPU
    results."""
    from numnet import cuda

    if not cuda.is_available():
        pytest.skip("no CUDA GPU and no simulator")
    from numba import cuda as numba_cuda

    rng = np.random.default_rng(8)
    x, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    layers = [(rng.normal(size=(3, 5)), rng.normal(size=5)), (rng.normal(size=(5, 2)), rng.normal(size=(1, 2)))]
    host = cuda.loss_and_grads(x, t, layers, "relu", "none", "mse")
    cpu = numnet.loss_and_grads(x, t, layers, "relu", "none", "mse")
    if cuda.on_simulator():
        assert all(a.tobytes() == b.tobytes() for p, q in zip(host[1], cpu[1]) for a, b in zip(p, q))
    device = cuda.loss_and_grads(numba_cuda.to_device(x), t, layers, "relu", "none", "mse")
    assert getattr(device[0], "__cuda_ndarray__", False) and getattr(device[1][0][0], "__cuda_ndarray__", False)
    assert device[0].copy_to_host().tobytes() == host[0].tobytes()
    assert device[1][1][1].copy_to_host().tobytes() == host[1][1][1].tobytes()


# -- bad input: one-line errors, raised before any work --------------------------------------


def net(dtype=f32):
    return np.ones((4, 3), dtype), [
        (np.ones((3, 5), dtype), np.ones(5, dtype)),
        (np.ones((5, 2), dtype), np.ones(2, dtype)),
    ]


BAD_TARGETS = {
    "target too large": (
        np.array([0, 1, 2, 1]),
        "cross_entropy",
        IndexError,
        "loss_and_grads: target 2 at position 2 is out of range for 2 classes: class indices must be in [0, 2)",
    ),
    "negative target": (
        np.array([0, -1, 1, 1], np.int8),
        "cross_entropy",
        IndexError,
        "loss_and_grads: target -1 at position 1 is out of range for 2 classes",
    ),
    "float class target": (
        np.zeros(4, f32),
        "cross_entropy",
        TypeError,
        "loss_and_grads: cross_entropy target must be integer class indices, got float32; "
        "class probabilities are not supported, use one-hot targets with loss='mse'",
    ),
    "bool class target": (
        np.zeros(4, bool),
        "cross_entropy",
        TypeError,
        "loss_and_grads: cross_entropy target must be integer class indices, got bool",
    ),
    "2-D class target": (
        np.zeros((4, 1), np.int64),
        "cross_entropy",
        ValueError,
        "loss_and_grads: cross_entropy target must be 1-D, one class index per row of x, got shape (4, 1)",
    ),
    "class target batch": (
        np.zeros(3, np.int64),
        "cross_entropy",
        ValueError,
        "loss_and_grads: cross_entropy target of shape (3,) does not match the batch: "
        "x has 4 rows, so target must have shape (4,)",
    ),
    "mse target shape": (
        np.zeros((4, 1), f32),
        "mse",
        ValueError,
        "loss_and_grads: mse target of shape (4, 1) does not match the output's shape (4, 2): "
        "they must be equal (numnet does not broadcast a target)",
    ),
    "mse target dtype": (
        np.zeros((4, 2), f64),
        "mse",
        TypeError,
        "loss_and_grads: mse target is float64, the network computes in float32",
    ),
    "mse integer target": (
        np.zeros((4, 2), np.int64),
        "mse",
        TypeError,
        "loss_and_grads: mse target is int64, the network computes in float32",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TARGETS))
def test_bad_targets_are_refused(ops, case):
    target, loss, kind, message = BAD_TARGETS[case]
    x, layers = net()
    with pytest.raises(kind) as error:
        ops.loss_and_grads(x, target, layers, loss=loss)
    text = str(error.value)
    assert text.startswith(prefix(ops) + message) and "\n" not in text, text


# Gradients that do not fit net()'s layers.
ONE_LAYER = [(np.ones((3, 5), f32), np.ones(5, f32))]
WRONG_BIAS = ONE_LAYER + [(np.ones((5, 2), f32), np.ones(3, f32))]
WRONG_DTYPE = [(np.ones((3, 5), f64), np.ones(5, f32)), (np.ones((5, 2), f32), np.ones(2, f32))]


@pytest.mark.parametrize(
    "call, kind, message",
    [
        (
            lambda ops, x, L: ops.loss_and_grads(x, np.ones((4, 2), f32), L, loss="hinge"),
            ValueError,
            "loss_and_grads: loss='hinge' is not a loss; choose one of 'mse', 'cross_entropy'",
        ),
        (
            lambda ops, x, L: ops.loss_and_grads(x, np.ones((4, 2), f32), L, hidden="gelu"),
            ValueError,
            "loss_and_grads: hidden='gelu' is not an activation",
        ),
        (
            lambda ops, x, L: ops.loss_and_grads(x, np.ones((4, 2), f32), L[::-1]),
            ValueError,
            "loss_and_grads: layer 1: mat1 and mat2 shapes cannot be multiplied (4x3 and 5x2)",
        ),
        (
            lambda ops, x, L: ops.loss_and_grads(x, np.ones((4, 2), f32), []),
            ValueError,
            "loss_and_grads: layers is empty",
        ),
        (
            lambda ops, x, L: ops.loss_and_grads(x.astype(f64), np.ones((4, 2)), L),
            TypeError,
            "loss_and_grads: expected all arrays to have the same dtype, got float64 and float32",
        ),
        (
            lambda ops, x, L: ops.log_softmax(np.ones(3, np.int64)),
            TypeError,
            "log_softmax: expected float32 or float64 arrays, got int64",
        ),
        (lambda ops, x, L: ops.SGD(L, lr=-0.1), ValueError, "SGD: invalid lr -0.1: it must be a finite number >= 0"),
        (lambda ops, x, L: ops.SGD(L, lr=0.1, momentum=float("nan")), ValueError, "SGD: invalid momentum nan"),
        (lambda ops, x, L: ops.SGD(L, lr="fast"), TypeError, "SGD: lr must be a number, got str"),
        (
            lambda ops, x, L: ops.SGD([(L[0][0].tolist(), L[0][1])], lr=0.1),
            TypeError,
            "SGD: layer 1 W must be a numpy array, since it is updated in place; got list",
        ),
        (
            lambda ops, x, L: ops.SGD(L, 0.1).step(ONE_LAYER),
            ValueError,
            "SGD.step: got gradients for 1 layers, the optimiser has 2",
        ),
        (
            lambda ops, x, L: ops.SGD(L, 0.1).step(WRONG_BIAS),
            ValueError,
            "SGD.step: the gradient of layer 2 bias has shape (3,), the parameter (2,): they must be equal",
        ),
        (
            lambda ops, x, L: ops.SGD(L, 0.1).step(WRONG_DTYPE),
            TypeError,
            "SGD.step: the gradient of layer 1 W is float64, the parameter float32: they must be the same",
        ),
    ],
)
def test_bad_input_is_refused(ops, call, kind, message):
    x, layers = net()
    with pytest.raises(kind) as error:
        call(ops, x, layers)
    text = str(error.value)
    assert text.startswith(prefix(ops) + message) and "\n" not in text, text


def test_sgd_refuses_read_only_parameters():
    x, layers = net()
    layers[1][1].flags.writeable = False
    with pytest.raises(ValueError, match=r"^numnet.SGD: layer 2 bias is read-only; it is updated in place"):
        numnet.SGD(layers, lr=0.1)


# -- SGD ----------------------------------------------------------------------------------


def test_sgd_momentum_follows_torchs_convention(ops):
    """buf = g on the first step, then buf = momentum * buf + g; p -= lr * buf.
    Exact binary fractions, so every step is exact."""
    W, b = np.ones((1, 2), f32), np.zeros(2, f32)
    opt = ops.SGD([(W, b)], lr=0.5, momentum=0.5)
    g = [(np.full((1, 2), 0.5, f32), np.full(2, -1.0, f32))]
    opt.step(g)  # buf = 0.5, W = 1 - 0.25;  buf_b = -1, b = 0 + 0.5
    assert W.tolist() == [[0.75, 0.75]] and b.tolist() == [0.5, 0.5]
    opt.step(g)  # buf = 0.25 + 0.5 = 0.75, W = 0.75 - 0.375;  buf_b = -1.5, b = 0.5 + 0.75
    assert W.tolist() == [[0.375, 0.375]] and b.tolist() == [1.25, 1.25]
    plain = np.ones((1, 2), f32), np.zeros((1, 2), f32)
    sgd = ops.SGD([plain], lr=0.5)  # momentum 0: p -= lr * g, no buffer
    for _ in range(2):
        sgd.step([(np.full((1, 2), 0.5, f32), np.full((1, 2), 2.0, f32))])
    assert plain[0].tolist() == [[0.5, 0.5]] and plain[1].tolist() == [[-2.0, -2.0]]


def test_sgd_updates_the_callers_arrays_and_one_step_lowers_the_loss():
    rng = np.random.default_rng(9)
    x, t = rng.normal(size=(6, 3)).astype(f32), rng.integers(0, 2, 6)
    layers = [
        (rng.normal(size=(3, 4)).astype(f32), np.zeros(4, f32)),
        (rng.normal(size=(4, 2)).astype(f32), np.zeros(2, f32)),
    ]
    arrays = [a for pair in layers for a in pair]
    opt = numnet.SGD(layers, lr=0.05, momentum=0.9)
    before, grads = numnet.loss_and_grads(x, t, layers, "tanh", "none", "cross_entropy")
    opt.step(grads)
    after, _ = numnet.loss_and_grads(x, t, layers, "tanh", "none", "cross_entropy")
    assert all(a is b for a, b in zip(arrays, (a for pair in layers for a in pair))) and after < before
    assert not (layers[0][1] == 0).all()  # the caller's own arrays moved


def test_cuda_sgd_updates_device_arrays_in_place():
    from numnet import cuda

    if not cuda.is_available():
        pytest.skip("no CUDA GPU and no simulator")
    from numba import cuda as numba_cuda

    rng = np.random.default_rng(10)
    W, b = rng.normal(size=(3, 2)).astype(f32), rng.normal(size=2).astype(f32)
    dW, db = rng.normal(size=(3, 2)).astype(f32), rng.normal(size=2).astype(f32)
    on_gpu = numba_cuda.to_device(W), numba_cuda.to_device(b)
    on_cpu = W.copy(), b.copy()
    gpu, cpu = cuda.SGD([on_gpu], lr=0.1, momentum=0.9), numnet.SGD([on_cpu], lr=0.1, momentum=0.9)
    for _ in range(3):
        gpu.step([(dW, db)])
        cpu.step([(dW, db)])
    # Within the rounding of momentum * buf + g, which a GPU contracts into one fma and
    # the CPU does not; in the simulator (p = fma(buf, -lr, p) on both sides) bit for bit.
    for device, host in zip(on_gpu, on_cpu):
        got = device.copy_to_host()
        assert np.abs(got - host).max() <= 4 * np.finfo(f32).eps * (np.abs(host).max() + 1)
        if cuda.on_simulator():
            assert got.tobytes() == host.tobytes()


# -- SGD.train_step: loss_and_grads and step in one compiled call ------------------------------

TRAIN_STEP_CASES = [
    ([64, 64, 10], "relu", "none", "cross_entropy", f32, 0.9),
    ([7, 5, 4, 3], "tanh", "sigmoid", "mse", f64, 0.0),
    ([300, 40], "sigmoid", "tanh", "mse", f32, 0.5),
    ([20, 30, 30, 6], "relu", "none", "cross_entropy", f64, 0.9),
]


def _not_the_compiled_step(*args, **kwargs):
    raise AssertionError("SGD.train_step fell back to loss_and_grads and step: its compiled call failed")


@pytest.mark.parametrize(
    "widths, hidden, output, loss, dtype, momentum, rows",
    [(*case, 33) for case in TRAIN_STEP_CASES] + [([784, 128, 10], "relu", "none", "cross_entropy", f32, 0.9, 256)],
)
def test_train_step_is_loss_and_grads_then_step(widths, hidden, output, loss, dtype, momentum, rows, monkeypatch):
    """The same bits as the two calls, step after step (the momentum buffers included),
    from the one compiled call: the two calls, its fallback, would give the same bits, so
    they are barred here (a compiled call that no longer compiled went unseen, and cost
    a failed compilation, 30 ms, every step). 256 rows of 784 -> 128: products and the
    SGD update on threads (kernels.step_threads)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((rows, widths[0])).astype(dtype)
    target = (
        rng.integers(0, widths[-1], rows)
        if loss == "cross_entropy"
        else rng.standard_normal((rows, widths[-1])).astype(dtype)
    )
    fused, plain = (init_layers(widths, seed=3, dtype=dtype) for _ in range(2))
    opt_fused, opt_plain = numnet.SGD(fused, 0.05, momentum), numnet.SGD(plain, 0.05, momentum)
    for _ in range(3):
        with monkeypatch.context() as patch:
            patch.setattr(numnet.backward, "loss_and_grads", _not_the_compiled_step)
            value = opt_fused.train_step(x, target, hidden=hidden, output=output, loss=loss)
        want, grads = numnet.loss_and_grads(x, target, plain, hidden=hidden, output=output, loss=loss)
        opt_plain.step(grads)
        assert value.dtype == want.dtype and value.tobytes() == want.tobytes()
        for (W, b), (W0, b0) in zip(fused, plain):
            assert W.tobytes() == W0.tobytes() and b.tobytes() == b0.tobytes()


@pytest.mark.parametrize("first, momentum", [(True, 0.9), (False, 0.9), (False, 0.0)])
def test_sgd_update_on_threads_gives_the_same_bits(first, momentum):
    """A training step updates large parameter arrays on every core (SGD_PARALLEL_MIN):
    each value's update is the same arithmetic on any thread, so the same bits as the
    serial update, whatever the split of the rows (7 of them: uneven shares)."""
    from numnet import backward_kernels as BK

    rng = np.random.default_rng(9)
    p, g, buf = (rng.standard_normal((7, 5003)).astype(f32) for _ in range(3))
    lr, mom = f32(0.05), f32(momentum)
    serial = [a.copy() for a in (p, g, buf)]
    BK.sgd_kernel(*serial, lr, mom, first)
    threaded = [a.copy() for a in (p, g, buf)]
    BK._sgd_threads(*threaded, lr, mom, first)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(serial, threaded))
    assert serial[0].tobytes() != p.tobytes()  # the update did change the parameters


def test_train_step_takes_any_input_the_two_calls_take():
    """Layouts the one compiled call does not take (a Fortran-ordered W, a strided x, a
    list target) run the two calls: the same results."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((10, 8)).astype(f32)
    layers = init_layers([8, 6, 3], seed=4)
    fortran = [(np.asfortranarray(W), b.copy()) for W, b in layers]
    target = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    plain = [(W.copy(), b.copy()) for W, b in layers]
    value = numnet.SGD(fortran, 0.1).train_step(x[:, ::1], target, hidden="relu", output="none", loss="cross_entropy")
    want, grads = numnet.loss_and_grads(x, np.array(target), plain, hidden="relu", output="none", loss="cross_entropy")
    numnet.SGD(plain, 0.1).step(grads)
    assert value.tobytes() == want.tobytes()
    assert all(W.tobytes() == W0.tobytes() for (W, _), (W0, _) in zip(fortran, plain))
    strided = np.zeros((10, 16), f32)
    strided[:, ::2] = x
    assert (
        numnet.SGD([(W.copy(), b.copy()) for W, b in layers], 0.1)
        .train_step(strided[:, ::2], np.array(target), hidden="relu", output="none", loss="cross_entropy")
        .tobytes()
        == numnet.loss_and_grads(x, np.array(target), layers, hidden="relu", output="none", loss="cross_entropy")[
            0
        ].tobytes()
    )


@pytest.mark.parametrize("case", list(BAD_TARGETS))
def test_train_step_refuses_what_loss_and_grads_refuses_and_writes_nothing(case):
    target, loss, kind, message = BAD_TARGETS[case]
    x, layers = net()
    before = [(W.copy(), b.copy()) for W, b in layers]
    opt = numnet.SGD(layers, 0.1, momentum=0.9)
    with pytest.raises(kind) as error:
        opt.train_step(x, target, loss=loss)
    assert message in str(error.value)
    assert all(np.array_equal(W, W0) and np.array_equal(b, b0) for (W, b), (W0, b0) in zip(layers, before))
    assert opt.buffers is None  # a refused first step leaves no momentum behind


def test_train_step_on_an_empty_batch_is_nan_and_leaves_the_weights():
    x, layers = net()
    before = [(W.copy(), b.copy()) for W, b in layers]
    value = numnet.SGD(layers, 0.1).train_step(x[:0], np.zeros((0, 2), f32))
    assert np.isnan(value)
    assert all(np.array_equal(W, W0) for (W, _), (W0, _) in zip(layers, before))


@pytest.mark.parametrize("x_dtype", [f64, f32])
def test_train_step_tries_its_compiled_call_once_for_arguments_it_does_not_take(x_dtype, monkeypatch):
    """x of another dtype than the layers (float64 into float32 ones; and float32 as a
    control): the compiled call does not compile for them, and a failed compilation
    costs milliseconds, so train_step tries it once, then takes the two calls at once."""
    from numnet import backward_kernels as BK

    tries = []
    kernel = BK.train_step_kernel

    def counted(*args):
        tries.append(1)
        return kernel(*args)

    monkeypatch.setattr(BK, "train_step_kernel", counted)
    rng = np.random.default_rng(11)
    layers = init_layers([8, 6, 3], seed=4, dtype=f32)
    x, target = rng.standard_normal((5, 8)).astype(x_dtype), rng.integers(0, 3, 5)
    opt = numnet.SGD(layers, 0.1)
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(opt.train_step(x, target, hidden="relu", output="none", loss="cross_entropy").dtype)
        except (TypeError, ValueError) as e:  # loss_and_grads may refuse the mix: the same each time
            outcomes.append(str(e))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert len(tries) == (1 if x_dtype is f64 else 3)
