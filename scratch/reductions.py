"""Reductions along one axis of a 2-D array, written the way the CPU runs them fastest.

    column_sums(A) = 1ᵀ·A = Σ_rows A       (n,)  for A (m, n)     e.g. db_l = Σ_rows dZ_l
    row_sums(A)    = A·1  = Σ_cols A       (m,)  for A (m, n)     e.g. softmax's Σ_j e^{z_j}
    row_max(A)     = max_cols A            (m,)  for A (m, n)     e.g. the softmax shift

The same values as ``A.sum(axis=0)``, ``A.sum(axis=1)`` and ``A.max(axis=1)`` (the sums in a
different order: a rounding-level difference). NumPy reduces over a short contiguous axis one
row at a time; a product with a ones vector runs in BLAS, and a max over the rows of the
contiguous transpose runs as vector operations (the timings on a training block are in
``docs/speed.md``).
"""

from __future__ import annotations

import functools

import numpy as np


def column_sums(a: np.ndarray) -> np.ndarray:
    """Σ over the rows of ``a`` (m, n): shape (n,), ``a``'s dtype."""
    return _ones(a.shape[0], a.dtype) @ a


def row_sums(a: np.ndarray) -> np.ndarray:
    """Σ over the columns of ``a`` (m, n): shape (m,), ``a``'s dtype."""
    return a @ _ones(a.shape[1], a.dtype)


def row_max(a: np.ndarray) -> np.ndarray:
    """max over the columns of ``a`` (m, n): shape (m,); NaN if a row holds a NaN."""
    return np.ascontiguousarray(a.T).max(axis=0)


@functools.lru_cache(maxsize=32)
def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    """A read-only ones vector (n,), made once per size and dtype (a training step asks for the
    same few sizes again and again)."""
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False
    return ones
