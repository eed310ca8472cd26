"""Central finite differences check every gradient ``MLP.backward`` returns.

For a scalar loss L(θ) the fourth-order central difference

    ∂L/∂θ_i ≈ [L(θ − 2h·e_i) − 8·L(θ − h·e_i) + 8·L(θ + h·e_i) − L(θ + 2h·e_i)] / 12h

has error O(h⁴·L⁽⁵⁾) + O(ε_mach·|L| / h). With h = 1e-4 in float64 the first is ~1e-16 and
the second ~3e-12, far below the tolerance even for entries of size 1e-4 (deep sigmoid nets):
relative error max|num − ana| / max(max|num|, tiny) ≤ 1e-6. (The plain two-point difference
with h = 1e-6 leaves a rounding error of ~2e-10, which is 1e-6 relative to such entries.)

Checked, for every hidden activation × every (output activation, loss) pair that
``scratch.spec.LOSS_OUTPUTS`` allows × depths 1–4, with and without L2 and dropout:
dW_l, db_l (perturb the parameter, rerun the forward pass) and the intermediates dZ_l and dA_l
(perturb the intermediate itself and rerun only the layers after it, see :func:`loss_from`).

ReLU kinks: inputs and parameters are redrawn until every hidden pre-activation satisfies
|Z| > ``KINK_MARGIN`` = 1e-2. Inputs and weights are O(1) and layers are ≤ 6 wide, so a
perturbation of 2h = 2e-4 moves any Z by less than ~2e-3 and never crosses a kink; the loss is
then smooth on the stencil and the difference quotient converges as above.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratch.batching import dropout_masks
from scratch.model import MLP
from scratch.spec import HIDDEN_ACTIVATIONS, LOSS_OUTPUTS, ModelSpec

STEP = 1e-4
RTOL = 1e-6
KINK_MARGIN = 1e-2
BATCH = 5
WIDTHS = (3, 4, 6, 5)  # n_0, then hidden widths taken in order; all different, to catch transposes
N_OUT = 3

PAIRS = [(out, loss) for loss, outs in LOSS_OUTPUTS.items() for out in outs]
CASES = [pytest.param(None, out, loss, 1, id=f"depth1-{loss}+{out}") for out, loss in PAIRS]
CASES += [pytest.param(hidden, out, loss, depth, id=f"depth{depth}-{hidden}-{loss}+{out}")
          for depth in (2, 3, 4) for hidden in HIDDEN_ACTIVATIONS for out, loss in PAIRS]


def layer_sizes(depth: int) -> tuple[int, ...]:
    return (*WIDTHS[:depth], N_OUT)


def make_targets(loss: str, rng: np.random.Generator) -> np.ndarray:
    """One-hot rows for CCE (its fused gradient needs rows summing to 1), soft 0..1 targets
    for BCE, arbitrary reals for MSE."""
    if loss == "cce":
        return np.eye(N_OUT)[rng.integers(0, N_OUT, BATCH)]
    if loss == "bce":
        return rng.uniform(0.0, 1.0, (BATCH, N_OUT))
    return rng.normal(0.0, 1.0, (BATCH, N_OUT))


def make_problem(spec: ModelSpec, rng: np.random.Generator, masks=None):
    """(model, x, y) with every hidden |Z| > KINK_MARGIN (redrawn until it holds)."""
    sizes = spec.layer_sizes
    for _ in range(200):
        weights = [rng.uniform(-1.5, 1.5, (n, m)) / np.sqrt(m)
                   for m, n in zip(sizes[:-1], sizes[1:], strict=True)]
        biases = [rng.uniform(-0.5, 0.5, n) for n in sizes[1:]]
        x = rng.normal(0.0, 1.0, (BATCH, sizes[0]))
        model = MLP(spec, weights, biases)
        forward = model.forward(x, masks)
        if all(np.min(np.abs(z)) > KINK_MARGIN for z in forward.z[:-1]):
            return model, x, make_targets(spec.loss, rng)
    raise AssertionError("could not draw a problem away from the ReLU kinks")


def loss_from(model: MLP, forward, y, layer: int, *, z=None, a=None) -> float:
    """The loss with the forward pass restarted at layer ``layer`` (1-based) from a given
    Z_layer (``z``) or A_layer (``a``, i.e. after dropout).

    Earlier layers are irrelevant; later layers use the model's current weights and the
    forward pass's dropout masks. The L2 penalty is added as ``MLP.loss`` does.
    """
    n_layers = model.spec.n_layers
    index = layer - 1                                          # 0-based index of the given layer
    if a is not None:
        if layer == n_layers:                                  # only MSE reads A_L; Z_L is unchanged
            z = forward.z[-1]
            index = n_layers
        else:
            index += 1
            z = a @ model.weights[index].T + model.biases[index]
    while index < n_layers:
        last = index == n_layers - 1
        h = model.activations[index].forward(z)
        a = h if forward.masks is None or last or forward.masks[index] is None else h * forward.masks[index]
        index += 1
        if not last:
            z = a @ model.weights[index].T + model.biases[index]
    value = model.loss_fn.value(z, a, y)
    return value + model.l2_penalty() if model.spec.l2 else value


def numerical_gradient(f, array: np.ndarray) -> np.ndarray:
    """Fourth-order central differences of the scalar f() with respect to every entry of
    ``array``, which is perturbed in place and restored. Differences are taken first, so a
    loss that does not move gives exactly 0 (not a rounding residue)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        values = []
        for offset in (-2, -1, 1, 2):
            array[index] = saved + offset * STEP
            values.append(f())
        array[index] = saved
        grad[index] = (8 * (values[2] - values[1]) - (values[3] - values[0])) / (12 * STEP)
    return grad


