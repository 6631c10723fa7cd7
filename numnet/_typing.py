"""The types in numnet's public signatures (numnet, numnet.cuda, numnet.testing, numnet.data).

Inputs are anything numpy reads (arrays of any layout, torch CPU tensors, nested lists);
numnet.cuda also takes GPU arrays (numba device arrays, CuPy arrays, torch CUDA tensors:
anything with ``__cuda_array_interface__``) and returns a numba device array for them,
which is typed ``Any`` here so that numba-cuda is not imported to name it.
"""

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
DTypeLike = npt.DTypeLike
Array = np.ndarray
GPUArray = Any  # a numba DeviceNDArray (numnet.cuda's result for GPU inputs), or numpy in, numpy out
Layers = Sequence[tuple[Any, Any]]  # [(W1, b1), (W2, b2), ...]
Grads = list[tuple[Any, Any]]  # [(dW1, db1), ...], shaped like the layers
Activation = Literal["sigmoid", "relu", "tanh", "none"]
Loss = Literal["mse", "cross_entropy"]
