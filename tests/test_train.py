"""The ``numnet train`` command and the training loop behind it (numnet/commands/train.py): the
digits reach 95% test accuracy in well under a minute, the plot is written, MNIST IDX
files are read, divergence stops training with a clear message, runs are reproducible."""

import time

import numpy as np
import pytest

import numnet
from numnet.commands import train
from numnet.commands.cli import main

from .test_data import write_mnist


def test_numnet_train_reaches_95_percent_on_the_digits_in_under_a_minute(tmp_path, capsys):
    """The issue's bar, with the default settings: 64 -> 64 relu -> 10, SGD lr 0.1
    momentum 0.9, batches of 64, 20 epochs, seed 0. Measured here: 96.4% in about 1 s
    (cold caches: about 15 s, most of it compiling)."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curves.png"
    start = time.perf_counter()
    assert main(["train", "--plot", str(plot)]) == 0
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("final test accuracy:"))
    accuracy = float(line.split()[3].rstrip("%"))
    assert accuracy >= 95.0, out
    assert elapsed < 60, elapsed
    assert "64 -> 64 -> 10" in out and "epoch 20/20" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_numnet_train_reads_mnist_idx_files(tmp_path, capsys):
    directory = write_mnist(tmp_path / "mnist", n_train=40, n_test=10, side=5)
    assert main(["train", "--data", "mnist", "--path", str(directory), "--epochs", "2", "--hidden", "8,6"]) == 0
    out = capsys.readouterr().out
    assert "MNIST (IDX files), 40 training and 10 test images" in out and "25 -> 8 -> 6 -> 10" in out
    assert "final test accuracy:" in out


def test_numnet_train_without_data_says_why(tmp_path, capsys):
    assert main(["train", "--data", "mnist", "--path", str(tmp_path / "nowhere")]) == 2
    assert "numnet train: --data mnist needs --path DIR" in capsys.readouterr().err


def test_divergence_stops_training_with_a_clear_error(capsys):
    pytest.importorskip("sklearn")
    assert main(["train", "--lr", "1e30", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert (
        "numnet train: the loss is nan at step 2 (epoch 1): the weights have diverged; "
        "try a smaller learning rate than --lr 1e+30" in err
    )


@pytest.mark.parametrize(
    "args", [["--hidden", "64,x"], ["--epochs", "0"], ["--batch-size", "-1"], ["--lr", "-0.1"], ["--momentum", "nan"]]
)
def test_bad_options_are_refused(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", *args])
    assert exit_.value.code == 2 and "numnet train: error: argument" in capsys.readouterr().err


def test_numnet_train_on_cuda(tmp_path, capsys):
    """--device cuda runs the same loop on numnet.cuda (here a tiny one: the simulator is slow)."""
    from numnet import cuda

    if not cuda.is_available():
        pytest.skip("no CUDA GPU and no simulator")
    directory = write_mnist(tmp_path / "mnist", n_train=8, n_test=4, side=2)
    code = main(
        [
            "train",
            "--data",
            "mnist",
            "--path",
            str(directory),
            "--device",
            "cuda",
            "--epochs",
            "1",
            "--hidden",
            "3",
            "--batch-size",
            "8",
        ]
    )
    assert code == 0 and "device cuda" in capsys.readouterr().out


def test_fit_is_reproducible_and_learns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)  # a linearly separable pair of classes
    data = (x[:64], y[:64], x[64:], y[64:])
    runs = []
    for seed in (1, 1, 2):
        layers = train.init_layers([5, 8, 2], seed=seed)
        runs.append(train.fit(layers, data, epochs=15, batch_size=16, lr=0.1, momentum=0.9, hidden="tanh", seed=seed))
    assert runs[0] == runs[1] and runs[0]["loss"] != runs[2]["loss"]
    assert len(runs[0]["loss"]) == 15 * 4 and runs[0]["test_accuracy"][-1] >= 0.9
    assert runs[0]["epoch_loss"][-1] < runs[0]["epoch_loss"][0] / 2


def test_init_layers_draws_from_numnets_generator():
    """W = randn(n_in, n_out) / sqrt(n_in) from manual_seed(seed), in order; b = 0."""
    layers = train.init_layers([4, 3, 2], seed=5, dtype=np.float64)
    numnet.manual_seed(5)
    W1 = numnet.randn(4, 3, dtype=np.float64) * (1 / np.sqrt(4))
    W2 = numnet.randn(3, 2, dtype=np.float64) * (1 / np.sqrt(3))
    assert layers[0][0].tobytes() == W1.tobytes() and layers[1][0].tobytes() == W2.tobytes()
    assert layers[0][0].dtype == np.float64 and not layers[0][1].any() and layers[1][1].shape == (2,)
    assert [len(b) for b in train.batches(10, 4, np.random.default_rng(0))] == [4, 4, 2]
