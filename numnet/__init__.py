"""numnet: a neural network's arithmetic as readable Numba kernels, checked against PyTorch.

CPU ops live here (``numnet.sigmoid``, ``numnet.mm``, ...), with what training needs
(``numnet.loss_and_grads``, ``numnet.SGD``, ``numnet.softmax``); the same ops for CUDA
GPUs live in ``numnet.cuda``. ``numnet.manual_seed`` and ``numnet.randn`` reproduce torch's
CPU random normals bit for bit, and ``numnet.format`` prints an array as torch prints
a tensor. Importing numnet never needs torch, a GPU or CUDA libraries.
"""
__version__ = "0.1.0"

from numnet._checks import DTypeError, ShapeError
from numnet._format import format_tensor as format
from numnet.backward import SGD, log_softmax, loss_and_grads, softmax
from numnet.ops import dot, forward, linear, mm, neuron, sigmoid
from numnet.random import Generator, default_generator, initial_seed, manual_seed, randn, randn_like

__all__ = [
    "sigmoid", "dot", "mm", "neuron", "linear", "forward",
    "log_softmax", "softmax", "loss_and_grads", "SGD",
    "manual_seed", "initial_seed", "randn", "randn_like", "Generator", "default_generator",
    "format", "ShapeError", "DTypeError",
]
