"""numnet.cuda against the CPU ops and the float64 references in tests/naive.py.

On CPU CI the kernels run in Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set by
conftest.py); scripts/gpu-check runs this file on a real GPU (NUMBA_ENABLE_CUDASIM=0).
The simulator runs one OS thread per CUDA thread, so shapes stay small and hypothesis
draws few examples; the tests marked ``gpu`` need a real GPU and are skipped here.

Tolerances are numnet.testing's (justified there, looked up by naive.tolerance): sums in
another order than the CPU's (dot's tree; a GPU's fused multiply-add) are within
sum_bound of the CPU result and of the exact one, sigmoids within SIGMOID_ULP.
"""

import os
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numnet
import numnet.cuda
from numnet import testing
from numnet.cuda import kernels as K
from numnet.cuda import ops as G
from numnet.testing import assert_close

from . import naive
from .strategies import arrays, dtypes, layouts, notebook_network, notebook_neuron
from .test_errors import BAD_INPUTS, check_bad_input, numnet_frames

f32, f64 = np.float32, np.float64
DTYPES = [f32, f64]
SIMULATED = K.SIMULATED

needs_cuda = pytest.mark.skipif(
    not numnet.cuda.is_available(), reason="no CUDA GPU and no simulator (set NUMBA_ENABLE_CUDASIM=1)"
)
needs_gpu = pytest.mark.skipif(SIMULATED or not numnet.cuda.is_available(), reason="needs a real CUDA GPU")


