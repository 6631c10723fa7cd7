"""Training's ops against torch on each path: forward with every activation, softmax and
log_softmax, loss_and_grads against torch.autograd, SGD against torch.optim.SGD, and
where torch raises, numnet raises too.

Networks, data, activations, losses and dtypes are hypothesis's choice. Tolerances are
numnet.testing's (forward_bound, softmax_tolerance, grads_tolerance: stated and justified
there), with torch in float64 as the trusted matrix product for the bounds' scales.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from numnet._checks import ACTIVATIONS
from numnet.testing import assert_close, op_tolerance
from tests import naive
from tests.strategies import arrays, dtypes
from tests.test_backward import networks

from .conftest import examples

TORCH_ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh, "none": lambda z: z}


def t(a):
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))


def matmul64(a, b):
    """A trusted float64 product for the bounds' scales (the inputs here are finite)."""
    return (t(np.asarray(a, np.float64)) @ t(np.asarray(b, np.float64))).numpy()


def tolerance(op, *args):
    return op_tolerance(op, args, matmul=matmul64, sigmoid=naive.sigmoid_ref)


def run(ops, test):
    """Run the hypothesis test ``test(ops, data)`` with the path's example count."""
    settings(max_examples=examples(ops))(given(st.data())(lambda data: test(ops, data)))()


def torch_forward(x, layers, hidden, output):
    h = t(x)
    for i, (W, b) in enumerate(layers, start=1):
        h = TORCH_ACTIVATIONS[output if i == len(layers) else hidden](torch.addmm(t(b), h, t(W)))
    return h


def torch_loss_and_grads(x, target, layers, hidden, output, loss):
    """torch.autograd's loss and (dW, db) for the same network, functional form."""
    params = [(t(W).clone().requires_grad_(), t(b).clone().requires_grad_()) for W, b in layers]
    h = torch_forward(x, params, hidden, output)
    value = F.mse_loss(h, t(target)) if loss == "mse" else F.cross_entropy(h, t(target).long())
    value.backward()
    return value.detach().numpy(), [(W.grad.numpy(), b.grad.numpy()) for W, b in params]


def check_grads(got, want, tol):
    (loss, grads), (t_loss, t_grads) = got, want
    assert loss.shape == () and loss.dtype == t_loss.dtype
    assert_close(loss, t_loss, name="loss", **tol["loss"])
    for i, ((dW, db), (tW, tb), (kW, kb)) in enumerate(zip(grads, t_grads, tol["grads"]), start=1):
        assert dW.shape == tW.shape and db.shape == tb.shape and dW.dtype == tW.dtype
        assert_close(dW, tW, name=f"dW{i}", **kW)
        assert_close(db, tb, name=f"db{i}", **kb)


# -- the forward pass with each activation -------------------------------------------------


def test_forward_with_activations(ops):
    def body(ops, data):
        dims = st.integers(0, 40 if examples(ops) > 10 else 5)
        dtype = data.draw(dtypes)
        hidden, output = data.draw(st.sampled_from(ACTIVATIONS)), data.draw(st.sampled_from(ACTIVATIONS))
        widths = data.draw(st.lists(dims, min_size=2, max_size=4))
        x = data.draw(arrays(dtype, (data.draw(dims), widths[0])))
        layers = [
            (data.draw(arrays(dtype, (k_in, k_out))), data.draw(arrays(dtype, (1, k_out))))
            for k_in, k_out in zip(widths, widths[1:])
        ]
        got = ops.forward(x, layers, hidden=hidden, output=output)
        expected = torch_forward(x, layers, hidden, output).numpy()
        assert got.shape == expected.shape and got.dtype == expected.dtype
        assert_close(got, expected, **naive.tolerance("forward", x, layers, hidden, output))

    run(ops, body)


# -- softmax and log_softmax ---------------------------------------------------------------


def test_softmax_and_log_softmax(ops):
    def body(ops, data):
        dims = st.integers(0, 40 if examples(ops) > 10 else 5)
        dtype = data.draw(dtypes)
        x = data.draw(arrays(dtype, data.draw(st.lists(dims, min_size=1, max_size=3).map(tuple))))
        for name, fn in (("log_softmax", torch.log_softmax), ("softmax", torch.softmax)):
            got, expected = getattr(ops, name)(x), fn(t(x), -1).numpy()
            assert got.shape == expected.shape and got.dtype == expected.dtype
            assert_close(got, expected, name=name, **tolerance(name, x))

    run(ops, body)


# -- gradients against torch.autograd ---------------------------------------------------------


