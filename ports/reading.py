"""What one side of ``backprop-parity compare`` reads as, and the protocol its real model answers.

A :class:`Reading` is a model put into this project's terms: the frozen
:class:`scratch.spec.ModelSpec` (layers, loss, optimizer with its convention, L2, dtype), the named
tensors of every layer with parameters in the canonical layout of the weight file (dense W
(out, in), conv2d W (O, C, k_h, k_w), γ, β, α; :mod:`scratch.tensor_specs`), BatchNorm's running
statistics as (mean, variance) per batch_norm layer, and what the reading had to assume. A side
with no weights of its own (a torch factory without a ``state_dict``) still reads its freshly
initialized tensors, but does not list ``weights`` in ``given``: it runs with the other side's.

``given`` names what the side itself fixed, among :data:`GIVEN`: ``weights`` (its own trained or
loaded parameters), ``loss`` and ``optimizer`` (a compiled Keras model carries both; a torch side
gives them through its factory). What a side leaves out is taken from the other side, and the
reading's spec holds the spec's defaults there until then (its notes say so).

A :class:`Finding` is a port mistake seen in the model itself, before anything runs, that the spec
cannot express (a softmax output fed to a loss that applies its own softmax: a double softmax).

:class:`RealModel` is the protocol each side's own object answers, NumPy in, NumPy out: maps cross
channels-first (m, C, H, W), parameters in the canonical layout, gradients and tensors in the
order of ``spec.parameter_names``. Every method runs the user's own code (the framework's layers,
loss and optimizer as the user built them); dropout is off in every method (its masks are random
in the user's code), which the reading's twin matches by running without masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from scratch.errors import ParityError
from scratch.spec import ModelSpec

FRAMEWORKS = ("keras", "torch", "jax", "numpy", "weights")
GIVEN = ("weights", "loss", "optimizer")
OWN_CONVENTION = {"torch": "torch", "keras": "keras", "jax": "optax"}
"""The optimizer convention each framework's own optimizers follow (``scratch.optimizers``)."""
DECOUPLED_ONLY = {"keras"}
"""Frameworks whose optimizers decay weights only decoupled (Keras 3's ``weight_decay=``)."""
COUPLED_ONLY = {"torch": ("sgd", "momentum", "rmsprop")}
"""Framework → its optimizers that decay weights only coupled (torch: AdamW is Adam's alone)."""


def decay_expressible(framework: str, optimizer) -> bool:
    """Whether ``framework``'s own optimizers have ``optimizer``'s form of weight decay (any
    form where it decays nothing; a weight file or NumPy side holds any)."""
    if not optimizer.weight_decay:
        return True
    if optimizer.decoupled_decay:
        return optimizer.name not in COUPLED_ONLY.get(framework, ())
    return framework not in DECOUPLED_ONLY


class PortError(ParityError):
    """A model cannot be read into the spec: an unsupported layer, loss or optimizer option, a
    file that does not load, a factory that returns the wrong thing (exit status 2)."""


@dataclass(frozen=True)
class Finding:
    """A port mistake seen in the model itself: ``cause`` (a :data:`ports.causes.CAUSES` name),
    ``where`` (e.g. ``layer 4``), and one sentence saying what was seen."""

    cause: str
    where: str
    message: str


@dataclass(frozen=True)
class Reading:
    framework: str
    source: str
    spec: ModelSpec
    tensors: list[dict[str, np.ndarray]]
    statistics: list[tuple[np.ndarray, np.ndarray]] | None = None
    notes: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = field(default=())
    given: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise PortError(f"reading of {self.source}: unknown framework {self.framework!r}")
        unknown = set(self.given) - set(GIVEN)
        if unknown:
            raise PortError(f"reading of {self.source}: unknown given {sorted(unknown)}")
        if len(self.tensors) != len(self.spec.parameter_layers):
            raise PortError(f"reading of {self.source}: tensors for {len(self.tensors)} layers, "
                            f"the spec has {len(self.spec.parameter_layers)} layers with parameters")
        for layer, names, held in zip(self.spec.parameter_layers, self.spec.parameter_names,
                                      self.tensors, strict=True):
            if tuple(held) != tuple(names):
                raise PortError(f"reading of {self.source}: layer {layer} holds {tuple(held)}, "
                                f"its kind declares {tuple(names)}")


class RealModel(Protocol):
    """The user's own object, run as it is (see the module docstring)."""

    def load(self, tensors: list[dict[str, np.ndarray]], statistics) -> None:
        """Set the object's parameters (and BatchNorm's running statistics) from canonical ones."""

    def outputs(self, x: np.ndarray, training: bool) -> np.ndarray:
        """A_L, the model's output after its output activation (probabilities for a softmax/CCE
        model even where the model itself returns logits), in training mode (BatchNorm on the
        batch's statistics, leaving the running ones as they were where the framework allows) or in
        inference mode; dropout off."""

    def loss_and_gradients(self, x: np.ndarray, targets: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """The user's loss (mean over the batch, plus the model's own regularization) in training
        mode and every trainable tensor's gradient, canonical layout, ``spec.parameter_names``
        order. ``targets`` are one-hot (m, classes) for CCE, (m, 1) 0/1 for BCE, (m, n) for MSE."""

    def step(self, x: np.ndarray, targets: np.ndarray) -> tuple[list[dict[str, np.ndarray]], list]:
        """One step of the user's optimizer on (x, targets) in training mode; the named tensors and
        running statistics after it (the object keeps them)."""
