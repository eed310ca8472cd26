"""The initializers draw what the table in ``scratch.initializers`` says.

Moments are checked on a 400×300 layer (fan_in = 300, fan_out = 400: 120 000 weights, 400
biases). A sample of n values with variance σ² and kurtosis κ = μ₄/σ⁴ has standard errors
SE(mean) = σ/√n and SE(variance) ≈ σ²·√((κ − 1)/n) (κ = 3 for a normal, 9/5 for a uniform);
every moment must lie within ``N_SE`` = 5 standard errors, so a correct initializer fails a
check with probability < 1e-6 for any seed. Uniform draws must also lie inside their bounds
and reach to within 20·width/n of each end (probability of missing an end: e^{−20}).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scratch import spec as spec_module
from scratch.errors import SpecError
from scratch.initializers import INITIALIZERS, initialize, initialize_layers

FAN_IN, FAN_OUT = 300, 400
N_SE = 5


def uniform(limit):
    return ("uniform", limit)


def normal(std):
    return ("normal", std)


ZERO = ("zero", None)

def expected(fan_in: int, fan_out: int) -> dict:
    """The module docstring's table, written out: name -> (W distribution, b distribution)."""
    return {
        "uniform_half": (uniform(0.5), uniform(0.5)),
        "small_normal": (normal(0.01), ZERO),
        "he_normal": (normal(math.sqrt(2 / fan_in)), ZERO),
        "lecun_normal": (normal(math.sqrt(1 / fan_in)), normal(1.0)),
        "glorot_uniform": (uniform(math.sqrt(6 / (fan_in + fan_out))), ZERO),
        "torch_default": (uniform(1 / math.sqrt(fan_in)), uniform(1 / math.sqrt(fan_in))),
    }


EXPECTED = expected(FAN_IN, FAN_OUT)


def assert_distribution(name: str, sample: np.ndarray, expected) -> None:
    kind, scale = expected
    if kind == "zero":
        assert np.all(sample == 0), f"{name}: expected exact zeros"
        return
    n = sample.size
    if kind == "uniform":
        variance, kurtosis = (2 * scale) ** 2 / 12, 9 / 5
        assert np.all((sample >= -scale) & (sample <= scale)), f"{name}: value outside ±{scale}"
        reach = 20 * 2 * scale / n
        assert sample.min() < -scale + reach and sample.max() > scale - reach, \
            f"{name}: range [{sample.min()}, {sample.max()}] does not fill ±{scale}"
    else:
        variance, kurtosis = scale ** 2, 3.0
    se_mean = math.sqrt(variance / n)
    se_var = variance * math.sqrt((kurtosis - 1) / n)
    np.testing.assert_allclose(sample.mean(), 0.0, rtol=0, atol=N_SE * se_mean, err_msg=f"{name} mean")
    np.testing.assert_allclose(sample.var(), variance, rtol=0, atol=N_SE * se_var, err_msg=f"{name} variance")


def test_registry_matches_spec_choices():
    assert set(INITIALIZERS) == set(spec_module.INITIALIZERS)
    assert set(EXPECTED) == set(INITIALIZERS)


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_moments_and_bounds(name, global_seed):
    w, b = INITIALIZERS[name](np.random.default_rng(global_seed), FAN_IN, FAN_OUT, (FAN_OUT, FAN_IN))
    assert w.shape == (FAN_OUT, FAN_IN) and b.shape == (FAN_OUT,)
    assert w.dtype == np.float64 and b.dtype == np.float64
    w_expected, b_expected = EXPECTED[name]
    assert_distribution(f"{name} W", w, w_expected)
    assert_distribution(f"{name} b", b, b_expected)


# A conv kernel (O, C, k_h, k_w) = (48, 16, 3, 5), non-square: 11 520 weights, 48 biases. Torch
# (``_calculate_fan_in_and_fan_out``) and Keras (``compute_fans``) count fan_in = C·k_h·k_w = 240
# and fan_out = O·k_h·k_w = 720 — not C or O alone, nor k_h² or k_w².
CONV_IN, CONV_OUT, KERNEL = 16, 48, (3, 5)


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_moments_of_a_non_square_conv_kernel(name, global_seed):
    from scratch.layer_specs import Conv2DSpec, DenseSpec, FlattenSpec

    spec = spec_module.ModelSpec(inputs=(CONV_IN, 5, 7), layers=(Conv2DSpec(CONV_OUT, KERNEL), FlattenSpec(),
                                                                  DenseSpec(3, "softmax")),
                                 init=name, seed=global_seed)
    weights, biases = initialize_layers(spec, np.float64)
    assert weights[0].shape == (CONV_OUT, CONV_IN, *KERNEL) and biases[0].shape == (CONV_OUT,)
    receptive_field = KERNEL[0] * KERNEL[1]
    w_expected, b_expected = expected(CONV_IN * receptive_field, CONV_OUT * receptive_field)[name]
    assert_distribution(f"{name} conv W", weights[0], w_expected)
    assert_distribution(f"{name} conv b", biases[0], b_expected)


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_initialize_draws_layers_in_order_from_one_generator(name, global_seed):
    """initialize() = the per-layer draws (W then b) from one default_rng(seed), in layer order."""
    sizes = (7, 5, 3, 2)
    weights, biases = initialize(name, sizes, global_seed, np.float64)
    rng = np.random.default_rng(global_seed)
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w, b = INITIALIZERS[name](rng, fan_in, fan_out, (fan_out, fan_in))
        np.testing.assert_array_equal(weights[layer], w)
        np.testing.assert_array_equal(biases[layer], b)
        assert weights[layer].shape == (fan_out, fan_in) and biases[layer].shape == (fan_out,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_same_seed_same_arrays(name, dtype, global_seed):
    first = initialize(name, (6, 4, 3), global_seed, dtype)
    second = initialize(name, (6, 4, 3), global_seed, dtype)
    other = initialize(name, (6, 4, 3), global_seed + 1, dtype)
    for a, b in zip(first[0] + first[1], second[0] + second[1], strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0][0], other[0][0]), "a different seed gave the same W1"


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_float32_is_float64_rounded(name, global_seed):
    w32, b32 = initialize(name, (6, 4, 3), global_seed, np.float32)
    w64, b64 = initialize(name, (6, 4, 3), global_seed, np.float64)
    for single, double in zip(w32 + b32, w64 + b64, strict=True):
        assert single.dtype == np.float32
        np.testing.assert_array_equal(single, double.astype(np.float32))


def test_unknown_name_raises_spec_error():
    with pytest.raises(SpecError, match="unknown initializer 'xavier'") as info:
        initialize("xavier", (3, 2), 0, np.float64)
    assert type(info.value) is SpecError
