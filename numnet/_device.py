"""The arithmetic that must differ between the devices, so that the rest is one source.

numnet's elementwise functions (numnet/elementwise.py) are plain Python on scalars,
compiled by numba for the CPU and, called from a CUDA kernel, by numba-cuda for the GPU.
Both compilers round ``a * b`` and ``a + b`` once each, with one difference: NVVM
contracts a multiply followed by an add into one fused multiply-add (fma.rn, one
rounding) by default, where the CPU, compiled without fastmath, rounds twice. So every
multiply whose result is added (``one - y * y``, ``momentum * buf + g``) is written with
``mul`` and ``add``/``sub`` below: on the CPU the plain LLVM instructions, on the GPU
libdevice's round-to-nearest ones (``__nv_fmul_rn``, ``__nv_dadd_rn``, ...: PTX
``mul.rn``/``add.rn``, which NVVM never fuses; a - b as a + (-b)). The fused multiply-add itself is
numnet._llvm.fma, llvm.fma on both devices (fma.rn on a GPU).
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _on_gpu(context):
    """True when ``context`` compiles for a CUDA GPU (numba-cuda's target context)."""
    return type(context).__module__.startswith("numba.cuda")


def _rounded(name, cpu_op, libdevice):
    """An intrinsic ``name(a, b)``: ``a op b`` rounded once, never fused with its neighbours."""

    def typer(typingctx, a, b):
        if not (a == b and isinstance(a, types.Float)):
            return None

        def codegen(context, builder, signature, args):
            if _on_gpu(context):
                t = args[0].type
                callee = libdevice[0 if a == types.float32 else 1]
                fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t, t]), callee)
                if cpu_op == "fsub":  # libdevice has no __nv_dsub_rn: a - b = a + (-b), -b exact
                    # (as -0.0 - b: NVVM's LLVM IR predates the fneg instruction)
                    return builder.call(fn, [args[0], builder.fsub(ir.Constant(t, -0.0), args[1])])
                return builder.call(fn, args)
            return getattr(builder, cpu_op)(*args)

        return a(a, a), codegen

    typer.__name__ = name
    typer.__doc__ = f"a {cpu_op[1:]} b, rounded once to a's type and never contracted into a fused multiply-add."
    return intrinsic(typer)


mul = _rounded("mul", "fmul", ("__nv_fmul_rn", "__nv_dmul_rn"))
add = _rounded("add", "fadd", ("__nv_fadd_rn", "__nv_dadd_rn"))
sub = _rounded("sub", "fsub", ("__nv_fadd_rn", "__nv_dadd_rn"))