@pytest.fixture(autouse=True)
def no_warnings():
    """numnet.cuda is as quiet as the CPU ops, on a GPU and in the simulator."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # inf and NaN arithmetic in the simulator
        warnings.filterwarnings("error", message="Grid size")  # numba's small-grid warning on a GPU
        yield


def rand(*shape, dtype=f32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def is_device_array(x):
    return bool(getattr(x, "__cuda_ndarray__", False))


REFERENCES = {
    "sigmoid": naive.sigmoid_ref,
    "dot": lambda a, b: naive.dot_ref(a, b)[0],
    "mm": lambda a, b: naive.mm_ref(a, b)[0],
    "neuron": lambda x, w, b: naive.neuron_ref(x, w, b)[0],
    "linear": lambda x, W, b: naive.linear_ref(x, W, b)[0],
    "forward": naive.forward_ref,
}


def check(name, *args, reference=True):
    """numnet.cuda.<name>(*args) against numnet.<name>(*args) and, with ``reference``,
    the float64 reference: a numpy array of the CPU result's shape and dtype, within
    naive.tolerance(name, *args) of both. Returns the GPU result."""
    got = getattr(numnet.cuda, name)(*args)
    want = getattr(numnet, name)(*args)
    assert type(got) is np.ndarray, type(got)
    tolerance = naive.tolerance(name, *args)
    assert_close(got, want, name=f"numnet.cuda.{name} vs numnet.{name}", **tolerance)
    if reference:
        expected = naive.rounded(REFERENCES[name](*args), want.dtype)
        assert_close(got, expected, name=f"numnet.cuda.{name} vs the reference", **tolerance)
    return got


# -- values: each op against the CPU op and the reference --------------------------------


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid(dtype):
    corners = [-1000, -88, -1, -0.0, 0, 1, 88, 89, 100, 1000, np.inf, -np.inf, np.nan, 1e-30, -1e-30]
    x = np.concatenate([np.array(corners, dtype), rand(30, dtype=dtype) * 20]).reshape(5, 9)
    out = check("sigmoid", x)
    # Stable as written: saturates to exactly 0 and 1, NaN stays NaN.
    assert out[0, 0] == 0 and out[1, 0] == 1 and np.isnan(out[1, 3])
    assert numnet.cuda.sigmoid(dtype(-1000)).shape == ()
    # Below -87 e^-v overflows float32 and 1/(1 + inf) is 0, as on the CPU and in torch,
    # where the exact value is subnormal: the CPU op is the reference there.
    check("sigmoid", np.array([-89, -100, -104, -110], dtype), reference=False)


@needs_cuda
@pytest.mark.parametrize("dtype, n", [(f32, 0), (f64, 1), (f32, 5), (f64, 300), (f32, 700)])
def test_dot(dtype, n):
    """n > THREADS: several blocks, so the second pass adds several partial sums."""
    out = check("dot", rand(n, dtype=dtype, seed=1), rand(n, dtype=dtype, seed=2))
    assert out.shape == () and out.dtype == dtype


@needs_cuda
def test_dot_gives_the_same_bits_every_run():
    # The simulator schedules its threads differently on every run; the tree does not care.
    a, b = rand(2, 150, seed=3), rand(2, 150, seed=4)  # 2 blocks
    first = numnet.cuda.dot(a, b)
    assert all(numnet.cuda.dot(a, b).tobytes() == first.tobytes() for _ in range(2))


@needs_cuda
@pytest.mark.parametrize(
    "n, k, m, dtype",
    [
        (1, 1, 1, f32),
        (K.TILE - 1, K.TILE + 1, K.TILE, f64),  # every edge of a tile
        (17, 33, 9, f32),  # several tiles along k, rows past one tile
        (3, 2 * K.TILE, 2, f64),  # k an exact multiple of the tile
        (K.BLOCK + 1, K.TILE + 1, K.BLOCK - 1, f32),  # one past a block's rows, one short of its columns
        (2, 3, 2 * K.BLOCK + 1, f64),  # columns into a third block: every thread's last register column
    ],
)
def test_mm(n, k, m, dtype):
    a, b = rand(n, k, dtype=dtype, seed=5), rand(k, m, dtype=dtype, seed=6)
    out = check("mm", a, b)
    assert out.tobytes() == numnet.mm(a, b).tobytes()  # fused, p in order, as on the CPU


# -- the products: in-order fused multiply-adds, the CPU's bits --------------------------------

# test_mm covers the shapes past a block (fused on both sides); here the layouts.
PRODUCT_SHAPES = [(1, 1, 1), (K.TILE - 1, K.TILE + 1, K.TILE), (17, 33, 9)]


def test_the_device_fma_rounds_once():
    """numnet.cuda.kernels.fma against exact arithmetic, where rounding twice (the
    simulator's cuda.fma, or float64 then float32) is wrong: the halfway case of
    tests/test_fused.py, and random float32 and float64 triples."""
    from .test_fused import HALFWAY_A, HALFWAY_B, HALFWAY_FUSED

    a, b, c = HALFWAY_A[0, 1], HALFWAY_B[1, 0], np.float32(2.0**-60)
    assert K.fma(a, b, c) == HALFWAY_FUSED and a * b + c != HALFWAY_FUSED
    for dtype in DTYPES:
        x, y, z = rand(3, 300, dtype=dtype, seed=40)
        z = z * dtype(1e-3)  # sums that cancel little: the product's low bits matter
        got = np.array([K.fma(p, q, r) for p, q, r in zip(x, y, z)], dtype)
        want = np.array([naive.fma_ref(p, q, r) for p, q, r in zip(x, y, z)], dtype)
        assert got.tobytes() == want.tobytes()
        assert (x * y + z != want).any()  # these triples tell one rounding from two
    assert np.isnan(K.fma(f32(np.inf), f32(0), f32(1))) and K.fma(f64(np.inf), f64(2), f64(1)) == np.inf


@needs_cuda
@pytest.mark.parametrize("n, k, m", PRODUCT_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_products_are_the_cpus_bits_in_every_layout(n, k, m, dtype):
    """mm, linear (bias) and forward (two layers, relu between): numnet.cuda's bits are
    numnet's, for C, Fortran-ordered and strided inputs (on a GPU with fma.rn, in the
    simulator with the fma that rounds once). relu and none: the products' epilogue is
    what is checked here; every activation: tests/test_same_bits.py."""
    a, b, bias = rand(n, k, dtype=dtype, seed=30), rand(k, m, dtype=dtype, seed=31), rand(m, dtype=dtype, seed=32)
    want = {
        "mm": numnet.mm(a, b),
        "linear": numnet.linear(a, b, bias),
        "forward": numnet.forward(a, [(b, bias), (b.T[:, :1], bias[:1])], hidden="relu", output="none"),
    }
    for name, va in layouts(a).items():
        vb = layouts(b)[name]
        assert numnet.cuda.mm(va, vb).tobytes() == want["mm"].tobytes(), name
        assert numnet.cuda.linear(va, vb, bias).tobytes() == want["linear"].tobytes(), name
        got = numnet.cuda.forward(va, [(vb, bias), (b.T[:, :1], bias[:1])], hidden="relu", output="none")
        assert got.tobytes() == want["forward"].tobytes(), name


@needs_cuda
def test_mm_rounds_a_halfway_float32_once():
    from .test_fused import HALFWAY_A, HALFWAY_B, HALFWAY_FUSED

    assert numnet.cuda.mm(HALFWAY_A, HALFWAY_B)[0, 0] == HALFWAY_FUSED


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_dimensions_behave_as_on_the_cpu(dtype):
    for n, k, m in [(0, 3, 2), (2, 3, 0), (0, 0, 0)]:
        assert numnet.cuda.mm(np.ones((n, k), dtype), np.ones((k, m), dtype)).shape == (n, m)
    zeros = numnet.cuda.mm(np.ones((2, 0), dtype), np.ones((0, 4), dtype))  # k = 0
    assert zeros.shape == (2, 4) and zeros.dtype == dtype and not zeros.any()
    assert numnet.cuda.dot(np.ones((0, 3), dtype), np.ones((0, 3), dtype)).item() == 0.0
    assert numnet.cuda.sigmoid(np.ones((0, 5), dtype)).shape == (0, 5)
    assert numnet.cuda.linear(np.ones((0, 2), dtype), np.ones((2, 3), dtype), np.ones(3, dtype)).shape == (0, 3)
    # A layer of width 0, then k = 0: the last layer adds only its bias.
    layers = [(np.ones((4, 0), dtype), np.ones(0, dtype)), (np.ones((0, 2), dtype), np.zeros(2, dtype))]
    out = numnet.cuda.forward(np.ones((3, 4), dtype), layers)
    assert out.shape == (3, 2) and (out == 0.5).all()
    assert numnet.cuda.forward(np.ones((0, 4), dtype), layers).shape == (0, 2)


@needs_cuda
@pytest.mark.parametrize("row_bias", [False, True])
def test_linear(row_bias):
    x, W = rand(5, K.TILE + 1, dtype=f64, seed=7), rand(K.TILE + 1, 3, dtype=f64, seed=8)
    b = rand(1, 3, dtype=f64, seed=9) if row_bias else rand(3, dtype=f64, seed=9)
    check("linear", x, W, b)


@needs_cuda
def test_notebook_neuron():
    out = check("neuron", *notebook_neuron())
    assert out.shape == (1, 1) and f"{out.item():.4f}" == "0.1595"


@needs_cuda
def test_neuron_is_sigmoid_of_dot_plus_bias():
    """The bias and sigmoid are fused into dot's second pass: same sum, same tree."""
    x, w = rand(3, 100, seed=10), rand(3, 100, seed=11)
    b = np.float32(0.25)
    assert numnet.cuda.neuron(x, w, b).item() == numnet.cuda.sigmoid(numnet.cuda.dot(x, w) + b).item()


