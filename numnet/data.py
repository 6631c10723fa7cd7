"""Datasets for ``numnet train``: the handwritten digits bundled with scikit-learn, and
MNIST from IDX files you already have. No download, ever.

Both loaders return ``(x_train, y_train, x_test, y_test)``: images as float32 rows of
pixel values scaled to [0, 1] (one row per image, the pixels in reading order) and labels
as int64 class indices, the form numnet.loss_and_grads(..., loss="cross_entropy") takes.

This is data loading, not arithmetic, so it uses numpy freely.
"""

import gzip
import os

import numpy as np

# The IDX format (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number, 0 0 then a
# type code and the number of dimensions; one big-endian uint32 per dimension; the data,
# big-endian, in C order.
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}

# MNIST's four files, as distributed (also found gzipped, or with a '.' before 'idx').
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DataError(ValueError):
    """A dataset that cannot be read: a missing file, a malformed IDX file, a missing package."""


def _open(path):
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in the IDX file ``path`` (gzipped when the name ends in .gz), in
    native byte order.

    >>> read_idx("train-labels-idx1-ubyte")[:3]
    array([5, 0, 4], dtype=uint8)
    """
    with _open(path) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (its first bytes are {data[:4].hex(' ') or 'missing'})")
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path}: IDX header truncated: {ndim} dimensions need {header} bytes, the file has {len(data)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != size:
        raise DataError(
            f"{path}: IDX data of shape {shape} ({dtype.newbyteorder('=')}) needs {size} bytes "
            f"after the header, the file has {len(data) - header}"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` in the IDX format (gzipped when the name ends in .gz).
    dtypes: uint8, int8, int16, int32, float32, float64."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in IDX_CODES:
        raise DataError(f"{path}: IDX stores uint8, int8, int16, int32, float32 or float64, not {array.dtype}")
    if array.ndim > 255:
        raise DataError(f"{path}: IDX stores at most 255 dimensions, got {array.ndim}")
    code = IDX_CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    body = np.ascontiguousarray(array, IDX_TYPES[code]).tobytes()
    with gzip.open(path, "wb") if str(path).endswith(".gz") else open(path, "wb") as f:
        f.write(header + body)


def _find(directory, stem):
    """The file for ``stem`` in ``directory``: as distributed, gzipped, or with '.idx'."""
    names = [stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"]
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise DataError(f"{directory}: no MNIST file {stem} (looked for {', '.join(names)})")


def _images(array, path):
    if array.ndim < 2:
        raise DataError(f"{path}: expected images (n, rows, cols), got an array of shape {array.shape}")
    scale = np.float32(255) if array.dtype == np.uint8 else np.float32(1)
    return (array.reshape(array.shape[0], -1).astype(np.float32) / scale).astype(np.float32)


def load_mnist(directory: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST from its four IDX files in ``directory`` (train-images-idx3-ubyte,
    train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, plain or
    .gz): (x_train (60000, 784) float32 in [0, 1], y_train int64, x_test, y_test).
    MNIST comes with its own test split, which is used as it is."""
    if not directory or not os.path.isdir(directory):
        raise DataError(f"--data mnist needs --path DIR, a folder with the MNIST IDX files; got {directory!r}")
    paths = {key: _find(directory, stem) for key, stem in MNIST_FILES.items()}
    out = []
    for split in ("train", "test"):
        images, labels = read_idx(paths[f"{split}_images"]), read_idx(paths[f"{split}_labels"])
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise DataError(
                f"{paths[f'{split}_labels']}: {labels.shape} labels for {images.shape[0]} images: "
                "expected one label per image"
            )
        out += [_images(images, paths[f"{split}_images"]), labels.astype(np.int64)]
    return tuple(out)


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 1797 8x8 handwritten digits bundled with scikit-learn, split at random (with
    ``seed``) into a training set and a held-out test set of ``test_fraction`` of them,
    stratified so that each digit keeps its share in both: (x_train (n, 64) float32
    in [0, 1], y_train int64, x_test, y_test). Needs scikit-learn (no download)."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise DataError(
            "the digits dataset comes with scikit-learn, which is not installed: "
            "pip install 'numnet[train]' (or pip install scikit-learn)"
        ) from None
    digits = sklearn_digits()
    x = (digits.data / 16.0).astype(np.float32)  # pixel values 0..16
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        test[members[: int(round(test_fraction * len(members)))]] = True
    return x[~test], y[~test], x[test], y[test]
