"""PReLU: a leaky ReLU whose negative slope α is learned, forward and backward side by side.

For X (m, *S) (S the shape of one sample, (n,) or (C, H, W)) and α stored broadcastable against
one sample (shape (1, …), (C, 1, …) or S itself: one shared slope, one per channel, one per
element; ``scratch.layer_specs.PReLUSpec``):

    forward    Z = max(0, X) + α ⊙ min(0, X)                 (m, *S)
    backward   dX = dZ ⊙ (1 where X > 0, α elsewhere)
               dα = Σ_{rows, and every axis where α has size 1} dZ ⊙ min(0, X)     (α's shape)

At X = 0 the kink takes the negative side's slope α for dX and contributes 0 to dα, as torch's
``prelu`` backward does (``x > 0 ? dz : α·dz``). Summing dα over the axes α is shared along is
what makes one slope per channel (torch's ``nn.PReLU(C)``, Keras's ``shared_axes=[1, 2]``) get
the gradient of all its uses.
"""

from __future__ import annotations

import numpy as np


class PReLU:
    """Holds a reference to α (the array the optimizer updates in place)."""

    def __init__(self, alpha: np.ndarray):
        self.alpha = alpha

    def run(self, x: np.ndarray, training: bool = True, update: bool = False):
        """The stack's protocol (``scratch.model``): (Z, cache); the cache is X's negative part."""
        negative = np.minimum(x, 0)
        return np.maximum(x, 0) + self.alpha * negative, negative

    def differentiate(self, dz: np.ndarray, x: np.ndarray, negative: np.ndarray, l2: float = 0.0,
                      input_gradient: bool = True):
        """The stack's protocol: ((dα,), dX or None)."""
        shared = (0, *(axis + 1 for axis, size in enumerate(self.alpha.shape) if size == 1))
        dalpha = np.sum(dz * negative, axis=shared).reshape(self.alpha.shape)
        dx = np.where(x > 0, dz, self.alpha * dz) if input_gradient else None
        return (dalpha,), dx
