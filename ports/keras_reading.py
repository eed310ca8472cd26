"""A Keras model's layers read into the spec's layer list: the inverse of the Keras twin's table
(:data:`twins.keras_layers.LAYERS`), with the same layout conversions
(:class:`twins.keras_layers.Parameter`, ``DENSE_AXES``, ``CONV_AXES``, ``PRELU_AXES``).

The model is a ``keras.Sequential`` or a functional model whose layers form one straight chain
(one input, one output, every layer fed by the one before it); :func:`chain` walks it in order,
the ``InputLayer`` left out. :data:`READERS` maps each Keras class to the spec layer it is:

* ``Dense`` → dense (W = kernelᵀ), ``Conv2D`` (channels_last, groups 1, padding valid/same, square
  strides and dilation) → conv2d (W = the HWIO kernel transposed (3, 2, 0, 1));
* ``MaxPooling2D``/``AveragePooling2D`` (padding valid) → max_pool2d/avg_pool2d,
  ``GlobalAveragePooling2D`` (keepdims False) → global_avg_pool2d, ``Flatten`` → flatten in
  channels_last order (on flat features it is the identity and is left out), and
  ``Permute((3, 1, 2))`` directly before a ``Flatten`` → flatten in channels_first order (how a
  Keras port of a torch model keeps torch's order; any other Permute is refused);
* ``BatchNormalization`` (channel axis, center and scale) → batch_norm with ρ = ``momentum`` (the
  weight of the old running average in both), ε, the biased running variance Keras stores;
  ``LayerNormalization`` (last axis) → layer_norm; ``PReLU`` → prelu with Keras's slope 0 at z = 0
  (``shared_axes`` (1, 2, 3)/(1, 2)/None on maps: shared/per_channel/per_element);
* ``Dropout`` → dropout(rate);
* ``Activation``, ``ReLU``, ``LeakyReLU``, ``Softmax`` set the activation of the layer before it,
  which must have an activation field still linear.

Keras's L2(λ) adds λ·Σw² (gradient 2λw); the spec's l2 is λ' in (λ'/2)‖W‖², so λ' = 2λ, every
kernel carrying the same λ. TensorFlow turns a Python float into a float32 tensor before casting
it, so a float64 model really uses λ and a leaky ReLU's slope rounded to float32: the reading takes
those rounded values (a note says so where that changes them).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import keras
import numpy as np
from keras.src.models.functional import Functional

from ports.reading import PortError
from scratch.layer_specs import (
    AvgPool2DSpec,
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    GlobalAvgPool2DSpec,
    LayerNormSpec,
    MaxPool2DSpec,
    PReLUSpec,
)
from twins.keras_layers import CONV_AXES, DENSE_AXES, PRELU_AXES, Parameter

ACTIVATIONS = {"linear": "identity", "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh",
               "softmax": "softmax", "leaky_relu": "leaky_relu", "gelu": "gelu"}
"""Keras's activation names → the spec's."""
LEAKY_DEFAULT = inspect.signature(keras.activations.leaky_relu).parameters["negative_slope"].default
OPS_ACTIVATIONS = {keras.ops.relu: "relu", keras.ops.sigmoid: "sigmoid", keras.ops.tanh: "tanh",
                   keras.ops.softmax: "softmax", keras.ops.leaky_relu: "leaky_relu",
                   keras.ops.gelu: "gelu_tanh"}
"""``keras.ops`` functions used as activations → the spec's: what they compute at their defaults
(``keras.ops.gelu`` is the tanh form; it saves as "gelu", which reloads as the exact one)."""
LEAKY_OPS_DEFAULT = inspect.signature(keras.ops.leaky_relu).parameters["negative_slope"].default
REGULARIZED = ("kernel", "bias", "activity", "gamma", "beta", "alpha")


@dataclass
class Piece:
    """One spec layer being read: its spec class and fields, the Keras layer, its trainable
    tensors {declared name: :class:`Parameter`}, BatchNorm's moving statistics."""

    spec_class: type
    fields: dict
    layer: keras.layers.Layer
    where: str
    parameters: dict[str, Parameter] = field(default_factory=dict)
    statistics: tuple | None = None
    activation_layer: keras.layers.Layer | None = None     # a folded Activation/Softmax layer


