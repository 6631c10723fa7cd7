"""The blocked matrix product at the edges of its blocks, and the vectorised e^x.

numnet.kernels computes large products by blocks: MR-row panels of a, NR-column panels
of b (64 float32 or 32 float64 with AVX-512, 16 or 8 with AVX2: kernels.tile_columns), slices of the sum at most KC deep, PANELS_PER_BLOCK panels
per prange iteration, split over THREADS threads; products below ROWS_MIN
multiply-adds, or with fewer than MR rows, take the plain loops. Each size here sits one below, at or
one above one of those edges, and each result is checked three ways:

- against the float64 references of tests/naive.py, within numnet.testing's bounds;
- bit for bit against the plain loops: both add the k products of each output left to
  right, so the blocking may change the speed, never the bits;
- bit for bit across layouts and thread counts (the same bits on every run).
"""

import math
import platform

import numba
import numpy as np
import pytest

import numnet
from numnet import backward_kernels as BK
from numnet import kernels as K
from numnet import testing
from numnet.testing import assert_close, ulp_distance

from . import naive
from .strategies import layouts

f32, f64 = np.float32, np.float64
NR = {f32: K.tile_columns(f32), f64: K.tile_columns(f64)}


def rand(*shape, dtype=f32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def deep_enough(n, m):
    """A depth k that sends an n x m product past the plain loops (at least one)."""
    return max(1, math.ceil(K.ROWS_MIN / (n * m)))


def edges(size):
    return [size - 1, size, size + 1]


def same_bits(got, want):
    """Bit for bit, except that NaN's payload may differ (x86 picks an operand's)."""
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert got[~nan].tobytes() == want[~nan].tobytes()


def plain_loops(a, b, bias=None, act=K.IDENTITY):
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    K._mm_loops(a, b, None if bias is None else bias.reshape(-1), out, act)
    return out


# (n, k, m): rows around MR, the rows of a block and of a round of blocks (one block per
# thread); columns around NR; depths around KC and 2 KC; all deep enough to be blocked.
ROWS = [K.MR, K.MR * K.PANELS_PER_BLOCK, K.MR * K.PANELS_PER_BLOCK * K.THREADS]
SHAPES = (
    [(n, deep_enough(n, 5), 5) for n in edges(K.MR)]
    + [(n, deep_enough(n, 24), 24) for size in ROWS[1:] for n in edges(size)]
    + [(13, k, 17) for k in edges(K.KC) + edges(2 * K.KC)]
)


def float64_product(a, b):
    """a @ b in float64 by numpy: the reference for the deep products, where the Python
    loops of tests/naive.py would take minutes (the inputs here are finite)."""
    return np.asarray(a, f64) @ np.asarray(b, f64)


@pytest.mark.parametrize("n, k, m", SHAPES)
@pytest.mark.parametrize("dtype", [f32, f64])
def test_mm_at_block_edges(n, k, m, dtype):
    a, b = rand(n, k, dtype=dtype, seed=1), rand(k, m, dtype=dtype, seed=2)
    out = numnet.mm(a, b)
    if n * k * m <= 4 * 48**3:  # tests/naive.py's exact references are quick enough
        value, _ = naive.mm_ref(a, b)
        tolerance = naive.tolerance("mm", a, b)
    else:
        value = float64_product(a, b)
        tolerance = testing.op_tolerance("mm", (a, b), matmul=float64_product, sigmoid=naive.sigmoid_ref)
    assert_close(out, naive.rounded(value, dtype), **tolerance)
    same_bits(out, plain_loops(a, b))


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("m_offset", [-1, 0, 1])
def test_columns_at_panel_edges(dtype, m_offset):
    m = NR[dtype] + m_offset
    n, k = 48, deep_enough(48, m)
    a, b = rand(n, k, dtype=dtype, seed=3), rand(k, m, dtype=dtype, seed=4)
    bias = rand(m, dtype=dtype, seed=5)
    out = numnet.linear(a, b, bias)
    value, _ = naive.linear_ref(a, b, bias)
    assert_close(out, naive.rounded(value, dtype), **naive.tolerance("linear", a, b, bias))
    same_bits(out, plain_loops(a, b, bias))


@pytest.mark.parametrize("dtype", [f32, f64])
def test_forward_across_blocks(dtype):
    """Batch one past a block of rows, widths one past a panel."""
    batch = K.MR * K.PANELS_PER_BLOCK + 1
    widths = [300, NR[dtype] + 1, NR[dtype] - 1]
    x = rand(batch, widths[0], dtype=dtype, seed=6)
    layers = [
        ((rand(i, o, dtype=dtype, seed=7 + j) / np.sqrt(i)).astype(dtype), rand(o, dtype=dtype, seed=9 + j))
        for j, (i, o) in enumerate(zip(widths, widths[1:]))
    ]
    out = numnet.forward(x, layers)
    assert_close(out, naive.rounded(naive.forward_ref(x, layers), dtype), **naive.tolerance("forward", x, layers))
    h = x
    for W, b in layers:
        h = plain_loops(h, W, b, K.SIGMOID)
    same_bits(out, h)


def test_small_and_wide_products_take_the_loops_and_agree():
    """Fewer rows than MR (a batch of one through a wide layer) stays on the loops."""
    a, b = rand(K.MR - 1, 300, seed=10), rand(300, 200, seed=11)
    assert (K.MR - 1) * 300 * 200 >= K.ROWS_MIN
    same_bits(numnet.mm(a, b), plain_loops(a, b))


def test_corners_propagate_through_the_blocked_kernel():
    n, k, m = 30, 200, 40
    a, b = rand(n, k, seed=12), rand(k, m, seed=13)
    a[0, 0], a[1, 5], a[2, :] = np.nan, np.inf, 0.0
    b[7, 3], b[:, 39] = -np.inf, 1e30
    out = numnet.mm(a, b)
    same_bits(out, plain_loops(a, b))
    assert np.isnan(out[0]).all() and np.isinf(out[1]).any()
    assert not np.isnan(out[3:, :3]).any()


def test_layouts_and_thread_counts_give_the_same_bits():
    n, k, m = 2 * K.MR * K.PANELS_PER_BLOCK + 5, K.KC + 3, 2 * NR[f32] + 3  # two slices of k
    a, b = rand(n, k, seed=14), rand(k, m, seed=15)
    bias = rand(m, seed=16)
    want = numnet.linear(a, b, bias)
    for name, view in layouts(a).items():
        assert numnet.linear(view, layouts(b)[name], bias).tobytes() == want.tobytes(), name
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert numnet.linear(a, b, bias).tobytes() == want.tobytes()
    finally:
        numba.set_num_threads(threads)
    assert all(numnet.linear(a, b, bias).tobytes() == want.tobytes() for _ in range(3))
    serial = np.empty_like(want)  # the serial twin (a forked child of an OpenMP parent)
    K.linear_act_kernel(a, b, bias, serial, K.IDENTITY, 1)
    assert serial.tobytes() == want.tobytes()


# -- every product kernel against the plain loops ---------------------------------------------


@numba.njit
def _by_rows(a, b, bias, out, act, threads, copied=False):
    """The row kernel (b read in place, or each panel copied), threaded or serial, as
    numnet.kernels._mm calls it."""
    if threads > 1:
        K._mm_rows(K._as_strided(a), K._c_ordered(b), bias, out, act, True, copied)
    else:
        K._mm_rows_serial(K._as_strided(a), K._c_ordered(b), bias, out, act, False, copied)


@numba.njit
def _by_copied_rows(a, b, bias, out, act, threads):
    """The row kernel with each panel of b copied by the thread that reads it."""
    _by_rows(a, b, bias, out, act, threads, True)


@numba.njit
def _by_blocks(a, b, bias, out, act, threads):
    """The blocked kernel (b and a packed), threaded or serial, as _mm calls it."""
    if threads > 1:
        K._mm_blocked(K._as_strided(a), K._as_strided(b), bias, out, act)
    else:
        K._mm_blocked_serial(K._as_strided(a), K._as_strided(b), bias, out, act)


KERNELS = {"rows": _by_rows, "copied rows": _by_copied_rows, "blocks": _by_blocks}

# (n, k, m) for every kernel, whatever size _mm would send them: rows from one to one past
# a panel, a block and a narrow tile, columns from a few (one partial panel) to past two
# panels, a last panel one vector wide (the row kernel's narrow tile) and one value wider,
# shallow and deep sums; the row kernel's tasks split the rows when the panels do not
# split evenly between the threads (m = 10, NR + 1), and not otherwise (2 NR), and on a
# CPU with a 2 MiB L2 split them share-major from ROWS_SHARE_TILES tiles a thread (97 and
# MR * PANELS_PER_BLOCK + 1 rows, with two threads; with copied panels only where a
# thread has at most two panels and COPIED_SHARE_TILES tiles: not at 5 NR + 3 columns,
# at one past MR * COPIED_SHARE_TILES * THREADS rows); one deeper than KC (the
# blocked kernel's two slices).
KERNEL_SHAPES = {
    f32: [
        (1, 7, 3),
        (K.MR - 1, 50, 10),
        (K.MR + 1, 300, NR[f32] + 1),
        (16, 784, 2 * NR[f32]),
        (K.MR * K.PANELS_PER_BLOCK + 1, 33, 2 * NR[f32] - 1),
        (97, 1, 10),
        (K.NARROW_ROWS + 1, 40, NR[f32] + NR[f32] // K.VECTORS),
        (30, 40, NR[f32] + NR[f32] // K.VECTORS + 1),
        (97, 20, 5 * NR[f32] + 3),
        (K.MR * K.COPIED_SHARE_TILES * K.THREADS + 1, 5, NR[f32] + 1),
        (K.MR + 1, K.KC + 1, NR[f32] + 3),
    ],
    f64: [
        (K.MR + 1, 300, NR[f64] + 1),
        (16, 200, 2 * NR[f64]),
        (49, 65, 10),
        (K.NARROW_ROWS - 1, 20, NR[f64] // K.VECTORS),
    ],
}


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("dtype", [f32, f64])
def test_each_product_kernel_equals_the_plain_loops(kernel, dtype):
    """Each fast kernel, threaded and serial, with and without a bias, with an activation:
    the same bits as _mm_loops, on every layout of a and b."""
    for n, k, m in KERNEL_SHAPES[dtype]:
        a, b = rand(n, k, dtype=dtype, seed=30), rand(k, m, dtype=dtype, seed=31)
        bias = rand(m, dtype=dtype, seed=32)
        for act, row in ((K.IDENTITY, None), (K.SIGMOID, bias), (K.RELU, bias)):
            want = plain_loops(a, b, row, act)
            for name in ("c", *layouts(a)):
                a_view = a if name == "c" else layouts(a)[name]
                b_view = b if name == "c" else layouts(b)[name]
                for threads in (K.THREADS, 1):
                    out = np.empty((n, m), dtype)
                    KERNELS[kernel](a_view, b_view, row, out, act, threads)
                    same_bits(out, want)


def test_the_transposed_operands_of_the_backward_pass_take_the_row_kernel_alike():
    """h^T delta and delta W^T (transposed views, not copies) by the row kernel: the bits
    of the plain loops; W^T is copied to C order first, h^T read through its strides."""
    h, delta, W = rand(64, 300, seed=33), rand(64, 70, seed=34), rand(300, 70, seed=35)
    for a, b in ((h.T, delta), (delta, W.T)):
        out = np.empty((a.shape[0], b.shape[1]), f32)
        _by_rows(a, b, None, out, K.IDENTITY, K.THREADS)
        same_bits(out, plain_loops(a, b))


# -- the backward products -------------------------------------------------------------------

BACKWARD_SHAPES = [(64, 784, 128), (K.MR * K.PANELS_PER_BLOCK + 1, 100, NR[f32] + 1), (7, 300, 200), (5, 3, 2)]


@pytest.mark.parametrize("n, k, m", BACKWARD_SHAPES)
@pytest.mark.parametrize("dtype", [f32, f64])
def test_weight_gradient_blocked_threaded_serial_and_loops_agree(n, k, m, dtype):
    """dW = h^T delta through the blocked kernel (threaded and serial) and by the plain
    loops: the same bits; within the float64 reference's bound."""
    h, delta = rand(n, k, dtype=dtype, seed=20), rand(n, m, dtype=dtype, seed=21)
    outs = []
    for threads in (K.THREADS, 1):
        out = np.empty((k, m), dtype)
        BK.matmul_tn_kernel(h, delta, out, threads)
        outs.append(out)
    loops = np.empty((k, m), dtype)
    K._mm_loops(h.T, delta, None, loops, K.IDENTITY)
    same_bits(outs[0], loops)
    same_bits(outs[1], loops)
    tolerance = testing.op_tolerance("mm", (h.T, delta), matmul=float64_product, sigmoid=naive.sigmoid_ref)
    assert_close(outs[0], naive.rounded(float64_product(h.T, delta), dtype), **tolerance)


@pytest.mark.parametrize("n, k, m", BACKWARD_SHAPES)
@pytest.mark.parametrize("act", [K.SIGMOID, K.RELU, K.TANH, K.IDENTITY])
def test_backprop_blocked_threaded_serial_and_loops_agree(n, k, m, act):
    """delta W^T * f'(z) through the blocked kernel (threaded and serial) and by the plain loops:
    the same bits."""
    delta, W = rand(n, m, seed=22), rand(k, m, seed=23)
    y = naive.rounded(naive.sigmoid_ref(rand(n, k, seed=24)), f32)  # a layer's output
    outs = []
    for threads in (K.THREADS, 1):
        out = np.empty((n, k), f32)
        BK.backprop_kernel(delta, W, y, act, out, threads)
        outs.append(out)
    loops = np.empty((n, k), f32)
    K._mm_loops(delta, W.T, None, loops, K.IDENTITY)
    BK.act_grad_kernel(loops, y, act, loops)
    same_bits(outs[0], loops)
    same_bits(outs[1], loops)


# -- e^x -------------------------------------------------------------------------------------


def test_expf_table_is_two_to_the_i_over_32():
    """_EXP2F_TABLE[i] + (i << 47) are the bits of 2^(i/32) rounded to float64: the 32nd
    root of 2^i by five integer square roots, rounded to 53 bits."""
    for i, bits in enumerate(K._EXP2F_TABLE):
        root = 2**i << (32 * 80)  # 2^(i/32) * 2^80, as an integer, after the roots
        for _ in range(5):
            root = math.isqrt(root)
        value = root / 2**80  # float() of a big int ratio rounds to nearest
        assert np.float64(value).view(np.uint64) == int(bits) + (i << 47), i


@numba.njit
def _expf_all(x, out):
    for i in range(x.shape[0]):
        out[i] = K.expf(x[i])


@numba.njit
def _libm_expf_all(x, out):
    for i in range(x.shape[0]):
        out[i] = np.exp(x[i])


def test_expf_is_within_one_ulp_and_saturates():
    bits = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)  # ~1e6 floats of every sign and size
    x = np.concatenate(
        [bits.view(f32), np.array([88.72283, 88.72284, -103.97208, -103.9721, -np.inf, np.inf, np.nan, 0, -0.0], f32)]
    )
    out = np.empty_like(x)
    _expf_all(x, out)
    with np.errstate(all="ignore"):
        exact = np.exp(x.astype(f64)).astype(f32)  # float64 e^x, rounded: within 0.5 ULP + 2^-29
    finite = np.isfinite(exact) & (exact > np.finfo(f32).tiny)
    assert ulp_distance(out[finite], exact[finite]).max() <= 1
    assert (out[np.isnan(x)] != out[np.isnan(x)]).all()
    assert out[-5] == 0 and out[-4] == np.inf and out[-2] == 1 and out[-1] == 1
    assert out[-9 + 1] == np.inf and out[-9] < np.inf  # just above and at log(max float32)


def test_expf_gives_the_c_librarys_bits():
    """Against the C library's expf (numba's np.exp on a float32): equal wherever that
    is glibc's algorithm (x86-64 glibc >= 2.28; checked on every float32 with 2.36)."""
    libc, version = platform.libc_ver()
    if libc != "glibc" or tuple(map(int, version.split(".")[:2])) < (2, 28):
        pytest.skip(f"the C library is {libc} {version}, not glibc >= 2.28")
    x = np.linspace(-104, 89, 2_000_001, dtype=f32)
    ours, libm = np.empty_like(x), np.empty_like(x)
    _expf_all(x, ours)
    _libm_expf_all(x, libm)
    same_bits(ours, libm)


def test_sigmoid_kernel_in_chunks_equals_one_at_a_time():
    """Past CHUNK elements sigmoid runs in parallel chunks: each element computed alike."""
    x = rand(3 * K.CHUNK + 7, seed=17) * 30
    out = numnet.sigmoid(x)
    one = np.ones(1, f32)
    want = np.array([K.sigma(v, one[0]) for v in x[:: K.CHUNK // 3]], f32)
    assert out[:: K.CHUNK // 3].tobytes() == want.tobytes()
    assert_close(out, naive.rounded(naive.sigmoid_ref(x), f32), **naive.tolerance("sigmoid", x))


@numba.njit
def _aligned_arrays(n):
    """Addresses (mod CACHE_LINE) and contents of the kernels' aligned allocations."""
    e32 = K.empty_aligned((n, 3, K.MR), np.float32)
    e64 = K.empty_aligned((n, 5), np.float64)
    z32 = K.zeros_aligned((n, 7), np.float32)
    return (
        e32.ctypes.data % K.CACHE_LINE,
        e64.ctypes.data % K.CACHE_LINE,
        z32.ctypes.data % K.CACHE_LINE,
        e32.shape,
        z32,
    )


@pytest.mark.parametrize("n", [0, 1, 5, 64])
def test_the_kernels_arrays_start_a_cache_line(n):
    """Packed panels, copies of b and intermediates start a cache line (a vector load
    that straddles two lines cost 10-20% of a product); zeros_aligned is all zeros."""
    for _ in range(8):  # numba's own np.empty starts at 32 bytes: half of them would miss
        off32, off64, offz, shape, z = _aligned_arrays(n)
        assert (off32, off64, offz) == (0, 0, 0)
        assert shape == (n, 3, K.MR)
        assert z.shape == (n, 7) and z.flags.c_contiguous and not z.any()


def at_offset(x, offset):
    """A C-ordered copy of x starting ``offset`` bytes past a cache line."""
    raw = np.empty(x.size + K.CACHE_LINE, x.dtype)
    skip = (-raw.ctypes.data % K.CACHE_LINE + offset) // x.itemsize
    y = raw[skip : skip + x.size].reshape(x.shape)
    y[...] = x
    assert y.ctypes.data % K.CACHE_LINE == offset
    return y


# (n, k, m): the copied panel a whole NR wide (m a multiple of NR), one vector wide, and
# in between; n * m at least ALIGNED_PANELS_MIN, so that the Xeon starts the panels read
# in place past b's first columns. The rows shared out (many rows) and the panels (fewer
# rows), the copied panel then read by one thread or, with an odd number of panels, by
# both (each copying it).
UNALIGNED_SHAPES = {
    f32: [
        (512, 20, 2 * NR[f32]),
        (1024, 9, NR[f32] + 16),
        (600, 7, NR[f32] + 48),
        (256, 5, 4 * NR[f32] + 16),
        (64, 11, 2 * NR[f32] + 16),
        (64, 11, 2 * NR[f32] + 48),
        (64, 6, 3 * NR[f32] + 16),
    ],
    f64: [(1024, 20, 2 * NR[f64]), (2048, 9, NR[f64] + 8), (1100, 7, NR[f64] + 24), (90, 11, 4 * NR[f64] + 8)],
}


@pytest.mark.parametrize("dtype", [f32, f64])
def test_the_row_product_gives_the_same_bits_wherever_b_starts(dtype):
    """b read in place at every offset from a cache line (the Xeon then starts its panels
    at the first column that starts a line and copies b's first columns beside its
    last): the same bits as the plain loops, threaded and serial, with a bias and an
    activation or without."""
    for n, k, m in UNALIGNED_SHAPES[dtype]:
        a, b = rand(n, k, dtype=dtype, seed=40), rand(k, m, dtype=dtype, seed=41)
        bias = rand(m, dtype=dtype, seed=42)
        for act, row in ((K.IDENTITY, None), (K.SIGMOID, bias)):
            want = plain_loops(a, b, row, act)
            for offset in range(0, K.CACHE_LINE, np.dtype(dtype).itemsize):
                b_at = at_offset(b, offset)
                for rows, threaded in ((K._mm_rows, True), (K._mm_rows_serial, False)):
                    for copied in (False, True):
                        out = np.full((n, m), np.nan, dtype)
                        rows(a, b_at, row, out, act, threaded, copied)
                        same_bits(out, want)


def test_the_room_a_panel_of_b_has_in_the_l2_cache():
    """A panel of b read in place has the whole L2 cache when its rows start at every
    offset in a page, a quarter of it when they start 1 KiB apart (four offsets, each a
    256-byte row of the tile: 16 of a page's 64 lines), and a sixteenth when they start a
    page apart or more (one offset: 4 lines)."""
    whole = K.L2_BYTES
    lines_in_a_page = 4096 // 64
    tile_lines = K.TILE_BYTES // 64
    assert K._panel_room(4 * 1000) == whole  # 4000 = 32 * 125: 128 offsets, all 64 lines
    assert K._panel_room(1024) == whole * 4 * tile_lines // lines_in_a_page
    assert K._panel_room(4096) == K._panel_room(4 * 4096) == whole * tile_lines // lines_in_a_page


@pytest.mark.skipif(not K.LARGE_L2, reason="the rule for the Intel Xeon's 2 MiB L2 cache")
def test_wide_b_with_rows_a_power_of_two_apart_is_copied():
    """b is read in place only where its panels keep room in the L2 cache (512x1024 ->
    1024 took twice as long in place as packed), past ROWS_MAX rows only if narrow too."""
    assert K.rows_pay(512, 784, 256, 4)  # the bench's layers: 196 KiB of 512 KiB
    assert K.rows_pay(512, 512, 512, 4)  # half the room: still in place
    assert not K.rows_pay(512, 1024, 1024, 4)  # 256 KiB of 128 KiB: copied
    assert not K.rows_pay(512, 256, 4096, 4)  # rows a page apart: copied
    assert not K.rows_pay(64, 784, 512, 4)  # 196 KiB of 256 KiB: copied (218 -> 284 GFLOP/s)
    assert K.rows_pay(K.ROWS_FEW, 4096, 4096, 4)  # few rows: never worth copying b
    assert K.rows_pay(4096, 784, 10, 4)  # an output layer: one narrow panel
    assert not K.rows_pay(2048, 4096, 128, 4)  # narrow, but 1 MiB panels of 1 MiB of room
    assert not K.rows_pay(4096, 784, 256, 4)  # four panels: not in place past ROWS_MAX rows


def test_which_products_copy_the_panels_of_b():
    """Where b is not read in place, the row product copies its panels only on the Intel
    Xeon's 2 MiB L2, and there only with a's rows contiguous and a panel of b in half the
    cache (1024x8192 -> 256 ran at 208 GFLOP/s copied against 279 blocked, a transposed a at
    159 against 289)."""
    deepest = K.L2_BYTES // (K.TILE_BYTES * K.COPIED_PANEL)
    assert K.copies_pay(np.empty((64, deepest), f32)) == K.LARGE_L2
    assert K.copies_pay(np.empty((64, deepest), f64)) == K.LARGE_L2  # NR halves: same bytes
    assert not K.copies_pay(np.empty((64, deepest + 1), f32))
    assert not K.copies_pay(np.empty((deepest, 64), f32).T)  # h^T of the backward pass
