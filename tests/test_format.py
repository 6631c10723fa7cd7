"""numnet.format against fixed strings, without torch.

Every expected string below was printed once by torch 2.13.0 as
``str(torch.from_numpy(a))`` for the same array and pasted in as a literal;
parity/test_format_parity.py compares against live torch on generated arrays.
"""

import numpy as np
import pytest

from numnet._format import format_tensor

CASES = [
    # The two tensors the notebook prints.
    (
        "notebook_row",
        np.array([[-0.1468, 0.7861, 0.9468, -1.1143, 1.6908]], dtype=np.float32),
        "tensor([[-0.1468,  0.7861,  0.9468, -1.1143,  1.6908]])",
    ),
    ("notebook_single", np.array([[0.1595]], dtype=np.float32), "tensor([[0.1595]])"),
    ("float64", np.array([0.5, -2.25, 3.125]), "tensor([ 0.5000, -2.2500,  3.1250], dtype=torch.float64)"),
    (
        "float64_2d",
        np.array([[1.0, 2.5], [3.0, 4.0]]),
        "tensor([[1.0000, 2.5000],\n        [3.0000, 4.0000]], dtype=torch.float64)",
    ),
    # The row wraps at 80 columns; the dtype then fits on the last line.
    (
        "float64_wrapped",
        np.arange(12.0) / 3,
        "tensor([0.0000, 0.3333, 0.6667, 1.0000, 1.3333, 1.6667, 2.0000, 2.3333, 2.6667,\n"
        "        3.0000, 3.3333, 3.6667], dtype=torch.float64)",
    ),
    ("scalar_f32", np.array(3.14159265, dtype=np.float32), "tensor(3.1416)"),
    ("scalar_f64_negative", np.array(-2.5), "tensor(-2.5000, dtype=torch.float64)"),
    ("empty", np.zeros(0, dtype=np.float32), "tensor([])"),
    ("empty_2d", np.zeros((0, 3), dtype=np.float32), "tensor([], size=(0, 3))"),
    ("empty_3d_f64", np.zeros((2, 0, 3)), "tensor([], size=(2, 0, 3), dtype=torch.float64)"),
    ("nan_inf", np.array([np.nan, np.inf, -np.inf, 1.5], dtype=np.float32), "tensor([   nan,    inf,   -inf, 1.5000])"),
    # int mode: nan/inf get no point and are not counted in the width, so they overflow it.
    ("nan_inf_int_mode", np.array([1.0, np.nan, -np.inf, 20.0], dtype=np.float32), "tensor([ 1., nan, -inf, 20.])"),
    ("negative_zero", np.array([-0.0, 0.0, 1.0], dtype=np.float32), "tensor([-0., 0., 1.])"),
    ("all_zero", np.array([-0.0, 0.0], dtype=np.float32), "tensor([-0., 0.])"),
    ("sci_ratio", np.array([1e-5, 1.0, 1e5], dtype=np.float32), "tensor([1.0000e-05, 1.0000e+00, 1.0000e+05])"),
    ("sci_huge", np.array([2.0e8, 3.0]), "tensor([2.0000e+08, 3.0000e+00], dtype=torch.float64)"),
    ("int_valued", np.array([1.0, 2.0, -3.0, 100.0], dtype=np.float32), "tensor([  1.,   2.,  -3., 100.])"),
    (
        "summarised_1d",
        np.arange(2000, dtype=np.float32) / 7,
        "tensor([0.0000e+00, 1.4286e-01, 2.8571e-01,  ..., 2.8529e+02, 2.8543e+02,\n        2.8557e+02])",
    ),
    # The 1e9 is elided, and the style comes from the printed elements only.
    (
        "summary_hides_outlier",
        np.where(np.arange(2000) == 1000, 1e9, 1.0).astype(np.float32),
        "tensor([1., 1., 1.,  ..., 1., 1., 1.])",
    ),
    (
        "summarised_2d",
        np.arange(2000, dtype=np.float32).reshape(40, 50),
        "tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 4.7000e+01, 4.8000e+01,\n"
        "         4.9000e+01],\n"
        "        [5.0000e+01, 5.1000e+01, 5.2000e+01,  ..., 9.7000e+01, 9.8000e+01,\n"
        "         9.9000e+01],\n"
        "        [1.0000e+02, 1.0100e+02, 1.0200e+02,  ..., 1.4700e+02, 1.4800e+02,\n"
        "         1.4900e+02],\n"
        "        ...,\n"
        "        [1.8500e+03, 1.8510e+03, 1.8520e+03,  ..., 1.8970e+03, 1.8980e+03,\n"
        "         1.8990e+03],\n"
        "        [1.9000e+03, 1.9010e+03, 1.9020e+03,  ..., 1.9470e+03, 1.9480e+03,\n"
        "         1.9490e+03],\n"
        "        [1.9500e+03, 1.9510e+03, 1.9520e+03,  ..., 1.9970e+03, 1.9980e+03,\n"
        "         1.9990e+03]])",
    ),
    (
        "three_d",
        np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 3,
        "tensor([[[0.0000, 0.3333, 0.6667, 1.0000],\n"
        "         [1.3333, 1.6667, 2.0000, 2.3333],\n"
        "         [2.6667, 3.0000, 3.3333, 3.6667]],\n"
        "\n"
        "        [[4.0000, 4.3333, 4.6667, 5.0000],\n"
        "         [5.3333, 5.6667, 6.0000, 6.3333],\n"
        "         [6.6667, 7.0000, 7.3333, 7.6667]]])",
    ),
    (
        "four_d",
        np.arange(4, dtype=np.float32).reshape(1, 2, 1, 2) - 1.5,
        "tensor([[[[-1.5000, -0.5000]],\n\n         [[ 0.5000,  1.5000]]]])",
    ),
]


@pytest.mark.parametrize("a, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_format_matches_torch_string(a, expected):
    assert format_tensor(a) == expected


def test_format_reads_array_likes_as_numpy_does():
    # Python floats become float64 under np.asarray, so the dtype is printed.
    assert format_tensor([1.5, -2.0]) == "tensor([ 1.5000, -2.0000], dtype=torch.float64)"


def test_format_views_and_byte_order():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert format_tensor(a.T) == "tensor([[0., 3.],\n        [1., 4.],\n        [2., 5.]])"
    assert format_tensor(np.array([0.5], dtype=">f4")) == "tensor([0.5000])"


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.int32, np.bool_, np.complex64])
def test_format_rejects_other_dtypes(dtype):
    with pytest.raises(TypeError, match=np.dtype(dtype).name):
        format_tensor(np.zeros(3, dtype=dtype))
