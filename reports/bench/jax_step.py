"""The benchmark's JAX step: one ``jax.jit`` of forward, ``jax.value_and_grad`` and the optimizer
update, for the subset of the spec the grid uses (anything else is a :class:`BackendError`).

From the shared layout — W_l (n_l, n_{l−1}), b_l (n_l,), data as rows X (m, n_0), one-hot Y (m, n_L):

    Z_l = A_{l−1}·W_lᵀ + b_l,   A_l = ReLU(Z_l) for l < L      (jax.nn.relu: ReLU′(0) = 0, as scratch)
    L   = (1/m) Σ_rows [logsumexp(Z_L) − Σ_j Y_j·Z_{L,j}]     (softmax + CCE read from the logits)

and the gradients by ``jax.value_and_grad``; then, for every parameter θ with gradient g at step
t (formulas and order of operations as ``scratch.optimizers``):

    SGD:           θ ← θ − η·g
    Adam (torch):  m ← m + (1 − β₁)(g − m);   s ← β₂·s + (1 − β₂)·g·g
                   θ ← θ − (η/(1 − β₁ᵗ))·m / (√s/√(1 − β₂ᵗ) + ε)

The bias corrections are Python floats computed per step outside the compiled function, as torch
does; parameters and optimizer state are donated to it, so each step updates them in place.

Numerics and threads (:func:`configure_jax`): ``jax_enable_x64`` is switched on before any
array exists (without it JAX silently makes float64 arrays float32). XLA's CPU client sizes its
thread pool from the CPUs the process may use when the client starts, and this XLA ignores the
``XLA_FLAGS`` thread options (``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=N``
left a 1500² product on two cores here); so the client is started under an N-CPU affinity mask,
after which its threads are given every CPU back — N threads, free to move. XLA_FLAGS is not set:
TensorFlow's own XLA reads the same variable in this process (Keras ``train_on_batch``).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from scratch.errors import BackendError

GRID_SUBSET = "ReLU hidden layers, softmax + cce output, no L2 or dropout, SGD or torch-convention Adam"


def configure_jax(threads: int | None = None) -> dict[str, str]:
    """Enable float64 and size XLA's CPU pool to ``threads`` (None: its default); returns the
    setting, for the benchmark's ``frameworks`` record."""
    import jax

    jax.config.update("jax_enable_x64", True)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else None
    if threads is None or cpus is None:
        pool = "default threads"
    elif _backend_started():
        pool = "threads fixed at start"
    elif threads >= cpus:
        jax.devices("cpu")
        pool = f"threads={cpus} (every CPU)"
    else:
        with _cpu_mask(threads):
            jax.devices("cpu")
        pool = f"threads={threads} (client started under a {threads}-CPU affinity mask)"
    return {"jax": f"{jax.__version__}, x64 enabled, CPU {pool}"}


def _backend_started() -> bool:
    from jax._src import xla_bridge

    started = getattr(xla_bridge, "backends_are_initialized", None)
    return True if started is None else started()          # unknown: assume it is too late


@contextlib.contextmanager
def _cpu_mask(count: int):
    """Restrict this thread to its first ``count`` CPUs; afterwards give it, and the threads
    started meanwhile (which inherited the mask), all of them back. Other threads are untouched."""
    every = os.sched_getaffinity(0)
    before = set(os.listdir("/proc/self/task"))
    os.sched_setaffinity(0, sorted(every)[:count])
    try:
        yield
    finally:
        os.sched_setaffinity(0, every)
        for task in set(os.listdir("/proc/self/task")) - before:
            with contextlib.suppress(OSError):              # a thread that has ended meanwhile
                os.sched_setaffinity(int(task), every)


