"""The spec's model in real ``torch.nn`` layers, losses and ``torch.optim`` optimizers.

Layout: ``torch.nn.Linear.weight`` is (out, in) like the shared file, so the hand-off is a
copy with a shape assertion (:func:`to_torch`). Intermediate gradients come from
``Tensor.retain_grad`` on every Z_l and A_l. The model is built from the spec's layer list
through one table, :data:`LAYERS` (layer kind → the torch module that runs it); dropout
multiplies by the plan's masks (an ``nn.Dropout`` would draw its own). L2 enters the loss as
(λ/2)·Σ‖W_l‖² on weights only, like the NumPy engine; ``weight_decay`` is not used because it
would also change what the loss reports. Optimizers run the single-tensor CPU path
(``foreach=False``), whose order of operations ``scratch.optimizers`` follows.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from reference.backend_base import Backend
from reference.optimizer_state import OptimizerState
from scratch.errors import BackendError
from scratch.layer_specs import DenseSpec

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _activation(name: str, spec) -> nn.Module:
    return {
        "identity": nn.Identity,
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(spec.leaky_relu_slope),
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "softmax": lambda: nn.Softmax(dim=1),
    }[name]()


class PlanDropout(nn.Module):
    """Inverted dropout with the training plan's mask D_l (``scratch.batching``): A_l ⊙ D_l."""

    def forward(self, a: torch.Tensor, mask: np.ndarray | None) -> torch.Tensor:
        return a if mask is None else a * torch.from_numpy(mask)


class DenseLayer(nn.Module):
    """``nn.Linear`` (weight (out, in), the file's layout) followed by the layer's activation."""

    def __init__(self, layer: DenseSpec, n_in: int, spec):
        super().__init__()
        self.linear = nn.Linear(n_in, layer.units, dtype=_DTYPES[spec.dtype])
        self.activation = _activation(layer.activation, spec)


# The one table: each layer kind of the spec → the torch module that runs it.
LAYERS = {
    "dense": DenseLayer,
    "dropout": lambda layer, n_in, spec: PlanDropout(),
}


# CCE and BCE take the logits Z_L; MSE takes A_L.
_LOSSES = {"cce": (nn.CrossEntropyLoss, "logits"), "bce": (nn.BCEWithLogitsLoss, "logits"),
           "mse": (nn.MSELoss, "outputs")}


def _optimizer(spec, params) -> torch.optim.Optimizer:
    opt = spec.optimizer
    if opt.convention != "torch" and opt.name != "sgd":
        raise BackendError(f"torch backend: torch.optim has no {opt.convention}-convention "
                           f"{opt.name!r}; use convention='torch' (plain SGD is the same in both)")
    if opt.name in ("sgd", "momentum"):
        return torch.optim.SGD(params, lr=opt.learning_rate, momentum=opt.momentum, foreach=False)
    if opt.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=opt.learning_rate, alpha=opt.rho, eps=opt.epsilon,
                                   momentum=opt.momentum, foreach=False)
    return torch.optim.Adam(params, lr=opt.learning_rate, betas=(opt.beta1, opt.beta2),
                            eps=opt.epsilon, foreach=False)


# scratch.optimizers' buffer names → torch.optim's state keys, per optimizer.
_STATE_KEYS = {
    "sgd": {},
    "momentum": {"v": "momentum_buffer"},
    "rmsprop": {"s": "square_avg", "v": "momentum_buffer"},
    "adam": {"m": "exp_avg", "s": "exp_avg_sq"},
}


