"""The spec's layers as real Keras 3 layers on TensorFlow: one :class:`Block` per numbered layer,
built through one table, :data:`LAYERS` (layer kind → the Keras layers that run it).

Layouts. Keras computes channels-last on the CPU, so a map is (m, H, W, C) inside the twin and
(m, C, H, W) at its boundary; :func:`to_keras_map` and :func:`to_canonical_map` are the one
conversion of maps (inputs, dropout masks, every Z, A, dZ, dA). A parameter converts through its
:class:`Parameter`, the one place per tensor kind, asserting shapes: a Dense kernel is (in, out),
the transpose of the file's W (out, in); a Conv2D kernel is HWIO, the file's OIHW transposed by
(2, 3, 1, 0); γ and β are (C,) in both; a PReLU's α on maps is the canonical (C, H, W) (or its
shared 1s) transposed to (H, W, C). Each row names its variables by the declared tensor names
(:meth:`Block.holds`).

What Keras cannot express is refused with a :class:`BackendError` naming it: a conv2d with both
strides and dilation above 1 (``keras.layers.Conv2D`` refuses the pair itself), an unbiased
running variance (``BatchNormalization`` stores the batch's biased σ²) and a PReLU whose slope at
z = 0 is α (``keras.layers.PReLU`` is relu(z) − α·relu(−z): slope 0 at z = 0).

Dilation (measured on TensorFlow 2.21, CPU, ``parity_tests/frameworks/test_conv_twins.py``):
the raw ``Conv2D`` op's gradient kernels ``Conv2DBackpropInput`` and ``Conv2DBackpropFilter``
refuse any ``dilations > 1`` ("Current CPU implementations do not yet support dilation rates
larger than 1") in float32 and float64, eagerly and in a ``tf.function`` (only XLA compiles them).
``keras.layers.Conv2D(dilation_rate=d)`` never reaches them: it calls ``tf.nn.convolution``,
which runs a stride-1 dilated convolution as ``SpaceToBatchND`` → an undilated ``Conv2D`` →
``BatchToSpaceND``, differentiable everywhere; the same call refuses strides > 1 with
dilation > 1, so the twin runs every dilated layer at stride 1 and refuses the rest.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from scratch.errors import BackendError
from scratch.layer_specs import activation_of
from twins.recurrent_layouts import from_keras_blocks, to_keras_blocks

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)
DENSE_AXES = (1, 0)            # W (out, in) → kernel (in, out)
CONV_AXES = (2, 3, 1, 0)       # W (O, C, k_h, k_w) → kernel (k_h, k_w, C, O)
PRELU_AXES = (1, 2, 0)         # α (C, H, W) (or 1s) of a map → Keras's (H, W, C)


def to_keras_map(array: np.ndarray) -> np.ndarray:
    """(m, C, H, W) → (m, H, W, C); flat (m, n) arrays pass unchanged. A tensor (a ``tf.function``
    traces one: ``KerasBackend.graph_train_step``) is transposed in the graph."""
    if isinstance(array, tf.Tensor):
        return tf.transpose(array, NCHW_TO_NHWC) if array.shape.rank == 4 else array
    return np.ascontiguousarray(array.transpose(NCHW_TO_NHWC)) if np.ndim(array) == 4 else array


def to_canonical_map(array: np.ndarray) -> np.ndarray:
    """(m, H, W, C) → (m, C, H, W); flat (m, n) arrays pass unchanged."""
    return np.ascontiguousarray(array.transpose(NHWC_TO_NCHW)) if np.ndim(array) == 4 else array


def sample_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One sample's canonical shape (C, H, W) or (n,) in Keras's layout: (H, W, C) or (n,)."""
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape


