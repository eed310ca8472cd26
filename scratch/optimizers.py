"""Optimizers, in the torch, Keras and optax conventions, updating parameters in place.

For a parameter θ with gradient g at step t = 1, 2, … (every state starts at zero):

SGD (both conventions):        θ ← θ − η·g

Momentum μ
  torch (torch.optim.SGD):     v ← μ·v + g  (v₁ = g);            θ ← θ − η·v
  keras (keras.optimizers.SGD): v ← μ·v − η·g;                    θ ← θ + v
  (the same trajectory in exact arithmetic: v_keras = −η·v_torch for a constant η)

RMSprop, decay ρ (torch calls it alpha), momentum μ ≥ 0
  torch:  s ← ρ·s + (1 − ρ)·g²;   d = √s + ε;       μ = 0: θ ← θ − η·g/d
                                                     μ > 0: v ← μ·v + g/d;  θ ← θ − η·v
  keras:  s ← ρ·s + (1 − ρ)·g²;   Δ = η·g / √(s + ε)  (ε inside the root)
                                                     μ = 0: θ ← θ − Δ
                                                     μ > 0: v ← μ·v + Δ;   θ ← θ − v
  Defaults differ too: torch ρ = 0.99, ε = 1e-8, η = 0.01; Keras ρ = 0.9, ε = 1e-7, η = 0.001.

Adam, β₁, β₂, ε
  both:   m ← m + (1 − β₁)(g − m);   s ← β₂·s + (1 − β₂)·g²
  torch:  θ ← θ − (η/(1 − β₁ᵗ)) · m / (√s/√(1 − β₂ᵗ) + ε)          (ε added to √ŝ)
  keras:  α = η·√(1 − β₂ᵗ)/(1 − β₁ᵗ);   θ ← θ − α·m/(√s + ε)           (ε added to √s)
  Written in Keras's form, torch's update is α·m/(√s + ε·√(1 − β₂ᵗ)): the two agree only as
  ε → 0 (Keras's ε acts as ε/√(1 − β₂ᵗ) in torch's form), which matters early in training
  (t small) and for small second moments.

optax (0.2.8, ``optax.{sgd,rmsprop,adam}``), the third convention: optax composes each optimizer
from gradient transformations and applies θ ← θ + u, with u = −η·(…) from ``scale_by_learning_rate``.
  SGD, momentum: torch's form exactly (``trace``: v ← g + μ·v, θ ← θ − η·v).
  RMSprop (default ``eps_in_sqrt=True``, momentum a ``trace`` *after* the learning rate):
          s ← (1 − ρ)·g² + ρ·s;   u = −η·g/√(s + ε)   (ε inside the root, as Keras)
                                                     μ = 0: θ ← θ + u
                                                     μ > 0: v ← u + μ·v;   θ ← θ + v
          i.e. Keras's update with the momentum buffer of the opposite sign (v_optax = −v_keras).
  Adam (``eps_root=0``): m ← (1 − β₁)·g + β₁·m;  s ← (1 − β₂)·g² + β₂·s
          θ ← θ − η·(m/(1 − β₁ᵗ)) / (√(s/(1 − β₂ᵗ)) + ε)   (ε added to √ŝ, as torch)
  So optax's defaults are torch's Adam but Keras's RMSprop, a pairing neither framework has;
  optax's own ``eps_in_sqrt=False`` gives torch's ε placement. μ, β₁, β₂ are used as given.

Weight decay λ_d (``OptimizerSpec.weight_decay``), on every parameter the optimizer holds:
  coupled (torch's ``weight_decay=``, optax's ``add_decayed_weights`` first):
          g ← g + λ_d·θ, then the update above from that g (the decay enters every buffer)
  decoupled, before the update from g alone:
  torch (``AdamW``):                θ ← θ·(1 − η·λ_d)
  keras (every optimizer's ``weight_decay=``): θ ← θ − θ·λ_d·η   (λ_d through float32, as μ below)
  optax (``adamw``, ``add_decayed_weights`` after the direction): θ ← θ − η·λ_d·θ

Keras precision quirk, mirrored here: Keras 3 writes ``ops.cast(self.momentum, dtype)`` and
``ops.cast(self.beta_1, dtype)``; on TensorFlow a Python float becomes a float32 tensor before
the cast, so even for float64 weights Keras uses μ, β₁, β₂ rounded to float32 (0.9 →
0.8999999762) in SGD momentum and in Adam's β₁ᵗ, β₂ᵗ — a 1e-8 relative effect after a few steps.
The keras convention reproduces that rounding (:func:`keras_scalar`); the torch convention
uses the Python floats as given, as torch does.

Formulas checked against torch 2.13 ``torch/optim/{sgd,rmsprop,adam}.py`` (single-tensor CPU
path) and Keras 3.15 ``keras/src/optimizers/{sgd,rmsprop,adam}.py``; the order of operations
follows theirs, so float64 results agree to rounding.
"""

