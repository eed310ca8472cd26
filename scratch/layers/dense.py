"""A fully connected layer, forward and backward side by side.

The seeds write it in columns, Z = W·A + b with A (n_{l−1}, m); with one sample per row it is
the transpose. For W_l (n_l, n_{l−1}) and b_l (n_l,):

    forward    Z_l = A_{l−1} · W_lᵀ + b_l                  (m, n_l)
    backward   dW_l = dZ_lᵀ · A_{l−1}  (+ λ·W_l with L2)    (n_l, n_{l−1})   seeds: dW = dZ·Aᵀ/m
               db_l = Σ_rows dZ_l = 1ᵀ · dZ_l               (n_l,)           seeds: db = Σ dZ/m
               dA_{l−1} = dZ_l · W_l                       (m, n_{l−1})     seeds: dA = Wᵀ·dZ

The seeds' 1/m lives in dZ_L (``scratch.losses``), so nothing here divides by m.
"""

from __future__ import annotations

import numpy as np

from scratch.reductions import column_sums


class Dense:
    """Holds references to W_l and b_l (the arrays the optimizer updates in place)."""

    FORMULAS = {"Z": ("Z_l = A_{l−1}·W_lᵀ + b_l", "forward:z"),
                "W": ("dW_l = dZ_lᵀ·A_{l−1} (+ λ·W_l with L2)", "weight_gradient:dw"),
                "b": ("db_l = Σ_rows dZ_l", "bias_gradient:return"),
                "dA_prev": ("dA_{l−1} = dZ_l·W_l", "input_gradient:return")}

    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        self.weight = weight
        self.bias = bias

    def forward(self, a_prev: np.ndarray) -> np.ndarray:
        z = a_prev @ self.weight.T                             # (m, n_l)
        z += self.bias                                         # in place: no second (m, n_l) array
        return z

    def run(self, a_prev: np.ndarray, training: bool = True, update: bool = False):
        """The stack's protocol (``scratch.model``): (Z_l, cache); a dense layer needs no cache."""
        return self.forward(a_prev), None

    def differentiate(self, dz: np.ndarray, a_prev: np.ndarray, cache, l2: float = 0.0,
                      input_gradient: bool = True):
        """The stack's protocol: ((dW_l, db_l), dA_{l−1} or None)."""
        dw, db, da_prev = self.backward(dz, a_prev, l2, input_gradient)
        return (dw, db), da_prev

    def backward(self, dz: np.ndarray, a_prev: np.ndarray, l2: float = 0.0, input_gradient: bool = True):
        """(dW_l, db_l, dA_{l−1} or None) from dZ_l (m, n_l) and the layer's input A_{l−1}."""
        return (self.weight_gradient(dz, a_prev, l2), self.bias_gradient(dz),
                self.input_gradient(dz) if input_gradient else None)

    def weight_gradient(self, dz: np.ndarray, a_prev: np.ndarray, l2: float = 0.0) -> np.ndarray:
        dw = dz.T @ a_prev                                     # (n_l, n_{l−1})
        if l2:
            dw += self.weight.dtype.type(l2) * self.weight
        return dw

    def bias_gradient(self, dz: np.ndarray) -> np.ndarray:
        return column_sums(dz)                                 # (n_l,)

    def input_gradient(self, dz: np.ndarray) -> np.ndarray:
        return dz @ self.weight                                # (m, n_{l−1})
