"""The CUDA kernels: the twins of ``numnet.kernels``, written for thousands of threads.

Kernels trust their input: the public functions in ``numnet.cuda.ops`` have checked
shapes and dtypes, moved the data to the GPU, allocated the output and picked the launch
shape. Each kernel takes its output as an argument, finds its place with ``cuda.grid``
and guards it against the array bounds (past the end of an array a GPU silently reads
garbage; the simulator raises).

One kernel serves float32 and float64: numba compiles a version per argument type, and
both the accumulators (``x.dtype.type(0)``) and the shared-memory tiles
(``cuda.shared.array(..., dtype=x.dtype)``) take their dtype from the arguments. A bare
``0.`` would be float64 on a GPU and turn float32 sums into float64 ones.

The elementwise maths (e^x, the activations, their derivatives, the softmax and loss
rows, SGD's update) is numnet.elementwise's: the CPU's own functions, which numba-cuda
compiles for the GPU when a kernel calls them (and the simulator runs as the CPU's), so
they give the CPU's bits; numnet._device keeps NVVM from fusing what the CPU rounds twice.

The order of the sums: mm, linear and forward compute each output as the CPU kernels do,
``s = fma(a[i, p], b[p, j], s)`` for p = 0, 1, ..., k-1 (each thread walks p in order
across the shared-memory tiles), then ``+ bias``, then the activation: the same bits as
numnet's products. ``fma`` is cuda.fma (fma.rn) on a GPU; in the simulator, whose
cuda.fma rounds twice, it is a Python fma that rounds once (``_fma_rounded_once``), so the
simulator computes what a GPU computes. The epilogue (bias, activation) is not fused
(tests/test_ptx.py checks that NVVM contracted nothing there). sum and dot add in a
tree, the same tree on every run, so the same bits; they agree with the CPU's sum and dot
(torch.sum's order) within rounding (numnet.testing's bounds).

The matrix product (``block_product``) tiles twice. Shared memory: a block of TILE x TILE
threads stages TILE-deep slices of a (BLOCK rows) and of b (BLOCK columns) in shared
memory, each element loaded once from global memory by one thread, neighbouring threads
reading neighbouring addresses (coalesced). Registers: each thread then computes a
WORK x WORK tile of the output, BLOCK = TILE * WORK on a side per block, from WORK values
of a and WORK values of b per step, so that each value read from shared memory feeds
WORK multiply-adds instead of one. A thread's rows and columns are TILE apart (row
ty + TILE*ii, column tx + TILE*jj): a warp's reads of shared memory then fall in distinct
banks or on one broadcast address, and its writes of the output are coalesced.
"""

import math
from fractions import Fraction

import numpy as np
from numba import cuda

from numnet.elementwise import IDENTITY, RELU, SIGMOID, TANH, activate, sigma  # noqa: F401 (the one source)

TILE = 16  # mm: a block is TILE x TILE threads; a and b are staged TILE deep at a time
WORK = 4  # mm: each thread computes a WORK x WORK tile of the output (in registers)
BLOCK = TILE * WORK  # mm: each block computes a BLOCK x BLOCK tile of the output
THREADS = 256  # 1-D kernels: threads per block; a power of two, for the tree reduction
UNROLL = 4  # sigmoid: elements each thread loads before it computes any (loads in flight)
MAX_BLOCKS = 1024  # 1-D kernels: beyond this, each thread strides over several elements
# 2-D kernels: the most blocks a GPU launches along grid y (rows). Beyond, each block
# strides over rows by gridDim.y blocks, so every size works (any compute capability).
MAX_GRID_Y = 65535

# True under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), which runs kernels as Python.
SIMULATED = cuda.jit.__module__.startswith("numba.cuda.simulator")


def _fma_rounded_once(a, b, c):
    """a * b + c rounded once, in the dtype of a: the simulator's fma, as a GPU's fma.rn.

    The simulator's own cuda.fma is a * b + c in Python, rounded twice. A float32 product
    is exact in float64, so float64 rounds the sum once; rounding that to float32 is then
    right unless it lies exactly halfway between two float32s, where exact arithmetic
    (Fractions) settles it; float64 takes Fractions throughout. NaN and infinities (and
    a finite sum beyond the dtype) fall back to the dtype's own a * b + c, as does a zero
    product or sum (exact there, and with the sign IEEE gives a zero)."""
    dtype = type(a)
    with np.errstate(all="ignore"):
        if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)) or a == 0 or b == 0:
            return dtype(dtype(a) * dtype(b) + dtype(c))
        if dtype is np.float32:
            near = float(a) * float(b) + float(c)
            rounded = np.float32(near)
            other = np.nextafter(rounded, np.float32(math.copysign(math.inf, near - float(rounded))))
            if float(rounded) == near or float(rounded) + float(other) != 2 * near:
                return rounded
            exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
            d_rounded, d_other = abs(Fraction(float(rounded)) - exact), abs(Fraction(float(other)) - exact)
            if d_other < d_rounded or (d_other == d_rounded and int(other.view(np.uint32)) % 2 == 0):
                return other
            return rounded
        exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
        if exact == 0:
            return dtype(dtype(a) * dtype(b) + dtype(c))
        try:
            return dtype(float(exact))
        except OverflowError:
            return dtype(math.copysign(math.inf, exact))


