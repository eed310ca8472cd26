"""The torch module of every layer kind of the spec: the one table :data:`LAYERS`.

Each numbered layer l becomes a :class:`NumberedLayer`: Z_l = op_l(A_{l−1}) through real
``torch.nn`` modules, then A_l = g_l(Z_l) (``nn.Identity`` where the layer has no activation, so
A_l is Z_l itself). Maps stay channels-first (m, C, H, W), torch's own layout, so nothing is
transposed at the boundary. Per kind:

* dense: ``nn.Linear`` (weight (out, in), the file's layout).
* conv2d: ``nn.Conv2d`` (weight OIHW, the file's layout). Padding (top, bottom, left, right)
  comes from the engine's ``padding_amounts`` (TensorFlow's split for "same": the odd row/column
  at the bottom/right). A symmetric split is the conv's own ``padding`` — ``"same"`` at stride 1
  (where torch's split is TensorFlow's), (top, left) otherwise. An asymmetric one — "same" at
  stride 2, or explicit amounts — is what ``nn.Conv2d`` cannot express (its padding is
  symmetric, and ``padding="same"`` exists only at stride 1), so a port puts an
  ``nn.ZeroPad2d((left, right, top, bottom))`` before a ``padding=0`` conv; this twin does the same.
  (At stride 1 an odd total is also padded explicitly: torch would make the same zero-padded copy
  internally, with a warning.)
* max_pool2d / avg_pool2d: ``nn.MaxPool2d`` / ``nn.AvgPool2d`` (no padding).
* global_avg_pool2d: ``nn.AdaptiveAvgPool2d(1)`` then ``nn.Flatten()``: (m, C, H, W) → (m, C).
* flatten: ``nn.Flatten()`` on NCHW (channels_first); channels_last permutes to NHWC
  (``permute(0, 2, 3, 1)``) first, as Keras's Flatten sees the map.
* batch_norm: ``nn.BatchNorm2d`` on maps, ``nn.BatchNorm1d`` on (m, n), with
  ``momentum = 1 − ρ`` (torch's momentum weights the *new* batch) and ``eps = ε``. torch stores
  the unbiased running variance v = σ²·n/(n − 1) only, so ``running_variance="biased"`` is refused.
* layer_norm: ``nn.LayerNorm(n, eps=ε)`` over the features of (m, n).
* dropout: :class:`PlanDropout` inside the layer it follows, the plan's mask D_l on A_l.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from scratch.errors import BackendError
from scratch.layer_specs import activation_of
from scratch.layers.conv import padding_amounts

DTYPES = {"float32": torch.float32, "float64": torch.float64}

# the modules that hold a layer's W_l (weight) and b_l (bias)
PARAMETRIC = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)


def activation(name: str, spec) -> nn.Module:
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


class ChannelsLastFlatten(nn.Module):
    """(m, C, H, W) → (m, H·W·C): the map as NHWC, flattened (Keras's Flatten order)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x.permute(0, 2, 3, 1), start_dim=1)


class NumberedLayer(nn.Module):
    """Numbered layer l: Z_l = ``op``(A_{l−1}), A_l = g_l(Z_l) ⊙ D_l (D_l: the plan's dropout mask,
    None where the layer does not drop). ``parametric`` is the module holding W_l (``weight``)
    and b_l (``bias``), None for a layer without parameters; ``normalization`` the BatchNorm
    module whose running statistics the layer keeps, None otherwise."""

    def __init__(self, op: nn.Module, g: nn.Module):
        super().__init__()
        self.op, self.activation, self.dropout = op, g, PlanDropout()
        found = [module for module in op.modules() if isinstance(module, PARAMETRIC)]
        if len(found) > 1:
            raise BackendError(f"torch backend: one layer holds {len(found)} parameterized modules")
        self.parametric = found[0] if found else None
        is_batch_norm = isinstance(self.parametric, (nn.BatchNorm1d, nn.BatchNorm2d))
        self.normalization = self.parametric if is_batch_norm else None

    def forward(self, a_prev: torch.Tensor, mask: np.ndarray | None = None):
        """(Z_l, A_l)."""
        z = self.op(a_prev)
        return z, self.dropout(self.activation(z), mask)


def _dense(layer, shape, spec, dtype) -> nn.Module:
    return nn.Linear(shape[0], layer.units, dtype=dtype)


def _conv2d(layer, shape, spec, dtype) -> nn.Module:
    top, bottom, left, right = padding_amounts(layer.padding, shape[1:], layer.kernel_size, layer.strides,
                                               layer.dilation)
    settings = dict(kernel_size=layer.kernel_size, stride=layer.strides, dilation=layer.dilation, dtype=dtype)
    if top == bottom and left == right:
        padding = "same" if layer.padding == "same" and layer.strides == 1 else (top, left)
        return nn.Conv2d(shape[0], layer.filters, padding=padding, **settings)
    return nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)),
                         nn.Conv2d(shape[0], layer.filters, padding=0, **settings))


def _pool(pool_class):
    return lambda layer, shape, spec, dtype: pool_class(layer.pool_size, stride=layer.strides)


def _global_avg_pool2d(layer, shape, spec, dtype) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _flatten(layer, shape, spec, dtype) -> nn.Module:
    return nn.Flatten() if layer.order == "channels_first" else ChannelsLastFlatten()


def _batch_norm(layer, shape, spec, dtype) -> nn.Module:
    if layer.running_variance != "unbiased":
        raise BackendError(f"torch backend: nn.BatchNorm stores the unbiased running variance only; "
                           f"running variance {layer.running_variance!r} cannot be expressed "
                           "(use running_variance='unbiased')")
    norm_class = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return norm_class(shape[0], eps=layer.epsilon, momentum=1.0 - layer.decay, dtype=dtype)


def _layer_norm(layer, shape, spec, dtype) -> nn.Module:
    return nn.LayerNorm(shape[0], eps=layer.epsilon, dtype=dtype)


# The one table: each numbered layer kind of the spec → the torch module computing its Z_l from
# A_{l−1} (``shape``: the shape of one sample of A_{l−1}).
LAYERS = {
    "dense": _dense,
    "conv2d": _conv2d,
    "max_pool2d": _pool(nn.MaxPool2d),
    "avg_pool2d": _pool(nn.AvgPool2d),
    "global_avg_pool2d": _global_avg_pool2d,
    "flatten": _flatten,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
}


def build_layers(spec) -> nn.ModuleList:
    """The :class:`NumberedLayer` of every l = 1..L. Dropout has no module of its own here: the
    plan's mask D_l (``scratch.batching``) reaches the layer it follows, as in the engine."""
    dtype = DTYPES[spec.dtype]
    layers = nn.ModuleList()
    for number, layer in enumerate(spec.numbered_layers, start=1):
        if layer.kind not in LAYERS:
            raise BackendError(f"torch backend: no torch module for layer kind {layer.kind!r}")
        op = LAYERS[layer.kind](layer, spec.layer_shapes[number - 1], spec, dtype)
        layers.append(NumberedLayer(op, activation(activation_of(layer), spec)))
    return layers
