"""Torch's CPU random normals, bit for bit, without torch.

``manual_seed(7); randn(3, 5)`` here returns the same float32 bits as
``torch.manual_seed(7); torch.randn(3, 5)``, and a seeded `Generator` follows a seeded
``torch.Generator`` call for call. Checked against torch 2.13.0 (x86-64 CPU wheel, AVX2
and AVX-512 CPUs, glibc libm) by ``parity/test_random_parity.py``.

What torch does, and what is reproduced here (ATen's ``normal_kernel``):

* The engine is the standard Mersenne Twister mt19937, seeded by ``init_genrand`` with
  the low 32 bits of the seed. ``random64()`` is two draws, the first the high word.
* Small path, fewer than 16 elements (or a non-contiguous output in torch; numnet's
  outputs are always contiguous): double-precision Box-Muller per element, with u1, u2
  53-bit uniforms, ``r = sqrt(-2 log1p(-u2))``, ``theta = 2 pi u1``; ``r cos theta``
  is returned and ``r sin theta`` cached for the next element, even across calls.
* Large float32 path, 16 or more elements: N 24-bit uniforms first, then Box-Muller on
  blocks of 16 (cos from u[j], u[j+8]), and if 16 does not divide N, 16 fresh uniforms
  transformed as one block written over the last 16 outputs. log, sin and cos are the
  Cephes-style float32 polynomials of ``avx_mathfun.h`` with the compiler's fused
  multiply-adds, emulated here with LLVM's ``fma`` intrinsic.
* Large float64 path: the same blocking with 53-bit uniforms and libm log/cos/sin.
  The large paths neither read nor write the cached normal.

Torch builds without AVX2 (aarch64 wheels, or ``ATEN_CPU_CAPABILITY=default``) use libm
logf/cosf/sinf in the large float32 path instead: their output differs from this module
in about 40% of the elements of any call with 16 or more float32 values (by at most
~2e-6 absolute; median 2 ULP, many more ULP for values near zero). The float64 and
small paths call the process's libm (glibc here) as torch does, and agree on both.

The generator state (`Generator.get_state`) uses torch's byte layout, so a numnet state
can be loaded into ``torch.set_rng_state`` and the other way round.
"""

import math
import operator
import os

import numpy as np

from numnet._jit import jit
from numnet._llvm import float_bits, float_from_bits, fma
from numnet._typing import Array, ArrayLike, DTypeLike

_N, _M = 624, 397  # mt19937: state words, twist offset
_MATRIX_A = np.uint32(0x9908B0DF)
_UPPER, _LOWER = np.uint32(0x80000000), np.uint32(0x7FFFFFFF)
_SMALL = 16  # torch's large paths need at least this many contiguous elements
_MASK24, _MASK53 = np.uint32(0xFFFFFF), np.uint64(2**53 - 1)
_TWO_M24, _TWO_M53 = np.float32(2.0**-24), 2.0**-53
_TWO_PI = 2.0 * np.pi

# Constants of avx_mathfun.h, rounded to float32 from the same decimal literals.
_F = np.float32
_ZERO, _HALF, _ONE, _MINUS_TWO, _TWO_PI_F = _F(0), _F(0.5), _F(1), _F(-2), _F(_TWO_PI)
_SQRTHF = _F(0.707106781186547524)
_LOG_P0, _LOG_P1, _LOG_P2, _LOG_P3, _LOG_P4, _LOG_P5, _LOG_P6, _LOG_P7, _LOG_P8 = (
    _F(p)
    for p in (
        7.0376836292e-2,
        -1.1514610310e-1,
        1.1676998740e-1,
        -1.2420140846e-1,
        1.4249322787e-1,
        -1.6668057665e-1,
        2.0000714765e-1,
        -2.4999993993e-1,
        3.3333331174e-1,
    )
)
_LOG_Q1, _LOG_Q2 = _F(-2.12194440e-4), _F(0.693359375)
_FOPI = _F(1.27323954473516)  # 4 / pi
_DP1, _DP2, _DP3 = _F(-0.78515625), _F(-2.4187564849853515625e-4), _F(-3.77489497744594108e-8)
_COS_P0, _COS_P1, _COS_P2 = _F(2.443315711809948e-5), _F(-1.388731625493765e-3), _F(4.166664568298827e-2)
_SIN_P0, _SIN_P1, _SIN_P2 = _F(-1.9515295891e-4), _F(8.3321608736e-3), _F(-1.6666654611e-1)

