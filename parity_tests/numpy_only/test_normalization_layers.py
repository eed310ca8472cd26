"""BatchNorm and LayerNorm: hand-derived backward against central finite differences, the
running-statistics update against its formula, and inference mode."""

from __future__ import annotations

import numpy as np
import pytest
from test_gradients_fd import assert_gradient, numerical_gradient

from scratch.errors import SpecError
from scratch.layers.normalization import BatchNorm, LayerNorm


def batchnorm(channels, rng, **settings):
    values = dict(decay=0.9, epsilon=1e-5, unbiased=True)
    values.update(settings)
    return BatchNorm(rng.standard_normal(channels), rng.standard_normal(channels), np.zeros(channels),
                     np.ones(channels), **values)


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5)])
def test_batchnorm_training_backward_matches_finite_differences(shape):
    rng = np.random.default_rng(4)
    layer = batchnorm(shape[1], rng)
    x = rng.standard_normal(shape) * 3 + 1
    y, cache = layer.forward(x, training=True)
    upstream = rng.standard_normal(y.shape)

    def loss():
        saved = layer.running_mean.copy(), layer.running_var.copy()
        value = float(np.sum(upstream * layer.forward(x, training=True)[0]))
        layer.running_mean[...], layer.running_var[...] = saved
        return value

    dgamma, dbeta, dx = layer.backward(upstream, cache)
    for name, got, array in (("dgamma", dgamma, layer.gamma), ("dbeta", dbeta, layer.beta), ("dx", dx, x)):
        assert_gradient(name, numerical_gradient(loss, array), got)


@pytest.mark.parametrize("unbiased", [True, False])
def test_running_statistics_follow_the_formula(unbiased):
    rng = np.random.default_rng(1)
    layer = batchnorm(3, rng, decay=0.99, epsilon=1e-3, unbiased=unbiased)
    x = rng.standard_normal((4, 3, 2, 2))
    layer.forward(x, training=True)
    n = 4 * 2 * 2
    variance = x.var(axis=(0, 2, 3)) * (n / (n - 1) if unbiased else 1.0)
    np.testing.assert_allclose(layer.running_mean, 0.01 * x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.99 + 0.01 * variance, rtol=1e-12)


def test_inference_uses_the_running_statistics_and_changes_nothing():
    rng = np.random.default_rng(2)
    layer = batchnorm(3, rng)
    layer.running_mean[...] = [0.5, -1.0, 2.0]
    layer.running_var[...] = [4.0, 0.25, 1.0]
    x = rng.standard_normal((5, 3))
    y, cache = layer.forward(x, training=False)
    assert cache is None
    np.testing.assert_allclose(y, layer.gamma * (x - layer.running_mean) / np.sqrt(layer.running_var + 1e-5)
                               + layer.beta, rtol=1e-12)
    assert layer.running_mean.tolist() == [0.5, -1.0, 2.0]


def test_layernorm_backward_matches_finite_differences():
    rng = np.random.default_rng(6)
    layer = LayerNorm(rng.standard_normal(5), rng.standard_normal(5), epsilon=1e-5)
    x = rng.standard_normal((4, 5)) * 2
    y, cache = layer.forward(x)
    upstream = rng.standard_normal(y.shape)
    dgamma, dbeta, dx = layer.backward(upstream, cache)

    def loss():
        return float(np.sum(upstream * layer.forward(x)[0]))

    for name, got, array in (("dgamma", dgamma, layer.gamma), ("dbeta", dbeta, layer.beta), ("dx", dx, x)):
        assert_gradient(name, numerical_gradient(loss, array), got)


def test_bad_settings_and_shapes_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(SpecError, match="decay"):
        batchnorm(2, rng, decay=1.0)
    with pytest.raises(SpecError, match="channels"):
        batchnorm(2, rng).forward(np.zeros((3, 4)), training=True)
    with pytest.raises(SpecError, match=r"\(m, C\) or \(m, C, H, W\)"):
        batchnorm(2, rng).forward(np.zeros((3, 2, 4)), training=True)
    with pytest.raises(SpecError, match="epsilon"):
        LayerNorm(np.ones(2), np.zeros(2), epsilon=0.0)
