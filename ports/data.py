"""The batch ``compare`` runs: ``--data FILE`` (.npy, .npz, .csv) or the default.

* ``.npy``: inputs only, (m, …) in the spec's sample shape (channels first); labels are drawn;
* ``.npz``: ``x`` (inputs) and, optionally, ``y`` (integer labels (m,));
* ``.csv``: one sample per row, numbers only, no header; labels are drawn.

Without a file, :func:`scratch.data.drawn_batch`: MNIST training samples when the model fits
MNIST, N(0, 1) inputs otherwise, with labels drawn from the same seeded generator. Every array is
checked (shape, finite values, integer labels in range): nothing is truncated, reshaped or cast
silently beyond the float dtype of the model.
"""

from __future__ import annotations

import contextlib
import math
import zipfile
from pathlib import Path

import numpy as np

from scratch.data import drawn_batch
from scratch.errors import DataError
from scratch.spec import ModelSpec

SUFFIXES = (".npy", ".npz", ".csv")


def check_data_file(path: str) -> None:
    """A :class:`DataError` unless ``path`` is a file with one of :data:`SUFFIXES` (before anything
    runs; :func:`load_batch` checks its values against the model)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"--data {path}: no such file")
    if file.suffix not in SUFFIXES:
        raise DataError(f"--data {path}: expected a .npy, .npz or .csv file")


def load_batch(path: str | None, spec: ModelSpec, rows: int, seed: int = 0):
    """(x (m, …) in ``spec.dtype``, integer labels (m,), whether the labels were drawn)."""
    if path is None:
        return (*drawn_batch(spec.replace(dtype="float64"), rows, seed), True)
    check_data_file(path)
    file = Path(path)
    labels = None
    try:
        if file.suffix == ".npy":
            x = np.load(file, allow_pickle=False)
        elif file.suffix == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                if "x" not in archive:
                    raise DataError(f"--data {path}: expected an array named 'x' (and optionally 'y'), "
                                    f"found {sorted(archive.files)}")
                x = archive["x"]
                labels = archive["y"] if "y" in archive else None
        else:
            x = np.loadtxt(file, delimiter=",", ndmin=2)
    except (OSError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"--data {path}: cannot read ({error})") from None
    shape = spec.input_shape
    if x.ndim >= 1 and x.shape[1:] != shape:
        if x.ndim == 2 and x.shape[1] == math.prod(shape) and len(shape) > 1 and file.suffix == ".csv":
            x = x.reshape(len(x), *shape)                  # a CSV row is one flattened sample (C, H, W)
        else:
            raise DataError(f"--data {path}: inputs of shape {x.shape}, the model takes (m, "
                            f"{', '.join(map(str, shape))}) (channels first)")
    if x.dtype.kind not in "fiu" or not np.all(np.isfinite(x)):
        raise DataError(f"--data {path}: inputs must be finite numbers")
    n_out = spec.layer_shapes[-1][0]
    classes = 2 if n_out == 1 else n_out
    drawn = labels is None
    if drawn:
        labels = np.random.default_rng(seed).integers(0, classes, len(x))
    elif (labels.shape != (len(x),) or labels.dtype.kind not in "iu" or labels.min() < 0
          or labels.max() >= classes):
        raise DataError(f"--data {path}: y must be {len(x)} integer labels in [0, {classes})")
    return x.astype(np.float64), labels, drawn


def count_rows(path: str) -> int:
    """The samples of a --data file without reading its values (an .npy header, the header of an
    .npz's ``x``, a CSV's lines), for the memory check before anything is allocated; 1 when the
    file cannot tell (:func:`load_batch` then names what is wrong with it)."""
    file = Path(path)
    try:
        if file.suffix in (".npy", ".npz"):
            with contextlib.ExitStack() as stack:
                if file.suffix == ".npy":
                    handle = stack.enter_context(open(file, "rb"))
                else:
                    archive = stack.enter_context(zipfile.ZipFile(file))
                    handle = stack.enter_context(archive.open("x.npy"))
                version = np.lib.format.read_magic(handle)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape = read_header(handle)[0]
            return int(shape[0]) if shape else 1
        if file.suffix == ".csv":
            with open(file, "rb") as handle:
                return max(sum(1 for line in handle if line.strip()), 1)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass
    return 1


def targets_of(spec: ModelSpec, labels: np.ndarray) -> np.ndarray:
    """Float64 targets of integer labels: one-hot (m, n_L), or a 0/1 column for one output."""
    n_out = spec.layer_shapes[-1][0]
    return labels.astype(np.float64)[:, None] if n_out == 1 else np.eye(n_out)[labels]
