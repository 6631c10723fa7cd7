"""numnet.cuda computes numnet's bits: forward with every activation, sigmoid, softmax,
log_softmax, both losses and their gradients, SGD's step and a few training steps,
compared with ``np.array_equal`` (never a tolerance), float32 and float64, with the
inputs in the layouts the ops take them (numpy C and Fortran order, strided views, and
C, Fortran and strided device arrays).

In the simulator the elementwise functions are the CPU's own compiled functions
(numnet.elementwise), so equality here checks that every op routes through them and
sums in the CPU's order, with products whose fma rounds once (numnet.cuda.kernels.fma);
that a GPU compiles the same instructions (no libdevice exp/log/tanh, nothing fused
that the CPU rounds twice) is tests/test_ptx.py's part. dot and sum are not here: they
add in a tree on the GPU and agree with the CPU within numnet.testing's sum bound
(tests/test_cuda.py). Shapes are small: the simulator runs a thread per CUDA thread.
"""

import numpy as np
import pytest

import numnet
import numnet.cuda
from numnet.cuda import kernels as K

f32, f64 = np.float32, np.float64
ACTIVATIONS = ("sigmoid", "relu", "tanh", "none")

pytestmark = pytest.mark.skipif(not numnet.cuda.is_available(), reason="no CUDA GPU and no simulator")


