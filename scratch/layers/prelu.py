"""PReLU: a leaky ReLU whose negative slope α is learned, forward and backward side by side.

For X (m, *S) (S the shape of one sample, (n,) or (C, H, W)) and α stored broadcastable against
one sample (shape (1, …), (C, 1, …) or S itself: one shared slope, one per channel, one per
element; ``scratch.layer_specs.PReLUSpec``):

    forward    Z = max(0, X) + α ⊙ min(0, X)                 (m, *S)
    backward   dX = dZ ⊙ (1 where X > 0, α where X < 0, s₀ where X = 0)
               dα = Σ_{rows, and every axis where α has size 1} dZ ⊙ min(0, X)     (α's shape)

At X = 0 the kink's slope s₀ is the spec's ``slope_at_zero``: "alpha" (s₀ = α, torch's ``prelu``
backward ``x > 0 ? dz : α·dz`` and JAX's ``where(x > 0, x, α·x)``) or "zero" (s₀ = 0, Keras's
``relu(x) − α·relu(−x)``, both relu's derivative 0 at 0). dα is the same under both: its term
dZ ⊙ min(0, X) is 0 at X = 0 whatever s₀. Summing dα over the axes α is shared along is
what makes one slope per channel (torch's ``nn.PReLU(C)``, Keras's ``shared_axes=[1, 2]``) get
the gradient of all its uses.
"""

from __future__ import annotations

import numpy as np


class PReLU:
    """Holds a reference to α (the array the optimizer updates in place) and the slope at X = 0
    ("alpha" or "zero", ``PReLUSpec.slope_at_zero``)."""

    FORMULAS = {"Z": ("Z = max(0, X) + α ⊙ min(0, X)", "run:negative", "run:return"),
                "alpha": ("dα = Σ_shared dZ ⊙ min(0, X)", "differentiate:dalpha"),
                "dA_prev": ("dX = dZ where X > 0, α·dZ where X < 0", "differentiate:dx")}

    def __init__(self, alpha: np.ndarray, slope_at_zero: str = "alpha"):
        self.alpha = alpha
        self.slope_at_zero = slope_at_zero

    def run(self, x: np.ndarray, training: bool = True, update: bool = False):
        """The stack's protocol (``scratch.model``): (Z, cache); the cache is X's negative part."""
        negative = np.minimum(x, 0)
        return np.maximum(x, 0) + self.alpha * negative, negative

    def differentiate(self, dz: np.ndarray, x: np.ndarray, negative: np.ndarray, l2: float = 0.0,
                      input_gradient: bool = True):
        """The stack's protocol: ((dα,), dX or None)."""
        shared = (0, *(axis + 1 for axis, size in enumerate(self.alpha.shape) if size == 1))
        dalpha = np.sum(dz * negative, axis=shared).reshape(self.alpha.shape)
        if not input_gradient:
            return (dalpha,), None
        dx = np.where(x > 0, dz, self.alpha * dz)
        if self.slope_at_zero == "zero":
            dx = np.where(x == 0, 0, dx)
        return (dalpha,), dx
