"""A JAX MLP written with ``jax.numpy``, its parameters a dict pytree with flax-style (in, out)
kernels, plugged into ``compare`` through ``ports.jax_port``: ``faithful`` is right;
``double_softmax`` makes the classic optax mistake — ``apply`` ends in ``jax.nn.softmax`` and the
loss is ``optax.softmax_cross_entropy``, which applies its own softmax to what it is given.

    backprop-parity compare examples/mlp_weights.safetensors examples/jax_mlp.py:faithful
    backprop-parity compare examples/mlp_weights.safetensors examples/jax_mlp.py:double_softmax
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ports.jax_port import JaxPort

SPEC = {"inputs": 784, "layers": [{"kind": "dense", "units": 64, "activation": "relu"},
                                  {"kind": "dense", "units": 32, "activation": "relu"},
                                  {"kind": "dense", "units": 10, "activation": "softmax"}],
        "loss": "cce", "optimizer": {"name": "sgd", "learning_rate": 0.1}, "dtype": "float64"}
SIZES = (784, 64, 32, 10)


def init(seed=0):
    rng = np.random.default_rng(seed)
    return {f"dense{k}": {"kernel": rng.normal(0, np.sqrt(2 / n_in), (n_in, n_out)), "bias": np.zeros(n_out)}
            for k, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=False), start=1)}


def logits(params, x, training):
    a = x
    for k in range(1, len(SIZES)):
        z = a @ params[f"dense{k}"]["kernel"] + params[f"dense{k}"]["bias"]
        a = jax.nn.relu(z) if k < len(SIZES) - 1 else z
    return a


# layer k's W is params["dense{k}"]["kernel"] in (in, out), its b params["dense{k}"]["bias"]
PATHS = {(k, name): (f"dense{k}", leaf) for k in range(1, len(SIZES))
         for name, leaf in (("W", "kernel"), ("b", "bias"))}


def faithful():
    return JaxPort(SPEC, logits, init(), PATHS, layouts={"dense": "in_out"})


def probabilities(params, x, training):
    return jax.nn.softmax(logits(params, x, training), axis=-1)


def double_softmax():
    return JaxPort(SPEC, probabilities, init(), PATHS, layouts={"dense": "in_out"}, returns="outputs",
                   loss=lambda out, y: jnp.mean(optax.softmax_cross_entropy(out, y)))
