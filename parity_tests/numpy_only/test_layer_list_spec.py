"""The spec as a layer list: the MLP shorthand expands to it, both JSON forms load, and every
layer spec validates its own fields with an error that names the field."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from scratch.batching import dropout_masks
from scratch.errors import SpecError
from scratch.layer_specs import DenseSpec, DropoutSpec
from scratch.model import MLP
from scratch.spec import ModelSpec, OptimizerSpec

SHORTHAND = ModelSpec((6, 5, 4, 3), hidden_activation="tanh", output_activation="softmax", dropout=0.25,
                      l2=0.01, optimizer=OptimizerSpec("adam", learning_rate=0.01), batch_size=4)
LAYERS = (DenseSpec(5, "tanh"), DropoutSpec(0.25), DenseSpec(4, "tanh"), DropoutSpec(0.25),
          DenseSpec(3, "softmax"))


def test_the_shorthand_expands_to_the_layer_list():
    listed = ModelSpec(inputs=6, layers=LAYERS, l2=0.01, optimizer=OptimizerSpec("adam", learning_rate=0.01),
                       batch_size=4)
    assert SHORTHAND.layers == LAYERS and SHORTHAND.inputs == 6
    assert listed == SHORTHAND and hash(listed) == hash(SHORTHAND)
    assert listed.layer_sizes == (6, 5, 4, 3)
    assert (listed.hidden_activation, listed.output_activation, listed.dropout) == ("tanh", "softmax", 0.25)


def test_a_format_1_spec_json_still_loads_to_the_same_spec():
    """The JSON every weight file of format 1 carries: the shorthand's fields, written by hand
    here in that form (no layer list in it)."""
    old = {"layer_sizes": [6, 5, 4, 3], "hidden_activation": "tanh", "output_activation": "softmax",
           "loss": "cce", "init": "he_normal", "optimizer": {"name": "adam", "learning_rate": 0.01},
           "batch_size": 4, "epochs": 1, "seed": 0, "dtype": "float64", "l2": 0.01, "dropout": 0.25,
           "leaky_relu_slope": 0.01, "shuffle": True}
    assert ModelSpec.from_json(json.dumps(old)) == SHORTHAND


def test_json_round_trip_of_a_layer_list_is_exact():
    mixed = ModelSpec(inputs=3, layers=(DenseSpec(7, "relu"), DenseSpec(2, "sigmoid"), DropoutSpec(0.125),
                                        DenseSpec(1, "sigmoid")), loss="bce")
    text = mixed.to_json()
    assert ModelSpec.from_json(text) == mixed
    assert ModelSpec.from_json(text).to_json() == text
    assert json.loads(text)["layers"][2] == {"kind": "dropout", "rate": 0.125}


def test_per_layer_activations_and_rates_drive_the_engine_and_the_masks():
    spec = ModelSpec(inputs=3, layers=(DenseSpec(7, "relu"), DenseSpec(5, "tanh"), DropoutSpec(0.5),
                                       DenseSpec(2, "softmax")))
    assert spec.activations == ("relu", "tanh", "softmax")
    assert spec.dropout_rates == (0.0, 0.5)
    model = MLP(spec)
    assert [type(g).__name__ for g in model.activations] == ["ReLU", "Tanh", "Softmax"]
    masks = dropout_masks(spec, 0, 64)
    assert masks[0] is None and masks[1].shape == (64, 5)
    assert set(np.unique(masks[1])) == {0.0, 2.0}
    forward = model.forward(np.ones((64, 3)), masks)
    assert np.array_equal(forward.a[1], forward.h[1] * masks[1])
    assert forward.a[0] is forward.h[0]
    with pytest.raises(SpecError, match="'dropout' is the MLP shorthand"):
        spec.dropout                                                      # noqa: B018
    with pytest.raises(SpecError, match="'hidden_activation' is the MLP shorthand"):
        spec.hidden_activation                                            # noqa: B018


def test_uniform_dropout_draws_the_masks_of_format_1():
    """A shorthand dropout draws one mask per hidden layer in order from one generator, as
    format 1 did, so old training runs replay exactly."""
    masks = dropout_masks(SHORTHAND, 3, 10)
    rng = np.random.default_rng([SHORTHAND.seed, 2, 3])
    for mask, width in zip(masks, (5, 4), strict=True):
        assert np.array_equal(mask, np.where(rng.random((10, width)) >= 0.25, 1 / 0.75, 0.0))


@pytest.mark.parametrize("layers, field, message", [
    ((), "layers", "non-empty"),
    ((DenseSpec(3, "relu"), "dense"), "layers[1]", "expected a layer spec"),
    ((DropoutSpec(0.5), DenseSpec(3, "softmax")), "layers[0]", "must directly follow a hidden layer"),
    ((DenseSpec(4), DropoutSpec(0.5), DropoutSpec(0.5), DenseSpec(3, "softmax")), "layers[2]",
     "must directly follow"),
    ((DenseSpec(4), DenseSpec(3, "relu"), DropoutSpec(0.5)), "layers[2]", "must directly follow"),
    ((DenseSpec(4, "softmax"), DenseSpec(3, "softmax")), "layers[0].activation", "unknown value 'softmax'"),
    ((DenseSpec(4), DenseSpec(3, "relu")), "layers[1].activation", "unknown value 'relu'"),
    ((DenseSpec(4), DenseSpec(3, "sigmoid")), "layers[1].activation", "does not fit loss 'cce'"),
    ((DenseSpec(4), DenseSpec(1, "softmax")), "layers[1].units", "at least 2 units"),
])
def test_a_bad_layer_list_names_the_layer_and_field(layers, field, message):
    with pytest.raises(SpecError, match=rf"spec field '{re.escape(field)}'.*{re.escape(message)}"):
        ModelSpec(inputs=3, layers=layers)


@pytest.mark.parametrize("make, field", [
    (lambda: DenseSpec(0), "units"),
    (lambda: DenseSpec(2.0), "units"),
    (lambda: DenseSpec(3, "swish"), "activation"),
    (lambda: DropoutSpec(0.0), "rate"),
    (lambda: DropoutSpec(1.0), "rate"),
    (lambda: DropoutSpec(float("nan")), "rate"),
])
def test_each_layer_spec_validates_its_own_fields(make, field):
    with pytest.raises(SpecError, match=rf"spec field '{re.escape(field)}'"):
        make()


@pytest.mark.parametrize("layer, field", [
    ({"kind": "conv", "units": 3}, "layers[0].kind"),
    ({"units": 3}, "layers[0].kind"),
    ({"kind": "dense", "units": 3, "bias": False}, "layers[0].bias"),
    ({"kind": "dense"}, "layers[0]"),
    ({"kind": "dense", "units": -1}, "layers[0].units"),
    ([3], "layers[0]"),
])
def test_a_bad_layer_in_json_names_its_position(layer, field):
    output = {"kind": "dense", "units": 2, "activation": "softmax"}
    text = json.dumps({"inputs": 3, "layers": [layer, output]})
    with pytest.raises(SpecError, match=rf"spec field '{re.escape(field)}'"):
        ModelSpec.from_json(text)


def test_shorthand_and_layer_list_together_are_refused():
    with pytest.raises(SpecError, match="not both"):
        ModelSpec((3, 2), layers=(DenseSpec(2, "softmax"),), inputs=3)
    with pytest.raises(SpecError, match="spec field 'inputs'"):
        ModelSpec(layers=(DenseSpec(2, "softmax"),))
    with pytest.raises(SpecError, match="spec field 'layer_sizes': missing"):
        ModelSpec()


def test_replace_with_a_shorthand_field_rebuilds_the_stack():
    assert SHORTHAND.replace(dropout=0.0).layers == (DenseSpec(5, "tanh"), DenseSpec(4, "tanh"),
                                                     DenseSpec(3, "softmax"))
    assert SHORTHAND.replace(layer_sizes=(6, 3)).layers == (DenseSpec(3, "softmax"),)
    assert SHORTHAND.replace(seed=4).layers == LAYERS
    mixed = ModelSpec(inputs=3, layers=(DenseSpec(7, "relu"), DenseSpec(5, "tanh"), DenseSpec(2, "softmax")))
    with pytest.raises(SpecError, match="'hidden_activation' is the MLP shorthand"):
        mixed.replace(dropout=0.5)