@dataclass(frozen=True)
class Parameter:
    """A trainable Keras variable (or one ``row`` of it) and how the file's layout becomes the
    variable's: ``gates``, the recurrent kind whose gate blocks (the canonical leading axis) are put
    in Keras's order (``twins.recurrent_layouts``), then ``axes``, the transpose (None: the same
    layout). ``row``: Keras's ``GRU(reset_after=True)`` keeps b_ih and b_hh as the rows of one
    (2, 3H) variable, so two declared tensors share it (:func:`variable_values`)."""

    variable: keras.Variable
    label: str
    axes: tuple[int, ...] | None = None
    gates: str | None = None
    row: int | None = None

    @property
    def canonical_shape(self) -> tuple[int, ...]:
        shape = tuple(self.variable.shape)[self.row is not None:]
        return shape if self.axes is None else tuple(shape[k] for k in np.argsort(self.axes))

    def to_keras(self, array: np.ndarray) -> np.ndarray:
        """A canonical array (``canonical_shape``) in the variable's layout (its row's)."""
        if np.shape(array) != self.canonical_shape:
            raise BackendError(f"keras backend: expected {self.label} of shape {self.canonical_shape}, "
                               f"got {np.shape(array)}")
        if self.gates is not None:
            array = to_keras_blocks(np.asarray(array), self.gates)
        return array if self.axes is None else np.ascontiguousarray(np.transpose(array, self.axes))

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """The variable's value (or gradient, or optimizer slot) back in the file's layout: its row's."""
        array = np.asarray(array)
        if self.row is not None:
            array = array[self.row]
        if self.axes is not None:
            array = np.transpose(array, np.argsort(self.axes))
        if self.gates is not None:
            array = from_keras_blocks(array, self.gates)
        return np.array(array, copy=True, order="C")


def distinct_variables(parameters: list[Parameter]) -> list:
    """The Keras variables behind ``parameters``, each once, in order (a row's variable at its first row)."""
    return list({id(p.variable): p.variable for p in parameters}.values())


def variable_values(parameters: list[Parameter], arrays) -> list[np.ndarray]:
    """The value of each of :func:`distinct_variables` from the canonical ``arrays`` (one per
    parameter, in order): a variable of rows stacks its parameters' rows."""
    values: dict[int, dict] = {}
    for parameter, array in zip(parameters, arrays, strict=True):
        values.setdefault(id(parameter.variable), {})[parameter.row] = parameter.to_keras(array)
    out = []
    for variable in distinct_variables(parameters):
        rows = values[id(variable)]
        if set(rows) == {None}:
            out.append(rows[None])
        elif sorted(rows) == list(range(variable.shape[0])):
            out.append(np.stack([rows[row] for row in sorted(rows)]))
        else:
            raise BackendError(f"keras backend: variable {variable.path} of {len(rows)} rows is incomplete")
    return out


def checked_statistics(moving, statistics, dtype: str, where: str) -> list[tuple]:
    """[(moving variable, value)] for (running mean, running variance) of every batch_norm layer
    into its ``moving`` (mean, variance) variables, each checked for shape and ``dtype`` before any
    is assigned; a :class:`BackendError` starting with ``where`` names the first that does not fit."""
    if len(statistics) != len(moving):
        raise BackendError(f"{where}: running statistics for {len(statistics)} batch_norm layer(s), "
                           f"the model has {len(moving)}")
    pending = []
    for variables, pair in zip(moving, statistics, strict=True):
        for variable, value in zip(variables, pair, strict=True):
            value = np.asarray(value)
            if value.shape != tuple(variable.shape) or value.dtype != np.dtype(dtype):
                raise BackendError(f"{where}: running statistics must be {tuple(variable.shape)} {dtype}, "
                                   f"got {value.shape} {value.dtype}")
            pending.append((variable, value))
    return pending


_ROUNDED_GELU_ALLOWED = False


@contextlib.contextmanager
def rounded_gelu_allowed():
    """Build a float64 GELU despite its float32 constant: for a reference that is compared with a
    Keras model of the same GELU (``ports.twin_model``), where both round it alike."""
    global _ROUNDED_GELU_ALLOWED
    previous, _ROUNDED_GELU_ALLOWED = _ROUNDED_GELU_ALLOWED, True
    try:
        yield
    finally:
        _ROUNDED_GELU_ALLOWED = previous


