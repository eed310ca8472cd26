""":mod:`ports.align`: the flatten permutation, B's reading rewritten in A's form (flatten order
with the dense kernel's columns, padding spelled as the same amounts), and the refusal of two
stacks that are different models rather than two forms of one. Engine only."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ports.align import align, flatten_permutation
from ports.reading import PortError, Reading
from scratch.layer_specs import (
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    LayerNormSpec,
    MaxPool2DSpec,
)
from scratch.model import Network
from scratch.spec import ModelSpec

SHAPES = [(1, 1, 1), (3, 4, 4), (2, 3, 5), (5, 2, 1), (4, 1, 6)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_the_channels_last_permutation_reorders_a_channels_first_flatten(shape, rng):
    x = rng.normal(size=shape)
    permutation = flatten_permutation(shape, "channels_last")
    np.testing.assert_array_equal(x.transpose(1, 2, 0).reshape(-1), x.reshape(-1)[permutation])
    assert sorted(permutation) == list(range(x.size))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_the_channels_first_permutation_is_the_inverse(shape, rng):
    x = rng.normal(size=shape)
    permutation = flatten_permutation(shape, "channels_first")
    np.testing.assert_array_equal(x.reshape(-1), x.transpose(1, 2, 0).reshape(-1)[permutation])
    np.testing.assert_array_equal(permutation[flatten_permutation(shape, "channels_last")], np.arange(x.size))


@pytest.mark.parametrize("shape", SHAPES[1:], ids=lambda shape: "x".join(map(str, shape)))
def test_a_dense_layer_after_either_flatten_computes_the_same_with_its_kernel_permuted(shape, rng):
    """W_to = W_other[:, P]: W_to · flatten_to(x) = W_other · flatten_other(x), both ways."""
    x = rng.normal(size=(7, *shape))
    flat = {"channels_first": x.reshape(len(x), -1),
            "channels_last": x.transpose(0, 2, 3, 1).reshape(len(x), -1)}
    w = rng.normal(size=(3, int(np.prod(shape))))
    for to, other in (("channels_last", "channels_first"), ("channels_first", "channels_last")):
        w_to = w[:, flatten_permutation(shape, to)]
        np.testing.assert_allclose(flat[to] @ w_to.T, flat[other] @ w.T, rtol=1e-13, atol=1e-13)


def cnn(order: str, padding="same", stride: int = 1, channels: int = 2) -> ModelSpec:
    return ModelSpec(inputs=(channels, 8, 8), layers=(
        Conv2DSpec(3, 3, strides=stride, padding=padding, activation="identity"),
        BatchNormSpec(activation="relu"), MaxPool2DSpec(2), FlattenSpec(order), DropoutSpec(0.5),
        DenseSpec(6, "relu"), DenseSpec(4, "softmax")))


def mlp(layers=None, inputs: int = 5) -> ModelSpec:
    layers = layers or (DenseSpec(6, "relu"), LayerNormSpec(), DenseSpec(6, "relu"), DenseSpec(3, "softmax"))
    return ModelSpec(inputs=inputs, layers=layers)


def reading(spec: ModelSpec, framework: str = "torch", tensors=None) -> Reading:
    return Reading(framework, framework, spec, tensors or Network(spec).tensors, given=frozenset({"weights"}))


@pytest.mark.parametrize("a_order,b_order", [("channels_last", "channels_first"),
                                             ("channels_first", "channels_last")])
def test_align_puts_the_flatten_and_the_kernel_after_it_in_a_form(a_order, b_order, rng):
    """B's dense kernel after the flatten (past a dropout) gets its columns permuted, every other
    tensor stays, and the engine computes the same outputs from A's form as from B's."""
    a_spec, b_spec = cnn(a_order), cnn(b_order, padding=(1, 1, 1, 1))
    b = reading(b_spec)
    aligned = align(reading(a_spec, "keras"), b)
    permutation = flatten_permutation((3, 4, 4), a_order)
    assert list(aligned.permutations) == [5]                      # the dense layer, numbered past the dropout
    np.testing.assert_array_equal(aligned.permutations[5], permutation)
    assert aligned.reading.spec.layers[3] == FlattenSpec(a_order)
    assert aligned.reading.spec.layers[0].padding == "same"
    np.testing.assert_array_equal(aligned.reading.tensors[2]["W"], b.tensors[2]["W"][:, permutation])
    for position in (0, 1, 3):
        for name, value in b.tensors[position].items():
            np.testing.assert_array_equal(aligned.reading.tensors[position][name], value)
    x = rng.normal(size=(4, 2, 8, 8))
    in_a_form = Network(aligned.reading.spec, tensors=aligned.reading.tensors).forward(x).output
    np.testing.assert_allclose(in_a_form, Network(b_spec, tensors=b.tensors).forward(x).output, rtol=1e-12)
    gradients = [{name: rng.normal(size=value.shape) for name, value in held.items()} for held in b.tensors]
    mapped = aligned.tensors(gradients, b_spec)
    np.testing.assert_array_equal(mapped[2]["W"], gradients[2]["W"][:, permutation])
    np.testing.assert_array_equal(mapped[2]["b"], gradients[2]["b"])
    np.testing.assert_array_equal(mapped[3]["W"], gradients[3]["W"])


def test_align_keeps_padding_of_other_amounts_as_it_is():
    """Stride 2 on 8×8: "same" pads (0, 1, 0, 1), torch's padding=1 pads (1, 1, 1, 1); the output
    shapes agree, the amounts do not: a convention to diagnose, not a form to rewrite."""
    a, b = reading(cnn("channels_last", stride=2), "keras"), reading(cnn("channels_last", (1, 1, 1, 1), 2))
    assert align(a, b).reading.spec.layers[0].padding == (1, 1, 1, 1)
    same = reading(cnn("channels_last", (0, 1, 0, 1), 2))
    assert align(a, same).reading.spec.layers[0].padding == "same"


def test_align_of_one_form_changes_nothing():
    a = reading(mlp(), "keras")
    aligned = align(a, replace(a, framework="torch"))
    assert aligned.permutations == {} and aligned.reading.spec == a.spec
    assert aligned.reading.framework == "torch"


@pytest.mark.parametrize("b_spec,expected", [
    pytest.param(mlp((DenseSpec(6, "relu"), BatchNormSpec(), DenseSpec(6, "relu"), DenseSpec(3, "softmax"))),
                 "layer 2: layer_norm", id="a-layer-kind-differs"),
    pytest.param(mlp((DenseSpec(6, "relu"), LayerNormSpec(), DenseSpec(3, "softmax"))),
                 "A has 4 layers", id="a-layer-count-differs"),
    pytest.param(mlp(inputs=7), "inputs: (5,) in A, (7,) in B", id="inputs-differ"),
    pytest.param(mlp((DenseSpec(6, "relu"), LayerNormSpec(), DenseSpec(8, "relu"), DenseSpec(3, "softmax"))),
                 "layer 3: output shape (6,) in A, (8,) in B", id="a-layer-size-differs"),
])
def test_align_refuses_two_different_models_and_names_the_difference(b_spec, expected):
    with pytest.raises(PortError, match="different models") as raised:
        align(reading(mlp(), "keras"), reading(b_spec))
    assert expected in str(raised.value)


def test_align_refuses_a_cnn_whose_input_differs():
    with pytest.raises(PortError, match=r"inputs: \(2, 8, 8\) in A, \(3, 8, 8\) in B"):
        align(reading(cnn("channels_last"), "keras"), reading(cnn("channels_first", channels=3)))


def test_align_refuses_padding_that_changes_the_output_shape():
    with pytest.raises(PortError, match=r"layer 1: output shape \(3, 8, 8\) in A, \(3, 6, 6\) in B"):
        align(reading(cnn("channels_last"), "keras"), reading(cnn("channels_last", "valid")))
