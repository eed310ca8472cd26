"""What a compiled Keras model adds to its reading: the spec's loss (and the output activation it
implies) and the spec's optimizer, in the keras convention.

Losses: ``CategoricalCrossentropy`` and ``SparseCategoricalCrossentropy`` → cce with a softmax
output, ``BinaryCrossentropy`` → bce with a sigmoid output, ``MeanSquaredError`` → mse (as a
class, a function or its name; mean over the batch, no label smoothing). ``from_logits=True``
needs a linear output layer, and the spec's output activation is then the softmax (sigmoid) the
loss applies; ``from_logits=False`` needs the softmax (sigmoid) output itself.

A softmax output with ``from_logits=True`` is a double softmax in most frameworks and a
:class:`~ports.reading.Finding` (likewise a sigmoid with BCE). Keras 3.15 on TensorFlow rescues it
(measured: ``parity_tests/frameworks/test_ports_keras.py``): ``keras.activations.softmax`` and
``sigmoid`` leave their input on the output tensor (``_keras_logits``), and the TensorFlow
cross-entropies take those logits whatever ``from_logits`` says, with a warning. So such a Keras
model trains as softmax + cross-entropy, which is how it is read — the mistake bites where the
model is ported. For the same reason ``from_logits=False`` on a Keras softmax/sigmoid output
computes from the logits, without the clipping of probabilities to [ε, 1 − ε] (ε = 1e-7) that a
bare probability tensor gets.

Optimizers: ``SGD`` (momentum 0: sgd, > 0: momentum), ``RMSprop``, ``Adam``, with the learning
rate read from the optimizer's variable (a float32 variable holds 0.01 as 0.0099999998, the value
a float64 model is really trained with).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from ports.reading import Finding, PortError
from scratch.spec import OptimizerSpec

CROSS_ENTROPIES = {"cce": "softmax", "bce": "sigmoid"}
"""Each cross-entropy → the output activation it pairs with (the one from_logits=True applies)."""
DOUBLE = {"softmax": "double_softmax", "sigmoid": "double_sigmoid"}
"""The Finding's cause where a loss with from_logits=True follows that activation."""
LOSS_CLASSES = {keras.losses.CategoricalCrossentropy: "cce",
                keras.losses.SparseCategoricalCrossentropy: "cce",
                keras.losses.BinaryCrossentropy: "bce", keras.losses.MeanSquaredError: "mse"}
LOSS_FUNCTIONS = {keras.losses.categorical_crossentropy: keras.losses.CategoricalCrossentropy,
                  keras.losses.sparse_categorical_crossentropy: keras.losses.SparseCategoricalCrossentropy,
                  keras.losses.binary_crossentropy: keras.losses.BinaryCrossentropy,
                  keras.losses.mean_squared_error: keras.losses.MeanSquaredError}
REFUSED_OPTIONS = ("clipnorm", "clipvalue", "global_clipnorm", "loss_scale_factor",
                   "gradient_accumulation_steps")


@dataclass(frozen=True)
class LossReading:
    """The spec's loss and output activation; ``logits``: the activation the real model applies to
    its linear output to give A_L (None: the output is A_L); ``sparse``: the loss takes labels."""

    loss: str
    output_activation: str
    logits: str | None
    sparse: bool
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]


def loss_object(model) -> keras.losses.Loss:
    """The compiled loss as a Loss instance (a name or function becomes its class's default)."""
    loss = model.loss
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError:
            raise PortError(f"compiled loss {model.loss!r} is unknown to keras.losses") from None
    if isinstance(loss, (list, tuple, dict)):
        raise PortError("the model is compiled with several losses; the reading takes one")
    if callable(loss) and not isinstance(loss, keras.losses.Loss):
        if loss not in LOSS_FUNCTIONS:
            raise PortError(f"compiled loss {getattr(loss, '__name__', loss)!r}: the reading takes "
                            "categorical, sparse categorical or binary cross-entropy, or mean squared error")
        loss = LOSS_FUNCTIONS[loss]()
    if type(loss) not in LOSS_CLASSES:
        raise PortError(f"compiled loss {type(loss).__name__}: the reading takes "
                        f"{', '.join(c.__name__ for c in LOSS_CLASSES)}")
    return loss


