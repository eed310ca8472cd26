"""Conv2D's hand-derived backward against central finite differences, and its padding rules
against the documented formulas (the first layer of the convolution issue; not yet in the spec)."""

from __future__ import annotations

import numpy as np
import pytest
from test_gradients_fd import assert_gradient, numerical_gradient

from scratch.errors import SpecError
from scratch.layers.conv import Conv2D, padding_amounts

CONFIGS = [  # (channels, out channels, (H, W), (k_h, k_w), stride, dilation, padding)
    (1, 2, (5, 5), (3, 3), 1, 1, "valid"),
    (2, 3, (6, 7), (3, 2), 2, 1, "same"),
    (3, 2, (7, 6), (3, 3), 2, 2, "same"),
    (2, 2, (5, 6), (2, 3), 3, 1, (1, 0, 2, 1)),
    (1, 1, (4, 4), (1, 1), 1, 1, "same"),
    (2, 4, (8, 8), (5, 5), 1, 1, "same"),
]


def loss_and_layer(config, rng):
    channels, out_channels, size, kernel, stride, dilation, padding = config
    weight = rng.standard_normal((out_channels, channels, *kernel))
    bias = rng.standard_normal(out_channels)
    layer = Conv2D(weight, bias, stride, dilation, padding)
    x = rng.standard_normal((2, channels, *size))
    z = layer.forward(x)
    upstream = rng.standard_normal(z.shape)                   # L = Σ upstream ⊙ Z

    def loss():
        return float(np.sum(upstream * layer.forward(x)))

    return layer, x, upstream, loss


@pytest.mark.parametrize("config", CONFIGS, ids=[f"cfg{i}" for i in range(len(CONFIGS))])
def test_conv_backward_matches_finite_differences(config):
    rng = np.random.default_rng(7)
    layer, x, upstream, loss = loss_and_layer(config, rng)
    dw, db, dx = layer.backward(upstream, x)
    for name, got, array in (("dW", dw, layer.weight), ("db", db, layer.bias), ("dX", dx, x)):
        assert_gradient(name, numerical_gradient(loss, array), got)


def test_conv_forward_matches_the_definition_on_one_output():
    rng = np.random.default_rng(3)
    layer = Conv2D(rng.standard_normal((2, 3, 3, 2)), rng.standard_normal(2), stride=2, dilation=2,
                   padding=(1, 2, 0, 1))
    x = rng.standard_normal((1, 3, 7, 8))
    z = layer.forward(x)
    x_p = np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 1)))
    for o, y, col in ((0, 0, 0), (1, 2, 1), (1, z.shape[2] - 1, z.shape[3] - 1)):
        want = layer.bias[o] + sum(layer.weight[o, c, i, j] * x_p[0, c, y * 2 + i * 2, col * 2 + j * 2]
                                   for c in range(3) for i in range(3) for j in range(2))
        assert z[0, o, y, col] == pytest.approx(want, rel=1e-12)
    assert z.shape == (1, 2, (7 + 3 - 5) // 2 + 1, (8 + 1 - 3) // 2 + 1)


@pytest.mark.parametrize("size, kernel, stride, want", [
    ((28, 28), (5, 5), 1, (2, 2, 2, 2)),
    ((7, 7), (3, 3), 2, (1, 1, 1, 1)),       # out 4: total (4−1)·2 + 3 − 7 = 2
    ((6, 6), (3, 3), 2, (0, 1, 0, 1)),       # out 3: total 1, the odd one at the bottom/right
    ((5, 8), (2, 2), 1, (0, 1, 0, 1)),       # an even kernel at stride 1: TF pads after
    ((4, 4), (1, 1), 3, (0, 0, 0, 0)),
])
def test_same_padding_splits_like_tensorflow(size, kernel, stride, want):
    assert padding_amounts("same", size, kernel, stride, 1) == want


@pytest.mark.parametrize("bad", ["full", (1, 1), (1, 1, 1, -1), (1, 1, 1, 1.0), 2])
def test_bad_padding_is_refused(bad):
    with pytest.raises(SpecError, match="padding"):
        padding_amounts(bad, (5, 5), (3, 3), 1, 1)


def test_bad_stride_and_input_are_refused():
    weight, bias = np.zeros((2, 1, 3, 3)), np.zeros(2)
    with pytest.raises(SpecError, match="stride"):
        Conv2D(weight, bias, stride=0)
    with pytest.raises(SpecError, match=r"inputs \(m, 1, H, W\)"):
        Conv2D(weight, bias).forward(np.zeros((1, 2, 5, 5)))
    with pytest.raises(SpecError, match="smaller than the dilated kernel"):
        Conv2D(weight, bias, dilation=3).forward(np.zeros((1, 1, 5, 5)))