def _fma_on_gpu(a, b, c):
    """a * b + c rounded once: fma.rn. (cuda.fma itself is typed only as an attribute of
    numba.cuda, so a kernel cannot call it under another name.)"""
    return cuda.fma(a, b, c)


# The products' multiply-add (numnet.kernels: s = fma(a, b, s), p in order): one rounding.
fma = _fma_rounded_once if SIMULATED else cuda.jit(device=True)(_fma_on_gpu)


def _plain_in_simulator(a):
    """The numpy array behind the simulator's wrapper of a kernel's array argument."""
    item = a.__dict__.get("_item", a)
    return getattr(item, "_ary", item)


def _plain_on_gpu(a):
    return a


# An array argument as numnet.elementwise's row functions take it: the array itself on a
# GPU; in the simulator, the numpy array the CPU's compiled function can read and write.
plain = _plain_in_simulator if SIMULATED else cuda.jit(device=True)(_plain_on_gpu)


@cuda.jit
def sigmoid_kernel(x, out):
    """out[i] = sigma(x[i]) over flat arrays, in a grid-stride loop (any grid covers any n).

    Each thread loads UNROLL elements, a grid apart, before it computes any of them: more
    loads in flight hide more of the memory's latency (the kernel is bound by bandwidth).
    """
    one = x.dtype.type(1)
    v = cuda.local.array(UNROLL, dtype=x.dtype)
    n = x.shape[0]
    stride = cuda.gridsize(1)
    for base in range(cuda.grid(1), n, stride * UNROLL):
        for u in range(UNROLL):
            i = base + u * stride
            if i < n:
                v[u] = x[i]
        for u in range(UNROLL):
            i = base + u * stride
            if i < n:
                out[i] = sigma(v[u], one)


@cuda.jit(device=True)
def block_sum(cache, acc):
    """The sum of every thread's ``acc`` across the block, returned to all of them.

    A tree in shared memory: cache[t] += cache[t + half] for half = blockDim/2, /4, ..., 1.
    The order is fixed by the block size alone, so the result is the same on every run.
    Every thread of the block must call this: it synchronises.
    """
    t = cuda.threadIdx.x
    cache[t] = acc
    half = cuda.blockDim.x // 2
    while half > 0:
        cuda.syncthreads()  # the previous level is written before it is read
        if t < half:
            cache[t] += cache[t + half]
        half //= 2
    cuda.syncthreads()  # cache[0] is final before anyone reads it
    return cache[0]


@cuda.jit
def sum_partial_kernel(x, partial):
    """partial[block] = this block's share of sum_i x[i]: the first pass of sum.

    Thread g adds x[i] for i = g, g + gridsize, ...; the block then sums its threads
    (block_sum's tree). The second pass is sum_kernel, as for dot: a fixed tree that
    depends on the length alone, so the same bits on every run.
    """
    cache = cuda.shared.array(THREADS, dtype=x.dtype)
    acc = x.dtype.type(0)
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        acc += x[i]
    total = block_sum(cache, acc)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total


@cuda.jit
def dot_kernel(a, b, partial):
    """partial[block] = this block's share of sum_i a[i] * b[i]: the first pass of dot.

    Thread g adds a[i] * b[i] for i = g, g + gridsize, ...; the block then sums its threads.
    """
    cache = cuda.shared.array(THREADS, dtype=a.dtype)
    acc = a.dtype.type(0)
    for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        acc += a[i] * b[i]
    total = block_sum(cache, acc)
    if cuda.threadIdx.x == 0:
        partial[cuda.blockIdx.x] = total


@cuda.jit
def sum_kernel(partial, out):
    """out[0] = sum_i partial[i], by one block: the second pass of sum and dot."""
    cache = cuda.shared.array(THREADS, dtype=partial.dtype)
    acc = partial.dtype.type(0)
    for i in range(cuda.threadIdx.x, partial.shape[0], cuda.blockDim.x):
        acc += partial[i]
    total = block_sum(cache, acc)
    if cuda.threadIdx.x == 0:
        out[0] = total


@cuda.jit
def neuron_kernel(partial, b, out):
    """out[i] = sigma(sum_j partial[j] + b[i]), by one block: dot's second pass, with the
    neuron's bias and activation fused in (b and out hold the one bias and one output)."""
    cache = cuda.shared.array(THREADS, dtype=partial.dtype)
    acc = partial.dtype.type(0)
    for i in range(cuda.threadIdx.x, partial.shape[0], cuda.blockDim.x):
        acc += partial[i]
    total = block_sum(cache, acc)
    one = partial.dtype.type(1)
    for i in range(cuda.threadIdx.x, out.shape[0], cuda.blockDim.x):
        out[i] = sigma(total + b[i], one)


