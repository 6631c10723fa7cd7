"""Fixtures shared by the tests that run on both paths."""

import warnings

import pytest

import numnet


@pytest.fixture
def no_runtime_warnings():
    """numnet prints no RuntimeWarning for any input: make one an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


@pytest.fixture(params=["cpu", "cuda"])
def ops(request):
    """numnet (the CPU kernels) or numnet.cuda (a GPU, or Numba's CUDA simulator)."""
    if request.param == "cpu":
        return numnet
    from numnet import cuda

    if not cuda.is_available():
        pytest.skip("no CUDA GPU and no simulator (set NUMBA_ENABLE_CUDASIM=1)")
    return cuda