def read_loss(model, output: str, number: int, dtype: str) -> LossReading:
    """The compiled loss against the model's output activation ``output`` (the spec's name) of
    output layer ``number`` (module docstring)."""
    config = model.get_compile_config() or {}
    if config.get("loss_weights") is not None:
        raise PortError(f"loss_weights={config['loss_weights']!r} has no spec equivalent")
    loss = loss_object(model)
    options = loss.get_config()
    name = LOSS_CLASSES[type(loss)]
    if options.get("reduction", "sum_over_batch_size") != "sum_over_batch_size":
        raise PortError(f"{type(loss).__name__}(reduction={options['reduction']!r}): the spec's loss "
                        "is the mean over the batch ('sum_over_batch_size')")
    if options.get("label_smoothing", 0):
        raise PortError(f"{type(loss).__name__}(label_smoothing={options['label_smoothing']}) has no "
                        "spec equivalent")
    if options.get("axis", -1) != -1 or options.get("ignore_class") is not None:
        raise PortError(f"{type(loss).__name__}: axis other than -1 or ignore_class has no spec equivalent")
    notes = []
    compiled = getattr(model, "_compile_loss", None)
    used = {loss.dtype if isinstance(model.loss, keras.losses.Loss) else dtype,
            getattr(compiled, "dtype", dtype)}
    if used != {dtype}:
        notes.append(f"the compiled {type(loss).__name__} computes in {' and '.join(sorted(used))} on a "
                     f"{dtype} model (Keras builds a loss in floatx when the model is compiled)")
    if name == "mse":
        return LossReading("mse", output, None, False, (), tuple(notes))
    wanted, findings, logits = CROSS_ENTROPIES[name], (), None
    if options.get("from_logits"):
        if output == "identity":
            logits = wanted
        elif output == wanted:
            findings = (Finding(DOUBLE[wanted], f"layer {number}", (
                f"a {wanted} output with {type(loss).__name__}(from_logits=True), which applies its own "
                f"{wanted}: a double {wanted} where the model is ported (Keras on TensorFlow takes the "
                f"{wanted}'s logits instead and warns, so this model trains as one {wanted}); read as one")),)
        else:
            raise PortError(f"{type(loss).__name__}(from_logits=True) after a {output!r} output: "
                            f"the logits must come from a linear output layer")
    elif output != wanted:
        raise PortError(f"{type(loss).__name__}(from_logits=False) needs a {wanted} output layer, "
                        f"got {output!r}")
    return LossReading(name, wanted, logits, type(loss) is keras.losses.SparseCategoricalCrossentropy,
                       findings, tuple(notes))


def read_optimizer(optimizer) -> OptimizerSpec:
    """The spec's optimizer (keras convention) of a Keras optimizer; a PortError naming any option
    the spec cannot express. Keras's ``weight_decay`` (AdamW's default 0.004, every other
    optimizer's None) is decoupled: θ ← θ − θ·λ·η on every trainable variable before the update."""
    kinds = {keras.optimizers.SGD: "SGD", keras.optimizers.RMSprop: "RMSprop", keras.optimizers.Adam: "Adam",
             keras.optimizers.AdamW: "AdamW"}
    if type(optimizer) not in kinds:
        what = ("a loss-scale optimizer" if isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
                else type(optimizer).__name__)
        raise PortError(f"optimizer {what}: the reading takes keras.optimizers.SGD, RMSprop or Adam")
    config = optimizer.get_config()
    for option in REFUSED_OPTIONS:
        if config.get(option):
            raise PortError(f"optimizer {kinds[type(optimizer)]}({option}={config[option]!r}) has no spec "
                            "equivalent")
    if getattr(optimizer, "_exclude_from_weight_decay", None) or getattr(
            optimizer, "_exclude_from_weight_decay_pattern", None) is not None:
        raise PortError(f"optimizer {kinds[type(optimizer)]}: variables excluded from weight decay; the "
                        "spec decays every trainable variable or none")
    decay = float(config.get("weight_decay") or 0.0)
    decayed = {"weight_decay": decay, "decoupled_decay": True} if decay else {}
    if config.get("use_ema"):
        raise PortError(f"optimizer {kinds[type(optimizer)]}(use_ema=True) has no spec equivalent")
    if isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        raise PortError(f"optimizer {kinds[type(optimizer)]}: a LearningRateSchedule has no spec "
                        "equivalent (the spec's learning rate is constant)")
    rate = float(optimizer.learning_rate.numpy())
    if isinstance(optimizer, keras.optimizers.SGD):
        if config["nesterov"]:
            raise PortError("optimizer SGD(nesterov=True) has no spec equivalent")
        momentum = float(config["momentum"])
        return OptimizerSpec("momentum" if momentum else "sgd", "keras", rate, momentum=momentum, **decayed)
    if isinstance(optimizer, keras.optimizers.RMSprop):
        if config["centered"]:
            raise PortError("optimizer RMSprop(centered=True) has no spec equivalent")
        return OptimizerSpec("rmsprop", "keras", rate, rho=float(config["rho"]),
                             epsilon=float(config["epsilon"]), momentum=float(config["momentum"]), **decayed)
    if config["amsgrad"]:
        raise PortError("optimizer Adam(amsgrad=True) has no spec equivalent")
    return OptimizerSpec("adam", "keras", rate, beta1=float(config["beta_1"]), beta2=float(config["beta_2"]),
                         epsilon=float(config["epsilon"]), **decayed)
