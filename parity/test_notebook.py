"""The notebook, cell by cell: torch seeded with 7 exactly as the notebook does, then the
same tensors through numnet on each path. Tolerances are numnet.testing's."""

import numpy as np
import torch

import numnet
from numnet.testing import SIGMOID_ULP, assert_close


def notebook_neuron_tensors():
    torch.manual_seed(7)  # Set the random seed so things are predictable
    features = torch.randn((1, 5))
    weights = torch.randn_like(features)
    bias = torch.randn((1, 1))
    return features, weights, bias


def notebook_network_tensors():
    torch.manual_seed(7)
    features = torch.randn((1, 3))
    n_input, n_hidden, n_output = features.shape[1], 2, 1
    W1 = torch.randn(n_input, n_hidden)
    W2 = torch.randn(n_hidden, n_output)
    B1 = torch.randn((1, n_hidden))
    B2 = torch.randn((1, n_output))
    return features, W1, W2, B1, B2


def activation(x):
    """The notebook's sigmoid."""
    return 1 / (1 + torch.exp(-x))


def assert_sigmoid_of_sum_close(got, expected, k):
    """Within torch: the k-term sum's bound (2*gamma_k*sum|terms|) through sigma's slope
    (at most 1/4), plus sigma's own SIGMOID_ULP. For the notebook's k = 5, float32, that
    is a few ULP of 0.1595; we assert the tighter ULP form, SIGMOID_ULP + k."""
    assert_close(got, expected, ulp=SIGMOID_ULP + k)


def test_output1_sum_path(ops):
    features, weights, bias = notebook_neuron_tensors()
    output1 = activation(torch.sum(features * weights) + bias)
    got = ops.neuron(features.numpy(), weights.numpy(), bias.numpy())
    assert got.shape == (1, 1) and got.dtype == np.float32
    assert_sigmoid_of_sum_close(got, output1.numpy(), k=5)
    print(f"output1 = {got.item():.4f} (numnet {ops.__name__}), torch {output1.item():.4f}")
    assert f"{got.item():.4f}" == f"{output1.item():.4f}" == "0.1595"
    if ops is numnet:
        # Bit-exact: numnet.dot adds the five products in torch.sum's order.
        dot = ops.dot(features.numpy(), weights.numpy())
        assert dot.tobytes() == torch.sum(features * weights).numpy().tobytes()
        assert got.tobytes() == output1.numpy().tobytes()


def test_output1_and_output2_one_ulp_apart():
    """Both of torch's answers from numnet: the sum's and the matrix product's, one ULP apart."""
    features, weights, bias = notebook_neuron_tensors()
    output1 = activation(torch.sum(features * weights) + bias)
    output2 = activation(torch.mm(features, weights.view(5, 1)) + bias)
    f, w, b = features.numpy(), weights.numpy(), bias.numpy()
    ours1 = numnet.neuron(f, w, b)
    ours2 = numnet.sigmoid(numnet.mm(f, w.reshape(5, 1)) + b)
    assert ours1.tobytes() == output1.numpy().tobytes()
    assert ours2.tobytes() == output2.numpy().tobytes()
    assert np.nextafter(ours1, np.float32(1)) == ours2


def test_output2_matrix_path(ops):
    features, weights, bias = notebook_neuron_tensors()
    matmul_features_weights = torch.mm(features, weights.view(5, 1))
    output2 = activation(matmul_features_weights + bias)
    product = ops.mm(features.numpy(), weights.view(5, 1).numpy())
    got = ops.sigmoid(ops.linear(features.numpy(), weights.view(5, 1).numpy(), bias.numpy()))
    assert_close(product, matmul_features_weights.numpy(), ulp=5)
    assert_sigmoid_of_sum_close(got, output2.numpy(), k=5)
    assert f"{got.item():.4f}" == f"{output2.item():.4f}" == "0.1595"
    if ops is numnet:
        # Bit-exact where possible: the CPU kernel adds the five products left to right,
        # the order torch.mm uses here.
        assert product.tobytes() == matmul_features_weights.numpy().tobytes()
        assert got.tobytes() == output2.numpy().tobytes()


def test_two_layer_network(ops):
    features, W1, W2, B1, B2 = notebook_network_tensors()
    hidden_layer = activation(torch.mm(features, W1) + B1)
    output = activation(torch.mm(hidden_layer, W2) + B2)
    layers = [(W1.numpy(), B1.numpy()), (W2.numpy(), B2.numpy())]
    got = ops.forward(features.numpy(), layers)
    assert got.shape == (1, 1) and got.dtype == np.float32
    assert_close(got, output.numpy(), ulp=2 * SIGMOID_ULP)
    print(f"output = {got.item():.4f} (numnet {ops.__name__}), torch {output.item():.4f}")
    assert f"{got.item():.4f}" == f"{output.item():.4f}" == "0.3171"
    if ops is numnet:
        assert got.tobytes() == output.numpy().tobytes()


def test_mm_of_the_unreshaped_weights_fails_like_torch(ops):
    features, weights, _ = notebook_neuron_tensors()
    try:
        torch.mm(features, weights)
    except RuntimeError as exc:
        torch_message = str(exc)
    try:
        ops.mm(features.numpy(), weights.numpy())
    except RuntimeError as exc:  # also a ValueError
        assert torch_message in str(exc)  # 'mat1 and mat2 shapes cannot be multiplied (1x5 and 1x5)'
        assert isinstance(exc, ValueError)
    else:
        raise AssertionError("numnet accepted a (1, 5) @ (1, 5) product")


def test_numpy_bridge_shares_memory(ops):
    """torch.from_numpy of a numnet result is the same memory: b.mul_(2) shows in a."""
    features, W1, W2, B1, B2 = notebook_network_tensors()
    a = ops.linear(features.numpy(), W1.numpy(), B1.numpy())
    before = a.copy()
    b = torch.from_numpy(a)
    b.mul_(2)
    assert (a == 2 * before).all()
    assert b.numpy() is not None and np.shares_memory(b.numpy(), a)


def test_numpy_bridge_of_the_notebook_float64():
    """The notebook's last cells: a float64 array, torch.from_numpy, mul_ in place."""
    a = np.random.default_rng(7).random((4, 3))
    b = torch.from_numpy(a)
    s = numnet.sigmoid(b)  # a torch CPU tensor is read without a copy
    b.mul_(2)
    assert (b.numpy() == a).all()
    assert np.array_equal(s, numnet.sigmoid(a / 2))