@dataclass
class Chain:
    """What :func:`read_layers` found: the spec's inputs, one piece per spec layer, the
    model-level leaky slope, L2 (Keras's λ, float32-rounded), dtype, and notes."""

    inputs: int | tuple[int, int, int]
    pieces: list[Piece]
    slope: float | None
    l2: float | None
    dtype: str
    notes: list[str]


def where(position: int, layer) -> str:
    return f"position {position} ({type(layer).__name__} {layer.name!r})"


def chain(model) -> list:
    """The model's layers in order, ``InputLayer`` left out; a PortError for anything but a
    Sequential or a straight functional chain."""
    if isinstance(model, keras.Sequential):
        return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not isinstance(model, Functional):
        raise PortError(f"{type(model).__name__}: the reading takes a keras.Sequential or a functional "
                        "keras.Model (a subclassed model's call cannot be read)")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise PortError(f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
                        "outputs; the reading takes one straight chain of layers")
    layers, tensor = [], model.outputs[0]
    while tensor is not model.inputs[0]:
        operation, node_index, _ = tensor._keras_history
        inputs = operation._inbound_nodes[node_index].input_tensors
        if len(inputs) != 1:
            raise PortError(f"layer {operation.name!r} ({type(operation).__name__}) takes {len(inputs)} "
                            "inputs: a merge; the reading takes one straight chain of layers")
        layers.append(operation)
        tensor = inputs[0]
    layers.reverse()
    extra = [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)
             and all(layer is not kept for kept in layers)]
    if extra or len(layers) != len(model.layers) - 1:
        raise PortError(f"model {model.name!r} branches (layers off the input-to-output chain: "
                        f"{', '.join(extra) or 'a layer used twice'}); the reading takes one straight chain")
    return layers


def _refuse(place: str, what: str) -> PortError:
    return PortError(f"Keras layer at {place}: {what}")


def _activation(layer, place: str) -> tuple[str, float | None]:
    """(the spec's activation, leaky slope or None) of a layer's activation, read from the function
    it calls and the name its config saves: a ``keras.ops`` function as what it computes
    (:data:`OPS_ACTIVATIONS`; the float64 copy keeps the function, ``ports.keras_port.in_float64``);
    any other function whose saved name reloads as another is refused."""
    name, function = layer.get_config()["activation"], getattr(layer, "activation", None)
    if function in OPS_ACTIVATIONS:
        return OPS_ACTIVATIONS[function], LEAKY_OPS_DEFAULT if function is keras.ops.leaky_relu else None
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise _refuse(place, f"activation {name!r} has no spec equivalent; expected one of "
                             f"{', '.join(ACTIVATIONS)}")
    if function is not None and keras.activations.get(name) is not function:
        raise _refuse(place, f"activation {getattr(function, '__qualname__', function)!r} saves as {name!r}, "
                             f"which is keras.activations.{name}, another function: the reading cannot "
                             "tell what it computes")
    return ACTIVATIONS[name], LEAKY_DEFAULT if name == "leaky_relu" else None


def _no_extras(layer, place: str, allowed: tuple[str, ...] = ()) -> None:
    """Refuse regularizers and constraints other than ``allowed`` (e.g. the kernel's L2)."""
    for name in REGULARIZED:
        for suffix in ("regularizer", "constraint"):
            attribute = f"{name}_{suffix}"
            if getattr(layer, attribute, None) is not None and attribute not in allowed:
                raise _refuse(place, f"{attribute}={getattr(layer, attribute)!r} has no spec equivalent")
    if getattr(layer, "lora_enabled", False):
        raise _refuse(place, "LoRA has no spec equivalent")


def _square(value, name: str, place: str) -> int:
    if len(set(value)) != 1:
        raise _refuse(place, f"{name} {tuple(value)}: the spec takes one {name} for both axes")
    return int(value[0])


