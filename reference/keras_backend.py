"""The spec's model in real Keras 3 layers, losses and optimizers on the TensorFlow backend.

Layout: a Keras ``Dense`` kernel is (in, out), the transpose of the shared file's W_l; the one
conversion is :func:`to_kernel` / :func:`from_kernel`, both asserting shapes. Gradients come from
``tf.GradientTape``, which records every Z_l and A_l so it can differentiate with respect to
them too. The model is built from the spec's layer list through one table, :data:`LAYERS`
(layer kind → the Keras layer that runs it); dropout multiplies by the plan's masks
(``keras.layers.Dropout`` would draw its own).
L2 is ``keras.regularizers.L2(λ/2)`` applied to each kernel, i.e. (λ/2)·Σ‖W_l‖², as in the
NumPy engine.

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

from reference.backend_base import Backend
from reference.optimizer_state import OptimizerState
from scratch.errors import BackendError
from scratch.layer_specs import DenseSpec

if keras.backend.backend() != "tensorflow":
    raise BackendError(f"keras backend: Keras runs on {keras.backend.backend()!r}; set "
                       "KERAS_BACKEND=tensorflow before importing keras")


def _activation(name: str, spec):
    slope = spec.leaky_relu_slope
    if name == "leaky_relu" and spec.dtype == "float64" and float(np.float32(slope)) != slope:
        raise BackendError(
            f"keras backend: spec field 'leaky_relu_slope' = {spec.leaky_relu_slope}: TensorFlow's LeakyRelu "
            "op keeps its slope in a float32 attribute, so float64 Keras would use "
            f"{float(np.float32(spec.leaky_relu_slope))!r}; pick a slope exact in float32 (e.g. 2**-5)")
    return {
        "identity": keras.activations.linear,
        "relu": keras.activations.relu,
        "leaky_relu": functools.partial(keras.activations.leaky_relu, negative_slope=spec.leaky_relu_slope),
        "sigmoid": keras.activations.sigmoid,
        "tanh": keras.activations.tanh,
        "softmax": keras.activations.softmax,
    }[name]


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
    with _floatx(spec.dtype):
        if opt.name in ("sgd", "momentum"):
            return keras.optimizers.SGD(learning_rate=opt.learning_rate, momentum=opt.momentum)
        if opt.name == "rmsprop":
            return keras.optimizers.RMSprop(learning_rate=opt.learning_rate, rho=opt.rho,
                                            momentum=opt.momentum, epsilon=opt.epsilon)
        return keras.optimizers.Adam(learning_rate=opt.learning_rate, beta_1=opt.beta1,
                                     beta_2=opt.beta2, epsilon=opt.epsilon)


def to_kernel(w: np.ndarray, n_in: int, n_out: int) -> np.ndarray:
    """Canonical W (n_out, n_in) → Keras kernel (n_in, n_out)."""
    if w.shape != (n_out, n_in):
        raise BackendError(f"keras backend: expected W of shape {(n_out, n_in)}, got {w.shape}")
    return np.ascontiguousarray(w.T)


def from_kernel(kernel: np.ndarray) -> np.ndarray:
    """Keras kernel (n_in, n_out) → canonical W (n_out, n_in)."""
    return np.ascontiguousarray(kernel.T)


class DenseLayer:
    """``keras.layers.Dense`` without activation (so Z_l is a tensor of its own; kernel (in, out),
    see :func:`to_kernel`), then the layer's activation."""

    def __init__(self, layer: DenseSpec, n_in: int, spec):
        self.dense = keras.layers.Dense(layer.units, activation=None, dtype=spec.dtype)
        self.dense.build((None, n_in))
        self.activation = _activation(layer.activation, spec)


def plan_dropout(a, mask: np.ndarray | None):
    """Inverted dropout with the training plan's mask D_l (``scratch.batching``): A_l ⊙ D_l."""
    return a if mask is None else a * tf.convert_to_tensor(mask)


# The one table: each layer kind of the spec → the Keras layer that runs it.
LAYERS = {
    "dense": DenseLayer,
    "dropout": lambda layer, n_in, spec: plan_dropout,
}


