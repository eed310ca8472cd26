"""Hypothesis strategies for small convolutional stacks, shared by the engine's finite-difference
tests (``numpy_only/test_layer_stack.py``) and the twins' parity tests
(``frameworks/test_random_conv_nets.py``). NumPy and the engine's spec only."""

from __future__ import annotations

from hypothesis import strategies as st

from scratch.errors import SpecError
from scratch.layer_specs import (
    AvgPool2DSpec,
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    MaxPool2DSpec,
)
from scratch.spec import ModelSpec


@st.composite
def conv_stacks(draw):
    """A random small conv net: 1–2 conv layers (channels, kernel, stride, dilation, padding,
    activation), an optional pooling layer, optional BatchNorm and dropout, flatten in either order,
    dense output. Height and width are drawn apart, and so are k_h and k_w and the pool's p_h and
    p_w (strides are one integer for both axes in the spec)."""
    channels = draw(st.integers(1, 2))
    height, width = draw(st.integers(4, 7)), draw(st.integers(4, 7))
    layers, shape = [], (channels, height, width)
    for _ in range(draw(st.integers(1, 2))):
        kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = draw(st.sampled_from(["valid", "same", (1, 0, 0, 1), (0, 2, 1, 0)]))
        conv = Conv2DSpec(draw(st.integers(1, 3)), kernel, strides=draw(st.integers(1, 2)),
                          dilation=draw(st.integers(1, 2)), padding=padding,
                          activation=draw(st.sampled_from(["tanh", "sigmoid", "identity", "leaky_relu"])))
        try:
            shape = conv.output_shape(shape)
        except SpecError:
            continue
        layers.append(conv)
        if draw(st.booleans()):
            layers.append(BatchNormSpec(epsilon=1e-3, activation="tanh"))
    if not layers:
        layers.append(Conv2DSpec(1, 1))
        shape = layers[0].output_shape(shape)
    if max(shape[1:]) >= 2 and draw(st.booleans()):
        # max pooling only after an identity: a saturated tanh or a padded patch makes near-ties
        # in a window, where a finite difference steps across the switch of the maximum
        window = (draw(st.integers(1, min(3, shape[1]))), draw(st.integers(1, min(3, shape[2]))))
        if window == (1, 1):
            window = (1, 2) if shape[2] >= 2 else (2, 1)
        strides = draw(st.integers(1, 2))
        kinds = [AvgPool2DSpec]
        if layers[-1].activation == "identity" and all(layer.padding == "valid" for layer in layers
                                                        if layer.kind == "conv2d"):
            kinds.append(MaxPool2DSpec)
        layers.append(draw(st.sampled_from(kinds))(window, strides=strides))
    if draw(st.booleans()):
        layers.append(DropoutSpec(0.5))
    order = draw(st.sampled_from(["channels_first", "channels_last"]))
    layers += [FlattenSpec(order), DenseSpec(3, "softmax")]
    return ModelSpec(inputs=(channels, height, width), layers=tuple(layers), seed=draw(st.integers(0, 9)))
