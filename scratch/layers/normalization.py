"""Batch and layer normalization, forward and backward side by side.

**BatchNorm** over every axis but the channels (X (m, C) or (m, C, H, W); n = the number of
values per channel, m or m·H·W), per channel c:

    training   μ = (1/n) Σ x,   σ² = (1/n) Σ (x − μ)²   (the batch's biased variance)
               x̂ = (x − μ)/√(σ² + ε),   y = γ·x̂ + β
               running_mean ← ρ·running_mean + (1 − ρ)·μ
               running_var  ← ρ·running_var  + (1 − ρ)·v,   v = σ²·n/(n − 1) or σ²
    inference  y = γ·(x − running_mean)/√(running_var + ε) + β
    backward   dγ = Σ dy·x̂,   dβ = Σ dy
    (training) dx = (γ/√(σ² + ε))·(dy − mean(dy) − x̂·mean(dy·x̂))     (means over the n values)

Training needs n > 1 (torch: "Expected more than 1 value per channel when training"): with one
value per channel, x̂ = 0 whatever x, y = β, dx = 0, and the running variance learns nothing —
a batch of one row after a dense layer (or on 1×1 maps) trains silently into garbage, so
:meth:`BatchNorm.forward` refuses it, and ``scratch.spec`` / ``scratch.batching`` refuse a
batch_size or a training plan that would feed one. Running statistics given from outside (a
weight file, ``Network(statistics=…)``) are checked by :func:`statistics_problem`.

ρ is the weight of the old average: Keras's ``momentum`` (default 0.99); torch's ``momentum``
weights the new batch instead (default 0.1, i.e. ρ = 0.9). ``unbiased`` picks v: torch stores
the unbiased n/(n − 1)·σ² in ``running_var`` (and normalizes with the biased σ²); Keras stores σ².
ε: torch 1e-5, Keras 1e-3. Each is a setting here, so either framework's convention is the
same code with other numbers (and ``parity_tests/frameworks/test_normalization_twins.py``
measures which one each framework follows).

**LayerNorm** over the features of each sample (X (m, n)), γ, β (n,):

    μ_i = (1/n) Σ_j x_ij,   σ²_i = (1/n) Σ_j (x_ij − μ_i)²,   x̂ = (x − μ)/√(σ² + ε),   y = γ·x̂ + β
    dγ = Σ_i dy·x̂,   dβ = Σ_i dy,   dx = (1/√(σ² + ε))·(g − mean_j(g) − x̂·mean_j(g·x̂)),  g = dy·γ
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scratch.errors import DataError, SpecError

ONE_VALUE = "Expected more than 1 value per channel when training"
"""torch's words for the one case BatchNorm cannot train on (quoted in every refusal of it)."""


def values_per_channel(shape: tuple[int, ...]) -> int:
    """The values per channel one sample gives a BatchNorm on its input ``shape``: 1 for (n,)
    features, H·W for (C, H, W) maps; a batch of m rows gives m times that (n above)."""
    return int(np.prod(shape[1:], dtype=np.int64))


def statistics_problem(mean_name: str, mean: np.ndarray, var_name: str, variance: np.ndarray) -> str | None:
    """What is wrong with one layer's running (mean, variance), naming the tensor, element and
    value, or None. Required:

    * every value finite;
    * variance ≥ 0: it is ρ·v + (1 − ρ)·σ², a convex combination of means of squares, never
      negative (a negative v makes √(v + ε) NaN where v < −ε, and a huge x̂ just above it);
    * |mean| ≤ √(largest finite value of the dtype) (1.3e154 in float64, 1.8e19 in float32): the
      running mean is subtracted from the layer's input, so beyond that the centered values of
      any input of ordinary size are themselves beyond √max, and their next square — a later
      LayerNorm's variance, the MSE loss — overflows to inf (inf − inf is NaN). No network this
      project trains comes near it (its inputs are scaled to [0, 1] or N(0, 1)); a variance that
      large only shrinks x̂, so it is allowed.
    """
    for name, values in ((mean_name, mean), (var_name, variance)):
        bad = ~np.isfinite(values)
        if bad.any():
            return element_problem(name, values, bad, "non-finite", "expected only finite values")
    negative = variance < 0
    if negative.any():
        return element_problem(var_name, variance, negative, "negative",
                               "a running variance is a mean of squares, so it must be >= 0")
    limit = np.sqrt(np.finfo(mean.dtype).max)
    huge = np.abs(mean) > limit
    if huge.any():
        return element_problem(mean_name, mean, huge, "huge",
                               f"beyond √max of {mean.dtype} ({limit:.3g}): the centered inputs' "
                               "squares would overflow to inf in inference")
    return None


