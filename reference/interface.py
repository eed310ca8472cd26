"""The one interface every backend implements (NumPy in, NumPy out).

Names follow the seeds' notation, 1-based by layer: ``Z1, A1, …, ZL, AL`` (forward),
``dZl, dAl, dWl, dbl`` (gradients of the loss), and ``loss`` (mean batch loss + L2 penalty).
dA_L appears only when the loss reads A_L (MSE); BCE and CCE read the logits Z_L.
Parameters cross every boundary in the canonical layout W_l (n_l, n_{l−1}), b_l (n_l,).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np

from scratch.batching import Step
from scratch.spec import ModelSpec


class Backend(Protocol):
    name: str
    spec: ModelSpec

    def trace(self, x: np.ndarray, targets: np.ndarray,
              masks: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """One forward and backward pass of the whole model: ``loss`` and every Z, A, dZ, dA,
        dW, db (no parameter update)."""

    def layer_trace(self, layer: int, a_prev: np.ndarray, upstream: np.ndarray,
                    mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Layer ``layer`` alone, fed A_{l−1} = ``a_prev``: Z, A, and the backward pass from
        ``upstream`` — dA_l for a hidden layer, the targets Y for the output layer (whose loss
        gives dZ_L). Returns Z, A, dZ, dW (incl. λW), db, dA_prev. Used to localize a mismatch:
        each layer gets the reference's own inputs, so error does not simply propagate."""

    def train_step(self, x: np.ndarray, targets: np.ndarray,
                   masks: list[np.ndarray] | None = None) -> float:
        """One optimizer step on (x, targets); returns the loss before the update."""

    def fit(self, x: np.ndarray, targets: np.ndarray, plan: Iterable[Step]) -> np.ndarray:
        """Run every step of ``plan`` (batches and dropout masks from ``scratch.batching``);
        returns the loss of every step."""

    def parameters(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Copies of [W_1..W_L], [b_1..b_L] in canonical layout."""
