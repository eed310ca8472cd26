"""The spec's model in real ``torch.nn`` layers, losses and ``torch.optim`` optimizers.

The model is built from the spec's layer list through one table,
:data:`twins.torch_layers.LAYERS` (layer kind → the torch module that runs it; padding,
Flatten order and BatchNorm's conventions are documented there); dropout multiplies by the plan's
masks (an ``nn.Dropout`` would draw its own). Layout: each row names its layer's variables by the
declared tensor names, and torch holds them in the shared file's canonical layout (``nn.Linear``
(out, in), ``nn.Conv2d`` OIHW, BatchNorm/LayerNorm γ, β per channel; a PReLU's α reshaped), and
maps are channels-first, so the hand-off is a copy with a shape assertion (:func:`to_torch`), in
:meth:`TorchBackend.load_tensors`.
Intermediate gradients come from ``Tensor.retain_grad`` on every Z_l and A_l.

BatchNorm runs in training mode (the batch's statistics) everywhere but :meth:`inference`. A
forward pass that must leave the running statistics alone (:meth:`forward`, :meth:`trace`,
:meth:`layer_trace`) runs the module on clones of its running-statistics buffers and puts the
originals back (:meth:`TorchBackend.kept_statistics`); :meth:`train_step` lets ``nn.BatchNorm``
move them itself.

L2 enters the loss as (λ/2)·Σ‖W_l‖² over the tensors declared ``l2`` (the dense and conv2d kernels),
like the NumPy engine; ``weight_decay`` is not used because it would also change what the loss
reports (and would reach BatchNorm's γ). Optimizers run over every parameter in canonical order
(W_l, b_l of ``spec.parameter_layers``) on the single-tensor CPU path (``foreach=False``), whose
order of operations ``scratch.optimizers`` follows.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch
from torch import nn

from judge.optimizer_state import OptimizerState
from scratch.errors import BackendError
from scratch.tensor_specs import gradient_name
from twins.backend_base import Backend, check_tokens, given_tensors
from twins.torch_layers import DTYPES, build_layers, running_statistics_kept

# CCE and BCE take the logits Z_L; MSE takes A_L.
_LOSSES = {"cce": (nn.CrossEntropyLoss, "logits"), "bce": (nn.BCEWithLogitsLoss, "logits"),
           "mse": (nn.MSELoss, "outputs")}


def _optimizer(spec, params) -> torch.optim.Optimizer:
    opt = spec.optimizer
    if opt.convention != "torch" and opt.name != "sgd":
        raise BackendError(f"torch backend: torch.optim has no {opt.convention}-convention "
                           f"{opt.name!r}; use convention='torch' (plain SGD is the same in both)")
    if opt.decoupled_decay and opt.name != "adam":
        raise BackendError(f"torch backend: torch.optim's {opt.name!r} has only coupled weight decay "
                           "(g + λ·θ); decoupled decay is AdamW's alone: use decoupled_decay=false, or adam")
    if opt.name in ("sgd", "momentum"):
        return torch.optim.SGD(params, lr=opt.learning_rate, momentum=opt.momentum,
                               weight_decay=opt.weight_decay, foreach=False)
    if opt.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=opt.learning_rate, alpha=opt.rho, eps=opt.epsilon,
                                   momentum=opt.momentum, weight_decay=opt.weight_decay, foreach=False)
    adam = torch.optim.AdamW if opt.decoupled_decay else torch.optim.Adam
    return adam(params, lr=opt.learning_rate, betas=(opt.beta1, opt.beta2), eps=opt.epsilon,
                weight_decay=opt.weight_decay, foreach=False)


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


def _gradients(held: dict, shapes: dict, traces: tuple) -> dict[str, np.ndarray]:
    """{trace name (``traces``: dW1, dgamma2, or a layer pass's dW): the canonical gradient} of one
    layer's torch parameters."""
    return {trace: parameter.grad.numpy().reshape(shapes[name]).copy()
            for (name, parameter), trace in zip(held.items(), traces, strict=True)}


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, spec, weights=None, biases=None, statistics=None, *, tensors=None):
        super().__init__(spec)
        self.dtype = DTYPES[spec.dtype]
        self.layers = build_layers(spec)                                    # l = 1..L
        # {declared name: nn.Parameter} of every layer in spec.parameter_layers, declaration order
        self.held = [layer.tensors for layer in self.layers if layer.tensors]
        self.shapes = [dict(zip(names, shapes, strict=True))
                       for names, shapes in zip(spec.parameter_names, spec.parameter_shapes, strict=True)]
        # the tensors L2 penalizes (TensorSpec.l2: the dense and conv2d kernels)
        self.kernels = [held[tensor.name]
                        for number, held in zip(spec.parameter_layers, self.held, strict=True)
                        for tensor in spec.numbered_layers[number - 1].tensors if tensor.l2]
        self.batch_norms = [layer.normalization for layer in self.layers if layer.normalization is not None]
        self.load_tensors(given_tensors(spec, weights, biases, tensors, self.name))
        self.load_statistics(statistics)
        loss_class, self.loss_input = _LOSSES[spec.loss]
        self.loss_fn = loss_class()
        self.steps = 0                       # updates applied (torch's SGD keeps no counter)

    def trainable(self) -> list[nn.Parameter]:
        """[W_1, b_1, …] of every layer with parameters: canonical order, as the optimizer sees them."""
        return [parameter for held in self.held for parameter in held.values()]

    def canonical(self) -> list[tuple]:
        """(torch parameter, its canonical shape) of :meth:`trainable`, in its order."""
        return [(held[name], shapes[name]) for held, shapes in zip(self.held, self.shapes, strict=True)
                for name in held]

    @functools.cached_property
    def optimizer(self) -> torch.optim.Optimizer:
        """Built on first use, so a spec whose optimizer torch cannot express still traces
        (gradients do not depend on the optimizer); training it raises the BackendError."""
        return _optimizer(self.spec, self.trainable())

    @contextlib.contextmanager
    def kept_statistics(self, keep: bool = True):
        """Run the enclosed forward pass with BatchNorm's running statistics left as they were:
        each module's buffers are swapped for clones (which the training-mode pass moves, and
        autograd may save) and the originals put back. ``keep=False`` does nothing."""
        if not keep or not self.batch_norms:
            yield
            return
        with running_statistics_kept(self.batch_norms):
            yield

    # -- forward and loss -------------------------------------------------------------------

    def forward(self, x, masks=None, keep_intermediates=False, update_statistics=False):
        """([Z_1..Z_L], [A_1..A_L]) as torch tensors, through the modules of the spec's layers in
        order (A_l after the plan's dropout mask D_l). ``keep_intermediates`` retains every Z and
        A's gradient for :meth:`trace`; BatchNorm's running statistics move only with
        ``update_statistics`` (:meth:`train_step`)."""
        check_tokens(self.spec, x, self.name)
        a = torch.from_numpy(x)
        if keep_intermediates and not self.layers[0].tensors:
            a.requires_grad_(True)          # so that Z_1 of a layer without parameters has a gradient
        zs, activations = [], []
        with self.kept_statistics(not update_statistics):
            for index, layer in enumerate(self.layers):
                z, a = layer(a, None if masks is None or index == len(self.layers) - 1 else masks[index])
                zs.append(z)
                activations.append(a)
        if keep_intermediates:
            for tensor in zs + activations:
                tensor.retain_grad()
        return zs, activations

    def _penalty(self, kernels):
        """(λ/2)·Σ‖W_l‖² over ``kernels``."""
        return 0.5 * self.spec.l2 * sum((weight ** 2).sum() for weight in kernels)

    def loss(self, z_out, a_out, targets):
        data_loss = self.loss_fn(z_out if self.loss_input == "logits" else a_out, torch.from_numpy(targets))
        return data_loss + self._penalty(self.kernels) if self.spec.l2 else data_loss

    # -- the interface ----------------------------------------------------------------------

    def trace(self, x, targets, masks=None):
        self.layers.zero_grad(set_to_none=True)
        zs, activations = self.forward(x, masks, keep_intermediates=True)
        loss = self.loss(zs[-1], activations[-1], targets)
        loss.backward()
        out = {"loss": loss.detach().numpy()}
        spec = self.spec
        held = dict(zip(spec.parameter_layers,
                        zip(self.held, self.shapes, spec.gradient_names, strict=True), strict=True))
        for layer, (z, a) in enumerate(zip(zs, activations, strict=True), start=1):
            out[f"Z{layer}"] = z.detach().numpy()
            out[f"A{layer}"] = a.detach().numpy()
            out[f"dZ{layer}"] = z.grad.numpy()
            if a.grad is not None:
                out[f"dA{layer}"] = a.grad.numpy()
            if layer in held:
                out.update(_gradients(*held[layer]))
        self.layers.zero_grad(set_to_none=True)
        return out

    def layer_trace(self, layer, a_prev, upstream, mask=None):
        numbered = self.layers[layer - 1]
        kernels = [numbered.tensors[t.name] for t in self.spec.numbered_layers[layer - 1].tensors if t.l2]
        self.layers.zero_grad(set_to_none=True)
        a_in = torch.from_numpy(np.array(a_prev, copy=True))
        if a_in.is_floating_point():                       # an embedding's token ids have no gradient
            a_in.requires_grad_(True)
        with self.kept_statistics():
            z, a = numbered(a_in, mask)
        z.retain_grad()
        penalized = self.spec.l2 and kernels
        if layer == self.spec.n_layers:
            data_loss = self.loss_fn(z if self.loss_input == "logits" else a, torch.from_numpy(upstream))
            (data_loss + self._penalty(kernels) if penalized else data_loss).backward()
        else:
            outputs, grad_outputs = [a], [torch.from_numpy(upstream)]
            if penalized:
                outputs.append(self._penalty(kernels))
                grad_outputs.append(None)
            torch.autograd.backward(outputs, grad_outputs)
        out = {"Z": z.detach().numpy(), "A": a.detach().numpy(), "dZ": z.grad.numpy(),
               "dA_prev": None if a_in.grad is None else a_in.grad.numpy()}
        if numbered.tensors:
            position = self.spec.parameter_layers.index(layer)
            out.update(_gradients(numbered.tensors, self.shapes[position],
                                  tuple(map(gradient_name, self.spec.parameter_names[position]))))
        self.layers.zero_grad(set_to_none=True)
        return out

    def train_step(self, x, targets, masks=None):
        self.optimizer.zero_grad(set_to_none=True)
        zs, activations = self.forward(x, masks, update_statistics=True)
        loss = self.loss(zs[-1], activations[-1], targets)
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        return float(loss.detach())

    def apply_gradients(self, gradients):
        for (param, shape), gradient in zip(self.canonical(), gradients, strict=True):
            param.grad = to_torch(gradient, shape, self.dtype).reshape(param.shape)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1

    def optimizer_state(self):
        keys = _STATE_KEYS[self.spec.optimizer.name]
        slots = []
        for param, shape in self.canonical():
            state = self.optimizer.state.get(param, {})
            slots.append({ours: state[theirs].detach().numpy().reshape(shape).copy()
                          for ours, theirs in keys.items() if state.get(theirs) is not None})
        return OptimizerState(self.steps, slots)

    def load_tensors(self, tensors) -> None:
        """Copy the canonical named tensors of ``spec.parameter_layers`` into the torch parameters
        (the one hand-off: each holds the file's layout, reshaped at most — a PReLU's α — so only
        names and shapes are asserted)."""
        with torch.no_grad():
            for number, given, held, shapes in zip(self.spec.parameter_layers, tensors, self.held,
                                                   self.shapes, strict=True):
                if sorted(given) != sorted(held):
                    raise BackendError(f"torch backend: layer {number} holds {', '.join(held)}, "
                                       f"got {', '.join(sorted(given))}")
                for name, parameter in held.items():
                    parameter.copy_(to_torch(given[name], shapes[name], self.dtype).reshape(parameter.shape))

    def load_statistics(self, statistics) -> None:
        """Copy (running mean, running variance) of every batch_norm layer into its module's
        buffers (None: torch's initial 0 and 1)."""
        if statistics is None:
            return
        if len(statistics) != len(self.batch_norms):
            raise BackendError(f"torch backend: running statistics for {len(statistics)} layer(s), "
                               f"but the spec has {len(self.batch_norms)} batch_norm layer(s)")
        with torch.no_grad():
            for norm, (mean, var) in zip(self.batch_norms, statistics, strict=True):
                norm.running_mean.copy_(to_torch(mean, (norm.num_features,), self.dtype))
                norm.running_var.copy_(to_torch(var, (norm.num_features,), self.dtype))

    def restore(self, tensors, state):
        keys = _STATE_KEYS[self.spec.optimizer.name]
        self.load_tensors(tensors)
        self.optimizer.state.clear()
        if state.t:
            for (param, shape), slot in zip(self.canonical(), state.slots, strict=True):
                buffers = {theirs: to_torch(slot[ours], shape, self.dtype).reshape(param.shape)
                           for ours, theirs in keys.items() if ours in slot}
                if self.spec.optimizer.name in ("rmsprop", "adam"):
                    buffers["step"] = torch.tensor(float(state.t))
                self.optimizer.state[param] = buffers
        self.steps = state.t

    def tensors(self):
        return [{name: parameter.detach().numpy().reshape(shapes[name]).copy()
                 for name, parameter in held.items()}
                for held, shapes in zip(self.held, self.shapes, strict=True)]

    def statistics(self):
        return [(norm.running_mean.numpy().copy(), norm.running_var.numpy().copy())
                for norm in self.batch_norms]

    def inference_outputs(self, x):
        """(Z_L, A_L) with every module in eval mode: no dropout, BatchNorm by its running statistics."""
        self.layers.eval()
        try:
            with torch.no_grad():
                check_tokens(self.spec, x, self.name)
                a = torch.from_numpy(x)
                for layer in self.layers:
                    z, a = layer(a)
        finally:
            self.layers.train()
        return z.numpy(), a.numpy()
