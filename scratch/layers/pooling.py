"""Pooling and flattening, forward and backward side by side (channels-first, X (m, C, H, W)).

With a p_h × p_w window moved by stride s (``valid``: no padding, as torch's default and Keras's
``padding="valid"``), H_out = ⌊(H − p_h)/s⌋ + 1 and window (y, x) covering
R(y, x) = {(y·s + i, x·s + j) : 0 ≤ i < p_h, 0 ≤ j < p_w}:

    MaxPool2D   Z[n, c, y, x] = max_{R(y,x)} X[n, c, ·]
                dX[n, c, r] += dZ[n, c, y, x]  for r = the first maximum of R(y, x) in row-major
                order (torch's choice; the others get nothing)
    AvgPool2D   Z[n, c, y, x] = (1/(p_h·p_w)) Σ_{R(y,x)} X[n, c, ·]
                dX[n, c, r] += dZ[n, c, y, x] / (p_h·p_w)  for every r in R(y, x)
    GlobalAveragePooling2D   Z[n, c] = (1/(H·W)) Σ_{y,x} X[n, c, y, x],   dX = dZ[n, c] / (H·W)
    Flatten     Z = X as (m, C·H·W) in channels-first order (torch), or in channels-last order
                (Keras: X transposed to (m, H, W, C) first); dX = dZ reshaped back

Overlapping windows (s < p) add their gradients, as the frameworks do. The windows are one
strided view (``sliding_window_view``); the backward passes add into dX with one strided slice
per window offset (i, j) — p_h·p_w array additions, no loop over pixels or channels.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from scratch.errors import SpecError


def _check_window(pool, stride) -> tuple[tuple[int, int], int]:
    pool = (pool, pool) if isinstance(pool, int) and not isinstance(pool, bool) else tuple(pool)
    stride = pool[0] if stride is None else stride
    if len(pool) != 2 or any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in pool):
        raise SpecError(f"pooling: pool must be an integer or two integers >= 1, got {pool!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise SpecError(f"pooling: stride must be an integer >= 1, got {stride!r}")
    return pool, stride


class ParameterFree:
    """The stack's protocol for a layer without parameters or cache."""

    def run(self, x: np.ndarray, training: bool = True, update: bool = False):
        """The stack's protocol (``scratch.model``): (Z, no cache)."""
        return self.forward(x), None

    def differentiate(self, dz: np.ndarray, x: np.ndarray, cache, l2: float = 0.0,
                      input_gradient: bool = True):
        """The stack's protocol: (no parameter gradients, dX or None)."""
        return (), self.backward(dz, x) if input_gradient else None


class _Pool2D(ParameterFree):
    def __init__(self, pool=2, stride: int | None = None):
        self.pool, self.stride = _check_window(pool, stride)

    def windows(self, x: np.ndarray) -> np.ndarray:
        """The view (m, C, H_out, W_out, p_h, p_w) of every window."""
        if x.ndim != 4 or x.shape[2] < self.pool[0] or x.shape[3] < self.pool[1]:
            raise SpecError(f"pooling: expected inputs (m, C, H, W) at least {self.pool}, got {x.shape}")
        return sliding_window_view(x, self.pool, axis=(2, 3))[:, :, ::self.stride, ::self.stride]

    def _scatter(self, parts: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """dX from ``parts`` (m, C, H_out, W_out, p_h, p_w): each window offset's share added
        at its strided slice."""
        dx = np.zeros(shape, parts.dtype)
        h_out, w_out = parts.shape[2:4]
        s = self.stride
        for i in range(self.pool[0]):
            for j in range(self.pool[1]):
                dx[:, :, i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s] += parts[..., i, j]
        return dx


class MaxPool2D(_Pool2D):
    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.windows(x).max(axis=(4, 5))               # (m, C, H_out, W_out)

    def backward(self, dz: np.ndarray, x: np.ndarray) -> np.ndarray:
        windows = self.windows(x)
        flat = windows.reshape(*windows.shape[:4], -1)
        first = flat.argmax(axis=4)                            # the first maximum, row-major
        hit = np.arange(flat.shape[4]) == first[..., None]     # (m, C, H_out, W_out, p_h·p_w)
        parts = np.where(hit, dz[..., None], 0).reshape(windows.shape).astype(dz.dtype)
        return self._scatter(parts, x.shape)


class AvgPool2D(_Pool2D):
    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.windows(x).mean(axis=(4, 5))

    def backward(self, dz: np.ndarray, x: np.ndarray) -> np.ndarray:
        share = dz / dz.dtype.type(self.pool[0] * self.pool[1])
        parts = np.broadcast_to(share[..., None, None], (*dz.shape, *self.pool))
        return self._scatter(parts, x.shape)


class GlobalAveragePooling2D(ParameterFree):
    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.mean(axis=(2, 3))                             # (m, C)

    def backward(self, dz: np.ndarray, x: np.ndarray) -> np.ndarray:
        area = x.dtype.type(x.shape[2] * x.shape[3])
        return np.broadcast_to((dz / area)[:, :, None, None], x.shape).copy()


class Flatten(ParameterFree):
    """``order`` is "channels_first" (torch's ``nn.Flatten`` on NCHW) or "channels_last" (Keras's
    ``Flatten`` on NHWC): the same numbers in a different order, so a Dense after it needs its
    weight columns permuted when a model moves between the two."""

    ORDERS = ("channels_first", "channels_last")

    def __init__(self, order: str = "channels_first"):
        if order not in self.ORDERS:
            raise SpecError(f"flatten: order must be one of {', '.join(self.ORDERS)}, got {order!r}")
        self.order = order

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.order == "channels_last":
            x = x.transpose(0, 2, 3, 1)
        return x.reshape(len(x), -1)

    def backward(self, dz: np.ndarray, x: np.ndarray) -> np.ndarray:
        m, c, h, w = x.shape
        if self.order == "channels_last":
            return dz.reshape(m, h, w, c).transpose(0, 3, 1, 2)
        return dz.reshape(m, c, h, w)
