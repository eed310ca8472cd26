"""Forward values and every gradient: each framework against the NumPy engine and each other.

One helper (``judge.parity.check_parity``) compares Z_l, A_l, the loss, then dA_l, dZ_l,
dW_l, db_l of every layer, shape → dtype → values, against the one tolerance table.
"""

from __future__ import annotations

import pytest
from cases import PAIR_IDS, PAIRS, make_case, pair_params
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from judge.parity import check_parity
from scratch.errors import BackendError
from scratch.spec import HIDDEN_ACTIVATIONS, LOSS_OUTPUTS, ModelSpec, OptimizerSpec

# TensorFlow's LeakyRelu keeps its slope in float32 (see twins.keras_backend): use an exact one.
SLOPE = 2.0 ** -5
OUTPUT_LOSS = [(out, loss) for loss, outs in LOSS_OUTPUTS.items() for out in outs]
DTYPES = ["float64", "float32"]
GELUS = ("gelu", "gelu_tanh")
# Every output and loss with each piecewise and classic activation; GELU's two forms with the
# softmax + CCE output (their own test below): the output path is the same code for any hidden g.
CLASSIC = [hidden for hidden in HIDDEN_ACTIVATIONS if hidden not in GELUS]
# The seeds' nets (784 inputs, 3 variants × 4 nets) in float32 run with -m slow: every pairing
# and the random architectures still check float32 by default, on the same twins' code.
SEED_DTYPES = ["float64", pytest.param("float32", marks=pytest.mark.slow)]


def _check(case, pair, repro):
    actual, desired = pair
    results = check_parity(case.backend(actual), case.backend(desired), case.x, case.targets, case.masks,
                           repro=repro)
    assert results and all(r.ok for r in results)


@pytest.mark.parametrize("pair", pair_params())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output,loss", OUTPUT_LOSS, ids=[f"{o}+{lo}" for o, lo in OUTPUT_LOSS])
@pytest.mark.parametrize("hidden", CLASSIC)
def test_every_pairing(pair, dtype, output, loss, hidden, global_seed, repro):
    spec = ModelSpec((6, 5, 4, 3), hidden_activation=hidden, output_activation=output, loss=loss,
                     init="torch_default", dtype=dtype, seed=global_seed, leaky_relu_slope=SLOPE)
    _check(make_case(spec, 16, global_seed), pair, repro)


def keras_refuses(spec: ModelSpec, pair) -> bool:
    """TensorFlow's gelu rounds its constant to float32 even for float64 tensors: the Keras twin
    refuses a float64 GELU (twins.keras_layers.activation) instead of hiding a ~1e-9 error."""
    return "keras" in pair and spec.dtype == "float64" and spec.hidden_activation in GELUS


@pytest.mark.parametrize("pair", pair_params())
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", GELUS)
def test_gelu_pairings(pair, dtype, hidden, global_seed, repro):
    spec = ModelSpec((6, 5, 4, 3), hidden_activation=hidden, init="torch_default", dtype=dtype,
                     seed=global_seed)
    case = make_case(spec, 16, global_seed)
    if keras_refuses(spec, pair):
        with pytest.raises(BackendError, match="casts its constant .* to float32"):
            case.backend("keras")
        return
    _check(case, pair, repro)


SEED_ARCHITECTURES = {
    "784-64-32-10": dict(layer_sizes=(784, 64, 32, 10), init="lecun_normal"),
    "784-10-10": dict(layer_sizes=(784, 10, 10), init="uniform_half"),
    "784-128-64-32-10": dict(layer_sizes=(784, 128, 64, 32, 10), init="he_normal"),
    "2-4-1": dict(layer_sizes=(2, 4, 1), hidden_activation="tanh", output_activation="sigmoid",
                  loss="bce", init="uniform_half"),
}
# λ/2 must be exact in float32 for Keras (see twins.keras_backend._regularizer).
VARIANTS = {"plain": {}, "l2": dict(l2=2.0 ** -6), "dropout": dict(dropout=0.25)}


@pytest.mark.parametrize("pair", pair_params())
@pytest.mark.parametrize("dtype", SEED_DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", SEED_ARCHITECTURES)
def test_seed_architectures(pair, dtype, variant, arch, global_seed, repro):
    spec = ModelSpec(dtype=dtype, seed=global_seed, **SEED_ARCHITECTURES[arch], **VARIANTS[variant])
    _check(make_case(spec, 32, global_seed), pair, repro)


@st.composite
def random_specs(draw):
    """Random depth 1–4, widths 1–9 (float64) or 2–9 (float32), any pairing, with or without dropout.

    Why float32 hidden layers have ≥ 2 units: the 100-seed sweep found (seed 34) a (2, 5, 1, 2)
    net fed one sample whose lone Z2 = A1·W2ᵀ + b2 cancels to ~1/250 of its terms. Every layer
    agreed in isolation; float32 rounding of A1 (~1e-7), amplified 250× by the cancellation, gave
    Z2 a normwise relative error of 7.9e-5 > 1e-5. That measures the cancellation, not the
    backends, and a normwise bound cannot tell the two apart when the whole quantity is one
    cancelled scalar; with ≥ 2 units (and ≥ 2 samples, see the test) the scale is set by more
    than one sum. float64 keeps widths of 1: its bound leaves 1000× room above rounding.
    """
    depth = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from(DTYPES))
    narrowest = 1 if dtype == "float64" else 2
    output, loss = draw(st.sampled_from(OUTPUT_LOSS))
    n_out = draw(st.integers(2 if output == "softmax" else 1, 5))
    sizes = (draw(st.integers(1, 9)), *[draw(st.integers(narrowest, 9)) for _ in range(depth - 1)], n_out)
    return ModelSpec(sizes, hidden_activation=draw(st.sampled_from(HIDDEN_ACTIVATIONS)),
                     output_activation=output, loss=loss,
                     init=draw(st.sampled_from(["torch_default", "glorot_uniform", "lecun_normal"])),
                     dtype=dtype,
                     dropout=draw(st.sampled_from([0.0, 0.5])) if depth > 1 else 0.0,
                     leaky_relu_slope=SLOPE, optimizer=OptimizerSpec(), seed=draw(st.integers(0, 2**16)))


# Examples per pair. Every new shape compiles the JAX twin's trace anew (~0.7 s; every other
# JAX test reuses a few shapes), so its pairs draw 5 (from the same seeded generator).
RANDOM_EXAMPLES = {pair: 5 if "jax" in pair else 15 for pair in PAIRS}


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_random_architectures(pair, repro):
    @settings(max_examples=RANDOM_EXAMPLES[pair], deadline=None)
    @given(spec=random_specs(), n_samples=st.integers(1, 12))
    def check(spec, n_samples):
        if spec.dtype == "float32":
            n_samples = max(n_samples, 2)              # see random_specs
        assume(not keras_refuses(spec, pair))         # tested by test_gelu_pairings
        _check(make_case(spec, n_samples, spec.seed), pair, repro)

    check()
