"""Inverted dropout with the training plan's masks, forward and backward side by side.

    forward    A_l = H_l ⊙ D_l          D_l = (U ≥ p)/(1 − p), from ``scratch.batching``
    backward   dH_l = dA_l ⊙ D_l

The masks are handed in (every backend gets the same ones); ``None`` means no dropout.
"""

from __future__ import annotations

import numpy as np


class Dropout:

    FORMULAS = {"A": ("A_l = H_l ⊙ D_l, D_l = (U ≥ p)/(1 − p)", "forward:return"),
                "dH": ("dH_l = dA_l ⊙ D_l", "backward:return")}
    def forward(self, h: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        return h if mask is None else h * mask

    def backward(self, da: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        return da if mask is None else da * mask
