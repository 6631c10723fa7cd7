"""The products' arithmetic: every output of mm, linear, forward and the backward products
is s = 0; s = fma(a[i, p], b[p, j], s) for p = 0, 1, ..., k-1, each step rounded once.

Checked bit for bit against exact arithmetic (tests/naive.py: Fractions, rounded once to
the dtype), on inputs chosen so that an unfused kernel (a multiply and an add, rounded
separately) gives other bits: each case asserts that first, so it could not pass
unfused. Both the plain loops and the blocked kernel (threaded and serial) are checked,
float32 and float64.
"""

import numpy as np
import pytest

import numnet
from numnet import backward_kernels as BK
from numnet import kernels as K

from . import naive

f32, f64 = np.float32, np.float64


def rand(*shape, dtype=f32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def fused_and_telling(a, b):
    """The exact fused product of a and b, after checking that unfused loops differ."""
    want = naive.fused_mm_ref(a, b)
    assert (naive.unfused_mm(a, b) != want).any(), "these inputs cannot tell fused from unfused"
    return want


# One halfway case: 2^-30 * 2^-30 = 2^-60, then (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24, exactly
# halfway between two float32s. Fused: 1 + 2^-11 + 2^-24 + 2^-60 rounds up. Unfused, and
# float64 rounded to float32 (it lands on the halfway point): down, to the even 1 + 2^-11.
HALFWAY_A = np.array([[2.0**-30, 1 + 2.0**-12]], f32)
HALFWAY_B = np.array([[2.0**-30], [1 + 2.0**-12]], f32)
HALFWAY_FUSED = np.float32(1 + 2.0**-11 + 2.0**-23)


def test_the_reference_rounds_a_halfway_float32_once():
    assert naive.fma_ref(HALFWAY_A[0, 1], HALFWAY_B[1, 0], np.float32(2.0**-60)) == HALFWAY_FUSED
    assert np.float32(np.float64(HALFWAY_A[0, 1]) * np.float64(HALFWAY_B[1, 0]) + 2.0**-60) != HALFWAY_FUSED


def test_mm_rounds_a_halfway_float32_once():
    assert numnet.mm(HALFWAY_A, HALFWAY_B)[0, 0] == HALFWAY_FUSED
    assert naive.unfused_mm(HALFWAY_A, HALFWAY_B)[0, 0] != HALFWAY_FUSED


# (n, k, m): the plain loops (small), and the register tiles (at least ROWS_MIN multiply-adds).
SHAPES = [(3, 40, 5), (K.MR + 1, 1200, 17)]


@pytest.mark.parametrize("n, k, m", SHAPES)
@pytest.mark.parametrize("dtype", [f32, f64])
def test_mm_is_in_order_fused(n, k, m, dtype):
    a, b = rand(n, k, dtype=dtype, seed=1), rand(k, m, dtype=dtype, seed=2)
    want = fused_and_telling(a, b)
    assert numnet.mm(a, b).tobytes() == want.tobytes()
    assert numnet.mm(np.asfortranarray(a), b[:, ::1]).tobytes() == want.tobytes()
    serial = np.empty_like(want)
    K.mm_kernel(a, b, serial, 1)
    assert serial.tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", [f32, f64])
def test_linear_adds_the_bias_after_the_fused_sum(dtype):
    n, k, m = K.MR + 1, 1200, 17
    x, W, bias = rand(n, k, dtype=dtype, seed=3), rand(k, m, dtype=dtype, seed=4), rand(m, dtype=dtype, seed=5)
    want = fused_and_telling(x, W) + bias  # one rounding for the bias
    assert numnet.linear(x, W, bias).tobytes() == want.tobytes()
    small = numnet.linear(x[:2, :30], W[:30], bias)
    assert small.tobytes() == (naive.fused_mm_ref(x[:2, :30], W[:30]) + bias).tobytes()


@pytest.mark.parametrize("dtype", [f32, f64])
def test_backward_products_are_in_order_fused(dtype):
    n, k, m = 300, 20, 30  # dW = h^T delta: k x m outputs of n terms each (blocked)
    h, delta = rand(n, k, dtype=dtype, seed=6), rand(n, m, dtype=dtype, seed=7)
    want = fused_and_telling(np.ascontiguousarray(h.T), delta)
    for threads in (K.THREADS, 1):
        out = np.empty((k, m), dtype)
        BK.matmul_tn_kernel(h, delta, out, threads)
        assert out.tobytes() == want.tobytes()
    W = rand(k, m, dtype=dtype, seed=8)  # delta W^T: n x k outputs of m terms each
    want = fused_and_telling(delta, np.ascontiguousarray(W.T))
    out = np.empty((n, k), dtype)
    BK.backprop_kernel(delta, W, np.ones((n, k), dtype), K.IDENTITY, out, K.THREADS)
    assert out.tobytes() == want.tobytes()
