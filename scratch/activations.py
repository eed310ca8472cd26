"""Activation functions, each with its forward rule and its derivative side by side.

Every activation maps Z (m, n) to A = g(Z) (m, n) elementwise, except softmax, which acts on
each row. ``backward(z, a, da)`` returns dZ = dA ⊙ g′(Z) (for softmax, the row-wise
Jacobian-vector product), reusing A where the derivative is cheaper in terms of A. At the output
layer the stack calls ``forward_with_log_sum(z)``: A and, for softmax, the log of its row
denominators, log Σ_j e^{Z_j} — the logsumexp of the cross-entropy (``scratch.losses``), which
so reads the sums the softmax has just computed instead of exponentiating Z again.
"""

from __future__ import annotations

import math

import numpy as np

from scratch.errors import SpecError
from scratch.reductions import row_max, row_sums


class Activation:
    """Base class: ``forward(z) -> a`` and ``backward(z, a, da) -> dz``; ``FORMULAS`` names the
    math and the statements of A and dZ (see ``scratch.layers``)."""

    name = "activation"

    def forward(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, z: np.ndarray, a: np.ndarray, da: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward_with_log_sum(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(A, None): only softmax has a log Σ_j e^{Z_j} to hand on."""
        return self.forward(z), None


class Identity(Activation):
    """g(z) = z;  g′(z) = 1."""

    FORMULAS = {"A": ("A = Z", "forward:return"), "dZ": ("dZ = dA", "backward:return")}

    name = "identity"

    def forward(self, z):
        return z

    def backward(self, z, a, da):
        return da


class ReLU(Activation):
    """g(z) = max(z, 0);  g′(z) = 1 if z > 0 else 0 (so g′(0) = 0, as in torch and TF)."""

    FORMULAS = {"A": ("A = max(Z, 0)", "forward:return"), "dZ": ("dZ = dA ⊙ [Z > 0]", "backward:return")}

    name = "relu"

    def forward(self, z):
        return np.maximum(z, 0)

    def backward(self, z, a, da):
        return da * (z > 0)


class LeakyReLU(Activation):
    """g(z) = z if z > 0 else s·z;  g′(z) = 1 if z > 0 else s (s = ``slope``)."""

    FORMULAS = {"A": ("A = Z if Z > 0 else s·Z", "forward:return"),
                "dZ": ("dZ = dA where Z > 0, s·dA elsewhere", "backward:return")}

    name = "leaky_relu"

    def __init__(self, slope: float):
        self.slope = slope

    def forward(self, z):
        return np.where(z > 0, z, z * z.dtype.type(self.slope))

    def backward(self, z, a, da):
        return np.where(z > 0, da, da * da.dtype.type(self.slope))


class Sigmoid(Activation):
    """g(z) = 1 / (1 + e^{−z});  g′(z) = g(z)·(1 − g(z)).

    Evaluated as 1/(1 + e^{−|z|}) for z ≥ 0 and e^{−|z|}/(1 + e^{−|z|}) for z < 0, so the
    exponent is never positive and nothing overflows for any finite z.
    """

    FORMULAS = {"A": ("A = 1/(1 + e^{−Z})", "forward:return"),
                "dZ": ("dZ = dA ⊙ A ⊙ (1 − A)", "backward:return")}

    name = "sigmoid"

    def forward(self, z):
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1 / (1 + e), e / (1 + e))

    def backward(self, z, a, da):
        return da * a * (1 - a)


class Tanh(Activation):
    """g(z) = tanh(z);  g′(z) = 1 − tanh(z)²."""

    FORMULAS = {"A": ("A = tanh(Z)", "forward:return"), "dZ": ("dZ = dA ⊙ (1 − A²)", "backward:return")}

    name = "tanh"

    def forward(self, z):
        return np.tanh(z)

    def backward(self, z, a, da):
        return da * (1 - a * a)


_erf = np.frompyfunc(math.erf, 1, 1)                   # the C library's erf, element by element


def erf(x: np.ndarray) -> np.ndarray:
    """erf of every element, in ``x``'s dtype: ``math.erf`` (the C library's, correctly rounded to
    within an ulp) on each element's float64 value. NumPy has no vectorized erf; this costs ~0.1 µs
    per element, which the engine pays for its exactness."""
    return _erf(x.astype(np.float64, copy=False)).astype(x.dtype)


class GELU(Activation):
    """Exact GELU (torch's ``nn.GELU()``, ``keras.activations.gelu``, ``jax.nn.gelu(approximate=False)``):
    g(z) = z·Φ(z) = ½·z·(1 + erf(z/√2));  g′(z) = Φ(z) + z·φ(z), with φ(z) = e^{−z²/2}/√(2π).

    It is smooth: no kink, no tie. Its tanh form (:class:`GELUTanh`) is up to 4.7e-4 away from it.
    """

    FORMULAS = {"A": ("A = ½·Z·(1 + erf(Z/√2))", "forward:return"),
                "dZ": ("dZ = dA ⊙ (Φ(Z) + Z·φ(Z))", "backward:return")}

    name = "gelu"

    def forward(self, z):
        return 0.5 * z * (1 + erf(z * z.dtype.type(1 / math.sqrt(2))))

    def backward(self, z, a, da):
        cdf = 0.5 * (1 + erf(z * z.dtype.type(1 / math.sqrt(2))))
        pdf = np.exp(-0.5 * z * z) * z.dtype.type(1 / math.sqrt(2 * math.pi))
        return da * (cdf + z * pdf)


class GELUTanh(Activation):
    """GELU's tanh form (torch's ``nn.GELU(approximate="tanh")``, ``keras.ops.gelu`` and
    ``jax.nn.gelu``'s default): with u = √(2/π)·(z + c·z³), c = 0.044715,
    g(z) = ½·z·(1 + tanh u);  g′(z) = ½·(1 + tanh u) + ½·z·(1 − tanh² u)·√(2/π)·(1 + 3c·z²)."""

    FORMULAS = {"A": ("A = ½·Z·(1 + tanh(√(2/π)·(Z + 0.044715·Z³)))", "forward:return"),
                "dZ": ("dZ = dA ⊙ (½(1 + T) + ½·Z·(1 − T²)·√(2/π)·(1 + 3·0.044715·Z²))",
                       "backward:return")}

    name = "gelu_tanh"
    C = 0.044715

    def _tanh_u(self, z):
        real = z.dtype.type
        return np.tanh(real(math.sqrt(2 / math.pi)) * (z + real(self.C) * z * z * z))

    def forward(self, z):
        return 0.5 * z * (1 + self._tanh_u(z))

    def backward(self, z, a, da):
        real = z.dtype.type
        t = self._tanh_u(z)
        slope = real(math.sqrt(2 / math.pi)) * (1 + real(3 * self.C) * z * z)
        return da * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * slope)


class Softmax(Activation):
    """Row-wise softmax: a_i = e^{z_i − max z} / Σ_j e^{z_j − max z} (shifted, so no overflow).

    Its Jacobian is ∂a_i/∂z_j = a_i(δ_ij − a_j), hence dZ = A ⊙ (dA − Σ_j dA_j A_j) per row.
    Paired with categorical cross-entropy, the loss takes the fused path dZ = (A − Y)/m instead
    (see ``scratch.losses``).
    """

    FORMULAS = {"A": ("A_i = e^{Z_i − max Z}/Σ_j e^{Z_j − max Z} per row", "forward_with_log_sum:e"),
                "dZ": ("dZ = A ⊙ (dA − Σ_j dA_j·A_j) per row", "backward:return")}

    name = "softmax"

    def forward(self, z):
        return self.forward_with_log_sum(z)[0]

    def forward_with_log_sum(self, z):
        """(A, log Σ_j e^{Z_j} per row), the second as log Σ_j e^{Z_j − max Z} + max Z from the
        denominators of A (the logsumexp of ``scratch.losses``' cross-entropy)."""
        shift = row_max(z)
        e = z - shift[:, None]                                 # shifted logits …
        np.exp(e, out=e)                                       # … exponentiated in place
        sums = row_sums(e)
        e /= sums[:, None]
        return e, np.log(sums) + shift

    def backward(self, z, a, da):
        return a * (da - (da * a).sum(axis=1, keepdims=True))


_REGISTRY = {
    "identity": Identity,
    "relu": ReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "gelu": GELU,
    "gelu_tanh": GELUTanh,
    "softmax": Softmax,
}


def make_activation(name: str, leaky_relu_slope: float = 0.01) -> Activation:
    """The activation called ``name``; unknown names raise :class:`SpecError`."""
    if name == "leaky_relu":
        return LeakyReLU(leaky_relu_slope)
    try:
        return _REGISTRY[name]()
    except KeyError:
        known = ", ".join(sorted([*_REGISTRY, "leaky_relu"]))
        raise SpecError(f"unknown activation {name!r}; expected one of {known}") from None
