"""Tensor printing without torch: ``format_tensor(a)`` is ``str(torch.from_numpy(a))``.

Reimplements the rules of ``torch/_tensor_str.py`` (checked character for character
against torch 2.13.0) under torch's default print options: precision 4, threshold 1000,
edgeitems 3, linewidth 80, sci_mode chosen automatically. Covers float32 and float64
arrays of any ndim, empty arrays, NaN, +-Inf, -0.0 and the ``...`` summary.

torch picks one number style for the whole tensor from its nonzero finite values:
  - int   every value is a whole number: ``1.``, ``-3.`` (``nan``/``inf`` bare);
  - sci   max/min > 1000, or max > 1e8, or min < 1e-4 (absolute values): ``1.0000e+05``;
  - fixed otherwise: ``0.1595``.
Every entry is right-aligned to the widest nonzero finite value. Each number is the
element converted exactly to a Python float (float32 widens to double without rounding)
and printed with Python's ``format``, so rounding is Python's, on the exact value.
"""

import numpy as np

from numnet._typing import ArrayLike

PRECISION = 4
THRESHOLD = 1000  # more elements than this: print only EDGEITEMS at each end of each dim
EDGEITEMS = 3
LINEWIDTH = 80
PREFIX = "tensor("


def format_tensor(a: ArrayLike) -> str:
    """The string torch prints for the float32/float64 array ``a``.

    Array-likes go through ``np.asarray``, so Python floats arrive as float64 (and print
    with ``dtype=torch.float64``, unlike ``torch.tensor(list)``, which makes float32).

    >>> format_tensor(np.array([[-0.1468, 0.7861]], dtype=np.float32))
    'tensor([[-0.1468,  0.7861]])'
    >>> format_tensor(np.zeros((0, 3)))
    'tensor([], size=(0, 3), dtype=torch.float64)'
    """
    a = np.asarray(a)
    if a.dtype.name not in ("float32", "float64"):
        raise TypeError(f"numnet.format: dtype {a.dtype} is not supported, only float32 and float64")
    suffixes = []
    if a.size == 0:
        if a.ndim != 1:  # torch, like numpy, shows the shape unless it is (0,)
            suffixes.append("size=" + str(tuple(int(n) for n in a.shape)))
        body = "[]"
    else:
        summarize = a.size > THRESHOLD
        # The style comes from the printed elements only, not the elided ones.
        shown = a[np.ix_(*[_kept(n) for n in a.shape])] if summarize else a
        fmt, width = _number_style(shown)
        body = _block(a, len(PREFIX), summarize, fmt, width)
    if a.dtype.name != "float32":  # float32 is torch's default dtype, so it goes unsaid
        suffixes.append(f"dtype=torch.{a.dtype.name}")
    return _add_suffixes(PREFIX + body, suffixes, len(PREFIX))


def _kept(n):
    """Indices that survive summarising a dim of length n."""
    return [i for i in _rows(n, True) if i is not None]


def _rows(n, summarize):
    """Indices to print along a dim of length n; None marks the ellipsis."""
    if summarize and n > 2 * EDGEITEMS:
        return [*range(EDGEITEMS), None, *range(n - EDGEITEMS, n)]
    return list(range(n))


def _number_style(values):
    """(fmt, width): a float -> str function shared by every entry, and its field width."""
    v = values[np.isfinite(values) & (values != 0)].astype(np.float64)  # exact widening
    if v.size == 0:
        return _int_style, 1
    lo, hi = np.abs(v).min(), np.abs(v).max()
    with np.errstate(over="ignore"):  # a subnormal min: the ratio is inf, which is > 1000
        sci = bool(hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4)
    whole = bool(np.all(v == np.ceil(v)))
    style = _sci_style if sci else _int_style if whole else _fixed_style
    return style, max(len(style(x)) for x in v.tolist())


def _sci_style(x):
    return f"{x:.{PRECISION}e}"


def _fixed_style(x):
    return f"{x:.{PRECISION}f}"


def _int_style(x):
    # The point marks a float tensor; nan and inf already read as floats.
    return f"{x:.0f}" + ("" if x != x or abs(x) == float("inf") else ".")


def _entry(x, fmt, width):
    return fmt(x).rjust(width)


def _block(a, indent, summarize, fmt, width):
    """'[...]' for a (ndim >= 1) or the bare number (ndim 0); indent is its column."""
    if a.ndim == 0:
        return _entry(a.item(), fmt, width)
    if a.ndim == 1:
        return _vector(a, indent, summarize, fmt, width)
    parts = ["..." if i is None else _block(a[i], indent + 1, summarize, fmt, width) for i in _rows(len(a), summarize)]
    # Sub-blocks of an nd tensor are separated by nd-1 newlines (blank lines for 3-d).
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def _vector(a, indent, summarize, fmt, width):
    """One row, wrapped at LINEWIDTH counting each entry as width + len(', ')."""
    vals = a.tolist()
    rows = _rows(len(a), summarize)
    items = [" ..." if i is None else _entry(vals[i], fmt, width) for i in rows]
    per_line = max(1, (LINEWIDTH - indent) // (width + 2))
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _add_suffixes(text, suffixes, indent):
    """Append ', size=...', ', dtype=...' and ')', wrapping a suffix that would pass 80."""
    # torch's count of the last line is 2 more than its length (rfind + 1 arithmetic);
    # kept as is, since it decides where the wrap falls.
    last = len(text) - text.rfind("\n") + 1
    out = [text]
    for suffix in suffixes:
        if last + len(suffix) + 2 > LINEWIDTH:
            out.append(",\n" + " " * indent + suffix)
            last = indent + len(suffix)
        else:
            out.append(", " + suffix)
            last += len(suffix) + 2
    return "".join(out) + ")"
