"""MNIST handwritten digits: loading, checking and scaling.

Every loader returns images flattened to ``(n, 784)`` and scaled to ``[0, 1]`` by ``x / 255``
in the requested float dtype (float32 or float64), and labels as ``(n,)`` int64 in ``0..9``.

Where :func:`load_mnist` looks, first match wins:

1. the ``data_dir`` argument;
2. the folder named by the environment variable ``BACKPROP_PARITY_DATA``;
3. the copy bundled with this package, ``scratch/datasets/mnist/`` (see its README.md).

In that folder it takes the four IDX files (each raw or ``.gz``; the raw name wins when both
exist), else a Keras ``mnist.npz``.
"""

import os
import re
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from scratch.datasets.idx import read_idx
from scratch.datasets.validate import check_labels, float_dtype
from scratch.errors import DataError

ENV_VAR = "BACKPROP_PARITY_DATA"
BUNDLED_DIR = Path(__file__).parent / "mnist"
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
NPZ_FILE = "mnist.npz"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
SIDE = 28
N_PIXELS = SIDE * SIDE
N_CLASSES = 10
KAGGLE_PIXELS = [f"pixel{i}" for i in range(N_PIXELS)]
_INT_FIELD = re.compile(r"[+-]?\d+")


class MnistSplits(NamedTuple):
    """The MNIST train and test splits: x (n, 784) floats in [0, 1], y (n,) int64 in 0..9."""

    x_train: np.ndarray  # (60000, 784)
    y_train: np.ndarray  # (60000,)
    x_test: np.ndarray  # (10000, 784)
    y_test: np.ndarray  # (10000,)


def resolve_data_dir(data_dir=None) -> Path:
    """Return the folder to load MNIST from: ``data_dir``, else ``$BACKPROP_PARITY_DATA``,
    else the bundled copy. A folder that was named but does not exist raises DataError."""
    if data_dir is not None:
        origin, folder = "data_dir", Path(data_dir)
    elif os.environ.get(ENV_VAR):
        origin, folder = f"${ENV_VAR}", Path(os.environ[ENV_VAR])
    else:
        origin, folder = "bundled copy", BUNDLED_DIR
    if not folder.is_dir():
        raise DataError(f"{folder}: MNIST folder ({origin}) does not exist or is not a directory")
    return folder


def load_mnist(data_dir=None, *, dtype=np.float64) -> MnistSplits:
    """Load MNIST from the folder chosen by :func:`resolve_data_dir`, checked and scaled."""
    dtype = float_dtype(dtype)
    folder = resolve_data_dir(data_dir)
    found = {key: _find_idx(folder, name) for key, name in IDX_FILES.items()}
    if all(found.values()):
        arrays = {}
        for key, path in found.items():
            arrays[key] = (read_idx(path, ndim=3 if key.startswith("x") else 1), path)
        return _to_splits(arrays, dtype)
    if (folder / NPZ_FILE).is_file():
        return load_keras_npz(folder / NPZ_FILE, dtype)
    wanted = ", ".join(f"{name}[.gz]" for name in IDX_FILES.values())
    present = [str(path.name) for path in found.values() if path]
    raise DataError(
        f"{folder}: no MNIST data found, looked for the four IDX files ({wanted}) "
        f"or {NPZ_FILE}; IDX files present: {present or 'none'}"
    )


