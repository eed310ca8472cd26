"""Check the checker: the tolerance table, the error metric, its floors, and every comparison and
localization helper of :mod:`judge.parity` must fail on inputs that differ, and only there.

An injected error is sized from the bound it tests. With ``scale`` the size the metric divides by
(max|desired|, the reference's size; one step's own loss for a curve), one element off by
1.5·bound·scale must fail and one off by 0.5·bound·scale must pass, in every dtype and kind.
Wrong backends are the NumPy engine bent in one place (:class:`OneQuantityWrong`), so the whole
test needs no framework.
"""

from __future__ import annotations

import numpy as np
import pytest
from buggy_engines import DropoutMaskMissingInBackward, L2MissingOnLayer1

import judge.parity as parity
from judge.parity import (
    ParityFailure,
    causal_order,
    check_parity,
    compare_curves,
    compare_parameters,
    compare_traces,
    dz_floor,
    format_table,
    gradient_floors,
    localize,
    relative_error,
)
from judge.tolerances import FULL_EPOCH_FLOAT64, TOLERANCES, tolerance
from scratch.batching import dropout_masks
from scratch.initializers import initialize
from scratch.layer_specs import BatchNormSpec, DenseSpec
from scratch.model import Network
from scratch.spec import ModelSpec
from twins.scratch_backend import ScratchBackend

DTYPES = ("float64", "float32")
KINDS = ("forward", "gradient", "curve", "parameters")
PINNED = {
    "float64": {"forward": 1e-13, "gradient": 1e-13, "curve": 1e-13, "parameters": 1e-13},
    "float32": {"forward": 1e-5, "gradient": 1e-4, "curve": 1e-4, "parameters": 1e-4},
}


@pytest.fixture(autouse=True)
def _errors_stay_out_of_the_summary(monkeypatch):
    """Every error here is injected on purpose: keep them out of the suite's 'largest parity
    error seen' summary (the frameworks conftest observes every comparison)."""
    monkeypatch.setattr(parity, "_observers", [])


# --- the tolerance table ------------------------------------------------------------------------

def test_tolerance_table_is_pinned():
    """Any change to a bound (looser or tighter) must be a deliberate edit of this test too."""
    assert TOLERANCES == PINNED
    assert FULL_EPOCH_FLOAT64 == 1e-12
    for dtype, row in PINNED.items():
        for kind, bound in row.items():
            assert tolerance(dtype, kind) == bound, (dtype, kind)


@pytest.mark.parametrize("dtype, kind", [("float16", "forward"), ("float64", "hessian"),
                                         ("forward", "float64")])
def test_unknown_dtype_or_kind_raises_naming_it(dtype, kind):
    unknown = dtype if dtype not in PINNED else kind
    with pytest.raises((KeyError, ValueError), match=unknown):
        tolerance(dtype, kind)


# --- one array through the real helper of each kind ---------------------------------------------

def comparisons(kind: str, dtype: str, actual: np.ndarray, desired: np.ndarray) -> list:
    """The real helper for ``kind`` on one array: a forward quantity (Z1) or a gradient (dW1) of a
    trace, a loss curve, or W1 of two backends' parameters (W2, b1, b2 equal)."""
    if kind == "forward":
        return compare_traces({"Z1": actual}, {"Z1": desired}, dtype)
    if kind == "gradient":
        return compare_traces({"dW1": actual}, {"dW1": desired}, dtype)
    if kind == "curve":
        return [compare_curves(actual, desired, dtype)]
    n1, n0 = desired.shape
    spec = ModelSpec((n0, n1, 3), dtype=dtype)
    weights, biases = initialize("he_normal", spec.layer_sizes, 7, np.dtype(dtype))
    ours = FakeBackend(spec, [{"W": actual, "b": biases[0]}, {"W": weights[1], "b": biases[1]}])
    reference = FakeBackend(spec, [{"W": desired, "b": biases[0]}, {"W": weights[1], "b": biases[1]}])
    return compare_parameters(ours, reference)


class FakeBackend:
    """All :func:`compare_parameters` reads of a backend: ``spec`` and ``tensors()``."""

    def __init__(self, spec, tensors):
        self.spec, self.held = spec, tensors

    def tensors(self):
        return [{name: array.copy() for name, array in layer.items()} for layer in self.held]