def assert_gradient(name: str, numerical: np.ndarray, analytic: np.ndarray) -> None:
    assert analytic.shape == numerical.shape, f"{name}: shape {analytic.shape}, expected {numerical.shape}"
    assert analytic.dtype == np.float64, f"{name}: dtype {analytic.dtype}"
    scale = max(np.max(np.abs(numerical)), 1e-12)
    error = np.max(np.abs(numerical - analytic)) / scale
    assert error <= RTOL, f"{name}: relative error {error:.2e} > {RTOL:.0e}\nnum={numerical}\nana={analytic}"


def check_all_gradients(model: MLP, x: np.ndarray, y: np.ndarray, masks=None) -> None:
    """Compare every dW_l, db_l, dZ_l, dA_l of ``model.backward`` with central differences."""
    forward = model.forward(x, masks)
    grads = model.backward(forward, y)
    n_layers = model.spec.n_layers
    expected_da = set(range(1, n_layers + 1 if model.spec.loss == "mse" else n_layers))
    assert set(grads.da) == expected_da, f"dA layers {sorted(grads.da)}, expected {sorted(expected_da)}"

    for layer in range(1, n_layers + 1):
        a_prev = x if layer == 1 else forward.a[layer - 2]

        def from_params(layer=layer, a_prev=a_prev):
            z = a_prev @ model.weights[layer - 1].T + model.biases[layer - 1]
            return loss_from(model, forward, y, layer, z=z)

        assert_gradient(f"dW{layer}", numerical_gradient(from_params, model.weights[layer - 1]),
                        grads.dw[layer - 1])
        assert_gradient(f"db{layer}", numerical_gradient(from_params, model.biases[layer - 1]),
                        grads.db[layer - 1])

        z = forward.z[layer - 1].copy()
        numerical = numerical_gradient(lambda layer=layer, z=z: loss_from(model, forward, y, layer, z=z), z)
        assert_gradient(f"dZ{layer}", numerical, grads.dz[layer - 1])
        if layer in grads.da:
            a = forward.a[layer - 1].copy()
            numerical = numerical_gradient(lambda layer=layer, a=a: loss_from(model, forward, y, layer, a=a),
                                           a)
            assert_gradient(f"dA{layer}", numerical, grads.da[layer])


def test_loss_from_reproduces_model_loss(rng):
    """The helper restarted at any layer from the unperturbed Z_l or A_l gives MLP.loss."""
    spec = ModelSpec((3, 4, 6, 3), hidden_activation="tanh", output_activation="sigmoid", loss="mse",
                     l2=0.1, dropout=0.3)
    masks = dropout_masks(spec, 0, BATCH)
    model, x, y = make_problem(spec, rng, masks)
    forward = model.forward(x, masks)
    expected = model.loss(forward, y)
    for layer in (1, 2, 3):
        np.testing.assert_allclose(loss_from(model, forward, y, layer, z=forward.z[layer - 1]), expected,
                                   rtol=1e-15, atol=0)
        np.testing.assert_allclose(loss_from(model, forward, y, layer, a=forward.a[layer - 1]), expected,
                                   rtol=1e-15, atol=0)


@pytest.mark.parametrize("hidden, out, loss, depth", CASES)
def test_gradients_match_finite_differences(hidden, out, loss, depth, rng):
    spec = ModelSpec(layer_sizes(depth), hidden_activation=hidden or "relu", output_activation=out,
                     loss=loss)
    model, x, y = make_problem(spec, rng)
    check_all_gradients(model, x, y)


@pytest.mark.parametrize("out, loss", [pytest.param(o, lo, id=f"{lo}+{o}") for o, lo in PAIRS])
@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
def test_gradients_with_l2(hidden, out, loss, rng):
    spec = ModelSpec(layer_sizes(3), hidden_activation=hidden, output_activation=out, loss=loss, l2=0.3)
    model, x, y = make_problem(spec, rng)
    check_all_gradients(model, x, y)


@pytest.mark.parametrize("out, loss", [pytest.param(o, lo, id=f"{lo}+{o}") for o, lo in PAIRS])
@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
def test_gradients_with_dropout(hidden, out, loss, rng, global_seed):
    spec = ModelSpec(layer_sizes(4), hidden_activation=hidden, output_activation=out, loss=loss,
                     dropout=0.4, l2=0.05, seed=global_seed)
    masks = dropout_masks(spec, 3, BATCH)
    assert any(np.any(mask == 0) for mask in masks)       # some unit is really dropped
    model, x, y = make_problem(spec, rng, masks)
    check_all_gradients(model, x, y, masks)


def test_leaky_relu_slope_enters_gradient(rng):
    """A non-default slope s: dZ on negative units is s·dA, checked numerically."""
    spec = ModelSpec(layer_sizes(3), hidden_activation="leaky_relu", leaky_relu_slope=0.3,
                     output_activation="softmax", loss="cce")
    model, x, y = make_problem(spec, rng)
    check_all_gradients(model, x, y)
