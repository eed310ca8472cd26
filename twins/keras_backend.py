"""The spec's model in real Keras 3 layers, losses and optimizers on the TensorFlow backend.

The model is built from the spec's layer list through one table,
:data:`twins.keras_layers.LAYERS` (layer kind → the Keras layers that run it, as one block per
numbered layer); that module also holds the layouts: maps are channels-last inside the twin and
channels-first at its boundary, parameters convert between Keras's layout and the file's in one
place per kind, asserting shapes. Dropout multiplies by the plan's masks (``keras.layers.Dropout``
would draw its own). Gradients come from ``tf.GradientTape``, which records every Z_l and A_l so
it can differentiate with respect to them too. L2 is ``keras.regularizers.L2(λ/2)`` applied to
each dense and conv2d kernel, i.e. (λ/2)·Σ‖W_l‖², as in the NumPy engine (not to γ).

BatchNormalization: :meth:`KerasBackend.trace`, :meth:`~KerasBackend.layer_trace` and
:meth:`~KerasBackend.forward` call it in training mode, which assigns new moving statistics;
they put the old ones back afterwards (:meth:`~KerasBackend._statistics_kept`), so only
:meth:`~KerasBackend.train_step` moves them, with Keras's own update.

Precision: Keras keeps the learning rate in a variable of dtype ``keras.config.floatx()`` and
computes losses in ``floatx`` unless told otherwise. A float32 learning rate would make float64
training differ at ~1e-8, so the optimizer is built with ``floatx`` set to the spec's dtype
(restored afterwards), and every loss is built with ``dtype=spec.dtype``.
"""

from __future__ import annotations

import contextlib
import functools

import keras
import numpy as np
import tensorflow as tf

from judge.optimizer_state import OptimizerState
from scratch.batching import batches
from scratch.errors import BackendError
from scratch.tensor_specs import gradient_name
from twins.backend_base import Backend, check_tokens, given_tensors
from twins.keras_layers import (
    LAYERS,
    Block,
    checked_statistics,
    distinct_variables,
    plan_dropout,
    to_canonical_map,
    to_keras_map,
    variable_values,
)

if keras.backend.backend() != "tensorflow":
    raise BackendError(f"keras backend: Keras runs on {keras.backend.backend()!r}; set "
                       "KERAS_BACKEND=tensorflow before importing keras")


def _loss(spec) -> tuple[keras.losses.Loss, str]:
    if spec.loss == "cce":
        return keras.losses.CategoricalCrossentropy(from_logits=True, dtype=spec.dtype), "logits"
    if spec.loss == "bce":
        return keras.losses.BinaryCrossentropy(from_logits=True, dtype=spec.dtype), "logits"
    return keras.losses.MeanSquaredError(dtype=spec.dtype), "outputs"


def _regularizer(spec):
    """``keras.regularizers.L2(λ/2)``, or an error where Keras cannot represent λ/2 exactly.

    ``L2.__call__`` does ``ops.cast(self.l2, x.dtype)`` on a Python float, which TensorFlow first
    turns into a float32 tensor: in float64 the factor is rounded to float32 (λ = 0.01 becomes
    0.004999999888 · 2), a 1e-9 relative error in every dW. We refuse such λ rather than hide it.
    """
    if not spec.l2:
        return None
    half = spec.l2 / 2
    if spec.dtype == "float64" and float(np.float32(half)) != half:
        raise BackendError(
            f"keras backend: spec field 'l2' = {spec.l2}: keras.regularizers.L2 rounds its factor "
            f"λ/2 = {half} to float32 ({float(np.float32(half))!r}) even for float64 weights; pick λ "
            "with λ/2 exactly representable in float32 (e.g. 2**-6) or use float32")
    return keras.regularizers.L2(half)


@contextlib.contextmanager
def _floatx(dtype: str):
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(previous)