@needs_cuda
def test_notebook_two_layer_network():
    x, W1, W2, B1, B2 = notebook_network()
    out = check("forward", x, [(W1, B1), (W2, B2)])
    assert out.shape == (1, 1) and f"{out.item():.4f}" == "0.3171"


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_across_tile_edges(dtype):
    widths = [K.TILE + 1, K.TILE - 1, 3]
    x = rand(K.TILE + 2, widths[0], dtype=dtype, seed=12)
    layers = [
        (rand(k_in, k_out, dtype=dtype, seed=13 + i), rand(k_out, dtype=dtype, seed=20 + i))
        for i, (k_in, k_out) in enumerate(zip(widths, widths[1:]))
    ]
    check("forward", x, layers)


@needs_cuda
def test_nan_and_inf_propagate():
    a = np.array([[np.nan, 1.0], [np.inf, 1.0], [np.inf, -np.inf]], f32)
    out = numnet.cuda.mm(a, np.ones((2, 1), f32))
    assert np.isnan(out[0, 0]) and out[1, 0] == np.inf and np.isnan(out[2, 0])
    assert np.isnan(numnet.cuda.mm(np.array([[np.inf]]), np.array([[0.0]]))[0, 0])  # inf * 0
    hidden = numnet.cuda.forward(a, [(np.ones((2, 2), f32), np.zeros(2, f32))])
    assert np.isnan(hidden[0]).all() and (hidden[1] == 1).all()


