"""The CPU kernels: explicit loops compiled by Numba, one per piece of the maths.

Kernels trust their input: the public functions in ``numnet.ops`` have already checked
shapes and dtypes and allocated the output. Every kernel accumulates in the dtype of its
input on purpose (``x.dtype.type(0)``): float32 in, float32 sums, as torch does.

**The order of the sums.** Every output of mm, linear and forward (and of the backward
products) is ``s = 0; s = fma(a[i, p], b[p, j], s)`` for p = 0, 1, ..., k-1: one fused
multiply-add per term, rounded once (numnet._llvm.fma, llvm.fma: a vfmadd where the CPU
has FMA, the C library's fma where it has not: the same bits, slower), then ``+ bias``
(one rounding), then the activation. dot keeps its own definition (each product rounded,
then summed in torch.sum's order: numnet/sums.py). No fastmath flag is set anywhere in
this file, so LLVM contracts nothing else; the other explicit ``fma`` calls are inside expf, as in glibc. The notebook's
products give the same bits fused or unfused, so its outputs equal torch's bit for bit.
The order does not depend on the size, the memory layout or the number of threads:
large products run through the blocked kernel below, on every core, but each output
element still gets its k terms added in order, by one thread, so the blocked kernel and
the plain loops give the same bits, on every run.

**The blocked product** (``_mm_blocked``), for products too large for the plain loops,
is the classic design of GotoBLAS and BLIS (Goto and van de Geijn, "Anatomy of
high-performance matrix multiplication", 2008), written as plain loops:

- b is copied once into panels NR columns wide (``_pack_b``), zero-padded, so that the
  inner loop reads it contiguously whatever its layout;
- the rows of a are split into blocks, one prange iteration each (both cores); a thread
  copies its block of a, a slice at most KC columns deep (k is cut in equal slices),
  into panels MR rows high (``_pack_a``), which then stay in its L2 cache while it
  sweeps every panel of b;
- ``_micro_kernel`` computes an MR x NR tile of the output: per step p, for each of its
  MR rows, one value of the a panel broadcast times the b panel's row (NR values), added
  into that row's accumulators, one vector fma at a time (``_fma_vector``). They live in
  a stack array indexed only by constants once LLVM has unrolled the loops over rows and
  vectors, so LLVM keeps them in vector registers. A row is VECTORS vectors: four
  512-bit ones on AVX-512 CPUs (64 float32 or 32 float64), else two 256-bit ones (16 or
  8), so that the accumulators take 24 of 32 vector registers, or 12 of 16.
- the bias and the activation are applied as each finished tile is written out (the
  epilogue), so linear and forward make no pass over their output after the product.

**The row product** (``_mm_rows``) reads b in place: the same register tile, swept
down each NR-column panel of b by MR-row tiles of a over the whole depth k, b's rows read
straight from b (only its last, partial panel is copied, zero-padded; a panel at most one
vector wide gets a NARROW_ROWS x one-vector tile). It is the kernel for few rows (a
layer's batch, the backward pass's products), where packing all of b on every call would
cost about as much as the product, and for shallow b, whose panels stay in the L2 cache
(on the Intel Xeon, whose L2 is twice the AMD EPYC's: for narrow b, at most two panels
wide, instead; and there, few rows too only where b's panels stay in the L2 cache, which
rows of b a large power of two bytes apart may keep them from; ``rows_pay``); large
square products keep the blocked kernel, except on the Intel Xeon: there the row product
takes every product whose a has contiguous rows and whose panels of b fit in half the
L2 cache (``copies_pay``), each thread copying the panel it reads into its own L2 cache
(``copied``) while a's rows stream past from L3 (the blocked kernel packs b before the
threads start, so that half of a thread's panels come from the other core's cache):
mm 2048 at 338 GFLOP/s instead of 296 (COPIED_PANEL has the figures).

Products with fewer than ROWS_MIN multiply-adds, or fewer rows than MR, take the plain
loops (``_mm_loops``), through the ops as in compiled callers of ``_mm`` (the training
step, the backward products); the others take the row or the blocked product. A small network runs
whole in ``forward_kernel`` (one compiled call, about a microsecond for the notebook's);
numnet.forward runs a large one layer by layer through ``linear_act_kernel``.
The tile is MR = 6 rows by four vectors of columns (two with 256-bit vectors), 24
accumulators in registers, with 4 row vectors of b and one broadcast of a at a time: 24
fused multiply-adds per step, no spills. The step is written a vector at a time
(numnet._llvm.vector_fma) rather than as scalar loops for LLVM to vectorise: from those
LLVM picked the order of the loops, and held all six broadcasts and three vectors of b
at once (an accumulator spilled every step: float32 264 GFLOP/s instead of 306, mm 1024
on two cores of an Intel Xeon), or unrolled a short row completely before vectorising
and left it scalar (float64 rows, the narrow tile). LLVM prefers 256-bit vectors on
AVX-512 CPUs; the micro-kernel asks for 512-bit ones there
(numnet._llvm.prefer_vector_bits, VECTOR_BITS, chosen at import for the CPU numba
compiles for) and is kept out of its callers (no_inline), which keep LLVM's choice.
Measured on an Intel Xeon (mm 1024, GFLOP/s, one thread / two): float32 188 / 318-338,
float64 89-91 / 154-157; compiled for haswell (NUMBA_CPU_NAME, 256-bit vectors, on the
same Xeon): 97 / 190 with two vectors a row, 30 / 105 with four (spilled from 16
registers). On an AMD EPYC (Zen 4, one thread, mm 1024, best of 9, before the step was
written in vectors): float32 87-89 GFLOP/s with either width, float64 47-48 with 512-bit
vectors and 41-42 with 256-bit ones.

**dot and neuron** round each product, then add the products in torch.sum's order
(``numnet.sums``: vector lanes, four accumulators, a cascade), so numnet.dot is
torch.sum(a * b) and numnet.neuron the notebook's output1, bit for bit.

**Exponentials and the activations** live in numnet.elementwise, compiled from one
source for the CPU (here) and the GPU (numnet.cuda): float32 e^x is glibc's expf, float64
e^x, log and tanh are numnet's own algorithms, so both devices give the same bits.
"""

from pathlib import Path

import numpy as np
from llvmlite import binding as llvm_binding
from numba import config, literal_unroll, prange, types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload

from numnet import sums
from numnet._jit import jit, threads
from numnet._llvm import fma, no_inline, prefer_vector_bits, stack_matrix, vector_fma

# -- LLVM primitives -------------------------------------------------------------------


@intrinsic
def _as_strided(typingctx, a):
    """``a`` itself, typed as a read-only array of any layout.

    Every layout (C, Fortran, strided) and read-only flag is a new type to numba, hence a
    new compilation of every function it reaches. The blocked product only reads its
    inputs, through their strides, while it copies them into panels: passing them as
    this one type compiles it once per dtype instead of once per combination.
    """
    if not isinstance(a, types.Array):
        return None
    strided = a.copy(layout="A", readonly=True)

    def codegen(context, builder, sig, args):  # the same data, the same struct
        return impl_ret_borrowed(context, builder, strided, args[0])

    return strided(a), codegen


