"""BatchNorm and LayerNorm against torch's and Keras's own layers: training-mode outputs and
gradients, and the running statistics after several steps — which measures each framework's
convention (which average its momentum weights, ε, a biased or unbiased running variance)."""

from __future__ import annotations

import numpy as np
import pytest

from judge.parity import relative_error
from judge.tolerances import tolerance
from scratch.layers.normalization import BatchNorm, LayerNorm

STEPS = 3


def batches(dtype, shape=(4, 3, 5, 5)):
    rng = np.random.default_rng(9)
    return [(rng.standard_normal(shape) * 2 + 0.5).astype(dtype) for _ in range(STEPS)], rng


def engine(channels, dtype, rng, **settings):
    return BatchNorm(rng.standard_normal(channels).astype(dtype), rng.standard_normal(channels).astype(dtype),
                     np.zeros(channels, dtype), np.ones(channels, dtype), **settings)


def within(got, want, dtype, kind):
    return relative_error(np.asarray(got), want) <= tolerance(dtype, kind)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_batchnorm2d_is_new_batch_momentum_unbiased_running_variance(dtype):
    torch = pytest.importorskip("torch")
    xs, rng = batches(dtype)
    layer = engine(3, dtype, rng, decay=0.9, epsilon=1e-5, unbiased=True)   # torch's defaults
    biased = engine(3, dtype, np.random.default_rng(0), decay=0.9, epsilon=1e-5, unbiased=False)
    twin = torch.nn.BatchNorm2d(3, dtype=getattr(torch, dtype))              # momentum 0.1, ε 1e-5
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.gamma))
        twin.bias.copy_(torch.from_numpy(layer.beta))
    twin.train()
    for x in xs:
        y, cache = layer.forward(x, training=True)
        biased.forward(x, training=True)
        upstream = np.cos(x)
        dgamma, dbeta, dx = layer.backward(upstream, cache)
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        twin.zero_grad()
        yt = twin(xt)
        yt.backward(torch.from_numpy(upstream))
        assert within(yt.detach().numpy(), y, dtype, "forward")
        for got, want in ((twin.weight.grad, dgamma), (twin.bias.grad, dbeta), (xt.grad, dx)):
            assert within(got.numpy(), want, dtype, "gradient")
    assert within(twin.running_mean.numpy(), layer.running_mean, dtype, "forward")
    assert within(twin.running_var.numpy(), layer.running_var, dtype, "forward")
    assert not within(twin.running_var.numpy(), biased.running_var, dtype, "forward")
    twin.eval()
    y_eval, _ = layer.forward(xs[0], training=False)
    assert within(twin(torch.from_numpy(xs[0])).detach().numpy(), y_eval, dtype, "forward")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_keras_batchnormalization_is_old_average_momentum_biased_running_variance(dtype):
    pytest.importorskip("tensorflow")
    import keras
    import tensorflow as tf

    xs, rng = batches(dtype, shape=(4, 5, 5, 3))                               # channels last
    layer = engine(3, dtype, rng, decay=0.99, epsilon=1e-3, unbiased=False)    # Keras's defaults
    unbiased = engine(3, dtype, np.random.default_rng(0), decay=0.99, epsilon=1e-3, unbiased=True)
    twin = keras.layers.BatchNormalization(dtype=dtype)                         # momentum 0.99, ε 1e-3
    twin.build((None, 5, 5, 3))
    twin.gamma.assign(layer.gamma)
    twin.beta.assign(layer.beta)
    for x in xs:
        x_first = np.ascontiguousarray(x.transpose(0, 3, 1, 2))                # the engine is NCHW
        y, cache = layer.forward(x_first, training=True)
        unbiased.forward(x_first, training=True)
        upstream = np.cos(x)
        dgamma, dbeta, dx = layer.backward(np.ascontiguousarray(upstream.transpose(0, 3, 1, 2)), cache)
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            yt = twin(xt, training=True)
        gx, gg, gb = tape.gradient(yt, [xt, twin.gamma, twin.beta], output_gradients=tf.constant(upstream))
        assert within(yt.numpy().transpose(0, 3, 1, 2), y, dtype, "forward")
        assert within(gg.numpy(), dgamma, dtype, "gradient") and within(gb.numpy(), dbeta, dtype, "gradient")
        assert within(gx.numpy().transpose(0, 3, 1, 2), dx, dtype, "gradient")
    assert within(twin.moving_mean.numpy(), layer.running_mean, dtype, "forward")
    assert within(twin.moving_variance.numpy(), layer.running_var, dtype, "forward")
    assert not within(twin.moving_variance.numpy(), unbiased.running_var, dtype, "forward")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_layernorm_against_torch_and_keras(dtype):
    torch = pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((6, 8)) * 3).astype(dtype)
    upstream = rng.standard_normal((6, 8)).astype(dtype)
    gamma, beta = rng.standard_normal(8).astype(dtype), rng.standard_normal(8).astype(dtype)
    for epsilon, framework in ((1e-5, "torch"), (1e-3, "keras")):               # each one's default ε
        layer = LayerNorm(gamma, beta, epsilon=epsilon)
        y, cache = layer.forward(x)
        dgamma, dbeta, dx = layer.backward(upstream, cache)
        if framework == "torch":
            twin = torch.nn.LayerNorm(8, dtype=getattr(torch, dtype))
            with torch.no_grad():
                twin.weight.copy_(torch.from_numpy(gamma))
                twin.bias.copy_(torch.from_numpy(beta))
            xt = torch.from_numpy(x.copy()).requires_grad_(True)
            yt = twin(xt)
            yt.backward(torch.from_numpy(upstream))
            got = (yt.detach().numpy(), twin.weight.grad.numpy(), twin.bias.grad.numpy(), xt.grad.numpy())
        else:
            twin = keras.layers.LayerNormalization(dtype=dtype)
            twin.build((None, 8))
            twin.gamma.assign(gamma)
            twin.beta.assign(beta)
            xt = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                yt = twin(xt)
            gx, gg, gb = tape.gradient(yt, [xt, twin.gamma, twin.beta],
                                       output_gradients=tf.constant(upstream))
            got = (yt.numpy(), gg.numpy(), gb.numpy(), gx.numpy())
        assert within(got[0], y, dtype, "forward"), framework
        for value, want in zip(got[1:], (dgamma, dbeta, dx), strict=True):
            assert within(value, want, dtype, "gradient"), framework
