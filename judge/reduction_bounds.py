"""How far a correct layer built on a long reduction may be from its exact value.

BatchNorm averages n = m·H·W values per channel (50 176 for 64 MNIST digits), LayerNorm n
features per sample, global average pooling the H·W positions of each map. A sum of n terms
computed in a precision with unit roundoff u (float32 2⁻²⁴, float64 2⁻⁵³) in *some* order is
off by at most (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §4.2)

    |Ŝ − S| ≤ (n − 1)·u·Σ|x_i|          (to first order in u)

Pairwise or blocked orders only lower the constant; which order a framework's kernel takes is
its own business (TensorFlow's ``reduce_mean`` over the outer axes of an NHWC tensor is one
float32 accumulator per channel, n additions in a row: ``docs/reductions.md``), so a bound that
must hold for every correct implementation is this worst case. With it, per channel (BatchNorm)
or per sample (LayerNorm), s = √(v + ε), x̂ = (x − μ)/s:

    δμ ≤ n·u·mean|x|
    δv ≤ 3·n·u·mean(x²)      the two-pass form mean((x − μ)²) (``tf.nn.moments``, which Keras's
                             TensorFlow backend calls) carries n·u·v; the one-pass form mean(x²) − μ²
                             (Keras's torch backend, ``synchronized=True``) n·u·mean(x²) for the
                             first term and 2|μ|·δμ ≤ 2·n·u·mean(x²) for the second
    δy ≤ |γ|·(δμ/s + |x̂|·δv/(2s²))            y = γ·x̂ + β

and global average pooling y = mean of n values: δy ≤ n·u·mean|x|. The **normwise** bound
(the measure of ``judge.parity.relative_error``) is max δy / max|y|; :func:`output_bound`
returns it with n. These are first-order worst cases: measured errors sit at ≤ 0.086 of them in
every backend, Keras's sequential sums included, 10²–10⁶ values (``docs/reductions.md``), and a
real error of the layer — ε 1e-3 for 1e-5, a wrong axis, a mean off by one element — is judged
in float64 too, where n·u is 2⁻²⁹ times smaller (``judge.explained``).

The backward pass of the same layer inherits the statistics' relative error at first order
(dx = (γ/s)·(dy − mean(dy) − x̂·mean(dy·x̂)) scales with 1/s and x̂) and adds its own two means
over n values: ``ReductionBound.gradient`` is the forward bound plus n·u·(1 + max|x̂|) — an
estimate of the same order, not a proof (the second mean enters multiplied by x̂ once more, and
dx can cancel below (γ/s)·max|dy|). It only has to keep a correct framework's float32 backward
from failing; a real error below it is caught where n·u is 2⁻²⁹ times smaller, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scratch import layer_specs

REDUCING = layer_specs.REDUCING                   # the kinds that declare a ``reduction``
UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float64": 2.0 ** -53}


@dataclass(frozen=True)
class ReductionBound:
    """The normwise bounds of one layer's outputs and gradients, and the reduction behind them."""

    kind: str
    values: int          # n, the values each statistic sums
    forward: float       # the bound of Z_l (and A_l) from the reductions alone
    gradient: float      # the bound added to the layer's gradients

    def describe(self) -> str:
        what = layer_specs.LAYER_SPECS[self.kind].reduction
        return f"{what} over {self.values:,} values".replace(",", "\u202f")


def output_bound(layer_spec, a_prev: np.ndarray, gamma: np.ndarray | None, output: np.ndarray,
                 dtype: str) -> ReductionBound:
    """The bound of :mod:`this module <judge.reduction_bounds>` for layer ``layer_spec`` fed
    ``a_prev`` (any float dtype; computed in float64); ``gamma`` is the normalization's scale,
    ``output`` the layer's Z (max|Z| is the normwise denominator)."""
    u = UNIT_ROUNDOFF[dtype]
    x = np.asarray(a_prev, dtype=np.float64)
    scale = float(np.max(np.abs(output))) if np.size(output) else 0.0
    kind = layer_spec.kind
    if kind == "global_avg_pool2d":                                    # x (m, C, H, W) → y (m, C)
        n = x.shape[2] * x.shape[3]
        mean_abs = np.abs(x).mean(axis=(2, 3))
        forward = n * u * float(np.max(mean_abs)) / scale if scale > 0 else 0.0
        return ReductionBound(kind, n, forward, forward)
    if kind == "batch_norm":                                           # per channel, axis 1
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
        n = x.size // x.shape[1]
        g = np.abs(np.asarray(gamma, np.float64)).reshape(shape)
    elif kind == "layer_norm":                                         # per sample, over the features
        axes, shape = (1,), (1, -1)
        n = x.shape[1]
        g = np.abs(np.asarray(gamma, np.float64)).reshape(shape)
    else:
        raise ValueError(f"layer kind {kind!r} has no long reduction (expected one of {REDUCING})")
    epsilon = layer_spec.epsilon
    mean = x.mean(axis=axes, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    s = np.sqrt(variance + epsilon)
    x_hat = (x - mean) / s
    delta_mean = n * u * np.abs(x).mean(axis=axes, keepdims=True)
    delta_var = 3 * n * u * (x * x).mean(axis=axes, keepdims=True)
    delta_y = g * (delta_mean / s + np.abs(x_hat) * delta_var / (2 * s * s))
    forward = float(np.max(delta_y)) / scale if scale > 0 else 0.0
    return ReductionBound(kind, n, forward, forward + n * u * (1.0 + float(np.max(np.abs(x_hat)))))
