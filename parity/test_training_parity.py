"""Training with numnet against training with torch, step by step, from the same weights.

Both start from numnet.commands.train.init_layers' weights, which torch draws bit for bit from the
same seed (numnet's generator is torch's), take the same mini-batches of the digits in
the same order (numnet.commands.train.batches), and run SGD with momentum 0.9 at lr 0.1: numnet
with loss_and_grads and numnet.SGD, torch with autograd and torch.optim.SGD.

Two checks at every step:

- strict: numnet's loss and gradients on *torch's current weights* and batch agree with
  torch's within numnet.testing.grads_tolerance (justified there), so no step adds more
  than rounding;
- the trajectories: the two runs' losses agree within TRAJECTORY_RTOL at every step.
  After the first step the two runs' weights differ by rounding, and the differences grow
  as training goes on (the map from weights to weights is not a contraction). Measured
  over these 46 steps (two epochs at batch 64) of this 64 -> 64 -> 64 -> 10 relu network:
  at most 7.3e-7 relative in float32 and 3.0e-15 in float64, and over 69 steps 2.2e-6 and
  4.3e-15. TRAJECTORY_RTOL (2e-5 and 5e-14) leaves a margin of ten or more. A wrong
  optimiser leaves it within two or three steps: torch's SGD with dampening 0.9 or with
  Nesterov momentum is 5e-3 away from numnet's at step 2 or 3, and 0.1 by step 10.

In Numba's CUDA simulator (slow) a narrower network runs 3 steps of 16 images, float32.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import numnet
from numnet.commands import train
from numnet.testing import assert_close

from .conftest import examples
from .test_backward_parity import tolerance, torch_loss_and_grads

pytest.importorskip("sklearn", reason="the trajectory test trains on scikit-learn's digits")

TRAJECTORY_RTOL = {np.float32: 2e-5, np.float64: 5e-14}
LR, MOMENTUM, BATCH = 0.1, 0.9, 64


def torch_layers(widths, seed, dtype):
    """init_layers' weights drawn by torch itself: torch.manual_seed(seed), then
    torch.randn(n_in, n_out) / sqrt(n_in) per layer, zero biases."""
    torch.manual_seed(seed)
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    params = []
    for n_in, n_out in zip(widths, widths[1:]):
        W = torch.randn(n_in, n_out, dtype=tdtype) * (1 / math.sqrt(n_in))
        params += [W.requires_grad_(), torch.zeros(n_out, dtype=tdtype, requires_grad=True)]
    return params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_track_torch_step_by_step(ops, dtype):
    from numnet.data import load_digits

    simulated = examples(ops) <= 10  # Numba's CUDA simulator: a narrow network, a few steps
    if simulated and dtype == np.float64:
        pytest.skip("the simulator runs the float32 trajectory only (it is slow)")
    widths, steps, batch = ([64, 8, 10], 3, 16) if simulated else ([64, 64, 64, 10], 46, BATCH)
    x_all, y_all, _, _ = load_digits(seed=0)
    x_all = x_all.astype(dtype)
    layers = train.init_layers(widths, seed=0, dtype=dtype)
    params = torch_layers(widths, seed=0, dtype=dtype)
    assert all(W.tobytes() == p.detach().numpy().tobytes() for (W, _), p in zip(layers, params[::2]))
    optimiser = ops.SGD(layers, lr=LR, momentum=MOMENTUM)
    t_optimiser = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM)
    rng = np.random.default_rng(0)
    deviations = []
    while len(deviations) < steps:
        for index in train.batches(len(y_all), batch, rng)[: steps - len(deviations)]:
            x, y = x_all[index], y_all[index]
            # strict: one step's arithmetic on torch's own weights
            current = [
                (W.detach().numpy().copy(), b.detach().numpy().copy()) for W, b in zip(params[::2], params[1::2])
            ]
            if not simulated:
                args = (x, y, current, "relu", "none", "cross_entropy")
                got = numnet.loss_and_grads(*args)
                want = torch_loss_and_grads(*args)
                tol = tolerance("loss_and_grads", *args)
                assert_close(got[0], want[0], name="loss on torch's weights", **tol["loss"])
                for (dW, db), (tW, tb), (kW, kb) in zip(got[1], want[1], tol["grads"]):
                    assert_close(dW, tW, **kW)
                    assert_close(db, tb, **kb)
            # the two trajectories, each on its own weights
            loss, grads = ops.loss_and_grads(x, y, layers, "relu", "none", "cross_entropy")
            optimiser.step(grads)
            t_optimiser.zero_grad()
            h = torch.from_numpy(x)
            for i in range(0, len(params), 2):
                h = torch.addmm(params[i + 1], h, params[i])
                if i + 2 < len(params):
                    h = torch.relu(h)
            t_loss = F.cross_entropy(h, torch.from_numpy(y))
            t_loss.backward()
            t_optimiser.step()
            deviations.append(abs(float(loss) - t_loss.item()) / t_loss.item())
    worst = max(deviations)
    print(
        f"\n{dtype.__name__}, {steps} steps: max relative deviation of the loss {worst:.3g} "
        f"(tolerance {TRAJECTORY_RTOL[dtype]:.0e}); first {deviations[0]:.3g}, last {deviations[-1]:.3g}"
    )
    assert worst <= TRAJECTORY_RTOL[dtype], deviations
