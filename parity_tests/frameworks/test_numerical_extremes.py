"""Numerical extremes: logits of ±1e4, saturated sigmoids, probabilities of exactly 0 and 1 against
one-hot targets, dead ReLU layers, ReLU units sitting exactly on the kink (Z = 0), a 10-layer and
a 4096-wide network.

In every case the NumPy engine's whole trace (loss, every Z, A, dZ, dA, dW, db) is finite, and it
agrees with torch and Keras within the one tolerance table wherever the framework's own trace is
finite (in all of these cases every framework's is, which the tests also assert, so a framework
turning non-finite here is noticed rather than skipped). No case needs a bound of its own: the
10-layer and 4096-wide networks stay below 1/10 of the float32 and float64 bounds (measured over
seeds 0–19).
"""

from __future__ import annotations

import numpy as np
import pytest
from cases import PAIRS, Case, make_case

from reference.parity import check_parity, compare_traces
from scratch.model import MLP
from scratch.spec import ModelSpec

DTYPES = ["float64", "float32"]
BACKENDS = ("scratch", "torch", "keras")
SLOPE = 2.0 ** -5          # exact in float32, as TensorFlow's LeakyRelu needs (see test_forward_gradients)


def non_finite(trace: dict) -> list[str]:
    return [name for name, value in trace.items() if not np.all(np.isfinite(value))]


def traces_agree(case: Case, repro: str) -> dict[str, dict]:
    """Trace every backend on the case's batch; assert the NumPy engine's trace is finite, every
    framework's too, and every pair within the tolerance table. Returns the traces."""
    backends = {name: case.backend(name) for name in BACKENDS}
    traces = {name: backend.trace(case.x, case.targets) for name, backend in backends.items()}
    assert not non_finite(traces["scratch"]), f"scratch: non-finite {non_finite(traces['scratch'])}"
    for name in ("torch", "keras"):
        assert not non_finite(traces[name]), f"{name} itself is not finite here: {non_finite(traces[name])}"
    for actual, desired in PAIRS:
        if not all(c.ok for c in compare_traces(traces[actual], traces[desired], case.spec.dtype)):
            # run again through the parity helper, whose failure names the first wrong layer
            check_parity(backends[actual], backends[desired], case.x, case.targets, repro=repro)
            raise AssertionError(f"{actual} vs {desired} disagreed once and then agreed: not deterministic")
    return traces


def with_parameters(case: Case, weights, biases, labels=None) -> Case:
    """``case`` with new parameters (cast to the spec's dtype) and, optionally, new labels."""
    dtype = np.dtype(case.spec.dtype)
    weights = [np.asarray(w, dtype=np.float64).astype(dtype) for w in weights]
    biases = [np.asarray(b, dtype=np.float64).astype(dtype) for b in biases]
    labels = case.labels if labels is None else labels
    targets = MLP(case.spec, weights, biases).targets(labels)
    return Case(case.spec, weights, biases, case.x, targets, labels, None)


# --------------------------------------------------------------------------- huge logits

OUTPUT_LOSS = {"softmax+cce": ("softmax", "cce", 4), "sigmoid+bce": ("sigmoid", "bce", 1),
               "sigmoid+mse": ("sigmoid", "mse", 1), "softmax+mse": ("softmax", "mse", 4)}


def huge_logit_case(output, loss, n_out, dtype, seed) -> Case:
    """Output layer scaled so that max|Z_L| = 1e4; even rows labelled with the class the network
    is sure of, odd rows with the class it rules out, so probabilities of exactly 1 and exactly 0
    meet one-hot targets both ways."""
    spec = ModelSpec((6, 8, n_out), hidden_activation="tanh", output_activation=output, loss=loss,
                     init="torch_default", dtype=dtype, seed=seed)
    case = make_case(spec, 16, seed)
    logits = MLP(spec, case.weights, case.biases).forward(case.x).z[-1].astype(np.float64)  # (16, n_out)
    scale = 1e4 / np.max(np.abs(logits))
    if n_out == 1:
        sure, ruled_out = (logits[:, 0] > 0).astype(np.int64), (logits[:, 0] <= 0).astype(np.int64)
    else:
        sure, ruled_out = logits.argmax(axis=1), logits.argmin(axis=1)
    labels = np.where(np.arange(len(case.x)) % 2 == 0, sure, ruled_out)
    return with_parameters(case, [case.weights[0], case.weights[1].astype(np.float64) * scale],
                           [case.biases[0], case.biases[1].astype(np.float64) * scale], labels)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pairing", OUTPUT_LOSS)
