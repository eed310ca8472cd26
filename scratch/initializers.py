"""Weight initializers, one per seed write-up and framework default.

Each maps (generator, fan_in, fan_out) to W (fan_out, fan_in) and b (fan_out,), drawn in
float64 from the given seeded ``numpy.random.Generator`` (W first, then b) and cast once,
explicitly, to the spec's dtype, so a float32 model starts from the float64 model's values
rounded to float32.

=============== ======================================= ===================
name            W                                       b
=============== ======================================= ===================
uniform_half    U(−0.5, 0.5)                            U(−0.5, 0.5)
small_normal    0.01·N(0, 1)                            0
he_normal       N(0, 2/fan_in)  (plain, not truncated)  0
lecun_normal    N(0, 1/fan_in)                          N(0, 1)
glorot_uniform  U(±√(6/(fan_in + fan_out)))  (Keras)    0
torch_default   U(±1/√fan_in)  (torch.nn.Linear)        U(±1/√fan_in)
=============== ======================================= ===================
"""

from __future__ import annotations

import numpy as np

from scratch.errors import SpecError


def uniform_half(rng, fan_in, fan_out):
    return rng.uniform(-0.5, 0.5, (fan_out, fan_in)), rng.uniform(-0.5, 0.5, fan_out)


def small_normal(rng, fan_in, fan_out):
    return 0.01 * rng.standard_normal((fan_out, fan_in)), np.zeros(fan_out)


def he_normal(rng, fan_in, fan_out):
    return np.sqrt(2.0 / fan_in) * rng.standard_normal((fan_out, fan_in)), np.zeros(fan_out)


def lecun_normal(rng, fan_in, fan_out):
    return np.sqrt(1.0 / fan_in) * rng.standard_normal((fan_out, fan_in)), rng.standard_normal(fan_out)


def glorot_uniform(rng, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_out, fan_in)), np.zeros(fan_out)


def torch_default(rng, fan_in, fan_out):
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, (fan_out, fan_in)), rng.uniform(-bound, bound, fan_out)


INITIALIZERS = {fn.__name__: fn for fn in
                (uniform_half, small_normal, he_normal, lecun_normal, glorot_uniform, torch_default)}


def initialize(name: str, layer_sizes, seed: int, dtype) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights [W_1..W_L] (each (n_l, n_{l−1})) and biases [b_1..b_L] (each (n_l,)).

    One generator, ``numpy.random.default_rng(seed)``, is used for all layers in order.
    """
    try:
        draw = INITIALIZERS[name]
    except KeyError:
        raise SpecError(f"unknown initializer {name!r}; expected one of {', '.join(INITIALIZERS)}") from None
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True):
        w, b = draw(rng, fan_in, fan_out)
        weights.append(w.astype(dtype))
        biases.append(b.astype(dtype))
    return weights, biases