def activation(name: str, spec):
    """g_l as a Keras activation function."""
    slope = spec.leaky_relu_slope
    if name == "leaky_relu" and spec.dtype == "float64" and float(np.float32(slope)) != slope:
        raise BackendError(
            f"keras backend: spec field 'leaky_relu_slope' = {slope}: TensorFlow's LeakyRelu "
            "op keeps its slope in a float32 attribute, so float64 Keras would use "
            f"{float(np.float32(slope))!r}; pick a slope exact in float32 (e.g. 2**-5)")
    if name in ("gelu", "gelu_tanh") and spec.dtype == "float64" and not _ROUNDED_GELU_ALLOWED:
        raise BackendError(
            "keras backend: TensorFlow's gelu casts its constant (1/√2 in the exact form, 0.044715 in "
            "the tanh form) to float32 even for float64 tensors, so float64 Keras GELU is off the "
            "function by ~1e-9 (relative; 7.7e-10 and 1.4e-10 measured on N(0, 4) inputs); use float32 "
            "(where the constants are exact), or the other backends")
    return {
        "identity": keras.activations.linear,
        "relu": keras.activations.relu,
        "leaky_relu": functools.partial(keras.activations.leaky_relu, negative_slope=slope),
        "sigmoid": keras.activations.sigmoid,
        "tanh": keras.activations.tanh,
        "gelu": functools.partial(keras.activations.gelu, approximate=False),
        "gelu_tanh": functools.partial(keras.activations.gelu, approximate=True),
        "softmax": keras.activations.softmax,
    }[name]


class Block:
    """Numbered layer l: Z_l = its Keras layers applied in order, A_l = g_l(Z_l).

    ``parameters`` {declared name: :class:`Parameter`} of the layer's trainable tensors in
    declaration order (W, b; γ, β; α; W_ih, W_hh, b_ih, b_hh), ``kernels`` the variables L2
    penalizes (the tensors declared ``l2``), ``statistics`` the (moving_mean, moving_variance) of
    a BatchNormalization. Every layer is built for the spec's input shape, and the output shape
    Keras computes must be the spec's."""

    def __init__(self, number: int, layers: list, spec):
        self.number, self.layers = number, layers
        self.activation = activation(activation_of(spec.numbered_layers[number - 1]), spec)
        shape = (None, *sample_shape(spec.layer_shapes[number - 1]))
        for layer in layers:
            layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape))
        expected = (None, *sample_shape(spec.layer_shapes[number]))
        if shape != expected:
            raise BackendError(f"keras backend: layer {number} ({spec.numbered_layers[number - 1].kind}) "
                               f"gives {shape} in Keras, the spec says {expected}")
        self.declared = spec.numbered_layers[number - 1].tensors
        self.parameters: dict[str, Parameter] = {}
        self.kernels: list = []
        self.statistics = None

    def holds(self, **variables) -> Block:
        """Declare the layer's variables by their declared names: ``name=variable`` (the same
        layout as the file's), ``name=(variable, axes)`` or ``name=(variable, axes, gates, row)``
        (see :class:`Parameter`)."""
        for tensor in self.declared:
            if tensor.trainable:
                given = variables[tensor.name]
                variable, *layout = given if isinstance(given, tuple) else (given,)
                self.parameters[tensor.name] = Parameter(variable, f"{tensor.name}{self.number}", *layout)
                if tensor.l2:
                    self.kernels.append(variable)
        return self

    def __call__(self, a, training: bool):
        """(Z_l, g_l(Z_l)) from A_{l−1}; ``training`` reaches BatchNormalization only."""
        z = a
        for layer in self.layers:
            batch_norm = isinstance(layer, keras.layers.BatchNormalization)
            z = layer(z, training=training) if batch_norm else layer(z)
        return z, self.activation(z)


def dense_block(layer, number, spec):
    dense = keras.layers.Dense(layer.units, activation=None, dtype=spec.dtype)
    return Block(number, [dense], spec).holds(W=(dense.kernel, DENSE_AXES), b=dense.bias)