from __future__ import annotations

import math

import numpy as np

from scratch.spec import OptimizerSpec


def keras_scalar(value: float, dtype: np.dtype):
    """``value`` as Keras's ``ops.cast(value, dtype)`` sees it: through float32 first."""
    return np.dtype(dtype).type(np.float32(value))


class Optimizer:
    """Base class. ``step(params, grads)`` updates every array in ``params`` in place."""

    def __init__(self, spec: OptimizerSpec):
        self.spec = spec
        self.t = 0
        self.state: list[dict[str, np.ndarray]] | None = None

    def step(self, params: list[np.ndarray], grads: list[np.ndarray], *, consume: bool = False) -> None:
        """One update of every parameter from its gradient. ``consume=True`` hands ``grads`` over
        (a training step's own gradients, which nothing reads after the update): an update may then
        compute in them instead of in a new array the size of the parameter; otherwise ``grads``
        are left as they are."""
        if self.state is None:
            self.state = [{} for _ in params]
        self.t += 1
        decay, decoupled = self.spec.weight_decay, self.spec.decoupled_decay
        for param, grad, state in zip(params, grads, self.state, strict=True):
            out = grad if consume else None
            if decay and decoupled:
                self.decay(param)
            elif decay:
                grad = np.add(grad, decay * param, out=out)        # g + λ_d·θ (torch: grad.add(θ, alpha=λ_d))
            self.update(param, grad, state, out)

    def decay(self, param: np.ndarray) -> None:
        """Decoupled weight decay of one parameter in place, in the spec's convention (above)."""
        spec = self.spec
        if spec.convention == "torch":
            param *= 1 - spec.learning_rate * spec.weight_decay
        elif spec.convention == "keras":
            param -= param * keras_scalar(spec.weight_decay, param.dtype) * spec.learning_rate
        else:
            param -= spec.learning_rate * spec.weight_decay * param

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict, out: np.ndarray | None = None) -> None:
        """θ ← θ − … in place from g; ``out`` (g's shape and dtype, or None) is an array the update
        may write a temporary into."""
        raise NotImplementedError


class SGD(Optimizer):
    def update(self, param, grad, state, out=None):
        param -= np.multiply(self.spec.learning_rate, grad, out=out)      # η·g (in ``out`` if given)


class TorchMomentum(Optimizer):
    def update(self, param, grad, state, out=None):
        if "v" not in state:
            state["v"] = grad.copy()
        else:
            state["v"] *= self.spec.momentum
            state["v"] += grad
        param -= self.spec.learning_rate * state["v"]


class KerasMomentum(Optimizer):
    def update(self, param, grad, state, out=None):
        v = state.setdefault("v", np.zeros_like(param))
        v *= keras_scalar(self.spec.momentum, param.dtype)
        v -= grad * self.spec.learning_rate
        param += v


class TorchRMSprop(Optimizer):
    def update(self, param, grad, state, out=None):
        spec = self.spec
        s = state.setdefault("s", np.zeros_like(param))
        s *= spec.rho
        s += (1 - spec.rho) * grad * grad
        denom = np.sqrt(s) + spec.epsilon
        if spec.momentum > 0:
            v = state.setdefault("v", np.zeros_like(param))
            v *= spec.momentum
            v += grad / denom
            param -= spec.learning_rate * v
        else:
            param -= spec.learning_rate * (grad / denom)


