"""PReLU (issue 19's proof of one declaration per layer kind): Z = max(0, A) + α ⊙ min(0, A) with
a learned slope α shared, per channel or per element — every gradient of stacks holding it against
finite differences, its start value from the spec, the weight file round trip by name, and what
a port that keeps each framework's default start slope (torch 0.25 shared, Keras 0 per element)
changes on one small net, and the slope at an input of exactly 0 (``slope_at_zero``: α or 0)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file
from test_layer_stack import whole_stack_check

from scratch.errors import SpecError
from scratch.layer_specs import Conv2DSpec, DenseSpec, FlattenSpec, PReLUSpec
from scratch.layers.prelu import PReLU
from scratch.model import Network
from scratch.spec import ModelSpec
from scratch.weights import load_weights, save_tensors


def prelu_spec(slopes: str, maps: bool, alpha_init: float = 0.25, slope_at_zero: str = "alpha",
               **fields) -> ModelSpec:
    prelu = PReLUSpec(slopes, alpha_init, slope_at_zero)
    if maps:
        inputs, layers = (2, 5, 5), (Conv2DSpec(3, 3, activation="identity"), prelu,
                                     FlattenSpec(), DenseSpec(3, "softmax"))
    else:
        inputs, layers = 4, (DenseSpec(5, "identity"), prelu, DenseSpec(3, "softmax"))
    return ModelSpec(inputs=inputs, layers=layers, loss="cce", dtype="float64", **fields)


@pytest.mark.parametrize("maps", [False, True], ids=["features", "maps"])
@pytest.mark.parametrize("slopes", ["shared", "per_channel", "per_element"])
def test_every_gradient_with_prelu_matches_finite_differences(slopes, maps):
    whole_stack_check(prelu_spec(slopes, maps), samples=4)


def test_slope_zero_at_zero_matches_finite_differences_away_from_zero():
    """Away from A = 0 (standard-normal inputs never hit it) both conventions are the same derivative."""
    whole_stack_check(prelu_spec("per_channel", True, slope_at_zero="zero"), samples=4)


@pytest.mark.parametrize("slope_at_zero", ["alpha", "zero"])
def test_input_gradient_at_exact_zeros_is_the_spec_slope(slope_at_zero):
    """dX at X = 0 is α for "alpha" (torch, jnp.where) and 0 for "zero" (Keras); elsewhere 1 or α
    either way, and dα is the same under both (min(0, X) = 0 at X = 0). No finite differences: the
    kink has no derivative, only a convention."""
    alpha = np.array([0.25, -0.5, 2.0]).reshape(3, 1, 1)
    x = np.zeros((2, 3, 2, 2))
    x[0, :, 0, 0], x[1, :, 1, 1] = -1.5, 0.75
    dz = np.arange(1.0, 1.0 + x.size).reshape(x.shape)
    layer = PReLU(alpha, slope_at_zero)
    (dalpha,), dx = layer.differentiate(dz, x, layer.run(x)[1])
    at_zero = x == 0
    expected_zero = (alpha * dz) if slope_at_zero == "alpha" else np.zeros_like(dz)
    np.testing.assert_array_equal(dx[at_zero], np.broadcast_to(expected_zero, x.shape)[at_zero])
    np.testing.assert_array_equal(dx[x > 0], dz[x > 0])
    np.testing.assert_array_equal(dx[x < 0], np.broadcast_to(alpha * dz, x.shape)[x < 0])
    (other_dalpha,), _ = PReLU(alpha, "zero" if slope_at_zero == "alpha" else "alpha").differentiate(
        dz, x, layer.run(x)[1])
    np.testing.assert_array_equal(dalpha, other_dalpha)


def test_slope_at_zero_is_validated_and_defaults_to_alpha():
    with pytest.raises(SpecError, match="spec field 'slope_at_zero': unknown value 'one'"):
        PReLUSpec("shared", 0.25, "one")
    data = json.loads(prelu_spec("shared", False).to_json())
    del data["layers"][1]["slope_at_zero"]          # a spec written before the field
    assert ModelSpec.from_json(json.dumps(data)).layers[1].slope_at_zero == "alpha"


@pytest.mark.parametrize("slopes, expected", [("shared", (1, 1, 1)), ("per_channel", (3, 1, 1)),
                                              ("per_element", (3, 3, 3))])
def test_alpha_starts_at_the_spec_constant_in_its_declared_shape(slopes, expected):
    network = Network(prelu_spec(slopes, True, alpha_init=0.125))
    alpha = network.tensors[1]["alpha"]
    assert alpha.shape == expected
    assert np.all(alpha == 0.125)
    assert network.trainable_names[1] == ("alpha",) and network.spec.gradient_names[1] == ("dalpha2",)


def test_shared_slope_gradient_sums_every_use():
    """dα of one shared slope is Σ dZ ⊙ min(0, X) over every element: a per-channel slope's
    gradients summed over the channels."""
    rng = np.random.default_rng(0)
    x, dz = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal((4, 3, 2, 2))
    shared, per_channel = PReLU(np.full((1, 1, 1), 0.25)), PReLU(np.full((3, 1, 1), 0.25))
    (d_shared,), _ = shared.differentiate(dz, x, shared.run(x)[1])
    (d_channels,), _ = per_channel.differentiate(dz, x, per_channel.run(x)[1])
    assert d_shared.shape == (1, 1, 1) and d_channels.shape == (3, 1, 1)
    np.testing.assert_allclose(d_shared.sum(), d_channels.sum(), rtol=1e-12)
    np.testing.assert_allclose(d_shared.item(), np.sum(dz * np.minimum(x, 0)), rtol=1e-12)


def test_weight_file_keeps_alpha_by_name(tmp_path):
    spec = prelu_spec("per_channel", True)
    network = Network(spec)
    network.tensors[1]["alpha"][...] = np.array([0.1, -0.2, 0.3]).reshape(3, 1, 1)
    path = save_tensors(tmp_path / "prelu.safetensors", spec, network.tensors)
    loaded = load_weights(path)
    np.testing.assert_array_equal(loaded.tensors[1]["alpha"], network.tensors[1]["alpha"])
    assert "layers.1.weight" in load_file(path)


def test_the_start_slope_convention_moves_outputs_and_gradients():
    """The same net, torch's default start (α = 0.25, one shared slope) against Keras's (α = 0,
    one per element): the outputs and every gradient differ — a port that keeps each framework's
    default is not the same model. (The numbers are printed; the assertion is that they differ.)"""
    rng = np.random.default_rng(1)
    torch_like = Network(prelu_spec("shared", False, alpha_init=0.25))
    keras_like = Network(prelu_spec("per_element", False, alpha_init=0.0),
                         tensors=[torch_like.tensors[0], {"alpha": np.zeros((5,))}, torch_like.tensors[2]])
    x = rng.standard_normal((8, 4))
    y = torch_like.targets(rng.integers(0, 3, 8))
    out = {}
    for name, net in (("torch", torch_like), ("keras", keras_like)):
        forward = net.forward(x)
        out[name] = (forward.output, net.backward(forward, y).named())
    output_gap = np.max(np.abs(out["torch"][0] - out["keras"][0]))
    dw1_gap = np.max(np.abs(out["torch"][1]["dW1"] - out["keras"][1]["dW1"]))
    print(f"max|ΔA_L| = {output_gap:.3g}, max|ΔdW1| = {dw1_gap:.3g}")
    assert output_gap > 1e-3 and dw1_gap > 1e-3
