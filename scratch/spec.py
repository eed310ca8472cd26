"""The one frozen model spec that every backend reads.

A :class:`ModelSpec` fixes everything that decides a training run: the stack of layers (frozen
layer specs from ``scratch.layer_specs``, each with its activation or dropout rate), loss,
initializer, optimizer (with its convention and every hyperparameter), batching, epochs, seed,
dtype and L2. It is validated on construction, stored as JSON in the metadata of every weight
file, and read unchanged by the NumPy engine and every twin.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from typing import Any

from scratch.errors import SpecError
from scratch.layer_specs import (
    HIDDEN_ACTIVATIONS,
    LAYER_SPECS,
    OUTPUT_ACTIVATIONS,
    DenseSpec,
    DropoutSpec,
    EmbeddingSpec,
    LayerSpec,
    activation_of,
    check_choice,
    check_int,
    check_real,
    describe_layer,
    field_error,
    layer_from_dict,
    layer_to_dict,
)
from scratch.layers.normalization import ONE_VALUE, values_per_channel
from scratch.tensor_specs import gradient_name

LOSSES = ("mse", "bce", "cce")
# Which output activations each loss accepts. CCE and BCE are computed from logits, so each
# needs the one activation whose pairing gives the fused gradient dZ = (A - Y) / m.
LOSS_OUTPUTS = {
    "cce": ("softmax",),
    "bce": ("sigmoid",),
    "mse": ("identity", "sigmoid", "tanh", "softmax"),
}
INITIALIZERS = (
    "uniform_half",
    "small_normal",
    "he_normal",
    "lecun_normal",
    "glorot_uniform",
    "torch_default",
)
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
CONVENTIONS = ("torch", "keras", "optax")
DTYPES = ("float32", "float64")

# The frameworks' own defaults, for users who want "what torch/Keras would do".
FRAMEWORK_DEFAULTS = {
    ("sgd", "torch"): dict(learning_rate=1e-3),
    ("sgd", "keras"): dict(learning_rate=0.01),
    ("momentum", "torch"): dict(learning_rate=1e-3, momentum=0.9),
    ("momentum", "keras"): dict(learning_rate=0.01, momentum=0.9),
    ("rmsprop", "torch"): dict(learning_rate=0.01, rho=0.99, epsilon=1e-8),
    ("rmsprop", "keras"): dict(learning_rate=0.001, rho=0.9, epsilon=1e-7),
    ("adam", "torch"): dict(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8),
    ("adam", "keras"): dict(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-7),
    # optax 0.2.8 takes no default learning rate (it is a required argument): the spec's own
    # default stands unless one is given. rmsprop: decay 0.9, eps 1e-8 (inside the root).
    ("sgd", "optax"): dict(),
    ("momentum", "optax"): dict(momentum=0.9),
    ("rmsprop", "optax"): dict(rho=0.9, epsilon=1e-8),
    ("adam", "optax"): dict(beta1=0.9, beta2=0.999, epsilon=1e-8),
}


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer and every one of its hyperparameters.

    ``name`` is one of sgd, momentum, rmsprop, adam; ``convention`` ("torch", "keras" or "optax")
    picks whose update formula is used where the frameworks differ (see ``scratch.optimizers``).
    Fields an optimizer does not use must keep their defaults, so a spec never carries a
    setting that silently does nothing.

    ``weight_decay`` λ_d decays every trainable tensor θ (kernels, biases, γ, β, slopes: what an
    optimizer built on ``model.parameters()`` or ``model.trainable_variables`` holds), in one of
    two forms:

    - coupled (``decoupled_decay=False``, torch's ``weight_decay=`` of SGD, RMSprop and Adam):
      g ← g + λ_d·θ before the update, so the decay passes through momentum and Adam's moments;
    - decoupled (``decoupled_decay=True``, torch's ``AdamW``, Keras 3's ``weight_decay=`` of every
      optimizer, optax's ``adamw``): θ ← θ − η·λ_d·θ beside the update from g alone.

    For plain SGD the two are the same step in exact arithmetic; with momentum, RMSprop or Adam
    they are not. Neither is the spec's ``l2`` (a penalty in the loss on kernels only).
    """

    name: str = "sgd"
    convention: str = "torch"
    learning_rate: float = 0.1
    momentum: float = 0.0
    rho: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    weight_decay: float = 0.0
    decoupled_decay: bool = False

    def __post_init__(self) -> None:
        check_choice("optimizer.name", self.name, OPTIMIZERS)
        check_choice("optimizer.convention", self.convention, CONVENTIONS)
        # each hyperparameter as a plain Python number in its range: (name, low, high, low_open)
        for name, low, high, low_open in (("learning_rate", 0.0, math.inf, True),
                                          ("momentum", 0.0, 1.0, False), ("rho", 0.0, 1.0, False),
                                          ("beta1", 0.0, 1.0, False), ("beta2", 0.0, 1.0, False),
                                          ("epsilon", 0.0, 1.0, True),
                                          ("weight_decay", 0.0, math.inf, False)):
            object.__setattr__(self, name, check_real(f"optimizer.{name}", getattr(self, name), low, high,
                                                      low_open=low_open))
        if not isinstance(self.decoupled_decay, bool):
            raise field_error("optimizer.decoupled_decay",
                              f"expected true or false, got {self.decoupled_decay!r}")
        if self.decoupled_decay and self.weight_decay == 0.0:
            raise field_error("optimizer.decoupled_decay", "true, but weight_decay is 0: there is no decay "
                                                           "to decouple")
        if self.name == "momentum" and self.momentum == 0.0:
            raise field_error("optimizer.momentum", "optimizer 'momentum' needs momentum in (0, 1)")
        if self.name in ("sgd", "adam") and self.momentum != 0.0:
            raise field_error("optimizer.momentum",
                        f"optimizer {self.name!r} takes no momentum (got {self.momentum}); "
                        "use name='momentum' for SGD with momentum")
        default = OptimizerSpec.__dataclass_fields__
        unused = {"sgd": ("rho", "beta1", "beta2", "epsilon"),
                  "momentum": ("rho", "beta1", "beta2", "epsilon"),
                  "rmsprop": ("beta1", "beta2"),
                  "adam": ("rho",)}[self.name]
        for name in unused:
            if getattr(self, name) != default[name].default:
                raise field_error(f"optimizer.{name}",
                            f"optimizer {self.name!r} does not use {name}; leave it at its default")

    @classmethod
    def framework_default(cls, name: str, convention: str, **overrides: Any) -> OptimizerSpec:
        """The optimizer as torch.optim, keras.optimizers or optax builds it with no optional
        arguments (learning rate, rho/alpha, epsilon), with ``overrides`` applied on top. optax
        has no default learning rate: pass one (else the spec's default, 0.1, stands)."""
        check_choice("optimizer.name", name, OPTIMIZERS)
        check_choice("optimizer.convention", convention, CONVENTIONS)
        values = dict(FRAMEWORK_DEFAULTS[(name, convention)])
        values.update(overrides)
        return cls(name=name, convention=convention, **values)