# torch's CPUGeneratorImplState, byte for byte (x86-64: little-endian, natural alignment).
STATE_DTYPE = np.dtype(
    [
        ("the_initial_seed", "<u8"),
        ("left", "<i4"),
        ("seeded", "<i4"),
        ("next", "<u8"),
        ("state", "<u8", (_N,)),
        ("normal_x", "<f8"),
        ("normal_y", "<f8"),
        ("normal_rho", "<f8"),
        ("normal_is_valid", "<i4"),
        ("_pad0", "<i4"),
        ("next_float_normal_sample", "<f4"),
        ("is_next_float_normal_sample_valid", "u1"),
        ("_pad1", "u1", (3,)),
    ]
)
assert STATE_DTYPE.itemsize == 5056, STATE_DTYPE.itemsize


def _kernel(fn=None, *, inline="never"):
    """numnet's cached @jit. No nogil: the GIL keeps two threads from drawing from one
    generator at once, as torch's generator mutex does. inline="always" for the
    per-element helpers: LLVM alone leaves them as calls, 4x slower."""
    return jit(fn, inline=inline)


# ---------------------------------------------------------------- mt19937
@_kernel
def _init_genrand(mt, seed32):
    """mt[0] = seed; mt[k] = 1812433253 * (mt[k-1] ^ (mt[k-1] >> 30)) + k  (mod 2**32)."""
    mt[0] = seed32
    for k in range(1, _N):
        prev = np.uint64(mt[k - 1])  # uint64 throughout: numba turns uint64 op int64 into float64
        mixed = np.uint64(1812433253) * (prev ^ (prev >> np.uint64(30))) + np.uint64(k)
        mt[k] = np.uint32(mixed & np.uint64(0xFFFFFFFF))


@_kernel(inline="always")
def _twist_word(mt, k, k1, km):
    """mt[k] = mt[k+M] ^ ((upper(mt[k]) | lower(mt[k+1])) >> 1) ^ (MATRIX_A if mt[k+1] odd)."""
    y = (mt[k] & _UPPER) | (mt[k1] & _LOWER)
    mt[k] = mt[km] ^ (y >> np.uint32(1)) ^ (_MATRIX_A * (mt[k1] & np.uint32(1)))


@_kernel
def _twist(mt):
    """Replace all 624 words by the next 624 (indices mod 624, in three wrap-free runs)."""
    for k in range(_N - _M):
        _twist_word(mt, k, k + 1, k + _M)
    for k in range(_N - _M, _N - 1):
        _twist_word(mt, k, k + 1, k + _M - _N)
    _twist_word(mt, _N - 1, 0, _M - 1)


@_kernel(inline="always")
def _temper(y):
    """mt19937's output: y ^= y>>11; y ^= (y<<7) & 0x9d2c5680; y ^= (y<<15) & 0xefc60000; y ^= y>>18."""
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    return y ^ (y >> np.uint32(18))


@_kernel
def _reserve(mt, pos, want):
    """Take up to `want` words from the current block, twisting first if it is spent.

    pos = [left, next] as torch keeps them: a draw decrements left, twists when it
    reaches 0 (then left = 624, next = 0), and returns mt[next++]. Returns (start, count).
    """
    left, start = pos[0], pos[1]
    if left == 1:
        _twist(mt)
        left, start = _N + 1, 0
    count = min(want, left - 1)
    pos[0], pos[1] = left - count, start + count
    return start, count


@_kernel
def _random(mt, pos):
    """One 32-bit draw."""
    start, _ = _reserve(mt, pos, 1)
    return _temper(mt[start])


@_kernel
def _random64(mt, pos):
    """(first draw << 32) | second draw."""
    hi = np.uint64(_random(mt, pos))
    return (hi << np.uint64(32)) | np.uint64(_random(mt, pos))


# ---------------------------------------------------------------- uniforms
@_kernel
def _uniform53(mt, pos):
    """u = (random64() & (2**53 - 1)) * 2**-53, in [0, 1)."""
    return np.float64(_random64(mt, pos) & _MASK53) * _TWO_M53


@_kernel
def _fill_random(mt, pos, w):
    """w[i] = random(), in order, a block of tempered words at a time."""
    i = 0
    while i < w.size:
        start, count = _reserve(mt, pos, w.size - i)
        for k in range(count):
            w[i + k] = _temper(mt[start + k])
        i += count


@_kernel
def _fill_uniform53(mt, pos, u):
    """u[i] = ((w[2i] << 32 | w[2i+1]) & (2**53 - 1)) * 2**-53: random64() per element, in order.

    The 2N words are drawn into u's own bytes, then each element is built from its own two.
    """
    w = u.view(np.uint32)  # (2N,)
    _fill_random(mt, pos, w)
    for i in range(u.size):
        bits = (np.uint64(w[2 * i]) << np.uint64(32)) | np.uint64(w[2 * i + 1])
        u[i] = np.float64(bits & _MASK53) * _TWO_M53


