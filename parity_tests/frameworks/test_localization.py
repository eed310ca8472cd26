"""The parity helper names the first wrong layer and quantity, not the ones that inherit it."""

from __future__ import annotations

import pytest
from cases import FRAMEWORKS, make_case

from judge.parity import ParityFailure, check_parity
from scratch.layers import Dense
from scratch.spec import ModelSpec
from twins.scratch_backend import ScratchBackend


class WrongLayer2Backward(ScratchBackend):
    """A deliberately broken backend: layer 2's activation derivative is scaled by 1.01 (a wrong
    g′), in the engine's own activation object, so the model's backward and the single-layer
    pass of localization both run it."""

    name = "broken"

    def __init__(self, spec, statistics=None, *, tensors):
        super().__init__(spec, statistics, tensors=tensors)
        activation = self.model.activations[1]
        original = activation.backward
        activation.backward = lambda z, a, da: original(z, a, da) * 1.01


@pytest.mark.deliberate_mismatch
def test_failure_names_first_wrong_layer_quantity_and_repro():
    spec = ModelSpec((6, 5, 4, 3), hidden_activation="tanh")
    case = make_case(spec, 8, 0)
    broken = WrongLayer2Backward(spec, tensors=case.tensors)
    with pytest.raises(ParityFailure) as failure:
        check_parity(broken, case.backend("scratch"), case.x, case.targets, repro="pytest this-test")
    message = str(failure.value)
    assert "layer 2, dZ2" in message
    assert "first in causal order end to end: dZ2" in message
    assert "reproduce: pytest this-test" in message
    assert "dW1" in message      # inherited errors are still listed, after the first one


class OneWrongBiasGradient(Dense):
    """db_l with one unit's gradient doubled: a wrong backward in one layer of the engine."""

    def bias_gradient(self, dz):
        db = super().bias_gradient(dz).copy()
        db[0] *= 2
        return db


class EngineWithOneWrongLayer(ScratchBackend):
    """A copy of the engine whose layer 2 computes db wrong. Nothing else is overridden: the
    model's backward and the single-layer pass localization runs are the engine's own code."""

    name = "one-wrong-layer"

    def __init__(self, spec, statistics=None, *, tensors):
        super().__init__(spec, statistics, tensors=tensors)
        dense = self.model.layers[1]
        self.model.layers[1] = OneWrongBiasGradient(dense.weight, dense.bias)


@pytest.mark.deliberate_mismatch
@pytest.mark.parametrize("desired_name", FRAMEWORKS)
def test_a_wrong_layer_in_the_engine_is_localized_by_the_engines_own_code(desired_name):
    """Localization runs ``MLP.layer_pass``, the same methods as the model's backward, so a bug
    in one layer of the engine is found in that layer — not called 'accumulated rounding'."""
    spec = ModelSpec((6, 5, 4, 3), hidden_activation="relu", l2=2.0 ** -6, dropout=0.25)
    case = make_case(spec, 8, 0)
    broken = EngineWithOneWrongLayer(spec, tensors=case.tensors)
    with pytest.raises(ParityFailure) as failure:
        check_parity(broken, case.backend(desired_name), case.x, case.targets, case.masks)
    message = str(failure.value)
    assert "layer fed the reference's own inputs): layer 2, db2" in message, message
    assert "every layer agrees in isolation" not in message