class KerasBackend(Backend):
    name = "keras"

    def __init__(self, spec, weights, biases):
        super().__init__(spec)
        self.layers = []
        n_in = spec.inputs
        for layer in spec.layers:
            self.layers.append(LAYERS[layer.kind](layer, n_in, spec))
            n_in = getattr(layer, "units", n_in)
        blocks = [block for block in self.layers if isinstance(block, DenseLayer)]
        self.dense = [block.dense for block in blocks]
        self.activations = [block.activation for block in blocks]
        sizes = spec.layer_sizes
        for layer, (dense, w, b) in enumerate(zip(self.dense, weights, biases, strict=True), start=1):
            n_in, n_out = sizes[layer - 1], sizes[layer]
            if w.dtype != np.dtype(spec.dtype) or b.dtype != np.dtype(spec.dtype):
                raise BackendError(f"keras backend: layer {layer} parameters are {w.dtype}/{b.dtype}, "
                                   f"spec says {spec.dtype}")
            if b.shape != (n_out,):
                raise BackendError(f"keras backend: expected b{layer} of shape {(n_out,)}, got {b.shape}")
            dense.set_weights([to_kernel(w, n_in, n_out), b])
        self.loss_fn, self.loss_input = _loss(spec)
        self.regularizer = _regularizer(spec)
        self.variables = [v for dense in self.dense for v in (dense.kernel, dense.bias)]

    @functools.cached_property
    def optimizer(self) -> keras.optimizers.Optimizer:
        """Built on first use, so a spec whose optimizer Keras cannot express still traces
        (gradients do not depend on the optimizer); training it raises the BackendError."""
        return _optimizer(self.spec)

    # -- forward and loss -------------------------------------------------------------------

    def forward(self, x, masks=None):
        """([Z_1..Z_L], [A_1..A_L]) as TF tensors, through the layers of :data:`LAYERS` in the
        spec's order; a dropout layer applies the plan's mask of the dense layer before it."""
        a = tf.convert_to_tensor(x)
        zs, activations = [], []
        for block in self.layers:
            if isinstance(block, DenseLayer):
                z = block.dense(a)
                a = block.activation(z)
                zs.append(z)
                activations.append(a)
            else:
                a = activations[-1] = block(a, None if masks is None else masks[len(zs) - 1])
        return zs, activations

    def loss(self, z_out, a_out, targets):
        prediction = z_out if self.loss_input == "logits" else a_out
        data_loss = self.loss_fn(tf.convert_to_tensor(targets), prediction)
        if self.regularizer is None:
            return data_loss
        return data_loss + tf.add_n([self.regularizer(dense.kernel) for dense in self.dense])

    # -- the interface ----------------------------------------------------------------------

    def trace(self, x, targets, masks=None):
        with tf.GradientTape() as tape:
            zs, activations = self.forward(x, masks)
            loss = self.loss(zs[-1], activations[-1], targets)
        n = self.spec.n_layers
        grads = tape.gradient(loss, {"Z": zs, "A": activations, "W": self.variables},
                              unconnected_gradients=tf.UnconnectedGradients.NONE)
        out = {"loss": loss.numpy()}
        for layer in range(1, n + 1):
            out[f"Z{layer}"] = zs[layer - 1].numpy()
            out[f"A{layer}"] = activations[layer - 1].numpy()
            out[f"dW{layer}"] = from_kernel(grads["W"][2 * layer - 2].numpy())
            out[f"db{layer}"] = grads["W"][2 * layer - 1].numpy()
            out[f"dZ{layer}"] = grads["Z"][layer - 1].numpy()
            if grads["A"][layer - 1] is not None:
                out[f"dA{layer}"] = grads["A"][layer - 1].numpy()
        return out

    def layer_trace(self, layer, a_prev, upstream, mask=None):
        dense, activation = self.dense[layer - 1], self.activations[layer - 1]
        a_in = tf.constant(a_prev)
        with tf.GradientTape() as tape:
            tape.watch(a_in)
            z = dense(a_in)
            a = activation(z)
            if mask is not None:
                a = a * tf.constant(mask)
            if layer == self.spec.n_layers:
                targets = [self.loss_fn(tf.constant(upstream), z if self.loss_input == "logits" else a)]
                output_gradients = [tf.ones_like(targets[0])]
            else:
                targets, output_gradients = [a], [tf.constant(upstream)]
            if self.regularizer is not None:
                targets.append(self.regularizer(dense.kernel))
                output_gradients.append(tf.ones_like(targets[-1]))
        dz, dkernel, db, da_prev = tape.gradient(targets, [z, dense.kernel, dense.bias, a_in],
                                                 output_gradients=output_gradients)
        return {"Z": z.numpy(), "A": a.numpy(), "dZ": dz.numpy(), "dW": from_kernel(dkernel.numpy()),
                "db": db.numpy(), "dA_prev": da_prev.numpy()}

    def train_step(self, x, targets, masks=None):
        with tf.GradientTape() as tape:
            zs, activations = self.forward(x, masks)
            loss = self.loss(zs[-1], activations[-1], targets)
        grads = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
        return float(loss.numpy())

    def apply_gradients(self, gradients):
        grads = [tf.constant(self._to_variable_layout(index, g)) for index, g in enumerate(gradients)]
        self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))

    def _to_variable_layout(self, index, array):
        """A canonical array of parameter ``index`` (W_l at even indices) in the layout of
        ``self.variables[index]`` (a Dense kernel is W_lᵀ)."""
        shape = tuple(self.variables[index].shape)
        if index % 2 == 0:
            return to_kernel(array, shape[0], shape[1])
        if array.shape != shape:
            raise BackendError(f"keras backend: expected shape {shape}, got {array.shape}")
        return array

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
        slots = [{ours: (from_kernel(variables[index].numpy()) if index % 2 == 0
                         else variables[index].numpy().copy())
                  for ours, variables in buffers.items()} for index in range(len(self.variables))]
        return OptimizerState(int(self.optimizer.iterations.numpy()), slots)

    def load_state(self, weights, biases, state):
        for index, array in enumerate(p for pair in zip(weights, biases, strict=True) for p in pair):
            self.variables[index].assign(self._to_variable_layout(index, array))
        buffers = self._state_variables()
        for ours, variables in buffers.items():
            for index, variable in enumerate(variables):
                value = state.slots[index][ours] if state.t else np.zeros(variable.shape, self.spec.dtype)
                variable.assign(value if not state.t else self._to_variable_layout(index, value))
        self.optimizer.iterations.assign(state.t)

    def graph_train_step(self):
        """The same step as :meth:`train_step`, traced once into a ``tf.function`` graph: a
        callable (x, targets) → loss on tensors (no dropout). Used by the benchmark."""

        @tf.function
        def step(x, targets):
            with tf.GradientTape() as tape:
                zs, activations = self.forward(x, None)
                loss = self.loss(zs[-1], activations[-1], targets)
            grads = tape.gradient(loss, self.variables)
            self.optimizer.apply_gradients(zip(grads, self.variables, strict=True))
            return loss

        return step


    def parameters(self):
        weights = [from_kernel(dense.kernel.numpy()) for dense in self.dense]
        biases = [dense.bias.numpy().copy() for dense in self.dense]
        return weights, biases


