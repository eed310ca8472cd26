"""The training verdict's machinery, NumPy only: per-step re-synchronized checks
(``judge.stepwise``), the free-running explanation (``judge.trajectory``) and the
verdict of ``check`` (``reports.verdict.check``).

Two correct copies of the engine must pass; a copy with one realistic bug — a hyperparameter
ignored or rounded, a wrong gradient, a lost optimizer buffer, a step counter off by one — must
fail at the step where it acts and name the quantity. The free-running part must name a kink
flip or an amplified near-zero gradient where there is one, and otherwise let the arbiter name
the side that is off — never the other side when the arbiter runs one side's own code.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from judge import parity
from judge.optimizer_state import OptimizerState
from judge.parity import Comparison
from judge.stepwise import check_steps, compare_update
from judge.tolerances import AMPLIFIED, ARBITER_FACTOR, ULPS_UPDATE, tolerance
from judge.trajectory import Amplification, Arbiter, follow, kink_flips
from reports.verdict.check import Verdict
from scratch.batching import training_plan
from scratch.errors import BackendError
from scratch.model import Network
from scratch.spec import ModelSpec, OptimizerSpec
from twins.scratch_backend import ScratchBackend


@pytest.fixture(autouse=True)
def _quiet_observers(monkeypatch):
    """Deliberate mismatches stay out of the suite's largest-error summary."""
    monkeypatch.setattr(parity, "_observers", [])


class Named(ScratchBackend):
    """The engine under another name (the actual side of a pair)."""

    name = "copy"


def _spec(optimizer: OptimizerSpec, dtype="float64", hidden="relu", **fields) -> ModelSpec:
    return ModelSpec((6, 5, 4, 3), hidden_activation=hidden, dtype=dtype, optimizer=optimizer,
                     batch_size=8, epochs=2, init="glorot_uniform", seed=3, **fields)


def _data(spec, rng, n=24, tiny_column=False):
    x = rng.standard_normal((n, spec.layer_sizes[0])).astype(spec.dtype)
    if tiny_column:                       # a rarely lit input: its weights get near-zero gradients
        x[:, 0] *= spec.dtype == "float64" and 1e-9 or 1e-5
    labels = rng.integers(0, spec.layer_sizes[-1], n)
    start = Network(spec)                 # the spec's initializer and seed
    return start.tensors, x, start.targets(labels)


def _stepwise(actual_spec, spec, rng, actual_class=Named):
    tensors, x, targets = _data(spec, rng)
    plan = list(training_plan(spec, len(x)))
    return check_steps(actual_class(actual_spec, tensors=tensors), ScratchBackend(spec, tensors=tensors),
                       ScratchBackend(spec, tensors=tensors), x, targets, plan)


