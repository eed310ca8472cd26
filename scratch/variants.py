"""Seed-faithful variants of the engine: two bugs the seeds shipped, kept as named variants.

They are never the default. Each is a small override of the engine, picked by name from
:data:`VARIANTS`, so the parity suite can be pointed at it and shown to catch it.

``seed001_bias_scalar`` (seed 001's bias gradient): the bias gradient summed over *every*
element of dZ_l and broadcast back,

    db_l[j] = Σ_i Σ_k dZ_l[i, k]      for every unit j          (the seed)
    db_l[j] = Σ_i dZ_l[i, j]                                     (correct: a column sum)

so every unit of a layer gets the same, wrong, bias gradient (right only when n_l = 1).

``seed003_adam_no_sqrt`` (seed 003's Adam): the update divides by the bias-corrected second
moment itself instead of its square root,

    θ ← θ − η · m̂ / (v̂ + ε)            (the seed)
    θ ← θ − η · m̂ / (√v̂ + ε)           (Adam; torch convention, see ``scratch.optimizers``)

with m̂ = m/(1 − β₁ᵗ), v̂ = s/(1 − β₂ᵗ). For small gradients v̂ ≈ g² ≪ 1, so the step is
≈ η/|g| instead of ≈ η: the update is wrong from the first step on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scratch.errors import SpecError
from scratch.layers import Dense
from scratch.model import MLP
from scratch.optimizers import Optimizer, TorchAdam, make_optimizer
from scratch.spec import ModelSpec, OptimizerSpec


class ScalarBiasDense(Dense):
    """Seed 001's bias gradient: db_l = Σ over every element of dZ_l, broadcast to (n_l,)."""

    def bias_gradient(self, dz: np.ndarray) -> np.ndarray:
        return np.full(dz.shape[1], dz.sum(), dtype=dz.dtype)


class ScalarBiasMLP(MLP):
    """The engine with seed 001's bias gradient in every dense layer (one overridden method, so
    the model's backward and a layer run alone for localization both use it)."""

    dense_class = ScalarBiasDense


class AdamNoSqrt(TorchAdam):
    """Seed 003's Adam: θ ← θ − η · m̂ / (v̂ + ε) (no square root on v̂)."""

    def update(self, param, grad, state, out=None):
        spec = self.spec
        m, s = self.moments(param, grad, state)
        m_hat = m / (1 - spec.beta1 ** self.t)
        v_hat = s / (1 - spec.beta2 ** self.t)
        param -= spec.learning_rate * (m_hat / (v_hat + spec.epsilon))


@dataclass(frozen=True)
class Variant:
    """A named override of the engine: its model class and its optimizer."""

    name: str
    description: str
    model_class: type[MLP] = MLP
    optimizer_class: type[Optimizer] | None = None
    needs_optimizer: str | None = None          # the optimizer name the variant changes

    def make_model(self, spec: ModelSpec, *, tensors=None) -> MLP:
        """The variant's model class holding the named ``tensors`` (None: the spec's initializer)."""
        return self.model_class(spec, tensors=tensors)

    def make_optimizer(self, spec: OptimizerSpec) -> Optimizer:
        """The variant's optimizer for ``spec``; an error if the variant rewrites an optimizer
        that ``spec`` does not use (it would silently be the default engine)."""
        if self.optimizer_class is None:
            return make_optimizer(spec)
        if (spec.name, spec.convention) != (self.needs_optimizer, "torch"):
            raise SpecError(f"variant {self.name!r} rewrites the torch-convention {self.needs_optimizer!r} "
                            f"optimizer; the spec uses {spec.convention}-convention {spec.name!r}")
        return self.optimizer_class(spec)


VARIANTS: dict[str, Variant] = {
    variant.name: variant for variant in (
        Variant("seed001_bias_scalar",
                "seed 001: db_l summed over every element of dZ_l (a scalar), broadcast to (n_l,)",
                model_class=ScalarBiasMLP),
        Variant("seed003_adam_no_sqrt",
                "seed 003: Adam divides by v̂ + ε instead of √v̂ + ε",
                optimizer_class=AdamNoSqrt, needs_optimizer="adam"),
    )
}


def get_variant(name: str) -> Variant:
    """The variant called ``name``; unknown names fail loudly."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise SpecError(f"unknown engine variant {name!r}; expected one of {', '.join(VARIANTS)}") from None
