"""Each optimizer, in each convention, against the formulas of ``scratch/optimizers.py``.

The expected values are worked out here in plain scalar Python, one parameter at a time,
straight from the module docstring (not by calling the engine), for three steps of a fixed
gradient sequence. Hyperparameters are deliberately unlike each other and unlike the defaults
(and ε is large) so that a swapped hyperparameter or a misplaced ε shows far above rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scratch.optimizers import make_optimizer
from scratch.spec import CONVENTIONS, OPTIMIZERS, OptimizerSpec

THETA0 = [0.5, -1.25, 2.0]
GRADS = [[0.1, -0.3, 0.7], [0.25, 0.05, -0.4], [-0.15, -0.2, 0.9]]
LR, MU, RHO, B1, B2, EPS = 0.05, 0.6, 0.8, 0.7, 0.95, 1e-3
# The docstring's Keras precision quirk: Keras's SGD momentum μ and Adam's β₁ᵗ, β₂ᵗ use the
# hyperparameters rounded to float32 first, even for float64 weights.
MU_K, B1_K, B2_K = (float(np.float32(value)) for value in (MU, B1, B2))
RTOL = 1e-14

SPECS = {
    "sgd": dict(name="sgd", learning_rate=LR),
    "momentum": dict(name="momentum", learning_rate=LR, momentum=MU),
    "rmsprop": dict(name="rmsprop", learning_rate=LR, rho=RHO, epsilon=EPS),
    "rmsprop_momentum": dict(name="rmsprop", learning_rate=LR, rho=RHO, epsilon=EPS, momentum=MU),
    "adam": dict(name="adam", learning_rate=LR, beta1=B1, beta2=B2, epsilon=EPS),
}


def by_hand(kind: str, convention: str) -> list[list[float]]:
    """θ after each of the three steps, per the docstring formulas, one scalar at a time."""
    history = []
    theta = list(THETA0)
    v = [0.0] * 3
    s = [0.0] * 3
    m = [0.0] * 3
    for t, grad in enumerate(GRADS, start=1):
        for i, g in enumerate(grad):
            if kind == "sgd":
                theta[i] = theta[i] - LR * g
            elif kind == "momentum" and convention in ("torch", "optax"):      # optax: torch's form
                v[i] = g if t == 1 else MU * v[i] + g
                theta[i] = theta[i] - LR * v[i]
            elif kind == "momentum":
                v[i] = MU_K * v[i] - LR * g
                theta[i] = theta[i] + v[i]
            elif kind.startswith("rmsprop"):
                mu = MU if kind == "rmsprop_momentum" else 0.0
                s[i] = RHO * s[i] + (1 - RHO) * g * g
                if convention == "torch":
                    d = math.sqrt(s[i]) + EPS
                    if mu == 0:
                        theta[i] = theta[i] - LR * g / d
                    else:
                        v[i] = mu * v[i] + g / d
                        theta[i] = theta[i] - LR * v[i]
                elif convention == "keras":
                    delta = LR * g / math.sqrt(s[i] + EPS)
                    if mu == 0:
                        theta[i] = theta[i] - delta
                    else:
                        v[i] = mu * v[i] + delta
                        theta[i] = theta[i] - v[i]
                else:                                   # optax: ε in the root, η before the trace
                    u = -LR * g / math.sqrt(s[i] + EPS)
                    if mu == 0:
                        theta[i] = theta[i] + u
                    else:
                        v[i] = u + mu * v[i]
                        theta[i] = theta[i] + v[i]
            elif kind == "adam":
                m[i] = m[i] + (1 - B1) * (g - m[i])
                s[i] = B2 * s[i] + (1 - B2) * g * g
                if convention == "torch":
                    theta[i] = theta[i] - (LR / (1 - B1 ** t)) * m[i] / (
                        math.sqrt(s[i]) / math.sqrt(1 - B2 ** t) + EPS)
                elif convention == "optax":                 # m̂/(√ŝ + ε), ε outside the root
                    theta[i] = theta[i] - LR * (m[i] / (1 - B1 ** t)) / (
                        math.sqrt(s[i] / (1 - B2 ** t)) + EPS)
                else:
                    alpha = LR * math.sqrt(1 - B2_K ** t) / (1 - B1_K ** t)
                    theta[i] = theta[i] - alpha * m[i] / (math.sqrt(s[i]) + EPS)
        history.append(list(theta))
    return history


def run_engine(spec: OptimizerSpec, dtype=np.float64, grads=GRADS, theta0=THETA0):
    """θ after each step of the engine's optimizer, plus the optimizer (for its state)."""
    optimizer = make_optimizer(spec)
    theta = np.array(theta0, dtype=dtype)
    history = []
    for grad in grads:
        optimizer.step([theta], [np.array(grad, dtype=dtype)])
        history.append(theta.copy())
    return history, optimizer


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("kind", list(SPECS))
def test_three_steps_match_hand_computation(kind, convention):
    spec = OptimizerSpec(convention=convention, **SPECS[kind])
    engine, _ = run_engine(spec)
    for step, (actual, desired) in enumerate(zip(engine, by_hand(kind, convention), strict=True), start=1):
        np.testing.assert_allclose(actual, desired, rtol=RTOL, atol=0,
                                   err_msg=f"{kind}/{convention} step {step}")


