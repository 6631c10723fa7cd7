"""LLVM primitives the CPU kernels need and Numba does not expose: a fused multiply-add
and the IEEE bits of a float. One copy here, for numnet.kernels, numnet.random and
numnet.backward_kernels."""
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

# float32 <-> int32 (numnet.random's Cephes log), float64 <-> uint64 (numnet.kernels' expf)
_BITS = {types.float32: (types.int32, ir.IntType(32)), types.float64: (types.uint64, ir.IntType(64))}
_FLOATS = {types.int32: (types.float32, ir.FloatType()), types.uint64: (types.float64, ir.DoubleType())}


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma: one vfmadd on x86 CPUs with FMA); a, b, c of
    one float type, which the result has too."""
    if not (a == b == c and isinstance(a, types.Float)):
        return None
    return a(a, a, a), lambda context, builder, signature, args: builder.fma(*args)


@intrinsic
def float_bits(typingctx, x):
    """The IEEE bits of x: a float32 as an int32, a float64 as a uint64."""
    if x not in _BITS:
        return None
    bits, llvm_type = _BITS[x]
    return bits(x), lambda context, builder, signature, args: builder.bitcast(args[0], llvm_type)


@intrinsic
def float_from_bits(typingctx, i):
    """The float whose IEEE bits are i: an int32 as a float32, a uint64 as a float64."""
    if i not in _FLOATS:
        return None
    value, llvm_type = _FLOATS[i]
    return value(i), lambda context, builder, signature, args: builder.bitcast(args[0], llvm_type)