ADAM = OptimizerSpec.framework_default("adam", "torch", learning_rate=0.01)
OPTIMIZERS = {
    "sgd": OptimizerSpec("sgd", learning_rate=0.1),
    "momentum-keras": OptimizerSpec.framework_default("momentum", "keras", learning_rate=0.05),
    "rmsprop-torch": OptimizerSpec.framework_default("rmsprop", "torch", momentum=0.5),
    "adam-keras": OptimizerSpec.framework_default("adam", "keras", learning_rate=0.01),
    "adam-torch": ADAM,
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_two_copies_of_the_engine_agree_at_every_step(optimizer, dtype, rng):
    spec = _spec(OPTIMIZERS[optimizer], dtype, dropout=0.25, l2=0.01)
    result = _stepwise(spec, spec, rng)
    assert result.steps == 6
    assert result.ok, [c.describe() for c in result.failed]
    updates = [c for c in result.comparisons if c.kind == "update"]
    assert updates and max(c.error for c in updates) == 0       # the same code: bit for bit


# (optimizer, field, wrong value, the first step where it acts) — a twin that ignores or rounds
# one hyperparameter. Momentum multiplies a buffer that is zero before the first step.
HYPERPARAMETER_BUGS = {
    "learning_rate": ("adam-torch", "learning_rate", 0.01 * (1 + 1e-9), 0),
    "beta1": ("adam-torch", "beta1", 0.9 + 1e-7, 0),
    "beta2": ("adam-torch", "beta2", 0.998, 0),
    "epsilon": ("adam-torch", "epsilon", 1e-7, 0),
    "rho": ("rmsprop-torch", "rho", 0.9, 0),
    "momentum": ("rmsprop-torch", "momentum", 0.6, 1),
    "convention": ("adam-keras", "convention", "torch", 0),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("bug", HYPERPARAMETER_BUGS)
def test_an_optimizer_bug_fails_the_update_check_where_it_acts(bug, dtype, rng):
    config, field, value, acts = HYPERPARAMETER_BUGS[bug]
    if dtype == "float32" and bug in ("learning_rate", "beta1"):
        pytest.skip("a 1e-9 / 1e-7 change is below float32 rounding")
    spec = _spec(OPTIMIZERS[config], dtype)
    wrong = dataclasses.replace(spec, optimizer=dataclasses.replace(spec.optimizer, **{field: value}))
    result = _stepwise(wrong, spec, rng)
    assert not result.ok
    first = result.failed[0]
    assert first.kind == "update" and first.step == acts, first.describe()
    assert all(c.kind == "update" for c in result.failed if c.step == acts)  # gradients still agree


def test_a_wrong_gradient_fails_at_the_step_and_names_it(rng):
    class WrongDb2(Named):
        def trace(self, x, targets, masks=None):
            out = super().trace(x, targets, masks)
            out["db2"] = out["db2"] * (1 + 1e-9)
            return out

    spec = _spec(ADAM)
    result = _stepwise(spec, spec, rng, WrongDb2)
    assert [c.name for c in result.failed if c.kind == "gradient" and c.step == 0] == ["db2"]


def test_a_lost_buffer_and_a_wrong_step_counter_fail(rng):
    class LostMoment(Named):
        def optimizer_state(self):
            state = super().optimizer_state()
            slots = [{k: v for k, v in s.items() if k != "m"} for s in state.slots]
            return OptimizerState(state.t + 1, slots)

    spec = _spec(ADAM)
    result = _stepwise(spec, spec, rng, LostMoment)
    first = {}
    for c in result.failed:
        first.setdefault(c.name, c)
    assert first["W1 m"].step == 0 and "optimizer buffer missing from the actual" in first["W1 m"].problem
    assert first["step counter t"].problem == "actual t = 2, reference t = 1"


def test_without_resynchronization_a_state_bug_would_hide(rng):
    """Re-synchronization is what feeds the actual the reference's state: a backend that ignores
    a loaded state (restarts its moments every step) is caught from the second step on."""
    class ForgetsState(Named):
        def restore(self, tensors, state):
            super().restore(tensors, OptimizerState())

    spec = _spec(ADAM)
    result = _stepwise(spec, spec, rng, ForgetsState)
    assert {c.step for c in result.failed} == set(range(1, 6))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_update_bound_just_above_and_just_below(dtype):
    """One element ``ULPS_UPDATE`` ± 1 ulp of its operand away from the reference's update."""
    rng = np.random.default_rng(0)
    before = rng.standard_normal(50).astype(dtype)
    want = (before - np.asarray(0.01, dtype) * rng.standard_normal(50).astype(dtype)).astype(dtype)
    state = OptimizerState(1, [{}, {}])
    scale = np.maximum(np.abs(before), np.abs(want))
    for ulps, ok in ((ULPS_UPDATE - 1, True), (ULPS_UPDATE + 1, False)):
        got = want.copy()
        got[7] = want[7] + ulps * np.spacing(scale[7])
        [row] = [c for c in compare_update([got, want[:1]], [want, want[:1]], [before, before[:1]],
                                           state, state, OptimizerState(), dtype, 0) if c.name == "W1 update"]
        assert row.ok is ok, row.describe()
        assert row.where == (7,)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_flush_to_zero_differences_pass_a_normal_one_does_not(dtype):
    """What a flush-to-zero backend (XLA on CPU) computes differently passes: a buffer element the
    reference keeps subnormal and the backend holds as 0, and a normal s near tiny that missed a
    flushed subnormal term. A difference of tiny or more, however small, still fails."""
    tiny = np.finfo(dtype).tiny
    spacing = np.spacing(np.asarray(8 * tiny, dtype))          # the ulp of a small normal value
    before = np.ones(4, dtype)
    params = [before.copy(), before[:1].copy()]
    old_state = OptimizerState(1, [{"s": np.zeros(4, dtype)}, {"s": np.zeros(1, dtype)}])
    cases = [(tiny / 4, 0.0, True), (tiny / 1024, 0.0, True),          # subnormal vs flushed
             (8 * tiny + 64 * spacing, 8 * tiny, True),                 # a flushed (1 − ρ)g² term
             (tiny, 0.0, False), (2 * tiny, 0.0, False), (8 * tiny + tiny, 8 * tiny, False)]
    for reference_value, actual_value, ok in cases:
        want_s = np.array([0.5, reference_value, 0.25, 0.125], dtype)
        got_s = want_s.copy()
        got_s[1] = actual_value
        want = OptimizerState(2, [{"s": want_s}, {"s": np.zeros(1, dtype)}])
        got = OptimizerState(2, [{"s": got_s}, {"s": np.zeros(1, dtype)}])
        [row] = [c for c in compare_update(params, params, [before, before[:1]], got, want, old_state,
                                           dtype, 1) if c.name == "W1 s"]
        assert row.ok is ok, (reference_value, actual_value, row.describe())
        assert ok or row.where == (1,)


def test_the_update_tolerances_are_pinned():
    assert (ULPS_UPDATE, AMPLIFIED, ARBITER_FACTOR) == (8, 10.0, 4.0)


def test_kink_flips_within_rounding_distance_only():
    spec = _spec(ADAM, "float32")
    want = {"Z1": np.array([[2.0, -1e-9, 3.0]], np.float32), "Z2": np.ones((1, 4), np.float32)}
    got = {"Z1": np.array([[2.0, +9e-9, 3.0]], np.float32), "Z2": np.ones((1, 4), np.float32)}
    [flip] = kink_flips(got, want, spec, step=51)
    assert (flip.step, flip.layer, flip.index) == (51, 1, (0, 1))
    got["Z1"][0, 1], want["Z1"][0, 1] = 0.5, -0.5          # a real disagreement, not rounding
    assert kink_flips(got, want, spec, 51) == []
    assert kink_flips(got, want, _spec(ADAM, "float32", hidden="tanh"), 51) == []


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("factor, flipped", [(0.9, True), (1.1, False)])
def test_the_free_running_kink_bound_at_its_edge_in_each_dtype(dtype, factor, flipped):
    """|Z| at 0.9× the forward bound (× max|Z_l|) on both sides is a kink flip, at 1.1× it is not:
    a bound taken from the other dtype's row of the table fails here."""
    spec = _spec(ADAM, dtype)
    near = tolerance(dtype, "forward") * 3.0                     # max|Z1| = 3
    want = {"Z1": np.array([[2.0, -factor * near, 3.0]], dtype), "Z2": np.ones((1, 4), dtype)}
    got = {"Z1": np.array([[2.0, +factor * near, 3.0]], dtype), "Z2": np.ones((1, 4), dtype)}
    assert bool(kink_flips(got, want, spec, step=0)) == flipped


class NudgedGradient(Named):
    """Adds one rounding of the largest gradient (ε·max|g|) to the gradient of W1[0, 0]: both
    backends right, as far as a gradient can be."""

    def trace(self, x, targets, masks=None):
        out = super().trace(x, targets, masks)
        dw = out["dW1"].copy()
        dw[0, 0] += np.finfo(dw.dtype).eps * np.max(np.abs(dw))
        out["dW1"] = dw
        return out


def _follow(spec, actual_class, rng, bounds=None, tiny_column=False, referees=()):
    tensors, x, targets = _data(spec, rng, tiny_column=tiny_column)
    plan = list(training_plan(spec, len(x)))
    actual, desired = actual_class(spec, tensors=tensors), ScratchBackend(spec, tensors=tensors)
    return follow(actual, desired, x, targets, plan, bounds, referees=referees)


def test_an_adaptive_step_amplifying_a_near_zero_gradient_is_named(rng):
    trajectory = _follow(_spec(ADAM, hidden="tanh"), NudgedGradient, rng, tiny_column=True)
    assert trajectory.parting_step == 0 and trajectory.parting_quantity == "W1"
    assert trajectory.cause == "amplification", trajectory.verdict()
    assert trajectory.amplification.index == (0, 0)
    assert trajectory.amplification.sensitivity > 1e3 * ADAM.learning_rate
    assert trajectory.ok


def test_the_same_nudge_under_sgd_stays_within_tolerance(rng):
    trajectory = _follow(_spec(OptimizerSpec("sgd", learning_rate=0.1), hidden="tanh"), NudgedGradient, rng,
                         tiny_column=True)
    assert trajectory.parting_step is None, trajectory.verdict()


class OtherRounding(Named):
    """Every gradient element moved by one rounding (±ε of itself), as another summation order
    would: a correct backend that is not bit-identical."""

    def trace(self, x, targets, masks=None):
        out = super().trace(x, targets, masks)
        signs = np.random.default_rng(len(self.model.weights)).choice([-1, 1], 10**4)
        for name in [name for names in self.spec.gradient_names for name in names]:
            g = out[name]
            eps = np.finfo(g.dtype).eps
            out[name] = g * (1 + eps * signs[:g.size].reshape(g.shape)).astype(g.dtype)
        return out


class SlightlyFastSGD(Named):
    """Every update 1e-8 larger than SGD's: a real bug, in the copy's own code."""

    def apply_gradients(self, gradients):
        super().apply_gradients([g * (1 + 1e-8) for g in gradients])


class StandIn:
    """A backend that does not run the engine as its model (``judge.engine_backend.runs_engine``
    is false): a framework twin's stand-in, built on an engine it keeps to itself. ``faster``
    scales every update, as :class:`SlightlyFastSGD` does."""

    def __init__(self, spec, name="twin", faster=1.0, *, tensors):
        self.spec, self.name, self.faster = spec, name, faster
        self._inner = ScratchBackend(spec, tensors=tensors)

    def trace(self, x, targets, masks=None):
        return self._inner.trace(x, targets, masks)

    def apply_gradients(self, gradients):
        self._inner.apply_gradients([g * self.faster for g in gradients])

    def tensors(self):
        return self._inner.tensors()

    def optimizer_state(self):
        return self._inner.optimizer_state()

    def load_state(self, weights, biases, state, *, tensors=None):
        self._inner.load_state(weights, biases, state, tensors=tensors)


def _referee(name="referee"):
    built = []

    def make(spec, tensors):
        built.append(spec.dtype)
        return StandIn(spec, name, tensors=tensors)

    return make, built


def test_the_arbiter_clears_rounding(rng):
    sgd = _spec(OptimizerSpec("sgd", learning_rate=0.1), hidden="tanh")
    # Correct backends parting only because the bound is set below the floor: the arbiter clears them.
    make, built = _referee()
    cleared = _follow(sgd, OtherRounding, rng, bounds={"parameters": 1e-30, "curve": 1e-30}, referees=[make])
    assert cleared.cause == "arbiter" and cleared.arbiter.dtype.startswith("longdouble")
    assert cleared.ok and cleared.farther is None, cleared.verdict()
    assert built == [] and cleared.arbiter.superseded is None     # the engine's run decided


def test_the_engines_own_run_cannot_blame_when_the_engine_is_a_side(rng):
    """Both sides run the engine and one of them is off: the engine's higher-precision run is
    their own code, so without a third backend the verdict says it cannot tell — a FAIL that
    names no side."""
    sgd = _spec(OptimizerSpec("sgd", learning_rate=0.1), hidden="tanh")
    flagged = _follow(sgd, SlightlyFastSGD, rng)
    assert flagged.parting_step is not None and flagged.cause == "arbiter", flagged.verdict()
    assert not flagged.ok and flagged.farther is None
    assert flagged.arbiter.same_code == ("copy", "scratch") and not flagged.arbiter.independent
    assert "cannot tell which side is off" in flagged.verdict()
    assert flagged.blame() == "cannot tell which side is off"


def test_an_independent_referee_names_the_side_that_is_off(rng):
    """The same pair with a third backend offered: it referees in float64 and names the copy."""
    sgd = _spec(OptimizerSpec("sgd", learning_rate=0.1), hidden="tanh")
    make, built = _referee()
    flagged = _follow(sgd, SlightlyFastSGD, rng, referees=[make])
    assert built == ["float64"] and flagged.arbiter.referee == "referee" and flagged.arbiter.independent
    assert flagged.arbiter.superseded is not None and flagged.arbiter.superseded.referee == "the engine"
    assert not flagged.ok and flagged.farther == "copy", flagged.verdict()
    assert flagged.verdict().endswith("copy is off") and flagged.blame() == "copy is off"


def test_a_referee_that_cannot_run_or_is_a_side_is_passed_over(rng):
    sgd = _spec(OptimizerSpec("sgd", learning_rate=0.1), hidden="tanh")

    def refuses(spec, tensors):
        raise BackendError("cannot express this spec")

    def engine(spec, tensors):
        return ScratchBackend(spec, tensors=tensors)           # the engine again: not independent

    side, _ = _referee("copy")                                  # one of the two sides
    make, built = _referee()
    flagged = _follow(sgd, SlightlyFastSGD, rng, referees=[refuses, engine, side, make])
    assert flagged.arbiter.referee == "referee" and flagged.farther == "copy", flagged.verdict()
    unjudged = _follow(sgd, SlightlyFastSGD, rng, referees=[refuses, engine, side])
    assert unjudged.farther is None and "cannot tell" in unjudged.verdict()


@pytest.mark.parametrize("buggy", ["actual", "desired"])
def test_a_twin_side_bug_is_blamed_on_the_twin(rng, buggy):
    """A stand-in twin (not the engine) off against the engine, on either side of the pair: the
    engine's run is the engine side's own code, so it cannot blame the twin alone; a third backend
    does. Against another stand-in the engine's run is independent of both and names the twin."""
    sgd = _spec(OptimizerSpec("sgd", learning_rate=0.1), hidden="tanh")
    tensors, x, targets = _data(sgd, rng)
    plan = list(training_plan(sgd, len(x)))

    def pair(other):
        twin = StandIn(sgd, "twin", faster=1 + 1e-8, tensors=tensors)
        return (twin, other) if buggy == "actual" else (other, twin)

    unjudged = follow(*pair(ScratchBackend(sgd, tensors=tensors)), x, targets, plan)
    assert not unjudged.ok and unjudged.farther is None, unjudged.verdict()
    make, _ = _referee()
    judged = follow(*pair(ScratchBackend(sgd, tensors=tensors)), x, targets, plan, referees=[make])
    assert not judged.ok and judged.farther == "twin", judged.verdict()
    assert judged.arbiter.referee == "referee" and judged.arbiter.superseded.same_code == ("scratch",)
    among_twins = follow(*pair(StandIn(sgd, "other", tensors=tensors)), x, targets, plan)
    assert among_twins.arbiter.referee == "the engine" and among_twins.arbiter.independent
    assert not among_twins.ok and among_twins.farther == "twin", among_twins.verdict()


def test_the_arbiters_rule_in_every_case():
    def arbiter(actual, reference, same_code=()):
        return Arbiter("float64", actual, reference, 4.0, 1e-13, "jax" if not same_code else "the engine",
                       same_code)

    assert arbiter(1e-15, 2e-15).ok and arbiter(1e-15, 2e-15, ("scratch",)).ok
    assert arbiter(1e-10, 1e-15).off("torch", "scratch") == "torch"
    assert arbiter(1e-15, 1e-10).off("torch", "scratch") == "scratch"
    assert arbiter(1e-10, 1e-15, ("scratch",)).off("torch", "scratch") is None      # its own code
    assert arbiter(1e-15, 1e-10, ("scratch",)).off("torch", "scratch") == "scratch"
    assert arbiter(1e-15, 1e-10, ("copy", "scratch")).off("copy", "scratch") is None
    assert not arbiter(1e-15, 1e-10, ("copy", "scratch")).ok


def _verdict(rows, trainings=()):
    spec = _spec(ADAM)
    return Verdict(spec, rows, list(trainings), ["scratch", "torch"], {"keras": "not installed"}, 5,
                   "backprop-parity check --steps 5")


def test_the_verdict_headline_and_json(tmp_path):
    ok = Comparison("dW1", 1, "gradient", 1e-15, 1e-13)
    bad = Comparison("dW2", 2, "gradient", 3e-10, 1e-13, ulps=5e4, where=(1, 2))
    passing = _verdict([("torch vs scratch", ok)])
    assert passing.ok and passing.headline().startswith("verdict: PASS — all 1 comparisons within tolerance")
    failing = _verdict([("torch vs scratch", ok), ("torch vs scratch", bad)])
    assert not failing.ok
    assert failing.headline().startswith("verdict: FAIL — 1 of 2 comparisons exceed tolerance")
    assert "torch vs scratch layer 2 dW2 (rel err 3.00e-10, 3e+03× the bound 1e-13)" in failing.headline()
    details = "\n".join(failing.failure_details())
    assert "passes at 3.000e-10" in details and "reproduce: backprop-parity check --steps 5" in details
    failing.write_json(tmp_path / "c.json")
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["ok"] is False and data["skipped"] == {"keras": "not installed"}
    [row] = [r for r in data["comparisons"] if not r["ok"]]
    assert (row["smallest_passing_tolerance"], row["where"], row["layer"]) == (3e-10, [1, 2], 2)


@pytest.mark.parametrize("variant,kind,first_name", [("seed003_adam_no_sqrt", "update", "W1 update"),
                                                     ("seed001_bias_scalar", "gradient", "db3")])
def test_the_seed_faithful_variants_fail_the_per_step_check(variant, kind, first_name, rng):
    """Re-synchronizing keeps a variant the variant (its model and optimizer classes survive
    ``load_state``), so each seed's bug fails at step 0 where it acts."""
    from reports.scenarios.variants import VariantBackend
    from scratch.variants import VARIANTS

    spec = _spec(ADAM)
    tensors, x, targets = _data(spec, rng)
    actual = VariantBackend(VARIANTS[variant], spec, tensors=tensors)
    result = check_steps(actual, ScratchBackend(spec, tensors=tensors), ScratchBackend(spec, tensors=tensors),
                         x, targets, list(training_plan(spec, len(x))))
    first = result.failed[0]
    assert (first.kind, first.step, first.name) == (kind, 0, first_name), first.describe()
    assert {c.step for c in result.failed} == set(range(result.steps))


def test_a_summed_gradients_rounding_is_taken_at_its_operand_scale():
    """A BatchNorm β whose gradient sums 144 terms to 0 in one backend and −2.8e-17 in the other
    (measured, JAX vs the engine): at ε·max|g| the amplified rounding (1.9e-13) falls short of the
    observed 2.8e-12 step, at the sum's operand scale (its floor) it covers it; a step 1e3×
    larger is still not explained."""
    def amplification(observed, scale):
        return Amplification("b2", (1,), -2.8e-17, 8.7e-3, 1e5, 1e-3, 1e5 * 2.2e-16 * scale, observed, scale)

    assert not amplification(2.8e-12, 8.7e-3).explains
    assert "ε·max|g|" in amplification(2.8e-12, 8.7e-3).describe()
    summed = amplification(2.8e-12, 0.9)
    assert summed.explains and "ε·9.00e-01, the operand scale of a sum of many terms" in summed.describe()
    assert not amplification(2.8e-9, 0.9).explains
