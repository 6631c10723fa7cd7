"""numnet's e^x, log x and tanh x (numnet.elementwise: one source for the CPU and the GPU,
numnet's own algorithms for float64 e^x, log and tanh) against torch's, element by
element, within numnet.testing's stated ULP counts: EXP_ULP and LOG_ULP per
implementation (so twice that between two), TANH_ULP between two."""

import numpy as np
import pytest
import torch

from numnet.testing import EXP_ULP, LOG_ULP, TANH_ULP, compare
from tests.test_activations import _each  # exp, log or tanh (0, 1, 2) of each element


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_log_tanh_against_torch(dtype):
    rng = np.random.default_rng(7)
    finfo = np.finfo(dtype)
    big = float(np.log(finfo.max))
    x = np.concatenate([rng.uniform(-big, big, 300_000), rng.uniform(-1, 1, 100_000)]).astype(dtype)
    positive = (np.abs(rng.uniform(0.1, 10, 400_000)) * 10.0 ** rng.uniform(-30, 30, 400_000)).astype(dtype)
    for name, fn, arg, ulp in (
        (0, torch.exp, x, 2 * EXP_ULP),
        (1, torch.log, positive, 2 * LOG_ULP),
        (2, torch.tanh, x / dtype(big / 20), TANH_ULP),
    ):
        got = _each(name, arg)
        want = fn(torch.from_numpy(arg)).numpy()
        normal = np.abs(want) >= finfo.tiny  # subnormal e^x: both round differently below tiny
        report = compare(got[normal], want[normal], ulp=ulp)
        assert report.ok, (fn.__name__, report)
        print(
            f"{np.dtype(dtype).name} {fn.__name__}: max {report.max_ulp} ULP, "
            f"{np.mean(got[normal] == want[normal]):.1%} equal"
        )
