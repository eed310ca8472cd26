"""The spec's model in JAX: ``jax.numpy`` / ``jax.nn`` layers, ``optax`` losses and optimizers,
``jax.grad`` / ``jax.vjp`` for every gradient, and one ``jax.jit`` per function and model.

Precision: ``jax.config.update("jax_enable_x64", True)`` runs once, when this module is imported
(without it JAX silently makes every float64 array float32). It is process-wide; a float32
model still runs in float32, since every array here is created in the spec's dtype and inputs
of another dtype are refused (:func:`to_jax`), never cast.

Layout: parameters stay in the canonical layout W_l (n_l, n_{l−1}), b_l (n_l,) — the dense entry
of :data:`LAYERS` computes A_{l−1}·W_lᵀ + b_l itself — so the one hand-off, :func:`to_jax`, only
asserts shape and dtype and copies. Dropout multiplies by the plan's masks; L2 adds
(λ/2)·Σ_l ‖W_l‖² to the loss (weights only), like the NumPy engine.

Gradients: the loss is written as a function of the parameters and of one zero "tap" added to
every Z_l and A_l; ``jax.value_and_grad`` with respect to the taps gives dL/dZ_l and dL/dA_l
(dA_L only where the loss reads A_L: MSE). A layer alone (:meth:`JaxBackend.layer_trace`) is
differentiated with ``jax.vjp``, the upstream dA_l as cotangent.

Activations differ from the NumPy engine in one place: ``jax.nn.leaky_relu`` is
``where(z >= 0, z, s·z)``, so its derivative at exactly z = 0 is 1 where the engine, torch and
TensorFlow take s (ReLU′(0) = 0 in all four).

Optimizers: optax's own (:func:`optimizer`); the conventions it cannot express are refused.
Every compiled function is cached per model structure at module level, so a new backend of the
same model reuses it; ``jax.jit`` keeps one executable per input shape and dtype.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from reference.backend_base import Backend
from reference.optimizer_state import OptimizerState
from scratch.errors import BackendError
from scratch.optimizers import keras_scalar

jax.config.update("jax_enable_x64", True)

# The one table: each layer kind and activation of the spec → its JAX function.
LAYERS = {
    "dense": lambda a, w, b: a @ w.T + b,            # canonical W (n_out, n_in)
    "dropout": lambda a, mask: a * mask,             # the plan's inverted-dropout mask
    "identity": lambda z, slope: z,
    "relu": lambda z, slope: jax.nn.relu(z),
    "leaky_relu": lambda z, slope: jax.nn.leaky_relu(z, slope),
    "sigmoid": lambda z, slope: jax.nn.sigmoid(z),
    "tanh": lambda z, slope: jnp.tanh(z),
    "softmax": lambda z, slope: jax.nn.softmax(z, axis=1),
}

# loss → (optax's elementwise or per-row loss, what it reads); each is averaged over its output,
# i.e. over the batch (CCE) or over every element (BCE, MSE), as torch and Keras do.
LOSSES = {
    "cce": (optax.losses.softmax_cross_entropy, "logits"),
    "bce": (optax.losses.sigmoid_binary_cross_entropy, "logits"),
    "mse": (optax.losses.squared_error, "outputs"),
}

# canonical slot (reference.optimizer_state) → (optax state field, sign), per (optimizer, convention)
_STATE_FIELDS = {
    "sgd": {},
    "momentum": {"v": ("trace", 1)},
    ("rmsprop", "torch"): {"s": ("nu", 1), "v": ("trace", 1)},
    ("rmsprop", "keras"): {"s": ("nu", 1), "v": ("trace", -1)},   # optax's trace is −Keras's v
    ("rmsprop", "optax"): {"s": ("nu", 1), "v": ("trace", 1)},
    "adam": {"m": ("mu", 1), "s": ("nu", 1)},
}


def optimizer(opt, dtype: str) -> optax.GradientTransformation:
    """The spec's optimizer from optax's own pieces (formulas: ``scratch.optimizers``).

    torch:  SGD, momentum = ``optax.sgd``; RMSprop = ``scale_by_rms(eps_in_sqrt=False)`` with the
            momentum ``trace`` before the learning rate (torch's buffer); Adam = ``optax.adam``
            (ε added to √ŝ, ``eps_root=0``).
    keras:  momentum = ``chain(scale(−η), trace(μ))`` (Keras's v ← μ·v − η·g, μ rounded to float32
            as Keras does); RMSprop = ``optax.rmsprop(eps_in_sqrt=True)``. Keras's Adam adds ε to
            √s, i.e. ε/√(1 − β₂ᵗ) to √ŝ — a step-dependent ε that neither ``eps`` nor
            ``eps_root`` can express: refused.
    optax:  ``optax.sgd``, ``optax.sgd(momentum=μ)``, ``optax.rmsprop``, ``optax.adam`` as they are.
    """
    name, convention, lr = opt.name, opt.convention, opt.learning_rate
    momentum = opt.momentum or None
    if name == "sgd":
        return optax.sgd(lr)
    if name == "momentum":
        if convention == "keras":
            return optax.chain(optax.scale(-lr), optax.trace(decay=float(keras_scalar(opt.momentum, dtype))))
        return optax.sgd(lr, momentum=opt.momentum)
    if name == "rmsprop":
        if convention == "torch":
            return optax.chain(optax.scale_by_rms(decay=opt.rho, eps=opt.epsilon, eps_in_sqrt=False),
                               optax.trace(decay=opt.momentum) if momentum else optax.identity(),
                               optax.scale_by_learning_rate(lr))
        return optax.rmsprop(lr, decay=opt.rho, eps=opt.epsilon, eps_in_sqrt=True, momentum=momentum)
    if convention == "keras":
        raise BackendError("jax backend: optax has no keras-convention 'adam' (Keras adds ε to √s, i.e. "
                           "ε/√(1 − β₂ᵗ) to √ŝ; optax.adam's eps and eps_root are constants); use "
                           "convention='torch' or 'optax' (plain SGD is the same in all)")
    return optax.adam(lr, b1=opt.beta1, b2=opt.beta2, eps=opt.epsilon)


def _state_fields(opt) -> dict[str, tuple[str, int]]:
    return _STATE_FIELDS[opt.name if opt.name in _STATE_FIELDS else (opt.name, opt.convention)]


def to_jax(array: np.ndarray, shape: tuple[int, ...], dtype: str, what: str) -> jax.Array:
    """A JAX copy of a canonical-layout array, asserting its shape and dtype (no cast)."""
    array = np.asarray(array)
    if array.shape != shape:
        raise BackendError(f"jax backend: {what}: expected shape {shape}, got {array.shape}")
    if array.dtype != np.dtype(dtype):
        raise BackendError(f"jax backend: {what}: expected {dtype}, got {array.dtype}")
    return jnp.array(array, copy=True)


class Model(NamedTuple):
    """What the compiled functions depend on besides shapes: their cache key."""

    activations: tuple[str, ...]
    loss: str
    l2: float
    slope: float


def _forward(model: Model, params, x, masks, taps=None):
    """(Z_1..Z_L, A_1..A_L); ``taps`` = (zeros like every Z, zeros like every A), added so that
    the loss can be differentiated with respect to them."""
    a, zs, activations = x, [], []
    last = len(model.activations) - 1
    for index, name in enumerate(model.activations):
        z = LAYERS["dense"](a, params[2 * index], params[2 * index + 1])
        if taps is not None:
            z = z + taps[0][index]
        a = LAYERS[name](z, model.slope)
        if masks is not None and index < last:
            a = LAYERS["dropout"](a, masks[index])
        if taps is not None:
            a = a + taps[1][index]
        zs.append(z)
        activations.append(a)
    return zs, activations


def _penalty(model: Model, weights):
    return 0.5 * model.l2 * sum(jnp.sum(w ** 2) for w in weights)


def _loss(model: Model, params, z_out, a_out, targets):
    """Mean batch loss, read from the logits or the outputs, plus the L2 penalty."""
    function, reads = LOSSES[model.loss]
    data_loss = jnp.mean(function(z_out if reads == "logits" else a_out, targets))
    return data_loss + _penalty(model, params[0::2]) if model.l2 else data_loss


def _total_loss(model: Model, params, x, targets, masks):
    zs, activations = _forward(model, params, x, masks)
    return _loss(model, params, zs[-1], activations[-1], targets)


@functools.cache
def _compiled_trace(model: Model):
    def traced(params, x, targets, masks):
        def total(params, taps):
            zs, activations = _forward(model, params, x, masks, taps)
            return _loss(model, params, zs[-1], activations[-1], targets), (zs, activations)

        widths = [w.shape[0] for w in params[0::2]]
        taps = tuple([jnp.zeros((x.shape[0], n), x.dtype) for n in widths] for _ in range(2))
        (loss, (zs, activations)), (dparams, dtaps) = jax.value_and_grad(
            total, argnums=(0, 1), has_aux=True)(params, taps)
        return loss, zs, activations, dparams, dtaps

    return jax.jit(traced)


@functools.cache
def _compiled_gradients(model: Model):
    return jax.jit(jax.value_and_grad(functools.partial(_total_loss, model)))


@functools.cache
def _compiled_layer(model: Model, index: int, output: bool):
    """Layer ``index`` (0-based) alone: Z, A and, by ``jax.vjp``, dZ, dW, db, dA_prev."""
    activation = model.activations[index]

    def layer(a_prev, w, b, tap, mask):
        z = LAYERS["dense"](a_prev, w, b) + tap
        a = LAYERS[activation](z, model.slope)
        return z, (a if mask is None else LAYERS["dropout"](a, mask))

    def run(a_prev, w, b, upstream, mask):
        tap = jnp.zeros((a_prev.shape[0], w.shape[0]), a_prev.dtype)
        if output:                                  # upstream = the targets: the loss gives dZ_L
            def scalar(a_prev, w, b, tap):
                z, a = layer(a_prev, w, b, tap, mask)
                return _loss(model, [w], z, a, upstream), (z, a)
        else:                                       # upstream = dA_l, the penalty's cotangent is 1
            def scalar(a_prev, w, b, tap):
                z, a = layer(a_prev, w, b, tap, mask)
                return (a, _penalty(model, [w])), (z, a)
        out, pullback, (z, a) = jax.vjp(scalar, a_prev, w, b, tap, has_aux=True)
        cotangent = jnp.ones_like(out) if output else (upstream, jnp.ones_like(out[1]))
        da_prev, dw, db, dz = pullback(cotangent)
        return {"Z": z, "A": a, "dZ": dz, "dW": dw, "db": db, "dA_prev": da_prev}

    return jax.jit(run)


@functools.cache
def _compiled_step(model: Model, opt, dtype: str):
    """One jitted optimizer step: (params, state, x, targets, masks) → (params, state, loss)."""
    transform = optimizer(opt, dtype)

    def step(params, state, x, targets, masks):
        loss, grads = jax.value_and_grad(functools.partial(_total_loss, model))(params, x, targets, masks)
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return jax.jit(step)


@functools.cache
def _compiled_update(opt, dtype: str):
    transform = optimizer(opt, dtype)

    def update(params, state, grads):
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return jax.jit(update)


class JaxBackend(Backend):
    name = "jax"

    def __init__(self, spec, weights, biases):
        super().__init__(spec)
        n = spec.n_layers
        self.model = Model(tuple(spec.hidden_activation if layer < n else spec.output_activation
                                 for layer in range(1, n + 1)), spec.loss, spec.l2, spec.leaky_relu_slope)
        self.params = self._canonical_to_jax(weights, biases)
        self.steps = 0
        self._state = None                   # optax's state, built on first use (see optimizer)

    def _canonical_to_jax(self, weights, biases) -> list:
        """[W_1, b_1, …] as JAX arrays: the one conversion, shapes and dtype asserted."""
        sizes, dtype = self.spec.layer_sizes, self.spec.dtype
        if len(weights) != self.spec.n_layers or len(biases) != self.spec.n_layers:
            raise BackendError(f"jax backend: expected {self.spec.n_layers} weights and biases, "
                               f"got {len(weights)} and {len(biases)}")
        params = []
        for layer, (w, b) in enumerate(zip(weights, biases, strict=True), start=1):
            params.append(to_jax(w, (sizes[layer], sizes[layer - 1]), dtype, f"W{layer}"))
            params.append(to_jax(b, (sizes[layer],), dtype, f"b{layer}"))
        return params

    def _batch(self, x, targets=None, masks=None):
        dtype, sizes, m = self.spec.dtype, self.spec.layer_sizes, np.shape(x)[0]
        x = to_jax(x, (m, sizes[0]), dtype, "x")
        if targets is not None:
            targets = to_jax(targets, (m, sizes[-1]), dtype, "targets")
        if masks is not None:
            masks = [to_jax(mask, (m, sizes[layer]), dtype, f"mask {layer}")
                     for layer, mask in enumerate(masks, start=1)]
        return x, targets, masks

    @property
    def transform(self) -> optax.GradientTransformation:
        """The optax optimizer (a spec it cannot express still traces; training raises)."""
        return optimizer(self.spec.optimizer, self.spec.dtype)

    @property
    def state(self):
        if self._state is None:
            self._state = self.transform.init(self.params)
        return self._state

    # -- public hooks -----------------------------------------------------------------------

    def forward(self, x, masks=None, params=None):
        """(Z_1..Z_L, A_1..A_L) as JAX arrays; ``params`` (default: the backend's own) lets a JAX
        transformation (``jax.grad``, ``jax.make_jaxpr``) trace through it."""
        x, _, masks = self._batch(x, None, masks)
        return _forward(self.model, self.params if params is None else params, x, masks)

    def loss(self, z_out, a_out, targets, params=None):
        """The loss (a JAX scalar) from Z_L and A_L, with the L2 penalty of ``params``."""
        targets = to_jax(targets, tuple(np.shape(z_out)), self.spec.dtype, "targets")
        return _loss(self.model, self.params if params is None else params, z_out, a_out, targets)

    def gradients(self, x, targets, masks=None):
        x, targets, masks = self._batch(x, targets, masks)
        _, grads = _compiled_gradients(self.model)(self.params, x, targets, masks)
        return [np.array(g) for g in grads]

    def trace(self, x, targets, masks=None):
        x, targets, masks = self._batch(x, targets, masks)
        loss, zs, activations, dparams, (dzs, das) = _compiled_trace(self.model)(self.params, x, targets, masks)
        out = {"loss": np.array(loss)}
        reads_outputs = LOSSES[self.spec.loss][1] == "outputs"
        for layer in range(1, self.spec.n_layers + 1):
            out[f"Z{layer}"] = np.array(zs[layer - 1])
            out[f"A{layer}"] = np.array(activations[layer - 1])
            out[f"dW{layer}"] = np.array(dparams[2 * layer - 2])
            out[f"db{layer}"] = np.array(dparams[2 * layer - 1])
            out[f"dZ{layer}"] = np.array(dzs[layer - 1])
            if layer < self.spec.n_layers or reads_outputs:
                out[f"dA{layer}"] = np.array(das[layer - 1])
        return out

    def layer_trace(self, layer, a_prev, upstream, mask=None):
        sizes, dtype, m = self.spec.layer_sizes, self.spec.dtype, np.shape(a_prev)[0]
        a_prev = to_jax(a_prev, (m, sizes[layer - 1]), dtype, f"A{layer - 1}")
        upstream = to_jax(upstream, (m, sizes[layer]), dtype, f"upstream of layer {layer}")
        mask = None if mask is None else to_jax(mask, (m, sizes[layer]), dtype, f"mask {layer}")
        run = _compiled_layer(self.model, layer - 1, layer == self.spec.n_layers)
        out = run(a_prev, self.params[2 * layer - 2], self.params[2 * layer - 1], upstream, mask)
        return {key: np.array(value) for key, value in out.items()}

    def train_step(self, x, targets, masks=None):
        x, targets, masks = self._batch(x, targets, masks)
        step = _compiled_step(self.model, self.spec.optimizer, self.spec.dtype)
        self.params, self._state, loss = step(self.params, self.state, x, targets, masks)
        self.steps += 1
        return float(loss)

    def apply_gradients(self, gradients):
        grads = self._canonical_to_jax(gradients[0::2], gradients[1::2])
        update = _compiled_update(self.spec.optimizer, self.spec.dtype)
        self.params, self._state = update(self.params, self.state, grads)
        self.steps += 1

    def optimizer_state(self):
        state = self.state
        slots = [{} for _ in self.params]
        if self.steps:
            for ours, (theirs, sign) in _state_fields(self.spec.optimizer).items():
                buffers = optax.tree.get(state, theirs, None)
                if buffers is None:                            # no momentum: no trace
                    continue
                for slot, buffer in zip(slots, buffers, strict=True):
                    slot[ours] = np.array(buffer) * sign if sign < 0 else np.array(buffer)
        return OptimizerState(self.steps, slots)

    def load_state(self, weights, biases, state):
        self.params = self._canonical_to_jax(weights, biases)
        fresh = self.transform.init(self.params)
        if state.t:
            values = {}
            for ours, (theirs, sign) in _state_fields(self.spec.optimizer).items():
                if optax.tree.get(fresh, theirs, None) is None:
                    continue
                arrays = [slot[ours] * sign if sign < 0 else slot[ours] for slot in state.slots]
                values[theirs] = self._canonical_to_jax(arrays[0::2], arrays[1::2])
            if optax.tree.get(fresh, "count", None) is not None:
                values["count"] = jnp.asarray(state.t, jnp.int32)
            fresh = optax.tree.set(fresh, **values)
        self._state = fresh
        self.steps = state.t

    def parameters(self):
        arrays = [np.array(p) for p in self.params]
        return arrays[0::2], arrays[1::2]