@_kernel
def _fill_uniform24(mt, pos, u):
    """u[i] = float32((random() & (2**24 - 1)) * 2**-24): one draw per element, in order.

    The N words are drawn into u's own bytes, then each is converted where it lies.
    """
    w = u.view(np.uint32)
    _fill_random(mt, pos, w)
    for i in range(u.size):
        u[i] = np.float32(w[i] & _MASK24) * _TWO_M24


# ---------------------------------------------------------------- avx_mathfun, emulated
@_kernel(inline="always")
def _log_avx2(v):
    """log(v) for float32 v > 0 as avx_mathfun's log256_ps: v = m * 2**e, m in [sqrt(1/2), sqrt 2),
    x = m - 1, log v = x - x**2/2 + x**3 P(x) + e ln 2 (ln 2 split in q2 + q1), fma-contracted."""
    b = float_bits(v)
    e = np.float32(np.int32((b >> 23) - 127)) + _ONE
    m = float_from_bits(np.int32((b & ~0x7F800000) | 0x3F000000))  # same mantissa, in [0.5, 1)
    if m < _SQRTHF:
        e = e - _ONE
        x = (m - _ONE) + m
    else:
        x = (m - _ONE) + _ZERO
    z = x * x
    y = fma(_LOG_P0, x, _LOG_P1)
    y = fma(y, x, _LOG_P2)
    y = fma(y, x, _LOG_P3)
    y = fma(y, x, _LOG_P4)
    y = fma(y, x, _LOG_P5)
    y = fma(y, x, _LOG_P6)
    y = fma(y, x, _LOG_P7)
    y = fma(y, x, _LOG_P8)
    y = fma(y * x, z, e * _LOG_Q1)  # GCC fuses the first product it meets: (y x) z, not e q1
    y = fma(-z, _HALF, y)
    return fma(e, _LOG_Q2, x + y)


@_kernel(inline="always")
def _sincos_avx2(t):
    """(sin t, cos t) for float32 t >= 0 as avx_mathfun's sincos256_ps: j = even octant of
    t*4/pi, x = t - j*pi/4 (pi/4 split in three), then the Cephes sin/cos polynomials in x,
    swapped and negated by the octant, fma-contracted."""
    j = (np.int32(t * _FOPI) + np.int32(1)) & np.int32(~1)
    y = np.float32(j)
    x = fma(y, _DP1, t)
    x = fma(y, _DP2, x)
    x = fma(y, _DP3, x)
    z = x * x
    c = fma(_COS_P0, z, _COS_P1)
    c = fma(c, z, _COS_P2)
    c = fma(c * z, z, -(z * _HALF)) + _ONE  # again (c z) z is fused, z/2 is not
    s = fma(_SIN_P0, z, _SIN_P1)
    s = fma(s, z, _SIN_P2)
    s = fma(s * z, x, x)
    if (j & 2) != 0:
        s, c = c, s
    # torch blends the two polynomials with masks and an add: each result gets a +0.0.
    s, c = s + _ZERO, c + _ZERO
    if (j & 4) != 0:
        s = -s
    if ((j - 2) & 4) == 0:
        c = -c
    return s, c


# ---------------------------------------------------------------- Box-Muller
@_kernel
def _box_muller16_f32(u):
    """In place on 16 uniforms, j < 8: r = sqrt(-2 LOG(1 - u[j])), theta = float32(2 pi) u[j+8],
    u[j] = r COS(theta), u[j+8] = r SIN(theta); LOG, SIN, COS as avx_mathfun."""
    for j in range(8):
        radius = np.sqrt(_MINUS_TWO * _log_avx2(_ONE - u[j]))
        s, c = _sincos_avx2(_TWO_PI_F * u[j + 8])
        u[j] = radius * c + _ZERO  # + 0: torch's fmadd with mean 0 turns -0 into +0
        u[j + 8] = radius * s + _ZERO


@_kernel
def _box_muller16_f64(u):
    """In place on 16 uniforms, j < 8: r = sqrt(-2 log(1 - u[j])), theta = 2 pi u[j+8],
    u[j] = r cos(theta), u[j+8] = r sin(theta); libm log, cos, sin."""
    for j in range(8):
        radius = math.sqrt(-2.0 * math.log(1.0 - u[j]))
        theta = _TWO_PI * u[j + 8]
        u[j] = radius * math.cos(theta) + 0.0
        u[j + 8] = radius * math.sin(theta) + 0.0


