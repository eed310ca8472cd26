"""The benchmark's baseline: one training step of the grid's net written straight in NumPy — no
engine classes, no spec, no checks — so the gap between it and ``scratch`` is the engine's
per-step Python overhead (layer objects, the optimizer loop, row blocks, dtype checks).

The net is ReLU hidden layers and a softmax output with the mean cross-entropy over the batch,
trained by plain SGD (the grid's ``sgd`` point; Adam is not written here, so the Adam rows have
no plain step). In the seeds' notation, rows being samples (so Z = A·Wᵀ + b with W as (out, in)):

    forward    Z_l = A_{l−1}·W_lᵀ + b_l,   A_l = max(Z_l, 0) (l < L),   P = softmax(Z_L)
    loss       L = −(1/m) Σ_i Σ_k Y_ik · log P_ik
    backward   dZ_L = (P − Y)/m,   dW_l = dZ_lᵀ·A_{l−1},   db_l = Σ_i dZ_l,
               dZ_{l−1} = (dZ_l·W_l) ⊙ [Z_{l−1} > 0]
    update     W_l ← W_l − η·dW_l,   b_l ← b_l − η·db_l

Parameters are copied at construction and updated in place, in their own dtype (a Python float
η keeps a float32 array float32), like the engine's SGD step.
"""

from __future__ import annotations

import numpy as np


class PlainNumpyStep:
    """``step()`` runs one SGD step on ``(x, targets)`` and returns the loss before the update."""

    def __init__(self, tensors, x: np.ndarray, targets: np.ndarray, learning_rate: float):
        self.weights = [np.array(layer["W"]) for layer in tensors]   # W_l: (n_l, n_{l−1})
        self.biases = [np.array(layer["b"]) for layer in tensors]    # b_l: (n_l,)
        self.x, self.targets, self.learning_rate = x, targets, learning_rate

    def __call__(self) -> float:
        weights, biases, lr = self.weights, self.biases, self.learning_rate
        m = self.x.shape[0]
        activations = [self.x]
        for w, b in zip(weights[:-1], biases[:-1], strict=True):
            activations.append(np.maximum(activations[-1] @ w.T + b, 0))
        z = activations[-1] @ weights[-1].T + biases[-1]
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = -float(np.sum(self.targets * log_p)) / m
        dz = (np.exp(log_p) - self.targets) / m                  # (m, n_L)
        for layer in range(len(weights) - 1, -1, -1):
            a_prev = activations[layer]
            dw, db = dz.T @ a_prev, dz.sum(axis=0)
            if layer > 0:
                dz = (dz @ weights[layer]) * (a_prev > 0)
            weights[layer] -= lr * dw
            biases[layer] -= lr * db
        return loss

    def tensors(self) -> list[dict[str, np.ndarray]]:
        """{"W": W_l, "b": b_l} of every layer as they are now, for comparing with the engine."""
        return [{"W": w, "b": b} for w, b in zip(self.weights, self.biases, strict=True)]