@intrinsic
def _as_c_order(typingctx, a):
    """``a`` itself, typed as a read-only C-ordered array: only for an array that
    _is_c_order says is one. Indexing it then needs no strides, and LLVM vectorises."""
    if not isinstance(a, types.Array):
        return None
    c_order = a.copy(layout="C", readonly=True)

    def codegen(context, builder, sig, args):
        return impl_ret_borrowed(context, builder, c_order, args[0])

    return c_order(a), codegen


@jit(inline="always")
def _is_c_order(a):
    """True when a 2-D array's rows are contiguous and follow each other in memory."""
    return a.strides[1] == a.itemsize and (a.shape[0] <= 1 or a.strides[0] == a.shape[1] * a.itemsize)


def _compiles_avx512():
    """True when numba compiles for a CPU with AVX-512: the host's features, or those
    named by NUMBA_CPU_FEATURES when set (numba compiles for those instead)."""
    features = config.CPU_FEATURES
    if features is None:
        return bool(llvm_binding.get_host_cpu_features().get("avx512f", False))
    return "+avx512f" in features.split(",")


def _l2_bytes():
    """The L2 cache of one core, in bytes, as Linux reports it; 0 where it does not."""
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            if (index / "level").read_text().strip() == "2":
                size = (index / "size").read_text().strip().upper()
                scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
                return int(size.rstrip("KM")) * scale
        except (OSError, ValueError):
            return 0
    return 0


# The vector width of the micro-kernel and its register tile, chosen for the CPU numba
# compiles for (the module docstring says why): MR rows of NR = TILE_BYTES / itemsize
# columns, VECTORS vectors to a row: 24 accumulators of 32 registers, or 12 of 16.
VECTOR_BITS = 512 if _compiles_avx512() else 256
MR = 6
VECTORS = 4 if VECTOR_BITS == 512 else 2  # vectors to a row of the tile: 32 registers, or 16
TILE_BYTES = VECTORS * VECTOR_BITS // 8
# The two kinds of CPU measured here differ in their L2 cache: the Intel Xeon has 2 MiB a
# core, the AMD EPYC 1 MiB. Choices that only the Xeon has been measured for are keyed on
# it: PANELS_PER_BLOCK, STEP_PARALLEL_MIN, SIGMOID_BITS, rows_pay, copies_pay,
# ROWS_SHARE_TILES, ALIGNED_PANELS_MIN (below) and numnet.backward_kernels.SGD_PARALLEL_MIN.
L2_BYTES = _l2_bytes()
LARGE_L2 = L2_BYTES >= 2 << 20  # the Intel Xeon measured here (2 MiB a core), not the AMD EPYC (1 MiB)


# The kernels' own arrays start a cache line (CACHE_LINE bytes; numba's np.empty starts
# at 32, numpy's at 16). A 64-byte vector load from an address that is not a multiple of
# 64 touches two lines. Measured on the Intel Xeon, in one process (mm 1024 and 2048,
# two threads, GFLOP/s, the blocked kernel's packed panels at 0 / 16 / 32 bytes past a
# line): 299-309 / 267-279 / 268-279 and 294-304 / 271-279 / 263-275; the row product
# with b read in place at 0 / 16 / 32 / 48 bytes (us): 512x784 -> 256 605 / 721 / 727 /
# 729, 64x784 -> 256 86 / 105 / 106 / 105, 512x784 -> 128 289 / 351 / 349 / 350.
CACHE_LINE = 64


@jit(inline="always")
def empty_aligned(shape, dtype):
    """np.empty(shape, dtype) starting a cache line: a C-ordered view into a slightly
    larger array (CACHE_LINE values more, the skip at most CACHE_LINE bytes)."""
    size = 1
    for extent in shape:
        size *= extent
    raw = np.empty(size + CACHE_LINE, dtype)
    skip = (CACHE_LINE - raw.ctypes.data % CACHE_LINE) % CACHE_LINE // raw.itemsize
    return raw[skip : skip + size].reshape(shape)


@jit(inline="always")
def zeros_aligned(shape, dtype):
    """np.zeros(shape, dtype) starting a cache line (empty_aligned)."""
    out = empty_aligned(shape, dtype)
    flat = out.reshape(-1)
    for i in range(flat.shape[0]):
        flat[i] = 0
    return out


NARROW_ROWS = VECTORS * MR  # rows of the one-vector tile of a narrow last panel (_narrow_row_kernel)


