"""A hand-written NumPy MLP, as the seed write-ups write one, plugged into ``compare`` through the
layer protocol of ``ports.numpy_port``: ``faithful`` computes every gradient right, ``seed_bug``
sums the bias gradient over everything, to a scalar, as one of the seeds did.

    backprop-parity compare examples/mlp_weights.safetensors examples/numpy_mlp.py:faithful
    backprop-parity compare examples/mlp_weights.safetensors examples/numpy_mlp.py:seed_bug
"""

import numpy as np

from ports.numpy_port import NumpyPort

SPEC = {"inputs": 784, "layers": [{"kind": "dense", "units": 64, "activation": "relu"},
                                  {"kind": "dense", "units": 32, "activation": "relu"},
                                  {"kind": "dense", "units": 10, "activation": "softmax"}],
        "loss": "cce", "optimizer": {"name": "sgd", "learning_rate": 0.1}, "dtype": "float64"}


class MyDense:
    def __init__(self, n_in, n_out, scalar_bias_gradient=False):
        rng = np.random.default_rng(n_in * n_out)
        self.tensors = {"W": rng.normal(0, np.sqrt(2 / n_in), (n_out, n_in)), "b": np.zeros(n_out)}
        self.scalar_bias_gradient = scalar_bias_gradient

    def forward(self, a_prev, training):
        self.a_prev = a_prev
        return a_prev @ self.tensors["W"].T + self.tensors["b"]

    def backward(self, dz):
        db = np.sum(dz) * np.ones(dz.shape[1]) if self.scalar_bias_gradient else dz.sum(axis=0)
        return dz @ self.tensors["W"], {"W": dz.T @ self.a_prev, "b": db}


def faithful():
    return NumpyPort(SPEC, {1: MyDense(784, 64), 2: MyDense(64, 32), 3: MyDense(32, 10)})


def seed_bug():
    return NumpyPort(SPEC, {1: MyDense(784, 64), 2: MyDense(64, 32, scalar_bias_gradient=True),
                            3: MyDense(32, 10)})
