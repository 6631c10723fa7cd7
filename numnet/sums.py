"""Sums in torch.sum's order: the CPU kernels behind numnet.sum and numnet.dot.

Floating-point addition is not associative, so a sum's last bits depend on the order of
its additions. numnet adds in the order torch 2.13's CPU kernel does (ATen's
``cascade_sum`` in aten/src/ATen/native/cpu/SumKernel.cpp, run by TensorIterator's
``parallel_reduce``), so ``numnet.sum(x)`` equals ``torch.sum(x)`` and ``numnet.dot(a, b)``
equals ``torch.sum(a * b)``, bit for bit. That order, for a contiguous run of n values:

**Vector lanes.** torch compiles its kernels once per CPU capability (AVX512, AVX2,
DEFAULT) and picks one at run time; a capability fixes the width of a vector register.
The sum kernel, though, is registered without an AVX512 build (``REGISTER_DISPATCH``,
not ``ALSO_REGISTER_AVX512_DISPATCH``), so on an AVX-512 CPU torch runs its AVX2 build,
and DEFAULT emulates the same 32-byte vectors with plain loops: on x86-64 every
capability sums in V = 32 bytes of lanes (8 float32, 4 float64), in the same order.
(Measured here against torch 2.13 under each ATEN_CPU_CAPABILITY: see parity/.)

**Four vector accumulators, a cascade of four levels.** When n >= V, the values are
read as rows of 4V (four vectors side by side). Row r's vector g goes into accumulator
g, lane by lane: 4V running sums, each seeing every 4V-th value. To keep the running
sums from growing far beyond the values added to them, each accumulator is really four
(levels 0-3): rows are added into level 0 in blocks of S = 2^P rows, P = max(4,
ceil(log2(rows)) // 4); after each block level 0 is added into level 1 and reset, and
after every S blocks level 1 into level 2, after every S^2 blocks level 2 into level 3.
At the end the levels are folded, ((L0 + L1) + L2) + L3::

    x: | row 0: v0 v1 v2 v3 | row 1: v0 v1 v2 v3 | ... | left-over vectors | tail |
              |  |  |  |            |  |  |  |
    level 0:  A0 A1 A2 A3  <- S rows ... then A(level 1) += A(level 0), A(level 0) = 0
    ...
    A0 += left-over whole vectors (fewer than 4)
    A0 = ((A0 + A1) + A2) + A3               (lane by lane)
    s = 0; s += each tail value (n mod V of them), in order; s += A0[0], ..., A0[V-1]

**Fewer than V values** (the notebook's 5 products), or a row whose values are not
contiguous in memory (a strided view): the same cascade with four scalar
accumulators over rows of 4, the tail (n mod 4 values) added into the first, then
((a0 + a1) + a2) + a3. For 5 values p0..p4: (((p0 + p4) + p1) + p2) + p3.

**Threads.** torch splits a sum of n >= GRAIN = 32768 values between its T intra-op
threads (``torch.get_num_threads()``, by default the number of physical cores):
C = min(T, ceil(n / GRAIN)) chunks of ceil(n / C) values, each summed as above into
its own slot of a T-long buffer of zeros (n = GRAIN exactly: one chunk), and the buffer
is then summed as any T values are (the small case above for T < V). So the bits of
a large sum depend on T: numnet reproduces a given T (``torch_threads``), by default the T
torch starts with on this machine (``torch_threads()``: OMP_NUM_THREADS, MKL_NUM_THREADS,
else the physical cores, as ATen reads them; read once per process, at the first split
sum, as torch reads them once). numnet runs the chunks on its own threads
when it may; the bits depend only on the chunks, never on numnet's threads.

**Layouts.** torch sums a tensor in the order of its memory, not its indices: its
iterator sorts the axes by stride, merges axes that follow each other in memory, and
then sums row by row along the innermost one (each row as above, vectorised only if
that axis is contiguous, the row sums added in order to the result). ``order_rows``
does the same for numpy arrays with positive strides (checked against
``torch.sum(torch.from_numpy(x))``). An array with a negative stride, which torch cannot
view, or a zero stride (a broadcast view; not checked against torch) is summed as its
C-order copy.

Every value is added once, products (dot) rounded before they are added: no fused
multiply-add, no fastmath.
"""

import functools
import os
import platform

import numpy as np
from numba import prange, types
from numba.extending import intrinsic, overload, register_jitable

from numnet._jit import jit, threads
from numnet._llvm import always_inline, stack_matrix, vector_add_product

