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

Overlapping windows (s < p) add their gradients, as the frameworks do. The backward passes add
into dX with one strided slice per window offset (i, j) — p_h·p_w array additions, no loop over
pixels or channels. Average pooling reads the windows as one strided view
(``sliding_window_view``). Max pooling works on the offsets' slices instead,

    X_ij[n, c, y, x] = X[n, c, y·s + i, x·s + j]     (m, C, H_out, W_out), one per offset (i, j)

(strided views, no copy): Z = max_ij X_ij is a running elementwise maximum over the p_h·p_w
slices, and the first maximum is found by walking the offsets in row-major order,

    E_ij = (X_ij = Z),   hit_ij = E_ij ∧ ¬(E_i′j′ for an earlier offset (i′, j′)),
    dX at offset (i, j) += where(hit_ij, dZ, 0)

(a window holding NaN has Z = NaN; E_ij then also marks X_ij's NaNs, so its gradient goes to the
first NaN, as ``np.argmax`` would pick).
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

    def _check_input(self, x: np.ndarray) -> None:
        if x.ndim != 4 or x.shape[2] < self.pool[0] or x.shape[3] < self.pool[1]:
            raise SpecError(f"pooling: expected inputs (m, C, H, W) at least {self.pool}, got {x.shape}")

    def windows(self, x: np.ndarray) -> np.ndarray:
        """The view (m, C, H_out, W_out, p_h, p_w) of every window."""
        self._check_input(x)
        return sliding_window_view(x, self.pool, axis=(2, 3))[:, :, ::self.stride, ::self.stride]

    def offsets(self, x: np.ndarray) -> list[tuple[tuple[int, int], np.ndarray]]:
        """[((i, j), X_ij)] in row-major order of the offsets: the strided views
        X_ij[n, c, y, x] = X[n, c, y·s + i, x·s + j], each (m, C, H_out, W_out)."""
        self._check_input(x)
        s = self.stride
        h_out, w_out = (x.shape[2] - self.pool[0]) // s + 1, (x.shape[3] - self.pool[1]) // s + 1
        views = []                                   # a loop, not a comprehension: explain traces it
        for i in range(self.pool[0]):
            for j in range(self.pool[1]):
                views.append(((i, j), x[:, :, i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s]))
        return views

    def _scatter(self, parts: np.ndarray, shape: tuple[int, ...],
                 like: np.ndarray | None = None) -> np.ndarray:
        """dX from ``parts`` (m, C, H_out, W_out, p_h, p_w): each window offset's share added
        at its strided slice. dX is laid out in memory as ``like`` (X) is, when given."""
        dx = np.zeros(shape, parts.dtype) if like is None else np.zeros_like(like, parts.dtype)
        h_out, w_out = parts.shape[2:4]
        s = self.stride
        for i in range(self.pool[0]):
            for j in range(self.pool[1]):
                dx[:, :, i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s] += parts[..., i, j]
        return dx


class MaxPool2D(_Pool2D):

    FORMULAS = {"Z": ("Z = max over each window", "forward:z"),
                "dA_prev": ("dX[first max of each window] += dZ", "backward:hit", "backward:dx_view")}
    def forward(self, x: np.ndarray) -> np.ndarray:
        views = self.offsets(x)
        z = np.maximum(views[0][1], views[-1][1])              # (m, C, H_out, W_out), laid out as X
        for _, view in views[1:-1]:
            np.maximum(z, view, out=z)
        return z

    def run(self, x: np.ndarray, training: bool = True, update: bool = False):
        """The stack's protocol: (Z, cache); the cache is Z itself (the backward compares X with it)."""
        z = self.forward(x)
        return z, z

    def differentiate(self, dz: np.ndarray, x: np.ndarray, z: np.ndarray | None, l2: float = 0.0,
                      input_gradient: bool = True):
        """The stack's protocol: (no parameter gradients, dX or None)."""
        return (), self.backward(dz, x, z) if input_gradient else None

    def backward(self, dz: np.ndarray, x: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        """dX from dZ; ``z`` is the forward's Z (recomputed when not given). dX's offset slices
        are views too, so each offset adds its share in place. The share is dZ·[hit] where every
        dZ is finite: it differs from where(hit, dZ, 0) only by the sign of a zero (−0 for a
        negative dZ), and +0 + (−0) = +0 in dX, so dX is the same to the bit; a non-finite dZ
        (where inf·0 would be NaN) takes ``np.where``."""
        z = self.forward(x) if z is None else z      # the window maxima
        nan = bool(np.isnan(z).any())
        product = bool(np.isfinite(dz).all())
        dx = np.zeros_like(x, dz.dtype)              # laid out in memory as X
        earlier = None
        for ((_, view), (_, dx_view)) in zip(self.offsets(x), self.offsets(dx), strict=True):
            hit = np.equal(view, z)                  # E_ij, laid out as Z
            if nan:
                hit |= np.isnan(view)
            if earlier is None:
                earlier = hit.copy(order="K")
            else:
                np.greater(hit, earlier, out=hit)    # E_ij ∧ ¬(an earlier E)
                earlier |= hit
            dx_view += dz * hit if product else np.where(hit, dz, dz.dtype.type(0))
        return dx


class AvgPool2D(_Pool2D):

    FORMULAS = {"Z": ("Z = mean over each window", "forward:return"),
                "dA_prev": ("dX[window] += dZ/(p_h·p_w)", "backward:share", "backward:return")}
    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.windows(x).mean(axis=(4, 5))

    def backward(self, dz: np.ndarray, x: np.ndarray) -> np.ndarray:
        share = dz / dz.dtype.type(self.pool[0] * self.pool[1])
        parts = np.broadcast_to(share[..., None, None], (*dz.shape, *self.pool))
        return self._scatter(parts, x.shape, x)


class GlobalAveragePooling2D(ParameterFree):

    FORMULAS = {"Z": ("Z[n, c] = mean_{y,x} X[n, c, y, x]", "forward:return"),
                "dA_prev": ("dX = dZ/(H·W) at every position", "backward:return")}
    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.mean(axis=(2, 3))                             # (m, C)

    def backward(self, dz: np.ndarray, x: np.ndarray) -> np.ndarray:
        area = x.dtype.type(x.shape[2] * x.shape[3])
        return np.broadcast_to((dz / area)[:, :, None, None], x.shape).copy()


class Flatten(ParameterFree):
    """``order`` is "channels_first" (torch's ``nn.Flatten`` on NCHW) or "channels_last" (Keras's
    ``Flatten`` on NHWC): the same numbers in a different order, so a Dense after it needs its
    weight columns permuted when a model moves between the two."""

    FORMULAS = {"Z": ("Z = X reshaped to (m, C·H·W)", "forward:return"),
                "dA_prev": ("dX = dZ reshaped back to (m, C, H, W)", "backward:return")}

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
