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
    """The MNIST train and test splits: x (n, 784) floats in [0, 1] (uint8 in 0..255 from
    :func:`read_mnist_pixels`), y (n,) int64 in 0..9."""

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


def read_mnist_pixels(data_dir=None) -> MnistSplits:
    """The MNIST splits of the folder chosen by :func:`resolve_data_dir`, checked, as stored:
    x (n, 784) uint8 pixels in 0..255, y (n,) int64; both read-only.

    The last folder read is kept in memory, keyed by each file's path, size and modification
    time, so a process that draws from MNIST again (``check`` and the report's scenarios each
    draw batches) neither decompresses nor checks it twice; a changed file is read again. The
    uint8 arrays are 55 MB, an eighth of the float64 splits.
    """
    folder = resolve_data_dir(data_dir)
    found = {key: _find_idx(folder, name) for key, name in IDX_FILES.items()}
    if all(found.values()):
        sources = tuple(found.values())
    elif (folder / NPZ_FILE).is_file():
        sources = (folder / NPZ_FILE,)
    else:
        wanted = ", ".join(f"{name}[.gz]" for name in IDX_FILES.values())
        present = [str(path.name) for path in found.values() if path]
        raise DataError(
            f"{folder}: no MNIST data found, looked for the four IDX files ({wanted}) "
            f"or {NPZ_FILE}; IDX files present: {present or 'none'}"
        )
    stats = [(path, path.stat()) for path in sources]                  # one stat per file
    key = tuple((str(path.resolve()), stat.st_size, stat.st_mtime_ns) for path, stat in stats)
    if _LAST_READ.get("key") != key:
        _LAST_READ.clear()                               # the old splits go before the new are read
        if len(sources) == 1:
            arrays = _npz_arrays(sources[0])
        else:
            arrays = {name: (read_idx(path, ndim=3 if name.startswith("x") else 1), path)
                      for name, path in found.items()}
        splits = _checked(arrays)
        for array in splits:
            array.setflags(write=False)
        _LAST_READ.update(key=key, splits=splits)
    return _LAST_READ["splits"]


_LAST_READ: dict = {}           # read_mnist_pixels's one cached folder: {"key": ..., "splits": ...}


def load_mnist(data_dir=None, *, dtype=np.float64) -> MnistSplits:
    """Load MNIST from the folder chosen by :func:`resolve_data_dir`, checked and scaled (fresh,
    writable arrays; the pixels come from :func:`read_mnist_pixels`)."""
    dtype = float_dtype(dtype)
    return _scaled(read_mnist_pixels(data_dir), dtype)


def load_keras_npz(path, dtype=np.float64) -> MnistSplits:
    """Load a Keras ``mnist.npz`` (keys x_train, y_train, x_test, y_test; images uint8
    ``(n, 28, 28)``, labels integer ``(n,)``), checked and scaled."""
    dtype = float_dtype(dtype)
    return _scaled(_checked(_npz_arrays(path)), dtype)


def _npz_arrays(path) -> dict:
    """``{key: (array, source)}`` for the four NPZ_KEYS of a Keras ``mnist.npz``."""
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
            return {key: (archive[key], f"{path}[{key}]") for key in NPZ_KEYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: cannot read an array from the .npz ({exc})") from None


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
    return scale_pixels(pixels, dtype), labels


def _find_idx(folder: Path, name: str) -> Path | None:
    """Return ``folder/name`` or ``folder/name.gz``, whichever exists first, else None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _checked(arrays: dict) -> MnistSplits:
    """Check ``{key: (array, source)}`` for the four NPZ_KEYS; return the splits as stored,
    x (n, 784) uint8 and y (n,) int64."""
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
        out[f"x_{split}"] = images.reshape(images.shape[0], N_PIXELS)
        out[f"y_{split}"] = labels.astype(np.int64)
    return MnistSplits(**out)


def _scaled(pixels: MnistSplits, dtype: np.dtype) -> MnistSplits:
    """``pixels`` with x scaled to ``dtype`` (:func:`scale_pixels`) and y copied."""
    return MnistSplits(scale_pixels(pixels.x_train, dtype), pixels.y_train.copy(),
                       scale_pixels(pixels.x_test, dtype), pixels.y_test.copy())


def scale_pixels(pixels: np.ndarray, dtype) -> np.ndarray:
    """Return integer pixels in 0..255 as ``dtype`` values in [0, 1] (``x / 255``), a fresh array
    divided in place (one float copy, not two). Elementwise, so scaling drawn rows gives the same
    values as drawing from the scaled split."""
    dtype = float_dtype(dtype)
    scaled = pixels.astype(dtype)
    scaled /= dtype.type(255)
    return scaled


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
