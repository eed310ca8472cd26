"""Checks on in-memory data sets, and the one-hot encoding of labels.

A data set is a pair ``(x, y)``: ``x`` is an ``(n, n_features)`` array of real features and
``y`` an ``(n,)`` array of integer class labels in ``[0, n_classes)``. A binary problem is
``n_classes=2`` with ``y`` in ``{0, 1}``. Each check raises one :class:`DataError` naming the
data set (or argument) and what was expected versus found; nothing is cast or broadcast.
"""

import numbers

import numpy as np

from scratch.errors import DataError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(dtype, name: str = "dtype") -> np.dtype:
    """Return ``np.dtype(dtype)`` if it is float32 or float64, else raise DataError."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as exc:
        raise DataError(f"{name}: expected float32 or float64, found {dtype!r} ({exc})") from None
    if resolved not in FLOAT_DTYPES:
        raise DataError(f"{name}: expected float32 or float64, found {resolved}")
    return resolved


def positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer (not bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DataError(f"{name}: expected an integer >= {minimum}, found {value!r}")
    if value < minimum:
        raise DataError(f"{name}: expected an integer >= {minimum}, found {value}")
    return int(value)


def check_xy(x, y, *, n_features: int, n_classes: int, name: str = "data") -> None:
    """Raise one DataError unless ``(x, y)`` is a well-formed classification data set.

    Expected: ``x`` a 2-D real ndarray of shape ``(n, n_features)`` with ``n >= 1`` and only
    finite values; ``y`` a 1-D ndarray of an integer dtype (float labels are rejected even
    when integral) of length ``n`` with every value in ``[0, n_classes)``.
    """
    n_features = positive_int(n_features, "n_features")
    n_classes = positive_int(n_classes, "n_classes", minimum=2)
    if not isinstance(x, np.ndarray):
        raise DataError(f"{name}: x must be a numpy array, found {type(x).__name__}")
    if not isinstance(y, np.ndarray):
        raise DataError(f"{name}: y must be a numpy array, found {type(y).__name__}")
    if x.ndim != 2:
        raise DataError(f"{name}: x must be 2-D (n, {n_features}), found shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise DataError(f"{name}: x must have a real numeric dtype, found {x.dtype}")
    if x.shape[1] != n_features:
        raise DataError(f"{name}: x must have {n_features} features, found {x.shape[1]}")
    if x.shape[0] == 0:
        raise DataError(f"{name}: empty set, x has 0 rows")
    if y.ndim != 1:
        raise DataError(f"{name}: y must be 1-D (n,), found shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise DataError(f"{name}: y must have an integer dtype, found {y.dtype}")
    if y.shape[0] != x.shape[0]:
        raise DataError(f"{name}: x has {x.shape[0]} rows but y has {y.shape[0]} labels")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataError(
                f"{name}: x has {int(bad.sum())} non-finite values, "
                f"first at row {row}, column {col} ({x[row, col]})"
            )
    check_labels(y, n_classes, name=name)


def check_labels(y: np.ndarray, n_classes: int, *, name: str = "labels") -> None:
    """Raise one DataError unless every label of integer array ``y`` is in ``[0, n_classes)``."""
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{name}: labels must be in [0, {n_classes}), found {int(bad.sum())} outside, "
            f"first at index {index} (value {y[index]})"
        )


def one_hot(y, n_classes: int, dtype=np.float64) -> np.ndarray:
    """Return the ``(n, n_classes)`` one-hot encoding of labels ``y``: ``Y[i, y[i]] = 1``.

    ``y`` must be a 1-D integer ndarray with values in ``[0, n_classes)``; ``dtype`` must be
    float32 or float64.
    """
    n_classes = positive_int(n_classes, "n_classes", minimum=2)
    dtype = float_dtype(dtype)
    if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype.kind not in "iu":
        found = f"{y.dtype} shape {y.shape}" if isinstance(y, np.ndarray) else type(y).__name__
        raise DataError(f"y: expected a 1-D integer numpy array, found {found}")
    check_labels(y, n_classes, name="y")
    encoded = np.zeros((y.shape[0], n_classes), dtype=dtype)  # (n, n_classes)
    encoded[np.arange(y.shape[0]), y] = 1
    return encoded