def rand(*shape, dtype=f32, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def place(a, layout):
    """``a`` as the ops may receive it: numpy "C", "F" or "strided" (every other column
    of a wider array), or a device array "dev-C", "dev-F", "dev-strided"."""
    from numba import cuda

    if layout.endswith("F"):
        a = np.asfortranarray(a)
    elif layout.endswith("strided"):
        wide = np.repeat(a, 2, axis=-1)
        a = wide[::2] if a.ndim == 1 else wide[:, ::2]
    else:
        a = np.ascontiguousarray(a)
    if not layout.startswith("dev-"):
        return a
    if layout.endswith("strided"):
        wide = cuda.to_device(np.repeat(np.ascontiguousarray(a), 2, axis=-1))
        return wide[::2] if a.ndim == 1 else wide[:, ::2]
    return cuda.to_device(a)


def host(a):
    return a.copy_to_host() if getattr(a, "__cuda_ndarray__", False) else np.asarray(a)


def network(dtype, seed=0):
    """x (5, 7) -> 6 -> 3 with corners in x (+-30, 0, -0.0): sigmoid and tanh saturate."""
    x = rand(5, 7, dtype=dtype, seed=seed, scale=2.0)
    x[0, :4] = [30, -30, 0, -0.0]
    layers = [
        (rand(7, 6, dtype=dtype, seed=seed + 1), rand(6, dtype=dtype, seed=seed + 2)),
        (rand(6, 3, dtype=dtype, seed=seed + 3), rand(1, 3, dtype=dtype, seed=seed + 4)),
    ]
    return x, layers


CLASSES = np.array([0, 2, 1, 2, 0])


def results(dtype, layout="C"):
    """[(name, numnet.cuda's result, numnet's result)] for every op this file covers, the
    inputs in ``layout``; the CPU always gets C-ordered numpy inputs."""
    x, layers = network(dtype)
    target = rand(5, 3, dtype=dtype, seed=9)
    gx = place(x, layout)
    glayers = [(place(W, layout), place(b, layout)) for W, b in layers]
    z = np.concatenate(
        [
            np.array([-1000, -88, -1, -0.0, 0, 1, 88, 89, 1000, np.inf, -np.inf, np.nan], dtype),
            rand(33, dtype=dtype, seed=5, scale=20),
        ]
    ).reshape(5, 9)
    out = [("sigmoid", numnet.cuda.sigmoid(place(z, layout)), numnet.sigmoid(z))]
    for act in ACTIVATIONS:
        out.append(
            (
                f"forward {act}",
                numnet.cuda.forward(gx, glayers, hidden=act, output=act),
                numnet.forward(x, layers, hidden=act, output=act),
            )
        )
    logits = np.concatenate([z[:, :8], rand(5, 8, dtype=dtype, seed=6, scale=30)])
    # the simulator's log_softmax/softmax take host arrays (tests/test_ptx.py says why)
    out.append(("softmax", numnet.cuda.softmax(place(logits, layout.removeprefix("dev-"))), numnet.softmax(logits)))
    out.append(
        ("log_softmax", numnet.cuda.log_softmax(place(logits, layout.removeprefix("dev-"))), numnet.log_softmax(logits))
    )
    for loss, t, act in (("mse", target, "tanh"), ("cross_entropy", CLASSES, "sigmoid")):
        gt = place(t, layout) if t.ndim == 2 else t
        got = numnet.cuda.loss_and_grads(
            gx, gt, glayers, hidden=act, output="sigmoid" if loss == "mse" else "none", loss=loss
        )
        want = numnet.loss_and_grads(x, t, layers, hidden=act, output="sigmoid" if loss == "mse" else "none", loss=loss)
        out.append((f"{loss} loss", got[0], want[0]))
        for i, ((gW, gb), (cW, cb)) in enumerate(zip(got[1], want[1]), start=1):
            out += [(f"{loss} dW{i}", gW, cW), (f"{loss} db{i}", gb, cb)]
    return out


def training(dtype, momentum, layout="C", steps=3):
    """(numnet.cuda's parameters, numnet's) after ``steps`` SGD steps: step(grads) with
    fixed gradients, then train_step with the loss of the moving network."""
    x, layers = network(dtype, seed=20)
    grads = [
        (rand(*W.shape, dtype=dtype, seed=30 + i), rand(*b.shape, dtype=dtype, seed=40 + i))
        for i, (W, b) in enumerate(layers)
    ]
    cpu = [(W.copy(), b.copy()) for W, b in layers]
    gpu = [(place(W, layout), place(b, layout)) for W, b in layers]
    cpu_opt = numnet.SGD(cpu, lr=0.1, momentum=momentum)
    gpu_opt = numnet.cuda.SGD(gpu, lr=0.1, momentum=momentum)
    losses = []
    for _ in range(steps):
        cpu_opt.step(grads)
        gpu_opt.step([(place(gW, layout), place(gb, layout)) for gW, gb in grads])
    for _ in range(steps):
        losses.append(
            (
                gpu_opt.train_step(place(x, layout), CLASSES, hidden="tanh", output="none", loss="cross_entropy"),
                cpu_opt.train_step(x, CLASSES, hidden="tanh", output="none", loss="cross_entropy"),
            )
        )
    return gpu, cpu, losses


def differing(got, want):
    """How many elements of got and want differ in their bits (NaN equal to NaN)."""
    got, want = host(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
    return int(np.sum(~((got == want) & (np.signbit(got) == np.signbit(want)) | (np.isnan(got) & np.isnan(want)))))


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("layout", ["C", "F", "strided", "dev-C", "dev-F", "dev-strided"])
def test_ops_give_the_cpus_bits(dtype, layout):
    if layout != "C" and dtype == f64 and layout.startswith("dev-") is False:
        pytest.skip("numpy F/strided float64: covered by float32's and the device layouts")
    bad = {name: differing(got, want) for name, got, want in results(dtype, layout)}
    bad = {name: count for name, count in bad.items() if count}
    assert not bad, f"elements that differ from the CPU's: {bad}"


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("momentum, layout", [(0.0, "C"), (0.9, "C"), (0.9, "dev-strided"), (0.0, "dev-F")])
def test_sgd_and_train_step_give_the_cpus_bits(dtype, momentum, layout):
    gpu, cpu, losses = training(dtype, momentum, layout)
    for (gW, gb), (cW, cb) in zip(gpu, cpu):
        assert differing(gW, cW) == 0 and differing(gb, cb) == 0
    for got, want in losses:
        assert np.array_equal(host(got), want)


def test_the_comparison_can_fail():
    """differing sees one ULP, a sign of zero and NaN against a number."""
    a = np.array([1.0, 0.0, np.nan], f32)
    assert differing(a, a.copy()) == 0
    assert differing(np.nextafter(a, f32(2)), a) == 2  # 1 and 0 moved; NaN stays NaN
    assert differing(np.array([1.0, -0.0, 1.0], f32), a) == 2


def test_a_grid_capped_below_the_rows_strides_over_them(monkeypatch):
    """2-D launches put rows on grid y, which GPUs cap at 65535 blocks: beyond it each
    block strides over rows (numnet.cuda.kernels.MAX_GRID_Y). With the cap lowered to 2,
    shapes that need several strides give the CPU's bits: forward, linear, mm,
    loss_and_grads (dW, delta W^T), SGD. (One lowered cap, 2: cap 1 strides too, and
    each cap costs the simulator about 15 s.)"""
    n = 2 * K.BLOCK + 3  # three row blocks of mm/linear; ten of TILE rows for the rest
    x, (W1, b1) = rand(n, 3, dtype=f32, seed=50), (rand(3, 4, dtype=f32, seed=51), rand(4, dtype=f32, seed=52))
    layers = [(W1, b1), (rand(4, 2, dtype=f32, seed=53), rand(2, dtype=f32, seed=54))]
    target = rand(n, 2, dtype=f32, seed=55)
    want = (
        numnet.forward(x, layers, hidden="tanh"),
        numnet.mm(x, W1),
        numnet.loss_and_grads(x, target, layers, hidden="tanh"),
    )
    P = rand(n, 3, dtype=f32, seed=56)
    cpu_P = [(P.copy(), np.zeros(3, f32))]
    numnet.SGD(cpu_P, lr=0.5).step([(x, np.ones(3, f32))])
    for cap in (2,):
        monkeypatch.setattr(K, "MAX_GRID_Y", cap)
        assert numnet.cuda.ops.mm_launch_shape(n, 4)[0][1] == cap
        assert np.array_equal(numnet.cuda.forward(x, layers, hidden="tanh"), want[0])
        assert np.array_equal(numnet.cuda.mm(x, W1), want[1])
        value, grads = numnet.cuda.loss_and_grads(x, target, layers, hidden="tanh")
        assert value == want[2][0]
        for (gW, gb), (cW, cb) in zip(grads, want[2][1]):
            assert np.array_equal(gW, cW) and np.array_equal(gb, cb)
        gpu_P = [(P.copy(), np.zeros(3, f32))]
        numnet.cuda.SGD(gpu_P, lr=0.5).step([(x, np.ones(3, f32))])
        assert np.array_equal(gpu_P[0][0], cpu_P[0][0])


def count_identical():
    """(identical, total) results over float32 and float64, C-ordered inputs: the figure
    the issue states (run: python -m tests.test_same_bits)."""
    same = total = 0
    lines = []
    for dtype in (f32, f64):
        rows = [(name, got, want) for name, got, want in results(dtype)]
        for momentum in (0.0, 0.9):
            gpu, cpu, losses = training(dtype, momentum)
            rows.append(
                (
                    f"SGD momentum={momentum} params",
                    np.concatenate([host(a).ravel() for p in gpu for a in p]),
                    np.concatenate([a.ravel() for p in cpu for a in p]),
                )
            )
            rows.append(
                (
                    f"train_step momentum={momentum} losses",
                    np.array([host(g) for g, _ in losses]),
                    np.array([w for _, w in losses]),
                )
            )
        for name, got, want in rows:
            d = differing(got, want)
            same += d == 0
            total += 1
            lines.append(f"{np.dtype(dtype).name:8} {name:32} {d:4} of {np.asarray(want).size} differ")
    return same, total, lines


if __name__ == "__main__":
    same, total, lines = count_identical()
    print(*lines, sep="\n")
    print(f"{same} of {total} results identical")
