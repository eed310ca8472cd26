"""Losses, each the mean over the batch (the torch and Keras default reduction).

With m samples, k outputs, targets Y (m, k), logits Z = Z_L and outputs A = g_L(Z):

* MSE:  L = (1/(m·k)) Σ (A − Y)²                      dA = 2(A − Y)/(m·k)
* BCE:  L = (1/(m·k)) Σ [max(Z,0) − Z·Y + log(1 + e^{−|Z|})]   (sigmoid output, from logits)
        dZ = (A − Y)/(m·k)
* CCE:  L = (1/m) Σ_rows [logsumexp(Z) − Σ_j Y_j Z_j]          (softmax output, from logits)
        dZ = (A − Y)/m

BCE and CCE are evaluated on the logits, which keeps them finite for logits of ±1e4 (CCE's
logsumexp(Z) = log Σ_j e^{Z_j − max Z} + max Z is the softmax's own, ``scratch.activations``: a
training step hands over the one its output softmax computed), and they hand back dZ directly
(the fused pairings; CCE's rows of Y must sum to 1, as one-hot rows do); MSE hands back dA and
lets the output activation turn it into dZ. The seeds write dZ = A − Y and divide by m later in
dW; here the 1/m is folded into dZ, so every reported gradient is the exact partial derivative
of L.
"""

from __future__ import annotations

import numpy as np

from scratch.activations import Softmax
from scratch.errors import SpecError


class Loss:
    """Base class: ``value(z, a, y, log_sum) -> float`` and
    ``gradient(z, a, y, m) -> (dA | None, dZ | None)``.

    ``log_sum`` is log Σ_j e^{Z_j} per row as the output softmax computed it
    (``Activation.forward_with_log_sum``), or None; only CCE reads it, the same numbers it would
    compute from Z.

    Exactly one of the two gradients is returned: dZ for the fused pairings, dA otherwise.
    ``m`` is the batch size of the mean (default: the rows given), so a block of rows of a larger
    batch gets its share of the batch's gradient.

    ``FORMULAS`` names the math and the statements of each quantity (``scratch.layers``).
    """

    name = "loss"

    def value(self, z: np.ndarray, a: np.ndarray, y: np.ndarray, log_sum: np.ndarray | None = None) -> float:
        raise NotImplementedError

    def gradient(self, z, a, y, m=None):
        raise NotImplementedError


def batch_rows(a: np.ndarray, m: int | None) -> int:
    """The m of a mean over the batch: ``m`` when given (``a`` is a block of a larger batch),
    else the rows of ``a``."""
    return len(a) if m is None else m


class MeanSquaredError(Loss):

    FORMULAS = {"dA": ("dA_L = 2(A − Y)/(m·k)", "gradient:return")}
    name = "mse"

    def value(self, z, a, y, log_sum=None):
        diff = a - y
        return np.mean(diff * diff)

    def gradient(self, z, a, y, m=None):
        return (a - y) * a.dtype.type(2.0 / (batch_rows(a, m) * a.shape[1])), None


class BinaryCrossEntropy(Loss):

    FORMULAS = {"dZ": ("dZ_L = (A − Y)/(m·k) (sigmoid and BCE fused)", "gradient:return")}
    name = "bce"

    def value(self, z, a, y, log_sum=None):
        return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))

    def gradient(self, z, a, y, m=None):
        return None, (a - y) * a.dtype.type(1.0 / (batch_rows(a, m) * a.shape[1]))


class CategoricalCrossEntropy(Loss):

    FORMULAS = {"dZ": ("dZ_L = (A − Y)/m (softmax and cross-entropy fused)", "gradient:return")}
    name = "cce"

    def value(self, z, a, y, log_sum=None):
        if log_sum is None:                                                 # logsumexp per row
            log_sum = Softmax().forward_with_log_sum(z)[1]
        return (log_sum.sum() - np.vdot(y, z)) / len(z)                     # vdot: Σ_i Σ_j y_ij z_ij

    def gradient(self, z, a, y, m=None):
        return None, (a - y) * a.dtype.type(1.0 / batch_rows(a, m))


_REGISTRY = {cls.name: cls for cls in (MeanSquaredError, BinaryCrossEntropy, CategoricalCrossEntropy)}


def make_loss(name: str) -> Loss:
    """The loss called ``name``; unknown names raise :class:`SpecError`."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise SpecError(f"unknown loss {name!r}; expected one of {', '.join(sorted(_REGISTRY))}") from None
