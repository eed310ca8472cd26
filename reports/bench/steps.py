"""One training step (forward + backward + optimizer update) of any spec, per backend, as a
zero-argument callable on a fixed batch already converted to the backend's own arrays — each
backend's one public compiled (or eager) step, the one its ``fit(fused=True)`` runs:

* ``scratch``     — the NumPy engine (``ScratchBackend.train_step``: ``Network.train_step``).
* ``plain-numpy`` — the same step written straight in NumPy, no engine classes
  (:mod:`reports.bench.plain_numpy`): the baseline that shows the engine's per-step overhead;
  a dense ReLU/softmax + CCE stack with plain SGD only.
* ``torch``       — the torch twin, eager (``TorchBackend.train_step``).
* ``tf.function`` — the Keras twin's step traced into one TensorFlow graph (``graph_train_step``).
* ``keras``       — a compiled ``keras.Sequential`` and ``train_on_batch``, Keras's public
  one-step API (its default ``jit_compile="auto"``); dense stacks only.
* ``jax``         — the JAX twin's fused step (``JaxBackend.fused_step``: forward,
  ``jax.value_and_grad`` and the optax update in one ``jax.jit`` with donated buffers).

A twin that cannot train the spec's optimizer convention times the same optimizer in its own
(:func:`reports.cli.backend_training.trainable_spec`: Keras and torch-convention Adam), as it
would train it. Every callable returns the step's loss as a Python float, which also forces the
step to finish, and has ``tensors()``: the named tensors ({name: array} per layer with parameters)
in canonical layout, so that a test can check that it computes the engine's update.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from reports.bench.plain_numpy import PlainNumpyStep
from reports.cli.backend_training import trainable_spec
from scratch.errors import BackendError
from twins import backends

STEP_KINDS = ("scratch", "plain-numpy", "torch", "tf.function", "keras", "jax")
NEEDS = {"scratch": "numpy", "plain-numpy": "numpy", "torch": "torch", "tf.function": "tensorflow",
         "keras": "tensorflow", "jax": "jax"}
BACKEND = {"scratch": "scratch", "plain-numpy": "scratch", "torch": "torch", "tf.function": "keras",
           "keras": "keras", "jax": "jax"}


def available_kinds() -> list[str]:
    return [kind for kind in STEP_KINDS if importlib.util.find_spec(NEEDS[kind]) is not None]


def kinds_for(kinds: list[str], spec) -> list[str]:
    """Those of ``kinds`` that can time ``spec`` (plain-numpy: :func:`plain_numpy_refusal`; keras's
    ``train_on_batch`` model: dense stacks)."""
    refused = {"plain-numpy": plain_numpy_refusal(spec) is not None, "keras": not spec.is_mlp}
    return [kind for kind in kinds if not refused.get(kind, False)]


def spec_for_kind(kind: str, spec):
    """The spec ``kind`` times: ``spec``, in the twin's own optimizer convention where it has to."""
    return trainable_spec(BACKEND[kind], spec)[0]


class Step:
    """A timed step: ``step()`` → the loss as a Python float; ``tensors()`` → the named tensors."""

    def __init__(self, step, tensors):
        self._step, self.tensors = step, tensors

    def __call__(self) -> float:
        return float(self._step())


def make_step(kind: str, spec, tensors, x: np.ndarray, targets: np.ndarray) -> Step:
    """The step callable for ``kind`` (see the module docstring), timing :func:`spec_for_kind`, from
    the named ``tensors`` (``Network.tensors``)."""
    spec = spec_for_kind(kind, spec)
    if kind == "plain-numpy":
        refusal = plain_numpy_refusal(spec)
        if refusal:
            raise BackendError(refusal)
        plain = PlainNumpyStep(tensors, x, targets, spec.optimizer.learning_rate)
        return Step(plain, plain.tensors)
    if kind in ("scratch", "torch"):
        backend = backends.make_backend(kind, spec, tensors=tensors)
        return Step(lambda: backend.train_step(x, targets), backend.tensors)
    if kind == "jax":
        backend = backends.make_backend("jax", spec, tensors=tensors)
        inputs = backend.fused_inputs(x, targets)
        return Step(lambda: backend.fused_step(*inputs), backend.tensors)
    import tensorflow as tf

    if kind == "tf.function":
        backend = backends.make_backend("keras", spec, tensors=tensors)
        step = backend.graph_train_step()
        x_tensor, y_tensor = tf.constant(x), tf.constant(targets)
        return Step(lambda: step(x_tensor, y_tensor), backend.tensors)
    if kind == "keras":
        return _keras_train_on_batch(spec, tensors, x, targets)
    raise ValueError(f"unknown step kind {kind!r}; expected one of {', '.join(STEP_KINDS)}")


def plain_numpy_refusal(spec) -> str | None:
    """Why the plain-numpy step cannot time ``spec`` (None: it can)."""
    optimizer = spec.optimizer
    if spec.is_mlp and (spec.hidden_activation, spec.output_activation, spec.loss, optimizer.name, spec.l2,
                        spec.dropout) == ("relu", "softmax", "cce", "sgd", 0.0, 0.0):
        return None
    if not spec.is_mlp:
        return ("the plain-numpy bench step is written for ReLU/softmax dense stacks, not a "
                f"{spec.describe_stack()}")
    return ("the plain-numpy bench step is written for ReLU/softmax + CCE, plain SGD, no "
            f"L2 and no dropout; got {spec.hidden_activation}/{spec.output_activation} + "
            f"{spec.loss}, {optimizer.name}, l2={spec.l2:g}, dropout={spec.dropout:g}")


def _keras_train_on_batch(spec, tensors, x, targets) -> Step:
    import keras

    from twins.keras_backend import KerasBackend

    twin = KerasBackend(spec, tensors=tensors)         # its optimizer, loss and checks
    sizes = spec.layer_sizes
    layers = [keras.Input((sizes[0],), dtype=spec.dtype)]
    for layer in range(1, spec.n_layers + 1):
        if layer < spec.n_layers:
            activation = spec.hidden_activation
        else:                                           # CCE/BCE read the logits
            activation = None if twin.loss_input == "logits" else spec.output_activation
        activation = {"identity": "linear"}.get(activation, activation)
        layers.append(keras.layers.Dense(sizes[layer], activation=activation, dtype=spec.dtype))
    model = keras.Sequential(layers)
    model.set_weights([variable.numpy() for variable in twin.variables])   # already in Keras's layout

    def named():
        values = model.get_weights()                   # [kernel (in, out), bias, …]
        return [{"W": w.T.copy(), "b": b.copy()} for w, b in zip(values[0::2], values[1::2], strict=True)]

    model.compile(optimizer=twin.optimizer, loss=twin.loss_fn)
    return Step(lambda: model.train_on_batch(x, targets), named)
