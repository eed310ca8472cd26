"""Convolutional stacks in every twin against the NumPy engine (issue 12).

Each case is a small stack of the spec's layer list run through the real framework layers
(torch.nn, Keras 3, JAX/lax): the forward pass, every gradient including each layer's input
gradient, a few training steps (per step and free-running, ``judge.training_parity``), the
running statistics after them, and inference mode. Sizes are tiny (1–2 channels, 8×8 images, 4
samples) so the default suite stays fast; the MNIST LeNet runs are marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest

from judge.parity import ParityFailure, check_parity, compare_curves, relative_error
from judge.tolerances import tolerance
from judge.training_parity import compare_training
from scratch.batching import dropout_masks, training_plan
from scratch.errors import BackendError
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
    PReLUSpec,
)
from scratch.model import Network
from scratch.spec import ModelSpec, OptimizerSpec
from twins.backends import make_backend

TWINS = ("torch", "keras", "jax")
KERAS_BN = dict(decay=0.99, epsilon=1e-3, running_variance="biased")     # Keras's defaults
TORCH_BN = dict(decay=0.9, epsilon=1e-5, running_variance="unbiased")    # torch's defaults

# name → (inputs, layers); every case ends in a dense softmax over 3 classes
CASES = {
    "lenet-like": ((1, 8, 8), (
        Conv2DSpec(3, 3, padding="same"), MaxPool2DSpec(2),
        Conv2DSpec(4, 3, activation="tanh"), FlattenSpec("channels_first"),
        DenseSpec(8), DropoutSpec(0.25), DenseSpec(3, "softmax"))),
    "same-stride-2": ((2, 7, 7), (
        Conv2DSpec(3, (3, 2), strides=2, padding="same", activation="leaky_relu"),
        AvgPool2DSpec(2, strides=1), FlattenSpec("channels_last"), DenseSpec(3, "softmax"))),
    "explicit-padding": ((1, 6, 6), (
        Conv2DSpec(2, 3, padding=(1, 0, 2, 1), activation="sigmoid"), DropoutSpec(0.5),
        GlobalAvgPool2DSpec(), DenseSpec(3, "softmax"))),
    "batchnorm-keras": ((2, 6, 6), (
        Conv2DSpec(3, 3, padding="same", activation="identity"), BatchNormSpec(**KERAS_BN, activation="relu"),
        MaxPool2DSpec(2), FlattenSpec("channels_last"), DenseSpec(6, "identity"),
        BatchNormSpec(**KERAS_BN, activation="relu"), DenseSpec(3, "softmax"))),
    "batchnorm-torch": ((2, 6, 6), (
        Conv2DSpec(3, 3, padding="same", activation="identity"), BatchNormSpec(**TORCH_BN, activation="relu"),
        MaxPool2DSpec(2), FlattenSpec("channels_first"), DenseSpec(6, "identity"),
        BatchNormSpec(**TORCH_BN, activation="relu"), DenseSpec(3, "softmax"))),
    # non-square input, kernels and pooling windows both ways, through each twin's layer builders
    # (strides are one integer for both axes in the spec)
    "non-square": ((1, 7, 10), (
        Conv2DSpec(2, (3, 2), activation="tanh"), AvgPool2DSpec((2, 3), strides=1),
        Conv2DSpec(2, (1, 2), activation="identity"), MaxPool2DSpec((3, 2), strides=2),
        FlattenSpec("channels_last"), DenseSpec(3, "softmax"))),
    # dilation at stride 1 (Keras refuses it at stride 2: test_backend_limits.py): "same" with an
    # odd split (a 3×2 kernel at d = 3 spans 7×4: rows (3, 3), columns (1, 2)), explicit, valid
    "dilated": ((2, 8, 7), (
        Conv2DSpec(3, (3, 2), dilation=3, padding="same", activation="tanh"),
        Conv2DSpec(2, 2, dilation=3, padding=(1, 0, 2, 1), activation="leaky_relu"),
        Conv2DSpec(2, (2, 3), dilation=2, activation="relu"), FlattenSpec("channels_last"),
        DenseSpec(3, "softmax"))),
    "layernorm": ((1, 6, 6), (
        Conv2DSpec(2, 3, activation="relu"), FlattenSpec("channels_first"), DenseSpec(6, "identity"),
        LayerNormSpec(epsilon=1e-3, activation="tanh"), DenseSpec(3, "softmax"))),
    # PReLU's α (not a (W, b) pair): one per channel of a map and one shared on flat features
    # (torch's nn.PReLU(C) and nn.PReLU()), Keras's per-element default on both; the slope at
    # z = 0 is α (torch) or 0 (Keras), so each case runs in the twins that express its convention
    "prelu": ((2, 6, 6), (
        Conv2DSpec(3, 3, activation="identity"), PReLUSpec("per_channel"), MaxPool2DSpec(2),
        FlattenSpec("channels_last"), DenseSpec(5, "identity"), PReLUSpec("shared", alpha_init=0.1),
        DenseSpec(3, "softmax"))),
    "prelu-zero": ((2, 6, 6), (
        Conv2DSpec(3, 3, activation="identity"), PReLUSpec("per_channel", slope_at_zero="zero"),
        MaxPool2DSpec(2), FlattenSpec("channels_last"), DenseSpec(5, "identity"),
        PReLUSpec("shared", alpha_init=0.1, slope_at_zero="zero"), DenseSpec(3, "softmax"))),
    "prelu-per-element": ((2, 5, 5), (
        Conv2DSpec(2, 3, padding="same", activation="identity"),
        PReLUSpec("per_element", alpha_init=0.2, slope_at_zero="zero"), FlattenSpec("channels_first"),
        DenseSpec(4, "identity"), PReLUSpec("per_element", alpha_init=0.0, slope_at_zero="zero"),
        DenseSpec(3, "softmax"))),
}
# (twin, case) pairs a twin refuses with a BackendError, and why
REFUSED = {
    ("torch", "batchnorm-keras"): "torch stores the unbiased running variance",
    ("keras", "batchnorm-torch"): "Keras stores the biased running variance",
    ("torch", "prelu-per-element"): "nn.PReLU has one slope per channel at most",
    ("torch", "prelu-zero"): "nn.PReLU's slope at z = 0 is α",
    ("keras", "prelu"): "keras.layers.PReLU's slope at z = 0 is 0",
}
# what each refusal's message names
REFUSAL_MATCH = {"batchnorm-keras": "running variance", "batchnorm-torch": "running variance",
                 "prelu-per-element": "per_element' on", "prelu-zero": "slope_at_zero='zero'",
                 "prelu": "slope_at_zero='alpha'"}
SAMPLES = 4
# Training: mini-batches of 4. A BatchNorm over a dense layer normalizes `batch` values per
# unit; with 2 of them every x̂ is ±1 and a unit whose two values nearly agree (σ² ~ ε) scales
# its input gradient by 1/√(σ² + ε) ~ 170, which lifts a float64 rounding difference of 1e-14 in
# dZ above the 1e-13 bound (measured on the torch twin; per layer, localization agreed to 1e-15).
TRAIN_SAMPLES, TRAIN_BATCH = 8, 4
# λ/2 and the leaky ReLU slope must be exact in float32 for Keras in float64 (it refuses others:
# see twins.keras_backend._regularizer and twins.keras_layers.activation).
L2 = 2.0 ** -6
LEAKY_RELU_SLOPE = 2.0 ** -5


def make_spec(case: str, dtype: str, optimizer: OptimizerSpec | None = None, epochs: int = 1,
              batch_size: int | None = None, l2: float = 0.0) -> ModelSpec:
    inputs, layers = CASES[case]
    return ModelSpec(inputs=inputs, layers=layers, dtype=dtype, init="he_normal", seed=3, l2=l2,
                     leaky_relu_slope=LEAKY_RELU_SLOPE,
                     optimizer=optimizer or OptimizerSpec("sgd", learning_rate=0.1), epochs=epochs,
                     batch_size=batch_size)


def make_data(spec: ModelSpec, samples: int = SAMPLES):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((samples, *spec.input_shape)).astype(spec.dtype)
    model = Network(spec)
    return model, x, model.targets(rng.integers(0, 3, samples))


def build(twin: str, spec: ModelSpec, model: Network):
    if (twin, _case_of(spec)) in REFUSED:
        with pytest.raises(BackendError):
            make_backend(twin, spec, tensors=model.tensors)
        pytest.skip(f"{twin} refuses this case (asserted): {REFUSED[(twin, _case_of(spec))]}")
    return make_backend(twin, spec, tensors=model.tensors)


def _case_of(spec: ModelSpec) -> str:
    return next(name for name, (inputs, layers) in CASES.items() if layers == spec.layers)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("twin", TWINS)
def test_forward_and_every_gradient(twin, case, dtype):
    spec = make_spec(case, dtype, l2=L2)
    model, x, targets = make_data(spec)
    backend = build(twin, spec, model)
    masks = dropout_masks(spec, 0, SAMPLES)
    reference = make_backend("scratch", spec, tensors=model.tensors)
    results = check_parity(backend, reference, x, targets, masks)
    names = {c.name for c in results}
    for layer in range(1, spec.n_layers + 1):            # every layer's output and input gradient
        assert {f"Z{layer}", f"A{layer}", f"dZ{layer}"} <= names
        if layer > 1:
            assert f"dA{layer - 1}" in names
    # every trainable tensor's gradient (dW, db; dgamma, dbeta; dalpha; …)
    assert {name for names in spec.gradient_names for name in names} <= names


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("twin", TWINS)
def test_training_steps(twin, case):
    spec = make_spec(case, "float64", optimizer=OptimizerSpec.framework_default("adam", "torch"),
                     epochs=2, batch_size=TRAIN_BATCH)
    if twin == "keras":
        spec = spec.replace(optimizer=OptimizerSpec.framework_default("adam", "keras"))
    model, x, targets = make_data(spec, TRAIN_SAMPLES)
    build(twin, spec, model)
    plan = list(training_plan(spec, TRAIN_SAMPLES))
    parity = compare_training(twin, "scratch", spec, model.tensors, x, targets, plan,
                              make_backend=make_backend)
    assert parity.ok, parity.describe_failures()


BATCHNORM_CASES = sorted(name for name, (_, layers) in CASES.items()
                         if any(layer.kind == "batch_norm" for layer in layers))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", BATCHNORM_CASES)
@pytest.mark.parametrize("twin", TWINS)
def test_running_statistics_and_inference_after_training(twin, case, dtype):
    """Free-running from the same start, with each framework's own BatchNorm update: the running
    statistics after the last step, and inference with them. Plain SGD: under Adam a bias that
    feeds a BatchNorm has a true gradient of exactly 0, each framework's rounding residue (~1e-18)
    is normalized by √v̂ into a step of ~1e-13, and the running mean carries it (measured on the
    Keras twin: 1.8e-13 after 4 steps; under SGD 1e-15). The Adam run above is judged by the
    trajectory check, which names that amplification."""
    spec = make_spec(case, dtype, epochs=2, batch_size=TRAIN_BATCH)
    model, x, targets = make_data(spec, TRAIN_SAMPLES)
    actual = build(twin, spec, model)
    desired = make_backend("scratch", spec, tensors=model.tensors)
    plan = list(training_plan(spec, TRAIN_SAMPLES))
    actual.fit(x, targets, plan)
    desired.fit(x, targets, plan)
    bound = tolerance(dtype, "parameters")
    for got, want in zip(actual.statistics(), desired.statistics(), strict=True):
        for g, w in zip(got, want, strict=True):
            assert relative_error(g, w) <= bound
    if spec.statistics_layers:                           # the statistics did move
        assert not np.allclose(desired.statistics()[0][0], 0.0)
    assert relative_error(actual.inference(x), desired.inference(x)) <= tolerance(dtype, "forward")


@pytest.mark.parametrize("twin", TWINS)
def test_trace_leaves_running_statistics_alone(twin):
    case = "batchnorm-keras" if twin == "keras" else "batchnorm-torch"
    spec = make_spec(case, "float64")
    model, x, targets = make_data(spec)
    backend = build(twin, spec, model)
    before = backend.statistics()
    backend.trace(x, targets)
    backend.layer_trace(2, backend.trace(x, targets)["A1"], np.ones((SAMPLES, 3, 6, 6)))
    for got, want in zip(backend.statistics(), before, strict=True):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    backend.train_step(x, targets)
    assert not np.array_equal(backend.statistics()[0][0], before[0][0])


@pytest.mark.parametrize(("twin", "case"), sorted(REFUSED))
def test_a_twin_refuses_what_it_cannot_express(twin, case):
    spec = make_spec(case, "float64")
    model, _, _ = make_data(spec)
    with pytest.raises(BackendError, match=REFUSAL_MATCH[case]):
        make_backend(twin, spec, tensors=model.tensors)


def _prelu_mlp(slopes: str, alpha_init: float, slope_at_zero: str = "alpha") -> ModelSpec:
    layers = (DenseSpec(8, "identity"), PReLUSpec(slopes, alpha_init, slope_at_zero), DenseSpec(3, "softmax"))
    return ModelSpec(inputs=(6,), layers=layers, dtype="float64", init="he_normal", seed=5, epochs=1,
                     optimizer=OptimizerSpec("sgd", learning_rate=0.1), batch_size=4)


def test_prelu_default_conventions_make_different_models():
    """torch's ``nn.PReLU()`` starts at α = 0.25, one shared slope; Keras's ``PReLU()`` at α = 0,
    one per element. A port that keeps each framework's default (torch twin on the first, Keras
    twin on the second, every other tensor the same) is another model from step 0, and training
    moves them apart; the same port with the spec's α (Keras ``shared_axes=[1]``, ``Constant(0.25)``)
    agrees to rounding (the standard-normal inputs never hit z = 0, where Keras's slope is 0: its
    spec says ``slope_at_zero="zero"``). The numbers are printed (``-s``)."""
    torch_spec, keras_spec = _prelu_mlp("shared", 0.25), _prelu_mlp("per_element", 0.0, "zero")
    model, x, targets = make_data(torch_spec, 8)
    keras_tensors = [model.tensors[0], Network(keras_spec).tensors[1], model.tensors[2]]
    assert not keras_tensors[1]["alpha"].any() and keras_tensors[1]["alpha"].shape == (8,)
    torch_twin = make_backend("torch", torch_spec, tensors=model.tensors)
    ported = {"defaults": make_backend("keras", keras_spec, tensors=keras_tensors),
              "spec's α": make_backend("keras", _prelu_mlp("shared", 0.25, "zero"), tensors=model.tensors)}
    gaps = {name: [float(np.max(np.abs(twin.inference(x) - torch_twin.inference(x))))]
            for name, twin in ported.items()}
    plan = list(training_plan(torch_spec, 8))
    losses = {"torch": torch_twin.fit(x, targets, plan)}
    for name, twin in ported.items():
        losses[name] = twin.fit(x, targets, plan)
        gaps[name].append(float(np.max(np.abs(twin.inference(x) - torch_twin.inference(x)))))
        gaps[name].append(relative_error(twin.tensors()[0]["W"], torch_twin.tensors()[0]["W"]))
    for name, (before, after, w1) in gaps.items():
        print(f"keras ({name}) vs torch (α₀ = 0.25 shared): max|ΔA_L| {before:.3g} at step 0, "
              f"{after:.3g} after {len(plan)} SGD steps; W1 relative error {w1:.3g}; "
              f"losses {np.round(losses[name], 6).tolist()} vs {np.round(losses['torch'], 6).tolist()}")
    assert max(gaps["spec's α"]) < 1e-12
    assert min(gaps["defaults"]) > 1e-3


def _exact_zeros(slope_at_zero: str):
    """A PReLU whose input is exactly 0 on half the rows: dense(8) with zero biases on zero input
    rows (XOR's (0, 0) sample; a blank background under a zero-bias conv at init)."""
    spec = _prelu_mlp("per_channel", 0.25, slope_at_zero)
    model, x, targets = make_data(spec, 8)
    model.tensors[0]["b"][...] = 0.0
    x[::2] = 0.0
    return spec, model, x, targets


@pytest.mark.parametrize(("twin", "slope_at_zero"),
                         [("torch", "alpha"), ("keras", "zero"), ("jax", "alpha"), ("jax", "zero")])
def test_prelu_at_exact_zeros_matches_the_engine_in_each_convention_a_twin_expresses(twin, slope_at_zero):
    spec, model, x, targets = _exact_zeros(slope_at_zero)
    reference = make_backend("scratch", spec, tensors=model.tensors)
    assert np.any(reference.trace(x, targets)["Z1"] == 0), "the PReLU sees exact zeros"
    results = check_parity(make_backend(twin, spec, tensors=model.tensors), reference, x, targets)
    assert {"dZ1", "db1", "dalpha2"} <= {c.name for c in results}


def test_without_the_field_keras_and_the_engine_differ_at_exact_zeros():
    """The reason for ``slope_at_zero``: the engine (and torch) at slope α against Keras's real
    ``PReLU`` (slope 0) on inputs with exact zeros is a large gap in every gradient below the PReLU,
    which ``check`` would call a FAIL of two correct implementations. Printed with ``-s``."""
    alpha_spec, model, x, targets = _exact_zeros("alpha")
    zero_spec = _prelu_mlp("per_channel", 0.25, "zero")
    engine = make_backend("scratch", alpha_spec, tensors=model.tensors)
    keras = make_backend("keras", zero_spec, tensors=model.tensors)
    engine_trace, keras_trace = engine.trace(x, targets), keras.trace(x, targets)
    gaps = {name: relative_error(keras_trace[name], engine_trace[name])
            for name in ("dZ1", "db1", "dW1", "dalpha2")}
    print("keras (slope 0 at 0) vs engine (slope α at 0), relative errors:",
          {name: f"{gap:.3g}" for name, gap in gaps.items()})
    assert min(gaps["dZ1"], gaps["db1"]) > 1e-2
    assert gaps["dalpha2"] < 1e-12, "dα is the same under both conventions"
    with pytest.raises(ParityFailure, match="dZ1|db1"):
        check_parity(keras, engine, x, targets)


@pytest.mark.parametrize("dtype", ["float64", pytest.param("float32", marks=pytest.mark.slow)])
@pytest.mark.parametrize("case", ["lenet-like", pytest.param("batchnorm-keras", marks=pytest.mark.slow),
                                  pytest.param("batchnorm-torch", marks=pytest.mark.slow)])
@pytest.mark.parametrize("twin", ["keras", "jax"])
def test_fused_fit_trains_as_train_step_does(twin, case, dtype):
    """``fit(fused=True)`` (one ``tf.function`` graph / one ``jax.jit`` per step, what the MNIST
    runs use) against ``fit``'s eager-per-step ``train_step`` from the same start: the loss
    curve, the parameters and the running statistics, after Adam with dropout, after SGD with
    BatchNorm (under Adam, a bias feeding a BatchNorm is pure rounding residue: see
    :func:`test_running_statistics_and_inference_after_training`). The control: the fused run on
    a plan with other dropout masks must differ (it reads the plan)."""
    if (twin, case) in REFUSED:
        pytest.skip(f"{twin} refuses this case (asserted above): {REFUSED[(twin, case)]}")
    optimizer = None if case in BATCHNORM_CASES else OptimizerSpec.framework_default(
        "adam", "keras" if twin == "keras" else "torch")
    spec = make_spec(case, dtype, optimizer=optimizer, epochs=2, batch_size=TRAIN_BATCH)
    model, x, targets = make_data(spec, TRAIN_SAMPLES)
    plan = list(training_plan(spec, TRAIN_SAMPLES))
    stepped, fused = (make_backend(twin, spec, tensors=model.tensors) for _ in range(2))
    curve = stepped.fit(x, targets, plan)
    assert compare_curves(fused.fit(x, targets, plan, fused=True), curve, dtype).ok
    bound = tolerance(dtype, "parameters")
    residue = spec.cancelled_biases                                     # true gradient exactly 0
    (fused_w, fused_b), (stepped_w, stepped_b) = fused.parameters(), stepped.parameters()
    pairs = zip(spec.parameter_layers, fused_w, fused_b, stepped_w, stepped_b, strict=True)
    for layer, fw, fb, sw, sb in pairs:
        assert relative_error(fw, sw) <= bound
        if layer in residue:                 # the bias a BatchNorm subtracts again: rounding residue
            assert max(np.abs(fb).max(), np.abs(sb).max()) <= bound * np.abs(sw).max()
        else:
            assert relative_error(fb, sb) <= bound
    for got, want in zip(fused.statistics(), stepped.statistics(), strict=True):
        for g, w in zip(got, want, strict=True):
            assert relative_error(g, w) <= bound
    if any(step.masks for step in plan):
        other = list(training_plan(spec.replace(seed=spec.seed + 1), TRAIN_SAMPLES))
        control = make_backend(twin, spec, tensors=model.tensors).fit(x, targets, other, fused=True)
        assert not compare_curves(control, curve, dtype).ok
