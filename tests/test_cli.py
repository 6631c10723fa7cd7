"""The numnet command without torch: help, the walk-through, and parity's message when
torch is missing."""

import os
import subprocess
import sys

import pytest

from numnet.commands.cli import main

# The notebook's outputs as torch 2.13 prints them (the seed notebook shows the same
# numbers; current torch drops the leading space of 'tensor([[ 0.1595]])').
NOTEBOOK_PRINTS = [
    "tensor([[-0.1468,  0.7861,  0.9468, -1.1143,  1.6908]])",
    "tensor([[-0.8948, -0.3556,  1.2324,  0.1382, -1.6822]])",
    "tensor([[0.3177]])",
    "tensor([[0.1595]])",
    "mat1 and mat2 shapes cannot be multiplied (1x5 and 1x5)",
    "tensor([[-0.8948],\n        [-0.3556],\n        [ 1.2324],\n        [ 0.1382],\n        [-1.6822]])",
    "tensor([[-1.9796]])",
    "tensor([[0.1595]])",
    "tensor([[-0.1468,  0.7861,  0.9468]])",
    "tensor([[-1.1143,  1.6908],\n        [-0.8948, -0.3556],\n        [ 1.2324,  0.1382]])",
    "tensor([[-1.6822],\n        [ 0.3177]])",
    "tensor([[0.1328, 0.1373]])",
    "tensor([[0.2405]])",
    "tensor([[0.3171]])",
]


def assert_in_order(text, pieces):
    at = 0
    for piece in pieces:
        found = text.find(piece, at)
        assert found >= 0, f"missing after position {at}: {piece!r}"
        at = found + len(piece)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_walkthrough_prints_the_notebook(device, capsys):
    assert main(["walkthrough", "--device", device]) == 0
    out = capsys.readouterr().out
    assert_in_order(out, NOTEBOOK_PRINTS)
    # The notebook's claim and today's arithmetic: both sums, to full precision.
    assert "-1.9795823097229004" in out and "-1.97958242893219" in out
    if device == "cpu":  # both of torch's outputs, computed by numnet, one ULP apart
        assert "(0.15950655937194824, 0.15950657427310944)" in out
        assert "numnet.dot(features, weights).item()  # torch.sum's order\n-1.97958242893219\n" in out
        assert "1 ULP apart" in out


def test_bare_command_is_the_walkthrough(capsys):
    assert main([]) == 0
    assert "tensor([[0.3171]])" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--help"], ["walkthrough", "--help"], ["parity", "--help"]])
def test_help(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 0
    assert "usage: numnet" in capsys.readouterr().out


def test_parity_without_torch_says_how_to_install_it():
    code = "import sys; sys.modules['torch'] = None; from numnet.commands.cli import main; sys.exit(main(['parity']))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert (
        done.stdout.strip()
        == "numnet parity needs torch: pip install 'numnet[test]' (or pip install torch==2.13.0 rich)"
    )


def test_console_script_runs():
    done = subprocess.run([sys.executable, "-m", "numnet", "walkthrough"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "tensor([[0.3171]])" in done.stdout


def test_walkthrough_on_cuda_without_a_gpu_says_how_to_use_the_simulator():
    env = {"NUMBA_ENABLE_CUDASIM": "0", "NUMBA_DISABLE_CUDA": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "numnet", "walkthrough", "--device", "cuda"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert done.returncode == 1
    assert "NUMBA_ENABLE_CUDASIM=1" in done.stderr and "Traceback" not in done.stderr