@needs_cuda
def test_float32_accumulates_in_float32_on_purpose():
    # 1e8 + 1 + 1: float32's spacing at 1e8 is 8, so the ones are lost in every order.
    a = np.array([1e8, 1.0, 1.0], f32)
    assert numnet.cuda.dot(a, np.ones(3, f32)).item() == 1e8
    assert numnet.cuda.mm(a[None, :], np.ones((3, 1), f32)).item() == 1e8
    assert numnet.cuda.dot(a.astype(f64), np.ones(3, f64)).item() == 1e8 + 2


@needs_cuda
def test_grid_stride_loops_cover_any_n(monkeypatch):
    """Capping the grid at 2 blocks makes every thread loop, as a GPU does for n > 262144."""
    monkeypatch.setattr(K, "MAX_BLOCKS", 2)
    x = rand(3 * 2 * K.THREADS + 5, seed=30)
    check("sigmoid", x)
    check("dot", x, x)


def test_launch_shape():
    assert G.launch_shape(0) == (1, K.THREADS)
    assert G.launch_shape(K.THREADS + 1) == (2, K.THREADS)
    assert G.launch_shape(10**9) == (K.MAX_BLOCKS, K.THREADS)
    # 2-D: x along the columns (m), y along the rows (n).
    assert G.launch_shape(K.TILE + 1, 1) == ((1, 2), (K.TILE, K.TILE))
    assert G.launch_shape(3, 2 * K.TILE) == ((2, 1), (K.TILE, K.TILE))
    # mm and linear: TILE x TILE threads cover a BLOCK x BLOCK tile of the output.
    assert G.mm_launch_shape(K.BLOCK + 1, 1) == ((1, 2), (K.TILE, K.TILE))
    assert G.mm_launch_shape(3, 2 * K.BLOCK) == ((2, 1), (K.TILE, K.TILE))
    # rows beyond the GPU's 65535 blocks along y: the grid stops there, the kernels stride
    # (tests/test_same_bits.py runs them with the cap lowered)
    assert G.mm_launch_shape(10**9, 1) == ((1, K.MAX_GRID_Y), (K.TILE, K.TILE)) and K.MAX_GRID_Y == 65535
    assert G.launch_shape(10**8, 3) == ((1, K.MAX_GRID_Y), (K.TILE, K.TILE))


@needs_cuda
def test_linear_kernel_tolerates_a_larger_grid():
    """A grid of one thread per output (launch_shape, as numnet.cuda.backward launches
    it) has more blocks than linear_act_kernel needs: the extra ones write nothing."""
    from numba import cuda

    x, W, b = rand(20, 5, seed=30), rand(5, 18, seed=31), rand(18, seed=32)
    out = cuda.to_device(np.full((20, 18), np.nan, f32))
    G.launch(K.linear_act_kernel, G.launch_shape(20, 18))(
        cuda.to_device(x), cuda.to_device(W), cuda.to_device(b), out, K.SIGMOID
    )
    assert out.copy_to_host().tobytes() == numnet.cuda.forward(x, [(W, b)]).tobytes()


@needs_cuda
@settings(max_examples=4)
@given(st.data())
def test_mm_and_linear_with_corner_values(data):
    dtype = data.draw(dtypes)
    n, k, m = (data.draw(st.integers(0, 6)) for _ in range(3))
    a, b = data.draw(arrays(dtype, (n, k))), data.draw(arrays(dtype, (k, m)))
    check("mm", a, b)
    check("linear", a, b, data.draw(arrays(dtype, (m,))))


# -- inputs: layouts, device arrays, no copies ----------------------------------------------


