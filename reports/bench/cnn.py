"""The CNN benchmark: one training step of the catalog's ``lenet5`` per backend, side by side.

The net is the catalog's ``lenet5`` (:mod:`scratch.catalog`) without its two dropout layers (a
bench step has no mask plan, and an identity mask would time nothing), float32, plain SGD at
η = 0.01, He-normal from seed 0, on the first ``batch`` MNIST training digits as 1×28×28 maps:

    conv 6@5×5 same → ReLU → max-pool 2 → conv 16@5×5 → ReLU → max-pool 2 → flatten
    → dense 120 ReLU → dense 84 ReLU → dense 10, softmax + CCE;   θ ← θ − η·g

Steps (each a zero-argument callable returning the loss before the update as a Python float):

* ``scratch``     — the NumPy engine (``ScratchBackend.train_step``: ``Network.train_step``).
* ``torch``       — the torch twin, eager (``TorchBackend.train_step``).
* ``tf.function`` — the Keras twin's step traced into one graph (``KerasBackend.graph_train_step``).
* ``jax``         — :class:`JaxCnnStep`: forward (the JAX twin's layers), ``jax.value_and_grad``
  and the SGD update fused into one ``jax.jit`` with donated parameters, at XLA's default
  optimization level. The twin itself exposes no fused step: its ``train_step`` is two jitted
  calls (trace with taps, then optax) at optimization level 0, built for compile time, not speed.

:func:`engine_profile` times the engine's layer calls on the bench's batch (where a step goes);
:func:`patches_bytes` is im2col's matrix P per conv layer.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import statistics
import time

import numpy as np

MODEL = "lenet5"
BATCHES = (64, 256)
DTYPE = "float32"
LEARNING_RATE = 0.01
KINDS = ("scratch", "torch", "tf.function", "jax")
NEEDS = {"scratch": "numpy", "torch": "torch", "tf.function": "tensorflow", "jax": "jax"}


def available_kinds() -> list[str]:
    return [kind for kind in KINDS if importlib.util.find_spec(NEEDS[kind]) is not None]


def spec_for(batch: int):
    """The catalog's lenet5 without dropout, SGD at η = :data:`LEARNING_RATE`, float32."""
    from scratch import catalog
    from scratch.spec import OptimizerSpec

    spec = catalog.spec(MODEL)
    layers = tuple(layer for layer in spec.layers if layer.kind != "dropout")
    return dataclasses.replace(spec, layers=layers, batch_size=batch, dtype=DTYPE,
                               optimizer=OptimizerSpec("sgd", learning_rate=LEARNING_RATE))


def batch_data(spec, batch: int) -> tuple[np.ndarray, np.ndarray, list, list]:
    """(X (m, 1, 28, 28), one-hot Y (m, 10), weights, biases): the first ``batch`` MNIST
    training digits and the spec's initial parameters (seed 0)."""
    from reports.bench.grid import mnist
    from scratch.errors import DataError
    from scratch.model import Network

    data = mnist(spec.dtype)
    if batch > len(data.x_train):
        raise DataError(f"bench batch {batch}: MNIST has only {len(data.x_train)} training samples")
    model = Network(spec)
    x = np.ascontiguousarray(data.x_train[:batch].reshape(batch, *spec.input_shape))
    return x, model.targets(data.y_train[:batch]), model.weights, model.biases


def make_step(kind: str, spec, weights, biases, x: np.ndarray, targets: np.ndarray):
    """The step callable of ``kind``; it also has ``parameters()`` → (weights, biases), canonical."""
    from twins.backends import make_backend

    if kind in ("scratch", "torch"):
        backend = make_backend(kind, spec, weights, biases)
        step = functools.partial(backend.train_step, x, targets)
        return _Step(step, backend.parameters)
    if kind == "tf.function":
        import tensorflow as tf

        backend = make_backend("keras", spec, weights, biases)
        graph = backend.graph_train_step()
        x_tensor, y_tensor = tf.constant(x), tf.constant(targets)
        return _Step(lambda: float(graph(x_tensor, y_tensor)), backend.parameters)
    if kind == "jax":
        return JaxCnnStep(spec, weights, biases, x, targets)
    raise ValueError(f"unknown CNN step kind {kind!r}; expected one of {', '.join(KINDS)}")


