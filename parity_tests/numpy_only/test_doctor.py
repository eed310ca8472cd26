"""The convention doctor (:mod:`ports.doctor`) on readings built by hand, in the engine only.

Each case builds reading A as one framework's user would write the model (Keras's defaults:
BatchNorm ρ = 0.99, ε = 1e-3, biased running variance, "same" padding, a channels-last flatten,
LayerNorm ε = 1e-3, LeakyReLU slope 0.3, the keras optimizer convention; or torch's: ρ = 0.9,
ε = 1e-5, unbiased, explicit padding, a channels-first flatten), and reading B as a port to the
other framework: A's model in B's form (the dense kernel after the flatten has its columns
re-ordered by hand here, independently of :func:`ports.align.flatten_permutation`; padding
spelled as the amounts it stands for) with zero, one or more port mistakes injected. The doctor,
given A and B put in A's form (:func:`ports.align.align`), must name exactly the injected causes,
none for a faithful port, and say where a difference that no known cause explains first shows.
:func:`ports.doctor.gap` is tested on measurements altered by hand; align itself in test_align.py.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ports.align import align
from ports.causes import BY_NAME, CAUSES, Cause
from ports.doctor import diagnose, gap, measure
from ports.reading import Reading
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
from scratch.spec import ModelSpec, OptimizerSpec

BATCH, STEPS = 16, 3
NOTHING = "the two readings agree in float64: nothing for the doctor to explain"
FOUND_ELSEWHERE = {cause.name for cause in CAUSES if cause.found != "readings"}

KERAS_BATCH_NORM = dict(decay=0.99, epsilon=1e-3, running_variance="biased")
TORCH_BATCH_NORM = dict(decay=0.9, epsilon=1e-5, running_variance="unbiased")
FORM = {  # how each framework spells what align treats as form: (flatten order, padding by stride)
    "keras": ("channels_last", {1: "same", 2: "same"}),
    "torch": ("channels_first", {1: (1, 1, 1, 1), 2: (0, 1, 0, 1)}),   # the amounts of "same" on 8×8
}


def optimizer(name: str, convention: str, **overrides) -> OptimizerSpec:
    return OptimizerSpec.framework_default(name, convention, **overrides)


KERAS_ADAM, TORCH_ADAM = optimizer("adam", "keras"), optimizer("adam", "torch")


def cnn(framework: str, opt: OptimizerSpec = KERAS_ADAM, *, stride: int = 1, channels: int = 2,
        batch_norm: dict | None = None, hidden: str = "relu") -> ModelSpec:
    """(channels, 8, 8) → conv2d(3, 3×3) → batch_norm + relu → max_pool 2 → flatten → dense(6) →
    dense(4, softmax), in ``framework``'s defaults and form."""
    order, paddings = FORM[framework]
    norm = KERAS_BATCH_NORM if framework == "keras" else TORCH_BATCH_NORM
    return ModelSpec(inputs=(channels, 8, 8), layers=(
        Conv2DSpec(3, 3, strides=stride, padding=paddings[stride], activation="identity"),
        BatchNormSpec(**{**norm, **(batch_norm or {})}, activation="relu"),
        MaxPool2DSpec(2), FlattenSpec(order), DenseSpec(6, hidden), DenseSpec(4, "softmax")),
        optimizer=opt, dtype="float32")


def mlp(framework: str, opt: OptimizerSpec = KERAS_ADAM, *, hidden: str = "relu", dropout: bool = False,
        epsilon: float | None = None, **changes) -> ModelSpec:
    """5 → dense(6) → layer_norm → dense(6) (a square kernel) [→ dropout] → dense(3, softmax)."""
    epsilon = epsilon if epsilon is not None else (1e-3 if framework == "keras" else 1e-5)
    layers = [DenseSpec(6, hidden), LayerNormSpec(epsilon=epsilon), DenseSpec(6, hidden),
              *([DropoutSpec(0.5)] if dropout else []), DenseSpec(3, "softmax")]
    changes.setdefault("leaky_relu_slope", 0.3 if framework == "keras" else 0.01)
    return ModelSpec(inputs=5, layers=tuple(layers), optimizer=opt, dtype="float32", **changes)


def keras_cnn(opt: OptimizerSpec = KERAS_ADAM, **options) -> ModelSpec:
    return cnn("keras", opt, **options)


def torch_cnn(opt: OptimizerSpec = TORCH_ADAM, **options) -> ModelSpec:
    return cnn("torch", opt, **options)


def conventions_of(spec: ModelSpec, donor: ModelSpec) -> ModelSpec:
    """``spec``'s form (flatten order, padding) with every convention of ``donor``: a faithful port."""
    layers = []
    for ours, theirs in zip(spec.layers, donor.layers, strict=True):
        if isinstance(ours, FlattenSpec):
            layers.append(ours)
        elif isinstance(ours, Conv2DSpec):
            layers.append(replace(theirs, padding=ours.padding))
        else:
            layers.append(theirs)
    return donor.replace(layers=tuple(layers))


