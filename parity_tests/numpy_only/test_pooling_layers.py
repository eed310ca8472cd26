"""Pooling and Flatten: hand-derived backward against central finite differences, and the
Flatten order fact (a Dense after it needs its columns permuted between the two orders)."""

from __future__ import annotations

import numpy as np
import pytest
from test_gradients_fd import assert_gradient, numerical_gradient

from scratch.errors import SpecError
from scratch.layers.pooling import AvgPool2D, Flatten, GlobalAveragePooling2D, MaxPool2D

LAYERS = {
    "max-2": lambda: MaxPool2D(2),
    "max-3-stride-2-overlapping": lambda: MaxPool2D(3, stride=2),
    "max-2x3-stride-1": lambda: MaxPool2D((2, 3), stride=1),
    "avg-2": lambda: AvgPool2D(2),
    "avg-3-stride-2-overlapping": lambda: AvgPool2D(3, stride=2),
    # non-square windows both ways (p_h ≠ p_w), on the non-square input below (H = 7, W = 6)
    "max-3x2-stride-2": lambda: MaxPool2D((3, 2), stride=2),
    "avg-2x3-stride-1": lambda: AvgPool2D((2, 3), stride=1),
    "avg-3x1-stride-2": lambda: AvgPool2D((3, 1), stride=2),
    "avg-1x4-stride-3": lambda: AvgPool2D((1, 4), stride=3),
    "global-average": GlobalAveragePooling2D,
    "flatten-channels-first": Flatten,
    "flatten-channels-last": lambda: Flatten("channels_last"),
}


@pytest.mark.parametrize("name", LAYERS)
def test_backward_matches_finite_differences(name):
    rng = np.random.default_rng(11)
    layer = LAYERS[name]()
    x = rng.standard_normal((2, 3, 7, 6))
    upstream = rng.standard_normal(layer.forward(x).shape)
    got = layer.backward(upstream, x)
    assert_gradient("dX", numerical_gradient(lambda: float(np.sum(upstream * layer.forward(x))), x), got)
    assert got.dtype == x.dtype


def test_max_pool_sends_a_tie_to_the_first_maximum_only():
    x = np.zeros((1, 1, 2, 2))
    dx = MaxPool2D(2).backward(np.ones((1, 1, 1, 1)), x)
    assert dx.tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]


def test_float32_stays_float32():
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32)
    for layer in (MaxPool2D(2), AvgPool2D(2), GlobalAveragePooling2D(), Flatten("channels_last")):
        z = layer.forward(x)
        assert z.dtype == np.float32 and layer.backward(np.ones_like(z), x).dtype == np.float32


def test_a_dense_after_flatten_needs_its_columns_permuted_between_orders():
    rng = np.random.default_rng(5)
    m, c, h, w = 3, 4, 2, 3
    x = rng.standard_normal((m, c, h, w))
    weight = rng.standard_normal((5, c * h * w))               # columns in channels-first order
    torch_like = Flatten().forward(x) @ weight.T
    permutation = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()
    keras_like = Flatten("channels_last").forward(x) @ weight[:, permutation].T
    np.testing.assert_allclose(keras_like, torch_like, rtol=1e-12)
    assert not np.allclose(Flatten("channels_last").forward(x) @ weight.T, torch_like)


@pytest.mark.parametrize("make, message", [
    (lambda: MaxPool2D(0), "pool"), (lambda: AvgPool2D((2, 2, 2)), "pool"),
    (lambda: MaxPool2D(2, stride=0), "stride"), (lambda: Flatten("nchw"), "order"),
])
def test_bad_settings_are_refused(make, message):
    with pytest.raises(SpecError, match=message):
        make()


def test_an_input_smaller_than_the_window_is_refused():
    with pytest.raises(SpecError, match="at least"):
        MaxPool2D(3).forward(np.zeros((1, 1, 2, 5)))
