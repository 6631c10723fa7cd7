"""The numnet command against torch: the walk-through prints what torch prints, and
`numnet parity` passes, and fails when a kernel is wrong."""

import numpy as np
import torch
from rich.console import Console

import numnet
from numnet import kernels
from numnet.commands import parity
from numnet.commands.cli import main


def notebook_in_torch():
    """The notebook's printed tensors, as str() of torch's own tensors."""
    torch.manual_seed(7)
    features = torch.randn((1, 5))
    weights = torch.randn_like(features)
    bias = torch.randn((1, 1))
    prints = [features, weights, bias, torch.sigmoid(torch.sum(features * weights) + bias)]
    reshaped = weights.view(5, 1)
    prints += [reshaped, torch.mm(features, reshaped), torch.sigmoid(torch.mm(features, reshaped) + bias)]
    torch.manual_seed(7)
    features = torch.randn((1, 3))
    W1, W2 = torch.randn(3, 2), torch.randn(2, 1)
    B1, B2 = torch.randn((1, 2)), torch.randn((1, 1))
    hidden = torch.sigmoid(torch.mm(features, W1) + B1)
    prints += [features, W1, W2, B1, B2, torch.sigmoid(torch.mm(hidden, W2) + B2)]
    return [str(t) for t in prints]


def test_walkthrough_prints_what_torch_prints(ops, capsys):
    device = "cpu" if ops is numnet else "cuda"
    assert main(["walkthrough", "--device", device]) == 0
    out = capsys.readouterr().out
    at = 0
    for printed in notebook_in_torch():
        found = out.find(printed, at)
        assert found >= 0, f"torch prints {printed!r}; not found in order in the walk-through"
        at = found + len(printed)


def run_parity(device, seed=0):
    console = Console(record=True, width=140)
    code = parity.run(device=device, seed=seed, console=console)
    return code, console.export_text()


def test_parity_passes_on_every_path():
    code, text = run_parity("all")
    assert code == 0, text
    assert "0 failed" in text
    assert "0.3171" in text and "0.1595" in text


def test_parity_fails_on_a_wrong_kernel(monkeypatch):
    real = kernels.mm_kernel

    def off_by_a_little(a, b, out, threads):
        real(a, b, out, threads)
        out[...] = out * np.float32(1.001) + np.float32(1e-3)  # a fault parity must catch

    monkeypatch.setattr(kernels, "mm_kernel", off_by_a_little)
    code, text = run_parity("cpu")
    assert code == 1
    failing = [line for line in text.splitlines() if "FAIL" in line]
    assert failing and all(" mm " in line for line in failing), text
