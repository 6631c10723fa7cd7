"""Comparing two results: where they differ, by how much, and by how much they may.

This is numnet's tolerance policy, in one place. It is used by numnet's own tests and
parity suite, and it is public so that you can check your own kernels the same way.

How much may two float results differ?

* **Elementwise sigmoid** ``1/(1+exp(-x))``: each implementation rounds three times
  (exp within 1 ULP -- SLEEF's expf in torch, LLVM's in Numba -- then the add and the
  divide, half an ULP each), so each is within 2 ULP of the exact value and two of
  them within ``SIGMOID_ULP = 4`` ULP of each other. Measured against torch 2.13
  (float32 and float64, 2.1 million inputs in [-800, 800]): at most 4 ULP, 96% equal.
  Below the smallest normal number (x < -87.3 in float32, x < -708.4 in float64) the
  result is subnormal; there e^-x has already overflowed, so torch and numnet both
  return 0 (torch documents 0 for x <= -89 in float32). Such results may differ from
  the exact one by less than the smallest normal number (``np.finfo(dtype).tiny``).
* **A sum of k products** (dot, one entry of mm, linear with its bias as term k+1):
  summed in any order in floating point, the result is within ``gamma_k * sum|terms|``
  of the exact sum, ``gamma_k = k*u / (1 - k*u)``, u the unit roundoff (Higham,
  *Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 3.5). Two
  implementations that add in different orders (torch adds in blocks, numnet left to
  right) are thus within ``2 * gamma_k * sum|terms|`` of each other; that is
  :func:`sum_bound`. The bound grows with k and with the magnitudes, not with the
  result, so cancellation (a result near 0) does not make it fail spuriously.
  Products that underflow add at most one smallest subnormal each.
* **Overflow**: where ``sum|terms|`` exceeds the dtype's largest finite value, the
  order of additions can decide between a finite value, +-inf and NaN. Both answers
  are honest IEEE arithmetic, so such elements are reported and not compared.
* NaN must meet NaN and +-inf must meet the same inf, everywhere else.
"""
from dataclasses import dataclass

import numpy as np

SIGMOID_ULP = 4


def unit_roundoff(dtype):
    """u = 2**-24 for float32, 2**-53 for float64."""
    return float(np.finfo(dtype).eps) / 2


def gamma(k, dtype):
    """gamma_k = k u / (1 - k u): the relative error bound of a k-term sum."""
    ku = k * unit_roundoff(dtype)
    return ku / (1 - ku) if ku < 1 else np.inf


def sum_bound(k, scale, dtype):
    """How far two k-term sums of the same terms, added in any two orders, may differ.

    scale: sum |term| (an array, computed in float64 from the inputs).
    """
    tiny = float(np.finfo(dtype).smallest_subnormal)
    return 2 * gamma(k, dtype) * np.asarray(scale, np.float64) + 2 * k * tiny


def finite_abs(a):
    """|a| in float64, with inf and NaN entries as 0: such factors make a result
    non-finite in every order, so they add nothing to the rounding scale."""
    a = np.asarray(a, np.float64)
    return np.where(np.isfinite(a), np.abs(a), 0.0)