def conv2d_block(layer, number, spec):
    """``Conv2D`` (HWIO kernel, channels-last, ``dilation_rate`` d); "same" is Keras's own padding
    (TensorFlow's split), explicit (top, bottom, left, right) is ``ZeroPadding2D`` then a "valid"
    Conv2D."""
    if layer.dilation > 1 and layer.strides > 1:
        raise BackendError(
            f"keras backend: layer {number} conv2d strides {layer.strides} with dilation {layer.dilation}: "
            "keras.layers.Conv2D refuses strides > 1 together with dilation_rate > 1 (so does "
            "tf.nn.convolution, which it calls), and the raw Conv2D op's CPU gradient kernels "
            "(Conv2DBackpropInput, Conv2DBackpropFilter) refuse any dilation > 1; use strides 1 or "
            "dilation 1")
    layers = []
    padding = layer.padding
    if isinstance(padding, tuple):
        top, bottom, left, right = padding
        layers.append(keras.layers.ZeroPadding2D(((top, bottom), (left, right)), data_format="channels_last",
                                                 dtype=spec.dtype))
        padding = "valid"
    conv = keras.layers.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides, padding=padding,
                               dilation_rate=layer.dilation, data_format="channels_last", activation=None,
                               dtype=spec.dtype)
    layers.append(conv)
    return Block(number, layers, spec).holds(W=(conv.kernel, CONV_AXES), b=conv.bias)


def pool_block(pool_class):
    def build(layer, number, spec):
        return Block(number, [pool_class(layer.pool_size, strides=layer.strides, padding="valid",
                                         data_format="channels_last", dtype=spec.dtype)], spec)
    return build


def global_avg_pool_block(layer, number, spec):
    return Block(number, [keras.layers.GlobalAveragePooling2D(data_format="channels_last", dtype=spec.dtype)],
                 spec)


def flatten_block(layer, number, spec):
    """Keras's ``Flatten`` on NHWC is channels-last; channels-first permutes to (m, C, H, W) first."""
    layers = [keras.layers.Flatten(data_format="channels_last", dtype=spec.dtype)]
    if layer.order == "channels_first":
        layers.insert(0, keras.layers.Permute((3, 1, 2), dtype=spec.dtype))
    return Block(number, layers, spec)


def batch_norm_block(layer, number, spec):
    """``BatchNormalization(momentum=ρ, epsilon=ε)`` over the last (channel) axis."""
    if layer.running_variance != "biased":
        raise BackendError(
            f"keras backend: layer {number} batch_norm running_variance={layer.running_variance!r}: "
            "keras.layers.BatchNormalization stores the biased running variance (the batch's σ²), "
            "never n/(n − 1)·σ²; use running_variance='biased'")
    norm = keras.layers.BatchNormalization(axis=-1, momentum=layer.decay, epsilon=layer.epsilon,
                                           dtype=spec.dtype)
    block = Block(number, [norm], spec).holds(gamma=norm.gamma, beta=norm.beta)
    block.statistics = (norm.moving_mean, norm.moving_variance)
    return block


def layer_norm_block(layer, number, spec):
    norm = keras.layers.LayerNormalization(axis=-1, epsilon=layer.epsilon, dtype=spec.dtype)
    return Block(number, [norm], spec).holds(gamma=norm.gamma, beta=norm.beta)


def prelu_block(layer, number, spec):
    """``PReLU(alpha_initializer=Constant(α₀), shared_axes=…)``: Keras's α has the sample's
    channels-last shape with each shared axis 1 — shared: every axis; per_channel: (H, W) of a
    map (on flat features the one axis is the channel); per_element: none (Keras's default).
    Its slope at z = 0 is 0, so the spec must say ``slope_at_zero="zero"``. On
    maps α (H or 1, W or 1, C or 1) is the canonical (C or 1, H or 1, W or 1) transposed (1, 2, 0)."""
    if layer.slope_at_zero != "zero":
        raise BackendError(
            f"keras backend: layer {number} prelu slope_at_zero={layer.slope_at_zero!r}: "
            "keras.layers.PReLU computes relu(z) − α·relu(−z), whose gradient at z = 0 is 0 (relu's "
            "derivative at 0), never α; use slope_at_zero='zero'")
    maps = len(spec.layer_shapes[number - 1]) == 3
    shared = {"shared": [1, 2, 3] if maps else [1], "per_channel": [1, 2] if maps else None,
              "per_element": None}[layer.slopes]
    prelu = keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(layer.alpha_init),
                               shared_axes=shared, dtype=spec.dtype)
    return Block(number, [prelu], spec).holds(alpha=(prelu.alpha, PRELU_AXES) if maps else prelu.alpha)


