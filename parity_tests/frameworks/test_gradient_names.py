"""Every backend names a gradient after its tensor's declared name alone, ``d<name><l>``
(``scratch.tensor_specs.gradient_name``): a BatchNorm's and a LayerNorm's γ and β trace as
dgamma<l>, dbeta<l> — never as the dW<l>, db<l> of a kernel and bias — in the engine and in each
twin's whole-model trace and one-layer pass, and parity compares them under those names."""

from __future__ import annotations

import numpy as np
import pytest

from judge.parity import compare_traces, localize
from scratch import ModelSpec
from scratch.layer_specs import BatchNormSpec, Conv2DSpec, DenseSpec, FlattenSpec, LayerNormSpec
from scratch.model import Network
from twins.backends import available_backends, make_backend

TWINS = [name for name in available_backends() if name != "scratch"]
ROWS = 4


def norm_spec(variance: str = "unbiased") -> ModelSpec:
    """conv → BatchNorm (l = 2) → flatten → dense → LayerNorm (l = 5) → dense, in float64
    (Keras keeps only the biased running variance)."""
    layers = (Conv2DSpec(3, 3, activation="identity"),
              BatchNormSpec(running_variance=variance, activation="relu"), FlattenSpec(),
              DenseSpec(6, "identity"), LayerNormSpec(activation="tanh"), DenseSpec(3, "softmax"))
    return ModelSpec(inputs=(2, 5, 5), layers=layers, loss="cce", init="glorot_uniform", seed=7,
                     dtype="float64")


def case(twin: str = "torch"):
    spec = norm_spec("biased" if twin == "keras" else "unbiased")
    start = Network(spec)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((ROWS, *spec.input_shape))
    return spec, start, x, start.targets(rng.integers(0, 3, ROWS))


EXPECTED = {"dW1", "db1", "dgamma2", "dbeta2", "dW4", "db4", "dgamma5", "dbeta5", "dW6", "db6"}
OLD = {"dW2", "db2", "dW5", "db5"}                 # what γ and β traced as before issue 19


def gradient_keys(trace: dict) -> set[str]:
    return {key for key in trace if key.startswith("d") and key[1] not in "ZA"}


def test_the_engine_names_gamma_and_beta_by_their_declared_names():
    spec, start, x, targets = case()
    assert spec.gradient_names == (("dW1", "db1"), ("dgamma2", "dbeta2"), ("dW4", "db4"),
                                   ("dgamma5", "dbeta5"), ("dW6", "db6"))
    grads = start.backward(start.forward(x), targets)
    assert gradient_keys(grads.named()) == EXPECTED
    np.testing.assert_array_equal(grads.named()["dgamma2"], grads.dp[1][0])
    np.testing.assert_array_equal(grads.named()["dbeta5"], grads.dp[4][1])
    passed = start.layer_pass(2, start.forward(x).a[0], np.ones((ROWS, 3, 3, 3)))
    assert {"dgamma", "dbeta"} <= set(passed) and not {"dW", "db"} & set(passed)


@pytest.mark.parametrize("name", TWINS)
def test_each_twin_traces_gamma_and_beta_as_dgamma_dbeta(name):
    spec, start, x, targets = case(name)
    twin = make_backend(name, spec, tensors=start.tensors)
    reference = make_backend("scratch", spec, tensors=start.tensors)
    got, want = twin.trace(x, targets), reference.trace(x, targets)
    assert gradient_keys(got) == EXPECTED and not OLD & set(got), sorted(gradient_keys(got))
    results = compare_traces(got, want, "float64")
    compared = {c.name for c in results}
    assert EXPECTED <= compared and all(c.ok for c in results), [c.describe() for c in results if not c.ok]
    for layer in (2, 5):                                 # one layer's pass: its gradients by stem
        passed = twin.layer_trace(layer, want[f"A{layer - 1}"], want[f"dA{layer}"])
        assert {"dgamma", "dbeta"} <= set(passed) and not {"dW", "db"} & set(passed), sorted(passed)
    located = {c.name for c in localize(twin, reference, want, x, targets, None, "float64")}
    assert {"dgamma2", "dbeta2", "dgamma5", "dbeta5"} <= located and not OLD & located