def element_problem(name: str, values: np.ndarray, bad: np.ndarray, what: str, why: str) -> str:
    """``tensor NAME has N WHAT value(s), first at [i, j] (VALUE); WHY`` for the elements where
    ``bad`` holds: how the weight file and the engine name a bad value."""
    index = np.unravel_index(int(np.argmax(bad)), bad.shape)
    return (f"tensor {name} has {int(np.count_nonzero(bad))} {what} value(s), first at "
            f"[{', '.join(map(str, index))}] ({values[index]}); {why}")


def _axes(x: np.ndarray) -> tuple[int, ...]:
    """Every axis but the channels (axis 1) of (m, C) or (m, C, H, W)."""
    if x.ndim not in (2, 4):
        raise SpecError(f"batchnorm: expected inputs (m, C) or (m, C, H, W), got {x.shape}")
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return v if ndim == 2 else v[:, None, None]


@dataclass
class BatchNormCache:
    """What the training backward needs: x̂ and 1/√(σ² + ε)."""

    x_hat: np.ndarray
    inv_std: np.ndarray


class BatchNorm:
    """γ, β and the running statistics are the arrays the optimizer (γ, β) and :meth:`forward`
    (the running statistics) update in place; ``decay`` is ρ above."""

    FORMULAS = {"Z": ("y = γ·(x − μ)/√(σ² + ε) + β (batch statistics)", "forward:x_hat", "forward:y"),
                "gamma": ("dγ = Σ dy·x̂", "backward:dgamma"),
                "beta": ("dβ = Σ dy", "backward:dbeta"),
                "dA_prev": ("dx = (γ/√(σ² + ε))·(dy − mean(dy) − x̂·mean(dy·x̂))", "backward:return")}

    def __init__(self, gamma: np.ndarray, beta: np.ndarray, running_mean: np.ndarray,
                 running_var: np.ndarray, *, decay: float, epsilon: float, unbiased: bool):
        if not 0.0 <= decay < 1.0 or not epsilon > 0.0:
            raise SpecError(f"batchnorm: decay must be in [0, 1) and epsilon > 0, got {decay}, {epsilon}")
        self.gamma, self.beta = gamma, beta
        self.running_mean, self.running_var = running_mean, running_var
        self.decay, self.epsilon, self.unbiased = decay, epsilon, unbiased

    def run(self, x: np.ndarray, training: bool = True, update: bool = False):
        """The stack's protocol (``scratch.model``): (Z, cache); ``update`` moves the running
        statistics (a training step does; a trace or a layer run alone does not)."""
        return self.forward(x, training, update)

    def differentiate(self, dy: np.ndarray, x: np.ndarray, cache: BatchNormCache | None, l2: float = 0.0,
                      input_gradient: bool = True):
        """The stack's protocol: ((dγ, dβ), dx) of the training forward pass."""
        if cache is None:
            raise SpecError("batchnorm: the backward pass needs a training-mode forward pass")
        dgamma, dbeta, dx = self.backward(dy, cache)
        return (dgamma, dbeta), dx if input_gradient else None

    def forward(self, x: np.ndarray, training: bool,
                update: bool = True) -> tuple[np.ndarray, BatchNormCache | None]:
        axes = _axes(x)
        if x.shape[1] != self.gamma.shape[0]:
            raise SpecError(f"batchnorm: {x.shape[1]} channels, γ has {self.gamma.shape[0]}")
        dtype = x.dtype.type
        if not training:
            inv_std = 1.0 / np.sqrt(self.running_var + dtype(self.epsilon))
            x_hat = (x - _per_channel(self.running_mean, x.ndim)) * _per_channel(inv_std, x.ndim)
            return _per_channel(self.gamma, x.ndim) * x_hat + _per_channel(self.beta, x.ndim), None
        n = x.size // x.shape[1]
        if n < 2:
            raise DataError(f"batchnorm: {ONE_VALUE} (input {x.shape}: {n} value per channel); "
                            "a batch of one row after a dense layer or on 1×1 maps cannot be normalized "
                            "by its own statistics — use batches of at least 2 rows")
        mean = x.mean(axis=axes)
        centered = x - _per_channel(mean, x.ndim)
        variance = (centered * centered).mean(axis=axes)
        inv_std = 1.0 / np.sqrt(variance + dtype(self.epsilon))
        x_hat = centered * _per_channel(inv_std, x.ndim)
        if update:
            stored = variance * dtype(n / (n - 1)) if self.unbiased and n > 1 else variance
            rho = dtype(self.decay)
            self.running_mean[...] = rho * self.running_mean + (1 - rho) * mean
            self.running_var[...] = rho * self.running_var + (1 - rho) * stored
        y = _per_channel(self.gamma, x.ndim) * x_hat + _per_channel(self.beta, x.ndim)
        return y, BatchNormCache(x_hat, inv_std)

    def backward(self, dy: np.ndarray, cache: BatchNormCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dγ (C,), dβ (C,), dx) of the training forward pass."""
        axes = _axes(dy)
        x_hat = cache.x_hat
        dgamma = (dy * x_hat).sum(axis=axes)
        dbeta = dy.sum(axis=axes)
        n = dy.size // dy.shape[1]
        mean_dy = _per_channel(dbeta / dy.dtype.type(n), dy.ndim)
        mean_dy_xhat = _per_channel(dgamma / dy.dtype.type(n), dy.ndim)
        scale = _per_channel(self.gamma * cache.inv_std, dy.ndim)
        return dgamma, dbeta, scale * (dy - mean_dy - x_hat * mean_dy_xhat)


class LayerNorm:

    FORMULAS = {"Z": ("y = γ·(x − μ_row)/√(σ²_row + ε) + β", "forward:x_hat", "forward:return"),
                "gamma": ("dγ = Σ_rows dy·x̂", "backward:dgamma"),
                "beta": ("dβ = Σ_rows dy", "backward:dbeta"),
                "dA_prev": ("dx = (1/√(σ² + ε))·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ", "backward:return")}
    def __init__(self, gamma: np.ndarray, beta: np.ndarray, *, epsilon: float):
        if not epsilon > 0.0:
            raise SpecError(f"layernorm: epsilon must be > 0, got {epsilon}")
        self.gamma, self.beta, self.epsilon = gamma, beta, epsilon

    def run(self, x: np.ndarray, training: bool = True, update: bool = False):
        """The stack's protocol (``scratch.model``): (Z, cache)."""
        return self.forward(x)

    def differentiate(self, dy: np.ndarray, x: np.ndarray, cache: BatchNormCache, l2: float = 0.0,
                      input_gradient: bool = True):
        """The stack's protocol: ((dγ, dβ), dx)."""
        dgamma, dbeta, dx = self.backward(dy, cache)
        return (dgamma, dbeta), dx if input_gradient else None

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, BatchNormCache]:
        if x.ndim != 2 or x.shape[1] != self.gamma.shape[0]:
            raise SpecError(f"layernorm: expected inputs (m, {self.gamma.shape[0]}), got {x.shape}")
        centered = x - x.mean(axis=1, keepdims=True)
        variance = (centered * centered).mean(axis=1, keepdims=True)
        inv_std = 1.0 / np.sqrt(variance + x.dtype.type(self.epsilon))
        x_hat = centered * inv_std
        return self.gamma * x_hat + self.beta, BatchNormCache(x_hat, inv_std)

    def backward(self, dy: np.ndarray, cache: BatchNormCache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dγ (n,), dβ (n,), dx (m, n))."""
        x_hat = cache.x_hat
        g = dy * self.gamma
        dx = cache.inv_std * (g - g.mean(axis=1, keepdims=True)
                              - x_hat * (g * x_hat).mean(axis=1, keepdims=True))
        return (dy * x_hat).sum(axis=0), dy.sum(axis=0), dx