@needs_cuda
def test_every_numpy_layout_gives_the_same_bits_and_is_left_alone():
    a, b = rand(5, 7, dtype=f64, seed=31), rand(7, 3, dtype=f64, seed=32)
    expected = {"mm": numnet.cuda.mm(a, b), "sigmoid": numnet.cuda.sigmoid(a)}
    for name in layouts(a):
        va, vb = layouts(a)[name], layouts(b)[name]
        before = (va.copy(), vb.copy())
        got = {"mm": numnet.cuda.mm(va, vb), "sigmoid": numnet.cuda.sigmoid(va)}
        for op in expected:
            assert got[op].tobytes() == expected[op].tobytes(), (op, name)
        assert va.tobytes() == before[0].tobytes() and vb.tobytes() == before[1].tobytes()


@needs_cuda
def test_device_arrays_in_give_device_arrays_out():
    from numba import cuda

    a, b, bias = rand(4, 6, seed=33), rand(6, 3, seed=34), rand(3, seed=35)
    da, db, dbias = cuda.to_device(a), cuda.to_device(b), cuda.to_device(bias)
    results = {
        "sigmoid": (numnet.cuda.sigmoid(da), numnet.cuda.sigmoid(a)),
        "dot": (numnet.cuda.dot(da, da), numnet.cuda.dot(a, a)),
        "mm": (numnet.cuda.mm(da, db), numnet.cuda.mm(a, b)),
        "neuron": (numnet.cuda.neuron(da, da, cuda.to_device(bias[:1])), numnet.cuda.neuron(a, a, bias[:1])),
        "linear": (numnet.cuda.linear(da, db, dbias), numnet.cuda.linear(a, b, bias)),
        "forward": (numnet.cuda.forward(da, [(db, dbias)]), numnet.cuda.forward(a, [(b, bias)])),
        # A mix: the host arrays go to the GPU, the result stays there.
        "mixed": (numnet.cuda.linear(da, b, bias), numnet.cuda.linear(a, b, bias)),
    }
    for name, (on_gpu, from_host) in results.items():
        assert is_device_array(on_gpu), (name, type(on_gpu))
        assert on_gpu.copy_to_host().tobytes() == from_host.tobytes(), name


@needs_cuda
def test_strided_device_views_are_read_in_place():
    from numba import cuda

    a = rand(6, 8, dtype=f64, seed=36)
    d = cuda.to_device(a)
    view = d[:, ::2]  # (6, 4), not contiguous
    assert not view.is_c_contiguous()
    host = a[:, ::2]
    assert numnet.cuda.mm(view, d.T[::2, :]).copy_to_host().tobytes() == numnet.cuda.mm(host, a.T[::2, :]).tobytes()
    assert numnet.cuda.sigmoid(view).copy_to_host().tobytes() == numnet.cuda.sigmoid(host).tobytes()
    assert numnet.cuda.dot(view, view).copy_to_host().tobytes() == numnet.cuda.dot(host, host).tobytes()
    assert numnet.cuda.sigmoid(d[0, ::2]).copy_to_host().tobytes() == numnet.cuda.sigmoid(a[0, ::2]).tobytes()


class Spy:
    """Stands in for a kernel and remembers the arguments of its last launch."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.args = None

    def __getitem__(self, launch_shape):
        launch = self.kernel[launch_shape]

        def run(*args):
            self.args = args
            return launch(*args)

        return run


def no_copies(monkeypatch):
    """Make every host-to-GPU copy an error."""

    def refuse(*args, **kwargs):
        raise AssertionError("a device input was copied")

    monkeypatch.setattr(G.cuda, "to_device", refuse)


@needs_cuda
def test_device_inputs_are_what_the_kernels_read(monkeypatch):
    """Zero copy: the kernel receives the caller's device arrays themselves."""
    from numba import cuda

    da, db, dx = cuda.to_device(rand(3, 4)), cuda.to_device(rand(4, 2)), cuda.to_device(rand(7))
    mm, sigmoid = Spy(K.mm_kernel), Spy(K.sigmoid_kernel)
    monkeypatch.setattr(K, "mm_kernel", mm)
    monkeypatch.setattr(K, "sigmoid_kernel", sigmoid)
    no_copies(monkeypatch)
    out = numnet.cuda.mm(da, db)
    assert mm.args[0] is da and mm.args[1] is db and mm.args[2] is out
    numnet.cuda.sigmoid(dx)
    assert sigmoid.args[0] is dx
    # ... and reads them when it runs: a change made on the GPU shows in the result.
    da[0, 0] = 100.0
    assert numnet.cuda.mm(da, db).copy_to_host()[0, 0] != out.copy_to_host()[0, 0]


