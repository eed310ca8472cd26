"""The :class:`ports.reading.RealModel` of a torch side: the user's own ``nn.Module``, loss and
optimizer, run as they are.

NumPy in, NumPy out: x as (m, n) or NCHW (m, C, H, W), torch's own layout (cast to the module's
dtype); parameters and gradients in the canonical layout, which torch's modules hold as they are
(a PReLU's α reshaped at most), in the order of ``spec.parameter_names``.

* dropout modules are put in eval mode in every method (their masks are random), the rest of the
  module in training mode (or eval mode for ``outputs(x, training=False)``);
* ``outputs(x, training=True)`` and ``loss_and_gradients`` run BatchNorm on the batch's
  statistics with its running buffers (and ``num_batches_tracked``) swapped for clones and put back
  afterwards; ``step`` lets them move, as the user's training loop would;
* A_L is the module's output after the spec's output activation: where the module returns logits
  (read for ``CrossEntropyLoss`` / ``BCEWithLogitsLoss``) :meth:`outputs` applies the softmax /
  sigmoid itself, where it returns log-probabilities (``LogSoftmax``) their exp; a module that ends
  in a softmax fed to ``CrossEntropyLoss`` (a double softmax, :mod:`ports.torch_training`) gives
  its own softmax output, and its loss and gradients are the user's (softmax applied twice);
* the loss is the user's loss module on the module's output (``CrossEntropyLoss`` gets the
  one-hot targets as class probabilities, which it accepts; ``NLLLoss`` their class indices);
  without one, the spec's loss as the torch twin computes it (``twins.torch_backend``: CE or BCE
  of the logits, MSE of A_L; CE of the log-probabilities, BCE of the sigmoid's probabilities
  where the module applies its output activation itself);
* the optimizer is the user's callable, built once on ``module.parameters()``; without one the
  spec's, built as the torch twin builds it on the parameters in canonical order.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch
from torch import nn

from ports.reading import PortError
from scratch.errors import BackendError
from twins.torch_backend import _LOSSES, _optimizer, to_torch
from twins.torch_layers import DTYPES, activation, running_statistics_kept


class TorchModel:
    """The user's ``module`` (see the module docstring). ``held``: per layer of
    ``spec.parameter_layers``, {declared name: (``nn.Parameter``, canonical shape)}; ``norms``:
    the BatchNorm modules of ``spec.statistics_layers``; ``returns``: what the module's output is
    (``logits``, ``activation`` or ``log_softmax``, :class:`ports.torch_training.LossRead`);
    ``loss``: the user's loss module or None; ``optimizer``: the user's callable or None."""

    def __init__(self, module: nn.Module, spec, held: list[dict], norms: list[nn.Module], returns: str,
                 loss: nn.Module | None = None, optimizer=None):
        self.module, self.spec, self.held, self.norms, self.returns = module, spec, held, norms, returns
        self.user_loss, self._make_optimizer = loss, optimizer
        self.dtype = DTYPES[spec.dtype]
        subs = list(module.modules())
        self.dropouts = [sub for sub in subs if isinstance(sub, nn.modules.dropout._DropoutNd)]
        self.batch_norms = [sub for sub in subs if isinstance(sub, nn.modules.batchnorm._BatchNorm)]

    def use_spec(self, spec) -> None:
        """Run with ``spec``'s loss and optimizer where the user gave none (``ports.compare.fill``
        takes them from the other side)."""
        self.spec = spec
        self.__dict__.pop("optimizer", None)

    @functools.cached_property
    def optimizer(self) -> torch.optim.Optimizer:
        """The user's optimizer on ``module.parameters()`` (else the spec's), built once."""
        if self._make_optimizer is not None:
            return self._make_optimizer(list(self.module.parameters()))
        try:
            return _optimizer(self.spec, [parameter for layer in self.held
                                          for parameter, _ in layer.values()])
        except BackendError as error:
            raise PortError(str(error)) from None

    # -- modes ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _mode(self, training: bool, keep_statistics: bool = True):
        """The module in training (or eval) mode with its dropouts off; with ``keep_statistics``,
        BatchNorm's running buffers swapped for clones and the originals put back after."""
        flags = {sub: sub.training for sub in self.module.modules()}
        self.module.train(training)
        for sub in self.dropouts:
            sub.eval()
        try:
            with running_statistics_kept(self.batch_norms if keep_statistics else []):
                yield
        finally:
            for sub, flag in flags.items():
                sub.training = flag

    def _input(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(x, dtype=self.spec.dtype, copy=True))

    def _a_out(self, out: torch.Tensor) -> torch.Tensor:
        """A_L of the module's output (the spec's output activation where it returns logits)."""
        if self.returns == "logits":
            return activation(self.spec.output_activation, self.spec)(out)
        return out.exp() if self.returns == "log_softmax" else out

    def _loss(self, out: torch.Tensor, targets: np.ndarray) -> torch.Tensor:
        y = self._input(targets)
        if self.user_loss is not None:
            return self.user_loss(out, y.argmax(dim=1) if isinstance(self.user_loss, nn.NLLLoss) else y)
        loss_class, reads = _LOSSES[self.spec.loss]
        if reads == "logits" and self.returns != "logits":
            if self.spec.loss == "bce":
                return nn.BCELoss()(out, y)
            return loss_class()(out if self.returns == "log_softmax" else out.log(), y)
        return loss_class()(out if reads == "logits" else self._a_out(out), y)

    # -- the RealModel protocol ---------------------------------------------------------------

    def load(self, tensors: list[dict[str, np.ndarray]], statistics=None) -> None:
        """Copy canonical ``tensors`` (and BatchNorm's ``statistics``, None: left as they are) into
        the module's parameters and buffers, names and shapes asserted. The optimizer starts
        afresh (its state belongs to the parameters it stepped)."""
        self.__dict__.pop("optimizer", None)
        if len(tensors) != len(self.held):
            raise PortError(f"torch model: tensors for {len(tensors)} layers, it has {len(self.held)}")
        with torch.no_grad():
            for number, given, held in zip(self.spec.parameter_layers, tensors, self.held, strict=True):
                if sorted(given) != sorted(held):
                    raise PortError(f"torch model: layer {number} holds {', '.join(held)}, got "
                                    f"{', '.join(sorted(given))}")
                for name, (parameter, shape) in held.items():
                    parameter.copy_(self._tensor(given[name], shape, f"layer {number} {name}")
                                    .reshape(parameter.shape))
            if statistics is None:
                return
            if len(statistics) != len(self.norms):
                raise PortError(f"torch model: running statistics for {len(statistics)} layer(s), it has "
                                f"{len(self.norms)} BatchNorm layer(s)")
            for number, norm, (mean, var) in zip(self.spec.statistics_layers, self.norms, statistics,
                                                 strict=True):
                norm.running_mean.copy_(self._tensor(mean, (norm.num_features,), f"layer {number} mean"))
                norm.running_var.copy_(self._tensor(var, (norm.num_features,), f"layer {number} variance"))

    def _tensor(self, array: np.ndarray, shape: tuple[int, ...], where: str) -> torch.Tensor:
        try:
            return to_torch(np.asarray(array), tuple(shape), self.dtype)
        except BackendError as error:
            raise PortError(f"torch model: {where}: {str(error).removeprefix('torch backend: ')}") from None

    def outputs(self, x: np.ndarray, training: bool) -> np.ndarray:
        with self._mode(training), torch.no_grad():
            return self._a_out(self.module(self._input(x))).numpy().copy()

    BCE_GRADIENT_FLOOR = 1e-12
    """torch's BCELoss backward divides by max(p·(1 − p), 1e-12); its forward clamps each log at −100."""

    def clipped_outputs(self, x: np.ndarray) -> str | None:
        """Where the user's ``BCELoss`` clips on ``x`` (training mode, as the loss sees it): the
        sentence, or None (another loss, or no output saturates that far)."""
        if type(self.user_loss) is not nn.BCELoss:
            return None
        p = self.outputs(x, training=True)
        clipped = int(np.count_nonzero(p * (1 - p) < self.BCE_GRADIENT_FLOOR))
        if not clipped:
            return None
        return (f"— {clipped} of {p.size} outputs saturate so far (p·(1 − p) < 1e-12, |Z_L| ≳ 27.6) that "
                "BCELoss's backward divides by 1e-12 instead and its log is clamped at −100: the loss "
                "and gradients there are the clamp's, not BCE's")

    def loss_and_gradients(self, x: np.ndarray, targets: np.ndarray) -> tuple[float, list[np.ndarray]]:
        self.module.zero_grad(set_to_none=True)
        with self._mode(True):
            loss = self._loss(self.module(self._input(x)), targets)
            loss.backward()
        gradients = [np.zeros(shape, self.spec.dtype) if parameter.grad is None
                     else parameter.grad.reshape(shape).numpy().copy()
                     for layer in self.held for parameter, shape in layer.values()]
        self.module.zero_grad(set_to_none=True)
        return float(loss.detach()), gradients

    def step(self, x: np.ndarray, targets: np.ndarray) -> tuple[list[dict[str, np.ndarray]], list]:
        optimizer = self.optimizer
        optimizer.zero_grad(set_to_none=True)
        with self._mode(True, keep_statistics=False):
            self._loss(self.module(self._input(x)), targets).backward()
            optimizer.step()
        return self.tensors(), self.statistics()

    def tensors(self) -> list[dict[str, np.ndarray]]:
        return [{name: parameter.detach().reshape(shape).numpy().copy()
                 for name, (parameter, shape) in layer.items()}
                for layer in self.held]

    def statistics(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(norm.running_mean.numpy().copy(), norm.running_var.numpy().copy()) for norm in self.norms]