def _optimizer(spec) -> keras.optimizers.Optimizer:
    opt = spec.optimizer
    if opt.convention != "keras" and opt.name != "sgd":
        raise BackendError(f"keras backend: keras.optimizers has no {opt.convention}-convention "
                           f"{opt.name!r}; use convention='keras' (plain SGD is the same in both)")
    if opt.weight_decay and not opt.decoupled_decay:
        raise BackendError("keras backend: keras.optimizers' weight_decay is decoupled (θ − θ·λ·η); "
                           "coupled decay (g + λ·θ on every tensor) has no Keras form: use "
                           "decoupled_decay=true, or the spec's l2 (a loss penalty on kernels)")
    decay = {"weight_decay": opt.weight_decay} if opt.weight_decay else {}
    with _floatx(spec.dtype):
        if opt.name in ("sgd", "momentum"):
            return keras.optimizers.SGD(learning_rate=opt.learning_rate, momentum=opt.momentum, **decay)
        if opt.name == "rmsprop":
            return keras.optimizers.RMSprop(learning_rate=opt.learning_rate, rho=opt.rho,
                                            momentum=opt.momentum, epsilon=opt.epsilon, **decay)
        return keras.optimizers.Adam(learning_rate=opt.learning_rate, beta_1=opt.beta1,
                                     beta_2=opt.beta2, epsilon=opt.epsilon, **decay)