def _dense(layer, shape, place):
    if not layer.use_bias:
        raise _refuse(place, "use_bias=False: the spec's dense layer always has a bias")
    _no_extras(layer, place, ("kernel_regularizer",))
    activation, slope = _activation(layer, place)
    return Piece(DenseSpec, dict(units=layer.units, activation=activation), layer, place,
                 {"W": Parameter(layer.kernel, "W", DENSE_AXES), "b": Parameter(layer.bias, "b")}), slope


def _conv2d(layer, shape, place):
    if layer.data_format != "channels_last":
        raise _refuse(place, f"data_format={layer.data_format!r}: the reading takes channels_last")
    if layer.groups != 1:
        raise _refuse(place, f"groups={layer.groups}: the spec's conv2d is ungrouped")
    if layer.padding not in ("valid", "same"):
        raise _refuse(place, f"padding={layer.padding!r}; expected 'valid' or 'same'")
    if not layer.use_bias:
        raise _refuse(place, "use_bias=False: the spec's conv2d layer always has a bias")
    _no_extras(layer, place, ("kernel_regularizer",))
    activation, slope = _activation(layer, place)
    fields = dict(filters=layer.filters, kernel_size=tuple(layer.kernel_size),
                  strides=_square(layer.strides, "strides", place), padding=layer.padding,
                  dilation=_square(layer.dilation_rate, "dilation_rate", place), activation=activation)
    return Piece(Conv2DSpec, fields, layer, place,
                 {"W": Parameter(layer.kernel, "W", CONV_AXES), "b": Parameter(layer.bias, "b")}), slope


def _pool(spec_class):
    def read(layer, shape, place):
        if layer.padding != "valid" or layer.data_format != "channels_last":
            raise _refuse(place, f"padding={layer.padding!r}, data_format={layer.data_format!r}: the "
                                 "spec's pooling is 'valid' on channels_last maps")
        return Piece(spec_class, dict(pool_size=tuple(layer.pool_size),
                                      strides=_square(layer.strides, "strides", place)), layer, place), None
    return read


def _global_avg(layer, shape, place):
    if layer.keepdims or layer.data_format != "channels_last":
        raise _refuse(place, "the spec's global average pooling takes channels_last maps, keepdims=False")
    return Piece(GlobalAvgPool2DSpec, {}, layer, place), None


def _flatten(layer, shape, place):
    if len(shape) == 1:                                  # the identity on flat features
        return None, None
    if layer.data_format != "channels_last":
        raise _refuse(place, f"data_format={layer.data_format!r}: the reading takes channels_last")
    return Piece(FlattenSpec, dict(order="channels_last"), layer, place), None


CHANNELS_FIRST = (3, 1, 2)
"""The ``Permute`` dims that take (H, W, C) maps to (C, H, W): before a Flatten, torch's order."""


def _permute(layer, shape, place):
    if len(shape) != 3 or tuple(layer.dims) != CHANNELS_FIRST:
        raise _refuse(place, f"Permute{tuple(layer.dims)}: the reading takes Permute((3, 1, 2)) on maps, "
                             "directly before a Flatten (a channels-first flatten)")
    return None, None


def _batch_norm(layer, shape, place):
    if layer.axis not in (-1, len(shape)):
        raise _refuse(place, f"axis={layer.axis}: the spec normalizes per channel (the last axis)")
    if not (layer.center and layer.scale):
        raise _refuse(place, "center=False or scale=False: the spec's batch_norm has both γ and β")
    if getattr(layer, "renorm", False) or getattr(layer, "synchronized", False):
        raise _refuse(place, "renorm/synchronized batch normalization has no spec equivalent")
    _no_extras(layer, place)
    fields = dict(decay=float(layer.momentum), epsilon=float(layer.epsilon), running_variance="biased")
    return Piece(BatchNormSpec, fields, layer, place,
                 {"gamma": Parameter(layer.gamma, "gamma"), "beta": Parameter(layer.beta, "beta")},
                 (layer.moving_mean, layer.moving_variance)), None


