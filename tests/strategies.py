"""Hypothesis strategies and fixtures shared by tests/ and parity/: shapes with empty
dimensions, float32/float64 values with the corners (+-inf, NaN, +-1e30, subnormals),
and the same data in other memory layouts."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

DTYPES = (np.float32, np.float64)

# The notebook's seed-7 tensors, as torch 2.13.0 made them (torch.manual_seed(7), then
# randn((1, 5)), randn_like, randn((1, 1)); and the two-layer cell). Exact float32 values.
_hex = float.fromhex
NOTEBOOK_FEATURES = [
    _hex(h) for h in ("-0x1.2ca2e8p-3", "0x1.92811cp-1", "0x1.e4c5cep-1", "-0x1.1d45a6p+0", "0x1.b0d7a0p+0")
]
NOTEBOOK_WEIGHTS = [
    _hex(h) for h in ("-0x1.ca26e2p-1", "-0x1.6c28f8p-2", "0x1.3b7da2p+0", "0x1.1afa44p-3", "-0x1.aea490p+0")
]
NOTEBOOK_BIAS = [_hex("0x1.454d76p-2")]
NOTEBOOK_B1 = [_hex("0x1.0ffd1ap-3"), _hex("0x1.193d60p-3")]
NOTEBOOK_B2 = [_hex("0x1.eca372p-3")]


def notebook_neuron():
    """features (1, 5), weights (1, 5), bias (1, 1): the first cell's float32 tensors."""
    f = np.array([NOTEBOOK_FEATURES], np.float32)
    return f, np.array([NOTEBOOK_WEIGHTS], np.float32), np.array([NOTEBOOK_BIAS], np.float32)


def notebook_network():
    """features (1, 3), W1 (3, 2), W2 (2, 1), B1 (1, 2), B2 (1, 1): the two-layer cell.

    The same seed-7 stream: features are its first 3 normals, W1 the next 6, and so on.
    """
    stream = NOTEBOOK_FEATURES + NOTEBOOK_WEIGHTS + NOTEBOOK_BIAS
    x = np.array([stream[0:3]], np.float32)
    W1 = np.array(stream[3:9], np.float32).reshape(3, 2)
    W2 = np.array(stream[9:11], np.float32).reshape(2, 1)
    return x, W1, W2, np.array([NOTEBOOK_B1], np.float32), np.array([NOTEBOOK_B2], np.float32)


dims = st.integers(0, 9)
dtypes = st.sampled_from(DTYPES)


def values(dtype, corners=True):
    """Floats of ``dtype``: ordinary ones mostly, and with ``corners`` the edge cases."""
    width = 32 if dtype == np.float32 else 64
    ordinary = st.floats(-10, 10, width=width)
    if not corners:
        return ordinary
    edges = st.sampled_from(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            1e30,
            -1e30,
            1000.0,
            -1000.0,
            float(np.finfo(dtype).smallest_subnormal),
            -float(np.finfo(dtype).tiny) / 3,
        ]
    )
    anything = st.floats(width=width, allow_nan=True, allow_infinity=True, allow_subnormal=True)
    return st.one_of(ordinary, ordinary, ordinary, edges, anything)


def arrays(dtype, shape, corners=True):
    return hnp.arrays(dtype, shape, elements=values(dtype, corners))


def layouts(a):
    """The same values as ``a`` in other memory layouts: Fortran order, a transposed
    view, a view with a step, and a read-only copy. Each equals ``a`` element for element."""
    fortran = np.asfortranarray(a)
    transposed = np.ascontiguousarray(a.T).T
    padded = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype) if a.ndim else None
    stepped = a
    if padded is not None:
        padded[..., ::2] = a
        stepped = padded[..., ::2]
    readonly = a.copy()
    readonly.flags.writeable = False
    return {"fortran": fortran, "transposed": transposed, "stepped": stepped, "readonly": readonly}