def embedding_block(layer, number, spec):
    """``Embedding(V, d)``: its ``embeddings`` (V, d) is the file's E."""
    embedding = keras.layers.Embedding(layer.vocabulary, layer.dimension, dtype=spec.dtype)
    return Block(number, [embedding], spec).holds(E=embedding.embeddings)


KERAS_RNN = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def recurrent_block(layer, number, spec):
    """``SimpleRNN`` / ``LSTM`` / ``GRU`` (``return_sequences``, from a zero state): kernel
    (n, G·H) and recurrent_kernel (H, G·H), the file's W_ih and W_hh with the gate blocks in
    Keras's order, transposed; one bias (G·H,), or ``GRU(reset_after=True)``'s (2, 3H), whose rows
    are b_ih and b_hh. Keras's SimpleRNN and LSTM have one bias, so ``biases="two"`` is refused."""
    if layer.kind != "gru" and layer.biases != "one":
        raise BackendError(
            f"keras backend: layer {number} {layer.kind} with two biases (torch's b_ih + b_hh): "
            f"keras.layers.{KERAS_RNN[layer.kind].__name__} has one bias; the pair is the same forward "
            "pass, but each gets the full gradient, so under training it moves twice as far; "
            "use biases='one'")
    options = dict(return_sequences=layer.return_sequences, dtype=spec.dtype)
    if layer.kind == "simple_rnn":
        options["activation"] = layer.nonlinearity
    if layer.kind == "gru":
        options["reset_after"] = layer.reset_after
    recurrent = KERAS_RNN[layer.kind](layer.units, **options)
    block = Block(number, [recurrent], spec)
    cell, kind = recurrent.cell, layer.kind
    variables = dict(weight_ih=(cell.kernel, (1, 0), kind), weight_hh=(cell.recurrent_kernel, (1, 0), kind))
    if layer.biases == "two":
        variables.update(bias_ih=(cell.bias, None, kind, 0), bias_hh=(cell.bias, None, kind, 1))
    else:
        variables["bias"] = (cell.bias, None, kind)
    return block.holds(**variables)


def sequence_pool_block(layer, number, spec):
    """The mean: ``GlobalAveragePooling1D``; the last step: ``Cropping1D`` of the first T − 1 steps,
    then ``Reshape`` (m, 1, H) → (m, H)."""
    steps, width = spec.layer_shapes[number - 1]
    if layer.mode == "mean":
        return Block(number, [keras.layers.GlobalAveragePooling1D(dtype=spec.dtype)], spec)
    return Block(number, [keras.layers.Cropping1D((steps - 1, 0), dtype=spec.dtype),
                          keras.layers.Reshape((width,), dtype=spec.dtype)], spec)


def plan_dropout(a, mask: np.ndarray | None):
    """Inverted dropout with the training plan's mask D_l (``scratch.batching``, canonical
    layout): A_l ⊙ D_l."""
    return a if mask is None else a * tf.convert_to_tensor(to_keras_map(mask))


# The one table: each layer kind of the spec → the Keras layers that run it, as a Block (a
# dropout layer multiplies the A of the block before it by the plan's mask).
LAYERS = {
    "dense": dense_block,
    "conv2d": conv2d_block,
    "max_pool2d": pool_block(keras.layers.MaxPooling2D),
    "avg_pool2d": pool_block(keras.layers.AveragePooling2D),
    "global_avg_pool2d": global_avg_pool_block,
    "flatten": flatten_block,
    "batch_norm": batch_norm_block,
    "layer_norm": layer_norm_block,
    "prelu": prelu_block,
    "embedding": embedding_block,
    "simple_rnn": recurrent_block,
    "lstm": recurrent_block,
    "gru": recurrent_block,
    "sequence_pool": sequence_pool_block,
    "dropout": lambda layer, number, spec: plan_dropout,
}