def _layer_norm(layer, shape, place):
    axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
    if len(shape) != 1 or axis not in (-1, 1, (-1,), (1,)):
        raise _refuse(place, f"axis={layer.axis} on {shape}: the spec's layer_norm takes flat features")
    if not (layer.center and layer.scale) or getattr(layer, "rms_scaling", False):
        raise _refuse(place, "center=False, scale=False or rms_scaling: the spec's layer_norm has γ and β")
    _no_extras(layer, place)
    return Piece(LayerNormSpec, dict(epsilon=float(layer.epsilon)), layer, place,
                 {"gamma": Parameter(layer.gamma, "gamma"), "beta": Parameter(layer.beta, "beta")}), None


def _prelu(layer, shape, place):
    _no_extras(layer, place)
    axes = tuple(sorted(layer.shared_axes or ()))
    slopes = ({(1, 2, 3): "shared", (1, 2): "per_channel", (): "per_element"} if len(shape) == 3
              else {(1,): "shared", (): "per_element"}).get(axes)
    if slopes is None:
        raise _refuse(place, f"shared_axes={layer.shared_axes} has no spec equivalent")
    initializer = layer.alpha_initializer
    fields = dict(slopes=slopes, slope_at_zero="zero")
    if isinstance(initializer, keras.initializers.Constant):
        fields["alpha_init"] = float(initializer.value)
    elif isinstance(initializer, keras.initializers.Zeros):
        fields["alpha_init"] = 0.0
    alpha = Parameter(layer.alpha, "alpha", PRELU_AXES if len(shape) == 3 else None)
    return Piece(PReLUSpec, fields, layer, place, {"alpha": alpha}), None


def _dropout(layer, shape, place):
    if layer.rate == 0:
        return None, None
    return Piece(DropoutSpec, dict(rate=float(layer.rate)), layer, place), None


def _activation_layer(layer, place):
    """(the spec's activation, leaky slope or None) of an activation layer."""
    if isinstance(layer, keras.layers.Activation):
        return _activation(layer, place)
    if isinstance(layer, keras.layers.ReLU):
        if layer.max_value is not None or layer.threshold != 0 or layer.negative_slope != 0:
            raise _refuse(place, "ReLU with max_value, threshold or negative_slope has no spec "
                                 "equivalent (use LeakyReLU for a slope)")
        return "relu", None
    if isinstance(layer, keras.layers.LeakyReLU):
        return "leaky_relu", float(layer.negative_slope)
    if layer.axis not in (-1, [-1]):
        raise _refuse(place, f"Softmax over axis {layer.axis}: the spec's softmax is over the last axis")
    return "softmax", None


READERS = {
    keras.layers.Dense: _dense,
    keras.layers.Conv2D: _conv2d,
    keras.layers.MaxPooling2D: _pool(MaxPool2DSpec),
    keras.layers.AveragePooling2D: _pool(AvgPool2DSpec),
    keras.layers.GlobalAveragePooling2D: _global_avg,
    keras.layers.Flatten: _flatten,
    keras.layers.BatchNormalization: _batch_norm,
    keras.layers.LayerNormalization: _layer_norm,
    keras.layers.PReLU: _prelu,
    keras.layers.Dropout: _dropout,
    keras.layers.Permute: _permute,
}
"""Each Keras layer class the reading takes → its reader (layer, Keras input shape of one sample,
place) → (:class:`Piece` or None for an identity, leaky slope or None)."""
ACTIVATION_LAYERS = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU,
                     keras.layers.Softmax)


def canonical_shape(keras_shape: tuple) -> tuple[int, ...]:
    """One sample's (n,) or (H, W, C) as the spec's (n,) or (C, H, W)."""
    shape = tuple(int(size) for size in keras_shape)
    return (shape[-1], *shape[:-1]) if len(shape) == 3 else shape


def model_dtype(model, layers) -> str:
    """The one float dtype of every variable and every layer's computation."""
    dtypes = {str(variable.dtype) for variable in model.weights}
    dtypes |= {layer.compute_dtype for layer in layers}
    if len(dtypes) != 1 or next(iter(dtypes)) not in ("float32", "float64"):
        raise PortError(f"model {model.name!r} mixes dtypes {sorted(dtypes)} (variables and each layer's "
                        "compute dtype); the reading takes one of float32, float64 throughout")
    return dtypes.pop()