def kernel_in_order(w: np.ndarray, shape: tuple[int, int, int], source: str, target: str) -> np.ndarray:
    """A dense kernel's columns for flattened (C, H, W) maps, moved from ``source`` to ``target``
    flatten order: columns indexed (c, h, w) channels-first, (h, w, c) channels-last."""
    if source == target:
        return w
    channels, height, width = shape
    if source == "channels_last":
        return w.reshape(-1, height, width, channels).transpose(0, 3, 1, 2).reshape(w.shape)
    return w.reshape(-1, channels, height, width).transpose(0, 2, 3, 1).reshape(w.shape)


def tensors_in_form(tensors, a_spec: ModelSpec, b_spec: ModelSpec):
    """A's tensors as B's faithful port holds them: the dense kernel after a re-ordered flatten
    with its columns moved; every other tensor as it is."""
    out = [dict(held) for held in tensors]
    flatten = None
    for number, (ours, theirs) in enumerate(zip(a_spec.numbered_layers, b_spec.numbered_layers,
                                                strict=True), 1):
        if isinstance(ours, FlattenSpec):
            flatten = (a_spec.layer_shapes[number - 1], ours.order, theirs.order)
        elif isinstance(ours, DenseSpec) and flatten is not None:
            held = out[a_spec.parameter_layers.index(number)]
            held["W"] = kernel_in_order(held["W"], *flatten)
            flatten = None
    return out