@intrinsic
def _narrow_register_tile(typingctx, like):
    """A (NARROW_ROWS, NR/VECTORS) C-ordered array of like's dtype on the caller's stack:
    accumulators of one vector each, as many as the full tile has."""
    if not isinstance(like, types.Array):
        return None
    tile, codegen = stack_matrix(like.dtype, NARROW_ROWS, TILE_BYTES // VECTORS // (like.dtype.bitwidth // 8))
    return tile(like), codegen


@intrinsic
def _fma_vector(typingctx, dst, d, x, src, s, bits):
    """dst.flat[d + k] = fma(x, src.flat[s + k], dst.flat[d + k]) for the k < bits / itemsize
    lanes of one vector (numnet._llvm.vector_fma): a step of a register tile's row."""
    if not isinstance(bits, types.IntegerLiteral) or not isinstance(x, types.Float):
        return None
    codegen = vector_fma(dst, d, x, src, s, bits.literal_value // x.bitwidth)
    return None if codegen is None else types.none(dst, d, x, src, s, bits), codegen


def tile_columns(dtype):
    """NR: the columns of a register tile of this dtype (with 256-bit vectors 16 float32,
    8 float64; with 512-bit ones 64 and 32)."""
    return TILE_BYTES // np.dtype(dtype).itemsize


@intrinsic
def _register_tile(typingctx, like):
    """An (MR, NR) C-ordered array of like's dtype, on the stack of the calling function
    (numnet._llvm.stack_matrix): how the micro-kernel's accumulators stay in vector
    registers."""
    if not isinstance(like, types.Array):
        return None
    tile, codegen = stack_matrix(like.dtype, MR, TILE_BYTES // (like.dtype.bitwidth // 8))
    return tile(like), codegen


# -- e^x and the activations: numnet.elementwise, one source for the CPU and the GPU --------

# Re-exported under the names the kernels below use: the products' epilogue (_finish,
# _write_tile) and the sigmoid loops call sigma and activate.
from numnet.elementwise import _EXP2F_TABLE, IDENTITY, RELU, SIGMOID, TANH, activate, expf, sigma  # noqa: E402,F401
from numnet.elementwise import exp as _exp  # noqa: E402,F401

# -- elementwise and reductions -------------------------------------------------------------

# The sigmoid loop's vector width. LLVM chooses 256-bit vectors on AVX-512 CPUs; on the
# Intel Xeon 512-bit ones (8 float64 lanes for expf's arithmetic, one 8-lane gather of its
# table) took 0.58 ns an element instead of 0.79 (float32, one thread, 2^20 elements;
# torch 0.38). The AMD EPYC, which runs 512-bit instructions as two halves, keeps LLVM's
# choice until it is measured. Each lane computes what the scalar code does: same bits.
SIGMOID_BITS = VECTOR_BITS if LARGE_L2 else 256
CHUNK = 1 << 14  # sigmoid: elements per prange iteration; shorter arrays stay on one thread
SIGMOID_LARGE = 1 << 22  # sigmoid: from here threads pay even when they must be woken


@jit(error_model="numpy")
def _sigmoid_loop(x, out):
    """out[i] = sigma(x[i]) over flat arrays, on this thread (a loop LLVM vectorises,
    SIGMOID_BITS wide; kept out of its callers, which keep LLVM's width: no_inline)."""
    no_inline()
    prefer_vector_bits(SIGMOID_BITS)
    one = x.dtype.type(1)
    for i in range(x.shape[0]):
        out[i] = sigma(x[i], one)


@jit(parallel=True)
def _sigmoid_chunks(x, out):
    """out[i] = sigma(x[i]) over flat arrays, in chunks of CHUNK on every core."""
    n = x.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        _sigmoid_loop(x[start:stop], out[start:stop])


@jit
def sigmoid_kernel(x, out, threads):
    """out[i] = sigma(x[i]) over flat arrays: on every core when there are more than
    CHUNK elements and ``threads`` (numnet._jit.threads()) allows more than one."""
    if threads > 1 and x.shape[0] > CHUNK:
        _sigmoid_chunks(x, out)
    else:  # a notebook-sized call: no threads to wake
        _sigmoid_loop(x, out)


@jit
def dot_kernel(a, b, torch_threads, threads):
    """sum_i a[i] * b[i] over flat arrays, accumulated in their dtype: the products
    summed as torch.sum(a * b) sums them (numnet.sums: torch_threads and threads as
    sums.sum_kernel takes them). Each product a[i] * b[i] is rounded (no fused
    multiply-add) and added where the sum of the tensor a * b adds it: no buffer of them."""
    return sums.threaded_sum(a.reshape(1, -1), b, True, torch_threads, threads)


@jit
def serial_dot_kernel(a, b, torch_threads):
    """dot_kernel on this thread alone (the same bits; nothing threaded to compile)."""
    return sums.serial_sum(a.reshape(1, -1), b, True, torch_threads)


@jit
def small_dot_kernel(a, b):
    """dot_kernel for fewer than sums.GRAIN values (or one torch thread): the same bits.
    The sum is compiled into it (sums.small_sum), the kernel itself into small_neuron_kernel:
    the walk-through's neuron and dot then compile the sum once."""
    return sums.small_sum(a.reshape(1, -1), b, True)


# The ops call dot and neuron, which take the twin that compiles least for the size: a
# learner's first dot product (five values) compiles in a fraction of the time.
def dot(a, b, torch_threads):
    """dot_kernel, or a twin with the same bits that compiles less, as its size allows."""
    if sums.unsplit(a.shape[0], torch_threads):
        return small_dot_kernel(a, b)
    torch_threads = torch_threads or sums.default_threads()
    threads = sums.numnet_threads(a.shape[0])
    return serial_dot_kernel(a, b, torch_threads) if threads == 1 else dot_kernel(a, b, torch_threads, threads)


def neuron(x, w, b, out, torch_threads):
    """neuron_kernel, or its twin for a small sum (the same bits)."""
    if sums.unsplit(x.shape[0], torch_threads):
        small_neuron_kernel(x, w, b, out)
    else:
        neuron_kernel(x, w, b, out, torch_threads or sums.default_threads())


@jit(inline="always")
def _neuron_out(s, b, out):
    one = out.dtype.type(1)
    for i in range(b.shape[0]):
        out[i] = sigma(s + b[i], one)


@jit
def small_neuron_kernel(x, w, b, out):
    """neuron_kernel for a sum torch does not split."""
    _neuron_out(small_dot_kernel(x, w), b, out)


@jit
def neuron_kernel(x, w, b, out, torch_threads):
    """out[i] = sigma(sum_j x[j] * w[j] + b[i]): one neuron, its bias broadcast over out;
    the sum is dot_kernel's, so numnet.neuron is sigmoid(numnet.dot(x, w) + b) bit for bit."""
    _neuron_out(serial_dot_kernel(x, w, torch_threads), b, out)


# -- the matrix product ---------------------------------------------------------------------


# Blocked product: the most depth of a slice of a (k is cut in equal slices of at most KC).
# Each output tile is carried in registers through a whole slice and goes to memory and
# back between slices, so long slices pay. Measured on an AMD EPYC (Zen 4; GFLOP/s, mm
# 2048 / linear 4096x784 -> 256): KC = 256: 165 / 147; 2048: 190 / 167; on an Intel Xeon
# (mm 1024, two threads): 256: 266; 512: 293; 2048: 306.
KC = 2048
# Blocked product: at most this many MR-row panels per block of a. A thread sweeps every
# panel of b once per block, each panel brought from the L3 cache into its L2, so larger
# blocks read b fewer times, as long as the block of a stays in the L2 cache beside the
# panel of b. Only the speed depends on it, never a bit of a result. Measured (mm 1024
# float32, two threads, GFLOP/s): an AMD EPYC with 1 MiB of L2 a core: 8 panels 156-158,
# 4 panels 173-175 but worse at 2048 (8: 142-144, 4: 116-123); an Intel Xeon with 2 MiB:
# 8 panels 293-336, 16: 318-319, 32: 322-371 (float64: 131 and 161).
PANELS_PER_BLOCK = 32 if LARGE_L2 else 8
# Which products read b in place (_mm_by_rows) rather than packing it (_mm_by_blocks): those
# with at most ROWS_MAX rows, where packing b costs as much as the product, and those
# whose panels of b (k rows of NR values, read from the L2 cache by every tile of rows)
# take less than ROWS_PANEL_BYTES. Measured here, one thread, GFLOP/s, rows / blocks:
# linear 64x784 -> 128: 102 / 65; 512x784 -> 256: 96 / 81; 4096x784 -> 256: 95 / 87;
# mm 1024: 80 / 83; 2048: 71 / 80. (AMD EPYC.) On the Intel Xeon, whose L2 holds twice
# as much, what decides is the width of b instead: past ROWS_MAX rows the blocked product
# won wherever b had four panels or more, whatever its depth, and the row product
# wherever it had at most ROWS_PANELS (GFLOP/s, two threads, rows / blocks; n x k -> m):
# 4096x784 -> 256: 276-311 / 271-341 (six runs); 1024x784 -> 512: 244 / 358; 2048x512
# -> 256: 309 / 364; 4096x256 -> 256: 258 / 314; 1024x256 -> 1024: 230 / 276; 1024x784
# -> 256: 315-338 / 319-328; 4096x784 -> 128: 309 / 292; 1024x1024 -> 128: 366-403 /
# 310-332; 4096x784 -> 64: 386 / 254; 4096x256 -> 64: 297 / 249; 4096x784 -> 10: 131 /
# 42 (one thread alike: 4096x784 -> 256 151 / 168, 1024x784 -> 512 113 / 154, 1024x1024
# -> 128 160 / 145).
ROWS_MAX = 512
ROWS_PANEL_BYTES = 1 << 18
ROWS_PANELS = 2
# Up to ROWS_MAX rows, the Intel Xeon's row product needs its panels of b to stay in the
# L2 cache, which b's rows, read in place, may not: rows whose starts are a multiple of a
# large power of two apart fall on few positions within a page, hence on few of the
# cache's sets (_panel_room); a panel of 784 rows of b 1024 floats wide (4 KiB apart)
# has room for 2048 of its 3136 lines. The row product reads b in place when its panel
# (k x NR values) takes at most half the room it has and b's rows are less than a page
# apart (each row a new page is one the hardware prefetchers do not cross), or for at
# most ROWS_FEW rows, where copying b costs more than any slowdown; else it copies each
# panel it reads (copies_pay, below). Copied / in place (two threads, GFLOP/s; n x k ->
# m): 8x1024 -> 1024 74 / 95; 16x1024 -> 1024 128 / 136; 16x784 -> 512 164 / 175;
# 16x2048 -> 512 134 / 111; 32x1024 -> 1024 175 / 137; 32x784 -> 512 214 / 205; 64x784
# -> 512 284 / 218; 128x784 -> 512 307 / 205; 128x256 -> 1024 287 / 269 (these from
# ROWS_FEW up took b in place before, by a rule that let up to 128 rows fill the room).
# Before the copies, the products that did not read b in place were blocked;
# measured on the Intel Xeon (two threads, ms, rows / blocks; n x k -> m): 512x784 ->
# 256 0.70 / 0.82; 128x784 -> 512 0.48 / 0.55; 64x784 -> 512 0.24 / 0.39; 64x256 -> 1024
# 0.16 / 0.25; 16x1024 -> 1024 0.31 / 0.57; 32x1024 -> 1024 0.68 / 0.79; 512x784 -> 384
# 1.19 / 1.26; 512x256 -> 512 0.53 / 0.57; against 256x784 -> 512 1.01 / 0.90; 512x784 ->
# 512 1.80 / 1.60; 512x2048 -> 256 4.7 / 2.3; 64x2048 -> 512 1.33 / 1.05; 64x1024 -> 1024
# 1.06 / 0.94; 128x1024 -> 1024 2.2 / 1.5; 512x1024 -> 1024 7.9 / 4.1; 512x784 -> 1024
# 6.0 / 3.3; 512x256 -> 4096 9.4 / 4.7; past ROWS_MAX rows, with b at most ROWS_PANELS
# wide: 2048x4096 -> 128 12.3 / 8.8; 1024x8192 -> 128 18.2 / 9.0, against 4096x4096 ->
# 64 8.8 / 10.6; 1024x2048 -> 128 1.81 / 2.03. Through numnet.linear, alternating processes,
# before (the row product) / after: 512x1024 -> 1024 8.0-8.4 / 4.0-4.2; 512x784 -> 1024
# 5.7-6.3 / 3.2-3.3; 512x2048 -> 256 3.3-3.7 / 2.2; 256x784 -> 512 0.96-1.03 / 0.89-0.91;
# 512x784 -> 512 1.80-1.92 / 1.56-1.66; and the row product kept at 512x512 -> 512
# (0.97-1.04 against 1.05-1.11 blocked). The AMD EPYC keeps ROWS_MAX alone.
ROWS_FEW = 16
PAGE = 4096
# On the Intel Xeon the row product copies each panel of b it reads (k x NR values, into
# the reading thread's own L2 cache) when it does not read b in place (rows_pay), where
# a's rows are contiguous and a panel takes at most 1 / COPIED_PANEL of the L2 cache:
# the panel then stays in L2 while a's rows stream past from L3, six side by side, as
# the hardware prefetchers follow. The blocked product packs b before its threads start,
# so that half of the panels a thread reads come from the other core's cache, and keeps
# a block of a in L2 instead, each panel of b a burst from L3 that the micro-kernel waits
# on. Measured (two threads, GFLOP/s, blocked / copied; n x k -> m): mm 1024 312 / 344;
# mm 2048 296 / 338; 512x1024 -> 1024 291 / 325; 64x1024 -> 1024 160 / 228; 64x2048 ->
# 512 156 / 229; 128x1024 -> 1024 218 / 271; 4096x784 -> 256 296 / 335 (the threads
# sharing out rows: COPIED_SHARE_TILES). With each thread's rows read in
# place from packed panels (the first version): float64 mm 2048 126 / 142, 4096x784 ->
# 256 138 / 150; slower past half the cache (1024x8192 -> 256: 279 / 208) and with a
# transposed a (mm 1024: 289 / 159), which stay blocked. The AMD EPYC, whose L2 is half
# the size, has not run it: it keeps the blocked product.
COPIED_PANEL = 2
# With copied panels the threads share out rows (each copying every panel) only where
# each would otherwise have at most two panels and gets COPIED_SHARE_TILES tiles of rows
# or more. Measured (two threads, GFLOP/s, panels / rows shared): 4096x784 -> 256 312 /
# 335; 1024x784 -> 256 349 / 357; 512x2048 -> 256 355 / 349; 512x1024 -> 256 361 / 360;
# 256x2048 -> 256 340 / 305.
COPIED_SHARE_TILES = 64
# The row product shares out its rows rather than its panels between the threads where
# the L2 has 2 MiB and each thread gets ROWS_SHARE_TILES tiles of MR rows or more (fewer
# leave the threads uneven: 64x784 -> 256 took 3% longer). Measured on the Intel Xeon, two
# threads, us, panels / rows shared: 512x784 -> 128 400 / 389, 351 / 344, 402 / 390;
# 512x784 -> 256 788 / 758, 686 / 669, 721 / 658; 4096x784 -> 128 2488 / 2295, 2681 /
# 2520; 1024x1024 -> 128 877 / 851, 841 / 808; 256x784 -> 128 200 / 194.
ROWS_SHARE_TILES = 8
# The row product starts its panels of b at a column whose values start a cache line
# (_unaligned_columns) when n * m, what the loads that straddle two lines cost, is at
# least ALIGNED_PANELS_MIN: the columns left over are then copied (k x NR values), as they
# otherwise would be only when m is not a whole number of panels. Measured on the Intel
# Xeon with b at 16, 32 and 48 bytes past a line (two threads, us, before / after, b at a
# line: before): 512x784 -> 256 718-729 / 648-660 (586); 512x784 -> 128 370-372 / 321-327
# (309). The copy was then made before the threads started, and the thread that read it
# pulled it from the other core's cache: below 64K outputs it cost more than it saved.
# Each thread now copies the panel it reads (_rest_panel; b 16 bytes past a line, us,
# without / with the shift): 16x784 -> 128 18-19 / 25; 32x784 -> 128 37-39 / 35-39;
# 64x784 -> 128 58-65 / 56-63; 32x784 -> 256 74 / 59-70; 64x784 -> 256 114-120 / 99-101;
# 256x784 -> 128 210-217 / 176-184. The AMD EPYC has not run it.
ALIGNED_PANELS_MIN = 1 << 13
# The row product pays from ROWS_MIN multiply-adds (n*k*m) on: the plain loops carry each
# output through memory, p after p, which a narrow product (a 10-class layer) waits on.
# Measured on an AMD EPYC (Zen 4, one thread, float32, loops / rows, us): 64x64x10
# 18.0 / 4.2; 64x10x64 9.2 / 2.2; 64x128x64 41 / 12; 32x32x32 5.1 / 4.1; 16x16x16 1.2 /
# 1.0; 8x8x8 0.6 / 0.9 (float64: 32x32x32 13.8 / 3.3, 100x5x7 3.7 / 5.0); on an Intel Xeon
# (numnet.linear's kernels): 64x64x10 10.7 / 2.8; 64x10x64 5.2 / 2.2; 32x32x32 4.0 / 2.4;
# 16x16x16 1.2 / 1.2; 6x40x40 1.2 / 1.5. (The ops once sent everything under 48^3 to the
# loops, so that small programs compiled only them: a 64x64 -> 10 linear took 11.5 us.)
ROWS_MIN = 1 << 13
# The threads prange runs on, to split the rows evenly between them. A constant: calling
# numba.get_num_threads() in a kernel would keep numba from caching it. Only the split
# depends on it, never a result.
THREADS = config.NUMBA_NUM_THREADS


def bias_row(b):
    """The bias as a row of m values, whether it came as (m,) or (1, m)."""


@overload(bias_row)
def _bias_row(b):
    if b.ndim == 1:
        return lambda b: b
    return lambda b: b[0]


@jit(error_model="numpy")
def _finish(v, bias, j, act, one):
    """f(v + bias[j]), or f(v) without a bias (bias None): a product's epilogue."""
    if bias is not None:
        v = v + bias[j]
    return activate(v, act, one)


def _padded_row(bias, width):
    """The bias as a contiguous row of ``width`` values, zero past its end; None stays
    None. (Copied once per product, so that the epilogue reads it with vector loads.)"""


@overload(_padded_row)
def _padded_row_impl(bias, width):
    if isinstance(bias, types.NoneType):
        return lambda bias, width: None

    return lambda bias, width: _rest_row(bias, 0, 0, bias.shape[0], width)


def _rest_row(bias, head, shift, rest, width):
    """The bias of the row product's copied panel, in its order (_mm_by_rows): bias[j]
    for j < head, bias[shift + j] for head <= j < rest, zero to ``width``; None stays
    None."""


@overload(_rest_row)
def _rest_row_impl(bias, head, shift, rest, width):
    if isinstance(bias, types.NoneType):
        return lambda bias, head, shift, rest, width: None

    def impl(bias, head, shift, rest, width):
        row = zeros_aligned((width,), bias.dtype)
        for j in range(head):
            row[j] = bias[j]
        for j in range(head, rest):
            row[j] = bias[shift + j]
        return row

    return impl


@jit(error_model="numpy")
def _finish_tile(tile, row, j0, act):
    """tile[i, j] = f(tile[i, j] + row[j0 + j]) over the whole tile: the epilogue, its own
    function with the micro-kernel's vector width (a sigmoid per vector of outputs, its
    table read by a gather); row: None, or the bias padded with zeros to whole panels."""
    no_inline()
    prefer_vector_bits(VECTOR_BITS)
    one = tile.dtype.type(1)
    rows, nr = tile.shape
    if row is not None:
        for i in range(rows):
            for j in range(nr):
                tile[i, j] += row[np.uint64(j0 + j)]
    if act == SIGMOID:
        for i in range(rows):
            for j in range(nr):
                tile[i, j] = sigma(tile[i, j], one)
    elif act != IDENTITY:
        for i in range(rows):
            for j in range(nr):
                tile[i, j] = activate(tile[i, j], act, one)


@jit(error_model="numpy")
def _write_tile(tile, out, i0, j0, row, act):
    """out[i0 + i, j0 + j] = f(tile[i, j] + row[j0 + j]) where inside out: a finished tile
    written out with its epilogue (_finish_tile). The indices are unsigned: numba then
    adds no wraparound for negative ones, which kept LLVM from vectorising the copy."""
    if row is not None or act != IDENTITY:
        _finish_tile(tile, row, j0, act)
    for i in range(min(tile.shape[0], out.shape[0] - i0)):
        for j in range(min(tile.shape[1], out.shape[1] - j0)):
            out[np.uint64(i0 + i), np.uint64(j0 + j)] = tile[i, j]


@jit(error_model="numpy")
def _mm_loops(a, b, bias, out, act):
    """out = f(a @ b + bias) by plain loops: the small products.

    The loop runs i, p, j so that the innermost loop walks a row of b and a row of out.
    """
    n, k = a.shape
    m = b.shape[1]
    zero = a.dtype.type(0)
    one = out.dtype.type(1)
    for i in range(n):
        for j in range(m):
            out[i, j] = zero
        for p in range(k):
            a_ip = a[i, p]
            for j in range(m):
                out[i, j] = fma(a_ip, b[p, j], out[i, j])
        if bias is not None or act != IDENTITY:
            for j in range(m):
                out[i, j] = _finish(out[i, j], bias, j, act, one)


@jit(inline="always")
def _pack_b(b, j0, panel):
    """panel[p, j] = b[p, j0 + j], zero past b's last column.  panel: (k, NR)."""
    k, m = b.shape
    nr = panel.shape[1]
    zero = panel.dtype.type(0)
    if j0 + nr <= m:  # a whole panel: plain row copies, which LLVM vectorises
        for p in range(k):
            for j in range(nr):
                panel[p, j] = b[p, np.uint64(j0 + j)]
    else:
        for p in range(k):
            for j in range(nr):
                panel[p, j] = b[p, j0 + j] if j0 + j < m else zero


@jit(inline="always")
def _pack_a(a, i0, p0, kc, panels):
    """panels[q, p, i] = a[i0 + q*MR + i, p0 + p] for p < kc, zero past a's last row.

    panels: (count, depth, MR); the micro-kernel reads panel q row by row. The writes run
    in order; the reads walk MR rows of a side by side.
    """
    n = a.shape[0]
    zero = panels.dtype.type(0)
    for q in range(panels.shape[0]):
        r0 = i0 + q * MR
        if r0 + MR <= n:
            for p in range(kc):
                for i in range(MR):
                    panels[q, p, i] = a[r0 + i, p0 + p]
        else:
            for p in range(kc):
                for i in range(MR):
                    panels[q, p, i] = a[r0 + i, p0 + p] if r0 + i < n else zero


# Not inline="always": inlined by numba into _mm_blocked's loop nest, LLVM no longer
# promoted the accumulators to registers (measured: 38 instead of 90 GFLOP/s on one core).
# LLVM inlines it anyway once it has optimised it on its own.
@jit
def _micro_kernel(a_panel, b_panel, p0, kc, tile, first):
    """tile = (0 if first else tile) + sum_p a_panel[p, :]^T b_panel[p0 + p, :], p in order.

    a_panel: (depth, MR), b_panel: (k, NR), tile: (MR, NR). The accumulators are a register
    tile, read and written a vector at a time (_fma_vector); every loop over its rows and
    vectors has a constant trip count, so LLVM unrolls them and keeps the MR x NR sums in
    vector registers.
    """
    no_inline()
    prefer_vector_bits(VECTOR_BITS)
    acc = _register_tile(tile)
    nr = acc.shape[1]
    zero = tile.dtype.type(0)
    for j in range(nr):
        for i in range(MR):
            acc[i, j] = zero if first else tile[i, j]
    lanes = nr // VECTORS
    for p in range(kc):
        for i in range(MR):  # acc[i, :] = fma(a_panel[p, i], b_panel[p0 + p, :], acc[i, :])
            a_pi = a_panel[np.uint64(p), i]
            for v in range(VECTORS):
                _fma_vector(acc, i * nr + v * lanes, a_pi, b_panel, np.uint64((p0 + p) * nr + v * lanes), VECTOR_BITS)
    for j in range(nr):
        for i in range(MR):
            tile[i, j] = acc[i, j]


def _mm_by_blocks(a, b, bias, out, act):
    """out = f(a @ b + bias) by blocks, on every core (the module docstring has the plan).

    a: (n, k) @ b: (k, m) -> out: (n, m), k > 0; bias: (m,) or None. Each output element
    is computed by one thread, p in order: the same bits as _mm_loops. Compiled twice,
    below: with threads (_mm_blocked) and without (_mm_blocked_serial, where prange is
    range), for processes that must not start threads (numnet._jit.threads).
    """
    n, k = a.shape
    m = b.shape[1]
    dtype = out.dtype
    nr = TILE_BYTES // out.itemsize
    b_panels = (m + nr - 1) // nr
    packed_b = empty_aligned((b_panels, k, nr), dtype)  # (m/NR, k, NR)
    row = _padded_row(bias, b_panels * nr)  # (m rounded up to NR,) or None
    b_in_order = _is_c_order(b)
    for jp in prange(b_panels):
        if b_in_order:  # the same copy, compiled for contiguous rows (vector loads)
            _pack_b(_as_c_order(b), jp * nr, packed_b[jp])
        else:
            _pack_b(b, jp * nr, packed_b[jp])
    slices = (k + KC - 1) // KC
    depth = (k + slices - 1) // slices  # k cut in equal slices of at most KC: no thin last one
    a_panels = (n + MR - 1) // MR
    a_in_order = _is_c_order(a)
    per_round = THREADS * PANELS_PER_BLOCK
    blocks = THREADS * ((a_panels + per_round - 1) // per_round)
    blocks = min(blocks, a_panels)
    for block in prange(blocks):
        first = block * a_panels // blocks  # this block's panels: first .. last - 1
        last = (block + 1) * a_panels // blocks
        packed_a = empty_aligned((last - first, depth, MR), dtype)  # (panels, depth, MR)
        tile = zeros_aligned((MR, nr), dtype)
        for p0 in range(0, k, depth):
            kc = min(depth, k - p0)
            if a_in_order:
                _pack_a(_as_c_order(a), first * MR, p0, kc, packed_a)
            else:
                _pack_a(a, first * MR, p0, kc, packed_a)
            done = p0 + kc == k
            for jp in range(b_panels):
                j0 = jp * nr
                cols = min(nr, m - j0)
                for q in range(last - first):
                    i0 = (first + q) * MR
                    rows = min(MR, n - i0)
                    if p0 > 0:  # carry on from the sums so far (unsigned: see _write_tile)
                        for i in range(rows):
                            for j in range(cols):
                                tile[i, j] = out[np.uint64(i0 + i), np.uint64(j0 + j)]
                    _micro_kernel(packed_a[q], packed_b[jp], p0, kc, tile, p0 == 0)
                    if done:
                        _write_tile(tile, out, i0, j0, row, act)
                    else:
                        for i in range(rows):
                            for j in range(cols):
                                out[np.uint64(i0 + i), np.uint64(j0 + j)] = tile[i, j]


_mm_blocked = jit(parallel=True, error_model="numpy")(_mm_by_blocks)
_mm_blocked_serial = jit(error_model="numpy")(_mm_by_blocks)


@jit(inline="always")
def _row_sums(a, i0, b, j0, acc, tile):
    """tile[i, j] = sum_p a[r_i, p] * b[p, j0 + j], p in order from 0, r_i = min(i0 + i, n - 1),
    summed in acc, a register tile (a stack array of constant shape) shaped like tile.

    a: (n, k), any layout; b: (k, m), C-ordered, read in place (no packing): per step p
    a row of b times each of MR values of a broadcast, into the accumulators a vector at a
    time, as _micro_kernel.
    Rows past a's last are its last row again (computed, never written out), so a tile
    never reads outside a. The indices are unsigned: numba adds no wraparound for
    negative ones, and the loads stay vector loads (with it, LLVM gathered them).
    """
    rows, nr = acc.shape
    n, k = a.shape
    zero = tile.dtype.type(0)
    for j in range(nr):
        for i in range(rows):
            acc[i, j] = zero
    last = n - 1
    m = b.shape[1]
    vectors = VECTORS if rows == MR else 1  # a row of the full tile, of the narrow one (constants)
    lanes = nr // vectors
    for p in range(k):
        for i in range(rows):  # acc[i, :] = fma(a[r_i, p], b[p, j0:j0 + nr], acc[i, :])
            a_ip = a[np.uint64(min(i0 + i, last)), np.uint64(p)]
            for v in range(vectors):
                _fma_vector(acc, i * nr + v * lanes, a_ip, b, np.uint64(p * m + j0 + v * lanes), VECTOR_BITS)
    for j in range(nr):
        for i in range(rows):
            tile[i, j] = acc[i, j]


# Not inline="always", for the reason _micro_kernel gives.
@jit
def _row_kernel(a, i0, b, j0, tile):
    """_row_sums on an MR x NR tile (4 vectors a row): tile: (MR, NR)."""
    no_inline()
    prefer_vector_bits(VECTOR_BITS)
    _row_sums(a, i0, b, j0, _register_tile(tile), tile)


@jit
def _narrow_row_kernel(a, i0, b, tile):
    """_row_sums on a NARROW_ROWS x NR/VECTORS tile (one vector a row), for a last panel of
    b at most a vector wide (the 10 classes of an output layer): tile: (NARROW_ROWS, NR/VECTORS)."""
    no_inline()
    prefer_vector_bits(VECTOR_BITS)
    _row_sums(a, i0, b, 0, _narrow_register_tile(tile), tile)


@jit(inline="always")
def _unaligned_columns(b, nr):
    """How many of b's first columns come before the first whose values start a cache
    line in every row (as the row product's panels of b read in place should): 0 when
    the rows start lines already, when their starts differ (a row stride that is not a
    multiple of CACHE_LINE), or when no panel of nr columns would follow."""
    offset = b.ctypes.data % CACHE_LINE
    if offset == 0 or b.strides[0] % CACHE_LINE != 0 or offset % b.itemsize != 0:
        return 0
    head = (CACHE_LINE - offset) // b.itemsize
    return head if b.shape[1] - head >= nr else 0


@jit(error_model="numpy")
def _write_rest_tile(tile, out, i0, head, shift, row, act):
    """_write_tile for the row product's copied panel when b's first columns are in it
    (_mm_by_rows, head > 0): its columns j < head are out's columns j, the others out's
    columns shift + j; row: the bias in the panel's order (_rest_row), or None."""
    if row is not None or act != IDENTITY:
        _finish_tile(tile, row, 0, act)
    for i in range(min(tile.shape[0], out.shape[0] - i0)):
        for j in range(head):
            out[np.uint64(i0 + i), np.uint64(j)] = tile[i, j]
        for j in range(head, min(tile.shape[1], out.shape[1] - shift)):
            out[np.uint64(i0 + i), np.uint64(shift + j)] = tile[i, j]


@jit(inline="always")
def _rest_panel(b, head, shift, rest, width):
    """The row product's copied panel (_mm_by_rows): b's first ``head`` columns, then its
    columns shift + j for head <= j < rest, zero to ``width`` (a constant where it is
    called, so that the copy of a row is whole vectors); C-ordered, at a cache line."""
    k = b.shape[0]
    tail = empty_aligned((k, width), b.dtype)
    zero = b.dtype.type(0)
    for p in range(k):
        for j in range(width):
            tail[p, j] = b[p, np.uint64(shift + j)] if j < rest else zero
        for j in range(head):  # the first head give way to b's first columns
            tail[p, j] = b[p, np.uint64(j)]
    return _as_c_order(tail)


def _mm_by_rows(a, b, bias, out, act, threaded, copied):
    """out = f(a @ b + bias) with b read in place, or with each panel of b copied by the
    thread that reads it (``copied``): for products with few rows, where packing b
    (_mm_by_blocks) would cost as much as the product, and on the Intel Xeon for most.

    a: (n, k), any layout, @ b: (k, m), C-ordered -> out: (n, m); bias: (m,) or None.
    Each NR-column panel of b is swept by every MR-row tile of a, the whole depth k at
    once. On the Intel Xeon, from ALIGNED_PANELS_MIN outputs, the panels read in place
    start at a column whose values start a cache line (_unaligned_columns: b's first
    ``head`` columns, fewer than a line, come before it; elsewhere head is 0); the
    columns left over, those first ones and those past the last whole panel, are
    copied side by side into one zero-padded panel (to NR columns, or to one vector when
    they are no wider, swept by NARROW_ROWS-row tiles), so no tile reads past b; each
    thread that reads that panel copies it (_rest_panel), into its own cache.
    Each output is computed by one thread, p in order: the same bits as _mm_loops. The
    tasks are (panel, share of the rows) pairs, panel-major, so that a thread keeps to
    its own panels of b (in its L2 cache) when there are enough of them; where the L2
    cache has 2 MiB and each thread gets ROWS_SHARE_TILES tiles of rows or more, they are
    share-major instead: a thread keeps to its rows of a, and reads them once from the L3
    cache rather than once per panel. Without threads (``threaded`` False: the serial
    twin) the tasks are the panels alone: the copied panel is copied once.
    With ``copied``, every panel is copied as the left-over one is (no head: a copy starts
    a line), into the cache of the thread that reads it; the tasks are then panel-major
    unless there are at most two panels a thread and COPIED_SHARE_TILES tiles of rows or
    more (each thread then copies every panel).
    """
    n, k = a.shape
    m = b.shape[1]
    dtype = out.dtype
    nr = TILE_BYTES // out.itemsize
    shifted = LARGE_L2 and not copied and n * m >= ALIGNED_PANELS_MIN
    head = _unaligned_columns(b, nr) if shifted else 0
    whole = (m - head) // nr  # whole panels, from column head on
    rest = m - whole * nr  # the columns left over: b's first head ones and its last ones
    shift = whole * nr  # the rest panel's column j >= head is out's column shift + j
    b_panels = whole + (1 if rest > 0 else 0)
    narrow = rest <= nr // VECTORS
    row = _padded_row(bias, b_panels * nr)
    tail_row = _rest_row(bias, head, shift, rest, nr) if head > 0 else row  # row: unused, of its type
    share_tiles = COPIED_SHARE_TILES if copied else ROWS_SHARE_TILES
    by_rows = threaded and LARGE_L2 and (n + MR - 1) // MR >= share_tiles * THREADS
    by_rows = by_rows and (not copied or b_panels <= 2 * THREADS)
    shares = THREADS if threaded and (by_rows or b_panels % THREADS != 0) else 1
    for task in prange(b_panels * shares):
        if by_rows:  # share-major: a thread keeps to its rows of a, through every panel
            jp = task % b_panels
            share = task // b_panels
        else:  # panel-major: a thread keeps to its panels of b
            jp = task // shares
            share = task % shares
        if jp < whole or not narrow:
            col = head + jp * nr  # out's column of a whole panel's first
            if jp >= whole:  # the columns left over, copied by this thread
                panel, j0 = _rest_panel(b, head, shift, rest, nr), 0
            elif copied:
                panel, j0 = _rest_panel(b, 0, col, nr, nr), 0
            else:
                panel, j0 = _as_c_order(b), col
            tile = np.empty((MR, nr), dtype)
            panels = (n + MR - 1) // MR
            for q in range(share * panels // shares, (share + 1) * panels // shares):
                _row_kernel(a, q * MR, panel, j0, tile)
                if jp < whole:
                    _write_tile(tile, out, q * MR, col, row, act)
                elif head == 0:  # b's last columns alone
                    _write_tile(tile, out, q * MR, shift, row, act)
                else:
                    _write_rest_tile(tile, out, q * MR, head, shift, tail_row, act)
        else:
            tail = _rest_panel(b, head, shift, rest, nr // VECTORS)
            tile = np.empty((NARROW_ROWS, nr // VECTORS), dtype)
            groups = (n + NARROW_ROWS - 1) // NARROW_ROWS
            for q in range(share * groups // shares, (share + 1) * groups // shares):
                _narrow_row_kernel(a, q * NARROW_ROWS, tail, tile)
                if head == 0:
                    _write_tile(tile, out, q * NARROW_ROWS, shift, row, act)
                else:
                    _write_rest_tile(tile, out, q * NARROW_ROWS, head, shift, tail_row, act)


_mm_rows = jit(parallel=True, error_model="numpy")(_mm_by_rows)
_mm_rows_serial = jit(error_model="numpy")(_mm_by_rows)


# Products with fewer multiply-adds than PARALLEL_MIN take one thread even when the
# others are awake: handing out the work costs more than it saves (64x128 @ 128x64,
# 0.5M: 29 us on one thread or two). From PARALLEL_LARGE on a product pays for threads
# even when it must wake them (numnet._jit.threads; 1.5-9 ms here).
PARALLEL_MIN = 1 << 20
PARALLEL_LARGE = 1 << 28


def product_threads(n, k, m):
    """The ``threads`` argument for an (n, k) @ (k, m) product (numnet._jit.threads)."""
    work = n * k * m
    return threads(large=work >= PARALLEL_LARGE) if work >= PARALLEL_MIN else 1


# A training step (SGD.train_step) shares its large products between the threads only
# from STEP_PARALLEL_MIN multiply-adds (its widest product's): between them the step runs
# serial work (the small layers, the loss, the SGD update) on one core, which pulls the
# weights and gradients the other thread's half of the next product needs out of that
# core's cache. Measured on the Intel Xeon, 784-128-64-10, us per step, threads / one
# thread: batch 64 (6.4M) 345 / 236; 128 (12.8M) 477 / 447; 256 (25.7M) 742 / 843; 512
# 1374 / 1717. The AMD EPYC, whose products take one thread 2.8x longer, met its targets
# with PARALLEL_MIN (batch 64: 2.26x torch with threads) and has not run this: it keeps it.
STEP_PARALLEL_MIN = 1 << 24 if LARGE_L2 else PARALLEL_MIN


def step_threads(n, k, m):
    """The ``threads`` argument of a training step whose widest product is (n, k) @ (k, m)."""
    return product_threads(n, k, m) if n * k * m >= STEP_PARALLEL_MIN else 1


def sigmoid_threads(n):
    """The ``threads`` argument of sigmoid_kernel for n elements (numnet._jit.threads)."""
    return threads(large=n >= SIGMOID_LARGE) if n > CHUNK else 1


def small_product(n, k, m):
    """True when an (n, k) @ (k, m) product should take the plain loops: fewer
    multiply-adds than ROWS_MIN, or fewer rows than one tile (then the loops read b once,
    where a tile would compute MR rows for fewer)."""
    return n < MR or n * k * m < ROWS_MIN


loops_suffice = jit(inline="always")(small_product)  # the same test, in compiled code


@jit(inline="always")
def _panel_room(row_bytes):
    """The bytes of a core's L2 cache that a panel of b read in place can take when b's
    rows start row_bytes apart: a line's set follows its position in its page (and the
    page), and the panel's rows take PAGE / 2^t positions of a page, 2^t the largest power
    of two dividing row_bytes (at most a page), each TILE_BYTES long."""
    step = max(1, min(row_bytes & -row_bytes, PAGE))  # 1 for an empty row: all the room
    lines = min(PAGE // CACHE_LINE, PAGE // step * (TILE_BYTES // CACHE_LINE))
    return L2_BYTES * lines // (PAGE // CACHE_LINE)


@jit(inline="always")
def rows_pay(n, k, m, itemsize):
    """True when an (n, k) @ (k, m) product of items of ``itemsize`` bytes should read b in
    place (ROWS_MAX, ROWS_FEW and ROWS_PANELS say when)."""
    if not LARGE_L2:
        return n <= ROWS_MAX or k * TILE_BYTES < ROWS_PANEL_BYTES
    room = _panel_room(m * itemsize)
    fits = 2 * k * TILE_BYTES <= room and m * itemsize < PAGE
    if n <= ROWS_MAX:
        return n <= ROWS_FEW or fits
    return fits and m * itemsize <= ROWS_PANELS * TILE_BYTES


@jit(inline="always")
def copies_pay(a):
    """True when a product that does not read b in place (rows_pay) should take the row
    product copying each panel of b (COPIED_PANEL says when) rather than the blocked one."""
    k = a.shape[1]
    return LARGE_L2 and a.strides[1] == a.itemsize and k * TILE_BYTES * COPIED_PANEL <= L2_BYTES


@jit
def _c_ordered(b):
    """b itself if its rows are contiguous (typed as a read-only C-ordered array), else a
    C-ordered copy (the transposed weights of the backward pass: k * m copies, as
    packing them would make)."""
    if _is_c_order(b):
        return _as_c_order(b)
    copy = empty_aligned(b.shape, b.dtype)
    for p in range(b.shape[0]):
        for j in range(b.shape[1]):
            copy[p, j] = b[p, j]
    return _as_c_order(copy)


@jit
def _mm(a, b, bias, out, act, threads):
    """out = f(a @ b + bias): the plain loops for tiny products, the row product for
    few rows (b read in place) and on the Intel Xeon for most others (each panel of b
    copied), else the blocked one, on every core if ``threads``
    (numnet._jit.threads()) allows more than one."""
    if loops_suffice(a.shape[0], a.shape[1], b.shape[1]):
        _mm_loops(a, b, bias, out, act)
        return
    in_place = rows_pay(a.shape[0], a.shape[1], b.shape[1], out.itemsize)
    if in_place or copies_pay(a):
        if threads > 1:
            _mm_rows(_as_strided(a), _c_ordered(b), bias, out, act, True, not in_place)
        else:
            _mm_rows_serial(_as_strided(a), _c_ordered(b), bias, out, act, False, not in_place)
    elif threads > 1:
        _mm_blocked(_as_strided(a), _as_strided(b), bias, out, act)
    else:
        _mm_blocked_serial(_as_strided(a), _as_strided(b), bias, out, act)


@jit
def mm_kernel(a, b, out, threads):
    """out = a @ b.  a: (n, k) @ b: (k, m) -> out: (n, m).

    out[i, j] = sum_p a[i, p] * b[p, j], p in order (the module docstring says how).
    """
    _mm(a, b, None, out, IDENTITY, threads)


@jit
def linear_act_kernel(x, W, bias, out, act, threads):
    """out = f(x @ W + bias): one layer, bias and activation fused in; f numbered ``act``.

    x: (n, k) @ W: (k, m) + bias: (m,) or (1, m) -> out: (n, m). The bias is added after
    the sum, as torch.addmm does; act = IDENTITY makes this numnet.linear.
    """
    _mm(x, W, _as_strided(bias_row(bias)), out, act, threads)


@jit
def mm_loops_kernel(a, b, out):
    """mm_kernel for a small product: the plain loops alone (quick to compile)."""
    _mm_loops(a, b, None, out, IDENTITY)


@jit
def linear_act_loops_kernel(x, W, bias, out, act):
    """linear_act_kernel for a small product: the plain loops alone (quick to compile)."""
    _mm_loops(x, W, bias_row(bias), out, act)


# The ops call these, not the kernels above: a product small enough for the plain loops
# then compiles only them. The blocked kernel, threaded and serial, takes most of the
# compile time (tens of seconds on two cores), and a learner's first products are small.
def mm(a, b, out):
    """out = a @ b through the plain loops or the blocked kernel, as its size asks."""
    n, k, m = a.shape[0], a.shape[1], b.shape[1]
    if small_product(n, k, m):
        mm_loops_kernel(a, b, out)
    else:
        mm_kernel(a, b, out, product_threads(n, k, m))


def linear_act(x, W, bias, out, act):
    """out = f(x @ W + bias) through the plain loops or the blocked kernel, as mm."""
    n, k, m = x.shape[0], W.shape[0], W.shape[1]
    if small_product(n, k, m):
        linear_act_loops_kernel(x, W, bias, out, act)
    else:
        linear_act_kernel(x, W, bias, out, act, product_threads(n, k, m))


def sigmoid(x, out):
    """sigmoid_kernel, or its loop alone when it would run on one thread anyway."""
    threads = sigmoid_threads(x.shape[0])
    if threads == 1:
        _sigmoid_loop(x, out)
    else:
        sigmoid_kernel(x, out, threads)


@jit
def network_is_small(x, layers):
    """True when every layer of x -> layers is small enough for the plain loops."""
    small = True
    for layer in literal_unroll(layers):
        W = layer[0]
        small = small and loops_suffice(x.shape[0], W.shape[0], W.shape[1])
    return small


@jit
def forward_kernel(x, layers, out, hidden, output):
    """h_0 = x; h_i = f(h_{i-1} @ W_i + b_i); out = h_L, with f the activation ``hidden``
    for every layer but the last, which uses ``output``.

    layers: a tuple of (W_i: (k_{i-1}, k_i), b_i: (k_i,) or (1, k_i)) pairs; out: (n, k_L).
    The whole network runs in this one compiled call, by the plain loops: this is the
    path for small networks (network_is_small), where a call costs about a microsecond.
    numnet.forward runs larger ones layer by layer through linear_act_kernel, which then
    takes the blocked kernel; the bits are the same either way. literal_unroll lets each
    layer keep its own array type (layout, read-only flag), so nothing is copied to enter.
    """
    depth = len(layers)
    h = x
    i = 0
    for layer in literal_unroll(layers):
        W = layer[0]
        b = layer[1]
        i += 1
        if i == depth:
            _mm_loops(h, W, bias_row(b), out, output)
        else:
            h_next = empty_aligned((x.shape[0], W.shape[1]), out.dtype)  # (n, k_i)
            _mm_loops(h, W, bias_row(b), h_next, hidden)
            h = h_next
