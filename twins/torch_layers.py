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
* prelu: ``nn.PReLU(num_parameters, init=α₀)`` — torch's slope is one shared value or one per
  channel (dim 1: the C of (m, C, H, W), the n of (m, n)), so a per-element α on maps is refused;
  on flat features one per element is one per channel. Its weight (1,) or (C,) is the canonical α
  reshaped ((1, 1, 1) or (C, 1, 1) on maps). Its gradient at z = 0 is α (``z > 0 ? dz : α·dz``),
  so ``slope_at_zero="zero"`` (Keras's convention) is refused.
* embedding: ``nn.Embedding(V, d)`` (weight (V, d), the file's E); its inputs are int64 token ids.
* simple_rnn / lstm / gru: ``nn.RNN`` (``nonlinearity``) / ``nn.LSTM`` / ``nn.GRU``, one layer,
  ``batch_first=True``, from a zero state, its ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
  ``bias_hh_l0`` the file's tensors as they are (``twins.recurrent_layouts``: torch's layout is the
  file's); the output every h_t (m, T, H) or h_T (``output[:, -1]``). torch's layers always add two
  biases: ``biases="one"`` (Keras's) is the port's usual answer, ``bias_ih_l0`` holding the one
  bias and ``bias_hh_l0`` set to 0 and frozen (``requires_grad_(False)``, outside the optimizer).
  Its GRU is the reset-after form only (``reset_after=False`` is refused).
* sequence_pool: the last step ``x[:, -1]`` or ``x.mean(dim=1)``.
* dropout: :class:`PlanDropout` inside the layer it follows, the plan's mask D_l on A_l.

Each row returns a :class:`Row`: the module and its named variables ({declared name: the
``nn.Parameter``}), which hold the canonical layout as they are (a reshape at most), and the
BatchNorm module whose running statistics the layer keeps.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from scratch.errors import BackendError
from scratch.layer_specs import activation_of
from scratch.layers.conv import padding_amounts

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class Row(NamedTuple):
    """What a kind's row builds: the module computing Z_l, its named variables in declaration
    order (torch holds each in the canonical layout, up to a reshape), and the BatchNorm module
    whose running statistics the layer keeps (None otherwise)."""

    op: nn.Module
    tensors: dict = {}
    normalization: nn.Module | None = None


def activation(name: str, spec) -> nn.Module:
    return {
        "identity": nn.Identity,
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(spec.leaky_relu_slope),
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
        "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
        "softmax": lambda: nn.Softmax(dim=1),
    }[name]()


@contextlib.contextmanager
def running_statistics_kept(batch_norms):
    """Run the enclosed forward pass with the running statistics of ``batch_norms`` left as they
    were: each module's buffers are swapped for clones (which a training-mode pass moves, and
    autograd may save) and the originals put back."""
    names = ("running_mean", "running_var", "num_batches_tracked")
    originals = [{name: getattr(norm, name) for name in names} for norm in batch_norms]
    for norm, buffers in zip(batch_norms, originals, strict=True):
        for name, buffer in buffers.items():
            setattr(norm, name, buffer.clone())
    try:
        yield
    finally:
        for norm, buffers in zip(batch_norms, originals, strict=True):
            for name, buffer in buffers.items():
                setattr(norm, name, buffer)


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
    None where the layer does not drop). ``tensors`` {declared name: ``nn.Parameter``} of the
    row (empty for a layer without parameters); ``normalization`` the BatchNorm module whose
    running statistics the layer keeps, None otherwise."""

    def __init__(self, row: Row, g: nn.Module):
        super().__init__()
        self.op, self.activation, self.dropout = row.op, g, PlanDropout()
        self.tensors, self.normalization = dict(row.tensors), row.normalization

    def forward(self, a_prev: torch.Tensor, mask: np.ndarray | None = None):
        """(Z_l, A_l)."""
        z = self.op(a_prev)
        return z, self.dropout(self.activation(z), mask)


def _dense(layer, shape, spec, dtype) -> Row:
    linear = nn.Linear(shape[0], layer.units, dtype=dtype)
    return Row(linear, {"W": linear.weight, "b": linear.bias})


def _conv2d(layer, shape, spec, dtype) -> Row:
    top, bottom, left, right = padding_amounts(layer.padding, shape[1:], layer.kernel_size, layer.strides,
                                               layer.dilation)
    settings = dict(kernel_size=layer.kernel_size, stride=layer.strides, dilation=layer.dilation, dtype=dtype)
    if top == bottom and left == right:
        padding = "same" if layer.padding == "same" and layer.strides == 1 else (top, left)
        conv = op = nn.Conv2d(shape[0], layer.filters, padding=padding, **settings)
    else:
        conv = nn.Conv2d(shape[0], layer.filters, padding=0, **settings)
        op = nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), conv)
    return Row(op, {"W": conv.weight, "b": conv.bias})


def _pool(pool_class):
    return lambda layer, shape, spec, dtype: Row(pool_class(layer.pool_size, stride=layer.strides))


def _global_avg_pool2d(layer, shape, spec, dtype) -> Row:
    return Row(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))


def _flatten(layer, shape, spec, dtype) -> Row:
    return Row(nn.Flatten() if layer.order == "channels_first" else ChannelsLastFlatten())


def _batch_norm(layer, shape, spec, dtype) -> nn.Module:
    if layer.running_variance != "unbiased":
        raise BackendError(f"torch backend: nn.BatchNorm stores the unbiased running variance only; "
                           f"running variance {layer.running_variance!r} cannot be expressed "
                           "(use running_variance='unbiased')")
    norm_class = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    norm = norm_class(shape[0], eps=layer.epsilon, momentum=1.0 - layer.decay, dtype=dtype)
    return Row(norm, {"gamma": norm.weight, "beta": norm.bias}, norm)


def _layer_norm(layer, shape, spec, dtype) -> Row:
    norm = nn.LayerNorm(shape[0], eps=layer.epsilon, dtype=dtype)
    return Row(norm, {"gamma": norm.weight, "beta": norm.bias})


def _prelu(layer, shape, spec, dtype) -> Row:
    if layer.slopes == "per_element" and len(shape) == 3:
        raise BackendError(
            f"torch backend: prelu slopes='per_element' on {shape} maps: nn.PReLU holds one shared "
            "slope or one per channel (dim 1), never one per element of a (C, H, W) map; use "
            "slopes='per_channel' or 'shared' (on flat features, per element is per channel)")
    if layer.slope_at_zero != "alpha":
        raise BackendError(
            f"torch backend: prelu slope_at_zero={layer.slope_at_zero!r}: nn.PReLU differentiates to "
            "α at z = 0 (its backward is z > 0 ? dz : α·dz), never 0; use slope_at_zero='alpha'")
    count = 1 if layer.slopes == "shared" else shape[0]
    prelu = nn.PReLU(num_parameters=count, init=layer.alpha_init, dtype=dtype)
    return Row(prelu, {"alpha": prelu.weight})


def _embedding(layer, shape, spec, dtype) -> Row:
    embedding = nn.Embedding(layer.vocabulary, layer.dimension, dtype=dtype)
    return Row(embedding, {"E": embedding.weight})


class Sequence(nn.Module):
    """A one-layer ``nn.RNN/LSTM/GRU`` (batch first) from a zero state: every h_t (m, T, H), or
    the last h_T (m, H)."""

    def __init__(self, recurrent: nn.Module, return_sequences: bool):
        super().__init__()
        self.recurrent, self.return_sequences = recurrent, return_sequences

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.recurrent(x)
        return states if self.return_sequences else states[:, -1]


def _recurrent(layer, shape, spec, dtype) -> Row:
    if layer.kind == "gru" and not layer.reset_after:
        raise BackendError(
            "torch backend: gru reset_after=False (the paper's form, r applied to h before W_hn): "
            "nn.GRU applies r after the recurrent product (r ⊙ (h·W_hnᵀ + b_hn)) only; use "
            "reset_after=True")
    settings = dict(batch_first=True, dtype=dtype)
    if layer.kind == "simple_rnn":
        settings["nonlinearity"] = layer.nonlinearity
    recurrent = getattr(nn, _TORCH_RNN[layer.kind])(shape[1], layer.units, **settings)
    tensors = {name: getattr(recurrent, f"{name}_l0")
               for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    if layer.biases == "one":                 # Keras's one bias: b_ih holds it, b_hh is 0 and frozen
        with torch.no_grad():
            tensors.pop("bias_hh").zero_()
        recurrent.bias_hh_l0.requires_grad_(False)
        tensors = {"weight_ih": tensors["weight_ih"], "weight_hh": tensors["weight_hh"],
                   "bias": tensors.pop("bias_ih")}
    return Row(Sequence(recurrent, layer.return_sequences), tensors)


_TORCH_RNN = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


class SequencePool(nn.Module):
    """(m, T, H) → (m, H): the last step or the mean over time."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1] if self.mode == "last" else x.mean(dim=1)


# The one table: each numbered layer kind of the spec → its :class:`Row` (the torch module computing
# Z_l from A_{l−1} and its named variables; ``shape``: the shape of one sample of A_{l−1}).
LAYERS = {
    "dense": _dense,
    "conv2d": _conv2d,
    "max_pool2d": _pool(nn.MaxPool2d),
    "avg_pool2d": _pool(nn.AvgPool2d),
    "global_avg_pool2d": _global_avg_pool2d,
    "flatten": _flatten,
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "prelu": _prelu,
    "embedding": _embedding,
    "simple_rnn": _recurrent,
    "lstm": _recurrent,
    "gru": _recurrent,
    "sequence_pool": lambda layer, shape, spec, dtype: Row(SequencePool(layer.mode)),
}


def build_layers(spec) -> nn.ModuleList:
    """The :class:`NumberedLayer` of every l = 1..L. Dropout has no module of its own here: the
    plan's mask D_l (``scratch.batching``) reaches the layer it follows, as in the engine."""
    dtype = DTYPES[spec.dtype]
    layers = nn.ModuleList()
    for number, layer in enumerate(spec.numbered_layers, start=1):
        if layer.kind not in LAYERS:
            raise BackendError(f"torch backend: no torch module for layer kind {layer.kind!r}")
        row = LAYERS[layer.kind](layer, spec.layer_shapes[number - 1], spec, dtype)
        layers.append(NumberedLayer(row, activation(activation_of(layer), spec)))
    return layers