def mm_scale(a, b, matmul):
    """sum_p |a_ip b_pj| over finite factors: the scale of sum_bound for a @ b.

    matmul: a float64 matrix product to trust for this (a Python loop, torch in float64).
    A product of finite factors that overflows makes the scale inf: order-dependent.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(matmul(finite_abs(a), finite_abs(b)), np.float64)


def forward_bound(x, layers, dtype, matmul, sigmoid):
    """How far two ``dtype`` evaluations of the sigmoid network may differ; returns
    (bound, scale) for :func:`compare`.

    Layer by layer, with e the bound on the difference of the layer's inputs: the
    pre-activations z = h @ W + b differ by at most sum_p e_p |W_pj| +
    sum_bound(k + 1, scale); sigmoid's slope is at most 1/4, and each side rounds it
    within SIGMOID_ULP / 2 ULP. Where z is +-inf or NaN both sides give the same exact
    value. Where a sum could overflow, the row is order-dependent from there on (scale
    inf). ``matmul`` and ``sigmoid`` are trusted float64 references.
    """
    h = np.asarray(x, np.float64)
    e = np.zeros(h.shape)
    overflow = np.zeros(h.shape[0], bool)
    eps = float(np.finfo(dtype).eps)
    with np.errstate(all="ignore"):
        for W, b in layers:
            W = np.asarray(W, np.float64)
            b = np.asarray(b, np.float64).reshape(-1)
            k = W.shape[0]
            z = np.asarray(matmul(h, W), np.float64) + b
            scale = mm_scale(h, W, matmul) + finite_abs(b)
            e_z = np.asarray(matmul(e, finite_abs(W)), np.float64) + sum_bound(k + 1, scale, dtype)
            h = np.asarray(sigmoid(z), np.float64)
            e = np.where(np.isfinite(z), e_z / 4 + SIGMOID_ULP * eps * np.abs(h), 0.0)
            overflow |= (scale > float(np.finfo(dtype).max)).any(axis=1)
    return e, np.where(overflow[:, None], np.inf, 0.0) + np.zeros(h.shape)


def op_tolerance(op, args, matmul, sigmoid):
    """The :func:`compare` keywords (``ulp=`` or ``bound=`` and ``scale=``) for numnet op
    ``op`` ("sigmoid", "dot", "mm", "neuron", "linear", "forward") called with ``args``.

    matmul, sigmoid: trusted float64 references for the scales (see mm_scale).
    """
    if op == "sigmoid":
        return {"ulp": SIGMOID_ULP, "atol": float(np.finfo(np.asarray(args[0]).dtype).tiny)}
    if op == "forward":
        x, layers = args
        bound, scale = forward_bound(x, layers, np.asarray(x).dtype, matmul, sigmoid)
        return {"bound": bound, "scale": scale}
    dtype = np.asarray(args[0]).dtype
    if op == "mm":
        a, b = args
        return {"bound": sum_bound(np.shape(a)[1], s := mm_scale(a, b, matmul), dtype), "scale": s}
    if op == "linear":
        x, W, b = args
        scale = mm_scale(x, W, matmul) + finite_abs(b).reshape(-1)
        return {"bound": sum_bound(np.shape(W)[0] + 1, scale, dtype), "scale": scale}
    a, b = args[0], args[1]
    row, column = np.reshape(a, (1, -1)), np.reshape(b, (-1, 1))
    scale = mm_scale(row, column, matmul).reshape(())
    if op == "dot":
        return {"bound": sum_bound(row.shape[1], scale, dtype), "scale": scale}
    if op == "neuron":  # sigma(sum + b): the sum's bound through sigma's slope (<= 1/4)
        bias = np.asarray(args[2], np.float64)
        with np.errstate(all="ignore"):
            value = np.asarray(sigmoid(np.asarray(matmul(row, column)).reshape(()) + bias), np.float64)
        scale = scale + finite_abs(bias)
        eps = float(np.finfo(dtype).eps)
        bound = sum_bound(row.shape[1] + 1, scale, dtype) / 4 + SIGMOID_ULP * eps * np.abs(value)
        return {"bound": bound, "scale": scale}
    raise ValueError(f"op_tolerance: unknown op {op!r}")


def ulp_distance(a, b):
    """How many representable floats lie between a and b, elementwise (int64 array).

    -0.0 and +0.0 are 0 apart; a NaN is as far from anything as int64 allows.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    ints = {4: np.int32, 8: np.int64}[a.dtype.itemsize]

    def ordered(v):
        i = np.ascontiguousarray(v).view(ints).astype(np.int64)
        return np.where(i < 0, np.int64(np.iinfo(ints).min) - i, i)

    with np.errstate(over="ignore"):
        d = np.abs(ordered(a) - ordered(b))
    return np.where(np.isnan(a) | np.isnan(b), np.iinfo(np.int64).max, d)


