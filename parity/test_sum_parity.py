"""numnet.sum and numnet.dot against torch.sum, bit for bit: every length to 300, the
boundaries of torch's vectors, cascade and thread split, a few large sums, both dtypes,
several layouts, torch's thread counts and each CPU capability this machine has."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import numnet
from numnet import sums

DTYPES = [np.float32, np.float64]
BOUNDARIES = sorted(
    {m + d for p in range(5, 18) for m in (2**p,) for d in (-1, 0, 1)}
    | {32768 * k + d for k in (1, 2, 3) for d in (-1, 0, 1)}
    | {4096 * 16 + 5, 98307}
)
RANDOM = sorted(np.random.default_rng(19).integers(300, 200000, 12).tolist())


def mixed(n, dtype, seed=0):
    rng = np.random.default_rng(seed + n)
    return (rng.standard_normal(n) * 10.0 ** rng.integers(-6, 7, n)).astype(dtype)


def torch_bits(x):
    return torch.sum(torch.from_numpy(x)).numpy().tobytes()


def left_to_right(x):
    return np.cumsum(x.reshape(-1), dtype=x.dtype)[-1] if x.size else x.dtype.type(0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_length_and_the_boundaries(dtype):
    differ = 0
    lengths = list(range(0, 301)) + BOUNDARIES + RANDOM
    for n in lengths:
        x = mixed(n, dtype)
        got = numnet.sum(x)
        assert got.tobytes() == torch_bits(x), f"{np.dtype(dtype).name} n={n}"
        differ += got.tobytes() != np.asarray(left_to_right(x)).tobytes()
    assert differ > len(lengths) // 2  # on this data the order shows: the test can fail


@pytest.mark.parametrize("dtype, n", [(np.float32, 10**6 + 3), (np.float64, 3 * 10**6 + 1), (np.float32, 10**7)])
def test_large_sums(dtype, n):
    x = mixed(n, dtype)
    assert numnet.sum(x).tobytes() == torch_bits(x)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_torch_thread_counts(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for n in (32767, 32768, 32769, 65537, 100003, 262147):
            x = mixed(n, np.float32)
            assert numnet.sum(x, torch_threads=threads).tobytes() == torch_bits(x), f"T={threads} n={n}"
    finally:
        torch.set_num_threads(before)


def test_default_thread_count_is_torchs():
    assert sums.torch_threads() == torch.get_num_threads()


@pytest.mark.parametrize("dtype", DTYPES)
def test_layouts(dtype):
    base = mixed(300 * 257, dtype).reshape(300, 257)
    cube = mixed(20 * 30 * 70, dtype).reshape(20, 30, 70)
    views = {
        "transposed": base.T,
        "fortran": np.asfortranarray(base),
        "narrow columns": base[:, :5],
        "columns": base[:, :100],
        "every other row (split between threads)": base[::2],
        "stepped both ways": base[::3, ::2],
        "a column": base[:, 3],
        "a row": base[7],
        "permuted 3-d": cube.transpose(2, 0, 1),
        "sliced 3-d": cube[:, ::2, 1:],
        "permuted, stepped": cube.transpose(1, 2, 0)[:, :, ::3],
        "stepped 1-d": mixed(4000, dtype)[::3],
        "size-1 axes": mixed(200, dtype).reshape(1, 200, 1),
        "0-d": np.array(mixed(1, dtype)[0]),
    }
    for name, x in views.items():
        assert numnet.sum(x).tobytes() == torch_bits(x), name
    # Negative strides: torch cannot view them (from_numpy and torch.tensor refuse them);
    # numnet sums them as their C-order copy.
    flipped = base[::-1, ::-2]
    assert numnet.sum(flipped).tobytes() == torch_bits(np.ascontiguousarray(flipped))


@pytest.mark.parametrize("dtype", DTYPES)
def test_corners(dtype):
    for x in (
        np.zeros(0, dtype),
        np.array([-0.0], dtype),
        np.array([np.nan, 1], dtype),
        np.array([np.inf, -np.inf], dtype),
        np.array([1e38, 1e38, -1e38], dtype),
    ):
        assert numnet.sum(x).tobytes() == torch_bits(x), x


@pytest.mark.parametrize("dtype", DTYPES)
def test_dot_is_torch_sum_of_products(dtype):
    for n in list(range(0, 70)) + [255, 1000, 32769, 100001]:
        a, b = mixed(n, dtype, 1), mixed(n, dtype, 2)
        expected = torch.sum(torch.from_numpy(a) * torch.from_numpy(b)).numpy().tobytes()
        assert numnet.dot(a, b).tobytes() == expected, f"n={n}"


def _capabilities_here():
    """The capabilities torch can run on this CPU: its own, and every one below it."""
    ladder = ["default", "avx2", "avx512"]
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    out = subprocess.run(
        [sys.executable, "-c", "from numnet import sums; print(sums.capability()[0])"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return ladder[: ladder.index(out.stdout.strip()) + 1]


_CHILD = """
import json, numpy as np, torch, numnet
lengths = list(range(0, 70)) + [127, 128, 129, 4097, 32769, 70001]
bad = []
for dtype in (np.float32, np.float64):
    for n in lengths:
        x = (np.random.default_rng(n).standard_normal(n) * 10.0 ** np.random.default_rng(n + 1).integers(-6, 7, n)).astype(dtype)
        if numnet.sum(x).tobytes() != torch.sum(torch.from_numpy(x)).numpy().tobytes():
            bad.append([np.dtype(dtype).name, n])
print(json.dumps({"torch": torch.backends.cpu.get_cpu_capability(), "numnet": numnet.sum_order()["capability"], "bad": bad}))
"""


@pytest.mark.parametrize("capability", ["default", "avx2", "avx512"])
def test_each_cpu_capability(capability):
    if capability not in _capabilities_here():
        pytest.skip(f"this CPU cannot run torch's {capability} kernels")
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
    root = str(Path(numnet.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["torch"] == report["numnet"] == capability.upper()
    assert report["bad"] == []


def test_capability_without_the_variable_is_torchs():
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    code = "import torch, numnet; print(torch.backends.cpu.get_cpu_capability(), numnet.sum_order()['capability'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    theirs, ours = out.stdout.split()
    assert theirs == ours


def test_the_gpu_sum_is_within_the_bound_of_torchs(ops):
    """numnet.cuda.sum adds in a tree: within numnet.testing's sum bound of torch.sum."""
    from numnet.testing import assert_close, op_tolerance

    for n in (0, 7, 300, 1000):
        x = mixed(n, np.float32)
        assert_close(ops.sum(x), torch.sum(torch.from_numpy(x)).numpy(), **op_tolerance("sum", (x,), None, None))