def test_logits_of_1e4(pairing, dtype, global_seed, repro):
    output, loss, n_out = OUTPUT_LOSS[pairing]
    case = huge_logit_case(output, loss, n_out, dtype, global_seed)
    trace = traces_agree(case, repro)["scratch"]
    assert np.max(np.abs(trace["Z2"])) > 0.99e4
    probabilities = trace["A2"]
    assert np.any(probabilities == 0.0) and np.any(probabilities == 1.0), "outputs are not saturated"
    if loss != "mse":
        assert trace["loss"] > 100, "the confidently wrong rows should cost about |logit| each"


# --------------------------------------------------------------------------- saturated sigmoids


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_sigmoid_hidden_layers(dtype, global_seed, repro):
    """Hidden pre-activations scaled to |Z| up to 60: most sigmoids are exactly 0-ish or exactly 1,
    where g′ = A(1 − A) underflows or is exactly 0."""
    spec = ModelSpec((6, 8, 8, 3), hidden_activation="sigmoid", init="glorot_uniform", dtype=dtype,
                     seed=global_seed)
    case = make_case(spec, 16, global_seed)
    z1 = MLP(spec, case.weights, case.biases).forward(case.x).z[0].astype(np.float64)
    scale = 60.0 / np.max(np.abs(z1))
    case = with_parameters(case, [case.weights[0] * scale, *case.weights[1:]],
                           [case.biases[0] * scale, *case.biases[1:]])
    trace = traces_agree(case, repro)["scratch"]
    assert np.any(trace["A1"] == 1.0) and np.any(trace["A1"] < 1e-15), "layer 1 is not saturated"


# --------------------------------------------------------------------------- ReLU: dead and on the kink


@pytest.mark.parametrize("dtype", DTYPES)
def test_dead_relu_layer(dtype, global_seed, repro):
    """Layer 2's biases at −1e3 (far below any W·A): every unit is dead, so A2 = 0 and nothing
    below the output layer gets a gradient — exactly zero, in every backend."""
    spec = ModelSpec((6, 8, 8, 3), init="he_normal", dtype=dtype, seed=global_seed)
    case = make_case(spec, 16, global_seed)
    biases = [case.biases[0], np.full(8, -1e3), case.biases[2]]
    trace = traces_agree(with_parameters(case, case.weights, biases), repro)["scratch"]
    assert not np.any(trace["A2"])
    for name in ("dZ2", "dW2", "db2", "dZ1", "dW1", "db1"):
        assert not np.any(trace[name]), f"{name} should be exactly zero under a dead layer"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", ["relu", "leaky_relu"])
def test_relu_exactly_on_the_kink(hidden, dtype, global_seed, repro):
    """Unit 0 of each hidden layer has zero weights and zero bias, so its Z is exactly 0, where
    torch and TensorFlow take g′(0) = 0 for ReLU (and the slope for leaky ReLU): its dZ, dW row and
    db entry are exactly 0 (slope·dA) although gradient reaches it through the next layer."""
    spec = ModelSpec((6, 8, 8, 3), hidden_activation=hidden, leaky_relu_slope=SLOPE, init="he_normal",
                     dtype=dtype, seed=global_seed)
    case = make_case(spec, 16, global_seed)
    weights = [w.astype(np.float64) for w in case.weights]
    biases = [b.astype(np.float64) for b in case.biases]
    for layer in (0, 1):
        weights[layer][0] = 0.0
        biases[layer][0] = 0.0
    trace = traces_agree(with_parameters(case, weights, biases), repro)["scratch"]
    for layer in (1, 2):
        assert not np.any(trace[f"Z{layer}"][:, 0]), f"Z{layer} of unit 0 should be exactly 0"
        assert np.any(trace[f"dA{layer}"][:, 0]), f"unit 0 of layer {layer} should receive a gradient"
        expected = 0.0 if hidden == "relu" else SLOPE
        np.testing.assert_array_equal(trace[f"dZ{layer}"][:, 0], expected * trace[f"dA{layer}"][:, 0])


# --------------------------------------------------------------------------- deep and wide

SHAPES = {
    "10-layer-relu": dict(layer_sizes=(16,) + (16,) * 9 + (4,), hidden_activation="relu", init="he_normal"),
    "10-layer-tanh": dict(layer_sizes=(16,) + (16,) * 9 + (4,), hidden_activation="tanh",
                          init="glorot_uniform"),
    "10-layer-sigmoid": dict(layer_sizes=(16,) + (16,) * 9 + (4,), hidden_activation="sigmoid",
                             init="glorot_uniform"),
    "4096-wide": dict(layer_sizes=(32, 4096, 10), hidden_activation="relu", init="he_normal"),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_deep_and_wide(shape, dtype, global_seed, repro):
    spec = ModelSpec(dtype=dtype, seed=global_seed, **SHAPES[shape])
    assert spec.n_layers == (10 if shape.startswith("10") else 2)
    traces_agree(make_case(spec, 16, global_seed), repro)
