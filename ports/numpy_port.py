"""Your own NumPy implementation as a side of ``compare``: the engine's layer protocol, per layer.

A ``file.py:factory`` side whose factory returns a :class:`NumpyPort` runs your layers inside the
engine's stack: the engine feeds each of your layers its input, applies the spec's activation
g_l to your Z_l, computes the loss and its dZ_L, and hands your layer its dZ_l on the way back;
the optimizer is the spec's, in the engine. Every other numbered layer (pooling, flatten, the
ones you did not write) is the engine's own. Your layer is any object with

* ``tensors``: a dict {declared name: array} in the canonical layout of its kind (dense: ``W``
  (out, in) and ``b`` (out,); conv2d: ``W`` (O, C, k_h, k_w), ``b``; batch_norm/layer_norm:
  ``gamma``, ``beta``). The harness replaces each array with its own (same values) and updates it
  in place, so read them from this dict on every call;
* ``forward(a_prev, training) -> z``: Z_l from A_{l−1} (m, …) before the activation;
* ``backward(dz) -> (da_prev, {name: gradient})``: called right after ``forward`` on the same
  batch, with dZ_l = ∂L/∂Z_l of the mean batch loss; returns ∂L/∂A_{l−1} and the gradient of
  every tensor (the engine adds λ·W for L2 itself).

``own_weights=True`` compares your layers' own tensors (else they take the other side's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ports.declared import declared_spec
from ports.engine_model import EngineModel
from ports.reading import PortError, Reading
from scratch.initializers import initialize_tensors
from scratch.layers import Dense
from scratch.model import Network


@dataclass
class NumpyPort:
    spec: Any
    layers: dict[int, Any] = field(default_factory=dict)
    own_weights: bool = False


class UserLayer:
    """One of your layers in the engine's stack protocol (``run``, ``differentiate``)."""

    def __init__(self, user, layer_spec, number: int):
        self.user, self.number = user, number
        self.trainable = [tensor.name for tensor in layer_spec.tensors if tensor.trainable]
        self.kernels = [tensor.name for tensor in layer_spec.tensors if tensor.l2]

    def run(self, a_prev: np.ndarray, training: bool = True, update: bool = False):
        return self.user.forward(a_prev, training), None

    def differentiate(self, dz: np.ndarray, a_prev: np.ndarray, cache, l2: float = 0.0,
                      input_gradient: bool = True):
        result = self.user.backward(dz)
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
            raise PortError(f"your layer {self.number}: backward(dz) must return "
                            f"(da_prev, {{name: gradient}}), got {type(result).__name__}")
        da_prev, gradients = result
        missing = [name for name in self.trainable if name not in gradients]
        if missing:
            raise PortError(f"your layer {self.number}: backward returned no gradient for {missing}")
        grads = []
        for name in self.trainable:
            gradient = np.asarray(gradients[name])
            held = self.user.tensors[name]
            if gradient.shape != held.shape:
                raise PortError(f"your layer {self.number}: d{name} has shape {gradient.shape}, "
                                f"{name} is {held.shape}")
            grads.append(gradient + held.dtype.type(l2) * held if l2 and name in self.kernels else gradient)
        return tuple(grads), da_prev


def numpy_side(port: NumpyPort, source: str, float64: bool = False) -> tuple[Reading, EngineModel]:
    """The reading of your implementation and the engine running your layers (see the module);
    ``float64``: the spec's dtype float64, your tensors cast (your layers compute in the arrays'
    dtype)."""
    spec = declared_spec(port.spec, source, "NumpyPort.spec")
    if float64:
        spec = spec.replace(dtype="float64")
    numbered = spec.numbered_layers
    for number, user in port.layers.items():
        if not (isinstance(number, int) and 1 <= number <= len(numbered)):
            raise PortError(f"{source}: NumpyPort.layers: key {number!r} is no numbered layer "
                            f"1..{len(numbered)}")
        for attribute in ("tensors", "forward", "backward"):
            if not hasattr(user, attribute):
                raise PortError(f"{source}: your layer {number} has no {attribute!r} (see ports.numpy_port)")
    tensors = initialize_tensors(spec, np.dtype(spec.dtype))
    for position, number in enumerate(spec.parameter_layers):
        user = port.layers.get(number)
        if user is None:
            continue
        for name, value in tensors[position].items():
            given = user.tensors.get(name)
            if given is None or np.shape(given) != value.shape:
                raise PortError(f"{source}: your layer {number} ({numbered[number - 1].kind}) must hold "
                                f"{name} of shape {value.shape}, got "
                                f"{None if given is None else np.shape(given)}")
            tensors[position][name] = np.asarray(given, dtype=spec.dtype).copy()
    layers = dict(port.layers)

    class YourNetwork(Network):
        dense_class = Dense

        def _build_layers(self):
            built = super()._build_layers()
            held = dict(zip(self.spec.parameter_layers, self.tensors, strict=True))
            for number, user in layers.items():
                user.tensors.update(held.get(number, {}))       # the harness's arrays, same values
                built[number - 1] = UserLayer(user, self.spec.numbered_layers[number - 1], number)
            return built

    network = YourNetwork(spec, tensors=tensors)
    given = {"loss", "optimizer"} | ({"weights"} if port.own_weights else set())
    copied = [{name: value.copy() for name, value in held.items()} for held in network.tensors]
    statistics = [(mean.copy(), variance.copy()) for mean, variance in network.statistics]
    note = f"your layers {sorted(layers)} run in the engine's stack; the rest is the engine's"
    reading = Reading("numpy", source, spec, copied, statistics, given=frozenset(given), notes=(note,))
    return reading, EngineModel(network)
