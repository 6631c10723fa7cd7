"""numnet: a neural network's arithmetic as readable Numba kernels, checked against PyTorch.

CPU ops live here (``numnet.sigmoid``, ``numnet.sum``, ``numnet.mm``, ...), with what training needs
(``numnet.loss_and_grads``, ``numnet.SGD``, ``numnet.softmax``); the same ops for CUDA
GPUs live in ``numnet.cuda``, imported on first use: ``numnet.cuda.mm(...)`` works after
``import numnet`` alone, as ``torch.cuda`` does after ``import torch``, and importing numnet
never loads numba.cuda. ``numnet.manual_seed`` and ``numnet.randn`` reproduce torch's CPU
random normals bit for bit, and ``numnet.format`` prints an array as torch prints a
tensor. Importing numnet never needs torch, a GPU or CUDA libraries.
"""

__version__ = "0.1.0"

from numnet._checks import DTypeError, ShapeError
from numnet._format import format_tensor as format
from numnet.backward import SGD, log_softmax, loss_and_grads, softmax
from numnet.ops import dot, forward, linear, mm, neuron, sigmoid, sum, sum_order
from numnet.random import Generator, default_generator, initial_seed, manual_seed, randn, randn_like

__all__ = [
    "sigmoid",
    "sum",
    "sum_order",
    "dot",
    "mm",
    "neuron",
    "linear",
    "forward",
    "log_softmax",
    "softmax",
    "loss_and_grads",
    "SGD",
    "manual_seed",
    "initial_seed",
    "randn",
    "randn_like",
    "Generator",
    "default_generator",
    "format",
    "ShapeError",
    "DTypeError",
]


def __getattr__(name):
    """``numnet.cuda`` on first access (PEP 562). Loading numba.cuda takes time and reads
    NUMBA_ENABLE_CUDASIM once, so ``import numnet`` leaves it until the GPU ops are used."""
    if name == "cuda":
        import importlib

        return importlib.import_module("numnet.cuda")  # also sets numnet.cuda for next time
    raise AttributeError(f"module 'numnet' has no attribute {name!r}")


def __dir__():
    # "cuda" is listed but left out of __all__: `from numnet import *` should not load numba.cuda.
    return sorted({*globals(), "cuda"})
