"""The spec's layers in JAX, channels-first: one function per layer kind, from ``jax.numpy``,
``jax.nn`` and ``jax.lax`` (formulas: ``scratch.layers``; gradients: JAX's own autodiff).

A spec's stack becomes a tuple of :class:`Layer` (kind and settings, plain hashable values): the
static structure every jitted function of ``twins.jax_backend`` is compiled for. An MLP of L
layers is L × ``Layer("dense")`` whatever its sizes and activations (chosen at run time), so MLPs
of one depth still share executables; any other stack also fixes each layer's activation, since
its executable is its own anyway and one activation compiles faster than the runtime choice
among all of them (compile times in ``docs/speed.md``).

* dense       A_{l−1}·W_lᵀ + b_l, W_l kept in the canonical (n_l, n_{l−1}).
* conv2d      ``lax.conv_general_dilated`` on NCHW inputs with the canonical OIHW kernel
              (dimension numbers ("NCHW", "OIHW", "NCHW"): no transpose), + b per channel.
              Padding: "valid"/"same" are handed to JAX as its own "VALID"/"SAME" — JAX's
              ``lax.padtype_to_pads`` splits the total padding of the dilated kernel with the odd
              row/column at the bottom/right, TensorFlow's split, so the engine's
              ``padding_amounts`` is checked against JAX's rule, not copied into it; explicit
              (top, bottom, left, right) become ((top, bottom), (left, right)).
* max/avg     ``lax.reduce_window`` with ``lax.max`` (from −∞) or ``lax.add`` (then ÷ p_h·p_w),
  pooling     "VALID". JAX differentiates the max by ``select_and_scatter_add`` with ``ge``: the
              gradient of a window goes to its FIRST maximum in row-major order, the engine's
              and torch's choice (asserted on ties by ``parity_tests/frameworks/test_jax_max_pool_ties.py``).
* global avg  ``jnp.mean`` over (H, W).
* flatten     a reshape of (m, C, H, W) (channels_first), or of its (m, H, W, C) transpose.
* batch_norm  ``jax.nn.standardize`` with the batch's mean and biased variance (``jnp.var``, two
              passes) in training, the running ones in inference; then γ·x̂ + β per channel.
              JAX has no stateful layer: the running update ρ·old + (1 − ρ)·new, with the new
              variance unbiased (·n/(n − 1)) or biased as the spec says, is :func:`moved_statistics`.
* layer_norm  ``jax.nn.standardize(algorithm="stable")`` over the features, then γ·x̂ + β.
* embedding   ``E[X]`` (``jnp.take`` of the rows); JAX clamps an index out of range to the last row
              (``x[i]``) or gives NaN (``jnp.take``) without an error, so the backend checks every
              token id on the host before a pass (``twins.jax_backend``).
* simple_rnn, the cell in ``jax.numpy`` over ``lax.scan`` (``twins.jax_recurrent``: JAX has no
  lstm, gru  recurrent layer), torch's layout and gate order, from a zero state; every h_t or h_T.
* sequence_  ``x[:, -1]`` or ``jnp.mean`` over time.
  pool
* prelu       ``jnp.where(z > 0, z, α·z)`` (slope α at z = 0) or ``relu(z) − α·relu(−z)`` (slope 0
              at z = 0: Keras's form), as ``slope_at_zero`` says; α in its canonical
              broadcastable shape.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from scratch.errors import BackendError
from scratch.layer_specs import LAYER_SPECS
from twins.jax_recurrent import run_recurrent


class Layer(NamedTuple):
    """One numbered layer as the compiled functions see it: ``kind`` and its settings."""

    kind: str
    options: tuple = ()
    activation: str | None = None        # g_l fixed at compile time; None: the runtime choice
    tensors: tuple = ()                  # the layer's declared trainable tensors (TensorSpec), in order


def describe(spec) -> tuple[Layer, ...]:
    """The static structure of ``spec``: a :class:`Layer` per numbered layer (with its
    activation, unless ``spec`` is an MLP)."""
    layers = []
    for layer in spec.numbered_layers:
        if layer.kind not in LAYERS:
            raise BackendError(f"jax backend: no JAX layer for kind {layer.kind!r}")
        layers.append(Layer(layer.kind, LAYERS[layer.kind].options(layer),
                            tensors=tuple(tensor for tensor in layer.tensors if tensor.trainable)))
    if spec.is_mlp:
        return tuple(layers)
    return tuple(layer._replace(activation=name) if has_activation(layer) else layer
                 for layer, name in zip(layers, spec.activations, strict=True))


def trainable(layer: Layer) -> tuple:
    """The declared trainable tensors of ``layer`` (``scratch.layer_specs``; a recurrent layer's
    follow its bias convention), in order."""
    return layer.tensors


def kernels(layer: Layer, parameters: tuple) -> tuple:
    """Those of ``parameters`` (the layer's trainable tensors) that L2 penalizes."""
    return tuple(p for tensor, p in zip(trainable(layer), parameters, strict=True) if tensor.l2)


def has_activation(layer: Layer) -> bool:
    """Whether the kind's spec has an ``activation`` field (else A_l = Z_l)."""
    return "activation" in LAYER_SPECS[layer.kind].__dataclass_fields__


def _per_channel(v, ndim: int):
    """(C,) → broadcastable against (m, C) or (m, C, H, W)."""
    return v if ndim == 2 else v[:, None, None]


def _channel_axes(a) -> tuple[int, ...]:
    return (0,) if a.ndim == 2 else (0, 2, 3)


def conv2d(a, w, b, strides: int, padding, dilation: int):
    z = lax.conv_general_dilated(a, w, (strides, strides), padding, rhs_dilation=(dilation, dilation),
                                 dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=lax.Precision.HIGHEST)
    return z + b[None, :, None, None]


def pool2d(a, kind: str, pool: tuple[int, int], strides: int):
    window, step = (1, 1, *pool), (1, 1, strides, strides)
    if kind == "max_pool2d":
        return lax.reduce_window(a, -jnp.inf, lax.max, window, step, "VALID")
    return lax.reduce_window(a, 0.0, lax.add, window, step, "VALID") / (pool[0] * pool[1])


def flatten(a, order: str):
    if order == "channels_last":
        a = jnp.transpose(a, (0, 2, 3, 1))                 # (m, H, W, C)
    return a.reshape(a.shape[0], -1)


def batch_norm(a, gamma, beta, epsilon: float, statistics=None):
    """(Z, (μ, σ²) of the batch) in training (``statistics`` None), (Z, None) with the running
    (mean, variance) given."""
    axes = _channel_axes(a)
    if statistics is None:
        mean, variance = jnp.mean(a, axes), jnp.var(a, axes)           # (C,), biased
        batch = (mean, variance)
    else:
        (mean, variance), batch = statistics, None
    x_hat = jax.nn.standardize(a, axes, mean=jnp.expand_dims(mean, axes),
                               variance=jnp.expand_dims(variance, axes), epsilon=epsilon)
    return _per_channel(gamma, a.ndim) * x_hat + _per_channel(beta, a.ndim), batch


def layer_norm(a, gamma, beta, epsilon: float):
    return gamma * jax.nn.standardize(a, 1, epsilon=epsilon, algorithm="stable") + beta


def prelu(a, alpha, slope_at_zero: str = "alpha"):
    """max(0, A) + α ⊙ min(0, A), α broadcast from the canonical (1, …), (C, 1, …) or the
    sample's shape: ``where(A > 0, A, α·A)`` for "alpha" (JAX's gradient at A = 0: α, torch's),
    ``relu(A) − α·relu(−A)`` for "zero" (``jax.nn.relu``'s derivative at 0 is 0, Keras's)."""
    if slope_at_zero == "zero":
        return jax.nn.relu(a) - alpha * jax.nn.relu(-a)
    return jnp.where(a > 0, a, alpha * a)


class Kind(NamedTuple):
    """A kind's row: ``options`` (layer spec → the static settings :class:`Layer` carries) and
    ``apply`` (options, the layer's trainable tensors in declaration order, A_{l−1}, running
    statistics or None → (Z_l, the batch's (μ, σ²) of a batch_norm in training, else None)).
    Every tensor is the canonical array itself (no layout conversion in JAX)."""

    options: object
    apply: object


def _none(layer) -> tuple:
    return ()


def _conv2d_options(layer) -> tuple:
    padding = (layer.padding.upper() if isinstance(layer.padding, str)
               else (tuple(layer.padding[:2]), tuple(layer.padding[2:])))
    return (layer.strides, padding, layer.dilation)


def _pool(kind: str) -> Kind:
    return Kind(lambda layer: (tuple(layer.pool_size), layer.strides),
                lambda options, parameters, a, statistics: (pool2d(a, kind, *options), None))


def _recurrent_options(layer) -> tuple:
    return (layer.kind, getattr(layer, "nonlinearity", "tanh"), getattr(layer, "reset_after", True),
            layer.return_sequences, tuple(tensor.name for tensor in layer.tensors))


def recurrent(options: tuple, parameters: tuple, a):
    """Every h_t (m, T, H), or h_T, of a recurrent layer from a zero state."""
    kind, nonlinearity, reset_after, return_sequences, names = options
    tensors = dict(zip(names, parameters, strict=True))
    zero = jnp.zeros((a.shape[0], tensors["weight_hh"].shape[1]), a.dtype)
    states = run_recurrent(kind, tensors, a, (zero, zero) if kind == "lstm" else zero,
                           activation=nonlinearity, reset_after=reset_after)
    return states if return_sequences else states[:, -1]


# The one table: each numbered layer kind → its :class:`Kind` row.
LAYERS = {
    "dense": Kind(_none, lambda options, p, a, s: (a @ p[0].T + p[1], None)),   # canonical W (n_out, n_in)
    "conv2d": Kind(_conv2d_options, lambda options, p, a, s: (conv2d(a, *p, *options), None)),
    "max_pool2d": _pool("max_pool2d"),
    "avg_pool2d": _pool("avg_pool2d"),
    "global_avg_pool2d": Kind(_none, lambda options, p, a, s: (jnp.mean(a, axis=(2, 3)), None)),
    "flatten": Kind(lambda layer: (layer.order,), lambda options, p, a, s: (flatten(a, *options), None)),
    "batch_norm": Kind(lambda layer: (layer.decay, layer.epsilon, layer.running_variance == "unbiased"),
                       lambda options, p, a, s: batch_norm(a, *p, options[1], s)),
    "layer_norm": Kind(lambda layer: (layer.epsilon,),
                       lambda options, p, a, s: (layer_norm(a, *p, *options), None)),
    "prelu": Kind(lambda layer: (layer.slope_at_zero,),
                  lambda options, p, a, s: (prelu(a, p[0], *options), None)),
    "embedding": Kind(_none, lambda options, p, a, s: (jnp.take(p[0], a, axis=0), None)),
    "simple_rnn": Kind(_recurrent_options, lambda options, p, a, s: (recurrent(options, p, a), None)),
    "lstm": Kind(_recurrent_options, lambda options, p, a, s: (recurrent(options, p, a), None)),
    "gru": Kind(_recurrent_options, lambda options, p, a, s: (recurrent(options, p, a), None)),
    "sequence_pool": Kind(lambda layer: (layer.mode,),
                          lambda options, p, a, s: (a[:, -1] if options[0] == "last" else jnp.mean(a, axis=1),
                                                    None)),
}


def apply(layer: Layer, parameters: tuple, a, statistics=None):
    """(Z_l, the batch's (μ, σ²) for a batch_norm layer in training, else None) of ``layer`` on
    A_{l−1}, through its kind's row; ``parameters`` its trainable tensors (declaration order) or
    (); ``statistics`` a batch_norm layer's running (mean, variance) for inference mode (None:
    training mode)."""
    return LAYERS[layer.kind].apply(layer.options, parameters, a, statistics)


def moved_statistics(layer: Layer, running, batch, count: int):
    """The running (mean, variance) after one training step, from the batch's (μ, σ²) over
    ``count`` values per channel: ρ·old + (1 − ρ)·new, the stored variance σ²·n/(n − 1)
    (unbiased) or σ² (biased); ρ and 1 − ρ rounded to the dtype as the engine rounds them."""
    decay, _, unbiased = layer.options
    (old_mean, old_variance), (mean, variance) = running, batch
    if unbiased and count > 1:
        variance = variance * (count / (count - 1))
    rho = jnp.asarray(decay, mean.dtype)
    return rho * old_mean + (1 - rho) * mean, rho * old_variance + (1 - rho) * variance
