"""The parity suite runs every test on each path: ``ops`` is ``numnet`` (the CPU
kernels) or ``numnet.cuda`` (the GPU kernels, or Numba's CUDA simulator in CI).

Needs torch: without it the whole folder is skipped with a message saying so.
"""

import pytest

torch = pytest.importorskip("torch", reason="the parity suite needs torch: pip install -e '.[test]'")

import numnet  # noqa: E402

PATHS = ["cpu", "cuda"]


def load_path(name):
    """The module whose ops form the path ``name``, or a pytest skip saying why not."""
    if name == "cpu":
        return numnet
    try:
        import numnet.cuda as cuda
    except ImportError as exc:  # pragma: no cover - numnet.cuda always imports
        pytest.skip(f"numnet.cuda does not import: {exc}")
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and no simulator (set NUMBA_ENABLE_CUDASIM=1)")
    return cuda


def examples(ops):
    """Hypothesis examples per test for a path: Numba's CUDA simulator runs one OS thread
    per CUDA thread, so it gets fewer (and tests keep its shapes small)."""
    from numba import config

    return 8 if ops is not numnet and config.ENABLE_CUDASIM else 40


@pytest.fixture(params=PATHS)
def ops(request):
    return load_path(request.param)