class KerasRMSprop(Optimizer):
    def update(self, param, grad, state, out=None):
        spec = self.spec
        s = state.setdefault("s", np.zeros_like(param))
        s[...] = spec.rho * s + (1 - spec.rho) * np.square(grad)
        increment = spec.learning_rate * grad / np.sqrt(s + spec.epsilon)
        if spec.momentum > 0:
            v = state.setdefault("v", np.zeros_like(param))
            v[...] = spec.momentum * v + increment
            param -= v
        else:
            param -= increment


class TorchAdam(Optimizer):
    def moments(self, param, grad, state):
        """Update and return (m, s) in place: m ← m + (1 − β₁)(g − m);  s ← β₂·s + (1 − β₂)·g²."""
        spec = self.spec
        m = state.setdefault("m", np.zeros_like(param))
        s = state.setdefault("s", np.zeros_like(param))
        m += (1 - spec.beta1) * (grad - m)
        s *= spec.beta2
        s += (1 - spec.beta2) * grad * grad
        return m, s

    def update(self, param, grad, state, out=None):
        spec = self.spec
        m, s = self.moments(param, grad, state)
        step_size = spec.learning_rate / (1 - spec.beta1 ** self.t)
        bias_correction2_sqrt = math.sqrt(1 - spec.beta2 ** self.t)
        denom = np.sqrt(s) / bias_correction2_sqrt + spec.epsilon
        param -= step_size * (m / denom)


class KerasAdam(Optimizer):
    def update(self, param, grad, state, out=None):
        spec = self.spec
        real = param.dtype.type
        m = state.setdefault("m", np.zeros_like(param))
        s = state.setdefault("s", np.zeros_like(param))
        t = real(self.t)
        beta1_power = keras_scalar(spec.beta1, param.dtype) ** t
        beta2_power = keras_scalar(spec.beta2, param.dtype) ** t
        alpha = real(spec.learning_rate) * np.sqrt(1 - beta2_power) / (1 - beta1_power)
        m += (grad - m) * (1 - spec.beta1)
        s += (np.square(grad) - s) * (1 - spec.beta2)
        param -= (m * alpha) / (np.sqrt(s) + spec.epsilon)


class OptaxRMSprop(Optimizer):
    def update(self, param, grad, state, out=None):
        spec = self.spec
        s = state.setdefault("s", np.zeros_like(param))
        s[...] = (1 - spec.rho) * np.square(grad) + spec.rho * s
        increment = -spec.learning_rate * ((1 / np.sqrt(s + spec.epsilon)) * grad)
        if spec.momentum > 0:
            v = state.setdefault("v", np.zeros_like(param))
            v[...] = increment + spec.momentum * v
            param += v
        else:
            param += increment


class OptaxAdam(Optimizer):
    def update(self, param, grad, state, out=None):
        spec = self.spec
        real = param.dtype.type
        m = state.setdefault("m", np.zeros_like(param))
        s = state.setdefault("s", np.zeros_like(param))
        m[...] = (1 - spec.beta1) * grad + spec.beta1 * m
        s[...] = (1 - spec.beta2) * np.square(grad) + spec.beta2 * s
        m_hat = m / real(1 - spec.beta1 ** self.t)
        s_hat = s / real(1 - spec.beta2 ** self.t)
        param += -spec.learning_rate * (m_hat / (np.sqrt(s_hat) + spec.epsilon))


_REGISTRY = {
    ("sgd", "torch"): SGD,
    ("sgd", "keras"): SGD,
    ("momentum", "torch"): TorchMomentum,
    ("momentum", "keras"): KerasMomentum,
    ("rmsprop", "torch"): TorchRMSprop,
    ("rmsprop", "keras"): KerasRMSprop,
    ("adam", "torch"): TorchAdam,
    ("adam", "keras"): KerasAdam,
    ("sgd", "optax"): SGD,
    ("momentum", "optax"): TorchMomentum,
    ("rmsprop", "optax"): OptaxRMSprop,
    ("adam", "optax"): OptaxAdam,
}


def make_optimizer(spec: OptimizerSpec) -> Optimizer:
    """The optimizer for ``spec.name`` in ``spec.convention`` (the spec is already validated)."""
    return _REGISTRY[(spec.name, spec.convention)](spec)
