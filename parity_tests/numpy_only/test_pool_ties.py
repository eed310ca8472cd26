"""The max-pool tie rule of the checker (``judge.pool_ties``): a tie that rounding breaks the
other way is checked around, and nothing else is.

The case is built so that the tie is exact in one backend and one ulp apart in the other: a
constant image through a 2×2 conv of 0.5s gives 2.0 at every position (exactly), so every 2×2
pooling window ties; the "actual" backend sees one pixel raised by 4 ulps of 1.0, which raises
two conv outputs by exactly one ulp of 2.0 — one of them second in its window, where the actual
now routes the gradient."""

from __future__ import annotations

import numpy as np
import pytest

from judge.parity import compare_backend_traces, compare_traces
from judge.pool_ties import tie_flips
from judge.tolerances import tolerance
from judge.trajectory import follow
from scratch.batching import training_plan
from scratch.layer_specs import Conv2DSpec, DenseSpec, FlattenSpec, MaxPool2DSpec
from scratch.model import Network
from scratch.spec import ModelSpec, OptimizerSpec
from twins.scratch_backend import ScratchBackend

SPEC = ModelSpec(inputs=(1, 5, 5), layers=(Conv2DSpec(1, 2, activation="relu"), MaxPool2DSpec(2),
                                           FlattenSpec("channels_first"), DenseSpec(3, "softmax")),
                 dtype="float64", init="he_normal", seed=5)
RAISED = (0, 0, 0, 2)                 # feeds conv outputs (0, 1) — second in window (0, 0) — and (0, 2)

# The pairs here disagree on purpose (a rerouted tie, a gap, a tie sent elsewhere): their errors
# stay out of the suite's largest-error table.
pytestmark = pytest.mark.deliberate_mismatch


class Nudged(ScratchBackend):
    """The engine, tracing an input whose pixel RAISED is ``nudge`` higher."""

    def __init__(self, weights, biases, nudge: float, spec=SPEC):
        super().__init__(spec, weights, biases)
        self.nudge = nudge

    def trace(self, x, targets, masks=None):
        x = x.copy()
        x[(slice(None), *RAISED[1:])] += self.nudge
        return super().trace(x, targets, masks)


def setup(nudge: float = 4 * np.finfo(np.float64).eps):
    model = Network(SPEC)
    weights = [np.full((1, 1, 2, 2), 0.5), model.weights[1]]
    biases = [np.zeros(1), model.biases[1]]
    x = np.ones((2, 1, 5, 5))
    targets = model.targets(np.array([0, 2]))
    desired_backend = ScratchBackend(SPEC, weights, biases)
    desired = desired_backend.trace(x, targets)
    actual = Nudged(weights, biases, nudge).trace(x, targets)
    return desired_backend, desired, actual, x


def test_the_case_ties_exactly_in_one_backend_and_one_ulp_apart_in_the_other():
    _, desired, actual, _ = setup()
    assert np.all(desired["A1"] == 2.0)
    assert actual["A1"][0, 0, 0, 1] == np.nextafter(2.0, 3.0)


def test_a_tie_broken_by_rounding_is_checked_against_the_rerouted_reference():
    desired_backend, desired, actual, x = setup()
    plain = {c.name for c in compare_traces(actual, desired, "float64", x=x) if not c.ok}
    assert {"dA1", "dZ1"} <= plain                # the flip alone fails the plain comparison
    results = compare_backend_traces(actual, desired, desired_backend, x, None)
    assert all(c.ok for c in results), [c.describe() for c in results if not c.ok]
    noted = {c.name for c in results if c.note}
    assert {"dA1", "dZ1", "dW1", "db1"} <= noted and not noted & {"A1", "Z2", "dW4", "loss"}
    assert "layer 2 (max-pool)" in next(c for c in results if c.name == "dA1").describe()


def test_a_wrong_gradient_below_the_tie_still_fails():
    desired_backend, desired, actual, x = setup()
    actual["dW1"] = actual["dW1"] * (1 + 1e-9)
    failed = [c for c in compare_backend_traces(actual, desired, desired_backend, x, None) if not c.ok]
    assert [c.name for c in failed] == ["dW1"] and failed[0].note


def test_a_gap_beyond_rounding_is_no_tie():
    desired_backend, desired, actual, x = setup(nudge=1e-6)
    assert tie_flips(actual, desired, SPEC, x, "float64") == []
    assert not all(c.ok for c in compare_backend_traces(actual, desired, desired_backend, x, None))


def test_an_exact_tie_routed_to_another_element_is_a_different_rule_and_fails():
    """Same forward values, the gradient sent to the window's second element: no rounding
    decided that, so nothing is rerouted."""
    desired_backend, desired, _, x = setup()
    actual = {name: value.copy() for name, value in desired.items()}
    first, second = (0, 0, 0, 0), (0, 0, 0, 1)                  # window (0, 0)'s first two elements
    actual["dA1"][first], actual["dA1"][second] = desired["dA1"][second], desired["dA1"][first]
    assert tie_flips(actual, desired, SPEC, x, "float64") == []
    failed = {c.name for c in compare_backend_traces(actual, desired, desired_backend, x, None) if not c.ok}
    assert "dA1" in failed