def load_keras_npz(path, dtype=np.float64) -> MnistSplits:
    """Load a Keras ``mnist.npz`` (keys x_train, y_train, x_test, y_test; images uint8
    ``(n, 28, 28)``, labels integer ``(n,)``), checked and scaled."""
    dtype = float_dtype(dtype)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read as .npz ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: expected an .npz archive, found a single .npy array")
    with archive:
        missing = [key for key in NPZ_KEYS if key not in archive.files]
        if missing:
            raise DataError(
                f"{path}: missing key(s) {missing}, expected {list(NPZ_KEYS)}, found {archive.files}"
            )
        try:
            arrays = {key: (archive[key], f"{path}[{key}]") for key in NPZ_KEYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: cannot read an array from the .npz ({exc})") from None
    return _to_splits(arrays, dtype)


def load_kaggle_csv(path, *, dtype=np.float64, has_labels: bool = True):
    """Load a Kaggle digit-recognizer CSV; return ``(x (n, 784), y (n,) int64 or None)``.

    Layout: a header line ``label,pixel0,...,pixel783`` (``pixel0,...,pixel783`` when
    ``has_labels`` is false, as in test.csv), then one row per image of integers, pixels in
    0..255 and labels in 0..9. Line numbers in errors count the header as line 1.
    """
    dtype = float_dtype(dtype)
    expected_header = (["label"] if has_labels else []) + KAGGLE_PIXELS
    n_cols = len(expected_header)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None
    if not lines:
        raise DataError(f"{path}: empty file, expected a header line")
    header = lines[0].split(",")
    if header != expected_header:
        raise DataError(f"{path}: line 1: bad header, {_header_difference(header, expected_header)}")
    rows = lines[1:]
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    for number, line in enumerate(rows, start=2):
        found = line.count(",") + 1
        if found != n_cols:
            raise DataError(f"{path}: line {number}: expected {n_cols} columns, found {found}")
    try:
        # (n, n_cols); comments=None so a "#" is a bad value, not the start of a comment
        table = np.loadtxt(rows, dtype=np.int64, delimiter=",", comments=None, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path}: {_first_bad_field(rows, expected_header) or exc}") from None
    pixels = table[:, -N_PIXELS:]
    bad = (pixels < 0) | (pixels > 255)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: line {row + 2}: column {KAGGLE_PIXELS[col]}: expected a pixel in 0..255, "
            f"found {pixels[row, col]}"
        )
    labels = None
    if has_labels:
        labels = table[:, 0].copy()
        bad_rows = np.flatnonzero((labels < 0) | (labels >= N_CLASSES))
        if bad_rows.size:
            row = int(bad_rows[0])
            raise DataError(f"{path}: line {row + 2}: column label: expected 0..9, found {labels[row]}")
    return _scale(pixels, dtype), labels


def _find_idx(folder: Path, name: str) -> Path | None:
    """Return ``folder/name`` or ``folder/name.gz``, whichever exists first, else None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _to_splits(arrays: dict, dtype: np.dtype) -> MnistSplits:
    """Check ``{key: (array, source)}`` for the four NPZ_KEYS and return scaled splits."""
    out = {}
    for split in ("train", "test"):
        images, image_src = arrays[f"x_{split}"]
        labels, label_src = arrays[f"y_{split}"]
        if images.dtype != np.uint8:
            raise DataError(f"{image_src}: expected uint8 images, found {images.dtype}")
        if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
            raise DataError(
                f"{image_src}: expected images of shape (n, {SIDE}, {SIDE}), found {images.shape}"
            )
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DataError(f"{label_src}: expected 1-D integer labels, found {labels.dtype} {labels.shape}")
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{image_src}: {images.shape[0]} images but {label_src} has {labels.shape[0]} labels"
            )
        check_labels(labels, N_CLASSES, name=str(label_src))
        out[f"x_{split}"] = _scale(images.reshape(images.shape[0], N_PIXELS), dtype)
        out[f"y_{split}"] = labels.astype(np.int64)
    return MnistSplits(**out)


def _scale(pixels: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Return integer pixels in 0..255 as ``dtype`` values in [0, 1] (``x / 255``)."""
    return pixels.astype(dtype) / dtype.type(255)


def _header_difference(header: list, expected: list) -> str:
    """Describe the first place where a CSV header differs from the expected one."""
    if len(header) != len(expected):
        return (
            f"expected {len(expected)} columns ({expected[0]},{expected[1]},...,{expected[-1]}), "
            f"found {len(header)}"
        )
    index = next(i for i, (a, b) in enumerate(zip(header, expected, strict=True)) if a != b)
    return f"column {index + 1}: expected {expected[index]!r}, found {header[index]!r}"


def _first_bad_field(rows: list, columns: list) -> str | None:
    """Locate the first field that is not a plain integer (slow path, errors only)."""
    for number, line in enumerate(rows, start=2):
        for column, field in zip(columns, line.split(","), strict=True):
            if not _INT_FIELD.fullmatch(field):
                return f"line {number}: column {column}: expected an integer, found {field!r}"
    return None
