"""Small synthetic classification problems: XOR, two interleaved spirals, Gaussian blobs.

Each returns ``(x, y)``: ``x`` of shape ``(n, n_features)`` in the requested float dtype
(float32 or float64) and ``y`` of shape ``(n,)`` int64, rows grouped by class (all of class 0
first, then class 1, ...), never shuffled. Random draws come from
``np.random.default_rng(seed)`` and are made in float64, then cast, so the same arguments give
bit-identical output.
"""

import numbers

import numpy as np

from scratch.datasets.validate import float_dtype, positive_int
from scratch.errors import DataError


def xor(dtype=np.float64):
    """Return the XOR truth table: x (4, 2) = 00, 01, 10, 11 and y (4,) = 0, 1, 1, 0."""
    dtype = float_dtype(dtype)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)  # (4, 2)
    y = np.array([0, 1, 1, 0], dtype=np.int64)  # (4,)
    return x, y


def two_spirals(n_per_class, *, noise=0.0, turns=1.5, seed=0, dtype=np.float64):
    """Return two interleaved spirals, x (2n, 2) and y (2n,) with n = ``n_per_class``.

    Point k = 1..n of class 0 has radius r = k/n and angle θ = 2π · turns · r, so
    x = (r cos θ, r sin θ) + noise · N(0, 1); class 1 is class 0 turned by π, i.e. −x
    (with its own noise draw). ``noise`` >= 0, ``turns`` > 0.
    """
    n = positive_int(n_per_class, "n_per_class")
    noise = _real(noise, "noise", allow_zero=True)
    turns = _real(turns, "turns", allow_zero=False)
    seed = _seed(seed)
    dtype = float_dtype(dtype)
    rng = np.random.default_rng(seed)
    r = np.arange(1, n + 1) / n  # (n,)
    theta = 2.0 * np.pi * turns * r
    arm = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)  # (n, 2)
    x = np.concatenate([arm, -arm]) + noise * rng.standard_normal((2 * n, 2))  # (2n, 2)
    y = np.repeat(np.arange(2, dtype=np.int64), n)  # (2n,)
    return x.astype(dtype), y


def blobs(n_per_class, *, n_classes=3, n_features=2, spread=0.1, seed=0, dtype=np.float64):
    """Return isotropic Gaussian blobs, x (n_classes·n, n_features) and y (n_classes·n,).

    Class centres c_k ~ U(−1, 1)^n_features are drawn first, then each point is
    c_k + spread · N(0, I). ``n_classes`` >= 2, ``n_features`` >= 1, ``spread`` >= 0.
    """
    n = positive_int(n_per_class, "n_per_class")
    n_classes = positive_int(n_classes, "n_classes", minimum=2)
    n_features = positive_int(n_features, "n_features")
    spread = _real(spread, "spread", allow_zero=True)
    seed = _seed(seed)
    dtype = float_dtype(dtype)
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-1.0, 1.0, size=(n_classes, n_features))  # (k, f)
    y = np.repeat(np.arange(n_classes, dtype=np.int64), n)  # (k·n,)
    x = centres[y] + spread * rng.standard_normal((n_classes * n, n_features))  # (k·n, f)
    return x.astype(dtype), y


def _real(value, name: str, *, allow_zero: bool) -> float:
    """Return ``value`` as a float if it is a finite real (not bool) > 0, or >= 0 if allowed."""
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DataError(f"{name}: expected a finite real {bound}, found {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise DataError(f"{name}: expected a finite real {bound}, found {value}")
    return value


def _seed(seed) -> int:
    """Return ``seed`` if it is a non-negative integer; None is refused (not reproducible)."""
    return positive_int(seed, "seed", minimum=0)