LARGE = 1 << 22  # values from which a sum pays for waking numnet's threads
GRAIN = 32768  # ATen's internal::GRAIN_SIZE: below it, a sum runs on one torch thread
ACCUMULATORS = 4  # row_sum's ilp_factor: 4 accumulators (vectors, or scalars for n < V)
LEVELS = 4  # multi_row_sum's num_levels
# Bytes per vector of torch's sum kernel, by capability (AVX512 runs the AVX2 build):
# the same for all, so the kernels below take it as the constant LANE_BYTES.
VECTOR_BYTES = {"avx512": 32, "avx2": 32, "default": 32}
LANE_BYTES = 32
_X86 = platform.machine().lower() in ("x86_64", "amd64", "x64")


# -- which order: torch's CPU capability and thread count, found without torch ---------------


@functools.cache
def _cpu_features():
    try:
        from llvmlite import binding

        return {name for name, on in binding.get_host_cpu_features().items() if on}
    except Exception:  # no features known: the DEFAULT order
        return set()


def capability():
    """The CPU capability torch 2.13 dispatches its kernels to here, lower case
    ("avx512", "avx2" or "default"), and where that came from.

    As ATen's DispatchStub: ATEN_CPU_CAPABILITY, if it is one of those three words
    (case matters; torch takes "avx512" even on a CPU without AVX-512, and so does
    numnet), else AVX512 when the CPU has avx512vl, avx512bw, avx512dq and fma, AVX2 when
    it has avx2 and fma, else DEFAULT. Not x86-64: "default" (see order()).
    """
    wanted = os.environ.get("ATEN_CPU_CAPABILITY")
    if _X86 and wanted in VECTOR_BYTES:
        return wanted, "ATEN_CPU_CAPABILITY"
    if not _X86:
        return "default", f"{platform.machine()} CPU: not x86-64"
    have = _cpu_features()
    if {"avx512f", "avx512vl", "avx512bw", "avx512dq", "fma"} <= have:
        found = "avx512"
    elif {"avx2", "fma"} <= have:
        found = "avx2"
    else:
        found = "default"
    note = (
        "the CPU's features"
        if wanted is None
        else f"the CPU's features (ATEN_CPU_CAPABILITY={wanted!r} ignored, as torch ignores it)"
    )
    return found, note


@functools.cache
def _physical_cores():
    cores = set()
    try:
        with open("/proc/cpuinfo") as f:
            package = None
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    package = value.strip()
                elif key == "core id":
                    cores.add((package, value.strip()))
    except OSError:
        pass
    return len(cores) or os.cpu_count() or 1


def _env_threads(name, default):
    text = os.environ.get(name)
    if not text:  # the usual case, without an exception to raise (numnet.dot is microseconds)
        return default
    try:
        value = int(text)
    except ValueError:
        return default
    return value if value > 0 else default


def torch_threads():
    """The intra-op thread count torch starts with here (torch.get_num_threads() before
    any set_num_threads): MKL_NUM_THREADS, else OMP_NUM_THREADS, else the physical cores."""
    return _env_threads("MKL_NUM_THREADS", _env_threads("OMP_NUM_THREADS", _physical_cores()))


@functools.cache
def default_threads():
    """torch_threads(), read once per process, as torch reads those variables once (when
    its thread pool starts): the count numnet's sums take when none is given. Cached
    because a split sum asks for it at every call, and two environment reads after a
    pass over 40 MB (which leaves nothing of Python's in the caches) cost microseconds."""
    return torch_threads()


def order(dtype=np.float32):
    """The order numnet.sum and numnet.dot use here, as a dict (``numnet.sum_order()``)."""
    cap, source = capability()
    itemsize = np.dtype(dtype).itemsize
    return {
        "capability": cap.upper(),
        "source": source,
        "vector_bytes": VECTOR_BYTES[cap],
        "lanes": VECTOR_BYTES[cap] // itemsize,
        "dtype": np.dtype(dtype).name,
        "accumulators": ACCUMULATORS,
        "levels": LEVELS,
        "grain": GRAIN,
        "torch_threads": default_threads(),
    }


def lanes(dtype):
    """V: the lanes of one vector of this dtype in the order numnet reproduces."""
    return LANE_BYTES // np.dtype(dtype).itemsize


# -- the kernels ---------------------------------------------------------------------------


# How the kernels below are compiled, for a first call that compiles in seconds rather
# than many: the helpers are numba's register_jitable functions, compiled once per
# signature of plain (non-literal) types, where a @jit function called with a constant
# (row_sum(x, 0, ...)) compiles again for that constant; and where their code must be
# pasted into the caller (the stack accumulators), LLVM pastes it (always_inline), not
# numba (inline="always"), which would copy and retype it at every call site.