def _rounded(value: float, dtype: str, what: str, notes: list[str]) -> float:
    """``value`` as TensorFlow uses it: a Python float goes through float32."""
    used = float(np.float32(value))
    if dtype == "float64" and used != value:
        notes.append(f"{what} {value!r} is used as float32 {used!r} by TensorFlow even in float64; "
                     "the reading takes that value")
    return used


def read_layers(model) -> Chain:
    """The model's layers as spec pieces (module docstring); one PortError listing every
    unsupported layer class first, then the first refused option."""
    layers = chain(model)
    unsupported = [where(position, layer) for position, layer in enumerate(layers, start=1)
                   if type(layer) not in READERS and not isinstance(layer, ACTIVATION_LAYERS)]
    if unsupported:
        raise PortError(f"model {model.name!r}: unsupported layers: {', '.join(unsupported)}; the "
                        f"reading takes {', '.join(c.__name__ for c in (*READERS, *ACTIVATION_LAYERS))}")
    if not model.inputs or len(model.inputs[0].shape) not in (2, 4):
        found = model.inputs[0].shape if model.inputs else None
        raise PortError(f"model {model.name!r}: inputs {found}; the reading takes (n,) features or "
                        "(H, W, C) maps (build the model with keras.Input)")
    dtype = model_dtype(model, layers)
    notes: list[str] = []
    pieces, slopes, lambdas = [], set(), []
    shape = tuple(model.inputs[0].shape)
    for position, layer in enumerate(layers, start=1):
        place = where(position, layer)
        sample = canonical_shape(shape[1:])
        if isinstance(layer, ACTIVATION_LAYERS):
            activation, slope = _activation_layer(layer, place)
            previous = pieces[-1] if pieces else None
            if previous is None or "activation" not in previous.fields or previous.activation_layer:
                raise _refuse(place, "an activation layer must follow a Dense, Conv2D, BatchNormalization or "
                                     "LayerNormalization layer directly"
                                     + (f", not {previous.where}" if previous else ""))
            if previous.fields["activation"] != "identity":
                raise _refuse(place, f"an activation after {previous.where}, whose activation is already "
                                     f"{previous.fields['activation']!r}")
            previous.fields["activation"], previous.activation_layer = activation, layer
        else:
            piece, slope = READERS[type(layer)](layer, sample, place)
            if type(layer) is keras.layers.Permute:
                following = layers[position] if position < len(layers) else None
                if type(following) is not keras.layers.Flatten:
                    raise _refuse(place, "a Permute must be followed directly by a Flatten")
            elif position > 1 and type(layers[position - 2]) is keras.layers.Permute:
                piece.fields["order"] = "channels_first"          # this Flatten, after Permute((3, 1, 2))
            if piece is not None:
                if piece.spec_class in (BatchNormSpec, LayerNormSpec):
                    piece.fields["activation"] = "identity"
                pieces.append(piece)
            if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
                regularizer = layer.kernel_regularizer
                if regularizer is not None and type(regularizer) is not keras.regularizers.L2:
                    raise _refuse(place, f"kernel_regularizer {type(regularizer).__name__}: the spec's "
                                         "penalty is keras.regularizers.L2")
                lambdas.append(None if regularizer is None else float(regularizer.l2))
        if slope is not None:
            slopes.add(_rounded(slope, dtype, f"leaky ReLU slope at {place}", notes))
        shape = tuple(layer.compute_output_shape(shape))
    if len(slopes) > 1:
        raise PortError(f"model {model.name!r}: leaky ReLU slopes {sorted(slopes)}; the spec has one "
                        "leaky_relu_slope for the whole model")
    if len(set(lambdas)) > 1:
        raise PortError(f"model {model.name!r}: kernel L2 factors {lambdas} by Dense/Conv2D layer; the "
                        "spec's l2 applies one λ to every kernel")
    l2 = lambdas[0] if lambdas and lambdas[0] is not None else None
    if l2 is not None:
        l2 = _rounded(l2, dtype, "L2 factor", notes)
    inputs = canonical_shape(tuple(model.inputs[0].shape)[1:])
    return Chain(inputs[0] if len(inputs) == 1 else inputs, pieces, slopes.pop() if slopes else None, l2,
                 dtype, notes)
