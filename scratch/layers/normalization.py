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

from scratch.errors import SpecError


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