def test_loss_and_grads_against_autograd(ops):
    """Depths 1-4, widths and batches 0-40 (0-4 in the simulator), every activation and loss,
    float32 and float64: numnet's backward pass against torch.autograd's."""

    def body(ops, data):
        small = examples(ops) <= 10
        net = data.draw(networks(max_dim=4 if small else 40, max_depth=2 if small else 4))
        check_grads(ops.loss_and_grads(*net), torch_loss_and_grads(*net), tolerance("loss_and_grads", *net))

    run(ops, body)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_empty_batch_as_torch(ops, loss):
    layers = [(np.ones((3, 2), np.float32), np.ones(2, np.float32))]
    target = np.ones((0, 2), np.float32) if loss == "mse" else np.zeros(0, np.int64)
    args = (np.ones((0, 3), np.float32), target, layers, "relu", "none", loss)
    got, want = ops.loss_and_grads(*args), torch_loss_and_grads(*args)
    assert np.isnan(got[0]) and np.isnan(want[0])
    assert all(a.tobytes() == b.tobytes() for p, q in zip(got[1], want[1]) for a, b in zip(p, q))


@pytest.mark.parametrize("hidden", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("where", ["x", "target", "weight", "logit"])
def test_nan_and_inf_propagate_as_in_torch(ops, hidden, where):
    """numnet does not raise on NaN or inf: the loss and every gradient entry are NaN (or
    inf) exactly where torch's are. (In the simulator, relu only: it is the activation
    whose gradient stops a NaN, and the simulator is slow.)"""
    if examples(ops) <= 10 and hidden != "relu":
        pytest.skip("the simulator runs relu only")
    rng = np.random.default_rng(len(hidden) + len(where))
    x = rng.normal(size=(4, 3))
    layers = [(rng.normal(size=(3, 5)), rng.normal(size=5)), (rng.normal(size=(5, 2)), rng.normal(size=2))]
    target, loss = rng.normal(size=(4, 2)), "mse"
    if where == "x":
        x[1, 2] = np.nan
    elif where == "target":
        target[2, 0] = np.nan
    elif where == "weight":
        layers[0][0][1, 3] = np.inf
    else:  # an infinite logit: its row's softmax is NaN
        layers[1][1][1] = np.inf
        target, loss = np.array([0, 1, 1, 0]), "cross_entropy"
    (value, grads), (t_value, t_grads) = (
        ops.loss_and_grads(x, target, layers, hidden, "none", loss),
        torch_loss_and_grads(x, target, layers, hidden, "none", loss),
    )
    assert np.isnan(value) == np.isnan(t_value)
    for got, want in zip(grads, t_grads):
        for a, b in zip(got, want):
            assert (np.isnan(a) == np.isnan(b)).all() and (np.isinf(a) == np.isinf(b)).all()


# -- where torch raises, numnet raises ---------------------------------------------------------


@pytest.mark.parametrize(
    "target, kind",
    [
        (np.array([0, 1, 2, 1]), IndexError),  # torch: "Target 2 is out of bounds."
        (np.array([0, -1, 1, 1]), IndexError),
        (np.zeros((4, 1), np.int64), RuntimeError),  # "0D or 1D target tensor expected, multi-target not supported"
        (np.zeros(3, np.int64), ValueError),  # "Expected input batch_size (4) to match target batch_size (3)."
    ],
)
def test_bad_class_targets_raise_like_torch(ops, target, kind):
    x, layers = np.ones((4, 3), np.float32), [(np.ones((3, 2), np.float32), np.ones(2, np.float32))]
    with pytest.raises(kind):
        torch_loss_and_grads(x, target, layers, "relu", "none", "cross_entropy")
    with pytest.raises(kind) as error:
        ops.loss_and_grads(x, target, layers, "relu", "none", "cross_entropy")
    assert str(error.value).startswith("numnet.")


# -- SGD against torch.optim.SGD ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_matches_torch(ops, dtype, momentum):
    """On the CPU bit for bit, every step (p - lr * buf as one fused multiply-add, as torch's
    add_ computes it; without the fusion about 9% of float32 results differ by an ULP). In
    the simulator, which has no fused multiply-add, within that rounding."""
    rng = np.random.default_rng(11)
    shapes = [(13, 7), (7,), (7, 3), (1, 3)]  # 91 elements: torch's vector loop and its scalar tail
    params = [rng.normal(size=s).astype(dtype) for s in shapes]
    t_params = [t(p).clone().requires_grad_() for p in params]
    opt = ops.SGD([(params[0], params[1]), (params[2], params[3])], lr=0.1, momentum=momentum)
    t_opt = torch.optim.SGD(t_params, lr=0.1, momentum=momentum)
    for _ in range(3 if examples(ops) <= 10 else 6):
        grads = [rng.normal(size=s).astype(dtype) for s in shapes]
        opt.step([(grads[0], grads[1]), (grads[2], grads[3])])
        for p, g in zip(t_params, grads):
            p.grad = t(g).clone()
        t_opt.step()
        for p, q in zip(params, t_params):
            q = q.detach().numpy()
            if examples(ops) > 10:
                assert p.tobytes() == q.tobytes()
            else:
                assert np.abs(p - q).max() <= 8 * np.finfo(dtype).eps * (np.abs(q).max() + 1)
