"""One training step (forward + backward + optimizer update) of a spec, per backend, as a
zero-argument callable on a fixed batch already converted to the backend's own arrays.

* ``scratch``     — the NumPy engine (``MLP.train_step``).
* ``plain-numpy`` — the same step written straight in NumPy, no engine classes
  (:mod:`reports.bench.plain_numpy`): the baseline that shows the engine's per-step overhead;
  SGD only.
* ``torch``       — the torch twin, eager (``TorchBackend.train_step``).
* ``tf.function`` — the Keras twin's step traced into one TensorFlow graph.
* ``keras``       — a compiled ``keras.Sequential`` and ``train_on_batch``, Keras's public
  one-step API (its default ``jit_compile="auto"``).
* ``jax``         — forward, ``jax.value_and_grad`` and the update in one ``jax.jit`` with donated
  buffers (:mod:`reports.bench.jax_step`; only where JAX is installed, the optional ``jax`` extra).

Every callable returns the step's loss as a Python float, which also forces the step to finish.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from twins.backends import make_backend

STEP_KINDS = ("scratch", "plain-numpy", "torch", "tf.function", "keras", "jax")
NEEDS = {"scratch": "numpy", "plain-numpy": "numpy", "torch": "torch", "tf.function": "tensorflow",
         "keras": "tensorflow", "jax": "jax"}
# The optimizers a kind implements where it is not every one of the grid's.
ONLY = {"plain-numpy": ("sgd",)}


def available_kinds() -> list[str]:
    return [kind for kind in STEP_KINDS if importlib.util.find_spec(NEEDS[kind]) is not None]


def kinds_for(kinds: list[str], optimizer: str) -> list[str]:
    """Those of ``kinds`` that implement ``optimizer``."""
    return [kind for kind in kinds if optimizer in ONLY.get(kind, (optimizer,))]


def make_step(kind: str, spec, weights, biases, x: np.ndarray, targets: np.ndarray):
    """The step callable for ``kind`` (see the module docstring)."""
    if kind == "plain-numpy":
        return _plain_numpy(spec, weights, biases, x, targets)
    if kind in ("scratch", "torch"):
        backend = make_backend(kind, spec, weights, biases)
        return lambda: backend.train_step(x, targets)
    if kind == "jax":
        from reports.bench.jax_step import JaxStep

        return JaxStep(spec, weights, biases, x, targets)
    import tensorflow as tf

    if kind == "tf.function":
        backend = make_backend("keras", spec, weights, biases)
        step = backend.graph_train_step()
        x_tensor, y_tensor = tf.constant(x), tf.constant(targets)
        return lambda: float(step(x_tensor, y_tensor))
    if kind == "keras":
        return _keras_train_on_batch(spec, weights, biases, x, targets)
    raise ValueError(f"unknown step kind {kind!r}; expected one of {', '.join(STEP_KINDS)}")


def _plain_numpy(spec, weights, biases, x, targets):
    from reports.bench.plain_numpy import PlainNumpyStep
    from scratch.errors import BackendError

    optimizer = spec.optimizer
    written = (spec.hidden_activation, spec.output_activation, spec.loss, optimizer.name, spec.l2,
               spec.dropout) == ("relu", "softmax", "cce", "sgd", 0.0, 0.0)
    if not written:
        raise BackendError("the plain-numpy bench step is written for ReLU/softmax + CCE, plain SGD, no "
                           f"L2 and no dropout; got {spec.hidden_activation}/{spec.output_activation} + "
                           f"{spec.loss}, {optimizer.name}, l2={spec.l2:g}, dropout={spec.dropout:g}")
    return PlainNumpyStep(weights, biases, x, targets, optimizer.learning_rate)


def _keras_train_on_batch(spec, weights, biases, x, targets):
    import keras

    from twins.keras_backend import KerasBackend

    twin = KerasBackend(spec, weights, biases)         # its optimizer, loss and checks
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
    model.compile(optimizer=twin.optimizer, loss=twin.loss_fn)
    return lambda: float(model.train_on_batch(x, targets))
