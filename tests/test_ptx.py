"""What only a GPU would show, checked without one: every numnet.cuda kernel compiled to
PTX for compute capabilities 7.5, 8.0 and 9.0, for every signature the ops launch.

The simulator runs the kernels as Python: it does not see a kernel that does not compile
for a GPU (np.exp), float64 arithmetic in a float32 kernel (a bare ``0.``), local-memory
spills, or shared memory and registers a launch cannot have. Here the ops run in the
simulator once with host arrays and with C, Fortran-ordered and strided device arrays,
both dtypes, and every launch they make is recorded with its argument types as numba
types them on a GPU and its block size (tests/ptx.py: record_launches). A subprocess with
the simulator off compiles each recorded signature with numba-cuda's NVVM, reads the PTX
and runs ``ptxas -v`` on it (tests/ptx.py: compile_request). The assertions:

- every kernel in numnet/cuda/kernels.py and backward_kernels.py is launched by some op
  here, and every launch compiles for every capability;
- mm and linear (the kernels with register tiles) do not spill (ptxas), and in float32
  use no local memory at all;
- static shared memory per block is within 48 KiB;
- registers per thread (ptxas) times the launch's threads per block fit in a block's
  64 Ki registers;
- a float32 kernel has float64 only inside the functions that compute in float64 on
  purpose (FLOAT64_INSIDE: expf, the float32 log and tanh), read from lineinfo;
- the products (mm, linear, forward's layers, dW and delta W^T) compile their k loop to
  fma.rn, and every fma.rn in every kernel comes from an explicit ``fma(``: NVVM, which
  contracts ``a * b + c`` by default, contracted nothing (epilogues, activations, e^x,
  losses, SGD) that the CPU rounds twice, and no libdevice math function is reached;
  mm, which has no epilogue, has no separate float multiply or add.

The toolchain: NVVM, libdevice and NVRTC (numba-cuda loads all three) and ptxas, from the
``ptx`` extra's wheels (pip install -e '.[test,ptx]'), CUDA_HOME or /usr/local/cuda.
Without them the compile tests are skipped with the reason (never passed);
NUMNET_REQUIRE_PTX=1 turns that skip into a failure. ``pytest tests/test_ptx.py -rP``
prints the registers, spills and shared memory of each kernel.
"""

import os

import numpy as np
import pytest

import numnet.cuda
from numnet.cuda import kernels as K

from . import ptx

f32, f64 = np.float32, np.float64
# The kernels whose register tiles must stay in registers (numnet/cuda/kernels.py).
REGISTER_TILED = {"mm_kernel", "linear_act_kernel"}
# The products: their sums are in-order fma (numnet.cuda.kernels.fma).
PRODUCTS = {"mm_kernel", "linear_act_kernel", "matmul_tn_kernel", "backprop_kernel"}
# NVVM contracts a * b + c into one fma.rn by default, where the CPU rounds twice. Each
# kernel is compiled a second time with contraction off (NVVM's -fma=0); explicit fma
# (numnet._llvm.fma, cuda.fma) stays fma.rn there, so equal counts mean NVVM contracted
# nothing. dot_kernel alone may: dot adds in a tree on the GPU and agrees with the CPU
# within numnet.testing's sum bound, not bit for bit (README), so its products may fuse.
MAY_CONTRACT = {"dot_kernel"}
# Source lines whose fma.rn is explicit in the products: fma itself, and block_product
# (NVVM inlines device functions and lineinfo names the call's line).
EXPLICIT_FMA = ("fma(", "block_product(")
# numnet.elementwise computes in float64 for a float32 result on purpose in expf (glibc's
# float32 e^x: a float64 table and cubic, rounded once) and in the float32 log and tanh
# (log64 and tanh64, through exp64, rounded). lineinfo names the kernel line that calls
# an elementwise function (numba-cuda emits no line table for them), so float64 in a
# float32 kernel is allowed on a line that calls one reaching those (FLOAT64_CALLS), an
# error anywhere else (a bare ``0.``).
FLOAT64_INSIDE = ("expf", "exp64", "log64", "tanh64")
FLOAT64_CALLS = ("sigma(", "activate(", "log_softmax_row(", "softmax_row(", "cross_entropy_row(")


