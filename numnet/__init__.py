"""numnet: a neural network's arithmetic as readable Numba kernels, checked against PyTorch.

CPU ops live here (``numnet.sigmoid``, ``numnet.mm``, ...); the same ops for CUDA GPUs
live in ``numnet.cuda``. Importing numnet never needs torch, a GPU or CUDA libraries.
"""
__version__ = "0.1.0"

from numnet._checks import DTypeError, ShapeError
from numnet.ops import dot, forward, linear, mm, neuron, sigmoid

__all__ = ["sigmoid", "dot", "mm", "neuron", "linear", "forward", "ShapeError", "DTypeError"]