@register_jitable
def _ceil_log2(n):
    """ATen's utils::CeilLog2: 1 for n <= 2, else ceil(log2(n))."""
    always_inline()
    if n <= 2:
        return 1
    bits = 0
    m = n - 1
    while m > 0:
        m >>= 1
        bits += 1
    return bits


@intrinsic
def _lanes(typingctx, x):
    """V, the lanes of a LANE_BYTES vector of x's dtype, as a constant of the compiled code."""
    if not isinstance(x, types.Array):
        return None
    lanes = LANE_BYTES // (x.dtype.bitwidth // 8)
    return types.intp(x), lambda context, builder, sig, args: context.get_constant(types.intp, lanes)


# Every kernel below sums either the values of x (y: None) or the products x[i] * y[i]
# (y: an array laid out as x, for numnet.dot), each product rounded to the dtype as
# torch rounds the tensor a * b, then added where x[i] would be: torch.sum(a * b)'s
# bits without the products' buffer. numba compiles each helper once for y = None and
# once for an array; the compiled sum is the same code as with no y at all.


def _value(x, y, i):
    """x[i], or x[i] * y[i] (rounded to the dtype) when y is an array."""


@overload(_value)
def _value_typed(x, y, i):
    if isinstance(y, types.NoneType):
        return lambda x, y, i: x[i]
    return lambda x, y, i: x[i] * y[i]