@cuda.jit(device=True)
def block_product(a, b, acc, row_block):
    """acc[ii, jj] = fma(a[i, p], b[p, j], acc[ii, jj]) for p = 0, 1, ..., k-1, for this thread's WORK x WORK
    outputs: i = BLOCK * row_block + ty + TILE * ii, j = BLOCK * blockIdx.x + tx + TILE * jj.

    Per TILE-deep step, the block's 256 threads copy a[block rows, p0:p0+TILE] and
    b[p0:p0+TILE, block columns] into shared memory (WORK elements each, consecutive
    threads at consecutive addresses), zero past the edges of a and b, so any n, k, m
    works and the padding adds only 0 * 0. Every thread must call this: it synchronises.
    """
    a_tile = cuda.shared.array((BLOCK, TILE), dtype=a.dtype)  # a[i0 + r, p0 + c] at [r, c]
    b_tile = cuda.shared.array((TILE, BLOCK), dtype=b.dtype)  # b[p0 + r, j0 + c] at [r, c]
    a_frag = cuda.local.array(WORK, dtype=a.dtype)
    b_frag = cuda.local.array(WORK, dtype=b.dtype)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    t = ty * TILE + tx  # 0 .. TILE*TILE - 1: this thread's turn in the copies
    i0 = row_block * BLOCK
    j0 = cuda.blockIdx.x * BLOCK
    n, k = a.shape
    m = b.shape[1]
    zero = a.dtype.type(0)
    for ii in range(WORK):
        for jj in range(WORK):
            acc[ii, jj] = zero
    for p0 in range(0, k, TILE):
        for w in range(WORK):
            r = t // TILE + w * TILE  # a: TILE threads per row, TILE rows per pass
            c = t % TILE
            a_tile[r, c] = a[i0 + r, p0 + c] if i0 + r < n and p0 + c < k else zero
            r = t // BLOCK + w * (TILE // WORK)  # b: BLOCK threads per row, TILE/WORK rows per pass
            c = t % BLOCK
            b_tile[r, c] = b[p0 + r, j0 + c] if p0 + r < k and j0 + c < m else zero
        cuda.syncthreads()  # both tiles are complete before anyone reads them
        for p in range(TILE):
            for ii in range(WORK):
                a_frag[ii] = a_tile[ty + TILE * ii, p]
            for jj in range(WORK):
                b_frag[jj] = b_tile[p, tx + TILE * jj]
            for ii in range(WORK):
                for jj in range(WORK):
                    acc[ii, jj] = fma(a_frag[ii], b_frag[jj], acc[ii, jj])
        cuda.syncthreads()  # everyone is done reading before the next tiles overwrite them


@cuda.jit
def mm_kernel(a, b, out):
    """out = a @ b.  a: (n, k) @ b: (k, m) -> out: (n, m); each thread WORK x WORK outputs
    (block_product), each block a BLOCK x BLOCK tile: launch it with mm_launch_shape.
    A block strides over the row blocks by gridDim.y (at most MAX_GRID_Y blocks high).

    A larger grid is harmless (its extra blocks write nothing); k = 0 gives zeros.
    """
    acc = cuda.local.array((WORK, WORK), dtype=out.dtype)
    for row_block in range(cuda.blockIdx.y, (out.shape[0] + BLOCK - 1) // BLOCK, cuda.gridDim.y):
        block_product(a, b, acc, row_block)
        for ii in range(WORK):
            i = row_block * BLOCK + cuda.threadIdx.y + TILE * ii
            for jj in range(WORK):
                j = cuda.blockIdx.x * BLOCK + cuda.threadIdx.x + TILE * jj
                if i < out.shape[0] and j < out.shape[1]:
                    out[i, j] = acc[ii, jj]


@cuda.jit
def linear_act_kernel(x, W, bias, out, act):
    """out = f(x @ W + bias): one layer, bias and activation fused into the epilogue while
    the sums are still in registers; f numbered ``act`` (IDENTITY makes numnet.cuda.linear).

    x: (n, k) @ W: (k, m) + bias: (m,) -> out: (n, m). The bias is added after the sum,
    as torch.addmm does. Launched like mm_kernel (mm_launch_shape).
    """
    acc = cuda.local.array((WORK, WORK), dtype=out.dtype)
    one = out.dtype.type(1)
    for row_block in range(cuda.blockIdx.y, (out.shape[0] + BLOCK - 1) // BLOCK, cuda.gridDim.y):
        block_product(x, W, acc, row_block)
        for ii in range(WORK):
            i = row_block * BLOCK + cuda.threadIdx.y + TILE * ii
            for jj in range(WORK):
                j = cuda.blockIdx.x * BLOCK + cuda.threadIdx.x + TILE * jj
                if i < out.shape[0] and j < out.shape[1]:
                    out[i, j] = activate(acc[ii, jj] + bias[j], act, one)
