"""LLVM primitives the CPU kernels need and Numba does not expose: a fused multiply-add
and the IEEE bits of a float. One copy here, for numnet.kernels, numnet.random and
numnet.backward_kernels."""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

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


def _function_attribute(function, attribute):
    """Add a string attribute ("key"="value") to an LLVM function. llvmlite's attribute
    set knows only LLVM's keyword attributes and refuses others; its text is written out
    as it is, so a string attribute goes in by the set's own add."""
    set.add(function.attributes, attribute)


@intrinsic
def prefer_vector_bits(typingctx, bits):
    """Ask LLVM to vectorise the calling function with vectors of ``bits`` bits (a literal
    int): the function attribute "prefer-vector-width". LLVM chooses 256-bit vectors on
    CPUs whose 512-bit instructions lower the clock (every AVX-512 CPU but a few); the
    product's micro-kernel asks for what the CPU has (numnet.kernels.VECTOR_BITS). Returns
    nothing; compiles to nothing."""
    if not isinstance(bits, types.IntegerLiteral):
        return None
    value = bits.literal_value

    def codegen(context, builder, signature, args):
        _function_attribute(builder.function, f'"prefer-vector-width"="{value}"')
        _function_attribute(builder.function, f'"min-legal-vector-width"="{value}"')
        return context.get_dummy_value()

    return types.none(bits), codegen


@intrinsic
def no_inline(typingctx):
    """Keep LLVM from inlining the calling function into its callers (the LLVM attribute
    noinline): a function whose vector width differs from its caller's must stay apart,
    or it would be compiled with the caller's."""

    def codegen(context, builder, signature, args):
        builder.function.attributes.add("noinline")
        return context.get_dummy_value()

    return types.none(), codegen


def stack_matrix(dtype, rows, cols):
    """An intrinsic's (signature result type, codegen) for a (rows, cols) C-ordered array
    of ``dtype`` on the stack of the calling function. Unlike np.empty (the heap, behind a
    pointer LLVM cannot see through) a stack array indexed only by constants is split by
    LLVM into separate values (SROA): kept in registers, as the kernels' accumulators."""
    matrix = types.Array(dtype, 2, "C")

    def codegen(context, builder, sig, args):
        item = context.get_data_type(dtype)
        size = context.get_abi_sizeof(item)
        data = cgutils.alloca_once(builder, item, size=rows * cols)  # in the entry block
        array = make_array(matrix)(context, builder)
        intp = context.get_value_type(types.intp)
        populate_array(
            array,
            data=data,
            shape=[intp(rows), intp(cols)],
            strides=[intp(cols * size), intp(size)],
            itemsize=intp(size),
            meminfo=None,
        )
        return array._getvalue()

    return matrix, codegen


def _fits(dst, d, src, s):
    """True when dst and src are C-ordered arrays of one float dtype and d, s integers:
    the operands of the vector intrinsics below."""
    return (
        isinstance(dst, types.Array)
        and isinstance(src, types.Array)
        and dst.dtype == src.dtype
        and isinstance(dst.dtype, types.Float)
        and dst.layout == "C"
        and src.layout == "C"
        and isinstance(d, types.Integer)
        and isinstance(s, types.Integer)
    )


def _vector_at(context, builder, vector, array_type, array, index_type, index):
    """A pointer to the ``vector`` (an LLVM vector type) that starts at array.flat[index]."""
    data = make_array(array_type)(context, builder, array).data
    index = context.cast(builder, index, index_type, types.intp)
    return builder.bitcast(builder.gep(data, [index], inbounds=True), vector.as_pointer())


def vector_add(dst, d, src, s, lanes):
    """An intrinsic's codegen for dst.flat[d + k] += src.flat[s + k], k < ``lanes`` (an
    int), as one vector: a vector load of each, one vector fadd, one store; its first four
    arguments are dst, d, src, s. None if the types do not fit (dst, src: C-ordered
    arrays of one float dtype; d, s: integers). Each lane is the same IEEE addition as the
    scalar ``+=``, so the bits are the scalar loop's; numba leaves LLVM's SLP vectoriser
    off, which would otherwise find these vectors in an unrolled scalar loop, and the loop
    vectoriser does not take a loop whose additions must stay in order. d + lanes and
    s + lanes must lie within the arrays (no bounds check)."""
    return vector_add_product(dst, d, src, types.none, s, lanes)


