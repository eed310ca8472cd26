"""The sequence layer kinds as spec layers (issue 22): embedding, SimpleRNN, LSTM, GRU and sequence
pooling in one stack — every gradient of the whole stack against finite differences (dropout
between recurrent layers and L2 on both recurrent kernels included), the declared tensors each
convention gives, the initializers' conventions and the spec's refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from safetensors import safe_open
from sequence_strategies import sequence_stacks
from test_layer_stack import whole_stack_check

from scratch.errors import DataError, SpecError
from scratch.initializers import initial_tensors
from scratch.layer_specs import (
    BatchNormSpec,
    DenseSpec,
    DropoutSpec,
    EmbeddingSpec,
    GRUSpec,
    LSTMSpec,
    SequencePoolSpec,
    SimpleRNNSpec,
)
from scratch.model import Network, save_model
from scratch.spec import ModelSpec
from scratch.weights import load_weights, tensor_names

SEQUENCE_STACKS = {
    "lstm-last": ((5, 3), (LSTMSpec(4, return_sequences=False), DenseSpec(3, "softmax"))),
    "lstm-one-bias-keras": ((4, 3), (LSTMSpec(4, biases="one", init="keras"), SequencePoolSpec("mean"),
                                     DenseSpec(3, "softmax"))),
    "gru-after": ((4, 2), (GRUSpec(3), SequencePoolSpec(), DenseSpec(3, "softmax"))),
    "gru-before": ((4, 2), (GRUSpec(3, reset_after=False, init="keras"), SequencePoolSpec("mean"),
                            DenseSpec(3, "softmax"))),
    "rnn-tanh-dropout-lstm": ((5, 2), (SimpleRNNSpec(4), DropoutSpec(0.3),
                                       LSTMSpec(3, return_sequences=False), DenseSpec(3, "softmax"))),
    "rnn-relu-one-bias": ((4, 3), (SimpleRNNSpec(4, "relu", biases="one"), SequencePoolSpec(),
                                   DenseSpec(2, "sigmoid"))),
    "embedding-gru": (6, (EmbeddingSpec(5, 3), GRUSpec(4, return_sequences=False), DenseSpec(3, "softmax"))),
    "embedding-rnn-lstm": (5, (EmbeddingSpec(4, 3, init="keras"), SimpleRNNSpec(3), LSTMSpec(3),
                               SequencePoolSpec("mean"), DenseSpec(3, "softmax"))),
}


def sequence_spec(name: str, **fields) -> ModelSpec:
    inputs, layers = SEQUENCE_STACKS[name]
    loss = "bce" if layers[-1].activation == "sigmoid" else "cce"
    return ModelSpec(inputs=inputs, layers=layers, loss=loss, seed=3, **fields)


@pytest.mark.parametrize("name", sorted(SEQUENCE_STACKS))
def test_every_gradient_of_a_sequence_stack_matches_finite_differences(name):
    whole_stack_check(sequence_spec(name, l2=0.05), samples=3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence_stacks())
def test_drawn_sequence_stacks_match_finite_differences(spec):
    whole_stack_check(spec.replace(l2=0.05), samples=3, seed=spec.seed)


def test_the_declared_tensors_follow_the_bias_convention():
    assert [t.name for t in LSTMSpec(4).tensors] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert [t.name for t in LSTMSpec(4, biases="one").tensors] == ["weight_ih", "weight_hh", "bias"]
    assert [t.name for t in GRUSpec(4, reset_after=False).tensors] == ["weight_ih", "weight_hh", "bias"]
    spec = sequence_spec("lstm-last")
    assert spec.parameter_shapes[0] == ((16, 3), (16, 4), (16,), (16,))
    assert spec.gradient_names[0] == ("dweight_ih1", "dweight_hh1", "dbias_ih1", "dbias_hh1")
    assert spec.kernel_layers == (1, 2)


def test_the_spec_round_trips_through_json():
    for name in SEQUENCE_STACKS:
        spec = sequence_spec(name)
        assert ModelSpec.from_json(spec.to_json()) == spec
        assert json.loads(spec.to_json())["layers"][0]["kind"] in ("lstm", "gru", "simple_rnn", "embedding")


def test_torch_init_draws_every_tensor_from_the_units_bound():
    spec = ModelSpec(inputs=(3, 5), layers=(LSTMSpec(25), SequencePoolSpec(), DenseSpec(2, "softmax")))
    tensors = initial_tensors(spec)[1]
    for name, value in tensors.items():
        assert np.max(np.abs(value)) <= 1 / 5, name
        assert np.max(np.abs(value)) > 0.9 / 5, name          # U(±0.2) fills its range


def test_keras_init_is_glorot_orthogonal_and_unit_forget_bias_once():
    spec = ModelSpec(inputs=(3, 6), layers=(LSTMSpec(5, init="keras"), SequencePoolSpec(),
                                            DenseSpec(2, "softmax")))
    two = initial_tensors(spec)[1]
    limit = np.sqrt(6 / (6 + 20))
    assert np.max(np.abs(two["weight_ih"])) <= limit
    np.testing.assert_allclose(two["weight_hh"].T @ two["weight_hh"], np.eye(5), atol=1e-12)
    forget = np.zeros(20)
    forget[5:10] = 1.0
    np.testing.assert_array_equal(two["bias_ih"], forget)       # +1 on one bias only: never 2 in all
    np.testing.assert_array_equal(two["bias_hh"], np.zeros(20))
    one_bias = (LSTMSpec(5, biases="one", init="keras"),) + spec.layers[1:]
    one = initial_tensors(spec.replace(layers=one_bias))[1]
    np.testing.assert_array_equal(one["bias"], forget)
    gru = initial_tensors(spec.replace(layers=(GRUSpec(5, init="keras"),) + spec.layers[1:]))[1]
    assert not gru["bias_ih"].any() and not gru["bias_hh"].any()


def test_embedding_inits():
    spec = ModelSpec(inputs=4, layers=(EmbeddingSpec(400, 50), SequencePoolSpec(), DenseSpec(2, "softmax")))
    torch_table = initial_tensors(spec)[1]["E"]
    assert 0.9 < torch_table.std() < 1.1
    keras = spec.replace(layers=(EmbeddingSpec(400, 50, init="keras"),) + spec.layers[1:])
    assert np.max(np.abs(initial_tensors(keras)[1]["E"])) <= 0.05


@pytest.mark.parametrize("layers, inputs, message", [
    ((DenseSpec(4), EmbeddingSpec(5, 3), DenseSpec(2, "softmax")), 3, "must be the first layer"),
    ((LSTMSpec(4), DenseSpec(2, "softmax")), 6, "takes sequences (T, n)"),
    ((LSTMSpec(4), DenseSpec(2, "softmax")), (3, 4), "takes flat features"),
    ((SequencePoolSpec(), DenseSpec(2, "softmax")), 6, "takes sequences"),
    ((EmbeddingSpec(5, 3), DenseSpec(2, "softmax")), (3, 2), "takes token ids (T,)"),
])
def test_a_stack_that_does_not_fit_is_refused_naming_the_layer(layers, inputs, message):
    with pytest.raises(SpecError, match=r"layers\[\d\]") as error:
        ModelSpec(inputs=inputs, layers=layers)
    assert message in str(error.value)


@pytest.mark.parametrize("fields, message", [
    (dict(kind="lstm", units=4, biases="three"), "biases"),
    (dict(kind="gru", units=4, biases="one"), "unknown field"),
    (dict(kind="simple_rnn", units=4, nonlinearity="sigmoid"), "nonlinearity"),
    (dict(kind="lstm", units=0), "units"),
    (dict(kind="lstm", units=4, return_sequences=1), "return_sequences"),
    (dict(kind="embedding", vocabulary=5, dimension=3, init="glorot"), "init"),
])
def test_a_bad_sequence_field_is_one_clear_error(fields, message):
    data = {"inputs": [3, 2], "layers": [fields, {"kind": "dense", "units": 2, "activation": "softmax"}]}
    with pytest.raises(SpecError, match=message):
        ModelSpec.from_dict(data)


def test_token_inputs_must_be_integers_in_range():
    spec = sequence_spec("embedding-gru")
    model = Network(spec)
    targets = model.targets(np.array([0, 1]))
    with pytest.raises(DataError, match="integer token ids"):
        model.gradients(np.zeros((2, 6)), targets)
    with pytest.raises(DataError, match="token 5 is outside 0..4"):
        model.gradients(np.array([[0, 1, 2, 3, 4, 5]] * 2), targets)
    loss, _ = model.gradients(np.array([[0, 1, 2, 3, 4, 4]] * 2), targets)
    assert np.isfinite(loss)


def test_a_batch_norm_after_a_recurrent_layer_cancels_none_of_its_biases():
    """The recurrent biases act inside the gates: a BatchNorm after the layer removes no shift of
    its output, so none is taken for a cancelled bias (whose true gradient would be 0)."""
    spec = ModelSpec(inputs=(4, 2), layers=(LSTMSpec(3, return_sequences=False), BatchNormSpec(),
                                            DenseSpec(3, "softmax")))
    assert spec.cancelled_biases == ()
    grads = Network(spec).gradients(np.random.default_rng(0).standard_normal((5, 4, 2)),
                                    Network(spec).targets(np.array([0, 1, 2, 0, 1])))[1]
    assert np.max(np.abs(grads[2])) > 1e-6                        # db_ih1 is a real gradient


def test_the_weight_file_holds_torchs_names_and_the_layout(tmp_path):
    spec = sequence_spec("embedding-rnn-lstm")
    model = Network(spec)
    save_model(model, tmp_path / "m.safetensors")
    loaded = load_weights(tmp_path / "m.safetensors")
    assert loaded.spec == spec
    with safe_open(str(tmp_path / "m.safetensors"), "np") as handle:
        layout = json.loads(handle.metadata()["layout"])
    assert layout == {
        "embedding": "vocabulary_dimension", "simple_rnn": "torch_gates", "lstm": "torch_gates",
        "dense": "out_in"}
    assert sorted(tensor_names(spec))[:4] == ["layers.0.weight", "layers.1.bias_hh", "layers.1.bias_ih",
                                              "layers.1.weight_hh"]
    for got, want in zip(loaded.tensors, model.tensors, strict=True):
        assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in got)