class Foreign:
    """A GPU array from another library (CuPy, torch): only __cuda_array_interface__."""

    def __init__(self, device_array):
        self.__cuda_array_interface__ = device_array.__cuda_array_interface__
        self._keep = device_array


@pytest.mark.gpu
@needs_gpu
def test_foreign_gpu_arrays_are_used_without_a_copy(monkeypatch):
    from numba import cuda

    a, b = rand(5, 3), rand(3, 4)
    fa, fb = Foreign(cuda.to_device(a)), Foreign(cuda.to_device(b))
    mm = Spy(K.mm_kernel)
    monkeypatch.setattr(K, "mm_kernel", mm)
    no_copies(monkeypatch)
    out = numnet.cuda.mm(fa, fb)
    assert is_device_array(out)
    pointer = lambda x: x.__cuda_array_interface__["data"][0]  # noqa: E731
    assert pointer(mm.args[0]) == pointer(fa) and pointer(mm.args[1]) == pointer(fb)
    monkeypatch.undo()
    assert_close(out.copy_to_host(), numnet.mm(a, b), **naive.tolerance("mm", a, b))


@pytest.mark.gpu
@needs_gpu
def test_torch_cuda_tensors_in_and_back_without_copies():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    x = torch.randn(64, 32, device="cuda")
    W = torch.randn(32, 16, device="cuda")
    b = torch.randn(16, device="cuda")
    out = numnet.cuda.forward(x, [(W, b)])
    back = torch.as_tensor(out, device="cuda")  # no copy: the same GPU memory
    assert back.data_ptr() == out.__cuda_array_interface__["data"][0]
    expected = torch.sigmoid(torch.addmm(b, x, W))
    torch.testing.assert_close(back, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@needs_gpu
def test_sizes_beyond_the_simulator():
    """Many blocks, grid-stride loops. Against the CPU op only, with numpy's float64
    product for the tolerance's scale (the Python-loop references would take minutes)."""

    def close_to_cpu(name, *args):
        tolerance = testing.op_tolerance(name, args, matmul=np.matmul, sigmoid=naive.sigmoid_ref)
        assert_close(getattr(numnet.cuda, name)(*args), getattr(numnet, name)(*args), **tolerance)

    x = rand(1_000_003, seed=40)
    close_to_cpu("sigmoid", x)
    close_to_cpu("dot", x, x)
    assert numnet.cuda.dot(x, x).tobytes() == numnet.cuda.dot(x, x).tobytes()
    close_to_cpu("mm", rand(300, 257, seed=41), rand(257, 129, seed=42))
    close_to_cpu("forward", rand(500, 300, seed=43), [(rand(300, 100, seed=44), rand(100, seed=45))])


@needs_cuda
def test_gpu_arrays_of_other_libraries_are_refused_by_the_simulator():
    if not SIMULATED:
        pytest.skip("a real GPU reads them")
    foreign = types.SimpleNamespace(__cuda_array_interface__={}, shape=(2, 2), dtype=np.dtype(f32))
    with pytest.raises(TypeError, match="numnet.cuda.mm: mat1 is a SimpleNamespace on a GPU"):
        numnet.cuda.mm(foreign, np.ones((2, 2), f32))


# -- errors ---------------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_the_cpu_error(case):
    """The same type and message as the CPU op, with the op named numnet.cuda.<op>."""
    check_bad_input(numnet.cuda, "numnet.cuda.", case)
    call = BAD_INPUTS[case][0]
    with pytest.raises(Exception) as cpu:
        call(numnet)
    with pytest.raises(Exception) as gpu:
        call(numnet.cuda)
    assert type(gpu.value) is type(cpu.value)
    assert str(gpu.value) == str(cpu.value).replace("numnet.", "numnet.cuda.", 1)
    frames = numnet_frames(gpu.value)  # as on the CPU: one line of numnet's at most
    assert len(frames) <= 1, [f"{f.filename}:{f.lineno} {f.name}" for f in frames]


@needs_cuda
def test_training_errors_show_one_frame_of_numnet():
    layers = [(np.ones((3, 2), f32), np.ones(2, f32))]
    x, bad_target = np.ones((4, 3), f32), np.ones((4, 3), f32)
    for call in (
        lambda: numnet.cuda.loss_and_grads(x, bad_target, layers),
        lambda: numnet.cuda.SGD(layers, lr=-1.0),
        lambda: numnet.cuda.SGD(layers, lr=0.1).step([(np.ones((2, 2), f32), np.ones(2, f32))]),
        lambda: numnet.cuda.softmax([1, 2]),
    ):
        with pytest.raises((TypeError, ValueError)) as info:
            call()
        assert len(numnet_frames(info.value)) <= 1, numnet_frames(info.value)


def test_other_errors_keep_their_whole_traceback():
    """Only input errors numnet's checks raise are shortened: a bug's frames stay."""
    from numnet import _checks as C

    def broken():
        raise ValueError("not an input error")

    with pytest.raises(ValueError) as info:
        C.raised_from_the_op(lambda: np.zeros(3).reshape(4))()
    assert len(info.traceback) > 2  # numpy's own frames are kept
    with pytest.raises(ValueError) as info:
        C.raised_from_the_op(broken)()
    assert any(entry.name == "broken" for entry in info.traceback)  # tests' code is not numnet's


@needs_cuda
def test_bad_device_inputs_get_the_same_errors():
    from numba import cuda

    d = cuda.to_device(np.ones((1, 5), f32))
    with pytest.raises(ValueError, match=r"^numnet.cuda.mm: mat1 and mat2 shapes cannot be multiplied \(1x5 and 1x5\)"):
        numnet.cuda.mm(d, d)
    with pytest.raises(
        TypeError, match="^numnet.cuda.dot: expected all arrays to have the same dtype, got float32 and float64"
    ):
        numnet.cuda.dot(d, np.ones((1, 5)))


# -- without a GPU --------------------------------------------------------------------------

VALID_CALLS = {
    "sigmoid": lambda: numnet.cuda.sigmoid(np.ones(2)),
    "sum": lambda: numnet.cuda.sum(np.ones(2)),
    "dot": lambda: numnet.cuda.dot(np.ones(2), np.ones(2)),
    "mm": lambda: numnet.cuda.mm(np.ones((2, 2)), np.ones((2, 2))),
    "neuron": lambda: numnet.cuda.neuron(np.ones(2), np.ones(2), np.ones(1)),
    "linear": lambda: numnet.cuda.linear(np.ones((2, 2)), np.ones((2, 2)), np.ones(2)),
    "forward": lambda: numnet.cuda.forward(np.ones((2, 2)), [(np.ones((2, 2)), np.ones(2))]),
}


@pytest.mark.parametrize("op", sorted(VALID_CALLS))
def test_without_a_gpu_every_op_says_how_to_simulate(op, monkeypatch):
    monkeypatch.setattr(G, "cuda", types.SimpleNamespace(is_available=lambda: False))
    assert numnet.cuda.is_available() is False
    with pytest.raises(numnet.cuda.CudaUnavailableError) as info:
        VALID_CALLS[op]()
    message = str(info.value)
    assert isinstance(info.value, RuntimeError) and "\n" not in message
    assert message.startswith(f"numnet.cuda.{op}: numba finds no usable CUDA GPU")
    assert "NUMBA_ENABLE_CUDASIM=1 before numba or numnet is imported" in message
    assert "pip install 'numnet[cuda]'" in message


def test_without_numba_cuda_the_error_says_why(monkeypatch):
    monkeypatch.setattr(G, "cuda", None)
    monkeypatch.setattr(G, "_import_error", ImportError("no module named cuda.bindings"), raising=False)
    assert numnet.cuda.is_available() is False
    with pytest.raises(numnet.cuda.CudaUnavailableError, match=r"cannot be imported \(no module named cuda.bindings\)"):
        VALID_CALLS["mm"]()


def test_on_simulator_says_which():
    assert numnet.cuda.on_simulator() is SIMULATED


def test_is_available_never_raises(monkeypatch):
    def broken():
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(G, "cuda", types.SimpleNamespace(is_available=broken))
    assert numnet.cuda.is_available() is False


def test_import_without_gpu_or_simulator_in_a_fresh_process():
    """NUMBA_DISABLE_CUDA=1 hides any GPU: import works, is_available is False, ops explain."""
    script = (
        "import numpy as np, numnet, numnet.cuda\n"
        "print(numnet.cuda.is_available())\n"
        "try:\n"
        "    numnet.cuda.mm(np.ones((2, 2)), np.ones((2, 2)))\n"
        "except numnet.cuda.CudaUnavailableError as e:\n"
        "    print(type(e).__name__)\n"
    )
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "NUMBA_DISABLE_CUDA": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "CudaUnavailableError"], done.stdout + done.stderr