def desired_array(kind: str, dtype: str, rng, scale: float = 1.0) -> np.ndarray:
    """A realistic reference: N(0, scale²) values (6, 4), or a loss curve of 20 steps in
    [0.2, 2.5]·scale."""
    if kind == "curve":
        return rng.uniform(0.2, 2.5, 20) * scale
    return (rng.standard_normal((6, 4)) * scale).astype(dtype)


def metric_scale(kind: str, desired: np.ndarray, index) -> float:
    """What the relative error divides by: max|desired|, or that step's own loss for a curve."""
    return abs(float(desired[index])) if kind == "curve" else float(np.max(np.abs(desired)))


def one_element(desired: np.ndarray, index, value=None, add=0.0) -> np.ndarray:
    actual = desired.copy()
    actual[index] = desired[index] + add if value is None else value
    return actual


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3], ids=lambda s: f"scale{s:g}")
@pytest.mark.parametrize("factor", [1.5, 0.5], ids=["above", "below"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_element_just_beyond_the_bound_fails_just_inside_passes(dtype, kind, factor, scale, rng):
    desired = desired_array(kind, dtype, rng, scale)
    index = tuple(int(rng.integers(n)) for n in desired.shape)
    bound = tolerance(dtype, kind)
    actual = one_element(desired, index, add=factor * bound * metric_scale(kind, desired, index))
    results = comparisons(kind, dtype, actual, desired)
    failing = [c.name for c in results if not c.ok]
    assert failing == ([results[0].name] if factor > 1 else []), [c.describe() for c in results]
    assert results[0].bound == bound
    assert results[0].error == pytest.approx(factor * bound, rel=1e-2)
    if kind in ("forward", "gradient"):
        assert (relative_error(actual, desired) > bound) == (factor > 1)


@pytest.mark.parametrize("perturbed", ["W1", "b1", "W2", "b2"])
def test_compare_parameters_names_exactly_the_perturbed_array(perturbed, rng):
    spec = ModelSpec((4, 5, 3), dtype="float32")
    weights, _ = initialize(spec.init, spec.layer_sizes, int(rng.integers(1000)), np.float32)
    biases = [rng.standard_normal(n).astype(np.float32) for n in spec.layer_sizes[1:]]   # trained: not 0
    arrays = {"W": weights, "b": biases}
    wrong = {key: [value.copy() for value in values] for key, values in arrays.items()}
    target = wrong[perturbed[0]][int(perturbed[1]) - 1]
    target.flat[-1] += 1.5 * tolerance("float32", "parameters") * float(np.max(np.abs(target)))
    ours, reference = (FakeBackend(spec, [{"W": w, "b": b} for w, b in zip(*pair, strict=True)])
                       for pair in ((wrong["W"], wrong["b"]), (weights, biases)))
    results = compare_parameters(ours, reference)
    assert [c.name for c in results] == ["W1", "b1", "W2", "b2"]
    assert [c.name for c in results if not c.ok] == [perturbed]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")     # inf / inf
@pytest.mark.parametrize("side", ["actual", "desired"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_non_finite_element_fails(dtype, kind, value, side, rng):
    clean = desired_array(kind, dtype, rng)
    index = tuple(int(rng.integers(n)) for n in clean.shape)
    bad = one_element(clean, index, value=value)
    actual, desired = (bad, clean) if side == "actual" else (clean, bad)
    results = comparisons(kind, dtype, actual, desired)
    assert not results[0].ok
    assert all(c.ok for c in results[1:])
    if kind == "curve":
        assert f"step {index[0]}" in results[0].problem


@pytest.mark.parametrize("kind", KINDS)
def test_a_shape_mismatch_fails_even_where_it_would_broadcast_to_equal_values(kind, rng):
    """Rows of the reference are constant, so the actual's one column (or one step) would equal
    it after broadcasting: only the shape check can fail it."""
    desired = desired_array(kind, "float64", rng)
    desired = np.repeat(desired[:1], len(desired), axis=0) if kind == "curve" else np.repeat(
        desired[:, :1], desired.shape[1], axis=1)
    actual = desired[:1].copy() if kind == "curve" else desired[:, :1].copy()
    first = comparisons(kind, "float64", actual, desired)[0]
    assert not first.ok
    assert first.problem


@pytest.mark.parametrize("wrong", ["actual", "desired"])
@pytest.mark.parametrize("kind", ["forward", "gradient", "parameters"])
def test_a_dtype_mismatch_fails_even_with_equal_values(kind, wrong, rng):
    """float32 values held in float64 compare equal; the spec says float32, so it must fail."""
    desired = desired_array(kind, "float32", rng)
    widened = desired.astype(np.float64)
    actual, desired = (widened, desired) if wrong == "actual" else (desired, widened)
    first = comparisons(kind, "float32", actual, desired)[0]
    assert not first.ok
    assert "float64" in first.problem


def test_a_missing_or_extra_quantity_fails_and_the_rest_is_still_compared(rng):
    desired = {name: rng.standard_normal((4, 3)) for name in ("Z1", "A1", "dZ1", "dW1")}
    missing = {name: value for name, value in desired.items() if name != "dW1"}
    results = compare_traces(missing, desired, "float64")
    assert [c.name for c in results if not c.ok] == ["dW1"]
    assert sorted(c.name for c in results if c.ok) == ["A1", "Z1", "dZ1"]
    extra = dict(desired, dA7=rng.standard_normal((4, 3)))
    results = compare_traces(extra, desired, "float64")
    assert [c.name for c in results if not c.ok] == ["dA7"]
    assert len(results) == 5


def test_the_error_is_relative_to_the_desired_reference_not_the_actual(rng):
    """|3d − d| = 2|d|: 2 relative to d (the reference), 2/3 relative to 3d."""
    d = rng.standard_normal((5, 4))
    assert relative_error(3 * d, d) == pytest.approx(2.0, rel=1e-12)
    assert relative_error(d, 3 * d) == pytest.approx(2 / 3, rel=1e-12)
    assert compare_traces({"Z1": 3 * d}, {"Z1": d}, "float64")[0].error == pytest.approx(2.0, rel=1e-12)
    losses = rng.uniform(0.2, 2.5, 10)
    assert compare_curves(3 * losses, losses, "float64").error == pytest.approx(2.0, rel=1e-12)
    assert compare_curves(losses, 3 * losses, "float64").error == pytest.approx(2 / 3, rel=1e-12)


def test_a_desired_of_zeros_gives_the_absolute_error():
    desired = np.zeros((3, 2))
    assert relative_error(one_element(desired, (1, 1), add=2.5e-14), desired) == pytest.approx(2.5e-14)


# --- the floors ---------------------------------------------------------------------------------

M, SIZES = 8, (4, 5, 3)
SHAPES = {"Z1": (M, 5), "A1": (M, 5), "Z2": (M, 3), "A2": (M, 3), "loss": (), "dZ2": (M, 3),
          "dW2": (3, 5), "db2": (3,), "dA1": (M, 5), "dZ1": (M, 5), "dW1": (5, 4), "db1": (5,)}
# Quantities far smaller than the operands they come from (a confident fit, saturated units),
# and two forward quantities small for no such reason: the loss floor must not reach them.
TINY = {"loss": 1e-6, "dZ2": 1e-6, "dZ1": 1e-6, "dW2": 1e-6, "db2": 1e-6, "dW1": 1e-6, "db1": 1e-6,
        "A2": 1e-3, "Z1": 1e-3}


def two_layer_trace(rng, dtype):
    """(x, trace) of a 2-layer CCE network (no dA2), every quantity with max|·| set exactly:
    TINY[name], or 1."""
    def draw(shape, size):
        values = np.array(rng.uniform(-1.0, 1.0, shape))
        values.flat[0] = 1.0
        return np.asarray(values * size, dtype=dtype)
    trace = {name: draw(shape, TINY.get(name, 1.0)) for name, shape in SHAPES.items()}
    return draw((M, SIZES[0]), 1.0), trace


def documented_scale(name, trace, x):
    """The denominator each docstring promises: max|quantity|, or its floor where that is larger —
    the loss: max|Z_L|; dZ_L (fused output): 1/(m·k); dZ_l: max|dA_l|; db_l: m × dZ_l's floor;
    dW_l: dZ_l's floor × the largest column sum of |A_{l−1}| (A_0 = x)."""
    own = float(np.max(np.abs(trace[name])))
    f = {2: 1.0 / trace["dZ2"].size, 1: float(np.max(np.abs(trace["dA1"])))}
    a_prev = {2: trace["A1"], 1: x}
    floor = 0.0
    if name == "loss":
        floor = float(np.max(np.abs(trace["Z2"])))
    elif name[:2] in ("dZ", "db", "dW"):
        layer = int(name[2:])
        floor = {"dZ": f[layer], "db": f[layer] * M,
                 "dW": f[layer] * float(np.max(np.abs(a_prev[layer]).sum(axis=0)))}[name[:2]]
    return max(own, floor)


@pytest.mark.parametrize("factor", [1.5, 0.5], ids=["above", "below"])
@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_each_floor_admits_what_its_docstring_says_and_no_more(dtype, name, factor, rng):
    """0.5·bound·(documented scale) in one quantity passes and 1.5× fails, the others untouched —
    so the loss floor cannot hide an error in A2 or Z1, nor dZ1's floor one in dA1."""
    x, desired = two_layer_trace(rng, dtype)
    kind = "gradient" if name.startswith("d") else "forward"
    index = () if name == "loss" else np.unravel_index(1, SHAPES[name])
    amount = factor * tolerance(dtype, kind) * documented_scale(name, desired, x)
    actual = dict(desired, **{name: one_element(desired[name], index, add=amount)})
    results = compare_traces(actual, desired, dtype, x=x)
    assert [c.name for c in results if not c.ok] == ([name] if factor > 1 else [])
    assert len(results) == len(SHAPES)


def test_dw1_has_no_floor_without_the_input_batch(rng):
    x, desired = two_layer_trace(rng, "float64")
    amount = 0.5 * tolerance("float64", "gradient") * documented_scale("dW1", desired, x)
    actual = dict(desired, dW1=one_element(desired["dW1"], (0, 1), add=amount))
    assert [c.name for c in compare_traces(actual, desired, "float64", x=x) if not c.ok] == []
    assert [c.name for c in compare_traces(actual, desired, "float64") if not c.ok] == ["dW1"]


def test_gradient_floors_are_exactly_the_documented_operand_scales():
    dz = np.full((4, 3), 1e-9)
    upstream = np.array([[0.5, -2.0, 1.0]] * 4)
    a_prev = np.array([[1.0, -3.0], [2.0, 0.5], [-1.0, 0.5], [0.0, 1.0]])     # column sums 4, 5
    assert dz_floor(dz, upstream) == 2.0
    assert dz_floor(dz, None) == 1 / 12
    assert gradient_floors(2, dz, upstream, a_prev) == {"dZ2": 2.0, "db2": 8.0, "dW2": 10.0}
    assert gradient_floors(2, dz, upstream, 3 * a_prev) == {"dZ2": 2.0, "db2": 8.0, "dW2": 30.0}
    output = {"dZ3": 1 / 12, "db3": 4 / 12, "dW3": 5 / 12}          # no upstream: the fused 1/(m·k)
    assert gradient_floors(3, dz, None, a_prev) == pytest.approx(output, rel=1e-15)
    assert gradient_floors(1, dz, upstream, None) == {"dZ1": 2.0, "db1": 8.0}


def test_a_normalization_layers_gamma_and_beta_are_floored_under_their_own_names():
    """γ_l and β_l are a (kernel, bias) pair like W_l and b_l: dgamma_l gets dW_l's operand scale
    and dbeta_l db_l's count, named d<name><l> — in a whole trace too, where no dW_l, db_l floor is
    made for them; PReLU's α (no pair) gets none."""
    assert parity.FLOOR_PAIRS == (("W", "b"), ("gamma", "beta"))
    dz = np.full((4, 3), 1e-9)
    upstream = np.array([[0.5, -2.0, 1.0]] * 4)
    a_prev = np.array([[1.0, -3.0], [2.0, 0.5], [-1.0, 0.5], [0.0, 1.0]])     # column sums 4, 5
    assert gradient_floors(2, dz, upstream, a_prev, ("gamma", "beta")) == {"dZ2": 2.0, "dbeta2": 8.0,
                                                                           "dgamma2": 10.0}
    assert gradient_floors(2, dz, upstream, a_prev, None) == {"dZ2": 2.0}
    spec = ModelSpec(inputs=4, layers=(DenseSpec(5, "identity"), BatchNormSpec(activation="tanh"),
                                       DenseSpec(3, "softmax")), loss="cce", seed=2)
    rng = np.random.default_rng(0)
    model = Network(spec)
    x = rng.standard_normal((6, 4))
    trace = ScratchBackend(spec, tensors=model.tensors).trace(x, model.targets(rng.integers(0, 3, 6)))
    floors = parity.trace_floors(trace, x)
    want = gradient_floors(2, trace["dZ2"], trace["dA2"], trace["A1"], ("gamma", "beta"))
    assert {name: floors[name] for name in want} == want and want["dgamma2"] > 0 and want["dbeta2"] > 0
    assert not {"dW2", "db2"} & set(floors), sorted(floors)


# --- backends wrong in one place ----------------------------------------------------------------

SPEC = ModelSpec((6, 5, 4, 3), hidden_activation="tanh", dropout=0.25, l2=2.0 ** -6)
LAYER_KEYS = ("Z", "A", "dZ", "dW", "db", "dA_prev")


def quantity_name(layer: int, key: str) -> str:
    return f"dA{layer - 1}" if key == "dA_prev" else f"{key}{layer}"


class ChainedScratch(ScratchBackend):
    """The NumPy engine with its trace assembled from its own ``layer_trace``: forward from X
    layer by layer, then backward from the targets, so a quantity bent in one layer reaches every
    later one exactly as a bug in that layer would."""

    name = "chained"

    def trace(self, x, targets, masks=None):
        n_layers, out, inputs = self.spec.n_layers, {}, []
        a_prev = x
        for layer in range(1, n_layers + 1):
            mask = None if masks is None or layer == n_layers else masks[layer - 1]
            unused = np.zeros((len(x), self.spec.layer_sizes[layer]), x.dtype)
            step = self.layer_trace(layer, a_prev, targets if layer == n_layers else unused, mask)
            inputs.append((a_prev, mask))
            out[f"Z{layer}"], out[f"A{layer}"] = step["Z"], step["A"]
            a_prev = step["A"]
        upstream = targets
        for layer in range(n_layers, 0, -1):
            a_in, mask = inputs[layer - 1]
            step = self.layer_trace(layer, a_in, upstream, mask)
            out[f"dZ{layer}"], out[f"dW{layer}"], out[f"db{layer}"] = step["dZ"], step["dW"], step["db"]
            if layer > 1:
                out[f"dA{layer - 1}"] = upstream = step["dA_prev"]
        loss = self.model.loss_fn.value(out[f"Z{n_layers}"], out[f"A{n_layers}"], targets)
        out["loss"] = np.asarray(loss + self.model.l2_penalty() if self.spec.l2 else loss)
        return out


class OneQuantityWrong(ChainedScratch):
    """Layer ``layer``'s ``key`` (one of :data:`LAYER_KEYS`) off by a factor 1 + 1e-6."""

    name = "wrong"

    def __init__(self, spec, layer, key, *, tensors):
        super().__init__(spec, tensors=tensors)
        self.layer, self.key = layer, key

    def layer_trace(self, layer, a_prev, upstream, mask=None):
        out = super().layer_trace(layer, a_prev, upstream, mask)
        if layer == self.layer:
            out[self.key] = out[self.key] * out[self.key].dtype.type(1 + 1e-6)
        return out


@pytest.fixture
def case(rng):
    """(tensors, x, targets, masks) of SPEC: 8 samples and the step-0 dropout masks."""
    seed = int(rng.integers(2 ** 31))
    start = Network(SPEC.replace(seed=seed))
    x = rng.standard_normal((8, SPEC.layer_sizes[0]))
    targets = start.targets(rng.integers(0, 3, 8))
    masks = dropout_masks(SPEC, seed % 1000, 8)
    assert masks is not None and any((mask == 0).any() for mask in masks)
    return start.tensors, x, targets, masks


def test_the_chained_engine_agrees_with_the_engine(case):
    """The harness itself: unbent, the chained trace has every quantity and passes."""
    tensors, x, targets, masks = case
    results = check_parity(ChainedScratch(SPEC, tensors=tensors), ScratchBackend(SPEC, tensors=tensors),
                           x, targets, masks)
    reference = ScratchBackend(SPEC, tensors=tensors).trace(x, targets, masks)
    assert sorted(c.name for c in results) == sorted(reference)
    assert all(c.ok for c in results)
    isolated = localize(ChainedScratch(SPEC, tensors=tensors), ScratchBackend(SPEC, tensors=tensors),
                        reference, x, targets, masks, "float64")
    assert len(isolated) == 6 * SPEC.n_layers - 1
    assert all(c.ok for c in isolated)


BENT = [(1, "Z"), (1, "A"), (2, "A"), (3, "Z"), (3, "dZ"), (2, "dZ"), (3, "dW"), (1, "dW"), (2, "db"),
        (3, "dA_prev"), (2, "dA_prev")]


@pytest.mark.parametrize("layer, key", BENT, ids=[quantity_name(*bent) for bent in BENT])
def test_check_parity_names_the_one_wrong_layer_and_quantity(layer, key, case):
    tensors, x, targets, masks = case
    wrong = OneQuantityWrong(SPEC, layer, key, tensors=tensors)
    with pytest.raises(ParityFailure) as failure:
        check_parity(wrong, ScratchBackend(SPEC, tensors=tensors), x, targets, masks, repro="pytest here")
    message, name = str(failure.value), quantity_name(layer, key)
    assert message.startswith("wrong vs scratch (reference), float64:")
    assert f"first diverging (layer fed the reference's own inputs): layer {layer}, {name}:" in message
    assert f"first in causal order end to end: {name}:" in message
    assert message.endswith("reproduce: pytest here")


@pytest.mark.parametrize("layer, key", BENT, ids=[quantity_name(*bent) for bent in BENT])
def test_localize_flags_the_wrong_layer_and_only_it(layer, key, case):
    tensors, x, targets, masks = case
    reference = ScratchBackend(SPEC, tensors=tensors)
    results = localize(OneQuantityWrong(SPEC, layer, key, tensors=tensors), reference,
                       reference.trace(x, targets, masks), x, targets, masks, "float64")
    assert [(c.layer, c.name) for c in results if not c.ok] == [(layer, quantity_name(layer, key))]
    assert len(results) == 6 * SPEC.n_layers - 1


@pytest.mark.parametrize("wrong, failing, first", [
    (DropoutMaskMissingInBackward, ["dZ1", "dW1", "db1", "dZ2", "dW2", "db2", "dA1"], "layer 2, dZ2"),
    (L2MissingOnLayer1, ["dW1"], "layer 1, dW1"),
], ids=["dropout-mask-missing-in-backward", "l2-missing-on-layer-1"])
def test_dropout_and_l2_bugs_are_localized(wrong, failing, first, case):
    """Every quantity of every masked layer fails in isolation (and nothing of the output layer);
    the message names the first in causal order."""
    tensors, x, targets, masks = case
    reference = ScratchBackend(SPEC, tensors=tensors)
    results = localize(wrong(SPEC, tensors=tensors), reference, reference.trace(x, targets, masks),
                       x, targets, masks, "float64")
    assert [c.name for c in results if not c.ok] == failing
    with pytest.raises(ParityFailure, match=f"own inputs\\): {first}:"):
        check_parity(wrong(SPEC, tensors=tensors), reference, x, targets, masks)


# --- order and table ----------------------------------------------------------------------------

def test_causal_order_is_forward_by_layer_then_loss_then_gradients_from_the_output_down(rng):
    expected = ["Z1", "A1", "Z2", "A2", "Z3", "A3", "loss", "dA3", "dZ3", "dW3", "db3",
                "dA2", "dZ2", "dW2", "db2", "dA1", "dZ1", "dW1", "db1"]
    assert causal_order(rng.permutation(expected).tolist()) == expected
    deep = [f"{base}{layer}" for layer in (2, 10, 11) for base in ("Z", "dW")]
    assert causal_order(deep) == ["Z2", "Z10", "Z11", "dW11", "dW10", "dW2"]


def test_format_table_says_fail_for_a_failing_row_and_ok_otherwise(rng):
    desired = {"Z1": rng.standard_normal((4, 3)), "dW1": rng.standard_normal((3, 2))}
    actual = {"Z1": desired["Z1"].copy(), "dW1": desired["dW1"] * 1.01}
    passed, failed = compare_traces(actual, desired, "float64")
    shaped = compare_traces({"Z1": desired["Z1"][:2]}, {"Z1": desired["Z1"]}, "float64")[0]
    lines = format_table([("a-vs-b", passed), ("a-vs-b", failed), ("c-vs-d", shaped)]).splitlines()
    assert lines[0].split()[-1] == "status"
    assert lines[2].split()[1] == "Z1" and lines[2].endswith("ok")
    assert lines[3].split()[1] == "dW1" and lines[3].endswith("FAIL")
    assert lines[4].split()[0] == "c-vs-d" and "FAIL shape" in lines[4]