@_kernel
def _normal_large_f32(mt, pos, out):
    """out: (N,) float32, N >= 16. All N uniforms, then 16-blocks; a ragged tail is redrawn."""
    n = out.size
    _fill_uniform24(mt, pos, out)
    for b in range(0, n - 15, 16):
        _box_muller16_f32(out[b : b + 16])
    if n % 16 != 0:
        tail = out[n - 16 :]
        _fill_uniform24(mt, pos, tail)
        _box_muller16_f32(tail)


@_kernel
def _normal_large_f64(mt, pos, out):
    """out: (N,) float64, N >= 16. All N uniforms, then 16-blocks; a ragged tail is redrawn."""
    n = out.size
    _fill_uniform53(mt, pos, out)
    for b in range(0, n - 15, 16):
        _box_muller16_f64(out[b : b + 16])
    if n % 16 != 0:
        tail = out[n - 16 :]
        _fill_uniform53(mt, pos, tail)
        _box_muller16_f64(tail)


@_kernel
def _normal_small(mt, pos, cache, out):
    """out: (N,) float32 or float64, any N. Per element: the cached normal if any, else
    u1, u2 53-bit uniforms, r = sqrt(-2 log1p(-u2)), theta = 2 pi u1, cache r sin(theta),
    take r cos(theta); rounded to out's dtype. cache = [valid (0 or 1), value]."""
    for i in range(out.size):
        if cache[0] != 0.0:
            z = cache[1]
            cache[0] = 0.0
        else:
            u1 = _uniform53(mt, pos)
            u2 = _uniform53(mt, pos)
            r = math.sqrt(-2.0 * math.log1p(-u2))
            theta = _TWO_PI * u1
            cache[0], cache[1] = 1.0, r * math.sin(theta)
            z = r * math.cos(theta)
        out[i] = z + 0.0  # torch: z * std + mean, std 1, mean 0


# ---------------------------------------------------------------- argument checks
def _seed64(seed):
    """torch.manual_seed's rule: any int in [-2**63, 2**64), negatives taken mod 2**64."""
    try:
        s = operator.index(seed)
    except TypeError:
        raise TypeError(f"manual_seed(): seed must be an int, got {type(seed).__name__} {seed!r}") from None
    if not -(2**63) <= s < 2**64:
        raise ValueError(
            f"manual_seed(): seed {s} is outside [-2**63, 2**64) (torch: 'Overflow when unpacking long long')"
        )
    return s % 2**64


def _size(op, size):
    """randn(3, 5), randn((3, 5)), randn([3, 5]), randn(()) -> a shape tuple, checked as torch."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    elif len(size) == 0:
        raise TypeError(f"{op}(): missing size; for a 0-d array pass () as torch does: {op}(())")
    shape = []
    for d in size:
        if isinstance(d, (bool, np.bool_)):
            raise TypeError(f"{op}(): size must be a tuple of ints, got bool in {size!r}")
        try:
            shape.append(operator.index(d))
        except TypeError:
            raise TypeError(f"{op}(): size must be a tuple of ints, got {type(d).__name__} in {size!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"{op}(): negative dimension {min(shape)} in size {tuple(shape)}")
    return tuple(shape)


def _float_dtype(op, dtype):
    """np.float32 / np.float64 (or anything np.dtype reads as them, or torch.float32/64)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
        name = str(dtype).removeprefix("torch.")
        if name in ("float32", "float64", "float", "double"):
            dt = np.dtype({"float": "float32", "double": "float64"}.get(name, name))
    if dtype is None or dt is None or dt not in (np.float32, np.float64):
        raise TypeError(f"{op}(): dtype must be float32 or float64, got {dtype!r}")
    return dt


