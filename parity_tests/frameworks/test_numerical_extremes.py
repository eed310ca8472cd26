"""Numerical extremes: logits of ±1e4, saturated sigmoids, probabilities of exactly 0 and 1 against
one-hot targets, dead ReLU layers, ReLU units sitting exactly on the kink (Z = 0), a 10-layer and
a 4096-wide network.

In every case the NumPy engine's whole trace (loss, every Z, A, dZ, dA, dW, db) is finite, and it
agrees with torch and Keras within the one tolerance table wherever the framework's own trace is
finite (in all of these cases every framework's is, which the tests also assert, so a framework
turning non-finite here is noticed rather than skipped). No case needs a bound of its own: the
10-layer and 4096-wide networks stay below 1/10 of the table's float32 and float64 bounds (measured
over seeds 0–19). The one gradient that is not well conditioned, MSE through a saturated output,
is compared to working precision instead (see :func:`test_mse_through_a_saturated_output`).
Saturation is built in, not left to the seed: every case holds for any ``--seed`` (checked for
0–49).
"""

from __future__ import annotations

import numpy as np
import pytest
from cases import FRAMEWORKS, PAIRS, Case, make_case

from judge.parity import check_parity, compare_traces
from scratch.model import MLP
from scratch.spec import ModelSpec

DTYPES = ["float64", "float32"]
BACKENDS = ("scratch", *FRAMEWORKS)
SLOPE = 2.0 ** -5          # exact in float32, as TensorFlow's LeakyRelu needs (see test_forward_gradients)


def non_finite(trace: dict) -> list[str]:
    return [name for name, value in trace.items() if not np.all(np.isfinite(value))]


def traces_agree(case: Case, repro: str) -> dict[str, dict]:
    """Trace every backend on the case's batch; assert the NumPy engine's trace is finite, every
    framework's too, and every pair within the tolerance table. Returns the traces."""
    backends = {name: case.backend(name) for name in BACKENDS}
    traces = {name: backend.trace(case.x, case.targets) for name, backend in backends.items()}
    assert not non_finite(traces["scratch"]), f"scratch: non-finite {non_finite(traces['scratch'])}"
    for name in FRAMEWORKS:
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


def huge_logit_case(output, loss, n_out, dtype, seed) -> Case:
    """Logits of ±1e4, computed exactly: inputs ±1 and integer weights and biases, so every
    backend in either dtype gets the very same Z_L (integers far below 2²⁴). Rounded logits would
    not do: exp turns a logit's absolute rounding, |Z|·ε ≈ 1e-12 (1e-3 in float32), into that
    relative error in every probability that is not exactly 0 or 1, beyond the table's bounds.
    Each output unit's logits span about [−1e4, 1e4] over the batch; even rows are labelled with
    the class the network is sure of, odd rows with the class it rules out, so probabilities of
    exactly 1 and exactly 0 meet one-hot targets both ways."""
    spec = ModelSpec((6, 8, n_out), hidden_activation="relu", output_activation=output, loss=loss,
                     dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], size=(16, 6))                                    # (16, 6)
    w1, b1 = rng.integers(-2, 3, size=(8, 6)), rng.integers(-2, 3, size=8)
    a1 = np.maximum(x @ w1.T + b1, 0)                                           # (16, 8) integers
    r2 = rng.integers(-3, 4, size=(n_out, 8))
    raw = a1 @ r2.T                                                             # (16, n_out) integers
    step = np.floor(2e4 / np.maximum(np.ptp(raw, axis=0), 1))                   # (n_out,)
    w2, b2 = step[:, None] * r2, np.round(-1e4 - step * raw.min(axis=0))
    logits = a1 @ w2.T + b2
    if n_out == 1:
        sure, ruled_out = (logits[:, 0] > 0).astype(np.int64), (logits[:, 0] <= 0).astype(np.int64)
    else:
        sure, ruled_out = logits.argmax(axis=1), logits.argmin(axis=1)
    labels = np.where(np.arange(len(x)) % 2 == 0, sure, ruled_out)
    case = Case(spec, [], [], x.astype(dtype), None, labels, None)
    return with_parameters(case, [w1, w2], [b1, b2], labels)


