"""numnet.data: IDX files written and read back (plain and gzipped), MNIST from small IDX
files the test writes, the digits loader, and the errors for missing or malformed data."""

import subprocess
import sys

import numpy as np
import pytest

from numnet import data
from numnet.data import DataError, load_mnist, read_idx, write_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["array-idx", "array-idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    a = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    write_idx(tmp_path / name, a)
    b = read_idx(tmp_path / name)
    assert b.dtype == np.dtype(dtype) and b.shape == (2, 3, 4) and (a == b).all()


def test_idx_layout_is_mnists(tmp_path):
    """Magic 0 0 0x08 ndim, big-endian uint32 sizes, then the bytes: as MNIST's files."""
    write_idx(tmp_path / "labels", np.array([5, 0, 4], np.uint8))
    assert (tmp_path / "labels").read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 5, 0, 4])
    write_idx(tmp_path / "ints", np.array([[1], [-2]], ">i4"))  # big-endian input is read by value
    assert (tmp_path / "ints").read_bytes()[:4] == bytes([0, 0, 0x0C, 2])
    assert read_idx(tmp_path / "ints").tolist() == [[1], [-2]]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not an IDX file (its first bytes are missing)"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "not an IDX file (its first bytes are 00 00 07 01)"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02", "IDX header truncated: 2 dimensions need 12 bytes, the file has 8"),
        (
            b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02",
            "IDX data of shape (3,) (uint8) needs 3 bytes after the header, the file has 2",
        ),
    ],
)
def test_malformed_idx_files_are_refused(tmp_path, content, message):
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(DataError, match=rf"^{tmp_path / 'bad'}: " + message.replace("(", r"\(").replace(")", r"\)")):
        read_idx(tmp_path / "bad")


def test_write_idx_refuses_what_idx_cannot_store(tmp_path):
    with pytest.raises(DataError, match="IDX stores uint8, int8, int16, int32, float32 or float64, not int64"):
        write_idx(tmp_path / "x", np.arange(3))


def write_mnist(directory, n_train=12, n_test=5, side=4, gz=False, dotted=False, seed=0):
    """A tiny MNIST in ``directory``: side x side uint8 images whose brightness codes the label."""
    rng = np.random.default_rng(seed)
    directory.mkdir(exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = (labels[:, None, None] * 25 + rng.integers(0, 5, (n, side, side))).astype(np.uint8)
        sep = "." if dotted else "-"
        suffix = ".gz" if gz else ""
        write_idx(directory / f"{prefix}-images{sep}idx3-ubyte{suffix}", images)
        write_idx(directory / f"{prefix}-labels{sep}idx1-ubyte{suffix}", labels)
    return directory


@pytest.mark.parametrize("gz, dotted", [(False, False), (True, False), (False, True)])
def test_load_mnist_reads_the_four_files(tmp_path, gz, dotted):
    x_train, y_train, x_test, y_test = load_mnist(str(write_mnist(tmp_path / "mnist", gz=gz, dotted=dotted)))
    assert x_train.shape == (12, 16) and x_test.shape == (5, 16)
    assert x_train.dtype == x_test.dtype == np.float32 and y_train.dtype == y_test.dtype == np.int64
    assert 0 <= x_train.min() and x_train.max() <= 1
    raw = read_idx(next((tmp_path / "mnist").glob("train-images*")))
    assert np.array_equal(x_train, raw.reshape(12, -1) / np.float32(255))


def test_load_mnist_says_what_is_missing(tmp_path):
    directory = write_mnist(tmp_path / "mnist")
    (directory / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(
        DataError,
        match=r"no MNIST file t10k-labels-idx1-ubyte \(looked for t10k-labels-idx1-ubyte, "
        r"t10k-labels-idx1-ubyte.gz, t10k-labels.idx1-ubyte, t10k-labels.idx1-ubyte.gz\)",
    ):
        load_mnist(str(directory))
    with pytest.raises(DataError, match="--data mnist needs --path DIR"):
        load_mnist(None)
    write_idx(directory / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))  # 4 labels, 5 images
    with pytest.raises(DataError, match="expected one label per image"):
        load_mnist(str(directory))


def test_load_digits_is_a_stratified_seeded_split():
    pytest.importorskip("sklearn")
    x_train, y_train, x_test, y_test = data.load_digits(test_fraction=0.2, seed=3)
    assert x_train.shape[1] == 64 and len(x_train) + len(x_test) == 1797 and len(x_test) in (359, 360)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0 and x_train.max() == 1
    assert np.bincount(y_test).min() >= 35  # every digit keeps about a fifth of its ~180 images
    again = data.load_digits(test_fraction=0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((x_train, y_train, x_test, y_test), again))
    assert not np.array_equal(data.load_digits(seed=4)[3], y_test)


def test_load_digits_without_scikit_learn_says_how_to_install_it():
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from numnet.data import load_digits, DataError\n"
        "try: load_digits()\n"
        "except DataError as e: print(e)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == (
        "the digits dataset comes with scikit-learn, which is not installed: "
        "pip install 'numnet[train]' (or pip install scikit-learn)"
    ), done.stderr