class _Step:
    def __init__(self, step, parameters):
        self._step, self.parameters = step, parameters

    def __call__(self) -> float:
        return float(self._step())


class JaxCnnStep:
    """One ``jax.jit`` of the JAX twin's forward and loss, ``jax.value_and_grad`` and θ ← θ − η·g,
    parameters donated (updated in place)."""

    def __init__(self, spec, weights, biases, x: np.ndarray, targets: np.ndarray):
        import jax
        import jax.numpy as jnp

        from twins.jax_backend import JaxBackend, _forward, _kernels, _loss

        if spec.optimizer.name != "sgd" or spec.l2:
            from scratch.errors import BackendError

            raise BackendError("the jax CNN bench step is written for plain SGD without L2")
        twin = JaxBackend(spec, weights, biases)          # its parameter checks and layers
        structure, choices = twin.structure, twin.choices

        def loss_of(params, x, y):
            zs, activations, _ = _forward(choices, structure, params, x, None)
            return _loss(choices, _kernels(structure, params), zs[-1], activations[-1], y)

        def step(params, x, y, learning_rate):
            loss, grads = jax.value_and_grad(loss_of)(params, x, y)
            return [p - learning_rate * g for p, g in zip(params, grads, strict=True)], loss

        self.params = [jnp.array(p, copy=True) for p in twin.params]
        self.x, self.y = jnp.asarray(x), jnp.asarray(targets)
        self.learning_rate = jnp.asarray(spec.optimizer.learning_rate, spec.dtype)
        self._step = jax.jit(step, donate_argnums=0)

    def __call__(self) -> float:
        self.params, loss = self._step(self.params, self.x, self.y, self.learning_rate)
        return float(loss)

    def parameters(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        arrays = [np.asarray(p) for p in self.params]
        return arrays[0::2], arrays[1::2]


def patches_bytes(spec, batch: int) -> list[dict]:
    """im2col's P per conv layer: (m·H_out·W_out) × (C·k_h·k_w) numbers × itemsize (the engine
    holds it as the transpose, (C·k_h·k_w, H_out·W_out·m): the same bytes)."""
    rows = []
    for layer, layer_spec in zip(range(1, spec.n_layers + 1), spec.numbered_layers, strict=True):
        if layer_spec.kind != "conv2d":
            continue
        channels = spec.layer_shapes[layer - 1][0]
        _, h_out, w_out = spec.layer_shapes[layer]
        k_h, k_w = layer_spec.kernel_size if isinstance(layer_spec.kernel_size, tuple) else (
            layer_spec.kernel_size,) * 2
        shape = (batch * h_out * w_out, channels * k_h * k_w)
        rows.append({"layer": layer, "rows": shape[0], "cols": shape[1],
                     "bytes": shape[0] * shape[1] * np.dtype(spec.dtype).itemsize})
    return rows


def step_peak_bytes(spec, batch: int) -> int:
    """tracemalloc's peak over one engine step (after a warm-up step), NumPy's allocations included."""
    import tracemalloc

    from twins.backends import make_backend

    x, targets, weights, biases = batch_data(spec, batch)
    backend = make_backend("scratch", spec, weights, biases)
    backend.train_step(x, targets)
    tracemalloc.start()
    try:
        backend.train_step(x, targets)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _medians_interleaved(calls: dict, repeats: int) -> dict[str, float]:
    """Median seconds of every callable, timed in rounds (each callable once per round), so that a
    busy machine slows every part alike."""
    for call in calls.values():
        call()
    samples = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def engine_profile(spec, batch: int, repeats: int = 20) -> dict[str, float]:
    """Median seconds of the engine's parts of one step on the bench's batch, by calling each
    layer's own methods on the activations of a real forward pass (all parts and the whole step
    timed in interleaved rounds):

    * conv ``l`` im2col — ``Conv2D.patches``; forward GEMM — ``run`` minus im2col;
    * conv ``l`` dW, db — ``differentiate`` without the input gradient; col2im — with it, minus
      without: dP = W₂ᵀ·dZ₂ and the k_h·k_w strided additions into dX_p; "of which the dP GEMM" —
      a product of the same shapes, (C·k_h·k_w, O)·(O, H_out·W_out·m);
    * pooling, flatten and dense — ``run`` (forward) and ``differentiate`` (backward);
    * activations, loss — ReLU/softmax forward and backward, the loss and its gradient;
    * step — ``Network.train_step`` whole; "rest" is the step minus the parts (SGD, the stack's
      glue, and what isolated calls on warm caches do not pay).
    """
    from scratch.model import Network
    from scratch.optimizers import make_optimizer

    x, targets, weights, biases = batch_data(spec, batch)
    model = Network(spec, weights, biases)
    forward = model.forward(x)
    grads = model.backward(forward, targets)
    calls, activation_calls = {}, []
    for index, operation in enumerate(model.layers):
        layer = index + 1
        kind = spec.numbered_layers[index].kind
        a_prev = forward.x if index == 0 else forward.a[index - 1]
        dz, cache = grads.dz[index], forward.caches[index]
        upstream = index > 0
        name = {"conv2d": "conv", "max_pool2d": "pool"}.get(kind, kind) + str(layer)
        calls[f"{name} run"] = lambda op=operation, a=a_prev: op.run(a, True, False)
        calls[f"{name} differentiate"] = (lambda op=operation, d=dz, a=a_prev, c=cache, u=upstream:
                                          op.differentiate(d, a, c, 0.0, input_gradient=u))
        if kind == "conv2d":
            calls[f"{name} patches"] = lambda op=operation, a=a_prev: op.patches(a)
            calls[f"{name} no input gradient"] = (lambda op=operation, d=dz, a=a_prev, c=cache:
                                                  op.differentiate(d, a, c, 0.0, input_gradient=False))
            if upstream:
                columns, channels = dz.shape[0] * dz.shape[2] * dz.shape[3], dz.shape[1]
                w2t = np.ones((channels, operation.weight[0].size), dz.dtype).T   # a view, as W₂ᵀ
                dz2 = np.ones((channels, columns), dz.dtype)
                calls[f"{name} dP GEMM"] = lambda a=w2t, b=dz2: a @ b
        function = model.activations[index]
        z, h = forward.z[index], forward.h[index]
        activation_calls.append(f"g{layer} forward")
        calls[activation_calls[-1]] = lambda f=function, z=z: f.forward(z)
        if index < spec.n_layers - 1:
            activation_calls.append(f"g{layer} backward")
            calls[activation_calls[-1]] = lambda f=function, z=z, h=h, d=grads.da[layer]: f.backward(z, h, d)
    loss_fn = model.loss_fn
    activation_calls += ["loss", "loss gradient"]
    calls["loss"] = lambda: loss_fn.value(forward.z[-1], forward.a[-1], targets)
    calls["loss gradient"] = lambda: loss_fn.gradient(forward.z[-1], forward.a[-1], targets)
    optimizer = make_optimizer(spec.optimizer)
    calls["step"] = lambda: model.train_step(x, targets, optimizer)
    t = _medians_interleaved(calls, repeats)

    parts: dict[str, float] = {}
    for index in range(spec.n_layers):
        layer, kind = index + 1, spec.numbered_layers[index].kind
        if kind == "conv2d":
            name = f"conv{layer}"
            parts[f"{name} im2col"] = t[f"{name} patches"]
            parts[f"{name} forward GEMM"] = t[f"{name} run"] - t[f"{name} patches"]
            parts[f"{name} dW,db GEMM"] = t[f"{name} no input gradient"]
            if f"{name} dP GEMM" in t:
                input_gradient = t[f"{name} differentiate"] - t[f"{name} no input gradient"]
                parts[f"{name} col2im (input gradient)"] = input_gradient
        else:
            name = {"max_pool2d": "pool"}.get(kind, kind) + str(layer)
            parts[f"{name} forward"] = t[f"{name} run"]
            parts[f"{name} backward"] = t[f"{name} differentiate"]
    parts["activations, loss"] = sum(t[name] for name in activation_calls)
    parts["rest (step − parts: SGD, glue, caches)"] = t["step"] - sum(parts.values())
    parts["step"] = t["step"]
    parts.update({f"{name} (within col2im)": t[name] for name in t if name.endswith("dP GEMM")})
    return parts
