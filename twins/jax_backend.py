"""The spec's model in JAX: ``jax.numpy`` / ``jax.nn`` / ``jax.lax`` layers
(``twins.jax_layers``), ``optax`` losses and optimizers, ``jax.grad`` / ``jax.vjp`` for every
gradient, and one ``jax.jit`` per function and model structure.

Precision: ``jax.config.update("jax_enable_x64", True)`` runs once, when this module is imported
(without it JAX silently makes every float64 array float32). It is process-wide; a float32
model still runs in float32, since every array here is created in the spec's dtype and inputs
of another dtype are refused (:func:`to_jax`), never cast.

Layout: parameters stay in the canonical layout — dense W_l (n_l, n_{l−1}), conv2d W_l OIHW,
BatchNorm/LayerNorm γ_l, β_l — and maps stay channels-first (m, C, H, W), which is how
``twins.jax_layers`` computes (``lax.conv_general_dilated`` takes NCHW/OIHW as they are), so
the one hand-off, :func:`to_jax`, only asserts shape and dtype and copies. Dropout multiplies by
the plan's masks; L2 adds (λ/2)·Σ‖W_l‖² over the dense and conv2d kernels to the loss, like the
NumPy engine. BatchNorm's running statistics are arrays beside the parameters: every pass in
training mode computes the batch's statistics (and leaves the running ones alone); only
:meth:`JaxBackend.train_step` stores the moved ones (``jax_layers.moved_statistics``).

Gradients: the loss is written as a function of the parameters and of one zero "tap" added to
every Z_l and A_l; ``jax.value_and_grad`` with respect to the taps gives dL/dZ_l and dL/dA_l
(dA_L only where the loss reads A_L: MSE). A layer alone (:meth:`JaxBackend.layer_trace`) is
differentiated with ``jax.vjp``, the upstream dA_l as cotangent.

Leaky ReLU is written with ``jnp.where(z > 0, z, s·z)`` rather than ``jax.nn.leaky_relu``, which
is ``where(z >= 0, …)``: its derivative at exactly z = 0 is 1 where the engine, torch and
TensorFlow take s — a different convention, not rounding (with ``jax.nn.leaky_relu`` the suite's
units-on-the-kink case fails: dZ_2 off by 0.61 relative). ReLU′(0) = 0 in all four.

Optimizers: optax's own (``twins.jax_optimizers``); the conventions it cannot express are
refused.

Compilation: the activations, loss, λ, slope (:class:`Config`) and the optimizer's
hyperparameters are runtime arguments of the jitted functions, and the stack's structure
(``jax_layers.describe``: layer kinds and their settings, nothing about sizes; and for a stack
other than an MLP each layer's activation) a static one, so
``jax.jit`` keeps one executable per structure, shape and dtype, shared by every backend of that
shape (every MLP of one depth has the same structure). The training step is two jitted calls —
``value_and_grad`` of the loss (the executable :meth:`JaxBackend.trace` uses, one per batch
shape) and the optax update (one per optimizer) — rather than one fused ``jax.jit``: fused,
every optimizer × batch shape compiles anew (compile times in ``docs/speed.md``), which the
parity suite cannot afford; the arithmetic is the same. A long run asks for the fused step,
``fit(..., fused=True)`` (:func:`_training_step`), compiled at XLA's default optimization.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from judge.optimizer_state import OptimizerState
from scratch.batching import batches
from scratch.errors import BackendError
from scratch.tensor_specs import gradient_name
from twins import jax_layers
from twins.backend_base import Backend, check_tokens, flat, given_tensors, nest
from twins.jax_optimizers import hyperparameters, optimizer, optimizer_key, state_fields, transform

jax.config.update("jax_enable_x64", True)

# The one table of activations: each activation of the spec → its JAX function.
ACTIVATION_FUNCTIONS = {
    "identity": lambda z, slope: z,
    "relu": lambda z, slope: jax.nn.relu(z),
    "leaky_relu": lambda z, slope: jnp.where(z > 0, z, slope * z),      # not jax.nn's: see above
    "sigmoid": lambda z, slope: jax.nn.sigmoid(z),
    "tanh": lambda z, slope: jnp.tanh(z),
    "gelu": lambda z, slope: jax.nn.gelu(z, approximate=False),
    "gelu_tanh": lambda z, slope: jax.nn.gelu(z, approximate=True),
    "softmax": lambda z, slope: jax.nn.softmax(z, axis=1),
}

# loss → (optax's elementwise or per-row loss, what it reads); each is averaged over its output,
# i.e. over the batch (CCE) or over every element (BCE, MSE), as torch and Keras do.
LOSSES = {
    "cce": (optax.losses.softmax_cross_entropy, "logits"),
    "bce": (optax.losses.sigmoid_binary_cross_entropy, "logits"),
    "mse": (optax.losses.squared_error, "outputs"),
}

def to_jax(array: np.ndarray, shape: tuple[int, ...], dtype: str, what: str) -> jax.Array:
    """A JAX copy of a canonical-layout array, asserting its shape and dtype (no cast)."""
    array = np.asarray(array)
    if array.shape != shape:
        raise BackendError(f"jax backend: {what}: expected shape {shape}, got {array.shape}")
    if array.dtype != np.dtype(dtype):
        raise BackendError(f"jax backend: {what}: expected {dtype}, got {array.dtype}")
    return jax.device_put(np.array(array, copy=True))      # a private copy; no compiled op


ACTIVATIONS = tuple(ACTIVATION_FUNCTIONS)


class Config(NamedTuple):
    """The model's choices. As arrays (what the compiled functions take) they are runtime values,
    so one compiled function serves every activation, loss, λ and slope of a shape; as Python
    numbers (the public hooks, ``explain``) only the chosen table entries are traced."""

    activations: object          # each numbered layer's index into ACTIVATIONS: int32 (L,) or a tuple
    loss: object                 # index into LOSSES
    slope: object                # the leaky-ReLU slope
    l2: object                   # λ


def _choose(index, functions, *args):
    """``functions[index](*args)``. A runtime ``index`` evaluates every entry and selects one
    (``jnp.select``: the chosen value untouched, a zero cotangent for the others, so values and
    gradients are exactly those of the chosen entry): one small fused graph, where ``lax.switch``
    would compile a conditional with every branch and its derivative, which compiles slower
    (``docs/speed.md``)."""
    if isinstance(index, int):
        return functions[index](*args)
    values = [function(*args) for function in functions]
    return jnp.select([index == k for k in range(len(values))], values)


def _mean_loss(name, z_out, a_out, targets):
    function, reads = LOSSES[name]
    return jnp.mean(function(z_out if reads == "logits" else a_out, targets))


_ACTIVATION_BRANCHES = list(ACTIVATION_FUNCTIONS.values())
_LOSS_BRANCHES = [functools.partial(_mean_loss, name) for name in LOSSES]


def _activate(config: Config, layer: jax_layers.Layer, index: int, z):
    """A_l = g_l(Z_l): the layer's fixed activation, else the config's; Z_l itself for a kind
    without an activation (pooling, flatten)."""
    if not jax_layers.has_activation(layer):
        return z
    if layer.activation is not None:
        return ACTIVATION_FUNCTIONS[layer.activation](z, config.slope)
    return _choose(config.activations[index], _ACTIVATION_BRANCHES, z, config.slope)


def _split(structure, params) -> list[tuple]:
    """``params`` [W, b, …] (every trainable tensor of the layers with parameters, declaration
    order) as one tuple per numbered layer: (W_l, b_l), (α_l), … or ()."""
    tuples, position = [], 0
    for layer in structure:
        count = len(jax_layers.trainable(layer))
        tuples.append(tuple(params[position:position + count]))
        position += count
    return tuples


def _kernels(structure, params) -> list:
    """The tensors L2 penalizes (declared ``l2``: the dense and conv2d kernels)."""
    return [w for layer, parameters in zip(structure, _split(structure, params), strict=True)
            for w in jax_layers.kernels(layer, parameters)]


def _forward(config: Config, structure, params, x, masks, taps=None, running=None):
    """(Z_1..Z_L, A_1..A_L, the batch's (μ, σ², values per channel) of every batch_norm layer).
    ``masks`` one per hidden layer (or None); ``taps`` = (zeros like every Z, zeros like every A),
    added so that the loss can be differentiated with respect to them; ``running`` the running
    (mean, variance) of every batch_norm layer: inference mode (None: training mode)."""
    a, zs, activations, batch = x, [], [], []
    last = len(structure) - 1
    for index, (layer, parameters) in enumerate(zip(structure, _split(structure, params), strict=True)):
        statistics = None if running is None or layer.kind != "batch_norm" else running[len(batch)]
        z, moments = jax_layers.apply(layer, parameters, a, statistics)
        if layer.kind == "batch_norm":
            batch.append(None if moments is None else (*moments, a.size // a.shape[1]))
        if taps is not None:
            z = z + taps[0][index]
        a = _activate(config, layer, index, z)
        if masks is not None and index < last and masks[index] is not None:
            a = a * masks[index]                               # the plan's inverted-dropout mask
        if taps is not None:
            a = a + taps[1][index]
        zs.append(z)
        activations.append(a)
    return zs, activations, batch


def _penalty(config: Config, kernels):
    """(λ/2)·Σ‖W‖²; with a runtime λ = 0 it adds exactly 0 to the loss and 0·W to dW."""
    return 0.5 * config.l2 * sum(jnp.sum(w ** 2) for w in kernels)


def _loss(config: Config, kernels, z_out, a_out, targets):
    """Mean batch loss, read from the logits or the outputs, plus the L2 penalty of ``kernels``."""
    data_loss = _choose(config.loss, _LOSS_BRANCHES, z_out, a_out, targets)
    if isinstance(config.l2, float) and not config.l2:
        return data_loss
    return data_loss + _penalty(config, kernels)


# XLA's CPU backend at LLVM optimization level 0, without its expensive LLVM passes, compiles
# these small graphs ~45 % faster (measured: 1.0 → 0.7 s for a 3-layer trace after 1.75 s at the
# default); neither reorders floating-point arithmetic (XLA's CPU backend uses no fast-math).
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                                                    "xla_llvm_disable_expensive_passes": True})


def _traced(params, running, config, x, targets, masks, *, structure, shapes):
    """(loss, Z's, A's, dL/dparams, (dL/dZ's, dL/dA's), the running statistics a training step
    on this batch would store); ``shapes`` the per-sample shapes of A_1..A_L."""
    def total(params, taps):
        zs, activations, batch = _forward(config, structure, params, x, masks, taps)
        loss = _loss(config, _kernels(structure, params), zs[-1], activations[-1], targets)
        return loss, (zs, activations, batch)

    taps = tuple([jnp.zeros((x.shape[0], *shape), params[0].dtype) for shape in shapes] for _ in range(2))
    (loss, (zs, activations, batch)), (dparams, dtaps) = jax.value_and_grad(
        total, argnums=(0, 1), has_aux=True)(params, taps)
    norms = [layer for layer in structure if layer.kind == "batch_norm"]
    moved = [jax_layers.moved_statistics(layer, old, (mean, variance), count)
             for layer, old, (mean, variance, count) in zip(norms, running, batch, strict=True)]
    return loss, zs, activations, dparams, dtaps, moved


# one executable per structure and batch shape serves :meth:`JaxBackend.trace`, ``gradients`` and
# ``train_step`` (the taps' gradients cost little next to a second compilation)
_compiled_trace = _jit(_traced, static_argnames=("structure", "shapes"))


def _layer_pass(config, index, a_prev, parameters, upstream, mask, *, layer, output, shape):
    """Numbered layer ``index`` (0-based) alone, in training mode: Z, A and, by ``jax.vjp``, dZ,
    dA_prev and (a layer with parameters) dW, db; ``upstream`` is dA_l for a hidden layer (the
    penalty's cotangent is 1), the targets at the output; ``shape`` Z's per-sample shape."""
    def scalar(a_prev, parameters, tap):
        z = jax_layers.apply(layer, parameters, a_prev)[0] + tap
        a = _activate(config, layer, index, z)
        a = a if mask is None else a * mask
        kernels = jax_layers.kernels(layer, parameters)
        if output:
            return _loss(config, kernels, z, a, upstream), (z, a)
        return (a, _penalty(config, kernels)), (z, a)

    tokens = not jnp.issubdtype(a_prev.dtype, jnp.floating)     # an embedding's ids: no input gradient
    tap = jnp.zeros((a_prev.shape[0], *shape), parameters[0].dtype if tokens else a_prev.dtype)
    out, pullback, (z, a) = jax.vjp(scalar, a_prev, parameters, tap, has_aux=True)
    cotangent = jnp.ones_like(out) if output else (upstream, jnp.ones_like(out[1]))
    da_prev, dparameters, dz = pullback(cotangent)
    result = {"Z": z, "A": a, "dZ": dz, "dA_prev": None if tokens else da_prev}
    traces = [gradient_name(tensor.name) for tensor in jax_layers.trainable(layer)]
    result.update(zip(traces, dparameters, strict=True))
    return result


_compiled_layer = _jit(_layer_pass, static_argnames=("layer", "output", "shape"))


def _inference(params, running, config, x, *, structure):
    """(Z_L, A_L) without dropout, BatchNorm normalizing by its running statistics."""
    zs, activations, _ = _forward(config, structure, params, x, None, None, running)
    return zs[-1], activations[-1]


_compiled_inference = _jit(_inference, static_argnames="structure")


@functools.cache
def _compiled_update(name: str, convention: str, decay: str | None):
    """The jitted optax update, (params, state, hyper, grads) → (params, state): one executable per
    optimizer and parameter shapes, whatever the batch or the hyperparameters' values."""

    def update(params, state, hyper, grads):
        updates, state = transform(name, convention, hyper, decay).update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return _jit(update)


def _training_step(params, state, running, hyper, config, x, targets, masks, *, structure, optimizer):
    """One training step fused into one executable: (params, state, running) after the step, and the
    loss. The same arithmetic as :func:`_traced` followed by the update of :func:`_compiled_update`,
    without the taps and the Z/A outputs that only the parity checks read."""
    def total(params):
        zs, activations, batch = _forward(config, structure, params, x, masks)
        return _loss(config, _kernels(structure, params), zs[-1], activations[-1], targets), batch

    (loss, batch), grads = jax.value_and_grad(total, has_aux=True)(params)
    norms = [layer for layer in structure if layer.kind == "batch_norm"]
    moved = [jax_layers.moved_statistics(layer, old, (mean, variance), count)
             for layer, old, (mean, variance, count) in zip(norms, running, batch, strict=True)]
    name, convention, decay = optimizer
    updates, state = transform(name, convention, hyper, decay).update(grads, state, params)
    return optax.apply_updates(params, updates), state, moved, loss


# compiled at XLA's default optimization: a long training run (``fit``) pays its compilation once
_compiled_training_step = jax.jit(_training_step, static_argnames=("structure", "optimizer"),
                                  donate_argnums=(0, 1, 2))


class JaxBackend(Backend):
    name = "jax"

    def __init__(self, spec, weights=None, biases=None, statistics=None, *, tensors=None):
        super().__init__(spec)
        self.structure = jax_layers.describe(spec)
        self.choices = Config(tuple(ACTIVATIONS.index(name) for name in spec.activations),
                              list(LOSSES).index(spec.loss), spec.leaky_relu_slope, spec.l2)
        self.config = Config(jnp.asarray(self.choices.activations, jnp.int32),
                             jnp.asarray(self.choices.loss, jnp.int32),
                             jnp.asarray(spec.leaky_relu_slope, spec.dtype), jnp.asarray(spec.l2, spec.dtype))
        given = given_tensors(spec, weights, biases, tensors, self.name)
        self.params = self._canonical_to_jax(flat(spec, given))
        self.running = self._running(statistics)
        self.hyper = hyperparameters(spec.optimizer, spec.dtype)
        self.steps = 0
        self._state = None                   # optax's state, built on first use (see optimizer)

    def _canonical_to_jax(self, arrays) -> list:
        """[every trainable tensor of every layer with parameters] (canonical, the optimizer's order)
        as JAX arrays: the one conversion, shapes and dtype asserted (the canonical layouts are
        JAX's own here)."""
        spec = self.spec
        expected = [(f"{name}{layer}", shape)
                    for layer, names, shapes in zip(spec.parameter_layers, spec.parameter_names,
                                                    spec.parameter_shapes, strict=True)
                    for name, shape in zip(names, shapes, strict=True)]
        if len(arrays) != len(expected):
            raise BackendError(f"jax backend: expected {len(expected)} tensors "
                               f"({', '.join(label for label, _ in expected)}), got {len(arrays)}")
        return [to_jax(array, shape, spec.dtype, label)
                for array, (label, shape) in zip(arrays, expected, strict=True)]

    def _running(self, statistics) -> list:
        """The running (mean, variance) of every batch_norm layer as JAX arrays (0 and 1 if none)."""
        layers, dtype = self.spec.statistics_layers, self.spec.dtype
        if statistics is None:
            statistics = [(np.zeros(self.spec.layer_shapes[layer][0], dtype),
                           np.ones(self.spec.layer_shapes[layer][0], dtype)) for layer in layers]
        if len(statistics) != len(layers):
            raise BackendError(f"jax backend: expected running statistics for {len(layers)} batch_norm "
                               f"layer(s), got {len(statistics)}")
        return [tuple(to_jax(v, (self.spec.layer_shapes[layer][0],), dtype, f"running {what} {layer}")
                      for v, what in zip(pair, ("mean", "variance"), strict=True))
                for layer, pair in zip(layers, statistics, strict=True)]

    def _batch(self, x, targets=None, masks=None, compiled=True):
        """Inputs as JAX arrays, shapes and dtype asserted; for a compiled function, absent masks
        become masks of ones (A·1 = A exactly), so that one executable serves both."""
        dtype, shapes, m = self.spec.dtype, self.spec.layer_shapes, np.shape(x)[0]
        x = to_jax(x, (m, *shapes[0]), self._input_dtype(x), "x")
        if targets is not None:
            targets = to_jax(targets, (m, *shapes[-1]), dtype, "targets")
        if masks is None and not compiled:
            return x, targets, None
        arrays = []                          # one per hidden layer; None: that layer does not drop
        for layer, mask in enumerate([None] * (len(shapes) - 2) if masks is None else masks, start=1):
            if mask is None and compiled:
                mask = np.ones((m, *shapes[layer]), dtype)
            arrays.append(None if mask is None else to_jax(mask, (m, *shapes[layer]), dtype, f"mask {layer}"))
        return x, targets, arrays

    def _input_dtype(self, x) -> str:
        """The spec's dtype, or for token ids (a stack that starts with an embedding) their integer
        dtype, each id checked here: JAX's indexing would clamp one out of range without an error."""
        if not self.spec.token_inputs:
            return self.spec.dtype
        x = np.asarray(x)
        check_tokens(self.spec, x, self.name)
        return str(x.dtype)

    def _trace(self, x, targets, masks):
        x, targets, masks = self._batch(x, targets, masks)
        return _compiled_trace(self.params, self.running, self.config, x, targets, masks,
                               structure=self.structure, shapes=self.spec.layer_shapes[1:])

    @property
    def optax_optimizer(self) -> optax.GradientTransformation:
        """The optax optimizer (a spec it cannot express still traces; training raises)."""
        return optimizer(self.spec.optimizer, self.spec.dtype)

    @property
    def state(self):
        if self._state is None:
            self._state = self.optax_optimizer.init(self.params)
        return self._state

    # -- public hooks -----------------------------------------------------------------------

    def forward(self, x, masks=None, params=None, taps=None):
        """(Z_1..Z_L, A_1..A_L) as JAX arrays, BatchNorm in training mode. ``params`` (default: the
        backend's own) lets a JAX transformation (``jax.grad``, ``jax.make_jaxpr``) trace through
        it; ``taps`` (zeros like every Z, like every A) are added to them, so that one can
        differentiate with respect to each Z_l and A_l (as :meth:`trace` does)."""
        x, _, masks = self._batch(x, None, masks, compiled=False)
        params = self.params if params is None else params
        zs, activations, _ = _forward(self.choices, self.structure, params, x, masks, taps)
        return zs, activations

    def loss(self, z_out, a_out, targets, params=None):
        """The loss (a JAX scalar) from Z_L and A_L, with the L2 penalty of ``params``' kernels."""
        targets = to_jax(targets, tuple(np.shape(z_out)), self.spec.dtype, "targets")
        kernels = _kernels(self.structure, self.params if params is None else params)
        return _loss(self.choices, kernels, z_out, a_out, targets)

    def gradients(self, x, targets, masks=None):
        return [np.array(g) for g in self._trace(x, targets, masks)[3]]

    def trace(self, x, targets, masks=None):
        loss, zs, activations, dparams, (dzs, das), _ = self._trace(x, targets, masks)
        out = {"loss": np.array(loss)}
        reads_outputs = LOSSES[self.spec.loss][1] == "outputs"
        gradients = iter(dparams)
        for names in self.spec.gradient_names:
            out.update((name, np.array(next(gradients))) for name in names)
        for layer in range(1, self.spec.n_layers + 1):
            out[f"Z{layer}"] = np.array(zs[layer - 1])
            out[f"A{layer}"] = np.array(activations[layer - 1])
            out[f"dZ{layer}"] = np.array(dzs[layer - 1])
            if layer < self.spec.n_layers or reads_outputs:
                out[f"dA{layer}"] = np.array(das[layer - 1])
        return out

    def layer_trace(self, layer, a_prev, upstream, mask=None):
        shapes, dtype, m = self.spec.layer_shapes, self.spec.dtype, np.shape(a_prev)[0]
        a_prev = to_jax(a_prev, (m, *shapes[layer - 1]), self._input_dtype(a_prev) if layer == 1 else dtype,
                        f"A{layer - 1}")
        upstream = to_jax(upstream, (m, *shapes[layer]), dtype, f"upstream of layer {layer}")
        output = layer == self.spec.n_layers
        if mask is None and not output:
            mask = np.ones((m, *shapes[layer]), dtype)            # one executable with and without
        mask = None if mask is None else to_jax(mask, (m, *shapes[layer]), dtype, f"mask {layer}")
        parameters = _split(self.structure, self.params)[layer - 1]
        out = _compiled_layer(self.config, layer - 1, a_prev, parameters, upstream, mask,
                              layer=self.structure[layer - 1], output=output, shape=shapes[layer])
        return {key: None if value is None else np.array(value) for key, value in out.items()}

    def fit(self, x, targets, plan, fused=False):
        """``fused``: every step through :func:`_training_step`, one executable per batch shape
        compiled at XLA's default optimization, faster per step than :meth:`train_step`'s two
        calls at optimization level 0 (the timings are in ``docs/speed.md``)."""
        if not fused:
            return super().fit(x, targets, plan)
        losses = [self.fused_step(*self.fused_inputs(xb, yb, step.masks))
                  for step, xb, yb in batches(x, targets, plan)]
        return np.array([float(loss) for loss in losses])

    def fused_step(self, x, targets, masks):
        """One training step through the fused executable (:func:`_training_step`) on arrays already
        converted by :meth:`_batch` (masks of ones where a layer does not drop); returns the loss as a
        JAX scalar, not waited for. ``fit(fused=True)`` runs it per batch; the benchmark times it."""
        optimizer = optimizer_key(self.spec.optimizer)
        self.params, self._state, self.running, loss = _compiled_training_step(
            self.params, self.state, self.running, self.hyper, self.config, x, targets, masks,
            structure=self.structure, optimizer=optimizer)
        self.steps += 1
        return loss

    def fused_inputs(self, x, targets, masks=None):
        """(x, targets, masks) as :meth:`fused_step` takes them (converted once, shapes checked)."""
        return self._batch(x, targets, masks)

    def train_step(self, x, targets, masks=None):
        loss, _, _, grads, _, moved = self._trace(x, targets, masks)
        update = _compiled_update(*optimizer_key(self.spec.optimizer))
        self.params, self._state = update(self.params, self.state, self.hyper, grads)
        self.running = moved
        self.steps += 1
        return float(loss)

    def apply_gradients(self, gradients):
        grads = self._canonical_to_jax(gradients)
        update = _compiled_update(*optimizer_key(self.spec.optimizer))
        self.params, self._state = update(self.params, self.state, self.hyper, grads)
        self.steps += 1

    def optimizer_state(self):
        state = self.state
        slots = [{} for _ in self.params]
        if self.steps:
            for ours, (theirs, sign) in state_fields(self.spec.optimizer).items():
                buffers = optax.tree.get(state, theirs, None)
                if buffers is None:                            # no momentum: no trace
                    continue
                for slot, buffer in zip(slots, buffers, strict=True):
                    slot[ours] = np.array(buffer) * sign if sign < 0 else np.array(buffer)
        return OptimizerState(self.steps, slots)

    def restore(self, tensors, state):
        self.params = self._canonical_to_jax(flat(self.spec, tensors))
        fresh = self.optax_optimizer.init(self.params)
        if state.t:
            values = {}
            for ours, (theirs, sign) in state_fields(self.spec.optimizer).items():
                if optax.tree.get(fresh, theirs, None) is None:
                    continue
                arrays = [slot[ours] * sign if sign < 0 else slot[ours] for slot in state.slots]
                values[theirs] = self._canonical_to_jax(arrays)
            if optax.tree.get(fresh, "count", None) is not None:
                values["count"] = jnp.asarray(state.t, jnp.int32)
            fresh = optax.tree.set(fresh, **values)
        self._state = fresh
        self.steps = state.t

    def tensors(self):
        return nest(self.spec, [np.array(p) for p in self.params])

    def statistics(self):
        return [(np.array(mean), np.array(variance)) for mean, variance in self.running]

    def inference_outputs(self, x):
        x, _, _ = self._batch(x, compiled=False)
        z_out, a_out = _compiled_inference(self.params, self.running, self.config, x,
                                           structure=self.structure)
        return np.array(z_out), np.array(a_out)