class KerasBackend(Backend):
    name = "keras"

    def __init__(self, spec, weights=None, biases=None, statistics=None, *, tensors=None):
        super().__init__(spec)
        self.steps, self.blocks = [], []                  # steps: blocks and plan_dropout, in order
        for layer in spec.layers:
            step = LAYERS[layer.kind](layer, len(self.blocks) + 1, spec)
            self.steps.append(step)
            if isinstance(step, Block):
                self.blocks.append(step)
        self.held = [block.parameters for block in self.blocks if block.parameters]   # per parameter layer
        self.layouts = [p for held in self.held for p in held.values()]   # the declared tensors, in order
        self.variables = distinct_variables(self.layouts)                  # the optimizer's order
        self.moving = [block.statistics for block in self.blocks if block.statistics is not None]
        self._assign_tensors(given_tensors(spec, weights, biases, tensors, self.name), check_dtype=True)
        if statistics is not None:
            self._assign_statistics(statistics)
        self.loss_fn, self.loss_input = _loss(spec)
        self.regularizer = _regularizer(spec)
        self.kernels = [kernel for block in self.blocks for kernel in block.kernels]

    def _assign_tensors(self, tensors, check_dtype: bool = False) -> None:
        """The named tensors of every layer with parameters (canonical layout) into the Keras variables."""
        arrays = []
        for number, given, held in zip(self.spec.parameter_layers, tensors, self.held, strict=True):
            if sorted(given) != sorted(held):
                raise BackendError(f"keras backend: layer {number} holds {', '.join(held)}, "
                                   f"got {', '.join(sorted(given))}")
            for name, parameter in held.items():
                array = np.asarray(given[name])
                if check_dtype and array.dtype != np.dtype(self.spec.dtype):
                    raise BackendError(f"keras backend: {parameter.label} is {array.dtype}, "
                                       f"spec says {self.spec.dtype}")
                arrays.append(array)
        for variable, value in zip(self.variables, variable_values(self.layouts, arrays), strict=True):
            variable.assign(value)

    def _assign_statistics(self, statistics) -> None:
        """(running mean, running variance) of every batch_norm layer into its moving statistics."""
        for variable, value in checked_statistics(self.moving, statistics, self.spec.dtype, "keras backend"):
            variable.assign(value)

    @functools.cached_property
    def optimizer(self) -> keras.optimizers.Optimizer:
        """Built on first use, so a spec whose optimizer Keras cannot express still traces
        (gradients do not depend on the optimizer); training it raises the BackendError."""
        return _optimizer(self.spec)

    # -- forward and loss -------------------------------------------------------------------

    def forward(self, x, masks=None):
        """([Z_1..Z_L], [A_1..A_L]) as TF tensors in Keras's layout (maps channels-last), through
        the blocks of :data:`LAYERS` in the spec's order; BatchNorm in training mode, its moving
        statistics left as they were."""
        with self._statistics_kept():
            return self._forward(x, masks, training=True)

    def _forward(self, x, masks, training: bool):
        """:meth:`forward` without restoring the moving statistics (a training step moves them);
        a dropout step applies the plan's mask of the block before it."""
        check_tokens(self.spec, x, self.name)
        a = tf.convert_to_tensor(to_keras_map(x))
        zs, activations = [], []
        for step in self.steps:
            if isinstance(step, Block):
                z, a = step(a, training)
                zs.append(z)
                activations.append(a)
            else:
                a = activations[-1] = step(a, None if masks is None else masks[len(zs) - 1])
        return zs, activations

    @contextlib.contextmanager
    def _statistics_kept(self):
        """Put every BatchNormalization's moving mean and variance back as they were on exit.

        The values are kept as tensors (reads of the variables), not NumPy copies, so the same code
        works inside a traced ``tf.function`` (``reports.explain.tf_graph``), where the read, the
        layer's update and the restore become graph ops run in program order."""
        saved = [[tf.identity(variable.value) for variable in pair] for pair in self.moving]
        try:
            yield
        finally:
            for variables, values in zip(self.moving, saved, strict=True):
                for variable, value in zip(variables, values, strict=True):
                    variable.assign(value)

    def loss(self, z_out, a_out, targets):
        prediction = z_out if self.loss_input == "logits" else a_out
        data_loss = self.loss_fn(tf.convert_to_tensor(targets), prediction)
        if self.regularizer is None:
            return data_loss
        return data_loss + tf.add_n([self.regularizer(kernel) for kernel in self.kernels])

    # -- the interface ----------------------------------------------------------------------

    def trace(self, x, targets, masks=None):
        with self._statistics_kept(), tf.GradientTape() as tape:
            zs, activations = self._forward(x, masks, training=True)
            loss = self.loss(zs[-1], activations[-1], targets)
        grads = tape.gradient(loss, {"Z": zs, "A": activations, "W": self.variables},
                              unconnected_gradients=tf.UnconnectedGradients.NONE)
        out = {"loss": loss.numpy()}
        for layer in range(1, self.spec.n_layers + 1):
            out[f"Z{layer}"] = to_canonical_map(zs[layer - 1].numpy())
            out[f"A{layer}"] = to_canonical_map(activations[layer - 1].numpy())
            out[f"dZ{layer}"] = to_canonical_map(grads["Z"][layer - 1].numpy())
            if grads["A"][layer - 1] is not None:
                out[f"dA{layer}"] = to_canonical_map(grads["A"][layer - 1].numpy())
        gradients = self._per_parameter(grads["W"])
        for held, names in zip(self.held, self.spec.gradient_names, strict=True):
            for parameter, name in zip(held.values(), names, strict=True):
                out[name] = parameter.to_canonical(next(gradients))
        return out

    def _per_parameter(self, values, parameters=None):
        """An iterator over the value of each of ``parameters`` (every declared tensor by default)
        from ``values``, one per distinct variable (a variable of rows gives each its row)."""
        parameters = self.layouts if parameters is None else parameters
        by_variable = {id(variable): np.asarray(tf.convert_to_tensor(value))   # an embedding's: IndexedSlices
                       for variable, value in zip(distinct_variables(parameters), values, strict=True)}
        return iter([by_variable[id(p.variable)] for p in parameters])

    def layer_trace(self, layer, a_prev, upstream, mask=None):
        block = self.blocks[layer - 1]
        a_in = tf.constant(to_keras_map(a_prev))
        variables = distinct_variables(list(block.parameters.values()))
        with self._statistics_kept(), tf.GradientTape() as tape:
            tape.watch(a_in)
            z, a = block(a_in, training=True)
            a = plan_dropout(a, mask)
            if layer == self.spec.n_layers:
                targets = [self.loss_fn(tf.constant(upstream), z if self.loss_input == "logits" else a)]
                output_gradients = [tf.ones_like(targets[0])]
            else:
                targets, output_gradients = [a], [tf.constant(to_keras_map(upstream))]
            if self.regularizer is not None and block.kernels:
                targets.append(tf.add_n([self.regularizer(kernel) for kernel in block.kernels]))
                output_gradients.append(tf.ones_like(targets[-1]))
        dz, da_prev, *dparameters = tape.gradient(targets, [z, a_in, *variables],
                                                  output_gradients=output_gradients)
        out = {"Z": to_canonical_map(z.numpy()), "A": to_canonical_map(a.numpy()),
               "dZ": to_canonical_map(dz.numpy()),
               "dA_prev": None if da_prev is None else to_canonical_map(da_prev.numpy())}   # token ids: None
        traces = [gradient_name(tensor.name) for tensor in block.declared if tensor.trainable]
        parameters = list(block.parameters.values())
        for key, parameter, gradient in zip(traces, parameters,
                                            self._per_parameter(dparameters, parameters),
                                            strict=True):
            out[key] = parameter.to_canonical(gradient)
        return out

    def _step(self, x, targets, masks):
        """One training step on tensors or arrays (eager, or traced by :meth:`_graph_step`): the
        loss's gradient by ``tf.GradientTape``, the optimizer's update, BatchNorm's moving
        statistics moved; returns the loss."""
        with tf.GradientTape() as tape:
            zs, activations = self._forward(x, masks, training=True)
            loss = self.loss(zs[-1], activations[-1], targets)
        grads = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
        return loss

    def train_step(self, x, targets, masks=None):
        return float(self._step(x, targets, masks).numpy())

    def fit(self, x, targets, plan, fused=False):
        """``fused``: every step through :meth:`_graph_step`, one graph per batch shape, faster
        than the eager :meth:`train_step`, which runs the same ops one by one (the timings are in
        ``docs/speed.md``)."""
        if not fused:
            return super().fit(x, targets, plan)
        step = self._graph_step
        losses = []
        for planned, xb, yb in batches(x, targets, plan):
            masks = None if planned.masks is None else [None if mask is None else tf.constant(mask)
                                                        for mask in planned.masks]
            losses.append(step(tf.constant(xb), tf.constant(yb), masks))
        return np.array([float(loss.numpy()) for loss in losses])

    @functools.cached_property
    def _graph_step(self):
        """:meth:`_step` traced into a ``tf.function`` graph: (x, targets, masks) → loss on
        tensors, maps channels-first as everywhere at the boundary."""
        return tf.function(self._step)

    def apply_gradients(self, gradients):
        grads = [tf.constant(value) for value in variable_values(self.layouts, gradients)]
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))

    def _state_variables(self) -> dict[str, list]:
        """scratch.optimizers' buffer names → the Keras optimizer's variables, one per parameter."""
        optimizer = self.optimizer
        optimizer.build(self.variables)
        name = self.spec.optimizer.name
        if name in ("sgd", "momentum"):
            return {"v": optimizer.momentums} if optimizer.momentums else {}
        if name == "rmsprop":
            momentum = {"v": optimizer._momentums} if optimizer._momentums else {}
            return {"s": optimizer._velocities, **momentum}
        return {"m": optimizer._momentums, "s": optimizer._velocities}

    def optimizer_state(self):
        buffers = self._state_variables()
        per_parameter = {ours: list(self._per_parameter([v.numpy() for v in variables]))
                         for ours, variables in buffers.items()}
        slots = [{ours: parameter.to_canonical(values[index]) for ours, values in per_parameter.items()}
                 for index, parameter in enumerate(self.layouts)]
        return OptimizerState(int(self.optimizer.iterations.numpy()), slots)

    def restore(self, tensors, state):
        """Parameters and optimizer state; the moving statistics stay as they are."""
        self._assign_tensors(tensors)
        for ours, variables in self._state_variables().items():
            values = (variable_values(self.layouts, [slot[ours] for slot in state.slots]) if state.t
                      else [np.zeros(variable.shape, self.spec.dtype) for variable in variables])
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
        self.optimizer.iterations.assign(state.t)

    def graph_train_step(self):
        """:meth:`_graph_step` without dropout: a callable (x, targets) → loss on tensors. Used by
        the benchmark."""
        return lambda x, targets: self._graph_step(x, targets, None)

    def tensors(self):
        return [{name: p.to_canonical(p.variable.numpy()) for name, p in held.items()} for held in self.held]

    def statistics(self):
        return [(mean.numpy().copy(), variance.numpy().copy()) for mean, variance in self.moving]

    def inference_outputs(self, x):
        zs, activations = self._forward(x, None, training=False)
        return to_canonical_map(zs[-1].numpy()), to_canonical_map(activations[-1].numpy())
