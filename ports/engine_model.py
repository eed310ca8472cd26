"""The NumPy engine as a :class:`ports.reading.RealModel`: the real model of a weight-file side, and
of a user's own NumPy implementation (:mod:`ports.numpy_port`, whose layers it runs in the stack)."""

from __future__ import annotations

import numpy as np

from scratch.model import Network
from scratch.optimizers import make_optimizer


class EngineModel:
    """A :class:`scratch.model.Network` answering the RealModel protocol (dropout off: no masks)."""

    def __init__(self, network: Network):
        self.network = network
        self.optimizer = make_optimizer(network.spec.optimizer)

    @property
    def spec(self):
        return self.network.spec

    def load(self, tensors, statistics) -> None:
        for held, given in zip(self.network.tensors, tensors, strict=True):
            for name, value in held.items():
                if np.shape(given[name]) != value.shape:
                    raise ValueError(f"{name}: shape {np.shape(given[name])}, expected {value.shape}")
                value[...] = given[name]
        for (mean, variance), (given_mean, given_variance) in zip(self.network.statistics, statistics or (),
                                                                  strict=False):
            mean[...], variance[...] = given_mean, given_variance
        self.optimizer = make_optimizer(self.spec.optimizer)

    def outputs(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = np.asarray(x, dtype=self.network.dtype)
        if training:
            return self.network.forward(x, training=True).output
        return self.network.inference_outputs(x)[1]

    def loss_and_gradients(self, x: np.ndarray, targets: np.ndarray) -> tuple[float, list[np.ndarray]]:
        loss, gradients = self.network.gradients(np.asarray(x, dtype=self.network.dtype),
                                                 np.asarray(targets, dtype=self.network.dtype))
        return float(loss), [np.array(gradient) for gradient in gradients]

    def step(self, x: np.ndarray, targets: np.ndarray):
        self.network.train_step(np.asarray(x, dtype=self.network.dtype),
                                np.asarray(targets, dtype=self.network.dtype), self.optimizer)
        return ([{name: value.copy() for name, value in held.items()} for held in self.network.tensors],
                [(mean.copy(), variance.copy()) for mean, variance in self.network.statistics])