@dataclass
class Report:
    """The outcome of :func:`compare`; ``str(report)`` is a one-paragraph verdict."""

    name: str
    ok: bool
    shape: tuple
    dtype: str
    max_abs_err: float
    max_ulp: int
    worst_index: tuple
    worst_actual: float
    worst_expected: float
    worst_allowed: float
    n_mismatched: int
    n_order_dependent: int
    tolerance: str

    def __str__(self):
        verdict = "ok" if self.ok else f"FAIL: {self.n_mismatched} element(s) out of tolerance"
        text = (
            f"{self.name}: {verdict}; shape {self.shape} {self.dtype}, "
            f"max abs err {self.max_abs_err:.3g}, max {self.max_ulp} ULP, tolerance {self.tolerance}"
        )
        if self.worst_index is not None:
            text += (
                f"; worst at {self.worst_index}: got {self.worst_actual!r}, "
                f"expected {self.worst_expected!r}, allowed +-{self.worst_allowed:.3g}"
            )
        if self.n_order_dependent:
            text += f"; {self.n_order_dependent} element(s) not compared (overflow, order-dependent)"
        return text


def compare(actual, expected, *, ulp=None, atol=0.0, bound=None, scale=None, name="result"):
    """Compare ``actual`` with ``expected`` (same shape and dtype) elementwise.

    Give exactly one tolerance: ``ulp`` (an ULP count; with ``atol``, an element also
    passes when it is within atol absolutely) or ``bound`` (absolute, per element or
    scalar, e.g. from :func:`sum_bound`). ``scale`` (sum |terms| per element) marks
    elements whose sum may overflow as order-dependent.
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        raise AssertionError(
            f"{name}: expected shape {expected.shape} {expected.dtype}, "
            f"got shape {actual.shape} {actual.dtype}"
        )
    if (ulp is None) == (bound is None):
        raise ValueError("compare: give exactly one of ulp= or bound=")
    wide_a = actual.astype(np.float64)
    wide_e = expected.astype(np.float64)
    same_special = (np.isnan(wide_a) & np.isnan(wide_e)) | (
        np.isinf(wide_a) & (wide_a == wide_e)
    )
    finite = np.isfinite(wide_a) & np.isfinite(wide_e)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(finite, np.abs(wide_a - wide_e), np.inf)
    err = np.where(same_special, 0.0, err)
    ulps = np.where(same_special, 0, ulp_distance(actual, expected))
    if ulp is not None:
        bad = (ulps > ulp) & ~(err <= atol)
        allowed = np.zeros(actual.shape) + float("nan")
        tolerance = f"{ulp} ULP" + (f" or {atol:.3g} absolute" if atol else "")
    else:
        allowed = np.broadcast_to(np.asarray(bound, np.float64), actual.shape)
        bad = ~(err <= allowed) & ~same_special
        tolerance = "2*gamma_k*sum|terms| (sum_bound)"
    order_dependent = np.zeros(actual.shape, bool)
    if scale is not None:
        order_dependent = np.asarray(scale, np.float64) > float(np.finfo(actual.dtype).max)
        order_dependent = np.broadcast_to(order_dependent, actual.shape)
        bad = bad & ~order_dependent
    counted = ~order_dependent
    worst = None
    if actual.size:
        key = np.where(counted, np.where(bad, np.inf, err), -1.0)
        if bad.any():
            key = np.where(bad, ulps.astype(np.float64) + 1, -1.0)
        flat = int(np.argmax(key))
        worst = tuple(int(i) for i in np.unravel_index(flat, actual.shape))
    return Report(
        name=name,
        ok=not bad.any(),
        shape=actual.shape,
        dtype=str(actual.dtype),
        max_abs_err=float(err[counted].max()) if counted.any() else 0.0,
        max_ulp=int(ulps[counted].max()) if counted.any() else 0,
        worst_index=worst,
        worst_actual=actual[worst].item() if worst is not None else None,
        worst_expected=expected[worst].item() if worst is not None else None,
        worst_allowed=(
            (float(allowed[worst]) if bound is not None else float(ulp)) if worst is not None else 0.0
        ),
        n_mismatched=int(bad.sum()),
        n_order_dependent=int((order_dependent & ~same_special).sum()),
        tolerance=tolerance,
    )


def assert_close(actual, expected, **tolerance):
    """:func:`compare`, raising AssertionError with the report when it fails."""
    report = compare(actual, expected, **tolerance)
    if not report.ok:
        raise AssertionError(str(report))
    return report