def test_hand_computations_differ_between_conventions():
    """Guards the reference itself: with these hyperparameters every pair of conventions
    (except plain SGD, which is one formula) gives visibly different θ after three steps."""
    for kind in ("rmsprop", "rmsprop_momentum", "adam"):
        torch, keras = by_hand(kind, "torch")[-1], by_hand(kind, "keras")[-1]
        assert max(abs(a - b) for a, b in zip(torch, keras, strict=True)) > 1e-6, kind


def test_optax_convention_is_torchs_adam_and_keras_rmsprop():
    """optax's defaults pair torch's Adam (ε outside the root) with Keras's RMSprop (ε inside):
    by hand, optax equals each of those to rounding and differs from the other far above it."""
    def gap(kind, a, b):
        return max(abs(x - y) for x, y in zip(by_hand(kind, a)[-1], by_hand(kind, b)[-1], strict=True))

    assert gap("adam", "optax", "torch") < 1e-15 < 1e-6 < gap("adam", "optax", "keras")
    for kind in ("rmsprop", "rmsprop_momentum"):
        assert gap(kind, "optax", "keras") < 1e-15 < 1e-6 < gap(kind, "optax", "torch"), kind


def test_optax_rmsprop_momentum_buffer_is_minus_keras():
    """Same trajectory as Keras, but optax's momentum trace runs after the learning rate with the
    update's sign: v_optax = −v_keras (what a state hand-off between the two must know)."""
    spec = dict(name="rmsprop", learning_rate=LR, rho=RHO, epsilon=EPS, momentum=MU)
    _, optax_opt = run_engine(OptimizerSpec(convention="optax", **spec))
    _, keras_opt = run_engine(OptimizerSpec(convention="keras", **spec))
    np.testing.assert_allclose(optax_opt.state[0]["v"], -keras_opt.state[0]["v"], rtol=1e-14, atol=0)
    assert np.all(keras_opt.state[0]["v"] != 0)


# For comparing the two conventions: hyperparameters exact in float32, so that Keras's float32
# rounding of μ, β₁, β₂ (see MU_K above) plays no part.
B1_X, B2_X, MU_X = 0.75, 0.96875, 0.875


def adam(convention: str, epsilon: float) -> OptimizerSpec:
    return OptimizerSpec(name="adam", convention=convention, learning_rate=LR, beta1=B1_X, beta2=B2_X,
                         epsilon=epsilon)


def test_torch_and_keras_adam_differ_by_epsilon_placement():
    torch_theta, _ = run_engine(adam("torch", EPS))
    keras_theta, _ = run_engine(adam("keras", EPS))
    for step, (a, b) in enumerate(zip(torch_theta, keras_theta, strict=True), start=1):
        assert np.all(np.abs(a - b) > 1e-6), f"step {step}: torch and keras Adam coincide: {a} vs {b}"

    # α·m/(√s + ε) = (η/(1 − β₁ᵗ))·m/(√s/√(1 − β₂ᵗ) + ε/√(1 − β₂ᵗ)): Keras's ε acts as
    # ε/√(1 − β₂ᵗ) in torch's formula, so after one step torch with that ε equals Keras.
    torch_one, _ = run_engine(adam("torch", EPS / math.sqrt(1 - B2_X)), grads=GRADS[:1])
    keras_one, _ = run_engine(adam("keras", EPS), grads=GRADS[:1])
    np.testing.assert_allclose(torch_one[0], keras_one[0], rtol=1e-14, atol=0)


def test_torch_and_keras_adam_coincide_for_tiny_epsilon():
    """With ε = 1e-30 (nonzero gradients, so √s ≫ ε) the two formulas agree to rounding."""
    torch_theta, _ = run_engine(adam("torch", 1e-30))
    keras_theta, _ = run_engine(adam("keras", 1e-30))
    for a, b in zip(torch_theta, keras_theta, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)


def test_torch_and_keras_momentum_agree(rng):
    """v_keras = −η·v_torch: the same trajectory in exact arithmetic, ~1e-15 apart in float64."""
    grads = rng.normal(0.0, 1.0, (20, 6)).tolist()
    theta0 = rng.normal(0.0, 1.0, 6).tolist()
    specs = [OptimizerSpec(name="momentum", convention=c, learning_rate=0.03, momentum=MU_X)
             for c in ("torch", "keras")]
    torch_theta, keras_theta = (run_engine(spec, grads=grads, theta0=theta0)[0] for spec in specs)
    for a, b in zip(torch_theta, keras_theta, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("kind", list(SPECS))
def test_float32_stays_float32(kind, convention):
    spec = OptimizerSpec(convention=convention, **SPECS[kind])
    engine32, optimizer = run_engine(spec, dtype=np.float32)
    engine64, _ = run_engine(spec)
    for state in optimizer.state:
        for key, value in state.items():
            assert value.dtype == np.float32, f"state {key} is {value.dtype}"
    for single, double in zip(engine32, engine64, strict=True):
        assert single.dtype == np.float32
        np.testing.assert_allclose(single, double, rtol=1e-5, atol=1e-6)


def test_every_optimizer_is_covered():
    assert {spec["name"] for spec in SPECS.values()} == set(OPTIMIZERS)


def test_updates_in_place_and_counts_steps():
    spec = OptimizerSpec(name="adam", learning_rate=LR, beta1=B1, beta2=B2, epsilon=EPS)
    optimizer = make_optimizer(spec)
    theta = np.array(THETA0)
    alias = theta
    for grad in GRADS:
        optimizer.step([theta], [np.array(grad)])
    assert alias is theta and optimizer.t == len(GRADS)
    np.testing.assert_allclose(theta, by_hand("adam", "torch")[-1], rtol=RTOL, atol=0)
