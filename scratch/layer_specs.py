"""The frozen layer specs a :class:`scratch.spec.ModelSpec` is a sequence of.

Each spec names one layer of the stack and validates its own fields on construction (one clear
:class:`SpecError` naming the field); ``kind`` is its name in the JSON form
``{"kind": "dense", "units": 64, "activation": "relu"}``. Every backend maps a spec to its
framework's own layer in one table; the NumPy engine maps it to ``scratch.layers``.

* :class:`DenseSpec` ``(units, activation)``: Z_l = A_{l−1}·W_lᵀ + b_l, A_l = g(Z_l).
* :class:`DropoutSpec` ``(rate)``: inverted dropout p = ``rate`` on the output of the layer it
  follows (A_l ← A_l ⊙ D_l, see ``scratch.batching``); it must follow a hidden layer.
* :class:`Conv2DSpec` ``(filters, kernel_size, strides, padding, dilation, activation)``:
  Z_l = conv(A_{l−1}, W_l) + b_l on (C, H, W) maps, A_l = g(Z_l) (``scratch.layers.conv``).
* :class:`MaxPool2DSpec`, :class:`AvgPool2DSpec` ``(pool_size, strides)``,
  :class:`GlobalAvgPool2DSpec` and :class:`FlattenSpec` ``(order)``: no parameters, A_l = Z_l
  (``scratch.layers.pooling``).
* :class:`BatchNormSpec` ``(decay, epsilon, running_variance, activation)`` and
  :class:`LayerNormSpec` ``(epsilon, activation)``: the tensors ``gamma`` and ``beta`` (stored as
  torch's ``weight`` and ``bias``; their gradients trace as dgamma_l, dbeta_l), BatchNorm's running
  ``running_mean`` and ``running_var`` (``scratch.layers.normalization``).
* :class:`PReLUSpec` ``(slopes, alpha_init)``: Z_l = max(0, A_{l−1}) + α_l ⊙ min(0, A_{l−1}), the
  tensor ``alpha`` shared, per channel or per element (``scratch.layers.prelu``).
* :class:`EmbeddingSpec` ``(vocabulary, dimension, init)``: token ids (T,) → rows of E (T, d),
  the first layer only; :class:`SimpleRNNSpec`, :class:`LSTMSpec`, :class:`GRUSpec` ``(units,
  return_sequences, biases or reset_after, init)``: sequences (T, n) → every h_t (T, H) or h_T
  (H,), with backpropagation through time; :class:`SequencePoolSpec` ``(mode)``: (T, H) → (H,),
  the last step or the mean (``scratch.layers.recurrent``).

Every layer but dropout is a *numbered* layer l = 1..L: it has an output Z_l, and A_l = g_l(Z_l)
after its activation (identity where it has none) and the dropout that follows it.
:meth:`output_shape` maps the shape of one sample, (n,), (C, H, W), a sequence (T, n) or token
ids (T,), through the layer and
refuses a shape the layer cannot take; each kind declares its named tensors once
(:class:`Declared`, ``tensors``: :class:`scratch.tensor_specs.TensorSpec`), and
:meth:`parameter_shapes` gives the trainable ones' shapes, in declaration order.

The conventions where the frameworks differ are fields, never guessed: ``padding="same"`` is
TensorFlow's split (the odd row/column at the bottom/right; torch's ``padding="same"`` exists
only at stride 1), Flatten's ``order`` (channels-first as torch's ``nn.Flatten`` on NCHW, or
channels-last as Keras's ``Flatten`` on NHWC), BatchNorm's ``decay`` ρ (the weight of the old
running average: Keras's ``momentum``, torch's ``1 − momentum``), ε, and whether the running
variance is stored unbiased (torch) or biased (Keras).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

from scratch.errors import SpecError
from scratch.layers import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    LayerNorm,
    MaxPool2D,
    PReLU,
)
from scratch.layers.conv import output_size, padding_amounts
from scratch.layers.recurrent import GRU, LSTM, Embedding, SequencePool, SimpleRNN
from scratch.tensor_specs import TensorSpec, gradient_name, per_channel

HIDDEN_ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh")
OUTPUT_ACTIVATIONS = ("identity", "sigmoid", "tanh", "softmax")
ACTIVATIONS = tuple(dict.fromkeys(HIDDEN_ACTIVATIONS + OUTPUT_ACTIVATIONS))


def field_error(field_name: str, message: str) -> SpecError:
    return SpecError(f"spec field '{field_name}': {message}")


def check_choice(field_name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise field_error(field_name, f"unknown value {value!r}; expected one of {', '.join(choices)}")


def check_real(field_name: str, value: Any, low: float, high: float,
               low_open: bool = False, high_open: bool = True) -> int | float:
    """``value`` as a plain ``int`` or ``float`` within the bounds: any real type (``int``,
    ``float``, ``numpy.float32``, ``numpy.int64``, …) but not ``bool`` (nor ``numpy.bool_``, which
    is no ``numbers.Real``), and finite. A NumPy scalar becomes the Python number of the same value
    (``float(numpy.float32(0.1))`` is the float32's exact value), so the spec's JSON can hold it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise field_error(field_name, f"expected a finite number, got {value!r}")
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if not math.isfinite(value):
        raise field_error(field_name, f"expected a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise field_error(field_name, f"{value!r} is outside {left}{low}, {high}{right}")
    return value


def check_int(field_name: str, value: Any, low: int) -> int:
    """``value`` as a plain ``int``: any integral type (``int``, ``numpy.int64``, …) but not
    ``bool``; a float, even 3.0, is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise field_error(field_name, f"expected an integer, got {value!r}")
    if value < low:
        raise field_error(field_name, f"expected an integer >= {low}, got {value}")
    return int(value)


def check_pair(field_name: str, value: Any, low: int) -> tuple[int, int]:
    """An integer or two integers (a JSON list or tuple) >= ``low``, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise field_error(field_name, f"expected an integer or two integers, got {value!r}")
        return (check_int(f"{field_name}[0]", value[0], low), check_int(f"{field_name}[1]", value[1], low))
    size = check_int(field_name, value, low)
    return (size, size)


def _need_maps(kind: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise SpecError(f"a {kind} layer takes (C, H, W) maps, but its input is {shape}"
                        + ("; give the inputs as (C, H, W)" if len(shape) == 1 else ""))
    return shape


def _need_features(kind: str, shape: tuple[int, ...]) -> int:
    if len(shape) != 1:
        raise SpecError(f"a {kind} layer takes flat features (n,), but its input is {shape}; "
                        "put a flatten or global_avg_pool2d layer before it")
    return shape[0]


class Declared:
    """What every layer kind declares once, as class attributes (everything else derives from these):

    * ``kind``: its JSON name;
    * ``tensors``: its named tensors (:class:`scratch.tensor_specs.TensorSpec`), in order — the
      order of the optimizer's slots, of the weight file and of the traces;
    * ``engine_class``: the ``scratch.layers`` class that runs it (built by :meth:`build`);
    * ``reduction``: its parity-floor rule — what long reduction its output sums (None: none), the
      float32 error ``judge.reduction_bounds`` bounds and ``judge.explained`` allows for;
    * ``centers``: True for a layer that subtracts its batch's mean per channel (BatchNorm), which
      cancels the bias of an identity layer right before it.
    """

    kind: ClassVar[str]
    tensors: ClassVar[tuple[TensorSpec, ...]] = ()
    engine_class: ClassVar[type]
    reduction: ClassVar[str | None] = None
    centers: ClassVar[bool] = False

    def parameter_shapes(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
        """The shapes of the trainable tensors, in declaration order, for input ``shape``."""
        return tuple(tensor.shape(self, shape) for tensor in self.tensors if tensor.trainable)

    def build(self, tensors: dict, engine_class: type | None = None):
        """The engine layer of this spec holding ``tensors`` (name → array, every declared tensor);
        ``engine_class`` overrides :attr:`engine_class` (a variant of the engine)."""
        return (engine_class or self.engine_class)()


def _out_in(layer, shape):
    return (layer.units, shape[0])


def _units(layer, shape):
    return (layer.units,)


@dataclass(frozen=True)
class DenseSpec(Declared):
    """A fully connected layer of ``units`` outputs followed by ``activation``. Which
    activations are allowed depends on the layer's place (hidden or output); the model spec
    checks that, since a layer does not know its place."""

    units: int
    activation: str = "relu"
    kind: ClassVar[str] = "dense"
    # W (n_l, n_{l−1}) — torch's ``Linear.weight``, the file's ``out_in`` — and b (n_l,)
    tensors: ClassVar = (TensorSpec("W", "weight", _out_in, "out_in", l2=True, init="scheme"),
                         TensorSpec("b", "bias", _units, "out_in", init="scheme_bias", offset=True))
    engine_class: ClassVar = Dense

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", check_int("units", self.units, 1))
        check_choice("activation", self.activation, ACTIVATIONS)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        _need_features(self.kind, shape)
        return (self.units,)

    def build(self, tensors, engine_class=None):
        return (engine_class or self.engine_class)(tensors["W"], tensors["b"])

    def describe(self) -> str:
        return f"dense({self.units}, {self.activation})"


@dataclass(frozen=True)
class DropoutSpec(Declared):
    """Inverted dropout with drop probability ``rate`` in (0, 1) (leave the layer out for none)."""

    rate: float
    kind: ClassVar[str] = "dropout"
    engine_class: ClassVar = Dropout

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", check_real("rate", self.rate, 0.0, 1.0, low_open=True))

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape

    def describe(self) -> str:
        return f"dropout({self.rate:g})"


PADDINGS = ("valid", "same")


def _oihw(layer, shape):
    return (layer.filters, shape[0], *layer.kernel_size)


def _filters(layer, shape):
    return (layer.filters,)


@dataclass(frozen=True)
class Conv2DSpec(Declared):
    """A 2-D convolution of ``filters`` output channels over (C, H, W) maps, then ``activation``.

    ``kernel_size`` is k or (k_h, k_w); ``strides`` s and ``dilation`` d are integers;
    ``padding`` is "valid", "same" (H_out = ⌈H/s⌉, TensorFlow's split) or explicit
    (top, bottom, left, right). H_out = ⌊(H + top + bottom − d·(k_h − 1) − 1)/s⌋ + 1."""

    filters: int
    kernel_size: Any = 3
    strides: int = 1
    padding: Any = "valid"
    dilation: int = 1
    activation: str = "relu"
    kind: ClassVar[str] = "conv2d"
    # W (O, C, k_h, k_w) — torch's OIHW, the file's layout (Keras's HWIO is its transpose
    # (2, 3, 1, 0)) — and b (O,)
    tensors: ClassVar = (TensorSpec("W", "weight", _oihw, "OIHW", l2=True, init="scheme"),
                         TensorSpec("b", "bias", _filters, "OIHW", init="scheme_bias", offset=True))
    engine_class: ClassVar = Conv2D

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", check_int("filters", self.filters, 1))
        object.__setattr__(self, "kernel_size", check_pair("kernel_size", self.kernel_size, 1))
        object.__setattr__(self, "strides", check_int("strides", self.strides, 1))
        object.__setattr__(self, "dilation", check_int("dilation", self.dilation, 1))
        if isinstance(self.padding, (tuple, list)):
            if len(self.padding) != 4:
                raise field_error("padding", f"expected 'valid', 'same' or (top, bottom, left, right), "
                                             f"got {self.padding!r}")
            object.__setattr__(self, "padding", tuple(check_int(f"padding[{index}]", amount, 0)
                                                      for index, amount in enumerate(self.padding)))
        else:
            check_choice("padding", self.padding, PADDINGS)
        check_choice("activation", self.activation, HIDDEN_ACTIVATIONS)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        channels, height, width = _need_maps(self.kind, shape)
        top, bottom, left, right = padding_amounts(self.padding, (height, width), self.kernel_size,
                                                   self.strides, self.dilation)
        out_h = output_size(height + top + bottom, self.kernel_size[0], self.strides, self.dilation)
        out_w = output_size(width + left + right, self.kernel_size[1], self.strides, self.dilation)
        if out_h < 1 or out_w < 1:
            raise SpecError(f"a conv2d layer with kernel {self.kernel_size}, dilation {self.dilation} "
                            f"and padding {self.padding!r} does not fit its input {shape}")
        return (self.filters, out_h, out_w)

    def build(self, tensors, engine_class=None):
        return (engine_class or self.engine_class)(tensors["W"], tensors["b"], stride=self.strides,
                                                   dilation=self.dilation, padding=self.padding)

    def describe(self) -> str:
        parts = [str(self.filters), "×".join(map(str, self.kernel_size))]
        parts += [f"s{self.strides}"] * (self.strides != 1) + [f"d{self.dilation}"] * (self.dilation != 1)
        padding = (self.padding if isinstance(self.padding, str)
                   else "pad" + ",".join(map(str, self.padding)))
        return f"conv2d({', '.join([*parts, padding, self.activation])})"


@dataclass(frozen=True)
class _PoolSpec(Declared):
    pool_size: Any = 2
    strides: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pool_size", check_pair("pool_size", self.pool_size, 1))
        if self.strides is None:
            if self.pool_size[0] != self.pool_size[1]:
                raise field_error("strides", f"give strides for the non-square pool {self.pool_size}")
            object.__setattr__(self, "strides", self.pool_size[0])
        object.__setattr__(self, "strides", check_int("strides", self.strides, 1))

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        channels, height, width = _need_maps(self.kind, shape)
        if height < self.pool_size[0] or width < self.pool_size[1]:
            raise SpecError(f"a {self.kind} layer's pool {self.pool_size} is larger than its input {shape}")
        return (channels, (height - self.pool_size[0]) // self.strides + 1,
                (width - self.pool_size[1]) // self.strides + 1)

    def build(self, tensors, engine_class=None):
        return (engine_class or self.engine_class)(self.pool_size, self.strides)

    def describe(self) -> str:
        size = "×".join(map(str, self.pool_size)) if self.pool_size[0] != self.pool_size[1] \
            else str(self.pool_size[0])
        stride = f", s{self.strides}" if self.strides != self.pool_size[0] else ""
        return f"{self.kind}({size}{stride})"


@dataclass(frozen=True)
class MaxPool2DSpec(_PoolSpec):
    """Max pooling over ``pool_size`` windows moved by ``strides`` (default: the pool), no
    padding; the gradient goes to the first maximum of each window."""

    kind: ClassVar[str] = "max_pool2d"
    engine_class: ClassVar = MaxPool2D


@dataclass(frozen=True)
class AvgPool2DSpec(_PoolSpec):
    """Average pooling over ``pool_size`` windows moved by ``strides`` (default: the pool)."""

    kind: ClassVar[str] = "avg_pool2d"
    engine_class: ClassVar = AvgPool2D


@dataclass(frozen=True)
class GlobalAvgPool2DSpec(Declared):
    """The mean of each channel's map: (C, H, W) → (C,)."""

    kind: ClassVar[str] = "global_avg_pool2d"
    engine_class: ClassVar = GlobalAveragePooling2D
    reduction: ClassVar = "global average pooling"

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (_need_maps(self.kind, shape)[0],)

    def describe(self) -> str:
        return self.kind


FLATTEN_ORDERS = ("channels_first", "channels_last")


@dataclass(frozen=True)
class FlattenSpec(Declared):
    """(C, H, W) → (C·H·W,) in ``order``: "channels_first" (torch's ``nn.Flatten`` on NCHW) or
    "channels_last" (Keras's ``Flatten`` on NHWC)."""

    order: str = "channels_first"
    kind: ClassVar[str] = "flatten"
    engine_class: ClassVar = Flatten

    def __post_init__(self) -> None:
        check_choice("order", self.order, FLATTEN_ORDERS)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        channels, height, width = _need_maps(self.kind, shape)
        return (channels * height * width,)

    def build(self, tensors, engine_class=None):
        return (engine_class or self.engine_class)(self.order)

    def describe(self) -> str:
        return f"flatten({self.order})"


RUNNING_VARIANCES = ("unbiased", "biased")


def _norm_tensors(layout: str) -> tuple[TensorSpec, TensorSpec]:
    """γ (starts at 1) and β (starts at 0), one per channel or feature (torch's ``weight``, ``bias``)."""
    return (TensorSpec("gamma", "weight", per_channel, layout, init="ones"),
            TensorSpec("beta", "bias", per_channel, layout, init="zeros", offset=True))


@dataclass(frozen=True)
class BatchNormSpec(Declared):
    """Batch normalization over every axis but the channels of (n,) or (C, H, W), then
    ``activation``; training mode normalizes by the batch's statistics and updates the running
    ones, inference mode uses the running ones. Defaults are torch's (``momentum=0.1`` is
    ρ = 0.9, ε 1e-5, unbiased running variance); Keras's are ρ = 0.99, ε 1e-3, biased."""

    decay: float = 0.9
    epsilon: float = 1e-5
    running_variance: str = "unbiased"
    activation: str = "identity"
    kind: ClassVar[str] = "batch_norm"
    tensors: ClassVar = (*_norm_tensors("per_channel"),
                         TensorSpec("running_mean", "running_mean", per_channel, "per_channel",
                                    role="statistic", init="zeros"),
                         TensorSpec("running_var", "running_var", per_channel, "per_channel",
                                    role="statistic", init="ones"))
    engine_class: ClassVar = BatchNorm
    reduction: ClassVar = "BatchNorm statistics"
    centers: ClassVar = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "decay", check_real("decay", self.decay, 0.0, 1.0))
        object.__setattr__(self, "epsilon", check_real("epsilon", self.epsilon, 0.0, 1.0, low_open=True))
        check_choice("running_variance", self.running_variance, RUNNING_VARIANCES)
        check_choice("activation", self.activation, HIDDEN_ACTIVATIONS)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) not in (1, 3):
            raise SpecError(f"a batch_norm layer takes (n,) or (C, H, W), but its input is {shape}")
        return shape

    def build(self, tensors, engine_class=None):
        return (engine_class or self.engine_class)(
            tensors["gamma"], tensors["beta"], tensors["running_mean"], tensors["running_var"],
            decay=self.decay, epsilon=self.epsilon, unbiased=self.running_variance == "unbiased")

    def describe(self) -> str:
        return (f"batch_norm(ρ={self.decay:g}, ε={self.epsilon:g}, {self.running_variance}, "
                f"{self.activation})")


@dataclass(frozen=True)
class LayerNormSpec(Declared):
    """Layer normalization over the features of each sample (n,), then ``activation``;
    torch's ε is 1e-5, Keras's 1e-3."""

    epsilon: float = 1e-5
    activation: str = "identity"
    kind: ClassVar[str] = "layer_norm"
    tensors: ClassVar = _norm_tensors("per_feature")
    engine_class: ClassVar = LayerNorm
    reduction: ClassVar = "LayerNorm statistics"

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", check_real("epsilon", self.epsilon, 0.0, 1.0, low_open=True))
        check_choice("activation", self.activation, HIDDEN_ACTIVATIONS)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (_need_features(self.kind, shape),)

    def build(self, tensors, engine_class=None):
        return (engine_class or self.engine_class)(tensors["gamma"], tensors["beta"], epsilon=self.epsilon)

    def describe(self) -> str:
        return f"layer_norm(ε={self.epsilon:g}, {self.activation})"


SLOPES = ("shared", "per_channel", "per_element")
SLOPES_AT_ZERO = ("alpha", "zero")


def _alpha_shape(layer, shape):
    """α broadcastable against one sample (channels first): (1, …), (C, 1, …) or the sample's shape."""
    if layer.slopes == "per_element":
        return tuple(shape)
    return ((1 if layer.slopes == "shared" else shape[0]),) + (1,) * (len(shape) - 1)


@dataclass(frozen=True)
class PReLUSpec(Declared):
    """Z = max(0, A) + α ⊙ min(0, A) with a learned slope α (``scratch.layers.prelu``), on (n,) or
    (C, H, W). ``slopes``: one ``shared`` slope (torch's ``nn.PReLU()``), one ``per_channel``
    (``nn.PReLU(C)``; Keras's ``PReLU(shared_axes=[1, 2])`` on maps) or one ``per_element``
    (Keras's ``PReLU()`` default); ``alpha_init``: the start slope, torch's 0.25 (Keras's default
    ``alpha_initializer`` is zeros: a port that keeps each framework's default starts from ReLU in
    Keras). ``slope_at_zero``: dZ/dA at A = 0 exactly (the kink), "alpha" (torch's ``nn.PReLU``
    and JAX's ``jnp.where(a > 0, a, α·a)``: α) or "zero" (Keras's ``PReLU``, relu(a) − α·relu(−a):
    0); dα is the same under both (its term dZ ⊙ min(0, A) is 0 at A = 0). It matters only where
    an input is exactly 0 (XOR's (0, 0) sample, a blank background with zero biases). No L2
    (neither framework penalizes α unless asked)."""

    slopes: str = "shared"
    alpha_init: float = 0.25
    slope_at_zero: str = "alpha"
    kind: ClassVar[str] = "prelu"
    tensors: ClassVar = (TensorSpec("alpha", "weight", _alpha_shape, "per_sample_broadcast",
                                    init="field:alpha_init"),)
    engine_class: ClassVar = PReLU

    def __post_init__(self) -> None:
        check_choice("slopes", self.slopes, SLOPES)
        check_choice("slope_at_zero", self.slope_at_zero, SLOPES_AT_ZERO)
        object.__setattr__(self, "alpha_init", check_real("alpha_init", self.alpha_init, -1e3, 1e3))

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) not in (1, 3):
            raise SpecError(f"a prelu layer takes (n,) or (C, H, W), but its input is {shape}")
        return shape

    def build(self, tensors, engine_class=None):
        return (engine_class or self.engine_class)(tensors["alpha"], self.slope_at_zero)

    def describe(self) -> str:
        zero = "" if self.slope_at_zero == "alpha" else ", slope 0 at 0"
        return f"prelu({self.slopes}, α₀={self.alpha_init:g}{zero})"


# -- sequences: embeddings, recurrent layers, sequence pooling (``scratch.layers.recurrent``) -----------

def _need_sequence(kind: str, shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) != 2:
        raise SpecError(f"a {kind} layer takes sequences (T, n), but its input is {shape}"
                        + ("; give the inputs as (T, n), or start with an embedding layer for token ids"
                           if len(shape) == 1 else ""))
    return shape


class FieldTensors:
    """The declared tensors of a kind whose tensor set depends on a field (a recurrent layer's one
    bias or two): read from the class, every tensor the kind can have (what the registry and the
    gradient names list); read from a layer spec, the ones that layer has, in declaration order."""

    def __init__(self, every: tuple[TensorSpec, ...], present):
        self.every, self.present = every, present

    def __get__(self, instance, owner) -> tuple[TensorSpec, ...]:
        if instance is None:
            return self.every
        return tuple(tensor for tensor in self.every if self.present(instance, tensor))


def _vocabulary_dimension(layer, shape):
    return (layer.vocabulary, layer.dimension)


EMBEDDING_INITS = ("torch", "keras")


@dataclass(frozen=True)
class EmbeddingSpec(Declared):
    """Token ids (T,) → their rows of the table E (``vocabulary`` V, ``dimension`` d): (T, d). It
    must be the stack's first layer (the inputs are then integer token ids 0..V−1, checked on every
    forward pass). ``init``: how E starts — ``torch`` N(0, 1) (``nn.Embedding``) or ``keras``
    U(−0.05, 0.05) (``keras.layers.Embedding``'s ``uniform``). No L2."""

    vocabulary: int
    dimension: int
    init: str = "torch"
    kind: ClassVar[str] = "embedding"
    tensors: ClassVar = (TensorSpec("E", "weight", _vocabulary_dimension, "vocabulary_dimension",
                                    init="embedding"),)
    engine_class: ClassVar = Embedding

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocabulary", check_int("vocabulary", self.vocabulary, 1))
        object.__setattr__(self, "dimension", check_int("dimension", self.dimension, 1))
        check_choice("init", self.init, EMBEDDING_INITS)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) != 1:
            raise SpecError(f"an embedding layer takes token ids (T,), but its input is {shape}")
        return (shape[0], self.dimension)

    def build(self, tensors, engine_class=None):
        return (engine_class or self.engine_class)(tensors["E"])

    def describe(self) -> str:
        init = "" if self.init == "torch" else ", keras init"
        return f"embedding({self.vocabulary}→{self.dimension}{init})"


BIASES = ("two", "one")
RECURRENT_INITS = ("torch", "keras")


def _gate_rows(layer, shape):
    return (layer.gates * layer.units,)


def _gates_in(layer, shape):
    return (layer.gates * layer.units, shape[1])


def _gates_units(layer, shape):
    return (layer.gates * layer.units, layer.units)


def _recurrent_tensors(layout: str) -> FieldTensors:
    """W_ih (G·H, n), W_hh (G·H, H) — both kernels L2 penalizes, as the engine's BPTT adds λ·W to
    each — then b_ih and b_hh (G·H,) each for a layer with two biases, or one ``bias`` (G·H,). The
    biases feed the gates inside the cell, not the layer's output: no ``offset`` a BatchNorm after
    the layer could cancel."""
    every = (TensorSpec("weight_ih", "weight_ih", _gates_in, layout, l2=True, init="recurrent"),
             TensorSpec("weight_hh", "weight_hh", _gates_units, layout, l2=True, init="recurrent"),
             TensorSpec("bias_ih", "bias_ih", _gate_rows, layout, init="recurrent"),
             TensorSpec("bias_hh", "bias_hh", _gate_rows, layout, init="recurrent"),
             TensorSpec("bias", "bias", _gate_rows, layout, init="recurrent"))

    def present(layer, tensor) -> bool:
        if tensor.name.startswith("weight"):
            return True
        return (tensor.name == "bias") == (layer.biases == "one")

    return FieldTensors(every, present)


class _RecurrentSpec(Declared):
    """What SimpleRNN, LSTM and GRU specs share: (T, n) → every h_t (T, H) or the last h_T (H,)
    (``return_sequences``); torch's layout of the tensors (gate blocks in torch's order); the
    initializer ``init``, ``torch`` (every tensor U(±1/√H), ``nn.RNN/LSTM/GRU``) or ``keras``
    (W_ih Glorot-uniform, W_hh orthogonal, biases 0 with the LSTM's forget block at 1,
    ``unit_forget_bias``): ``scratch.initializers.sequence_initial``."""

    gates: ClassVar[int] = 1
    tensors = _recurrent_tensors("torch_gates")     # the one declaration of all three kinds' tensors

    def _check_recurrent(self) -> None:
        object.__setattr__(self, "units", check_int("units", self.units, 1))
        if not isinstance(self.return_sequences, bool):
            raise field_error("return_sequences", f"expected true or false, got {self.return_sequences!r}")
        check_choice("init", self.init, RECURRENT_INITS)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        steps, _ = _need_sequence(self.kind, shape)
        return (steps, self.units) if self.return_sequences else (self.units,)

    def _label(self, *parts: str) -> str:
        parts = [str(self.units), *parts] + ["sequences" if self.return_sequences else "last state"]
        if "biases" in self.__dataclass_fields__:                 # a GRU's follow from reset_after
            parts += ["two biases" if self.biases == "two" else "one bias"]
        parts += ["keras init"] * (self.init == "keras")
        return f"{self.kind}({', '.join(parts)})"


@dataclass(frozen=True)
class SimpleRNNSpec(_RecurrentSpec):
    """h_t = g(X_t·W_ihᵀ + h_{t−1}·W_hhᵀ + b), g = ``nonlinearity`` (tanh or relu; torch's
    ``nn.RNN``, Keras's ``SimpleRNN``); ``biases`` "two" (torch's b_ih + b_hh) or "one" (Keras's)."""

    units: int
    nonlinearity: str = "tanh"
    return_sequences: bool = True
    biases: str = "two"
    init: str = "torch"
    kind: ClassVar[str] = "simple_rnn"
    engine_class: ClassVar = SimpleRNN

    def __post_init__(self) -> None:
        self._check_recurrent()
        check_choice("nonlinearity", self.nonlinearity, ("tanh", "relu"))
        check_choice("biases", self.biases, BIASES)

    def build(self, tensors, engine_class=None):
        return (engine_class or self.engine_class)(
            tensors["weight_ih"], tensors["weight_hh"], *_bias_pair(tensors),
            activation=self.nonlinearity, return_sequences=self.return_sequences)

    def describe(self) -> str:
        return self._label(self.nonlinearity)


def _bias_pair(tensors: dict) -> tuple:
    """(b_ih, b_hh) of a layer with two biases, (b, None) of one with one."""
    return (tensors["bias"], None) if "bias" in tensors else (tensors["bias_ih"], tensors["bias_hh"])


@dataclass(frozen=True)
class LSTMSpec(_RecurrentSpec):
    """torch's ``nn.LSTM`` and Keras's ``LSTM`` (gates i, f, g, o in both); ``biases`` "two"
    (torch: b_ih + b_hh, each trained with the full gradient) or "one" (Keras)."""

    units: int
    return_sequences: bool = True
    biases: str = "two"
    init: str = "torch"
    kind: ClassVar[str] = "lstm"
    gates: ClassVar[int] = 4
    engine_class: ClassVar = LSTM

    def __post_init__(self) -> None:
        self._check_recurrent()
        check_choice("biases", self.biases, BIASES)

    def build(self, tensors, engine_class=None):
        return (engine_class or self.engine_class)(tensors["weight_ih"], tensors["weight_hh"],
                                                   *_bias_pair(tensors),
                                                   return_sequences=self.return_sequences)

    def describe(self) -> str:
        return self._label()


@dataclass(frozen=True)
class GRUSpec(_RecurrentSpec):
    """torch's ``nn.GRU`` and Keras's ``GRU`` (gates r, z, n in torch's order). ``reset_after``:
    True (torch's form, Keras's default; two biases, r multiplies h·W_hnᵀ + b_hn) or False (the
    paper's form, Keras's ``reset_after=False``; one bias, r multiplies h before W_hn; torch has
    no such layer). The biases follow from it."""

    units: int
    reset_after: bool = True
    return_sequences: bool = True
    init: str = "torch"
    kind: ClassVar[str] = "gru"
    gates: ClassVar[int] = 3
    engine_class: ClassVar = GRU

    def __post_init__(self) -> None:
        self._check_recurrent()
        if not isinstance(self.reset_after, bool):
            raise field_error("reset_after", f"expected true or false, got {self.reset_after!r}")

    @property
    def biases(self) -> str:
        return "two" if self.reset_after else "one"

    def build(self, tensors, engine_class=None):
        return (engine_class or self.engine_class)(tensors["weight_ih"], tensors["weight_hh"],
                                                   *_bias_pair(tensors), reset_after=self.reset_after,
                                                   return_sequences=self.return_sequences)

    def describe(self) -> str:
        return self._label("reset after" if self.reset_after else "reset before")


SEQUENCE_POOLS = ("last", "mean")


@dataclass(frozen=True)
class SequencePoolSpec(Declared):
    """(T, H) → (H,): the last step (``mode="last"``, what a recurrent layer with
    ``return_sequences=False`` returns) or the mean over the T steps (``"mean"``, Keras's
    ``GlobalAveragePooling1D``)."""

    mode: str = "last"
    kind: ClassVar[str] = "sequence_pool"
    engine_class: ClassVar = SequencePool

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, SEQUENCE_POOLS)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (_need_sequence(self.kind, shape)[1],)

    def build(self, tensors, engine_class=None):
        return (engine_class or self.engine_class)(self.mode)

    def describe(self) -> str:
        return f"sequence_pool({self.mode})"