# ---------------------------------------------------------------- the generator
class Generator:
    """A torch-compatible CPU generator: mt19937 plus torch's cached double normal.

    >>> g = Generator(7)  # torch.Generator().manual_seed(7)
    >>> g.randn(1, 5).round(4)  # torch.randn(1, 5, generator=g), the same bits before rounding
    array([[-0.1468,  0.7861,  0.9468, -1.1143,  1.6908]], dtype=float32)

    seed=None seeds from os.urandom, as torch seeds its default generator (a fresh
    torch.Generator() instead starts from the fixed seed 67280421310721).
    """

    def __init__(self, seed: int | None = None) -> None:
        self._mt = np.empty(_N, np.uint32)  # mt19937 words
        self._pos = np.empty(2, np.int64)  # [left, next] as torch counts them
        self._cache = np.zeros(2)  # [valid, value]: torch's next double normal sample
        self._float_cache = None  # torch's next float normal sample: unused by randn, kept for states
        self.manual_seed(int.from_bytes(os.urandom(8), "little") if seed is None else seed)

    def manual_seed(self, seed: int) -> "Generator":
        """Seed mt19937 with the low 32 bits of seed (ints in [-2**63, 2**64)); clear the cache."""
        self._seed = _seed64(seed)
        _init_genrand(self._mt, np.uint32(self._seed & 0xFFFFFFFF))
        self._pos[:] = 1, 0
        self._cache[:] = 0.0
        self._float_cache = None
        return self

    def initial_seed(self) -> int:
        """The seed last given to manual_seed, as an int in [0, 2**64)."""
        return self._seed

    def randn(self, *size: int | tuple[int, ...], dtype: DTypeLike = np.float32) -> Array:
        """Standard normals of the given shape, drawn as torch.randn draws them."""
        shape = _size("randn", size)
        out = np.empty(shape, _float_dtype("randn", np.float32 if dtype is None else dtype))
        flat = out.reshape(-1)
        if flat.size < _SMALL:
            _normal_small(self._mt, self._pos, self._cache, flat)
        elif flat.dtype == np.float32:
            _normal_large_f32(self._mt, self._pos, flat)
        else:
            _normal_large_f64(self._mt, self._pos, flat)
        return out

    def randn_like(self, a: ArrayLike, dtype: DTypeLike | None = None) -> Array:
        """randn(a.shape, dtype=a.dtype unless given), always C-contiguous.

        Differs from torch.randn_like for a non-contiguous template (a transpose, say):
        torch keeps its strides and so draws by the small path in memory order.
        """
        if not hasattr(a, "shape"):
            raise TypeError(f"randn_like(): expected an array with .shape, got {type(a).__name__}")
        dtype = _float_dtype("randn_like", a.dtype if dtype is None else dtype)
        return self.randn(tuple(a.shape), dtype=dtype)

    def get_state(self) -> Array:
        """A copy of the full state as torch's 5056-byte CPUGeneratorImplState (uint8 array)."""
        st = np.zeros((), STATE_DTYPE)
        st["the_initial_seed"] = self._seed
        st["left"], st["next"], st["seeded"] = self._pos[0], self._pos[1], 1
        st["state"] = self._mt
        if self._cache[0]:
            st["normal_is_valid"], st["normal_y"] = 1, self._cache[1]
        if self._float_cache is not None:
            st["is_next_float_normal_sample_valid"] = 1
            st["next_float_normal_sample"] = self._float_cache
        return st.reshape(1).view(np.uint8).copy()

    def set_state(self, state: ArrayLike) -> None:
        """Restore a state from get_state (or from torch.get_rng_state().numpy())."""
        raw = np.asarray(state)
        if raw.dtype != np.uint8 or raw.shape != (STATE_DTYPE.itemsize,):
            raise TypeError(
                f"set_state(): expected a uint8 array of shape ({STATE_DTYPE.itemsize},), got {raw.dtype} {raw.shape}"
            )
        st = raw.copy().view(STATE_DTYPE)[0]
        if not (st["seeded"] and 0 < st["left"] <= _N and st["next"] <= _N):
            raise ValueError(f"set_state(): invalid mt19937 state (left={st['left']}, next={st['next']})")
        self._seed = int(st["the_initial_seed"])
        self._mt[:] = st["state"] & 0xFFFFFFFF
        self._pos[:] = st["left"], st["next"]
        self._cache[:] = (1.0, st["normal_y"]) if st["normal_is_valid"] else (0.0, 0.0)
        self._float_cache = (
            np.float32(st["next_float_normal_sample"]) if st["is_next_float_normal_sample_valid"] else None
        )


# ---------------------------------------------------------------- torch-style module API
default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (torch.manual_seed); returns it."""
    return default_generator.manual_seed(seed)


def initial_seed() -> int:
    """The default generator's seed (torch.initial_seed)."""
    return default_generator.initial_seed()


def randn(*size: int | tuple[int, ...], dtype: DTypeLike = np.float32, generator: Generator | None = None) -> Array:
    """torch.randn: standard normals of the given shape, float32 unless dtype=np.float64."""
    return (default_generator if generator is None else generator).randn(*size, dtype=dtype)


def randn_like(a: ArrayLike, dtype: DTypeLike | None = None, generator: Generator | None = None) -> Array:
    """torch.randn_like: randn(a.shape) in a's dtype unless dtype is given."""
    return (default_generator if generator is None else generator).randn_like(a, dtype=dtype)
