"""numnet's ops on CUDA GPUs: the twins of ``numnet.sigmoid``, ``numnet.sum``, ``numnet.mm``, ...

Same names, signatures, checks and errors as the CPU ops; numpy in gives numpy out, GPU
arrays in (numba, CuPy, torch CUDA) give a numba device array out, without copies.
Without a GPU, set NUMBA_ENABLE_CUDASIM=1 before importing numba or numnet to run the
kernels in Numba's CUDA simulator. Importing this package never needs a GPU.

Training on the GPU: ``loss_and_grads``, ``SGD``, ``softmax`` and ``log_softmax``, the
twins of numnet's (numnet/cuda/backward.py).
"""

from numnet.cuda.backward import SGD, log_softmax, loss_and_grads, softmax
from numnet.cuda.ops import (
    CudaUnavailableError,
    dot,
    forward,
    is_available,
    linear,
    mm,
    neuron,
    on_simulator,
    sigmoid,
    sum,
    unavailable_message,
)

__all__ = [
    "sigmoid",
    "sum",
    "dot",
    "mm",
    "neuron",
    "linear",
    "forward",
    "log_softmax",
    "softmax",
    "loss_and_grads",
    "SGD",
    "is_available",
    "on_simulator",
    "unavailable_message",
    "CudaUnavailableError",
]
