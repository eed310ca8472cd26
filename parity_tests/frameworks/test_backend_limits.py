"""Where a framework cannot express a spec option exactly, its twin says so — it never
substitutes something close."""

from __future__ import annotations

import numpy as np
import pytest
from cases import make_case

from reference.backends import CONVENTION_TWINS, REFUSED
from scratch.errors import BackendError
from scratch.spec import ModelSpec, OptimizerSpec

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


def test_keras_refuses_a_dilated_conv2d():
    """TensorFlow 2.21's CPU kernels cannot differentiate a dilated convolution (measured in
    test_conv_twins.py), so the Keras twin refuses one instead of running something else."""
    from reference.backends import make_backend
    from scratch.layer_specs import Conv2DSpec, DenseSpec, FlattenSpec
    from scratch.model import Network

    spec = ModelSpec(inputs=(1, 7, 7), layers=(Conv2DSpec(2, 3, dilation=2), FlattenSpec(),
                                               DenseSpec(3, "softmax")))
    model = Network(spec)
    with pytest.raises(BackendError, match="dilation 2"):
        make_backend("keras", spec, model.weights, model.biases)
    assert make_backend("scratch", spec, model.weights, model.biases).parameters()[0][0].shape == (2, 1, 3, 3)
