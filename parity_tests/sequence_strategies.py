"""Hypothesis strategies for small sequence stacks, shared by the engine's finite-difference tests
(``numpy_only/test_sequence_stacks.py``) and the twins' parity tests
(``frameworks/test_sequence_parity.py``). NumPy and the engine's spec only.

A drawn stack: token ids through an embedding, or (T, n) sequences; one to three recurrent layers
(SimpleRNN tanh or ReLU, LSTM, GRU in either reset form), each with one bias or two, either
framework's initializer, dropout between them; the last returns its last state or is pooled (last
step or mean); an optional hidden dense layer; a softmax over 3 classes."""

from __future__ import annotations

from hypothesis import strategies as st

from scratch.layer_specs import (
    DenseSpec,
    DropoutSpec,
    EmbeddingSpec,
    GRUSpec,
    LSTMSpec,
    SequencePoolSpec,
    SimpleRNNSpec,
)
from scratch.spec import ModelSpec


@st.composite
def recurrent_layers(draw, return_sequences: bool):
    kind = draw(st.sampled_from(("simple_rnn", "lstm", "gru")))
    units, init = draw(st.integers(1, 4)), draw(st.sampled_from(("torch", "keras")))
    if kind == "gru":
        return GRUSpec(units, reset_after=draw(st.booleans()), return_sequences=return_sequences, init=init)
    biases = draw(st.sampled_from(("two", "one")))
    if kind == "lstm":
        return LSTMSpec(units, return_sequences=return_sequences, biases=biases, init=init)
    return SimpleRNNSpec(units, draw(st.sampled_from(("tanh", "relu"))), return_sequences=return_sequences,
                         biases=biases, init=init)


@st.composite
def sequence_stacks(draw) -> ModelSpec:
    steps = draw(st.integers(1, 5))
    layers = []
    if draw(st.booleans()):
        inputs = steps
        layers.append(EmbeddingSpec(draw(st.integers(1, 5)), draw(st.integers(1, 3)),
                                    draw(st.sampled_from(("torch", "keras")))))
    else:
        inputs = (steps, draw(st.integers(1, 3)))
    depth = draw(st.integers(1, 3))
    pooled = draw(st.booleans())
    for index in range(depth):
        last = index == depth - 1
        layers.append(draw(recurrent_layers(return_sequences=not last or pooled)))
        if not last and draw(st.booleans()):
            layers.append(DropoutSpec(draw(st.sampled_from((0.25, 0.5)))))
    if pooled:
        layers.append(SequencePoolSpec(draw(st.sampled_from(("last", "mean")))))
    if draw(st.booleans()):
        layers.append(DenseSpec(draw(st.integers(2, 4)), draw(st.sampled_from(("relu", "tanh")))))
    layers.append(DenseSpec(3, "softmax"))
    return ModelSpec(inputs=inputs, layers=tuple(layers), seed=draw(st.integers(0, 2**16)))
