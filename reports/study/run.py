"""The one training step the study page is about: a model, its parameters, one batch, and the
NumPy engine's forward pass and gradients on that batch.

Every part of the page (the per-intermediate rows, the annotated graph, the hard layers step by
step, the frameworks' records) reads its numbers from here, so a number on the page is the number
the engine computed in this run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scratch.model import ForwardPass, Gradients, Network
from scratch.spec import ModelSpec


@dataclass
class StudyRun:
    """``x`` (m, …input shape) and ``targets`` (m, classes) are the batch; ``masks`` the step's
    dropout masks (or None); ``tensors`` the parameters before the step, one ``{name: array}``
    per layer as :attr:`scratch.model.Network.tensors`. ``named`` holds every intermediate by its
    trace name (``Z1``, ``A1``, ``dZ1``, ``dA1``, ``dW1``, …) and ``loss`` the step's loss."""

    spec: ModelSpec
    tensors: list[dict[str, np.ndarray]]
    x: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    masks: list[np.ndarray] | None
    network: Network
    forward: ForwardPass
    gradients: Gradients
    loss: float
    named: dict[str, np.ndarray] = field(default_factory=dict)


def study_run(spec: ModelSpec, tensors, x: np.ndarray, labels: np.ndarray, masks=None) -> StudyRun:
    """One forward and backward pass of the engine on (``x``, ``labels``), in training mode, with
    the spec's L2; the parameters are copied, so the caller's arrays stay as they are."""
    network = _network(spec, tensors)
    return engine_step(spec, tensors, x, network.targets(labels), masks, labels)


def engine_step(spec: ModelSpec, tensors, x: np.ndarray, targets: np.ndarray, masks=None,
                labels: np.ndarray | None = None) -> StudyRun:
    """:func:`study_run` from one-hot (or regression) ``targets``; ``labels`` are None unless given."""
    network = _network(spec, tensors)
    forward = network.forward(x, masks)
    gradients = network.backward(forward, targets)
    loss = network.loss(forward, targets)
    named = {**forward.named(), **gradients.named()}
    return StudyRun(spec, network.tensors, x, labels, targets, masks, network, forward, gradients,
                    float(loss), named)


def _network(spec: ModelSpec, tensors) -> Network:
    copies = [{name: np.array(value) for name, value in layer.items()} for layer in tensors]
    return Network(spec, tensors=copies)