def statistics_for(spec: ModelSpec, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """Running (mean, variance) of each batch_norm layer as after some training: not 0 and 1."""
    channels = [spec.layer_shapes[layer][0] for layer in spec.statistics_layers]
    return [(rng.normal(0.0, 0.2, n).astype(np.float32), (1.0 + rng.random(n)).astype(np.float32))
            for n in channels]


def given(framework: str) -> frozenset[str]:
    """A compiled Keras model carries its loss and optimizer; a torch side gives its weights."""
    return frozenset({"weights", "loss", "optimizer"} if framework == "keras" else {"weights"})


def framework_of(spec: ModelSpec) -> str:
    forms = [layer.order for layer in spec.layers if isinstance(layer, FlattenSpec)]
    if forms:
        return "keras" if forms[0] == "channels_last" else "torch"
    norms = [layer.epsilon for layer in spec.layers if isinstance(layer, LayerNormSpec)]
    return "keras" if norms and norms[0] == 1e-3 else "torch"


def batch(spec: ModelSpec, rng) -> tuple[np.ndarray, np.ndarray]:
    shape = spec.inputs if isinstance(spec.inputs, tuple) else (spec.inputs,)
    classes = spec.layers[-1].units
    return rng.normal(size=(BATCH, *shape)), np.eye(classes)[rng.integers(0, classes, BATCH)]


def readings(a_spec: ModelSpec, b_spec: ModelSpec, rng, mistake=None, fresh_statistics: bool = False,
             b_framework: str | None = None) -> tuple[Reading, Reading]:
    """A (its own initialized tensors, trained-looking statistics) and B: A's tensors and statistics
    in B's form, then ``mistake`` (a function of B's tensor list) and, with ``fresh_statistics``,
    running mean 0 and variance 1 (the buffers not copied)."""
    a_framework = framework_of(a_spec)
    b_framework = b_framework or framework_of(b_spec)
    tensors = Network(a_spec).tensors
    statistics = statistics_for(a_spec, rng)
    a = Reading(a_framework, "a", a_spec, tensors, statistics, given=given(a_framework))
    b_tensors = tensors_in_form(tensors, a_spec, b_spec)
    if mistake is not None:
        mistake(b_tensors)
    b_statistics = ([(np.zeros_like(mean), np.ones_like(variance)) for mean, variance in statistics]
                    if fresh_statistics else [tuple(pair) for pair in statistics])
    b = Reading(b_framework, "b", b_spec, b_tensors, b_statistics, given=given(b_framework))
    return a, b


def doctor(a: Reading, b: Reading, rng):
    x, targets = batch(a.spec, rng)
    return diagnose(a, align(a, b).reading, x, targets, steps=STEPS)


# ---- the port's mistakes ------------------------------------------------------------------------

def on_tensor(position: int, name: str, transform):
    def mistake(tensors):
        tensors[position][name] = np.ascontiguousarray(transform(tensors[position][name]))
    return mistake


def with_batch_norm(spec: ModelSpec, **fields) -> ModelSpec:
    return spec.replace(layers=tuple(replace(layer, **fields) if isinstance(layer, BatchNormSpec) else layer
                                     for layer in spec.layers))


def with_layer(spec: ModelSpec, index: int, **fields) -> ModelSpec:
    layers = list(spec.layers)
    layers[index] = replace(layers[index], **fields)
    return spec.replace(layers=tuple(layers))


def with_optimizer(spec: ModelSpec, **fields) -> ModelSpec:
    return spec.replace(optimizer=replace(spec.optimizer, **fields))


def port(a_spec: ModelSpec, to: str) -> ModelSpec:
    """A faithful port of the CNN ``a_spec`` to framework ``to``: A's conventions in ``to``'s form
    (an MLP has no form of its own: its port is its spec)."""
    form = cnn(to, a_spec.optimizer, stride=a_spec.layers[0].strides, channels=a_spec.inputs[0])
    return conventions_of(form, a_spec)


KERAS_RMSPROP, TORCH_RMSPROP = optimizer("rmsprop", "keras"), optimizer("rmsprop", "torch")
KERAS_MOMENTUM, TORCH_MOMENTUM = optimizer("momentum", "keras"), optimizer("momentum", "torch")
KERAS_SGD = optimizer("sgd", "keras")
TORCH_ADAMW = replace(TORCH_ADAM, weight_decay=0.05, decoupled_decay=True)        # torch.optim.AdamW
KERAS_MOMENTUM_DECAYED = replace(KERAS_MOMENTUM, weight_decay=0.05, decoupled_decay=True)  # Keras SGD
TORCH_MOMENTUM_DECAYED = replace(TORCH_MOMENTUM, learning_rate=0.05, weight_decay=0.05)    # coupled
TRANSPOSE_DENSE = on_tensor(2, "W", lambda w: w.T)                     # mlp: dense(6) → dense(6)
FLIP_CONV = on_tensor(0, "W", lambda w: w[:, :, ::-1, ::-1])
SWAP_CONV_AXES = on_tensor(0, "W", lambda w: w.transpose(0, 1, 3, 2))
SWAP_CONV_CHANNELS = on_tensor(0, "W", lambda w: w.transpose(1, 0, 2, 3))


def keep_kernel_order(a_spec: ModelSpec):
    """The flatten changed order but the dense kernel after it was copied as it was: undo the
    faithful port's re-ordering of its columns."""
    def mistake(tensors):
        shape = a_spec.layer_shapes[3]
        ours = a_spec.layers[3].order
        theirs = "channels_first" if ours == "channels_last" else "channels_last"
        tensors[2]["W"] = kernel_in_order(tensors[2]["W"], shape, theirs, ours)
    return mistake


def mistake_case(name: str, causes: set[str], a_spec: ModelSpec, b_spec: ModelSpec, mistake=None,
                 fresh_statistics: bool = False):
    return pytest.param(a_spec, b_spec, mistake, fresh_statistics, causes, id=name)


KERAS_MLP, TORCH_MLP = mlp("keras"), mlp("torch", TORCH_ADAM)
KERAS_CNN, TORCH_CNN = keras_cnn(), torch_cnn()
TO_TORCH, TO_KERAS = port(KERAS_CNN, "torch"), port(TORCH_CNN, "keras")

MISTAKES = [
    # BatchNorm: Keras's momentum 0.99 typed into torch's momentum (ρ = 0.01), and the reverse
    mistake_case("batch-norm-momentum-keras-to-torch", {"batch_norm_momentum"}, KERAS_CNN,
                 with_batch_norm(TO_TORCH, decay=0.01)),
    mistake_case("batch-norm-momentum-torch-to-keras", {"batch_norm_momentum"}, TORCH_CNN,
                 with_batch_norm(TO_KERAS, decay=0.1)),
    mistake_case("batch-norm-epsilon-keras-to-torch", {"batch_norm_epsilon"}, KERAS_CNN,
                 with_batch_norm(TO_TORCH, epsilon=1e-5)),
    mistake_case("batch-norm-epsilon-torch-to-keras", {"batch_norm_epsilon"}, TORCH_CNN,
                 with_batch_norm(TO_KERAS, epsilon=1e-3)),
    mistake_case("running-variance-keras-to-torch", {"running_variance"}, KERAS_CNN,
                 with_batch_norm(TO_TORCH, running_variance="unbiased")),
    mistake_case("running-variance-torch-to-keras", {"running_variance"}, TORCH_CNN,
                 with_batch_norm(TO_KERAS, running_variance="biased")),
    mistake_case("running-statistics-not-copied", {"running_statistics_not_copied"}, KERAS_CNN, TO_TORCH,
                 fresh_statistics=True),
    mistake_case("layer-norm-epsilon-keras-to-torch", {"layer_norm_epsilon"}, KERAS_MLP,
                 with_layer(KERAS_MLP, 1, epsilon=1e-5)),
    mistake_case("layer-norm-epsilon-torch-to-keras", {"layer_norm_epsilon"}, TORCH_MLP,
                 with_layer(TORCH_MLP, 1, epsilon=1e-3)),
    # torch's padding=1 for Keras's "same" at stride 2 (TF pads bottom/right), and the reverse
    mistake_case("padding-split-keras-to-torch", {"padding_split"}, keras_cnn(stride=2),
                 with_layer(port(keras_cnn(stride=2), "torch"), 0, padding=(1, 1, 1, 1))),
    mistake_case("padding-split-torch-to-keras", {"padding_split"}, with_layer(torch_cnn(stride=2), 0,
                                                                              padding=(1, 1, 1, 1)),
                 port(with_layer(torch_cnn(stride=2), 0, padding=(1, 1, 1, 1)), "keras")),
    mistake_case("leaky-relu-slope-keras-to-torch", {"leaky_relu_slope"}, mlp("keras", hidden="leaky_relu"),
                 mlp("keras", hidden="leaky_relu", leaky_relu_slope=0.01)),
    mistake_case("leaky-relu-slope-torch-to-keras", {"leaky_relu_slope"},
                 mlp("torch", TORCH_ADAM, hidden="leaky_relu"),
                 mlp("torch", TORCH_ADAM, hidden="leaky_relu", leaky_relu_slope=0.3)),
    # Keras L2(0.01) is λ‖W‖²: the spec's l2 0.02; torch's weight_decay=0.01 is the spec's l2 0.01
    # torch's nn.GELU() (exact) ported with keras.ops.gelu or jax.nn.gelu's default (the tanh form)
    mistake_case("gelu-exact-ported-as-tanh", {"gelu_form"}, mlp("torch", TORCH_ADAM, hidden="gelu"),
                 mlp("torch", TORCH_ADAM, hidden="gelu_tanh")),
    mistake_case("l2-factor", {"l2_factor"}, mlp("keras", KERAS_SGD, l2=0.02),
                 mlp("keras", KERAS_SGD, l2=0.01)),
    mistake_case("l2-left-out", {"l2"}, mlp("keras", KERAS_SGD, l2=0.02), mlp("keras", KERAS_SGD)),
    # weight decay: AdamW's decoupled form ported as torch Adam's weight_decay= (coupled), and the reverse
    mistake_case("weight-decay-form-adam", {"weight_decay_form"}, mlp("torch", TORCH_ADAMW),
                 mlp("torch", replace(TORCH_ADAMW, decoupled_decay=False))),
    mistake_case("weight-decay-form-momentum", {"weight_decay_form"}, mlp("keras", KERAS_MOMENTUM_DECAYED),
                 mlp("keras", replace(KERAS_MOMENTUM_DECAYED, decoupled_decay=False))),
    # torch's SGD(weight_decay=λ) ported as an L2 penalty of the kernels in the loss (and the reverse)
    mistake_case("weight-decay-as-l2-in-loss", {"l2_vs_weight_decay"}, mlp("torch", TORCH_MOMENTUM_DECAYED),
                 mlp("torch", replace(TORCH_MOMENTUM_DECAYED, weight_decay=0.0), l2=0.05)),
    mistake_case("l2-in-loss-as-weight-decay", {"l2_vs_weight_decay"},
                 mlp("keras", KERAS_MOMENTUM, l2=0.05), mlp("keras", KERAS_MOMENTUM_DECAYED)),
    # Keras's AdamW decays by default (0.004); a port to torch.optim.Adam drops it. AdamW's default
    # λ is 0.01 in torch: a port that leaves it there
    mistake_case("weight-decay-left-out", {"weight_decay"},
                 mlp("keras", replace(KERAS_ADAM, weight_decay=0.004, decoupled_decay=True)), KERAS_MLP),
    mistake_case("adamw-default-weight-decay", {"weight_decay"},
                 mlp("torch", replace(TORCH_ADAMW, weight_decay=0.004)),
                 mlp("torch", replace(TORCH_ADAMW, weight_decay=0.01))),
    mistake_case("optimizer-convention-adam", {"optimizer_convention"}, KERAS_CNN,
                 with_optimizer(TO_TORCH, convention="torch")),
    mistake_case("optimizer-convention-rmsprop", {"optimizer_convention"}, mlp("torch", TORCH_RMSPROP),
                 mlp("torch", replace(TORCH_RMSPROP, convention="keras"))),
    mistake_case("optimizer-epsilon-adam", {"optimizer_epsilon"}, KERAS_CNN,
                 with_optimizer(TO_TORCH, epsilon=1e-8)),
    mistake_case("rmsprop-rho", {"rmsprop_rho"}, mlp("keras", KERAS_RMSPROP),
                 mlp("keras", replace(KERAS_RMSPROP, rho=0.99))),
    mistake_case("adam-betas", {"adam_betas"}, TORCH_MLP, mlp("torch", replace(TORCH_ADAM, beta2=0.99))),
    mistake_case("learning-rate", {"learning_rate"}, mlp("keras", KERAS_RMSPROP),
                 mlp("keras", replace(KERAS_RMSPROP, learning_rate=0.01))),
    mistake_case("learning-rate-held-in-float32", {"float32_hyperparameters"}, mlp("torch", TORCH_RMSPROP),
                 mlp("torch", replace(TORCH_RMSPROP,
                                      learning_rate=float(np.float32(TORCH_RMSPROP.learning_rate))))),
    # together only: Keras's formula with torch's ε is as far from Keras's Adam as torch's is
    mistake_case("adam-convention-and-epsilon-together", {"optimizer_convention", "optimizer_epsilon"},
                 mlp("torch", TORCH_ADAM), mlp("torch", KERAS_ADAM)),
    # a torch CNN put in Keras at Keras's defaults: no single cause brings A closer (each leaves
    # the others' effect as large), two together do; the doctor tries the best pairs
    mistake_case("cnn-torch-to-keras-at-keras-defaults",
                 {"running_variance", "optimizer_convention", "optimizer_epsilon", "float32_hyperparameters"},
                 TORCH_CNN, with_batch_norm(TO_KERAS, running_variance="biased").replace(
                     optimizer=replace(KERAS_ADAM,
                                       learning_rate=float(np.float32(KERAS_ADAM.learning_rate))))),
    mistake_case("momentum-left-out", {"momentum_left_out"}, mlp("keras", KERAS_MOMENTUM),
                 mlp("keras", KERAS_SGD)),
    mistake_case("momentum-value", {"momentum"}, mlp("torch", TORCH_MOMENTUM),
                 mlp("torch", replace(TORCH_MOMENTUM, momentum=0.99))),
    mistake_case("dense-kernel-transpose", {"dense_kernel_transpose"}, KERAS_MLP, KERAS_MLP,
                 TRANSPOSE_DENSE),
    mistake_case("conv-kernel-spatial-transpose", {"conv_kernel_spatial_transpose"}, KERAS_CNN, TO_TORCH,
                 SWAP_CONV_AXES),
    mistake_case("conv-kernel-flip", {"conv_kernel_flip"}, TORCH_CNN, TO_KERAS, FLIP_CONV),
    mistake_case("conv-channels-swap", {"conv_channels_swap"}, keras_cnn(channels=3),
                 port(keras_cnn(channels=3), "torch"), SWAP_CONV_CHANNELS),
    mistake_case("flatten-order-keras-to-torch", {"flatten_order"}, KERAS_CNN, TO_TORCH,
                 keep_kernel_order(KERAS_CNN)),
    mistake_case("flatten-order-torch-to-keras", {"flatten_order"}, TORCH_CNN, TO_KERAS,
                 keep_kernel_order(TORCH_CNN)),
    # two or more at once
    mistake_case("batch-norm-epsilon-and-momentum", {"batch_norm_epsilon", "batch_norm_momentum"},
                 KERAS_CNN, with_batch_norm(TO_TORCH, epsilon=1e-5, decay=0.01)),
    mistake_case("batch-norm-left-at-torch-defaults",
                 {"batch_norm_epsilon", "batch_norm_momentum", "running_variance"},
                 KERAS_CNN, with_batch_norm(TO_TORCH, **TORCH_BATCH_NORM)),
    mistake_case("flatten-order-and-adam-epsilon", {"flatten_order", "optimizer_epsilon"}, KERAS_CNN,
                 with_optimizer(TO_TORCH, epsilon=1e-8), keep_kernel_order(KERAS_CNN)),
    mistake_case("dense-transpose-and-layer-norm-epsilon", {"dense_kernel_transpose", "layer_norm_epsilon"},
                 KERAS_MLP, with_layer(KERAS_MLP, 1, epsilon=1e-5), TRANSPOSE_DENSE),
    mistake_case("rmsprop-left-at-torch-defaults",
                 {"optimizer_convention", "rmsprop_rho", "optimizer_epsilon", "learning_rate"},
                 mlp("keras", KERAS_RMSPROP), mlp("keras", TORCH_RMSPROP)),
]


@pytest.mark.parametrize("a_spec,b_spec,mistake,fresh_statistics,causes", MISTAKES)
def test_the_doctor_names_each_injected_port_mistake(a_spec, b_spec, mistake, fresh_statistics, causes, rng):
    ported_to = "torch" if framework_of(a_spec) == "keras" else "keras"
    a, b = readings(a_spec, b_spec, rng, mistake, fresh_statistics, b_framework=ported_to)
    diagnosis = doctor(a, b, rng)
    assert not diagnosis.start.agrees, "the injected mistake changes nothing the doctor measures"
    assert set(diagnosis.causes) == causes, diagnosis.lines()
    assert len(diagnosis.causes) == len(causes), diagnosis.lines()
    assert diagnosis.explained, diagnosis.lines()
    assert all(line.startswith("explained by ") for line in diagnosis.lines())


def test_every_cause_found_on_readings_has_an_injected_case():
    injected = set().union(*(case.values[-1] for case in MISTAKES))
    assert injected == {cause.name for cause in CAUSES} - FOUND_ELSEWHERE
    assert sum(len(case.values[-1]) > 1 for case in MISTAKES) >= 2


# ---- what the frameworks fix: only where neither side can take the other's ------------------------

def side(framework: str, spec: ModelSpec, rng) -> Reading:
    statistics = statistics_for(spec, rng) if spec.statistics_layers else None
    return Reading(framework, framework, spec, Network(spec).tensors, statistics)


BIASED_TORCH_CNN = with_batch_norm(TORCH_CNN, running_variance="biased")
KERAS_SGD_DECAYED = KERAS_MOMENTUM_DECAYED
TORCH_SGD_DECAYED = replace(TORCH_MOMENTUM, weight_decay=0.05)
FIXED_CASES = [
    # torch stores only the unbiased running variance, Keras only the biased one …
    ("running_variance", ("torch", TORCH_CNN), ("keras", BIASED_TORCH_CNN), True),
    # … a JAX function or a weight file can hold either: its port can match torch's
    ("running_variance", ("torch", TORCH_CNN), ("jax", BIASED_TORCH_CNN), False),
    ("running_variance", ("weights", BIASED_TORCH_CNN), ("torch", TORCH_CNN), False),
    ("optimizer_convention", ("torch", mlp("torch", TORCH_ADAM)), ("keras", mlp("torch", KERAS_ADAM)), True),
    ("optimizer_convention", ("torch", mlp("torch", TORCH_ADAM)), ("numpy", mlp("torch", KERAS_ADAM)), False),
    ("optimizer_convention", ("torch", mlp("torch", TORCH_RMSPROP)),
     ("jax", mlp("torch", optimizer("rmsprop", "optax"))), False),
    # Keras's SGD decays decoupled only, torch's SGD coupled only; torch has AdamW for Keras's decay
    ("weight_decay_form", ("keras", mlp("torch", KERAS_SGD_DECAYED)),
     ("torch", mlp("torch", TORCH_SGD_DECAYED)), True),
    ("weight_decay_form",
     ("keras", mlp("torch", replace(KERAS_ADAM, weight_decay=0.05, decoupled_decay=True))),
     ("torch", mlp("torch", replace(TORCH_ADAM, weight_decay=0.05))), False),
    ("weight_decay_form", ("keras", mlp("torch", KERAS_SGD_DECAYED)),
     ("numpy", mlp("torch", replace(KERAS_MOMENTUM, weight_decay=0.05))), False),
]


FIXED_IDS = [f"{c}-{a[0]}-{b[0]}-{'fixed' if f else 'portable'}" for c, a, b, f in FIXED_CASES]


@pytest.mark.parametrize("cause, a_side, b_side, fixed", FIXED_CASES, ids=FIXED_IDS)
def test_a_difference_is_fixed_only_where_neither_side_can_take_the_others(cause, a_side, b_side, fixed, rng):
    a, b = side(*a_side, rng), side(*b_side, rng)
    assert BY_NAME[cause].variants(a, b), "the two sides do not differ by this cause"
    assert BY_NAME[cause].fixed_between(a, b) is fixed
    assert BY_NAME[cause].fixed_between(b, a) is fixed


# ---- faithful ports: a difference of form only -----------------------------------------------------

def faithful_case(name: str, a_spec: ModelSpec, b_spec: ModelSpec, b_framework: str | None = None,
                  b_dtype: str | None = None, b_given: frozenset[str] | None = None):
    return pytest.param(a_spec, b_spec, b_framework, b_dtype, b_given, id=name)


FAITHFUL = [
    faithful_case("identical-cnn", KERAS_CNN, KERAS_CNN),
    faithful_case("identical-mlp", TORCH_MLP, TORCH_MLP),
    faithful_case("cnn-keras-to-torch-flatten-and-padding", KERAS_CNN, TO_TORCH),
    faithful_case("cnn-torch-to-keras-flatten-and-padding", TORCH_CNN, TO_KERAS),
    faithful_case("flatten-channels-last-to-first", KERAS_CNN,
                  with_layer(KERAS_CNN, 3, order="channels_first")),
    faithful_case("flatten-channels-first-to-last", TORCH_CNN,
                  with_layer(TORCH_CNN, 3, order="channels_last")),
    faithful_case("same-as-explicit-amounts-stride-1", KERAS_CNN,
                  with_layer(KERAS_CNN, 0, padding=(1, 1, 1, 1))),
    faithful_case("same-as-explicit-amounts-stride-2", keras_cnn(stride=2),
                  with_layer(keras_cnn(stride=2), 0, padding=(0, 1, 0, 1))),
    faithful_case("explicit-amounts-as-same", TORCH_CNN, with_layer(TORCH_CNN, 0, padding="same")),
    faithful_case("valid-as-zero-amounts", with_layer(KERAS_CNN, 0, padding="valid"),
                  with_layer(KERAS_CNN, 0, padding=(0, 0, 0, 0))),
    faithful_case("dropout-in-both", mlp("keras", dropout=True), mlp("keras", dropout=True)),
    faithful_case("framework-labels-keras-and-jax", KERAS_MLP, KERAS_MLP, b_framework="jax"),
    faithful_case("framework-labels-torch-and-weights", TORCH_CNN, TORCH_CNN, b_framework="weights"),
    faithful_case("float32-and-float64-tensors", KERAS_CNN, TO_TORCH, b_dtype="float64"),
    faithful_case("b-without-weights-of-its-own", KERAS_CNN, TO_TORCH, b_given=frozenset()),
    # plain SGD: θ − η(g + λθ) and θ(1 − ηλ) − ηg are one step; they differ by rounding only
    faithful_case("plain-sgd-decay-coupled-as-decoupled",
                  mlp("torch", optimizer("sgd", "torch", learning_rate=0.1, weight_decay=0.05)),
                  mlp("torch", optimizer("sgd", "torch", learning_rate=0.1, weight_decay=0.05,
                                         decoupled_decay=True))),
]


@pytest.mark.parametrize("a_spec,b_spec,b_framework,b_dtype,b_given", FAITHFUL)
def test_a_faithful_port_has_no_diagnosis(a_spec, b_spec, b_framework, b_dtype, b_given, rng):
    a, b = readings(a_spec, b_spec, rng, b_framework=b_framework)
    if b_dtype is not None:
        b = replace(b, spec=b.spec.replace(dtype=b_dtype),
                    tensors=[{name: value.astype(b_dtype) for name, value in held.items()}
                             for held in b.tensors],
                    statistics=[tuple(value.astype(b_dtype) for value in pair) for pair in b.statistics])
    if b_given is not None:
        b = replace(b, given=b_given)
    diagnosis = doctor(a, b, rng)
    assert diagnosis.start.agrees, diagnosis.start.describe()
    assert diagnosis.causes == []
    assert diagnosis.explained
    assert diagnosis.lines() == [NOTHING]


# ---- what no known cause explains ---------------------------------------------------------------------

def shift_bias(position: int, amount: float):
    return on_tensor(position, "b", lambda b: b + np.float32(amount))


RESIDUALS = [
    pytest.param(KERAS_MLP, with_layer(KERAS_MLP, 0, activation="tanh"), None, 1, "A1",
                 id="mlp-relu-vs-tanh"),
    pytest.param(KERAS_CNN, with_layer(TO_TORCH, 4, activation="tanh"), None, 5, "A5",
                 id="cnn-relu-vs-tanh"),
    pytest.param(KERAS_MLP, KERAS_MLP, shift_bias(2, 0.1), 3, "Z3", id="mlp-bias-plus-0.1"),
    pytest.param(TORCH_CNN, TO_KERAS, shift_bias(3, 0.1), 6, "Z6", id="cnn-output-bias-plus-0.1"),
    # 1e-11 on Z3 of size ~1: a hundred times the float64 bound, far beyond what rounding explains
    # (NOISE_FACTOR·(e_a + e_b) ~ 1e-15): not rounding, however small
    pytest.param(KERAS_MLP, KERAS_MLP, shift_bias(2, 1e-11), 3, "Z3", id="mlp-bias-plus-1e-11"),
]


@pytest.mark.parametrize("a_spec,b_spec,mistake,layer,quantity", RESIDUALS)
def test_a_difference_no_known_cause_explains_is_named_where_it_first_shows(a_spec, b_spec, mistake, layer,
                                                                             quantity, rng):
    a, b = readings(a_spec, b_spec, rng, mistake)
    diagnosis = doctor(a, b, rng)
    assert not diagnosis.explained
    assert diagnosis.causes == [], diagnosis.lines()
    assert diagnosis.end.first == quantity
    residual, isolated = diagnosis.lines()[-2:]
    assert residual.startswith(
        f"not a known convention: first divergence at layer {layer}, quantity {quantity} "), diagnosis.lines()
    # fed A's own inputs, the layer that differs is the one the end-to-end order names
    assert (diagnosis.isolated.layer, diagnosis.isolated.name) == (layer, quantity)
    assert isolated.startswith(f"  each layer fed A's own inputs: layer {layer} differs by itself first, "
                               f"at {quantity} ")


def test_a_residual_after_a_known_cause_is_named_after_it(rng):
    b_spec = with_layer(with_batch_norm(TO_TORCH, epsilon=1e-5), 4, activation="tanh")
    a, b = readings(KERAS_CNN, b_spec, rng)
    diagnosis = doctor(a, b, rng)
    assert diagnosis.causes == ["batch_norm_epsilon"], diagnosis.lines()
    assert not diagnosis.explained
    residual = diagnosis.lines()[-2]
    assert residual.startswith("not a known convention: first divergence at layer 5, quantity A5 ")
    assert residual.endswith(", after the above)")
    assert (diagnosis.isolated.layer, diagnosis.isolated.name) == (5, "A5")


def test_a_difference_every_layer_hides_in_isolation_is_said_to_be_outside_the_layers(rng):
    """B's running means shifted by 0.1: training mode (batch statistics) agrees layer by layer, the
    inference outputs do not; isolation (training mode) finds no layer that differs by itself."""
    a, b = readings(KERAS_CNN, KERAS_CNN, rng)
    b = replace(b, statistics=[(mean + np.float32(0.1), variance) for mean, variance in b.statistics])
    diagnosis = doctor(a, b, rng)
    assert not diagnosis.explained and diagnosis.causes == [], diagnosis.lines()
    assert diagnosis.end.first == "inference outputs"
    assert diagnosis.isolation_ran and diagnosis.isolated is None
    assert diagnosis.lines()[-1].startswith("  each layer fed A's own inputs: every layer agrees")


def test_a_step_that_brings_a_no_closer_is_not_kept(rng):
    """A variant that changes nothing leaves the distance as it is: the walk stops, names no cause."""
    unchanged = Cause("unchanged", "a change that changes nothing", "none", lambda a, b: [("nowhere", a)])
    a, b = readings(KERAS_MLP, KERAS_MLP, rng, shift_bias(2, 0.1))
    x, targets = batch(KERAS_MLP, rng)
    diagnosis = diagnose(a, b, x, targets, STEPS, causes=(unchanged,))
    assert not diagnosis.start.agrees
    assert diagnosis.causes == [], diagnosis.lines()
    assert diagnosis.end == diagnosis.start
    assert not diagnosis.explained


def reading_of(spec: ModelSpec, framework: str = "torch") -> Reading:
    return Reading(framework, framework, spec, Network(spec).tensors, given=frozenset({"weights"}))


# ---- gap -------------------------------------------------------------------------------------------------

def test_gap_on_identical_measurements_agrees(rng):
    x, targets = batch(KERAS_CNN, rng)
    measured = measure(reading_of(KERAS_CNN, "keras"), x, targets, STEPS)
    result = gap(measured, {name: value.copy() for name, value in measured.items()})
    assert result.agrees and result.first is None
    assert result.distance == 0.0 and result.error == 0.0
    assert result.describe().startswith("every quantity agrees")


@pytest.mark.parametrize("quantity", ["Z2", "A5", "loss", "dW1", "dgamma2", "inference outputs",
                                      f"W5 after {STEPS} steps"])
def test_gap_names_the_one_quantity_that_is_off(quantity, rng):
    x, targets = batch(KERAS_CNN, rng)
    measured = measure(reading_of(KERAS_CNN, "keras"), x, targets, STEPS)
    target = {name: value.copy() for name, value in measured.items()}
    target[quantity] = target[quantity] * 1.01 + 0.01
    result = gap(measured, target)
    assert not result.agrees
    assert result.first == quantity and result.quantity == quantity
    assert result.first_error > 1e-3 and result.distance > 0
    assert result.describe().startswith(f"{quantity} off first")


def test_gap_names_the_causally_first_of_two_quantities_off(rng):
    x, targets = batch(KERAS_MLP, rng)
    measured = measure(reading_of(KERAS_MLP, "keras"), x, targets, STEPS)
    target = {name: value.copy() for name, value in measured.items()}
    target["dW1"] = target["dW1"] + 1.0           # far off, but a gradient: after the forward pass
    target["Z3"] = target["Z3"] * (1 + 1e-6)
    result = gap(measured, target)
    assert result.first == "Z3" and result.quantity == "dW1"
    assert result.describe().startswith("Z3 off first") and ", worst dW1 " in result.describe()


def test_gap_counts_a_missing_quantity_as_off(rng):
    x, targets = batch(KERAS_MLP, rng)
    measured = measure(reading_of(KERAS_MLP, "keras"), x, targets, 0)
    target = dict(measured)
    del measured["A2"]
    result = gap(measured, target)
    assert result.first == "A2" and result.error == np.inf
