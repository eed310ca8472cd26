"""The spec's model in real ``torch.nn`` layers, losses and ``torch.optim`` optimizers.

Layout: ``torch.nn.Linear.weight`` is (out, in) like the shared file, so the hand-off is a
copy with a shape assertion (:func:`to_torch`). Intermediate gradients come from
``Tensor.retain_grad`` on every Z_l and A_l. Dropout multiplies by the plan's masks (an
``nn.Dropout`` would draw its own). L2 enters the loss as (λ/2)·Σ‖W_l‖² on weights only, like
the NumPy engine; ``weight_decay`` is not used because it would also change what the loss reports.
Optimizers run the single-tensor CPU path (``foreach=False``), whose order of operations
``scratch.optimizers`` follows.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from reference.backend_base import Backend
from reference.optimizer_state import OptimizerState
from scratch.errors import BackendError

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
        sizes = spec.layer_sizes
        self.linears = nn.ModuleList()
        for layer, (w, b) in enumerate(zip(weights, biases, strict=True), start=1):
            linear = nn.Linear(sizes[layer - 1], sizes[layer], dtype=self.dtype)
            with torch.no_grad():
                linear.weight.copy_(to_torch(w, (sizes[layer], sizes[layer - 1]), self.dtype))
                linear.bias.copy_(to_torch(b, (sizes[layer],), self.dtype))
            self.linears.append(linear)
        self.activations = [_activation(name, spec) for name in spec.activations]
        loss_class, self.loss_input = _LOSSES[spec.loss]
        self.loss_fn = loss_class()
        self.steps = 0                       # updates applied (torch's SGD keeps no counter)

    @functools.cached_property
    def optimizer(self) -> torch.optim.Optimizer:
        """Built on first use, so a spec whose optimizer torch cannot express still traces
        (gradients do not depend on the optimizer); training it raises the BackendError."""
        return _optimizer(self.spec, self.linears.parameters())

    # -- forward and loss -------------------------------------------------------------------

    def _forward(self, x, masks, keep_intermediates):
        a = torch.from_numpy(x)
        zs, activations = [], []
        last = self.spec.n_layers - 1
        for index, (linear, activation) in enumerate(zip(self.linears, self.activations, strict=True)):
            z = linear(a)
            a = activation(z)
            if masks is not None and index < last and masks[index] is not None:
                a = a * torch.from_numpy(masks[index])
            if keep_intermediates:
                z.retain_grad()
                a.retain_grad()
            zs.append(z)
            activations.append(a)
        return zs, activations

    def _loss(self, z_out, a_out, targets):
        data_loss = self.loss_fn(z_out if self.loss_input == "logits" else a_out, torch.from_numpy(targets))
        if not self.spec.l2:
            return data_loss
        penalty = sum((linear.weight ** 2).sum() for linear in self.linears)
        return data_loss + 0.5 * self.spec.l2 * penalty

    # -- the interface ----------------------------------------------------------------------

    def forward(self, x, masks=None):
        return self._forward(x, masks, keep_intermediates=False)

    def loss(self, z_out, a_out, targets):
        return self._loss(z_out, a_out, targets)

    def trace(self, x, targets, masks=None):
        self.linears.zero_grad(set_to_none=True)
        zs, activations = self._forward(x, masks, keep_intermediates=True)
        loss = self._loss(zs[-1], activations[-1], targets)
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
        zs, activations = self._forward(x, masks, keep_intermediates=False)
        loss = self._loss(zs[-1], activations[-1], targets)
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

    def load_state(self, weights, biases, state):
        sizes = self.spec.layer_sizes
        keys = _STATE_KEYS[self.spec.optimizer.name]
        with torch.no_grad():
            for layer, (linear, w, b) in enumerate(zip(self.linears, weights, biases, strict=True), start=1):
                linear.weight.copy_(to_torch(w, (sizes[layer], sizes[layer - 1]), self.dtype))
                linear.bias.copy_(to_torch(b, (sizes[layer],), self.dtype))
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