def rand(*shape, dtype=f32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def place(a, layout):
    """``a`` where the ops may find it: "host" (numpy), or on the device C-contiguous,
    Fortran-ordered ("F") or strided ("A": every other column of a wider array)."""
    from numba import cuda

    if layout == "host":
        return a
    if layout == "C":
        return cuda.to_device(np.ascontiguousarray(a))
    if layout == "F":
        return cuda.to_device(np.asfortranarray(a))
    wide = cuda.to_device(np.repeat(a, 2, axis=-1))
    return wide[::2] if a.ndim == 1 else wide[:, ::2]


def op_calls(dtype):
    """Calls of every numnet.cuda op, small, with every layout an argument may come in."""
    g = numnet.cuda
    x, W1, b1 = rand(5, 7, dtype=dtype), rand(7, 6, dtype=dtype, seed=1), rand(6, dtype=dtype, seed=2)
    W2, b2 = rand(6, 3, dtype=dtype, seed=3), rand(1, 3, dtype=dtype, seed=4)
    v, w = rand(9, dtype=dtype, seed=5), rand(9, dtype=dtype, seed=6)
    classes = np.array([0, 2, 1, 2, 0])
    layers = [(W1, b1), (W2, b2)]

    def at(layout):
        return [(place(W, layout), place(b, layout)) for W, b in layers]

    def sgd(layout, momentum):
        params = at(layout)
        opt = g.SGD(params, lr=0.1, momentum=momentum)
        grads = [(place(W, layout), place(b, layout)) for W, b in layers]
        opt.step(grads)
        opt.step(grads)

    calls = [
        lambda: g.sigmoid(x),
        lambda: g.sigmoid(place(v, "A")),
        lambda: g.sigmoid(place(x, "F")),
        lambda: g.sum(v),
        lambda: g.sum(place(x, "F")),
        lambda: g.sum(place(v, "A")),
        lambda: g.dot(v, w),
        lambda: g.dot(place(v, "A"), place(w, "C")),
        lambda: g.neuron(v, w, np.ones(1, dtype)),
        lambda: g.neuron(place(v, "A"), place(w, "A"), place(np.ones((1, 1), dtype), "C")),
        lambda: g.log_softmax(x),
        lambda: g.softmax(x),  # (the simulator refuses device arrays here)
        lambda: g.linear(place(x, "C"), place(W1, "C"), place(b1[None, :], "F")),
        lambda: g.forward(x, layers, hidden="relu", output="tanh"),
        lambda: g.loss_and_grads(x, classes, layers, hidden="relu", output="none", loss="cross_entropy"),
        lambda: g.mm(place(x, "F"), place(W1, "A")),
    ]
    for layout in ("host", "C", "F", "A"):
        calls += [
            lambda L=layout: g.mm(place(x, L), place(W1, L)),
            lambda L=layout: g.linear(place(x, L), place(W1, L), place(b1, L)),
            lambda L=layout: g.loss_and_grads(
                place(x, L), place(rand(5, 3, dtype=dtype), L), at(L), hidden="tanh", output="sigmoid", loss="mse"
            ),
            lambda L=layout: sgd(L, 0.0),
            lambda L=layout: sgd(L, 0.9),
        ]
    return calls


@pytest.fixture(scope="module")
def launches():
    if not numnet.cuda.is_available():
        pytest.skip("no CUDA GPU and no simulator (set NUMBA_ENABLE_CUDASIM=1)")
    return ptx.record_launches([call for dtype in (f32, f64) for call in op_calls(dtype)])


@pytest.fixture(scope="module")
def compiled(launches, tmp_path_factory):
    """The rows of every launch compiled for every capability; skipped (failed with
    NUMNET_REQUIRE_PTX=1) when numba-cuda finds no NVVM, NVRTC or libdevice."""
    answer = ptx.compile_in_subprocess(launches, tmp_path_factory.mktemp("ptx"))
    if "skip" in answer:
        if os.environ.get("NUMNET_REQUIRE_PTX") == "1":
            pytest.fail(f"NUMNET_REQUIRE_PTX=1 and {answer['skip']}")
        pytest.skip(answer["skip"])
    return answer


def where(row):
    args = ", ".join(f"{a[1]}[{a[2]}d,{a[3]}]" if a[0] == "array" else a[1] for a in row["args"])
    return f"{row['kernel']}({args}) sm_{row['cc'][0]}{row['cc'][1]}"


def is_float32(row):
    return {a[1] for a in row["args"] if a[0] == "array" and a[1].startswith("float")} == {"float32"}


def assembled(compiled):
    """The rows with ptxas's report; skips when ptxas is missing or older than NVVM."""
    if not compiled["toolchain"]["ptxas"].startswith("/"):
        skip_or_fail(compiled["toolchain"]["ptxas"])
    rows = [r for r in compiled["rows"] if "ptxas" in r]
    mismatch = [r for r in rows if r["ptxas"].get("toolchain_mismatch")]
    if mismatch:
        skip_or_fail(f"ptxas cannot read this NVVM's PTX: {mismatch[0]['ptxas']['error'][:300]}")
    return rows


def skip_or_fail(why):
    if os.environ.get("NUMNET_REQUIRE_PTX") == "1":
        pytest.fail(f"NUMNET_REQUIRE_PTX=1 and {why}")
    pytest.skip(why)


# -- the PTX reader itself (no toolchain needed) -------------------------------------------


def test_the_float64_pattern_finds_float64_and_nothing_else():
    flagged = [
        "add.f64 %fd3, %fd1, %fd2;",
        "cvt.f64.f32 %fd1, %f1;",
        "cvt.rn.f32.f64 %f2, %fd4;",
        ".reg .f64 %fd<5>;",
        "mov.f32 %f1, %fd2;",
        "fma.rn.f32 %f1, %f2, 0d3FF0000000000000, %f3;",
        "ld.global.f64 %fd1, [%rd3];",
    ]
    clean = [
        "fma.rn.f32 %f64, %f53, %f63, %f62;",
        "mov.f32 %f640, 0f3F000000;",
        ".reg .f32 %f<185>;",
        "add.s64 %rd64, %rd1, 64;",
        "// .f64 in a comment",
    ]
    assert [line for line in flagged if not ptx.read_ptx(line)["f64_lines"]] == []
    assert [line for line in clean if ptx.read_ptx(line)["f64_lines"]] == []


def test_the_ptx_reader_counts_shared_and_local_memory():
    text = "\n".join(
        [
            ".visible .shared .align 4 .b8 _cudapy_smem_2[4096];",
            ".shared .align 8 .b8 _cudapy_smem_3[1024];",
            ".local .align 4 .b8 __local_depot0[64];",
            "st.local.f32 [%rd1], %f1;",
        ]
    )
    read = ptx.read_ptx(text)
    assert read["shared_bytes"] == 5120
    assert len(read["local_lines"]) == 2


def test_registers_per_block_rounds_per_warp():
    assert ptx.registers_per_block(80, 256) == 80 * 256
    assert ptx.registers_per_block(255, 256) == 256 * 256  # 255 rounds up to 256 per thread
    assert ptx.registers_per_block(33, 32) == 1280  # 33 * 32 = 1056, rounded up to 5 * 256
    assert ptx.registers_per_block(64, 1024) == 65536


# -- what the ops launch (simulator) --------------------------------------------------------


def test_every_kernel_is_launched_by_some_op(launches):
    """A kernel that no op launches here would go unchecked: add a call to op_calls."""
    missing = ptx.kernels_in_modules() - set(launches)
    assert not missing, f"kernels no op launched in op_calls: {sorted(missing)}"


def test_launches_cover_both_dtypes_and_every_device_layout(launches):
    seen = {
        (a[1], a[3])
        for entry in launches.values()
        for sig in entry["signatures"]
        for a in sig
        if a[0] == "array" and a[1].startswith("float")
    }
    assert {(d, layout) for d in ("float32", "float64") for layout in "CFA"} <= seen, seen


def test_block_sizes_are_within_the_hardware_limit(launches):
    too_big = {k: e["threads"] for k, e in launches.items() if e["threads"] > ptx.MAX_THREADS_PER_BLOCK}
    assert not too_big, too_big


# -- compiled for a GPU (simulator off, in a subprocess) ------------------------------------


def test_every_launch_compiles_for_every_capability(launches, compiled):
    assert sorted(map(tuple, compiled["kernels"])) == sorted(ptx.kernels_in_modules())
    expected = sum(len(e["signatures"]) for e in launches.values()) * len(ptx.CCS)
    assert len(compiled["rows"]) == expected
    failed = [f"{where(r)}: {r['error'][:600]}" for r in compiled["rows"] if "error" in r]
    assert not failed, "\n".join(failed)
    assert {tuple(r["cc"]) for r in compiled["rows"]} == set(ptx.CCS)
    assert {r["ptx_target"] for r in compiled["rows"]} == {f"sm_{a}{b}" for a, b in ptx.CCS}


def _float64_outside(row):
    """The f64 source lines of a float32 row that call no FLOAT64_CALLS function."""
    return [line for line in row.get("f64_sources", []) if not any(call in line for call in FLOAT64_CALLS)]


def test_float32_kernels_have_no_float64_but_inside_the_named_functions(compiled):
    rows = [r for r in compiled["rows"] if is_float32(r) and r.get("f64_lines")]
    unexplained = [f"{where(r)}: {r['f64_lines'][:3]}" for r in rows if not r.get("f64_sources")]
    assert not unexplained, unexplained
    bad = [f"{where(r)}: {_float64_outside(r)}" for r in rows if _float64_outside(r)]
    assert not bad, "float64 in float32 kernels (a bare float literal?):\n" + "\n".join(bad)
    # the check sees what it allows: float32 sigmoid computes e^x in float64 inside expf
    sigmoid = [r for r in compiled["rows"] if r["kernel"] == "sigmoid_kernel" and is_float32(r)]
    assert sigmoid and all(r.get("f64_sources") for r in sigmoid)


def f64_instructions(row):
    """The float64 instructions of a row's PTX (declarations not counted)."""
    return [line for line in row.get("f64_lines", []) if not line.startswith(".reg")]


def test_float64_cost_table(compiled):
    """Not a check: each float32 kernel's float64 instructions (PTX, sm_90), all from
    FLOAT64_INSIDE. On a GPU with weak float64 (consumer and workstation GPUs run it at
    1/32 or 1/64 of the float32 rate) each costs about that many float32 instructions."""
    for r in sorted(compiled["rows"], key=lambda r: r["kernel"]):
        if is_float32(r) and tuple(r["cc"]) == (9, 0) and f64_instructions(r):
            print(f"{where(r)}: {len(f64_instructions(r))} float64 instructions of {r.get('instructions', '?')}")


def test_float64_kernels_are_seen_as_float64(compiled):
    """The float64 pattern is not blind: every float64 kernel matches it."""
    rows = [r for r in compiled["rows"] if "f64_lines" in r and not is_float32(r)]
    assert rows and all(r["f64_lines"] for r in rows), [where(r) for r in rows if not r["f64_lines"]]


def test_shared_memory_is_within_48k_per_block(compiled):
    bad = [
        f"{where(r)}: {r['shared_bytes']} bytes"
        for r in compiled["rows"]
        if r.get("shared_bytes", 0) > ptx.STATIC_SHARED_LIMIT
        or r.get("ptxas", {}).get("smem_bytes", 0) > ptx.STATIC_SHARED_LIMIT
    ]
    assert not bad, bad


def test_float32_register_tiles_use_no_local_memory(compiled):
    """float32 mm and linear keep their WORK x WORK tiles in registers: no local memory in
    the PTX. (float64: see test_mm_and_linear_do_not_spill.)"""
    rows = [r for r in compiled["rows"] if r["kernel"] in REGISTER_TILED and is_float32(r) and "error" not in r]
    assert rows
    bad = [f"{where(r)}: {r['local_lines'][:3]}" for r in rows if r["local_lines"]]
    assert not bad, bad


def test_ptxas_assembles_every_kernel(compiled):
    bad = [f"{where(r)}: {r['ptxas']['error'][:600]}" for r in assembled(compiled) if "error" in r["ptxas"]]
    assert not bad, "\n".join(bad)


def test_mm_and_linear_do_not_spill(compiled):
    """No spill stores or loads (ptxas), and no stack frame in float32. A float64 linear may
    pass its accumulator tile through local memory once, in the epilogue: with libdevice's
    float64 exp and tanh inlined, NVVM does not unroll the WORK x WORK epilogue loop, so it
    indexes the tile at run time (WORK * WORK * 8 = 128 bytes; the k-loop keeps the tile in
    registers). A larger frame would be more than that tile."""
    rows = [r for r in assembled(compiled) if r["kernel"] in REGISTER_TILED and "error" not in r["ptxas"]]
    assert rows
    tile = K.WORK * K.WORK * 8
    bad = [
        f"{where(r)}: {r['ptxas']}"
        for r in rows
        if r["ptxas"]["spill_store_bytes"]
        or r["ptxas"]["spill_load_bytes"]
        or r["ptxas"]["stack_bytes"] > (0 if is_float32(r) else tile)
    ]
    assert not bad, "\n".join(bad)


def test_registers_allow_the_launch_block_size(compiled):
    rows = [r for r in assembled(compiled) if "error" not in r["ptxas"]]
    assert rows
    bad = [
        f"{where(r)}: {r['ptxas']['registers']} registers x {r['threads']} threads"
        for r in rows
        if r["ptxas"]["registers"] > ptx.MAX_REGISTERS_PER_THREAD
        or ptx.registers_per_block(r["ptxas"]["registers"], r["threads"]) > ptx.REGISTERS_PER_BLOCK
    ]
    assert not bad, "\n".join(bad)


def test_resource_table(compiled):
    """Not a check: the figures, printed (pytest -rP shows them)."""
    print("toolchain:", *(f"  {k}: {v}" for k, v in compiled["toolchain"].items()), sep="\n")
    print(
        f"{'kernel':22} {'dtype':7} {'layouts':10} {'cc':6} {'threads':>7} {'regs':>5} "
        f"{'spill st/ld':>11} {'stack':>5} {'smem':>6} {'local':>5}"
    )
    for r in sorted(compiled["rows"], key=lambda r: (r["kernel"], is_float32(r), r["cc"], str(r["args"]))):
        p = r.get("ptxas", {})
        layouts = "".join(a[3] for a in r["args"] if a[0] == "array")
        print(
            f"{r['kernel']:22} {'float32' if is_float32(r) else 'float64':7} {layouts:10} "
            f"sm_{r['cc'][0]}{r['cc'][1]:<3} {r['threads']:>7} {p.get('registers', '-'):>5} "
            f"{str(p.get('spill_store_bytes', '-')) + '/' + str(p.get('spill_load_bytes', '-')):>11} "
            f"{p.get('stack_bytes', '-'):>5} {r.get('shared_bytes', '-'):>6} {len(r.get('local_lines', [])):>5}"
        )


def test_products_are_explicit_fma_and_nothing_is_contracted(compiled):
    rows = [r for r in compiled["rows"] if r["kernel"] in PRODUCTS and "error" not in r and "fma_sources" in r]
    assert {r["kernel"] for r in rows} == PRODUCTS
    no_fma = [where(r) for r in rows if not any(c in line for line in r["fma_sources"] for c in EXPLICIT_FMA)]
    assert not no_fma, f"k loops without fma.rn: {no_fma}"
    checked = [r for r in compiled["rows"] if "fma_count_uncontracted" in r]
    assert {r["kernel"] for r in checked} == {k for _, k in ptx.kernels_in_modules()}
    bad = [
        f"{where(r)}: {r['fma_count']} fma.rn, {r['fma_count_uncontracted']} explicit; from {r.get('fma_sources')}"
        for r in checked
        if r["fma_count"] != r["fma_count_uncontracted"] and r["kernel"] not in MAY_CONTRACT
    ]
    assert not bad, "contracted by NVVM, rounded twice on the CPU:\n" + "\n".join(bad)
    assert all(r["fma_count"] > r["fma_count_uncontracted"] for r in checked if r["kernel"] in MAY_CONTRACT), (
        "the contraction check sees dot's contraction"
    )
    mm_rows = [r for r in compiled["rows"] if r["kernel"] == "mm_kernel" and "error" not in r]
    assert mm_rows and all(r["fma_count"] for r in mm_rows)
    separate = [f"{where(r)}: {r['float_mul_add_lines'][:3]}" for r in mm_rows if r["float_mul_add_lines"]]
    assert not separate, separate
