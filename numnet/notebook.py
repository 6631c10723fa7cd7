"""Helpers for numnet's notebooks (``notebooks/*.ipynb``), usable in any Jupyter notebook.

- ``show_as_torch()``: from then on the notebook shows float32 and float64 numpy arrays
  as torch shows tensors (``numnet.format``), so that a cell ending in ``features``
  displays ``tensor([[-0.1468,  0.7861, ...]])`` as the PyTorch notebook does;
  ``show_as_numpy()`` goes back to numpy's ``array([...])``. Opt-in: importing numnet
  changes nothing.
- ``beside(ours, theirs)``: numnet's result above torch's, both printed as torch prints,
  and whether they hold the same bits (else how many ULP apart they are).

Neither IPython nor torch is imported here: IPython only when ``show_as_torch`` is
called, torch never (``beside`` reads a tensor through ``np.asarray``).
"""

import numpy as np

from numnet._format import format_tensor

LABEL = 8  # "numnet  " and "torch   ": the width of the labels in beside()'s lines


def show_as_torch(ipython=None):
    """Display float32/float64 numpy arrays as torch displays tensors, in this notebook
    (or the IPython shell ``ipython``). Other arrays keep numpy's repr; ``print(a)``
    is not affected, only a cell's displayed result."""
    _plain_text(ipython).for_type(np.ndarray, _as_tensor)


def show_as_numpy(ipython=None):
    """Undo show_as_torch(): arrays display as numpy's ``array([...])`` again."""
    _plain_text(ipython).pop(np.ndarray, None)


def _plain_text(ipython):
    if ipython is None:
        from IPython import get_ipython

        ipython = get_ipython()
    if ipython is None:
        raise RuntimeError("numnet.notebook: not running in IPython or a Jupyter kernel")
    return ipython.display_formatter.formatters["text/plain"]


def _as_tensor(a, printer, cycle):
    """IPython's pretty-printer hook: torch's text for float arrays, numpy's for the rest."""
    printer.text(format_tensor(a) if a.dtype.name in ("float32", "float64") else repr(a))


def beside(ours, theirs):
    """Print numnet's result ``ours`` above torch's ``theirs`` (a tensor or an array), as
    torch prints them, then whether they are the same bits or how many ULP apart.

    >>> beside(np.float32([[0.1595]]), torch.tensor([[0.1595]]))
    numnet  tensor([[0.1595]])
    torch   tensor([[0.1595]])
    same bits
    """
    if hasattr(theirs, "detach"):  # a torch tensor, on any device
        theirs = theirs.detach().cpu()
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    for label, value in (("numnet", ours), ("torch", theirs)):
        first, *rest = format_tensor(value).splitlines()
        print(label.ljust(LABEL) + first, *(" " * LABEL + line for line in rest), sep="\n")
    print(_verdict(ours, theirs))


def _verdict(ours, theirs):
    if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
        return f"different shapes or dtypes: {ours.shape} {ours.dtype} and {theirs.shape} {theirs.dtype}"
    if ours.tobytes() == theirs.tobytes():
        return "same bits"
    from numnet.testing import ulp_distance

    return f"not the same bits: at most {int(ulp_distance(ours, theirs).max())} ULP apart"
