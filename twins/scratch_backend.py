"""The NumPy engine behind the backend interface (so the parity helper treats all three alike)."""

from __future__ import annotations

import numpy as np

from judge.optimizer_state import OptimizerState
from scratch.model import Network
from scratch.optimizers import make_optimizer
from twins.backend_base import Backend, given_tensors


class ScratchBackend(Backend):
    name = "scratch"

    def __init__(self, spec, weights=None, biases=None, statistics=None, *, tensors=None):
        super().__init__(spec)
        self.model = Network(spec, tensors=given_tensors(spec, weights, biases, tensors, self.name),
                             statistics=statistics)
        self.optimizer = make_optimizer(spec.optimizer)

    def forward(self, x, masks=None):
        forward = self.model.forward(x, masks)
        return forward.z, forward.a

    def loss(self, z_out, a_out, targets):
        data_loss = self.model.loss_fn.value(z_out, a_out, targets)
        return data_loss + self.model.l2_penalty() if self.spec.l2 else data_loss

    def trace(self, x, targets, masks=None):
        forward = self.model.forward(x, masks)
        loss = self.model.loss(forward, targets)
        grads = self.model.backward(forward, targets)
        return {"loss": np.asarray(loss), **forward.named(), **grads.named()}

    def layer_trace(self, layer, a_prev, upstream, mask=None):
        return self.model.layer_pass(layer, a_prev, upstream, mask)

    def train_step(self, x, targets, masks=None):
        return self.model.train_step(x, targets, self.optimizer, masks)

    def apply_gradients(self, gradients):
        self.optimizer.step(self.model.parameters, [np.array(g, copy=True) for g in gradients])

    def optimizer_state(self):
        slots = self.optimizer.state or [{} for _ in self.model.parameters]
        return OptimizerState(self.optimizer.t, slots).copy()

    def restore(self, tensors, state):
        # the same classes again: a variant of the engine (scratch.variants) stays that variant
        self.model = type(self.model)(self.spec, tensors=tensors, statistics=self.model.statistics)
        self.optimizer = type(self.optimizer)(self.spec.optimizer)
        state = state.copy()
        self.optimizer.t = state.t
        self.optimizer.state = state.slots if state.t else None


    def tensors(self):
        return [{name: array.copy() for name, array in layer.items()} for layer in self.model.tensors]

    def statistics(self):
        return [(mean.copy(), var.copy()) for mean, var in self.model.statistics]

    def inference_outputs(self, x):
        return self.model.inference_outputs(x)