@intrinsic
def _add_lane_vector(typingctx, acc, d, x, y, s):
    """acc.flat[d:d + V] += x.flat[s:s + V] (times y.flat[s:s + V], rounded, when y is an
    array), V = _lanes(x): one vector add (numnet._llvm.vector_add_product)."""
    if not isinstance(x, types.Array):
        return None
    codegen = vector_add_product(acc, d, x, y, s, LANE_BYTES // (x.dtype.bitwidth // 8))
    return None if codegen is None else (types.none(acc, d, x, y, s), codegen)


@intrinsic
def _add_accumulators(typingctx, acc, d, x, y, s):
    """acc.flat[d:d + ACCUMULATORS] += x.flat[s:s + ACCUMULATORS] (times y's, when y is
    an array): the scalar accumulators' row, as one vector add."""
    codegen = vector_add_product(acc, d, x, y, s, ACCUMULATORS)
    return None if codegen is None else (types.none(acc, d, x, y, s), codegen)


@register_jitable
def _add_span(acc, d, x, y, s, width):
    """acc.flat[d + k] += x.flat[s + k] (times y.flat[s + k] when y is an array) for
    k < width (acc, x, y: C-ordered), lane by lane, as vector adds (the same additions,
    one instruction per vector): of LANE_BYTES when width is a multiple of one, else (the
    scalar accumulators) of width = ACCUMULATORS lanes."""
    always_inline()
    lanes = _lanes(x)
    if width % lanes == 0:
        for k in range(0, width, lanes):
            _add_lane_vector(acc, d + k, x, y, s + k)
    else:
        _add_accumulators(acc, d, x, y, s)


@register_jitable
def _multi_row_sum(x, y, lo, rows, width, acc):
    """acc[0, k] = sum_r x[lo + r * width + k] (times y's), r = 0 .. rows-1, k < width, in
    four levels.

    acc: (LEVELS, width) zeros. Rows go into level 0 in blocks of 2^P; level j is added
    into level j + 1 after every 2^(jP) blocks; the levels are folded at the end.
    """
    always_inline()
    zero = x.dtype.type(0)
    power = max(4, _ceil_log2(rows) // LEVELS)
    step = 1 << power
    mask = step - 1
    i = 0
    while i + step <= rows:
        for _ in range(step):
            _add_span(acc, 0, x, y, lo + i * width, width)
            i += 1
        for j in range(1, LEVELS):
            _add_span(acc, j * width, acc, None, (j - 1) * width, width)
            for k in range(width):
                acc[j - 1, k] = zero
            if i & (mask << (j * power)) != 0:
                break
    while i < rows:
        _add_span(acc, 0, x, y, lo + i * width, width)
        i += 1
    for j in range(1, LEVELS):
        _add_span(acc, 0, acc, None, j * width, width)


@intrinsic
def _levels(typingctx, like):
    """A (LEVELS, ACCUMULATORS * V) C-ordered array of like's dtype on the stack
    (numnet._llvm.stack_matrix): the accumulators, which LLVM keeps in vector registers
    (their indices are constants once the loops over them are unrolled), where a heap
    array would go to memory every row."""
    if not isinstance(like, types.Array):
        return None
    levels, codegen = stack_matrix(like.dtype, LEVELS, ACCUMULATORS * LANE_BYTES // (like.dtype.bitwidth // 8))
    return levels(like), codegen


@intrinsic
def _scalar_levels(typingctx, like):
    """_levels for ACCUMULATORS scalars: (LEVELS, ACCUMULATORS), on the stack."""
    if not isinstance(like, types.Array):
        return None
    levels, codegen = stack_matrix(like.dtype, LEVELS, ACCUMULATORS)
    return levels(like), codegen


@register_jitable
def _zero(acc):
    always_inline()
    zero = acc.dtype.type(0)
    for j in range(acc.shape[0]):
        for k in range(acc.shape[1]):
            acc[j, k] = zero


@register_jitable
def row_sum(x, y, lo, hi, vectorised):
    """sum x[lo:hi] (x contiguous; of x[i] * y[i] when y is an array) in torch's order
    (module docstring): with ACCUMULATORS
    vectors of V lanes when ``vectorised`` and there are at least V values, else with
    ACCUMULATORS scalars."""
    n = hi - lo
    zero = x.dtype.type(0)
    lanes = _lanes(x)
    if vectorised and n >= lanes:
        width = ACCUMULATORS * lanes
        vectors = n // lanes
        acc = _levels(x)
        _zero(acc)
        rows = vectors // ACCUMULATORS
        _multi_row_sum(x, y, lo, rows, width, acc)
        for v in range(rows * ACCUMULATORS, vectors):  # left-over whole vectors
            _add_span(acc, 0, x, y, lo + v * lanes, lanes)
        for g in range(1, ACCUMULATORS):
            _add_span(acc, 0, acc, None, g * lanes, lanes)
        total = zero
        for i in range(lo + vectors * lanes, hi):  # the tail, then the lanes
            total += _value(x, y, i)
        for k in range(lanes):
            total += acc[0, k]
        return total
    acc = _scalar_levels(x)
    _zero(acc)
    rows = n // ACCUMULATORS
    _multi_row_sum(x, y, lo, rows, ACCUMULATORS, acc)
    for i in range(lo + rows * ACCUMULATORS, hi):
        acc[0, 0] += _value(x, y, i)
    total = acc[0, 0]
    for g in range(1, ACCUMULATORS):
        total += acc[0, g]
    return total


@register_jitable
def _range_sum(rows, factors, start, stop, vectorised):
    """0 + the sums of the row pieces that the flat index range [start, stop) covers,
    added in order: one torch thread's share. rows: (R, L), C-contiguous; factors: None,
    or the R * L values (1-D, C-contiguous) each of rows' values is multiplied by."""
    length = rows.shape[1]
    flat = rows.reshape(-1)
    total = rows.dtype.type(0)
    i = start
    while i < stop:
        r = i // length
        end = min(stop, (r + 1) * length)
        total += row_sum(flat, factors, i, end, vectorised)
        i = end
    return total


@register_jitable
def _chunk_bounds(n, torch_threads):
    """(chunks C, values per chunk): at::parallel_for's split of n values over T threads."""
    if n < GRAIN or torch_threads == 1:
        return 1, max(n, 1)
    if n == GRAIN:  # parallel_reduce splits, but parallel_for runs it all on thread 0
        return 1, n
    chunks = min(torch_threads, (n + GRAIN - 1) // GRAIN)
    return chunks, (n + chunks - 1) // chunks


@register_jitable
def _chunk_sums(rows, factors, partial, chunks, size, vectorised):
    """partial[c] = chunk c's sum (the thread slots torch fills), on numnet's threads."""
    n = rows.size
    for c in prange(chunks):
        partial[c] = _range_sum(rows, factors, c * size, min(n, (c + 1) * size), vectorised)


_chunk_sums_parallel = jit(parallel=True)(_chunk_sums)


# The kernels numnet's ops call come in pairs: a register_jitable body, compiled into the
# kernels that call it (a kernel called from another compiles, and is cached, once more),
# and the @jit kernel for the ops.
@register_jitable
def serial_sum(rows, factors, vectorised, torch_threads):
    """The sum of every value of rows: (R, L), C-contiguous, each row one of torch's rows
    (R = 1 for a contiguous array), in the order torch.sum gives with ``torch_threads``
    threads, computed on this thread. factors: None; or for numnet.dot, an array of
    rows.size values (1-D, C-contiguous): then the sum of the products
    rows.flat[i] * factors[i], each rounded, as torch.sum sums the tensor of them."""
    n = rows.size
    if n < GRAIN or torch_threads == 1:
        return rows.dtype.type(0) + _range_sum(rows, factors, 0, n, vectorised)
    chunks, size = _chunk_bounds(n, torch_threads)
    partial = np.zeros(torch_threads, rows.dtype)
    _chunk_sums(rows, factors, partial, chunks, size, vectorised)
    return _fold(partial)


serial_sum_kernel = jit(serial_sum)


@register_jitable
def _fold(partial):
    """The second pass: 0 + the T-long buffer of chunk sums, summed as a contiguous row."""
    return partial.dtype.type(0) + row_sum(partial, None, 0, partial.shape[0], True)


@register_jitable
def threaded_sum(rows, factors, vectorised, torch_threads, threads):
    """serial_sum's sum, torch's chunks on numnet's ``threads`` threads
    (numnet._jit.threads) when there are several: the same bits. serial_sum's steps,
    written out rather than called: a call would compile and link a copy of them."""
    n = rows.size
    if n < GRAIN or torch_threads == 1:
        return rows.dtype.type(0) + _range_sum(rows, factors, 0, n, vectorised)
    chunks, size = _chunk_bounds(n, torch_threads)
    partial = np.zeros(torch_threads, rows.dtype)
    if threads > 1 and chunks > 1:
        _chunk_sums_parallel(rows, factors, partial, chunks, size, vectorised)
    else:
        _chunk_sums(rows, factors, partial, chunks, size, vectorised)
    return _fold(partial)


sum_kernel = jit(threaded_sum)


@register_jitable
def small_sum(rows, factors, vectorised):
    """serial_sum for a sum torch does not split (fewer than GRAIN values, or one
    torch thread): a small sum then compiles only this (a few seconds less on a first run)."""
    return rows.dtype.type(0) + _range_sum(rows, factors, 0, rows.size, vectorised)


small_sum_kernel = jit(small_sum)


def unsplit(n, count):
    """Whether torch sums n values on one thread, whatever its count (None: torch's own,
    read only when it matters): fewer than GRAIN, or a count of one."""
    return n < GRAIN or count == 1


def total(rows, vectorised=True, count=None):
    """sum_kernel, or a twin that compiles less when numnet would not use threads for
    it: the same bits. count: torch's thread count (None: default_threads(), read only
    for a sum long enough to be split).

    numnet.sum's whole path for a C-ordered numpy array, kept short on purpose: after a
    sum of 10^7 values every line of Python runs from memory that the pass has swept out
    of the caches. Measured on an AMD EPYC (Zen 4), 10^7 float32: the checks and calls
    around the kernel took 57-106 us of a 0.5-0.8 ms sum (8 us in a loop of small sums);
    on this path, 15-25 us."""
    n = rows.size
    if n < GRAIN or count == 1:
        return small_sum_kernel(rows, None, vectorised)
    count = count or default_threads()
    threads = numnet_threads(n)
    if threads == 1:
        return serial_sum_kernel(rows, None, vectorised, count)
    return sum_kernel(rows, None, vectorised, count, threads)


def numnet_threads(n):
    """How many threads numnet may use for a sum of n values (numnet._jit.threads): one
    below 2 * GRAIN (torch's chunks would not be split), else as for sigmoid."""
    return threads(large=n >= LARGE) if n >= 2 * GRAIN else 1


# -- layouts -------------------------------------------------------------------------------


def order_rows(x):
    """(rows, vectorised): x's values as a C-contiguous (R, L) array whose rows are the
    rows torch's iterator sums, in its order, and whether torch vectorises them (their
    axis is contiguous). A view for an array contiguous in some order of its axes."""
    if x.ndim == 0 or x.size <= 1:
        return np.ascontiguousarray(x).reshape(1, -1), True
    if x.flags.c_contiguous:
        return x.reshape(1, -1), True
    if any(s <= 0 for s, n in zip(x.strides, x.shape) if n > 1):
        return np.ascontiguousarray(x).reshape(1, -1), True
    # TensorIterator: drop size-1 axes, sort the rest by stride (innermost first), merge
    # neighbours where one axis steps exactly over the other.
    axes = sorted(((s, n) for s, n in zip(x.strides, x.shape) if n > 1), key=lambda sn: sn[0])
    merged = [list(axes[0])]
    for s, n in axes[1:]:
        inner = merged[-1]
        if inner[0] * inner[1] == s:
            inner[1] *= n
        else:
            merged.append([s, n])
    inner_stride, length = merged[0]
    # The values in torch's order: axes from outermost (largest stride) to innermost.
    dims = [ax for ax in sorted(range(x.ndim), key=lambda ax: -x.strides[ax]) if x.shape[ax] > 1]
    in_order = np.ascontiguousarray(x.transpose(dims + [ax for ax in range(x.ndim) if ax not in dims]))
    return in_order.reshape(-1, length), inner_stride == x.itemsize
