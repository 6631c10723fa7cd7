"""numnet.sum and numnet.dot in torch.sum's order, checked without torch: against the slow
reference tests/naive.torch_sum_order, on data where the order shows (parity/ compares
with torch itself)."""

import numpy as np
import pytest

import numnet
from numnet import kernels as K
from numnet import sums
from tests import naive

DTYPES = [np.float32, np.float64]
LENGTHS = list(range(0, 130)) + [255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 4095, 4096, 4097]


def mixed(n, dtype, seed=0):
    """Values of many magnitudes (1e-6 .. 1e6), both signs: orders give different bits."""
    rng = np.random.default_rng(seed + n)
    return (rng.standard_normal(n) * 10.0 ** rng.integers(-6, 7, n)).astype(dtype)


def left_to_right(x):
    total = x.dtype.type(0)
    for v in x.reshape(-1):
        total += v
    return total


def bits(value, dtype):
    return np.asarray(value, dtype).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_matches_the_reference_order(dtype):
    lanes = numnet.sum_order(dtype)["lanes"]
    differ = 0
    for n in LENGTHS:
        x = mixed(n, dtype)
        got = numnet.sum(x)
        assert got.shape == () and got.dtype == dtype
        assert got.tobytes() == bits(naive.torch_sum_order(x, lanes), dtype), f"n={n}"
        differ += got.tobytes() != bits(left_to_right(x), dtype)
    assert differ > len(LENGTHS) // 3  # the data can tell the orders apart


@pytest.mark.parametrize("n", [40000, 65537, 100001])
def test_a_split_sum_matches_the_reference_for_any_torch_thread_count(n):
    x = mixed(n, np.float32)
    for t in (1, 2, 3):
        assert numnet.sum(x, torch_threads=t).tobytes() == bits(naive.torch_sum_order(x, 8, t), np.float32)


def test_the_notebook_order_of_five():
    p = mixed(5, np.float32, seed=7)
    assert numnet.sum(p) == (((p[0] + p[4]) + p[1]) + p[2]) + p[3]


def test_numnet_threads_never_change_the_bits():
    x = mixed(300001, np.float32)
    rows, vectorised = sums.order_rows(x)
    one = sums.sum_kernel(rows, None, vectorised, 2, 1)
    two = sums.sum_kernel(rows, None, vectorised, 2, 2)
    assert bits(one, np.float32) == bits(two, np.float32) == numnet.sum(x, torch_threads=2).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_dot_rounds_each_product_then_sums_in_order(dtype):
    for n in (0, 1, 5, 9, 33, 1000):
        a, b = mixed(n, dtype, 1), mixed(n, dtype, 2)
        assert numnet.dot(a, b).tobytes() == numnet.sum(a * b).tobytes()
    a = mixed(24, dtype).reshape(2, 3, 4)
    b = mixed(24, dtype, 5).reshape(2, 3, 4)
    assert numnet.dot(a, b).tobytes() == numnet.sum((a * b).reshape(-1)).tobytes()
    assert numnet.dot(np.asfortranarray(a), b).tobytes() == numnet.dot(a, b).tobytes()  # C order


@pytest.mark.parametrize("dtype", DTYPES)
def test_dot_multiplies_inside_the_sum_on_any_threads(dtype):
    # dot feeds each rounded product into the sum's additions (no buffer of products):
    # the bits of summing a * b, for torch's chunks (T = 2, 3) on numnet's 1 or 2 threads.
    n = 3 * sums.GRAIN + 13
    a, b = mixed(n, dtype, 3), mixed(n, dtype, 4)
    for t in (2, 3):
        expected = numnet.sum(a * b, torch_threads=t).tobytes()
        assert bits(K.serial_dot_kernel(a, b, t), dtype) == expected
        for threads in (1, 2):
            assert bits(K.dot_kernel(a, b, t, threads), dtype) == expected


def test_layouts_sum_in_memory_order():
    x = mixed(300 * 257, np.float32).reshape(300, 257)
    f = np.asfortranarray(x)
    assert numnet.sum(f).tobytes() == numnet.sum(np.ascontiguousarray(f.T).reshape(-1)).tobytes()
    assert numnet.sum(x.T).tobytes() == numnet.sum(x).tobytes()  # the same memory
    assert numnet.sum(x[::-1]).tobytes() == numnet.sum(x[::-1].copy()).tobytes()  # negative stride
    # A strided 1-D run is not vectorised: four scalar accumulators.
    v = mixed(3000, np.float32)[::3]
    rows, vectorised = sums.order_rows(v)
    assert not vectorised and rows.shape == (1, 1000)
    assert numnet.sum(v).tobytes() == bits(naive.torch_sum_order(v, lanes=10**9), np.float32)
    # Rows of a slice: each row summed, the row sums added in order.
    s = x[:5, :100]
    rows, vectorised = sums.order_rows(s)
    assert vectorised and rows.shape == (5, 100)
    expected = np.float32(0)
    for row in s:
        expected += np.float32(naive.torch_sum_order(row, 8))
    assert numnet.sum(s).tobytes() == bits(expected, np.float32)


def test_corners():
    for dtype in DTYPES:
        assert numnet.sum(np.zeros((0, 3), dtype)).tobytes() == bits(0, dtype)
        assert numnet.sum(np.array(-0.0, dtype)).tobytes() == bits(0.0, dtype)  # 0 + -0 = +0, as torch
        assert numnet.sum(np.array(2.5, dtype)).item() == 2.5
        assert np.isnan(numnet.sum(np.array([1, np.nan, 2], dtype)))
        assert numnet.sum(np.array([np.inf, 1], dtype)) == np.inf
    assert numnet.sum([1.0, 2.0]).dtype == np.float64
    ro = mixed(100, np.float32)
    ro.setflags(write=False)
    assert numnet.sum(ro).tobytes() == numnet.sum(ro.copy()).tobytes()


def test_bad_input_is_refused():
    with pytest.raises(numnet.DTypeError, match="numnet.sum"):
        numnet.sum(np.ones(3, np.int64))
    with pytest.raises(ValueError, match="torch_threads"):
        numnet.sum(np.ones(3), torch_threads=0)


def test_capability_follows_aten_cpu_capability(monkeypatch):
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    found, source = sums.capability()
    assert found in ("avx512", "avx2", "default") and source
    for value in ("avx512", "avx2", "default"):
        monkeypatch.setenv("ATEN_CPU_CAPABILITY", value)
        assert sums.capability() == (value, "ATEN_CPU_CAPABILITY")
        assert numnet.sum_order()["capability"] == value.upper()
    for ignored in ("AVX2", "sse", ""):  # torch compares case-sensitively and warns
        monkeypatch.setenv("ATEN_CPU_CAPABILITY", ignored)
        assert sums.capability()[0] == found
    order = numnet.sum_order(np.float64)
    assert (order["accumulators"], order["levels"], order["grain"]) == (4, 4, 32768)
    assert order["lanes"] == order["vector_bytes"] // 8


def test_torch_threads_follow_the_environment(monkeypatch):
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert sums.torch_threads() == 3
    monkeypatch.setenv("MKL_NUM_THREADS", "5")
    assert sums.torch_threads() == 5
    monkeypatch.setenv("MKL_NUM_THREADS", "junk")
    assert sums.torch_threads() == 3
