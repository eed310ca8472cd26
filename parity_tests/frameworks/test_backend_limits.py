"""Where a framework cannot express a spec option exactly, its twin says so — it never
substitutes something close."""

from __future__ import annotations

import numpy as np
import pytest
from cases import make_case

from scratch.errors import BackendError
from scratch.spec import ModelSpec, OptimizerSpec


@pytest.mark.parametrize("twin,convention", [("torch", "keras"), ("keras", "torch")])
@pytest.mark.parametrize("optimizer", ["momentum", "rmsprop", "adam"])
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
