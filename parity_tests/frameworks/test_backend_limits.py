"""Where a framework cannot express a spec option exactly, its twin says so — it never
substitutes something close."""

from __future__ import annotations

import re

import numpy as np
import pytest
from cases import make_case

from judge.parity import relative_error
from judge.tolerances import tolerance
from scratch.errors import BackendError
from scratch.spec import ModelSpec, OptimizerSpec
from twins.backends import CONVENTION_TWINS, REFUSED

# every (twin, optimizer, convention) a twin cannot train: a convention it is not listed for, and
# the refusals within one it is (optax has no Keras-convention Adam)
FOREIGN = sorted({(twin, optimizer, convention) for convention, twins in CONVENTION_TWINS.items()
                  for twin in ("torch", "keras") if twin not in twins
                  for optimizer in ("momentum", "rmsprop", "adam")} | REFUSED)


def test_the_refusals_are_the_ones_documented():
    assert ("jax", "adam", "keras") in FOREIGN and ("torch", "adam", "optax") in FOREIGN
    assert not [case for case in FOREIGN if case[0] == "jax" and case != ("jax", "adam", "keras")]


@pytest.mark.parametrize("twin,optimizer,convention", FOREIGN, ids=["-".join(case) for case in FOREIGN])
def test_foreign_optimizer_convention_traces_but_refuses_to_train(twin, convention, optimizer):
    spec = ModelSpec((5, 4, 3), optimizer=OptimizerSpec.framework_default(optimizer, convention))
    case = make_case(spec, 6, 0)
    backend = case.backend(twin)
    trace = backend.trace(case.x, case.targets)          # gradients do not need the optimizer
    assert np.isfinite(trace["loss"])
    with pytest.raises(BackendError, match=f"no {convention}-convention '{optimizer}'"):
        backend.train_step(case.x, case.targets)


@pytest.mark.parametrize("field,value", [("l2", 0.01), ("leaky_relu_slope", 0.01)])
def test_keras_refuses_float64_factors_it_would_round_to_float32(field, value):
    other = {"l2": 0.0, "leaky_relu_slope": 2.0 ** -5}                  # exact in float32
    other[field] = value
    spec = ModelSpec((5, 4, 3), hidden_activation="leaky_relu", dtype="float64", **other)
    case = make_case(spec, 6, 0)
    with pytest.raises(BackendError, match=f"'{field}' = {value}.*float32"):
        case.backend("keras")
    assert case.backend("torch").trace(case.x, case.targets)["loss"] > 0   # torch takes it as given


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_keras_dilates_at_stride_1_and_refuses_it_at_stride_2(dtype):
    """``keras.layers.Conv2D`` differentiates a dilated convolution at stride 1 (measured in
    test_conv_twins.py, run through the twin in test_conv_parity.py) and refuses strides > 1 with
    dilation > 1 itself: the twin runs the first and refuses the second with a line naming why;
    torch runs both."""
    from scratch.layer_specs import Conv2DSpec, DenseSpec, FlattenSpec
    from scratch.model import Network
    from twins.backends import make_backend

    def spec_with(strides):
        layers = (Conv2DSpec(2, 3, strides=strides, dilation=2), FlattenSpec(), DenseSpec(3, "softmax"))
        return ModelSpec(inputs=(1, 7, 7), dtype=dtype, layers=layers)
    dilated = spec_with(1)
    model = Network(dilated)
    x = np.random.default_rng(0).standard_normal((4, 1, 7, 7)).astype(dtype)
    targets = model.targets(np.array([0, 1, 2, 0]))
    keras_trace = make_backend("keras", dilated, model.weights, model.biases).trace(x, targets)
    engine_trace = make_backend("scratch", dilated, model.weights, model.biases).trace(x, targets)
    assert keras_trace["Z1"].shape == engine_trace["Z1"].shape == (4, 2, 3, 3)
    assert relative_error(keras_trace["dW1"], engine_trace["dW1"]) <= tolerance(dtype, "gradient")
    strided = spec_with(2)
    model = Network(strided)
    message = ("keras backend: layer 1 conv2d strides 2 with dilation 2: keras.layers.Conv2D refuses "
               "strides > 1 together with dilation_rate > 1")
    ops = ".*Conv2DBackpropInput, Conv2DBackpropFilter"
    with pytest.raises(BackendError, match=re.escape(message) + ops):
        make_backend("keras", strided, model.weights, model.biases)
    torch_twin = make_backend("torch", strided, model.weights, model.biases)
    assert torch_twin.parameters()[0][0].shape == (2, 1, 3, 3)