LayerSpec = (DenseSpec | DropoutSpec | Conv2DSpec | MaxPool2DSpec | AvgPool2DSpec | GlobalAvgPool2DSpec
             | FlattenSpec | BatchNormSpec | LayerNormSpec | PReLUSpec | EmbeddingSpec | SimpleRNNSpec
             | LSTMSpec | GRUSpec | SequencePoolSpec)
LAYER_SPECS: dict[str, type] = {spec.kind: spec for spec in (
    DenseSpec, DropoutSpec, Conv2DSpec, MaxPool2DSpec, AvgPool2DSpec, GlobalAvgPool2DSpec, FlattenSpec,
    BatchNormSpec, LayerNormSpec, PReLUSpec, EmbeddingSpec, SimpleRNNSpec, LSTMSpec, GRUSpec,
    SequencePoolSpec)}
"""Every layer kind: the one registry the rest derives from (a new kind is one class added here)."""
GRADIENTS = tuple(dict.fromkeys(gradient_name(tensor.name) for spec in LAYER_SPECS.values()
                                for tensor in spec.tensors if tensor.trainable))
"""The stem d<name> of every trainable tensor's gradient, in registry and declaration order: dW,
db, dgamma, dbeta, dalpha, dE, dweight_ih, … (a trace numbers them by layer,
``scratch.tensor_specs.gradient_name``)."""
RECURRENT = tuple(kind for kind, spec in LAYER_SPECS.items() if issubclass(spec, _RecurrentSpec))
"""The recurrent kinds (simple_rnn, lstm, gru): each multiplies both of its kernels at every time step."""
REDUCING = tuple(kind for kind, spec in LAYER_SPECS.items() if spec.reduction)
"""The kinds whose output sums a long reduction (their parity-floor rule, ``judge.reduction_bounds``)."""


