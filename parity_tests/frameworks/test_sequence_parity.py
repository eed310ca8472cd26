"""Sequence stacks in every twin against the NumPy engine (issue 22): embeddings, SimpleRNN, LSTM,
GRU and sequence pooling through the real framework layers (``nn.Embedding/RNN/LSTM/GRU``,
``keras.layers.Embedding/SimpleRNN/LSTM/GRU``, JAX cells over ``lax.scan``) — every step's
output, every gradient including each layer's input gradient, in float64 and float32, and a few
training steps (per step and free-running, ``judge.training_parity``). Each convention a twin
cannot express (torch's two biases in Keras, the reset-before GRU in torch) is refused by it with
its reason; torch runs Keras's one bias as ``bias_ih_l0`` with ``bias_hh_l0`` frozen at 0.
Hypothesis-drawn stacks (``sequence_strategies.sequence_stacks``) run the same way: one per run,
12 more with ``-m slow``. Sizes are tiny (T ≤ 5, H ≤ 4, 4–8 samples) so the default suite stays
fast."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from sequence_strategies import sequence_stacks

from judge.parity import ParityFailure, check_parity, localize
from judge.training_parity import compare_training
from scratch.batching import dropout_masks, training_plan
from scratch.errors import BackendError
from scratch.layer_specs import (
    DenseSpec,
    DropoutSpec,
    EmbeddingSpec,
    GRUSpec,
    LSTMSpec,
    SequencePoolSpec,
    SimpleRNNSpec,
)
from scratch.layers.recurrent import LSTM
from scratch.model import Network
from scratch.spec import ModelSpec, OptimizerSpec
from twins.backends import make_backend

TWINS = ("torch", "keras", "jax")
VOCABULARY = 6
# name → (inputs, layers); every case ends in a dense softmax over 3 classes
CASES = {
    "lstm-torch": ((5, 3), (LSTMSpec(4, return_sequences=False), DenseSpec(3, "softmax"))),
    "lstm-keras": ((5, 3), (LSTMSpec(4, biases="one", init="keras"), SequencePoolSpec("mean"),
                            DenseSpec(3, "softmax"))),
    "embedding-gru": (5, (EmbeddingSpec(VOCABULARY, 3), GRUSpec(4, return_sequences=False),
                          DenseSpec(3, "softmax"))),
    "gru-reset-before": ((4, 2), (GRUSpec(3, reset_after=False, init="keras"), SequencePoolSpec(),
                                  DenseSpec(3, "softmax"))),
    "rnn-torch": ((4, 2), (SimpleRNNSpec(4), DropoutSpec(0.25), SimpleRNNSpec(3, "relu"), SequencePoolSpec(),
                           DenseSpec(3, "softmax"))),
    "rnn-keras": ((4, 2), (SimpleRNNSpec(4, "relu", biases="one", init="keras"), DropoutSpec(0.25),
                           LSTMSpec(3, biases="one", return_sequences=False), DenseSpec(3, "softmax"))),
}
# (twin, case) → what the twin cannot express
REFUSED = {
    ("keras", "lstm-torch"): "two biases",
    ("keras", "rnn-torch"): "two biases",
    ("torch", "gru-reset-before"): "reset_after=False",
}
SAMPLES, TRAIN_SAMPLES, TRAIN_BATCH = 4, 8, 4
L2 = 2.0 ** -6            # λ/2 exact in float32: Keras refuses others in float64


def make_spec(case: str, dtype: str, **fields) -> ModelSpec:
    inputs, layers = CASES[case]
    return ModelSpec(inputs=inputs, layers=layers, dtype=dtype, seed=3, **fields)


def make_data(spec: ModelSpec, samples: int = SAMPLES):
    rng = np.random.default_rng(11)
    x = (rng.integers(0, spec.layers[0].vocabulary, (samples, *spec.input_shape)) if spec.token_inputs
         else rng.standard_normal((samples, *spec.input_shape)).astype(spec.dtype))
    model = Network(spec)
    return model, x, model.targets(rng.integers(0, 3, samples))


def build(twin: str, case: str, spec: ModelSpec, model: Network):
    if (twin, case) in REFUSED:
        with pytest.raises(BackendError, match=REFUSED[(twin, case)]):
            make_backend(twin, spec, tensors=model.tensors)
        pytest.skip(f"{twin} refuses {case} (asserted): {REFUSED[(twin, case)]}")
    return make_backend(twin, spec, tensors=model.tensors)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("twin", TWINS)
def test_forward_and_every_gradient(twin, case, dtype):
    spec = make_spec(case, dtype, l2=L2)
    model, x, targets = make_data(spec)
    backend = build(twin, case, spec, model)
    masks = dropout_masks(spec, 0, SAMPLES)
    results = check_parity(backend, make_backend("scratch", spec, tensors=model.tensors), x, targets, masks)
    names = {c.name for c in results}
    for layer in range(1, spec.n_layers + 1):
        assert {f"Z{layer}", f"A{layer}", f"dZ{layer}"} <= names
        if layer > 1:
            assert f"dA{layer - 1}" in names
    assert {name for names in spec.gradient_names for name in names} <= names


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("twin", TWINS)
def test_training_steps(twin, case):
    convention = "keras" if twin == "keras" else "torch"
    spec = make_spec(case, "float64", optimizer=OptimizerSpec.framework_default("adam", convention),
                     epochs=2, batch_size=TRAIN_BATCH, l2=L2)
    model, x, targets = make_data(spec, TRAIN_SAMPLES)
    build(twin, case, spec, model)
    plan = list(training_plan(spec, TRAIN_SAMPLES))
    parity = compare_training(twin, "scratch", spec, model.tensors, x, targets, plan,
                              make_backend=make_backend)
    assert parity.ok, parity.describe_failures()


def _drawn_twin(twin: str, spec: ModelSpec, model: Network):
    """The twin, or None where it refuses a convention it cannot express (asserted by name)."""
    try:
        return make_backend(twin, spec, tensors=model.tensors)
    except BackendError as error:
        expected = {"keras": "two biases", "torch": "reset_after=False"}.get(twin, "no refusal")
        assert expected in str(error), error
        return None


def check_drawn(spec: ModelSpec) -> None:
    """Forward and every gradient in float64 and float32 in every twin that expresses ``spec``, then
    one epoch of SGD in float64, per step and free-running."""
    for dtype in ("float64", "float32"):
        typed = spec.replace(dtype=dtype, l2=L2, optimizer=OptimizerSpec("sgd", learning_rate=0.1),
                             batch_size=TRAIN_BATCH)
        model, x, targets = make_data(typed, TRAIN_SAMPLES)
        masks = dropout_masks(typed, 0, TRAIN_SAMPLES)
        reference = make_backend("scratch", typed, tensors=model.tensors)
        for twin in TWINS:
            backend = _drawn_twin(twin, typed, model)
            if backend is None:
                continue
            check_parity(backend, reference, x, targets, masks,
                         repro=f"a drawn stack: {typed.describe_stack()}")
            if dtype == "float64":
                plan = list(training_plan(typed, TRAIN_SAMPLES))
                parity = compare_training(twin, "scratch", typed, model.tensors, x, targets, plan,
                                          make_backend=make_backend)
                assert parity.ok, [typed.describe_stack(), *parity.describe_failures()]


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence_stacks())
def test_a_drawn_sequence_stack_in_every_twin(spec):
    check_drawn(spec)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence_stacks())
def test_more_drawn_sequence_stacks_in_every_twin(spec):
    check_drawn(spec)


def test_every_refusal_is_a_case_and_every_case_runs_somewhere():
    assert {case for _, case in REFUSED} <= set(CASES)
    for case in CASES:
        assert any((twin, case) not in REFUSED for twin in ("torch", "keras")), case


def test_torch_holds_one_bias_as_bias_ih_with_bias_hh_frozen_at_zero():
    spec = make_spec("lstm-keras", "float64", optimizer=OptimizerSpec.framework_default("adam", "torch"),
                     batch_size=TRAIN_BATCH)
    model, x, targets = make_data(spec, TRAIN_SAMPLES)
    torch_twin = make_backend("torch", spec, tensors=model.tensors)
    frozen = torch_twin.layers[0].op.recurrent.bias_hh_l0
    assert not frozen.requires_grad and not frozen.detach().numpy().any()
    for _ in range(3):
        torch_twin.train_step(x[:TRAIN_BATCH], targets[:TRAIN_BATCH])
    assert not frozen.detach().numpy().any()                       # still 0 after Adam steps
    assert sorted(torch_twin.tensors()[0]) == ["bias", "weight_hh", "weight_ih"]


@pytest.mark.parametrize("twin", TWINS)
def test_a_token_out_of_range_is_an_error_in_every_twin(twin):
    spec = make_spec("embedding-gru", "float64")
    model, x, targets = make_data(spec)
    backend = make_backend(twin, spec, tensors=model.tensors)
    x[1, 2] = VOCABULARY
    with pytest.raises(BackendError, match=f"{twin} backend: x: token 6 is outside 0..5"):
        backend.trace(x, targets)
    with pytest.raises(BackendError, match="integer token ids"):
        backend.trace(x.astype(np.float64), targets)


@pytest.mark.parametrize("case", ["embedding-gru", "rnn-keras", "lstm-torch"])
@pytest.mark.parametrize("twin", TWINS)
def test_every_layer_alone_agrees(twin, case):
    """Localization's path (``judge.parity.localize``): each layer run alone in both backends from
    the reference's inputs, an embedding's integer ids included (no input gradient there)."""
    spec = make_spec(case, "float64", l2=L2)
    model, x, targets = make_data(spec)
    backend = build(twin, case, spec, model)
    reference = make_backend("scratch", spec, tensors=model.tensors)
    masks = dropout_masks(spec, 0, SAMPLES)
    results = localize(backend, reference, reference.trace(x, targets, masks), x, targets, masks, "float64")
    assert results and all(c.ok for c in results), [c for c in results if not c.ok]
    names = {c.name for c in results}
    assert {name for names in spec.gradient_names for name in names} <= names


def _wrong_from_step(method_name: str, step: int, part: str):
    """``LSTM.<method_name>`` whose result ``part`` ("output" or "dx") is off from time step
    ``step`` (1-based) on, in the order the pass computes its steps."""
    original = getattr(LSTM, method_name)

    def wrong(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if part == "output":
            output, cache = result
            output = output.copy()
            output[:, step - 1:] += 1e-3
            return output, cache
        dx = result.dx.copy()
        dx[:, :step] += 1e-3                  # BPTT runs T … 1: steps step … 1 come after the bug
        return result._replace(dx=dx)

    return wrong


@pytest.mark.parametrize("method, part, step, quantity", [
    ("run", "output", 3, "Z1"),              # the forward pass wrong from h_3 on
    ("bptt", "dx", 2, "dA1"),                # the backward pass wrong from step 2 down to step 1
])
def test_a_wrong_step_is_located_to_its_layer_and_time_step(monkeypatch, method, part, step, quantity):
    """The engine made wrong from one time step on, against torch: localization names the layer and
    the first time step apart in the order the steps were computed."""
    inputs = (5, 3)
    layers = (LSTMSpec(4, init="keras"), LSTMSpec(3, return_sequences=False), DenseSpec(3, "softmax"))
    spec = ModelSpec(inputs=inputs, layers=layers, dtype="float64", seed=3)
    model, x, targets = make_data(spec)
    torch_twin = make_backend("torch", spec, tensors=model.tensors)
    monkeypatch.setattr(LSTM, method, _wrong_from_step(method, step, part))
    engine = make_backend("scratch", spec, tensors=model.tensors)
    with pytest.raises(ParityFailure) as failure:
        check_parity(engine, torch_twin, x, targets)
    first = next(line for line in str(failure.value).splitlines() if "first diverging" in line)
    layer = 1 if quantity == "Z1" else 2
    assert f"layer {layer}, {quantity}" in first and f"first apart at time step {step}" in first, first