WRITTEN_WHEN_SET = {"weight_decay": 0.0, "decoupled_decay": False}
"""Optimizer fields a spec's JSON holds only away from their default, so the weight files of
specs without them keep the bytes they had before the fields existed."""

SHORTHAND = ("layer_sizes", "hidden_activation", "output_activation", "dropout")
"""The MLP shorthand's fields: they expand to a layer list and are read back as properties."""


def expand_mlp(layer_sizes: Any, hidden_activation: str, output_activation: str,
               dropout: float) -> tuple[int, tuple[LayerSpec, ...]]:
    """(inputs, layers) of the MLP shorthand, each field checked under its own name:
    (n_0, n_1, …, n_L) → Dense(n_1, g) [Dropout(p)] … Dense(n_L, g_L)."""
    if not isinstance(layer_sizes, (tuple, list)):
        raise field_error("layer_sizes", f"expected a sequence of integers, got {layer_sizes!r}")
    if len(layer_sizes) < 2:
        raise field_error("layer_sizes", f"expected at least (n_in, n_out), got {tuple(layer_sizes)}")
    sizes = tuple(check_int(f"layer_sizes[{index}]", size, 1) for index, size in enumerate(layer_sizes))
    check_choice("hidden_activation", hidden_activation, HIDDEN_ACTIVATIONS)
    check_choice("output_activation", output_activation, OUTPUT_ACTIVATIONS)
    dropout = check_real("dropout", dropout, 0.0, 1.0)
    layers: list[LayerSpec] = []
    for width in sizes[1:-1]:
        layers.append(DenseSpec(width, hidden_activation))
        if dropout:
            layers.append(DropoutSpec(dropout))
    layers.append(DenseSpec(sizes[-1], output_activation))
    return sizes[0], tuple(layers)


