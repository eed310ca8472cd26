"""The one frozen model spec that every backend reads.

A :class:`ModelSpec` fixes everything that decides a training run: layer sizes, activations,
loss, initializer, optimizer (with its convention and every hyperparameter), batching, epochs,
seed, dtype, L2 and dropout. It is validated on construction, stored as JSON in the metadata
of every weight file, and read unchanged by the NumPy engine, the torch twin and the Keras twin.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from scratch.errors import SpecError

HIDDEN_ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh")
OUTPUT_ACTIVATIONS = ("identity", "sigmoid", "tanh", "softmax")
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
CONVENTIONS = ("torch", "keras")
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
}


def _fail(field_name: str, message: str) -> SpecError:
    return SpecError(f"spec field '{field_name}': {message}")


def _check_choice(field_name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _fail(field_name, f"unknown value {value!r}; expected one of {', '.join(choices)}")


def _check_real(field_name: str, value: Any, low: float, high: float,
                low_open: bool = False, high_open: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(field_name, f"expected a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise _fail(field_name, f"{value!r} is outside {left}{low}, {high}{right}")


def _check_int(field_name: str, value: Any, low: int) -> int:
    """``value`` as a plain ``int``: any integral type (``int``, ``numpy.int64``, …) but not
    ``bool``; a float, even 3.0, is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(field_name, f"expected an integer, got {value!r}")
    if value < low:
        raise _fail(field_name, f"expected an integer >= {low}, got {value}")
    return int(value)


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer and every one of its hyperparameters.

    ``name`` is one of sgd, momentum, rmsprop, adam; ``convention`` ("torch" or "keras") picks
    whose update formula is used where the two frameworks differ (see ``scratch.optimizers``).
    Fields an optimizer does not use must keep their defaults, so a spec never carries a
    setting that silently does nothing.
    """

    name: str = "sgd"
    convention: str = "torch"
    learning_rate: float = 0.1
    momentum: float = 0.0
    rho: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def __post_init__(self) -> None:
        _check_choice("optimizer.name", self.name, OPTIMIZERS)
        _check_choice("optimizer.convention", self.convention, CONVENTIONS)
        _check_real("optimizer.learning_rate", self.learning_rate, 0.0, math.inf, low_open=True)
        _check_real("optimizer.momentum", self.momentum, 0.0, 1.0)
        _check_real("optimizer.rho", self.rho, 0.0, 1.0)
        _check_real("optimizer.beta1", self.beta1, 0.0, 1.0)
        _check_real("optimizer.beta2", self.beta2, 0.0, 1.0)
        _check_real("optimizer.epsilon", self.epsilon, 0.0, 1.0, low_open=True)
        if self.name == "momentum" and self.momentum == 0.0:
            raise _fail("optimizer.momentum", "optimizer 'momentum' needs momentum in (0, 1)")
        if self.name in ("sgd", "adam") and self.momentum != 0.0:
            raise _fail("optimizer.momentum",
                        f"optimizer {self.name!r} takes no momentum (got {self.momentum}); "
                        "use name='momentum' for SGD with momentum")
        default = OptimizerSpec.__dataclass_fields__
        unused = {"sgd": ("rho", "beta1", "beta2", "epsilon"),
                  "momentum": ("rho", "beta1", "beta2", "epsilon"),
                  "rmsprop": ("beta1", "beta2"),
                  "adam": ("rho",)}[self.name]
        for name in unused:
            if getattr(self, name) != default[name].default:
                raise _fail(f"optimizer.{name}",
                            f"optimizer {self.name!r} does not use {name}; leave it at its default")

    @classmethod
    def framework_default(cls, name: str, convention: str, **overrides: Any) -> OptimizerSpec:
        """The optimizer as torch.optim or keras.optimizers builds it with no arguments
        (learning rate, rho/alpha, epsilon), with ``overrides`` applied on top."""
        _check_choice("optimizer.name", name, OPTIMIZERS)
        _check_choice("optimizer.convention", convention, CONVENTIONS)
        values = dict(FRAMEWORK_DEFAULTS[(name, convention)])
        values.update(overrides)
        return cls(name=name, convention=convention, **values)


@dataclass(frozen=True)
class ModelSpec:
    """A fully connected network and how to train it.

    ``layer_sizes`` is (n_in, n_1, ..., n_L): layer l maps n_{l-1} features to n_l with
    Z_l = A_{l-1} · W_lᵀ + b_l and A_l = g_l(Z_l), where g_l is ``hidden_activation`` for
    l < L and ``output_activation`` for l = L. ``batch_size=None`` means full batch.
    ``l2`` is λ in the penalty (λ/2)·Σ_l ‖W_l‖²_F added to the mean batch loss (weights
    only, never biases), so it adds λ·W_l to dW_l. ``dropout`` is the drop probability p of
    inverted dropout on every hidden layer's output (A_l ← A_l · mask / (1 − p));
    the output layer never drops.
    """

    layer_sizes: tuple[int, ...]
    hidden_activation: str = "relu"
    output_activation: str = "softmax"
    loss: str = "cce"
    init: str = "he_normal"
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    batch_size: int | None = None
    epochs: int = 1
    seed: int = 0
    dtype: str = "float64"
    l2: float = 0.0
    dropout: float = 0.0
    leaky_relu_slope: float = 0.01
    shuffle: bool = True

    def __post_init__(self) -> None:
        sizes = self.layer_sizes
        if not isinstance(sizes, (tuple, list)):
            raise _fail("layer_sizes", f"expected a sequence of integers, got {sizes!r}")
        if len(sizes) < 2:
            raise _fail("layer_sizes", f"expected at least (n_in, n_out), got {tuple(sizes)}")
        sizes = tuple(_check_int(f"layer_sizes[{index}]", size, 1) for index, size in enumerate(sizes))
        object.__setattr__(self, "layer_sizes", sizes)
        _check_choice("hidden_activation", self.hidden_activation, HIDDEN_ACTIVATIONS)
        _check_choice("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        _check_choice("loss", self.loss, LOSSES)
        if self.output_activation not in LOSS_OUTPUTS[self.loss]:
            raise _fail("output_activation",
                        f"{self.output_activation!r} does not fit loss {self.loss!r}; expected "
                        f"one of {', '.join(LOSS_OUTPUTS[self.loss])}")
        if self.output_activation == "softmax" and sizes[-1] < 2:
            raise _fail("layer_sizes", "softmax output needs at least 2 units")
        _check_choice("init", self.init, INITIALIZERS)
        if not isinstance(self.optimizer, OptimizerSpec):
            raise _fail("optimizer", f"expected an OptimizerSpec, got {type(self.optimizer).__name__}")
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", _check_int("batch_size", self.batch_size, 1))
        object.__setattr__(self, "epochs", _check_int("epochs", self.epochs, 1))
        object.__setattr__(self, "seed", _check_int("seed", self.seed, 0))
        _check_choice("dtype", self.dtype, DTYPES)
        _check_real("l2", self.l2, 0.0, math.inf)
        _check_real("dropout", self.dropout, 0.0, 1.0)
        _check_real("leaky_relu_slope", self.leaky_relu_slope, 0.0, 1.0, low_open=True)
        if not isinstance(self.shuffle, bool):
            raise _fail("shuffle", f"expected true or false, got {self.shuffle!r}")

    @property
    def n_layers(self) -> int:
        """L, the number of weight layers (the input is layer 0)."""
        return len(self.layer_sizes) - 1

    def replace(self, **changes: Any) -> ModelSpec:
        """A copy with ``changes`` applied (and validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["layer_sizes"] = list(self.layer_sizes)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> ModelSpec:
        if not isinstance(data, dict):
            raise SpecError(f"spec: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise _fail(unknown[0], f"unknown field; known fields are {', '.join(sorted(known))}")
        if "layer_sizes" not in data:
            raise _fail("layer_sizes", "missing (it has no default)")
        values = dict(data)
        optimizer = values.get("optimizer", {})
        if isinstance(optimizer, dict):
            opt_known = {f.name for f in dataclasses.fields(OptimizerSpec)}
            opt_unknown = sorted(set(optimizer) - opt_known)
            if opt_unknown:
                raise _fail(f"optimizer.{opt_unknown[0]}",
                            f"unknown field; known fields are {', '.join(sorted(opt_known))}")
            values["optimizer"] = OptimizerSpec(**optimizer)
        else:
            raise _fail("optimizer", f"expected a JSON object, got {optimizer!r}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str, source: str = "spec JSON") -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SpecError(f"{source}: malformed JSON ({error})") from None
        return cls.from_dict(data)
