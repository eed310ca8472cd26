"""A 2-D convolution (cross-correlation, as in every framework), forward and backward side by side.

Data are channels-first, X (m, C, H, W); the kernel is W (O, C, k_h, k_w) — torch's OIHW, the
layout the weight file will carry (Keras's HWIO is its transpose (2, 3, 1, 0)); the bias b (O,).
With stride s, dilation d and X_p the input padded by (top, bottom, left, right):

    forward    Z[n, o, y, x] = b[o] + Σ_{c,i,j} W[o, c, i, j] · X_p[n, c, y·s + i·d, x·s + j·d]
                                                              (m, O, H_out, W_out)
    backward   dW[o, c, i, j] = Σ_{n,y,x} dZ[n, o, y, x] · X_p[n, c, y·s + i·d, x·s + j·d]
               db[o]          = Σ_{n,y,x} dZ[n, o, y, x]
               dX_p[n, c, y·s + i·d, x·s + j·d] += Σ_o dZ[n, o, y, x] · W[o, c, i, j]
               dX = dX_p without the padding

H_out = ⌊(H + top + bottom − d·(k_h − 1) − 1) / s⌋ + 1 (the same for the width).

Vectorized as im2col, with the batch index n innermost in memory: X_p is held as
X_pᵀ (C, H_p, W_p, m) (one copy, padding included; free when X already lies in that order), and
its patches X_p[n, c, y·s + i·d, x·s + j·d] — a strided view (``sliding_window_view``) — are copied
once into the matrix P (C·k_h·k_w, H_out·W_out·m): row (c, i, j), column (y, x, n). Then

    Z₂ = W₂·P + b   (O, H_out·W_out·m),     dW₂ = dZ₂·Pᵀ,     db = dZ₂ summed over its columns,
    dP = W₂ᵀ·dZ₂    (C·k_h·k_w, H_out·W_out·m)

with W₂ = W as (O, C·k_h·k_w) and dZ₂ = dZ as (O, H_out·W_out·m); Z is Z₂ seen as
(m, O, H_out, W_out) (a transposed view, so the next layer gets its data batch-innermost too).
col2im adds dP's rows back into dX_pᵀ (C, H_p, W_p, m) with one strided slice per kernel offset
(i, j), dX_pᵀ[:, i·d + s·y, j·d + s·x, :] += dP[(:, i, j), (y, x, :)] — k_h·k_w array additions, no
loop over pixels or channels. Keeping n innermost makes every copy and addition run over long
contiguous stretches (W_out·m numbers at stride 1) instead of rows of W_out.

Padding (:func:`padding_amounts`): ``"valid"`` is none; ``"same"`` gives H_out = ⌈H / s⌉ with
the total padding max((H_out − 1)·s + d·(k_h − 1) + 1 − H, 0) split as TensorFlow does, the
odd row/column at the bottom/right (torch's ``padding="same"`` exists only for stride 1, where
the split is the same); explicit amounts are (top, bottom, left, right).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from scratch.errors import SpecError


def output_size(padded: int, kernel: int, stride: int, dilation: int) -> int:
    """H_out = ⌊(H_p − d·(k − 1) − 1)/s⌋ + 1 for a padded length H_p (< 1: the kernel does not fit)."""
    return (padded - dilation * (kernel - 1) - 1) // stride + 1


def padding_amounts(padding, size: tuple[int, int], kernel: tuple[int, int], stride: int,
                    dilation: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) for ``padding`` = "valid", "same" or explicit amounts."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        amounts = []
        for length, k in zip(size, kernel, strict=True):
            out = -(-length // stride)
            total = max((out - 1) * stride + dilation * (k - 1) + 1 - length, 0)
            amounts += [total // 2, total - total // 2]
        return tuple(amounts)
    if (isinstance(padding, tuple) and len(padding) == 4
            and all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in padding)):
        return padding
    raise SpecError(f"padding: expected 'valid', 'same' or (top, bottom, left, right) non-negative "
                    f"integers, got {padding!r}")


class Conv2D:
    """Holds references to the kernel W (O, C, k_h, k_w) and bias b (O,), updated in place by the
    optimizer; ``stride``, ``dilation`` ≥ 1 and ``padding`` as in :func:`padding_amounts`."""

    FORMULAS = {"Z": ("Z = W₂·P + b (im2col patches P, one GEMM)", "forward_with_patches:columns",
                      "forward_with_patches:z"),
                "W": ("dW = dZ₂·Pᵀ (+ λ·W with L2)", "backward:dw", "differentiate:dw"),
                "b": ("db = Σ_{n,y,x} dZ", "backward:db"),
                "dA_prev": ("dP = W₂ᵀ·dZ₂, then col2im into dX", "input_gradient:d_columns",
                            "input_gradient:dx_p")}

    def __init__(self, weight: np.ndarray, bias: np.ndarray, stride: int = 1, dilation: int = 1,
                 padding="valid"):
        if weight.ndim != 4 or bias.shape != (weight.shape[0],):
            raise SpecError(f"conv2d: expected W (O, C, k_h, k_w) and b (O,), got {weight.shape} and "
                            f"{bias.shape}")
        for name, value in (("stride", stride), ("dilation", dilation)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"conv2d: {name} must be an integer >= 1, got {value!r}")
        self.weight, self.bias = weight, bias
        self.stride, self.dilation, self.padding = stride, dilation, padding

    def _padded(self, x: np.ndarray) -> np.ndarray:
        """X_pᵀ (C, H_p, W_p, m): X padded, batch index innermost."""
        top, bottom, left, right = padding_amounts(self.padding, x.shape[2:], self.weight.shape[2:],
                                                   self.stride, self.dilation)
        x_t = x.transpose(1, 2, 3, 0)                          # (C, H, W, m)
        if not any((top, bottom, left, right)):
            return np.ascontiguousarray(x_t)
        m, channels, h, w = x.shape
        x_p = np.zeros((channels, h + top + bottom, w + left + right, m), x.dtype)
        x_p[:, top:top + h, left:left + w] = x_t
        return x_p

    def patches(self, x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """(P (C·k_h·k_w, H_out·W_out·m), (H_out, W_out)): im2col of the padded input."""
        if x.ndim != 4 or x.shape[1] != self.weight.shape[1]:
            raise SpecError(f"conv2d: expected inputs (m, {self.weight.shape[1]}, H, W), got {x.shape}")
        x_p = self._padded(x)                                  # (C, H_p, W_p, m)
        k_h, k_w = self.weight.shape[2:]
        s, d = self.stride, self.dilation
        span_h, span_w = d * (k_h - 1) + 1, d * (k_w - 1) + 1
        if x_p.shape[1] < span_h or x_p.shape[2] < span_w:
            raise SpecError(f"conv2d: the padded input {x_p.shape[1:3]} is smaller than the dilated "
                            f"kernel ({span_h}, {span_w})")
        windows = sliding_window_view(x_p, (span_h, span_w), axis=(1, 2))[:, ::s, ::s, :, ::d, ::d]
        c, h_out, w_out, m = windows.shape[:4]                 # (C, H_out, W_out, m, k_h, k_w)
        columns = windows.transpose(0, 4, 5, 1, 2, 3).reshape(c * k_h * k_w, h_out * w_out * m)
        return columns, (h_out, w_out)

    def forward(self, x: np.ndarray) -> np.ndarray:
        z, _ = self.forward_with_patches(x)
        return z

    def forward_with_patches(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Z (m, O, H_out, W_out), P): the patches are what the weight gradient needs."""
        columns, (h_out, w_out) = self.patches(x)
        out_channels = self.weight.shape[0]
        z = self.weight.reshape(out_channels, -1) @ columns   # (O, H_out·W_out·m)
        z += self.bias[:, None]
        return z.reshape(out_channels, h_out, w_out, len(x)).transpose(3, 0, 1, 2), columns

    def run(self, x: np.ndarray, training: bool = True, update: bool = False):
        """The stack's protocol (``scratch.model``): (Z, cache); the cache is the patches P."""
        return self.forward_with_patches(x)

    def differentiate(self, dz: np.ndarray, x: np.ndarray, columns: np.ndarray, l2: float = 0.0,
                      input_gradient: bool = True):
        """The stack's protocol: ((dW + λ·W, db), dX or None)."""
        dw, db, dx = self.backward(dz, x, columns, input_gradient)
        if l2:
            dw += self.weight.dtype.type(l2) * self.weight
        return (dw, db), dx

    def backward(self, dz: np.ndarray, x: np.ndarray, columns: np.ndarray | None = None,
                 input_gradient: bool = True):
        """(dW (O, C, k_h, k_w), db (O,), dX (m, C, H, W) or None) from dZ (m, O, H_out, W_out)."""
        if columns is None:
            columns, _ = self.patches(x)
        dz2 = dz.transpose(1, 2, 3, 0).reshape(dz.shape[1], -1)   # (O, H_out·W_out·m)
        dw = (dz2 @ columns.T).reshape(self.weight.shape)
        db = dz2.sum(axis=1)
        return dw, db, self.input_gradient(dz2, x, dz.shape[2:]) if input_gradient else None

    def input_gradient(self, dz2: np.ndarray, x: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
        """col2im of dP = W₂ᵀ·dZ₂ into dX_pᵀ (C, H_p, W_p, m), one strided slice per kernel
        offset, then unpadded and seen as (m, C, H, W)."""
        out_channels, channels, k_h, k_w = self.weight.shape
        h_out, w_out = out_size
        m = len(x)
        d_columns = self.weight.reshape(out_channels, -1).T @ dz2      # (C·k_h·k_w, H_out·W_out·m)
        d_columns = d_columns.reshape(channels, k_h, k_w, h_out, w_out, m)
        top, bottom, left, right = padding_amounts(self.padding, x.shape[2:], (k_h, k_w), self.stride,
                                                   self.dilation)
        dx_p = np.zeros((channels, x.shape[2] + top + bottom, x.shape[3] + left + right, m), x.dtype)
        s, d = self.stride, self.dilation
        for i in range(k_h):
            for j in range(k_w):
                rows = slice(i * d, i * d + s * (h_out - 1) + 1, s)
                cols = slice(j * d, j * d + s * (w_out - 1) + 1, s)
                dx_p[:, rows, cols] += d_columns[:, i, j]
        return dx_p[:, top:top + x.shape[2], left:left + x.shape[3]].transpose(3, 0, 1, 2)