def to_torch(array: np.ndarray, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A torch copy of a canonical-layout array, asserting its shape (no cast: dtypes must match)."""
    if array.shape != shape:
        raise BackendError(f"torch backend: expected shape {shape}, got {array.shape}")
    tensor = torch.from_numpy(np.array(array, copy=True))
    if tensor.dtype != dtype:
        raise BackendError(f"torch backend: expected {dtype}, got {tensor.dtype}")
    return tensor


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, spec, weights, biases):
        super().__init__(spec)
        self.dtype = _DTYPES[spec.dtype]
        self.layers = nn.ModuleList()
        n_in = spec.inputs
        for layer in spec.layers:
            self.layers.append(LAYERS[layer.kind](layer, n_in, spec))
            n_in = getattr(layer, "units", n_in)
        dense = [module for module in self.layers if isinstance(module, DenseLayer)]
        self.linears = nn.ModuleList(module.linear for module in dense)     # W_1, b_1, … in order
        self.activations = [module.activation for module in dense]
        self.load_parameters(weights, biases)
        loss_class, self.loss_input = _LOSSES[spec.loss]
        self.loss_fn = loss_class()
        self.steps = 0                       # updates applied (torch's SGD keeps no counter)

    @functools.cached_property
    def optimizer(self) -> torch.optim.Optimizer:
        """Built on first use, so a spec whose optimizer torch cannot express still traces
        (gradients do not depend on the optimizer); training it raises the BackendError."""
        return _optimizer(self.spec, self.linears.parameters())

    # -- forward and loss -------------------------------------------------------------------

    def forward(self, x, masks=None, keep_intermediates=False):
        """([Z_1..Z_L], [A_1..A_L]) as torch tensors, through the modules of :data:`LAYERS` in
        the spec's order; a dropout module applies the plan's mask of the dense layer before it.
        ``keep_intermediates`` retains every Z and A's gradient for :meth:`trace`."""
        a = torch.from_numpy(x)
        zs, activations = [], []
        for module in self.layers:
            if isinstance(module, DenseLayer):
                z = module.linear(a)
                a = module.activation(z)
                zs.append(z)
                activations.append(a)
            else:
                a = activations[-1] = module(a, None if masks is None else masks[len(zs) - 1])
        if keep_intermediates:
            for tensor in zs + activations:
                tensor.retain_grad()
        return zs, activations

    def loss(self, z_out, a_out, targets):
        data_loss = self.loss_fn(z_out if self.loss_input == "logits" else a_out, torch.from_numpy(targets))
        if not self.spec.l2:
            return data_loss
        penalty = sum((linear.weight ** 2).sum() for linear in self.linears)
        return data_loss + 0.5 * self.spec.l2 * penalty

    # -- the interface ----------------------------------------------------------------------

    def trace(self, x, targets, masks=None):
        self.linears.zero_grad(set_to_none=True)
        zs, activations = self.forward(x, masks, keep_intermediates=True)
        loss = self.loss(zs[-1], activations[-1], targets)
        loss.backward()
        out = {"loss": loss.detach().numpy()}
        for layer, (linear, z, a) in enumerate(zip(self.linears, zs, activations, strict=True), start=1):
            out[f"Z{layer}"] = z.detach().numpy()
            out[f"A{layer}"] = a.detach().numpy()
            out[f"dW{layer}"] = linear.weight.grad.numpy().copy()
            out[f"db{layer}"] = linear.bias.grad.numpy().copy()
            out[f"dZ{layer}"] = z.grad.numpy()
            if a.grad is not None:
                out[f"dA{layer}"] = a.grad.numpy()
        self.linears.zero_grad(set_to_none=True)
        return out

    def layer_trace(self, layer, a_prev, upstream, mask=None):
        linear, activation = self.linears[layer - 1], self.activations[layer - 1]
        linear.zero_grad(set_to_none=True)
        a_in = torch.from_numpy(np.array(a_prev, copy=True)).requires_grad_(True)
        z = linear(a_in)
        z.retain_grad()
        a = activation(z)
        if mask is not None:
            a = a * torch.from_numpy(mask)
        if layer == self.spec.n_layers:
            data_loss = self.loss_fn(z if self.loss_input == "logits" else a, torch.from_numpy(upstream))
            penalty = 0.5 * self.spec.l2 * (linear.weight ** 2).sum() if self.spec.l2 else 0.0
            (data_loss + penalty).backward()
        else:
            outputs, grad_outputs = [a], [torch.from_numpy(upstream)]
            if self.spec.l2:
                outputs.append(0.5 * self.spec.l2 * (linear.weight ** 2).sum())
                grad_outputs.append(None)
            torch.autograd.backward(outputs, grad_outputs)
        out = {"Z": z.detach().numpy(), "A": a.detach().numpy(), "dZ": z.grad.numpy(),
               "dW": linear.weight.grad.numpy().copy(), "db": linear.bias.grad.numpy().copy(),
               "dA_prev": a_in.grad.numpy()}
        linear.zero_grad(set_to_none=True)
        return out

    def train_step(self, x, targets, masks=None):
        self.optimizer.zero_grad(set_to_none=True)
        zs, activations = self.forward(x, masks)
        loss = self.loss(zs[-1], activations[-1], targets)
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        return float(loss.detach())

    def apply_gradients(self, gradients):
        params = list(self.linears.parameters())
        for param, gradient in zip(params, gradients, strict=True):
            param.grad = to_torch(gradient, tuple(param.shape), self.dtype)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1

    def optimizer_state(self):
        keys = _STATE_KEYS[self.spec.optimizer.name]
        slots = []
        for param in self.linears.parameters():
            state = self.optimizer.state.get(param, {})
            slots.append({ours: state[theirs].detach().numpy().copy() for ours, theirs in keys.items()
                          if state.get(theirs) is not None})
        return OptimizerState(self.steps, slots)

    def load_parameters(self, weights, biases) -> None:
        """Copy canonical [W_1..W_L], [b_1..b_L] into the linears (the one hand-off: nn.Linear's
        weight is (out, in) like the file, so only the shape is asserted)."""
        sizes = self.spec.layer_sizes
        if not len(weights) == len(biases) == len(self.linears):
            raise BackendError(f"torch backend: {len(weights)} weights and {len(biases)} biases for "
                               f"{len(self.linears)} dense layers")
        with torch.no_grad():
            for layer, (linear, w, b) in enumerate(zip(self.linears, weights, biases, strict=True), start=1):
                linear.weight.copy_(to_torch(w, (sizes[layer], sizes[layer - 1]), self.dtype))
                linear.bias.copy_(to_torch(b, (sizes[layer],), self.dtype))

    def load_state(self, weights, biases, state):
        keys = _STATE_KEYS[self.spec.optimizer.name]
        self.load_parameters(weights, biases)
        self.optimizer.state.clear()
        if state.t:
            for param, slot in zip(self.linears.parameters(), state.slots, strict=True):
                buffers = {theirs: to_torch(slot[ours], tuple(param.shape), self.dtype)
                           for ours, theirs in keys.items() if ours in slot}
                if self.spec.optimizer.name in ("rmsprop", "adam"):
                    buffers["step"] = torch.tensor(float(state.t))
                self.optimizer.state[param] = buffers
        self.steps = state.t


    def parameters(self):
        weights = [linear.weight.detach().numpy().copy() for linear in self.linears]
        biases = [linear.bias.detach().numpy().copy() for linear in self.linears]
        return weights, biases

