"""A twin of this project (``twins.backends``) built from a reading, as a
:class:`ports.reading.RealModel`: the reference a side's own object is checked against.

A side's own object is checked against the twin of *its own framework* built from its reading (a
torch module against the torch twin, a Keras model against the Keras twin, a weight file or your
NumPy layers against the engine): the same framework's layers, loss and optimizer, so the two agree
to the last bits unless the reading missed something the user's code does — no rounding of
another framework's kernels to allow for.
"""

from __future__ import annotations

import numpy as np

from ports.reading import Reading
from scratch.errors import BackendError
from twins.backends import make_backend

TWIN_OF = {"torch": "torch", "keras": "keras", "jax": "jax", "weights": "scratch", "numpy": "scratch"}


class TwinModel:
    """``make_backend(name, …)`` answering the RealModel protocol (no dropout masks)."""

    def __init__(self, name: str, reading: Reading):
        self.name, self.spec = name, reading.spec
        self.load(reading.tensors, reading.statistics)

    def load(self, tensors, statistics) -> None:
        if self.name != "keras":
            self.backend = make_backend(self.name, self.spec, statistics=statistics or None, tensors=tensors)
            return
        from twins.keras_layers import rounded_gelu_allowed  # Keras only where a side needs it
        with rounded_gelu_allowed():                               # checked against Keras itself
            self.backend = make_backend(self.name, self.spec, statistics=statistics or None, tensors=tensors)

    def outputs(self, x: np.ndarray, training: bool) -> np.ndarray:
        if not training:
            return self.backend.inference_outputs(x)[1]
        untouched = np.zeros((len(x), *self.spec.layer_shapes[-1]), dtype=self.spec.dtype)
        return self.backend.trace(x, untouched)[f"A{self.spec.n_layers}"]   # A_L reads no targets

    def loss_and_gradients(self, x: np.ndarray, targets: np.ndarray) -> tuple[float, list[np.ndarray]]:
        return float(self.backend.trace(x, targets)["loss"]), self.backend.gradients(x, targets)

    def step(self, x: np.ndarray, targets: np.ndarray):
        self.backend.train_step(x, targets)
        return self.backend.tensors(), self.backend.statistics()


def twin_for(reading: Reading) -> tuple[TwinModel, str]:
    """(the reference twin of ``reading``, a note where its own framework's twin cannot express the
    reading and the engine stands in)."""
    name = TWIN_OF[reading.framework]
    try:
        return TwinModel(name, reading), ""
    except BackendError as error:
        note = f"checked against the engine: the {name} twin refuses it ({error})"
        return TwinModel("scratch", reading), note