@dataclass(frozen=True, init=False)
class ModelSpec:
    """A stack of layers and how to train it.

    ``inputs`` is the shape of one sample: n_0 features, (C, H, W) maps (channels first), (T, n)
    sequences of T steps, or T token ids when the first layer is an embedding;
    ``layers`` the stack, a sequence of frozen layer specs (``scratch.layer_specs``) ending in the
    dense output layer. Every layer but dropout is numbered l = 1..L; dense layer l maps n_{l−1}
    features to n_l with Z_l = A_{l−1} · W_lᵀ + b_l and A_l = g_l(Z_l); a dropout layer after a
    hidden layer applies inverted dropout to its output (A_l ← A_l ⊙ D_l; the output layer never
    drops). ``batch_size=None`` means full batch. ``l2`` is λ in the penalty
    (λ/2)·Σ_l ‖W_l‖²_F added to the mean batch loss over the dense, conv2d and recurrent kernels (never
    biases, nor BatchNorm's or LayerNorm's γ, β), so it adds λ·W_l to their dW_l.

    The MLP shorthand builds the same stack: ``ModelSpec((n_0, …, n_L), hidden_activation,
    output_activation, …, dropout=p)`` is Dense(n_1, hidden) [Dropout(p)] … Dense(n_L, output),
    and ``layer_sizes``, ``hidden_activation``, ``output_activation``, ``dropout`` read it back.
    Give either the shorthand or ``inputs`` and ``layers``. Both JSON forms load; ``to_json``
    writes the layer list.
    """

    inputs: int
    layers: tuple[LayerSpec, ...]
    loss: str = "cce"
    init: str = "he_normal"
    optimizer: OptimizerSpec = OptimizerSpec()
    batch_size: int | None = None
    epochs: int = 1
    seed: int = 0
    dtype: str = "float64"
    l2: float = 0.0
    leaky_relu_slope: float = 0.01
    shuffle: bool = True

    def __init__(self, layer_sizes=None, hidden_activation=None, output_activation=None,
                 loss="cce", init="he_normal", optimizer=None, batch_size=None, epochs=1, seed=0,
                 dtype="float64", l2=0.0, dropout=None, leaky_relu_slope=0.01, shuffle=True, *,
                 inputs=None, layers=None):
        shorthand = {name: value for name, value in zip(SHORTHAND, (layer_sizes, hidden_activation,
                                                                   output_activation, dropout),
                                                         strict=True) if value is not None}
        if inputs is not None or layers is not None:
            if shorthand:
                raise field_error(next(iter(shorthand)), "give the layer list (inputs, layers) or the MLP "
                            "shorthand (layer_sizes, hidden_activation, output_activation, dropout), "
                            "not both")
            if inputs is None or layers is None:
                raise field_error("inputs" if inputs is None else "layers", "missing (a layer list needs "
                            "both inputs and layers)")
        else:
            if layer_sizes is None:
                raise field_error("layer_sizes", "missing (give layer_sizes, or inputs and layers)")
            inputs, layers = expand_mlp(layer_sizes,
                                        "relu" if hidden_activation is None else hidden_activation,
                                        "softmax" if output_activation is None else output_activation,
                                        0.0 if dropout is None else dropout)
        values = dict(inputs=inputs, layers=layers, loss=loss, init=init,
                      optimizer=OptimizerSpec() if optimizer is None else optimizer,
                      batch_size=batch_size, epochs=epochs, seed=seed, dtype=dtype, l2=l2,
                      leaky_relu_slope=leaky_relu_slope, shuffle=shuffle)
        for name, value in values.items():
            object.__setattr__(self, name, value)
        self._validate(shorthand)

    def _validate(self, shorthand: dict[str, Any]) -> None:
        # a shorthand's own mistakes were reported under its field names by expand_mlp; what is
        # left to name here is the layer list's (shorthand fields again where they were given)
        if isinstance(self.inputs, (tuple, list)):
            if len(self.inputs) not in (1, 2, 3):
                raise field_error("inputs", f"expected n, (T, n) or (C, H, W), got {self.inputs!r}")
            shape = tuple(check_int(f"inputs[{index}]", size, 1) for index, size in enumerate(self.inputs))
            object.__setattr__(self, "inputs", shape[0] if len(shape) == 1 else shape)
        else:
            object.__setattr__(self, "inputs", check_int("inputs", self.inputs, 1))
        if not isinstance(self.layers, (tuple, list)) or not self.layers:
            raise field_error("layers", f"expected a non-empty sequence of layer specs, got {self.layers!r}")
        object.__setattr__(self, "layers", tuple(self.layers))
        last = len(self.layers) - 1
        shapes = [self.input_shape]                            # A_0, then A_l of each numbered layer
        for index, layer in enumerate(self.layers):
            where = f"layers[{index}]"
            if type(layer) not in LAYER_SPECS.values():
                names = ", ".join(layer_class.__name__ for layer_class in LAYER_SPECS.values())
                raise field_error(where, f"expected a layer spec ({names}), got {layer!r}")
            if isinstance(layer, DropoutSpec) and (index == 0 or index == last
                                                   or isinstance(self.layers[index - 1], DropoutSpec)):
                raise field_error(where, "dropout must directly follow a hidden layer")
            if isinstance(layer, EmbeddingSpec) and index > 0:
                raise field_error(where, "an embedding layer reads token ids: it must be the first layer")
            if isinstance(layer, DenseSpec) and index < last:
                check_choice(f"{where}.activation", layer.activation, HIDDEN_ACTIVATIONS)
            try:
                shape = layer.output_shape(shapes[-1])
            except SpecError as error:
                raise field_error(where, str(error)) from None
            if not isinstance(layer, DropoutSpec):
                shapes.append(shape)
        object.__setattr__(self, "_layer_shapes", tuple(shapes))    # derived once; not a field
        output = self.layers[-1]
        if not isinstance(output, DenseSpec):
            raise field_error(f"layers[{last}]", "the last layer must be the dense output layer")
        check_choice(f"layers[{last}].activation", output.activation, OUTPUT_ACTIVATIONS)
        check_choice("loss", self.loss, LOSSES)
        output_field = "output_activation" if shorthand else f"layers[{last}].activation"
        if output.activation not in LOSS_OUTPUTS[self.loss]:
            raise field_error(output_field, f"{output.activation!r} does not fit loss {self.loss!r}; "
                                            f"expected one of {', '.join(LOSS_OUTPUTS[self.loss])}")
        if output.activation == "softmax" and output.units < 2:
            raise field_error("layer_sizes" if shorthand else f"layers[{last}].units",
                        "softmax output needs at least 2 units")
        check_choice("init", self.init, INITIALIZERS)
        if not isinstance(self.optimizer, OptimizerSpec):
            raise field_error("optimizer", f"expected an OptimizerSpec, got {type(self.optimizer).__name__}")
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", check_int("batch_size", self.batch_size, 1))
        if self.batch_size == 1 and self.one_value_norms:
            raise field_error("batch_size", f"1, but {self.one_value_norms[0]} sees one value per channel "
                                            f"in a batch of one row, and BatchNorm cannot train on that "
                                            f"({ONE_VALUE}); use batch_size >= 2")
        object.__setattr__(self, "epochs", check_int("epochs", self.epochs, 1))
        object.__setattr__(self, "seed", check_int("seed", self.seed, 0))
        check_choice("dtype", self.dtype, DTYPES)
        object.__setattr__(self, "l2", check_real("l2", self.l2, 0.0, math.inf))
        object.__setattr__(self, "leaky_relu_slope",
                           check_real("leaky_relu_slope", self.leaky_relu_slope, 0.0, 1.0, low_open=True))
        if not isinstance(self.shuffle, bool):
            raise field_error("shuffle", f"expected true or false, got {self.shuffle!r}")

    # -- the stack, read back (computed once: the spec is frozen) -----------------------------

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample: (n_0,), (T, n), (C, H, W) or T token ids (T,)."""
        return self.inputs if isinstance(self.inputs, tuple) else (self.inputs,)

    @property
    def token_inputs(self) -> bool:
        """True when the inputs are integer token ids: the first layer is an embedding."""
        return isinstance(self.layers[0], EmbeddingSpec)

    @functools.cached_property
    def numbered_layers(self) -> tuple[LayerSpec, ...]:
        """The layers l = 1..L: every layer but dropout, in order."""
        return tuple(layer for layer in self.layers if not isinstance(layer, DropoutSpec))

    @functools.cached_property
    def dense_layers(self) -> tuple[DenseSpec, ...]:
        return tuple(layer for layer in self.layers if isinstance(layer, DenseSpec))

    @property
    def layer_shapes(self) -> tuple[tuple[int, ...], ...]:
        """(shape of A_0, shape of A_1, …, shape of A_L), each for one sample (computed by the
        validation, which checks every layer's input shape)."""
        return self._layer_shapes

    @functools.cached_property
    def parameter_layers(self) -> tuple[int, ...]:
        """The l whose layer has parameters W_l, b_l (dense, conv2d, batch_norm, layer_norm)."""
        return tuple(number for number, layer in enumerate(self.numbered_layers, start=1)
                     if layer.parameter_shapes(self.layer_shapes[number - 1]))

    @functools.cached_property
    def parameter_shapes(self) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
        """((shape of W_l, shape of b_l) for every l in :attr:`parameter_layers`)."""
        return tuple(self.numbered_layers[number - 1].parameter_shapes(self.layer_shapes[number - 1])
                     for number in self.parameter_layers)

    @functools.cached_property
    def kernel_layers(self) -> tuple[int, ...]:
        """The l whose layer declares a tensor L2 penalizes (``TensorSpec.l2``: the dense and conv2d
        kernels)."""
        return tuple(number for number in self.parameter_layers
                     if any(tensor.l2 for tensor in self.numbered_layers[number - 1].tensors))

    @functools.cached_property
    def cancelled_biases(self) -> tuple[int, ...]:
        """The l whose offset (a bias, ``TensorSpec.offset``) the next layer removes again: layer l
        has an identity activation and the next layer (no dropout between) subtracts the batch
        mean per channel (``centers``: BatchNorm), so b_l changes no training-mode output and its
        true gradient is exactly 0 — after training it holds its start plus each backend's
        rounding residue."""
        cancelled, number = [], 0
        for layer, following in zip(self.layers[:-1], self.layers[1:], strict=True):
            number += not isinstance(layer, DropoutSpec)
            if (any(tensor.offset for tensor in layer.tensors) and activation_of(layer) == "identity"
                    and following.centers):
                cancelled.append(number)
        return tuple(cancelled)

    @functools.cached_property
    def statistics_layers(self) -> tuple[int, ...]:
        """The l of every layer with running statistics (``role="statistic"``: batch_norm)."""
        return tuple(number for number, layer in enumerate(self.numbered_layers, start=1)
                     if any(not tensor.trainable for tensor in layer.tensors))

    @functools.cached_property
    def parameter_names(self) -> tuple[tuple[str, ...], ...]:
        """(the names of layer l's trainable tensors, e.g. ("W", "b") or ("gamma", "beta"), for
        every l in :attr:`parameter_layers`): the order of the optimizer's slots."""
        return tuple(tuple(tensor.name for tensor in self.numbered_layers[number - 1].tensors
                           if tensor.trainable) for number in self.parameter_layers)

    @functools.cached_property
    def gradient_names(self) -> tuple[tuple[str, ...], ...]:
        """(the trace names ``d<name><l>`` of layer l's trainable tensors' gradients, e.g.
        ("dW1", "db1"), ("dgamma2", "dbeta2") or ("dalpha3",), for every l in
        :attr:`parameter_layers`; :func:`~scratch.tensor_specs.gradient_name`)."""
        return tuple(tuple(gradient_name(name, number) for name in names)
                     for number, names in zip(self.parameter_layers, self.parameter_names, strict=True))

    @functools.cached_property
    def one_value_norms(self) -> tuple[str, ...]:
        """Each batch_norm layer that one sample gives one value per channel — on (n,) features or
        on 1×1 maps — described as ``layers[i] (batch_norm on (16,))``: a batch of one row cannot
        train it (``scratch.layers.normalization``)."""
        numbered = [index for index, layer in enumerate(self.layers) if not isinstance(layer, DropoutSpec)]
        return tuple(f"layers[{index}] (batch_norm on {self.layer_shapes[number - 1]})"
                     for number, index in enumerate(numbered, start=1)
                     if self.layers[index].centers
                     and values_per_channel(self.layer_shapes[number - 1]) == 1)

    @functools.cached_property
    def is_mlp(self) -> bool:
        """True for a stack of dense layers (with dropout) on flat inputs: what the MLP
        shorthand can write, and what :attr:`layer_sizes` describes."""
        return not isinstance(self.inputs, tuple) and len(self.dense_layers) == len(self.numbered_layers)

    @functools.cached_property
    def layer_sizes(self) -> tuple[int, ...]:
        """(n_0, n_1, …, n_L): the inputs and every dense layer's units (an MLP only)."""
        if not self.is_mlp:
            kinds = sorted({layer.kind for layer in self.numbered_layers} - {"dense"})
            raise SpecError(f"spec: layer_sizes describes a stack of dense layers on flat inputs; this "
                            f"stack has {', '.join(kinds) or f'inputs {self.inputs}'} (read layer_shapes)")
        return (self.inputs, *(layer.units for layer in self.dense_layers))

    @functools.cached_property
    def n_layers(self) -> int:
        """L, the number of numbered layers (the input is layer 0)."""
        return len(self.numbered_layers)

    @functools.cached_property
    def activations(self) -> tuple[str, ...]:
        """(g_1, …, g_L), the activation of every numbered layer (identity where it has none)."""
        return tuple(activation_of(layer) for layer in self.numbered_layers)

    @functools.cached_property
    def dropout_rates(self) -> tuple[float, ...]:
        """p_l for every hidden layer l = 1..L−1 (0.0 where no dropout layer follows it)."""
        rates = []
        for layer in self.layers[:-1]:
            if isinstance(layer, DropoutSpec):
                rates[-1] = layer.rate
            else:
                rates.append(0.0)
        return tuple(rates)

    @property
    def output_activation(self) -> str:
        return self.layers[-1].activation

    @property
    def hidden_activation(self) -> str | None:
        """The shorthand's one hidden activation (None without hidden layers)."""
        return self._uniform("hidden_activation", self.activations[:-1], None)

    @property
    def dropout(self) -> float:
        """The shorthand's one dropout rate of every hidden layer (0.0 for none)."""
        return self._uniform("dropout", self.dropout_rates, 0.0)

    def _uniform(self, name: str, values: tuple, empty: Any) -> Any:
        if not values:
            return empty
        if len(set(values)) > 1:
            raise SpecError(f"spec: '{name}' is the MLP shorthand, but this layer list has "
                            f"{values} by layer; read it per layer")
        return values[0]

    def describe_stack(self) -> str:
        """The inputs and every layer in one line, e.g. ``1×28×28 → conv2d(6, 5×5, same, relu) →
        max_pool2d(2) → … → dense(10, softmax)``."""
        return " → ".join(["×".join(map(str, self.input_shape)), *map(describe_layer, self.layers)])

    def shorthand(self) -> dict[str, Any]:
        """The MLP shorthand's fields of this stack (a :class:`SpecError` if it has none)."""
        values = dict(layer_sizes=self.layer_sizes, hidden_activation=self.hidden_activation,
                      output_activation=self.output_activation, dropout=self.dropout)
        if values["hidden_activation"] is None:
            del values["hidden_activation"]
        return values

    def replace(self, **changes: Any) -> ModelSpec:
        """A copy with ``changes`` applied (and validated again); shorthand fields rebuild the
        stack from the shorthand."""
        if not set(changes) & set(SHORTHAND):
            return dataclasses.replace(self, **changes)
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                  if f.name not in ("inputs", "layers")}
        values.update(self.shorthand())
        values.update(changes)
        return ModelSpec(**values)

    # -- JSON --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if isinstance(self.inputs, tuple):
            data["inputs"] = list(self.inputs)
        data["layers"] = [layer_to_dict(layer) for layer in self.layers]
        data["optimizer"] = {name: value for name, value in dataclasses.asdict(self.optimizer).items()
                             if name not in WRITTEN_WHEN_SET or value != WRITTEN_WHEN_SET[name]}
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        """The spec of either JSON form: the layer list (``inputs``, ``layers``) or the MLP
        shorthand of format-1 files (``layer_sizes``, …)."""
        if not isinstance(data, dict):
            raise SpecError(f"spec: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} | set(SHORTHAND)
        unknown = sorted(set(data) - known)
        if unknown:
            raise field_error(unknown[0], f"unknown field; known fields are {', '.join(sorted(known))}")
        if "layers" not in data and "inputs" not in data and "layer_sizes" not in data:
            raise field_error("layer_sizes", "missing (give layer_sizes, or inputs and layers)")
        values = dict(data)
        if "layers" in values:
            layers = values["layers"]
            if not isinstance(layers, list):
                raise field_error("layers", f"expected a JSON array of layers, got {layers!r}")
            values["layers"] = tuple(layer_from_dict(layer, f"layers[{index}]")
                                     for index, layer in enumerate(layers))
        optimizer = values.get("optimizer", {})
        if isinstance(optimizer, dict):
            opt_known = {f.name for f in dataclasses.fields(OptimizerSpec)}
            opt_unknown = sorted(set(optimizer) - opt_known)
            if opt_unknown:
                raise field_error(f"optimizer.{opt_unknown[0]}",
                            f"unknown field; known fields are {', '.join(sorted(opt_known))}")
            values["optimizer"] = OptimizerSpec(**optimizer)
        else:
            raise field_error("optimizer", f"expected a JSON object, got {optimizer!r}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str, source: str = "spec JSON") -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SpecError(f"{source}: malformed JSON ({error})") from None
        return cls.from_dict(data)