class JaxStep:
    """The step callable: ``step()`` runs one compiled training step on the fixed batch and
    returns the loss before the update, as a Python float (which waits for the step)."""

    def __init__(self, spec, weights, biases, x: np.ndarray, targets: np.ndarray):
        _check_spec(spec)
        configure_jax()
        import jax
        import jax.numpy as jnp

        self.spec = spec
        for layer, (w, b) in enumerate(zip(weights, biases, strict=True), start=1):
            n_out, n_in = spec.layer_sizes[layer], spec.layer_sizes[layer - 1]
            assert w.shape == (n_out, n_in) and b.shape == (n_out,), f"layer {layer}: {w.shape}, {b.shape}"
        # copies: the donated buffers must not alias the caller's arrays
        self.params = [jnp.array(p, dtype=spec.dtype, copy=True)
                       for pair in zip(weights, biases, strict=True) for p in pair]
        moments = ("m", "s") if spec.optimizer.name == "adam" else ()
        self.state = [jnp.zeros_like(p) for _ in moments for p in self.params]   # [m…, s…], each its own
        self.x, self.y = jnp.asarray(x), jnp.asarray(targets)
        assert self.x.dtype == self.y.dtype == np.dtype(spec.dtype), (self.x.dtype, self.y.dtype)
        self.t = 0
        self._step = jax.jit(_adam_step if spec.optimizer.name == "adam" else _sgd_step,
                             static_argnames="hyper", donate_argnums=(0, 1))

    def __call__(self) -> float:
        opt = self.spec.optimizer
        self.t += 1
        if opt.name == "adam":
            hyper = (opt.beta1, opt.beta2, opt.epsilon)
            corrections = (opt.learning_rate / (1 - opt.beta1 ** self.t), (1 - opt.beta2 ** self.t) ** 0.5)
        else:
            hyper, corrections = (opt.learning_rate,), ()
        self.params, self.state, loss = self._step(self.params, self.state, self.x, self.y, *corrections,
                                                   hyper=hyper)
        return float(loss)

    def parameters(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(weights, biases) as NumPy arrays in the shared layout."""
        arrays = [np.asarray(p) for p in self.params]
        return arrays[0::2], arrays[1::2]


def _check_spec(spec) -> None:
    opt = spec.optimizer
    if ((spec.hidden_activation, spec.output_activation, spec.loss) != ("relu", "softmax", "cce")
            or spec.l2 or spec.dropout
            or not (opt.name == "sgd" or (opt.name, opt.convention) == ("adam", "torch"))):
        raise BackendError(f"the jax bench step covers only the grid's spec ({GRID_SUBSET}); got "
                           f"{spec.hidden_activation}/{spec.output_activation}+{spec.loss}, l2={spec.l2}, "
                           f"dropout={spec.dropout}, {opt.name} ({opt.convention} convention)")


def _loss(params, x, y):
    import jax
    import jax.numpy as jnp

    a = x
    n_layers = len(params) // 2
    for layer in range(n_layers):
        w, b = params[2 * layer], params[2 * layer + 1]
        z = a @ w.T + b                                         # (m, n_l)
        a = jax.nn.relu(z) if layer < n_layers - 1 else z
    return jnp.mean(jax.nn.logsumexp(a, axis=1) - jnp.sum(y * a, axis=1))


def _sgd_step(params, state, x, y, *, hyper):
    import jax

    (learning_rate,) = hyper
    loss, grads = jax.value_and_grad(_loss)(params, x, y)
    return [p - learning_rate * g for p, g in zip(params, grads, strict=True)], state, loss


def _adam_step(params, state, x, y, step_size, bias_correction2_sqrt, *, hyper):
    import jax
    import jax.numpy as jnp

    beta1, beta2, epsilon = hyper
    loss, grads = jax.value_and_grad(_loss)(params, x, y)
    half = len(params)
    new_params, new_m, new_s = [], [], []
    for p, g, m, s in zip(params, grads, state[:half], state[half:], strict=True):
        m = m + (1 - beta1) * (g - m)
        s = s * beta2 + (1 - beta2) * g * g
        denom = jnp.sqrt(s) / bias_correction2_sqrt + epsilon
        new_params.append(p - step_size * (m / denom))
        new_m.append(m)
        new_s.append(s)
    return new_params, new_m + new_s, loss
