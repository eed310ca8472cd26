"""Where JAX sends a max-pooling gradient when a window holds its maximum more than once.

The engine (``scratch.layers.pooling``) gives each window's dZ to its FIRST maximum in row-major
order, as torch does. The JAX twin pools with ``lax.reduce_window(…, lax.max, …)``, which JAX
differentiates by ``select_and_scatter_add`` with ``select_prim=ge`` (the jaxpr is asserted
below): a later element replaces the selected one only if strictly greater, i.e. the first
maximum too. Measured on XLA's CPU backend in both dtypes, for disjoint and overlapping windows,
with the layer alone and through the twin's ``layer_trace``: identical to the engine, bit for
bit. Ties are real in the suite: a max pool after ReLU sees windows of zeros.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratch.layer_specs import Conv2DSpec, DenseSpec, FlattenSpec, MaxPool2DSpec
from scratch.layers.pooling import MaxPool2D
from scratch.model import Network
from scratch.spec import ModelSpec

jax = pytest.importorskip("jax")
from jax import lax  # noqa: E402

import twins.jax_backend  # noqa: E402,F401  (enables float64, as the twin does)
from twins.backends import make_backend  # noqa: E402

WINDOWS = {"2x2": (2, 2), "3x3-stride-2": (3, 2)}     # name → (pool, stride); the second overlaps


def tied_inputs(dtype, shape=(2, 3, 9, 8), seed=4):
    """Values in {0, 1, 2}: most windows hold their maximum more than once."""
    return np.random.default_rng(seed).integers(0, 3, shape).astype(dtype)


def integer_gradients(shape, dtype, seed):
    """Upstream gradients of small integers: every sum of them is exact, so overlapping windows
    compare bit for bit whatever order they are added in, and only the routing can differ."""
    return np.random.default_rng(seed).integers(1, 100, shape).astype(dtype)


def jax_max_pool(x, pool, stride):
    return lax.reduce_window(x, -np.inf, lax.max, (1, 1, pool, pool), (1, 1, stride, stride), "VALID")


def last_maximum_gradient(x, dz, pool, stride):
    """The other convention, dZ to the LAST maximum of each window: the control that shows the
    inputs' ties decide the result."""
    flipped = MaxPool2D(pool, stride)
    windows = flipped.windows(x)
    flat = windows.reshape(*windows.shape[:4], -1)
    last = flat.shape[4] - 1 - flat[..., ::-1].argmax(axis=4)
    hit = np.arange(flat.shape[4]) == last[..., None]
    return flipped._scatter(np.where(hit, dz[..., None], 0).reshape(windows.shape).astype(dz.dtype), x.shape)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", WINDOWS)
def test_reduce_window_max_gradient_goes_to_the_first_maximum(name, dtype):
    pool, stride = WINDOWS[name]
    x = tied_inputs(dtype)
    engine = MaxPool2D(pool, stride)
    windows = engine.windows(x).reshape(*engine.forward(x).shape, -1)
    tied = (windows == windows.max(axis=-1, keepdims=True)).sum(axis=-1) > 1
    assert tied.mean() > 0.3                                   # the inputs do tie
    dz = integer_gradients(tied.shape, dtype, 5)
    z, pullback = jax.vjp(lambda x_: jax_max_pool(x_, pool, stride), x)
    (dx,) = pullback(dz)
    np.testing.assert_array_equal(np.asarray(z), engine.forward(x))
    np.testing.assert_array_equal(np.asarray(dx), engine.backward(dz, x))
    assert not np.array_equal(np.asarray(dx), last_maximum_gradient(x, dz, pool, stride))


def test_jax_differentiates_the_max_by_select_and_scatter_add_with_ge():
    """The mechanism behind the first-maximum rule, read from the backward pass's jaxpr."""
    x = tied_inputs("float64", (1, 1, 4, 4))

    def backward(x_):
        _, pullback = jax.vjp(lambda v: jax_max_pool(v, 2, 2), x_)
        return pullback(np.ones((1, 1, 2, 2)))

    equations = [eqn for eqn in jax.make_jaxpr(backward)(x).jaxpr.eqns
                 if eqn.primitive.name == "select_and_scatter_add"]
    assert len(equations) == 1
    assert equations[0].params["select_prim"] is lax.ge_p


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_twin_layer_trace_of_a_max_pool_matches_the_engine_on_ties(dtype):
    spec = ModelSpec(inputs=(3, 9, 8), layers=(MaxPool2DSpec(3, strides=2), FlattenSpec(),
                                               DenseSpec(3, "softmax")), dtype=dtype, seed=1)
    model = Network(spec)
    x = tied_inputs(dtype)
    upstream = integer_gradients((len(x), *spec.layer_shapes[1]), dtype, 6)
    got = make_backend("jax", spec, model.weights, model.biases).layer_trace(1, x, upstream)
    want = make_backend("scratch", spec, model.weights, model.biases).layer_trace(1, x, upstream)
    assert set(got) == set(want) == {"Z", "A", "dZ", "dA_prev"}
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_relu_then_max_pool_ties_at_zero_in_the_suite():
    """Why it matters: after ReLU whole windows are 0, and dA of the conv layer depends on
    which zero gets the gradient (dZ behind it is 0 either way)."""
    spec = ModelSpec(inputs=(1, 8, 8), layers=(Conv2DSpec(2, 3, padding="same"), MaxPool2DSpec(2),
                                               FlattenSpec(), DenseSpec(3, "softmax")), seed=2)
    model = Network(spec)
    x = np.random.default_rng(7).standard_normal((4, *spec.input_shape)) - 1.0
    targets = model.targets(np.array([0, 1, 2, 0]))
    got = make_backend("jax", spec, model.weights, model.biases).trace(x, targets)
    want = make_backend("scratch", spec, model.weights, model.biases).trace(x, targets)
    windows = MaxPool2D(2).windows(want["A1"]).reshape(4, 2, 4, 4, 4)
    assert np.any((windows == 0).all(axis=-1))                 # windows of zeros do occur
    np.testing.assert_array_equal(got["dA1"] == 0, want["dA1"] == 0)
