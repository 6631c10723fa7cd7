"""Shared pytest set-up for tests/ and parity/.

The CUDA kernels run in Numba's CUDA simulator unless the caller says otherwise
(NUMBA_ENABLE_CUDASIM=0 on a machine with a GPU). The variable must be set before
numba is first imported, which is why it lives here and not in a test.
"""

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

# deadline=None: the first call of every jitted kernel compiles (0.3-0.5 s).
settings.register_profile(
    "numnet",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
# CI: the same examples every run (derandomize), so that a red CI is reproducible;
# local runs keep drawing new ones.
settings.register_profile("ci", parent=settings.get_profile("numnet"), derandomize=True)
settings.register_profile("thorough", parent=settings.get_profile("numnet"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "numnet"))
