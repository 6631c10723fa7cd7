"""numnet.notebook: the opt-in display hook and ``beside``, outside a notebook."""

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from numnet.notebook import beside, show_as_numpy, show_as_torch


def test_importing_numnet_notebook_does_not_import_ipython_or_torch():
    code = "import sys, numnet.notebook; print('IPython' in sys.modules, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_show_as_torch_and_back():
    formatters = pytest.importorskip("IPython.core.formatters")
    plain = formatters.PlainTextFormatter()
    shell = SimpleNamespace(display_formatter=SimpleNamespace(formatters={"text/plain": plain}))
    a = np.array([[0.5, -1.25]], np.float32)
    show_as_torch(shell)
    assert plain(a) == "tensor([[ 0.5000, -1.2500]])"
    assert plain(np.arange(3)) == repr(np.arange(3))  # integers keep numpy's repr
    show_as_numpy(shell)
    assert plain(a) == repr(a)


def test_show_as_torch_outside_ipython_says_so():
    pytest.importorskip("IPython")
    with pytest.raises(RuntimeError, match="not running in IPython"):
        show_as_torch()


def test_beside(capsys):
    ours = np.array([[1.0], [2.0]], np.float32)
    beside(ours, ours.copy())
    assert capsys.readouterr().out.splitlines() == [
        "numnet  tensor([[1.],",
        "                [2.]])",
        "torch   tensor([[1.],",
        "                [2.]])",
        "same bits",
    ]
    one_ulp_up = np.nextafter(ours, np.float32(np.inf))
    beside(ours, one_ulp_up)
    assert capsys.readouterr().out.splitlines()[-1] == "not the same bits: at most 1 ULP apart"
    beside(ours, ours.astype(np.float64))
    assert capsys.readouterr().out.splitlines()[-1].startswith("different shapes or dtypes")