def assert_saturated(probabilities: np.ndarray) -> None:
    assert np.any(probabilities == 0.0) and np.any(probabilities == 1.0), "outputs are not saturated"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pairing", ["softmax+cce", "sigmoid+bce"])
def test_logits_of_1e4(pairing, dtype, global_seed, repro):
    """CCE and BCE are computed from the logits, so the loss and dZ_L = (A − Y)/m stay finite and
    well conditioned however saturated the outputs are."""
    output, loss = pairing.split("+")
    case = huge_logit_case(output, loss, 4 if output == "softmax" else 1, dtype, global_seed)
    trace = traces_agree(case, repro)["scratch"]
    assert np.max(np.abs(trace["Z2"])) > 0.99e4
    assert_saturated(trace["A2"])
    assert trace["loss"] > 100, "the confidently wrong rows should cost about |logit| each"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_mse_through_a_saturated_output(output, dtype, global_seed):
    """MSE on an output saturated by logits of ±1e4: dZ_L = g′(Z_L)·dA_L, and g′ is exactly 0 where
    A is exactly 0 or 1, so dZ_L is nothing but what is left of a few e^{−|Z|} — values whose
    relative rounding is |Z|·ε (exp of a rounded logit), and which TensorFlow's float32 softmax does
    not even produce (it returns 1 − 2⁻²⁴ for a saturated row: dZ ≈ 2e-9 where NumPy and torch give
    4e-30). So dZ_L is zero to working precision and is compared as such, max|ΔdZ_L| ≤ 4ε·max|dA_L|;
    the gradients below it are not compared here (the other tests cover them). The forward values,
    the loss and dA_L are held to the table."""
    case = huge_logit_case(output, "mse", 4 if output == "softmax" else 1, dtype, global_seed)
    traces = {name: case.backend(name).trace(case.x, case.targets) for name in BACKENDS}
    for name, trace in traces.items():
        assert not non_finite(trace), f"{name}: non-finite {non_finite(trace)}"
    assert_saturated(traces["scratch"]["A2"])
    well_defined = ("Z1", "A1", "Z2", "A2", "loss", "dA2")
    eps = float(np.finfo(dtype).eps)
    for actual, desired in PAIRS:
        got, want = traces[actual], traces[desired]
        bad = [c.describe() for c in compare_traces({k: got[k] for k in well_defined},
                                                    {k: want[k] for k in well_defined}, dtype) if not c.ok]
        assert not bad, f"{actual} vs {desired}: {bad}"
        gap = float(np.max(np.abs(got["dZ2"].astype(np.float64) - want["dZ2"])))
        scale = float(np.max(np.abs(want["dA2"])))
        assert gap <= 4 * eps * scale, f"{actual} vs {desired}: max|ΔdZ2| {gap:.2e} > 4ε·max|dA2|"


# --------------------------------------------------------------------------- saturated sigmoids


@pytest.mark.parametrize("dtype", DTYPES)
def test_saturated_sigmoid_hidden_layer(dtype, global_seed, repro):
    """Every unit of layer 1 has pre-activations spanning exactly [−200, 200] over the batch, so
    its sigmoids reach exactly 1 and below 1e-15 (0 in float32), where g′ = A(1 − A) is exactly 0
    or underflows; the gradient still reaches layer 1 through its unsaturated rows."""
    spec = ModelSpec((6, 8, 8, 3), hidden_activation="sigmoid", init="glorot_uniform", dtype=dtype,
                     seed=global_seed)
    case = make_case(spec, 16, global_seed)
    z1 = MLP(spec, case.weights, case.biases).forward(case.x).z[0].astype(np.float64)      # (16, 8)
    alpha = 400.0 / np.ptp(z1, axis=0)                                                    # (8,)
    weights = [case.weights[0].astype(np.float64) * alpha[:, None], *case.weights[1:]]
    biases = [alpha * case.biases[0] - 200.0 - alpha * z1.min(axis=0), *case.biases[1:]]
    case = with_parameters(case, weights, biases)
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
    torch and TensorFlow take g′(0) = 0 for ReLU and the slope for leaky ReLU: its dZ is exactly 0
    (slope·dA) although gradient reaches it through the next layer. This is the only place where
    a ReLU′ written with ≥ instead of > shows."""
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
