"""The engine as a layer stack (issue 12): convolution, pooling, flatten, BatchNorm, LayerNorm and
dropout in one spec — shapes checked layer by layer, every gradient of the whole stack against
finite differences (fixed stacks and Hypothesis-drawn ones), BatchNorm's running statistics,
blocked gradients, and the weight file with running statistics."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conv_strategies import conv_stacks
from hypothesis import HealthCheck, given, settings
from test_gradients_fd import assert_gradient, numerical_gradient

from scratch import catalog
from scratch import model as model_module
from scratch.batching import dropout_masks
from scratch.errors import SpecError, WeightFileError
from scratch.layer_specs import (
    AvgPool2DSpec,
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    GlobalAvgPool2DSpec,
    LayerNormSpec,
    MaxPool2DSpec,
)
from scratch.model import Network
from scratch.optimizers import make_optimizer
from scratch.spec import ModelSpec, OptimizerSpec
from scratch.weights import FORMAT_V1, load_weights, save_weights
from twins.scratch_backend import ScratchBackend

STACKS = {
    "conv-pool-dense": ((1, 6, 6), (Conv2DSpec(2, 3, padding="same", activation="tanh"), MaxPool2DSpec(2),
                                    FlattenSpec(), DenseSpec(4, "sigmoid"), DenseSpec(3, "softmax"))),
    "strided-dilated": ((2, 7, 6), (Conv2DSpec(2, (3, 2), strides=2, dilation=2, padding="same",
                                               activation="leaky_relu"), DropoutSpec(0.4),
                                    AvgPool2DSpec(2, strides=1), FlattenSpec("channels_last"),
                                    DenseSpec(3, "softmax"))),
    "batchnorm": ((2, 5, 5), (Conv2DSpec(3, 3, padding=(1, 0, 0, 1), activation="identity"),
                              BatchNormSpec(activation="tanh"), GlobalAvgPool2DSpec(),
                              DenseSpec(4, "identity"),
                              BatchNormSpec(0.99, 1e-3, "biased", "sigmoid"), DenseSpec(3, "softmax"))),
    # non-square input, kernels (k_h ≠ k_w) and pooling windows (p_h ≠ p_w) both ways; strides are
    # one integer for both axes in the spec (Conv2DSpec, _PoolSpec), so they cannot differ
    "non-square": ((1, 7, 10), (Conv2DSpec(2, (3, 2), activation="tanh"),
                                AvgPool2DSpec((2, 3), strides=1),
                                Conv2DSpec(2, (1, 2), activation="identity"),
                                MaxPool2DSpec((3, 2), strides=2), FlattenSpec("channels_last"),
                                DenseSpec(3, "softmax"))),
    "layernorm": ((1, 5, 5), (Conv2DSpec(2, 2, activation="sigmoid"), FlattenSpec(), DenseSpec(5, "identity"),
                              LayerNormSpec(activation="tanh"), DropoutSpec(0.3), DenseSpec(3, "softmax"))),
}


def stack_spec(name: str, **fields) -> ModelSpec:
    inputs, layers = STACKS[name]
    return ModelSpec(inputs=inputs, layers=layers, seed=5, **fields)


VANISHED = 1e-8      # a finite difference below this is a vanishing gradient (FD noise is ~1e-12)
ROUNDING = 1e-10     # … and the analytic one must then be rounding, far below any real gradient


def check_gradient(name: str, numerical: np.ndarray, analytic: np.ndarray) -> None:
    """``assert_gradient``, except where the gradient vanishes — a bias whose shift a BatchNorm
    takes out again (through any affine layers between), where the relative error of two
    roundings means nothing: then the analytic gradient must be rounding too."""
    if np.max(np.abs(numerical)) < VANISHED:
        assert np.max(np.abs(analytic)) <= ROUNDING, f"{name}: {analytic} where the loss does not move"
    else:
        assert_gradient(name, numerical, analytic)


def whole_stack_check(spec: ModelSpec, samples: int = 3, seed: int = 0) -> None:
    """Every parameter gradient (dW_l, db_l, dalpha_l, … by their trace names) and dA_l of the
    stack's backward against central differences of its loss (each tensor and each A_l perturbed
    in place; the masks stay fixed)."""
    rng = np.random.default_rng(seed)
    model = Network(spec)
    # move γ off 1 and every bias off 0 (an all-padding patch gives Z = b: on ReLU's kink at b = 0)
    for parameter in model.parameters:
        parameter += 0.1 * rng.standard_normal(parameter.shape)
    x = (rng.integers(0, spec.layers[0].vocabulary, (samples, *spec.input_shape)) if spec.token_inputs
         else rng.standard_normal((samples, *spec.input_shape)))
    y = model.targets(rng.integers(0, spec.layer_shapes[-1][0], samples))
    masks = dropout_masks(spec, 0, samples)
    forward = model.forward(x, masks)
    grads = model.backward(forward, y)

    def loss():
        return float(model.loss(model.forward(x, masks), y))

    named = grads.named()
    for names, tensors in zip(spec.gradient_names, model.tensors, strict=True):
        for name, tensor in zip(names, tensors.values(), strict=True):
            check_gradient(name, numerical_gradient(loss, tensor), named[name])
    activations = [a.copy() for a in forward.a]
    last = spec.n_layers - 1
    for layer in range(1, spec.n_layers):                  # dA_l: the loss of the layers above A_l

        def loss_above(layer=layer):
            a = activations[layer - 1]
            for index in range(layer, spec.n_layers):
                z, _ = model.layers[index].run(a)
                h = model.activations[index].forward(z)
                a = model.dropout.forward(h, None if masks is None or index == last else masks[index])
            return float(model.loss_fn.value(z, a, y)) + float(model.l2_penalty())

        check_gradient(f"dA{layer}", numerical_gradient(loss_above, activations[layer - 1]), grads.da[layer])


@pytest.mark.parametrize("name", sorted(STACKS))
def test_every_gradient_of_the_stack_matches_finite_differences(name):
    whole_stack_check(stack_spec(name, l2=0.05))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_stacks())
def test_random_conv_stacks_match_finite_differences(spec):
    whole_stack_check(spec, samples=2)


def test_lenet5_shapes_are_the_textbook_ones():
    spec = catalog.spec("lenet5")
    assert spec.layer_shapes == ((1, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (400,),
                                 (120,), (84,), (10,))
    assert spec.parameter_layers == (1, 3, 6, 7, 8) == spec.kernel_layers
    assert spec.parameter_shapes[:2] == (((6, 1, 5, 5), (6,)), ((16, 6, 5, 5), (16,)))
    with pytest.raises(SpecError, match="layer_sizes describes a stack of dense layers"):
        _ = spec.layer_sizes


@pytest.mark.parametrize(("inputs", "layers", "field", "message"), [
    ((1, 6, 6), (DenseSpec(3, "softmax"),), "layers[0]", "put a flatten or global_avg_pool2d layer"),
    (36, (Conv2DSpec(2, 3), FlattenSpec(), DenseSpec(3, "softmax")), "layers[0]",
     "give the inputs as (C, H, W)"),
    ((1, 4, 4), (Conv2DSpec(2, 5), FlattenSpec(), DenseSpec(3, "softmax")), "layers[0]", "does not fit"),
    ((1, 4, 4), (MaxPool2DSpec(5), FlattenSpec(), DenseSpec(3, "softmax")), "layers[0]",
     "larger than its input"),
    ((1, 4, 4), (FlattenSpec(), LayerNormSpec(), DenseSpec(3, "softmax")), None, None),
    ((1, 4, 4), (LayerNormSpec(), FlattenSpec(), DenseSpec(3, "softmax")), "layers[0]", "flat features"),
    ((1, 4, 4), (FlattenSpec(), DenseSpec(3, "tanh"), DropoutSpec(0.5)), "layers[2]", "must directly follow"),
    ((1, 2, 3, 4), (FlattenSpec(), DenseSpec(3, "softmax")), "inputs", "expected n, (T, n) or (C, H, W)"),
])
def test_a_stack_that_does_not_fit_names_the_layer(inputs, layers, field, message):
    if field is None:
        ModelSpec(inputs=inputs, layers=layers)
        return
    with pytest.raises(SpecError, match=rf"spec field '{re.escape(field)}'.*{re.escape(message)}"):
        ModelSpec(inputs=inputs, layers=layers)


@pytest.mark.parametrize(("layer", "field"), [
    (lambda: Conv2DSpec(0), "filters"),
    (lambda: Conv2DSpec(2, (3, 3, 3)), "kernel_size"),
    (lambda: Conv2DSpec(2, 3, padding="full"), "padding"),
    (lambda: Conv2DSpec(2, 3, padding=(1, 1, -1, 0)), "padding[2]"),
    (lambda: Conv2DSpec(2, 3, activation="softmax"), "activation"),
    (lambda: MaxPool2DSpec((2, 3)), "strides"),
    (lambda: FlattenSpec("nhwc"), "order"),
    (lambda: BatchNormSpec(decay=1.0), "decay"),
    (lambda: BatchNormSpec(running_variance="population"), "running_variance"),
    (lambda: LayerNormSpec(epsilon=0.0), "epsilon"),
])
def test_a_bad_layer_field_is_named(layer, field):
    with pytest.raises(SpecError, match=rf"spec field '{re.escape(field)}'"):
        layer()


def test_the_stack_round_trips_through_json():
    spec = stack_spec("batchnorm", dtype="float32")
    data = json.loads(spec.to_json())
    assert data["inputs"] == [2, 5, 5] and data["layers"][0]["padding"] == [1, 0, 0, 1]
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert ModelSpec.from_json(catalog.spec("lenet5").to_json()) == catalog.spec("lenet5")


def test_batchnorm_statistics_move_only_in_a_training_step():
    spec = stack_spec("batchnorm", optimizer=OptimizerSpec("sgd", learning_rate=0.1))
    model = Network(spec)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 2, 5, 5))
    y = model.targets(rng.integers(0, 3, 6))
    start = [tuple(v.copy() for v in pair) for pair in model.statistics]
    model.backward(model.forward(x), y)
    model.layer_pass(2, model.forward(x).a[0], np.ones((6, 3, 4, 4)))
    model.evaluate(x, rng.integers(0, 3, 6))
    for (mean, var), (mean0, var0) in zip(model.statistics, start, strict=True):
        np.testing.assert_array_equal(mean, mean0)
        np.testing.assert_array_equal(var, var0)
    z1 = model.forward(x).z[0]                             # what the first BatchNorm sees in the step
    model.train_step(x, y, make_optimizer(spec.optimizer))
    batch_mean = z1.mean(axis=(0, 2, 3))
    n = 6 * 4 * 4                                          # samples × the map after the conv
    np.testing.assert_allclose(model.statistics[0][0], 0.1 * batch_mean, rtol=1e-12)
    np.testing.assert_allclose(model.statistics[0][1], 0.9 + 0.1 * z1.var(axis=(0, 2, 3)) * n / (n - 1),
                               rtol=1e-12)


def test_inference_mode_uses_the_running_statistics():
    spec = stack_spec("batchnorm")
    model = Network(spec)
    rng = np.random.default_rng(2)
    model.statistics[0][0][:] = rng.standard_normal(3)
    model.statistics[0][1][:] = rng.uniform(0.5, 2.0, 3)
    x = rng.standard_normal((4, 2, 5, 5))
    z1 = model.forward(x, training=False).z[0]
    conv = model.layers[0].forward(x)
    mean, var = model.statistics[0]
    gamma, beta = model.weights[1], model.biases[1]
    expected = gamma[:, None, None] * (conv - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5) \
        + beta[:, None, None]
    np.testing.assert_allclose(model.forward(x, training=False).z[1], expected, rtol=1e-12)
    assert not np.allclose(model.forward(x).z[1], expected)         # training mode: batch statistics
    assert z1.shape == (4, 3, 4, 4)


def test_conv_gradients_in_blocks_equal_one_pass(monkeypatch):
    spec = stack_spec("conv-pool-dense", l2=0.01)
    model = Network(spec)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 1, 6, 6))
    y = model.targets(rng.integers(0, 3, 7))
    loss, whole = model.gradients(x, y)
    monkeypatch.setattr(model_module, "BLOCK_ROWS", 3)
    blocked_loss, blocked = model.gradients(x, y)
    assert abs(blocked_loss - loss) <= 1e-14 * abs(loss)
    for got, want in zip(blocked, whole, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert Network(stack_spec("batchnorm")).block_rows is None        # BatchNorm couples the rows


def test_dropout_masks_take_the_shape_of_a_conv_layer():
    spec = stack_spec("strided-dilated")
    masks = dropout_masks(spec, 0, 5)
    assert masks[0].shape == (5, *spec.layer_shapes[1]) and masks[1:] == [None, None]


def test_weight_file_carries_kernels_and_running_statistics(tmp_path):
    spec = stack_spec("batchnorm", dtype="float32")
    model = Network(spec)
    model.statistics[1][1][:] = 2.5
    path = save_weights(tmp_path / "bn.safetensors", spec, model.weights, model.biases, model.statistics)
    loaded = load_weights(path)
    assert loaded.spec == spec and [w.shape for w in loaded.weights] == [w.shape for w in model.weights]
    np.testing.assert_array_equal(loaded.statistics[1][1], np.full(4, 2.5, np.float32))
    from safetensors.numpy import load_file, save_file
    tensors = load_file(path)
    assert tensors["layers.0.weight"].shape == (3, 2, 3, 3)          # OIHW
    assert {"layers.1.running_mean", "layers.1.running_var", "layers.4.running_var"} <= set(tensors)
    metadata = {"format": "backprop-parity/2", "spec": spec.to_json(),
                "layout": json.dumps({"conv2d": "OIHW", "dense": "out_in", "batch_norm": "per_channel"})}
    missing = {name: t for name, t in tensors.items() if name != "layers.4.running_var"}
    save_file(missing, tmp_path / "missing.safetensors", metadata=metadata)
    with pytest.raises(WeightFileError, match="missing tensor.*layers.4.running_var"):
        load_weights(tmp_path / "missing.safetensors")
    hwio = dict(tensors, **{"layers.0.weight": tensors["layers.0.weight"].transpose(2, 3, 1, 0).copy()})
    save_file(hwio, tmp_path / "hwio.safetensors", metadata=metadata)
    with pytest.raises(WeightFileError, match=r"layers.0.weight has shape \(3, 3, 2, 3\)"):
        load_weights(tmp_path / "hwio.safetensors")
    save_file(tensors, tmp_path / "v1.safetensors", metadata={"format": FORMAT_V1, "spec": spec.to_json()})
    with pytest.raises(WeightFileError, match="holds dense layers only"):
        load_weights(tmp_path / "v1.safetensors")
    with pytest.raises(WeightFileError, match="running statistics for 0"):
        save_weights(tmp_path / "no-stats.safetensors", spec, model.weights, model.biases)


@pytest.mark.parametrize(("layers", "cancelled"), [
    ((Conv2DSpec(2, 3, activation="identity"), BatchNormSpec(), FlattenSpec(), DenseSpec(3, "softmax")),
     (1,)),
    ((Conv2DSpec(2, 3, activation="tanh"), BatchNormSpec(), FlattenSpec(), DenseSpec(3, "softmax")), ()),
    ((Conv2DSpec(2, 3, activation="identity"), DropoutSpec(0.5), BatchNormSpec(), FlattenSpec(),
      DenseSpec(3, "softmax")), ()),
    ((Conv2DSpec(2, 3), FlattenSpec(), DenseSpec(4, "identity"), BatchNormSpec(), DenseSpec(3, "softmax")),
     (3,)),
    ((Conv2DSpec(2, 3), BatchNormSpec(), BatchNormSpec(), FlattenSpec(), DenseSpec(3, "softmax")), (2,)),
])
def test_cancelled_biases_are_those_a_batch_norm_subtracts_again(layers, cancelled):
    spec = ModelSpec(inputs=(1, 6, 6), layers=layers)
    assert spec.cancelled_biases == cancelled
    model = Network(spec)
    x = np.random.default_rng(0).standard_normal((4, 1, 6, 6))
    targets = model.targets(np.arange(4) % 3)
    masks = dropout_masks(spec, 0, 4)
    trace = ScratchBackend(spec, model.weights, model.biases).trace(x, targets, masks)
    for layer in spec.parameter_layers:        # the claim itself: b_l moves no training-mode loss
        biases = [b.copy() for b in model.biases]
        biases[spec.parameter_layers.index(layer)][0] += 0.75     # one element: softmax ignores a shift
        moved = ScratchBackend(spec, model.weights, biases).trace(x, targets, masks)
        assert (abs(moved["loss"] - trace["loss"]) <= 1e-12) == (layer in cancelled)
        if layer in cancelled:                 # db_l, or a BatchNorm's dbeta_l before another one
            bias = spec.gradient_names[spec.parameter_layers.index(layer)][1]
            assert np.max(np.abs(trace[bias])) <= 1e-15


def test_a_cancelled_bias_is_judged_at_its_kernels_scale_and_still_can_fail():
    """The free-running check measures a cancelled bias (pure rounding residue) against max|W_l|:
    residue-sized differences pass, a difference of 1e-3·max|W_l| still fails."""
    from judge.trajectory import _parameter_errors

    spec = ModelSpec(inputs=(1, 6, 6), layers=(Conv2DSpec(2, 3, activation="identity"), BatchNormSpec(),
                                               FlattenSpec(), DenseSpec(3, "softmax")))
    model = Network(spec)
    model.biases[0][:] = [1e-17, -1e-17]               # each backend's residue differs: 4× apart
    residue = [b.copy() for b in model.biases]
    residue[0] *= 4.0
    errors = _parameter_errors(ScratchBackend(spec, model.weights, residue),
                               ScratchBackend(spec, model.weights, model.biases))
    assert errors["b1"] <= 1e-13                        # against max|b1| alone it would be 3.0
    wrong = [b.copy() for b in model.biases]
    wrong[0][0] += 1e-3 * np.max(np.abs(model.weights[0]))
    errors = _parameter_errors(ScratchBackend(spec, model.weights, wrong),
                               ScratchBackend(spec, model.weights, model.biases))
    assert errors["b1"] == pytest.approx(1e-3, rel=1e-9)
    twice = ModelSpec(inputs=(1, 6, 6), layers=(Conv2DSpec(2, 3), BatchNormSpec(), BatchNormSpec(),
                                                FlattenSpec(), DenseSpec(3, "softmax")))
    model = Network(twice)                              # β_2 before another BatchNorm: against max|γ_2|
    model.weights[1][:] = [0.5, -2.0]
    wrong = [b.copy() for b in model.biases]
    wrong[1][0] += 1e-3
    errors = _parameter_errors(ScratchBackend(twice, model.weights, wrong),
                               ScratchBackend(twice, model.weights, model.biases))
    assert errors["beta2"] == pytest.approx(1e-3 / 2.0, rel=1e-9) and errors["gamma2"] == 0.0
