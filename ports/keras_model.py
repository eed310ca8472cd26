"""The user's own Keras model run as it is, NumPy in and out: :class:`KerasModel`, the Keras side's
:class:`ports.reading.RealModel`.

Maps cross channels-first at the boundary (:func:`twins.keras_layers.to_keras_map`), parameters
in the canonical layout through each tensor's :class:`twins.keras_layers.Parameter`. Every method
calls the model itself (``model(x, training=…)``) and its own compiled loss
(``model.compute_loss``: the loss plus ``sum(model.losses)``, the regularizers, as ``fit`` does):

* dropout is off: each ``Dropout`` layer's rate is 0 for the call and restored after it;
* training mode moves BatchNormalization's moving statistics; :meth:`KerasModel.outputs` and
  :meth:`KerasModel.loss_and_gradients` put them back, :meth:`KerasModel.step` keeps the move;
* a model compiled with ``from_logits=True`` returns logits: :meth:`KerasModel.outputs` applies
  the loss's softmax (sigmoid) to give A_L. A softmax output with ``from_logits=True`` (the
  double-softmax finding) is run as it is: Keras on TensorFlow computes that loss from the
  softmax's logits (``ports.keras_compiled``), and the output already is A_L;
* :meth:`KerasModel.step` uses a fresh optimizer of the model's own class and configuration (not
  the optimizer state a saved file may carry, so that it starts as the reading's does);
  :meth:`KerasModel.load` starts it afresh again. An uncompiled model takes the spec's loss and
  optimizer as the Keras twin builds them (``twins.keras_backend._optimizer``).
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

from ports.reading import PortError
from scratch.errors import BackendError
from scratch.layer_specs import DropoutSpec
from twins.keras_backend import _floatx, _optimizer
from twins.keras_layers import checked_statistics, to_canonical_map, to_keras_map

UNCOMPILED_LOSSES = {"cce": keras.losses.CategoricalCrossentropy, "bce": keras.losses.BinaryCrossentropy,
                     "mse": keras.losses.MeanSquaredError}
"""The spec's loss for an uncompiled model, on its A_L (a Keras softmax/sigmoid output carries its
logits, which the cross-entropies take)."""


class KerasModel:
    """The user's ``keras.Model`` answering :class:`ports.reading.RealModel` (module docstring).

    ``pieces``: the reading's pieces (``ports.keras_reading.Piece``), in order; ``loss``: the
    compiled loss's reading (``ports.keras_compiled.LossReading``), None for a model compiled
    without one; ``own_optimizer``: the model is compiled with an optimizer the reading took."""

    def __init__(self, model, spec, pieces, loss=None, own_optimizer: bool = False):
        self.model, self.spec, self.compiled_loss, self.own_optimizer = model, spec, loss, own_optimizer
        self.held = [piece.parameters for piece in pieces if piece.parameters]
        self.layouts = [parameter for held in self.held for parameter in held.values()]
        self.variables = [parameter.variable for parameter in self.layouts]
        self.moving = [piece.statistics for piece in pieces if piece.statistics is not None]
        self.dropouts = [piece.layer for piece in pieces if piece.spec_class is DropoutSpec]
        trainable = {id(variable) for variable in model.trainable_variables}
        if trainable != {id(variable) for variable in self.variables}:
            raise PortError(f"model {model.name!r}: its trainable variables are not the spec's parameters "
                            "(a layer with trainable=False, or a variable the reading does not know)")
        self.logits = None if loss is None else loss.logits
        self.own_output = spec.output_activation           # what the model's last layer applies
        self.loss_fn = (None if loss is not None
                        else UNCOMPILED_LOSSES[spec.loss](dtype=spec.dtype))
        self.optimizer = self._fresh_optimizer()

    def use_spec(self, spec) -> None:
        """Run with ``spec``'s loss and optimizer where the model was compiled with none
        (``ports.compare.fill`` takes them from the other side). An uncompiled model with a linear
        output given a cross-entropy returns logits: its A_L is their softmax (sigmoid), and the
        loss takes them ``from_logits``, as its user would compile it."""
        self.spec = spec
        if self.compiled_loss is None:
            from_logits = self.own_output == "identity" and spec.output_activation in ("softmax", "sigmoid")
            self.logits = spec.output_activation if from_logits else None
            self.loss_fn = UNCOMPILED_LOSSES[spec.loss](dtype=spec.dtype,
                                                        **({"from_logits": True} if from_logits else {}))
        self.optimizer = self._fresh_optimizer()

    def _fresh_optimizer(self):
        if not self.own_optimizer:
            return _optimizer(self.spec)
        own = self.model.optimizer
        with _floatx(str(own.learning_rate.dtype)):
            return type(own).from_config(own.get_config())

    # -- NumPy at the boundary ----------------------------------------------------------------

    def _array(self, array, shape: tuple[int, ...], what: str):
        array = np.asarray(array)
        if (array.ndim != 1 + len(shape) or array.shape[1:] != shape
                or array.dtype != np.dtype(self.spec.dtype)):
            raise PortError(f"{what}: expected (m, {', '.join(map(str, shape))}) {self.spec.dtype}, "
                            f"got {array.shape} {array.dtype}")
        return tf.constant(to_keras_map(array))

    def _inputs(self, x):
        return self._array(x, self.spec.input_shape, "inputs")

    def _targets(self, targets):
        y = self._array(targets, self.spec.layer_shapes[-1], "targets")
        if self.compiled_loss is not None and self.compiled_loss.sparse:
            return tf.argmax(y, axis=1)                    # SparseCategoricalCrossentropy takes labels
        return y

    def tensors(self) -> list[dict[str, np.ndarray]]:
        return [{name: p.to_canonical(p.variable.numpy()) for name, p in held.items()} for held in self.held]

    def statistics(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(mean.numpy().copy(), variance.numpy().copy()) for mean, variance in self.moving]

    # -- the protocol ---------------------------------------------------------------------------

    def load(self, tensors, statistics) -> None:
        """Every parameter (canonical layout, the spec's dtype, checked before any is set) and
        BatchNorm's moving statistics (None: kept as they are); the optimizer starts afresh."""
        if len(tensors) != len(self.held):
            raise PortError(f"load: tensors for {len(tensors)} layers, the model has {len(self.held)} "
                            "layers with parameters")
        pending = []
        for number, given, held in zip(self.spec.parameter_layers, tensors, self.held, strict=True):
            if sorted(given) != sorted(held):
                raise PortError(f"load: layer {number} holds {', '.join(held)}, "
                                f"got {', '.join(sorted(given))}")
            for name, parameter in held.items():
                array = np.asarray(given[name])
                if array.shape != parameter.canonical_shape or array.dtype != np.dtype(self.spec.dtype):
                    raise PortError(f"load: {name}{number} must be {parameter.canonical_shape} "
                                    f"{self.spec.dtype}, got {array.shape} {array.dtype}")
                pending.append((parameter.variable, parameter.to_keras(array)))
        if statistics is not None:
            try:
                pending += checked_statistics(self.moving, statistics, self.spec.dtype, "load")
            except BackendError as error:
                raise PortError(str(error)) from None
        for variable, value in pending:
            variable.assign(value)
        self.optimizer = self._fresh_optimizer()

    def outputs(self, x: np.ndarray, training: bool) -> np.ndarray:
        with self._no_dropout(), self._statistics_kept():
            y = self.model(self._inputs(x), training=training)
        return to_canonical_map(self._probabilities(y).numpy())

    def loss_and_gradients(self, x: np.ndarray, targets: np.ndarray) -> tuple[float, list[np.ndarray]]:
        with self._no_dropout(), self._statistics_kept(), tf.GradientTape() as tape:
            loss = self._loss(x, targets)
        gradients = tape.gradient(loss, self.variables)
        return float(loss.numpy()), [parameter.to_canonical(gradient.numpy())
                                     for parameter, gradient in zip(self.layouts, gradients, strict=True)]

    def step(self, x: np.ndarray, targets: np.ndarray) -> tuple[list[dict[str, np.ndarray]], list]:
        with self._no_dropout(), tf.GradientTape() as tape:
            loss = self._loss(x, targets)
        gradients = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(gradients, self.variables, strict=True))
        return self.tensors(), self.statistics()

    # -- helpers ---------------------------------------------------------------------------------

    def _loss(self, x, targets):
        """The loss in training mode: the compiled one as ``fit`` computes it, or the spec's plus
        the model's regularizers."""
        x, y = self._inputs(x), self._targets(targets)
        prediction = self.model(x, training=True)
        if self.loss_fn is None:
            return self.model.compute_loss(x=x, y=y, y_pred=prediction, training=True)
        penalties = self.model.losses
        return self.loss_fn(y, prediction) + (tf.add_n(penalties) if penalties else 0.0)

    def _probabilities(self, y):
        if self.logits == "softmax":
            return keras.activations.softmax(y)
        return keras.activations.sigmoid(y) if self.logits == "sigmoid" else y

    @contextlib.contextmanager
    def _no_dropout(self):
        rates = [layer.rate for layer in self.dropouts]
        for layer in self.dropouts:
            layer.rate = 0.0
        try:
            yield
        finally:
            for layer, rate in zip(self.dropouts, rates, strict=True):
                layer.rate = rate

    @contextlib.contextmanager
    def _statistics_kept(self):
        saved = self.statistics()
        try:
            yield
        finally:
            for variables, values in zip(self.moving, saved, strict=True):
                for variable, value in zip(variables, values, strict=True):
                    variable.assign(value)