def test_no_flip_no_note():
    desired_backend, desired, _, x = setup()
    results = compare_backend_traces(desired, desired, desired_backend, x, None)
    assert all(c.ok and not c.note for c in results)



def trained_apart(nudge: float):
    """Both backends free-running 2 SGD steps on an input whose window (0, 0) of A1 ties exactly
    with different patches (their column sums are 3 and 3), so the routing changes dW1."""
    spec = SPEC.replace(optimizer=OptimizerSpec("sgd", learning_rate=0.1), batch_size=None, epochs=2)
    model = Network(spec)
    weights = [np.full((1, 1, 2, 2), 0.5), model.weights[1]]
    biases = [np.zeros(1), model.biases[1]]
    x = np.ones((2, 1, 5, 5))
    x[:, 0, 0:2, 0], x[:, 0, 0:2, 2] = (1.0, 2.0), (2.0, 1.0)
    targets = model.targets(np.array([0, 2]))
    actual, desired = Nudged(weights, biases, nudge, spec), ScratchBackend(spec, weights, biases)
    return follow(actual, desired, x, targets, list(training_plan(spec, len(x))))


def test_free_running_names_a_max_pool_tie_broken_by_rounding():
    trajectory = trained_apart(4 * np.finfo(np.float64).eps)
    assert trajectory.parting_step == 0 and trajectory.cause == "tie" and trajectory.ok
    assert "a max-pool tie broken by rounding — step 0, layer 2 (max-pool)" in trajectory.verdict()


def test_free_running_takes_no_real_gap_for_a_tie():
    trajectory = trained_apart(1e-6)
    assert trajectory.parting_step == 0 and trajectory.cause != "tie" and not trajectory.ties


def _window_flipped_by(gap: float, dtype: str, scale: float = 4.0):
    """(actual, desired) traces of SPEC's pool input A1 in ``dtype``: window (0, 0) holds 1 and
    1 − ``gap``, its first maximum at element 0 in the reference and element 1 in the actual (the
    same gap both ways); elsewhere ``scale`` = max|A1| and values well apart."""
    desired = np.linspace(0.0, 0.5, 16).reshape(1, 1, 4, 4)
    desired[0, 0, 3, 3] = scale
    desired = desired.astype(dtype)
    desired[0, 0, 0, 0], desired[0, 0, 0, 1] = 1.0, np.asarray(1.0 - gap, dtype)
    actual = desired.copy()
    actual[0, 0, 0, 0], actual[0, 0, 0, 1] = desired[0, 0, 0, 1], desired[0, 0, 0, 0]
    return {"A1": actual}, {"A1": desired}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_tie_bound_is_the_forward_tolerance_times_max_a_in_each_dtype(dtype):
    """A gap just under tolerance(dtype, "forward")·max|A_{l−1}| is a tie, just over it is not —
    in float32 too, where the forward (1e-5) and gradient (1e-4) rows differ and float64's 1e-13
    is far below: a bound from another row or dtype, or without max|A|, fails one side. The gap is
    exact to ~1e-3 of itself in both dtypes (an ulp of 1 against it), so 5 % either side is clear."""
    bound = tolerance(dtype, "forward") * 4.0                 # max|A1| = 4
    x = np.ones((1, 1, 5, 5), dtype)
    for gap, tie in ((0.95 * bound, True), (1.05 * bound, False)):
        actual, desired = _window_flipped_by(gap, dtype)
        measured = float(desired["A1"][0, 0, 0, 0]) - float(desired["A1"][0, 0, 0, 1])
        assert abs(measured / gap - 1) < 2e-3, (measured, gap)
        flips = tie_flips(actual, desired, SPEC, x, dtype)
        assert bool(flips) is tie, (dtype, gap / bound, flips)
        if tie:
            [flip] = flips
            assert (flip.layer, flip.windows, flip.where) == (2, 1, (0, 0, 0, 0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_tie_must_be_within_the_bound_in_both_traces(dtype):
    """The reference's two values a rounding apart, the actual's a real gap apart: no tie."""
    bound = tolerance(dtype, "forward") * 4.0
    actual, desired = _window_flipped_by(0.5 * bound, dtype)
    actual["A1"][0, 0, 0, 0] = np.asarray(1.0 - 2 * bound, dtype)  # the actual's element 0 now 2·bound below
    assert tie_flips(actual, desired, SPEC, np.ones((1, 1, 5, 5), dtype), dtype) == []
    actual["A1"][0, 0, 0, 0] = np.asarray(1.0 - 0.5 * bound, dtype)
    assert len(tie_flips(actual, desired, SPEC, np.ones((1, 1, 5, 5), dtype), dtype)) == 1
