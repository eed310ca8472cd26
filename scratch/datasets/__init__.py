"""Data sets for the engine: MNIST (IDX, Keras npz, Kaggle CSV), toy problems, checks.

NumPy and the standard library only. Every malformed input raises one
:class:`scratch.errors.DataError` naming the file or argument and what was expected.
"""

from scratch.datasets.brackets import brackets
from scratch.datasets.idx import read_idx, write_idx
from scratch.datasets.mnist import (
    MnistSplits,
    load_kaggle_csv,
    load_keras_npz,
    load_mnist,
    read_mnist_pixels,
    resolve_data_dir,
    scale_pixels,
)
from scratch.datasets.toy import blobs, two_spirals, xor
from scratch.datasets.validate import check_xy, one_hot

__all__ = [
    "MnistSplits",
    "blobs",
    "brackets",
    "check_xy",
    "load_kaggle_csv",
    "load_keras_npz",
    "load_mnist",
    "one_hot",
    "read_idx",
    "read_mnist_pixels",
    "resolve_data_dir",
    "scale_pixels",
    "two_spirals",
    "write_idx",
    "xor",
]