def vector_add_product(dst, d, src, factor, s, lanes):
    """vector_add, adding src.flat[s + k] * factor.flat[s + k] when factor is an array
    (none: src's values, as vector_add): each product a vector fmul, rounded to the
    dtype, then the fadd (numba sets no fastmath flag, so LLVM never contracts the two
    into an fma): the bits of summing torch's product tensor a * b, without the tensor.
    The codegen's arguments: dst, d, src, factor, s (vector_add's: dst, d, src, s); factor:
    a C-ordered array of src's dtype."""
    product = not isinstance(factor, types.NoneType)
    if product and not (isinstance(factor, types.Array) and factor.dtype == src.dtype and factor.layout == "C"):
        return None
    if not _fits(dst, d, src, s):
        return None

    def codegen(context, builder, sig, args):
        item = context.get_data_type(sig.args[0].dtype)
        align = context.get_abi_sizeof(item)
        vector = ir.VectorType(item, lanes)

        def pointer(array_type, array, index_type, index):
            return _vector_at(context, builder, vector, array_type, array, index_type, index)

        s_type, s_value = sig.args[-1], args[-1]  # s: the last argument
        value = builder.load(pointer(sig.args[2], args[2], s_type, s_value), align=align)
        if product:
            value = builder.fmul(value, builder.load(pointer(sig.args[3], args[3], s_type, s_value), align=align))
        to = pointer(sig.args[0], args[0], sig.args[1], args[1])
        total = builder.fadd(builder.load(to, align=align), value)
        builder.store(total, to, align=align)
        return context.get_dummy_value()

    return codegen


def vector_fma(dst, d, x, src, s, lanes):
    """An intrinsic's codegen for dst.flat[d + k] = fma(x, src.flat[s + k], dst.flat[d + k]),
    k < ``lanes`` (an int), as one vector: x broadcast, a vector load of src and of dst,
    one llvm.fma (a vfmadd), one store; its arguments are dst, d, x, src, s. Each lane is
    the scalar fma, rounded once: the bits of the scalar loop, whatever LLVM would have
    made of it. The products' register tiles are written with it: a stack array
    (stack_matrix) read and written as whole vectors at constant offsets stays in vector
    registers, where a scalar loop left LLVM to choose the order of the loops, and for
    some shapes it spilled or did not vectorise at all. None if the types do not fit
    (dst, src: C-ordered arrays of one float dtype, x a scalar of it; d, s: integers).
    d + lanes and s + lanes must lie within the arrays (no bounds check)."""
    if not (_fits(dst, d, src, s) and dst.dtype == x):
        return None

    def codegen(context, builder, sig, args):
        dst_type, d_type, _, src_type, s_type = sig.args[:5]
        dst_value, d_value, x_value, src_value, s_value = args[:5]
        item = context.get_data_type(x)
        align = context.get_abi_sizeof(item)
        vector = ir.VectorType(item, lanes)

        def pointer(array_type, array, index_type, index):
            return _vector_at(context, builder, vector, array_type, array, index_type, index)

        spread = builder.insert_element(ir.Constant(vector, ir.Undefined), x_value, ir.Constant(ir.IntType(32), 0))
        spread = builder.shuffle_vector(spread, spread, ir.Constant(ir.VectorType(ir.IntType(32), lanes), None))
        row = builder.load(pointer(src_type, src_value, s_type, s_value), align=align)
        to = pointer(dst_type, dst_value, d_type, d_value)
        name = f"llvm.fma.v{lanes}f{x.bitwidth}"  # llvmlite's builder.fma takes scalars only
        fused = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3), name)
        builder.store(builder.call(fused, [spread, row, builder.load(to, align=align)]), to, align=align)
        return context.get_dummy_value()

    return codegen


@intrinsic
def always_inline(typingctx):
    """Have LLVM inline the calling function into every caller (the LLVM attribute
    alwaysinline), as numba's ``inline="always"`` would, at a fraction of the compile
    time: numba compiles the function once per signature and LLVM pastes its code, where
    numba would copy, retype and relower the function's IR at every call site. Needed
    where a caller's stack array (stack_matrix) must stay in registers: only once the
    call is gone does LLVM see every index of it."""

    def codegen(context, builder, signature, args):
        builder.function.attributes.add("alwaysinline")
        return context.get_dummy_value()

    return types.none(), codegen