def describe_layer(layer: LayerSpec) -> str:
    """One short label, e.g. ``conv2d(6, 5×5, s2, same, relu)``, ``max_pool2d(2)``, ``dense(10, softmax)``."""
    return layer.describe()


def activation_of(layer: LayerSpec) -> str:
    """g_l of a numbered layer: its ``activation`` field, identity for a layer without one."""
    return getattr(layer, "activation", "identity")


def layer_to_dict(layer: LayerSpec) -> dict[str, Any]:
    """The JSON object of ``layer`` (pairs and paddings as lists)."""
    values = {name: list(value) if isinstance(value, tuple) else value
              for name, value in dataclasses.asdict(layer).items()}
    return {"kind": layer.kind, **values}


def layer_from_dict(data: Any, where: str) -> LayerSpec:
    """The layer spec of a JSON object ``{"kind": …, fields…}``; ``where`` names it in errors."""
    if not isinstance(data, dict):
        raise SpecError(f"spec field '{where}': expected a JSON object, got {data!r}")
    values = dict(data)
    kind = values.pop("kind", None)
    if kind not in LAYER_SPECS:
        raise SpecError(f"spec field '{where}.kind': unknown layer kind {kind!r}; "
                        f"expected one of {', '.join(LAYER_SPECS)}")
    layer_class = LAYER_SPECS[kind]
    known = [f.name for f in dataclasses.fields(layer_class)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SpecError(f"spec field '{where}.{unknown[0]}': unknown field of a {kind} layer; "
                        f"known fields are {', '.join(known)}")
    try:
        return layer_class(**values)
    except TypeError as error:                                 # a required field is missing
        raise SpecError(f"spec field '{where}': {kind} layer: {error}") from None
    except SpecError as error:
        raise SpecError(str(error).replace("spec field '", f"spec field '{where}.", 1)) from None