# -- sum --------------------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 5, 300, 700])
def test_sum_is_within_the_sum_bound_of_the_cpus(dtype, n):
    """The GPU's tree against the CPU's torch.sum order: within sum_bound of each other."""
    x = rand(n, dtype=dtype, seed=n)
    out = numnet.cuda.sum(x)
    assert out.shape == () and out.dtype == dtype
    assert_close(out, numnet.sum(x), **testing.op_tolerance("sum", (x,), matmul=None, sigmoid=None))
    assert_close(
        out,
        naive.rounded(np.sum(x, dtype=np.float64), dtype),
        **testing.op_tolerance("sum", (x,), matmul=None, sigmoid=None),
    )


@needs_cuda
def test_sum_is_dots_tree():
    # Multiplying by ones is exact (and the simulator fuses nothing): the same tree, the same bits.
    x = rand(600, seed=9)  # 3 blocks
    assert numnet.cuda.sum(x).tobytes() == numnet.cuda.dot(x, np.ones_like(x)).tobytes()
    first = numnet.cuda.sum(x)
    assert all(numnet.cuda.sum(x).tobytes() == first.tobytes() for _ in range(2))


@needs_cuda
def test_sum_corners_and_layouts():
    from numba import cuda

    for dtype in DTYPES:
        assert numnet.cuda.sum(np.zeros((0, 3), dtype)).tobytes() == np.zeros((), dtype).tobytes()
        assert numnet.cuda.sum(np.array(2.5, dtype)).item() == 2.5
        assert np.isnan(numnet.cuda.sum(np.array([1, np.nan], dtype)))
    x = rand(12, 20, seed=2)
    for view in (x.T, x[::2, ::3], np.asfortranarray(x), x[::-1]):
        assert numnet.cuda.sum(view).tobytes() == numnet.cuda.sum(np.ascontiguousarray(view)).tobytes()
    d = cuda.to_device(x)
    out = numnet.cuda.sum(d)
    assert getattr(out, "__cuda_ndarray__", False)
    assert out.copy_to_host().tobytes() == numnet.cuda.sum(x).tobytes()
    with pytest.raises(numnet.DTypeError, match="^numnet.cuda.sum: expected float32 or float64"):
        numnet.cuda.sum(np.ones(3, np.int32))


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_products_are_the_cpus_bits(dtype):
    """dW = h^T delta and delta W^T (numnet.cuda.backward_kernels) against the CPU's."""
    from numba import cuda

    from numnet import backward_kernels as BK
    from numnet import kernels as CK
    from numnet.cuda import backward_kernels as GBK

    n, k, m = 9, 17, 5
    h, delta, W = rand(n, k, dtype=dtype, seed=41), rand(n, m, dtype=dtype, seed=42), rand(k, m, dtype=dtype, seed=43)
    y = np.ones((n, k), dtype)
    want_dW, want_below = np.empty((k, m), dtype), np.empty((n, k), dtype)
    BK.matmul_tn_kernel(h, delta, want_dW, 1)
    BK.backprop_kernel(delta, W, y, CK.IDENTITY, want_below, 1)
    dW, below = cuda.to_device(np.empty((k, m), dtype)), cuda.to_device(np.empty((n, k), dtype))
    GBK.matmul_tn_kernel[(1, 2), (16, 16)](cuda.to_device(h), cuda.to_device(delta), dW)
    GBK.backprop_kernel[(2, 1), (16, 16)](
        cuda.to_device(delta), cuda.to_device(W), cuda.to_device(y), CK.IDENTITY, below
    )
    assert dW.copy_to_host().tobytes() == want_dW.tobytes()
    assert below.copy_to_host().tobytes() == want_below.tobytes()
