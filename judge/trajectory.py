"""Free-running trajectories: measured and explained, not failed on rounding.

Two correct backends trained from the same start on the same plan part by rounding, and two
mechanisms can blow that up far beyond any bound near the floating-point floor:

* **A discrete branch taken differently within rounding distance.** A pre-activation Z that is
  zero to rounding (+9.3e-9 in one backend, −1.6e-7 in the other, float32) sends ReLU′ (or
  leaky ReLU′) down different branches: one element of the gradient differs by O(1) of itself,
  and every later step inherits it.
* **An adaptive step amplifying a near-zero gradient.** Adam and RMSprop divide by √v + ε; for
  a gradient element g near zero (a rarely lit pixel, a nearly dead unit) the update's
  sensitivity |∂θ′/∂g| is up to lr·ε/(|g| + ε)² (Adam's first step, m̂ = g, √v̂ = |g|) — 1e5 at
  lr = 1e-3, ε = 1e-8 — against lr·(1 − β₁)/√v̂ for a typical element. A 2e-18 difference in
  g (1e-16 of the largest gradient: both backends right) becomes 2e-13 in θ after one step.

:func:`follow` runs both backends step by step, finds the first step where the parameters or
the loss part (exceed their bound in :mod:`judge.tolerances`) and says why: a kink flip at
or before that step (every flipped element, with both Z values), or the amplification at the
worst element (its gradient, the measured sensitivity and the predicted effect of one rounding
of the gradient). Where neither applies, an **arbiter** (:class:`Arbiter`) decides: the NumPy
engine run on the same plan in float64 (for float32 runs) or ``np.longdouble`` (float64 runs).
The pair passes when each side's distance to it is at most ``ARBITER_FACTOR`` times the other's
plus the floor (the parameters bound); otherwise the verdict names the side that is off. The
engine's run is the engine's own math, though: where the engine is one of the two sides it can
clear the pair, or find the engine's side off, but never blame the other side (a wrong engine is
as close to itself as ever). Where it cannot decide, a third backend the caller offers
(``referees``: a framework twin, in float64) referees instead, and where none can, the verdict
says plainly that it cannot tell which side is off (still a FAIL: the two parted for no
rounding cause). An arbiter is not asked after a kink flip, nor after a
max-pool tie broken differently within rounding (:mod:`judge.pool_ties`, the same branch in
another guise: the window's gradient goes to one element or the other): rounding took one side,
and the higher-precision run may simply take the other.

The pass/fail verdict on training is :mod:`judge.stepwise`; a parting explained here is a
measurement, reported with its cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from judge import pool_ties
from judge.engine_backend import runs_engine
from judge.optimizer_state import (
    OptimizerState,
    canonical_gradients,
    canonical_parameters,
    flat_tensors,
)
from judge.parity import loss_floor, relative_error, trace_floors
from judge.pool_ties import TieFlip
from judge.stepwise import parameter_names
from judge.tolerances import AMPLIFIED, ARBITER_FACTOR, tolerance
from scratch.batching import batches, map_masks
from scratch.errors import BackendError
from scratch.model import MLP
from scratch.optimizers import make_optimizer
from scratch.tensor_specs import gradient_name

KINKED = ("relu", "leaky_relu")
ADAPTIVE = ("rmsprop", "adam")


@dataclass(frozen=True)
class KinkFlip:
    """A hidden unit whose pre-activation sits on different sides of the kink in two backends."""

    step: int
    layer: int
    index: tuple[int, ...]
    z_actual: float
    z_reference: float

    def describe(self) -> str:
        return (f"step {self.step}: Z{self.layer}{list(self.index)} = {self.z_actual:+.3e} (actual) vs "
                f"{self.z_reference:+.3e} (reference), both zero to rounding: the kink's derivative differs")


@dataclass(frozen=True)
class Amplification:
    """The adaptive step's sensitivity at the parameter element that parted first."""

    parameter: str
    index: tuple[int, ...]
    gradient: float              # the reference's g at that element
    largest_gradient: float      # max |g| over the tensor
    sensitivity: float           # |∂θ′/∂g| at that element, measured on the reference optimizer
    learning_rate: float
    predicted: float             # sensitivity · ε_dtype · scale: one rounding of the gradient, amplified
    observed: float              # |θ_actual − θ_reference| at that element
    scale: float = 0.0           # g's operand scale: max|g|, or its floor where larger (a sum of many terms)

    @property
    def explains(self) -> bool:
        return self.sensitivity >= AMPLIFIED * self.learning_rate and self.predicted >= 0.1 * self.observed

    def describe(self) -> str:
        return (f"{self.parameter}{list(self.index)}: |g| = {abs(self.gradient):.2e} "
                f"({abs(self.gradient) / self.largest_gradient:.1e} of max|g|); the step amplifies a "
                f"gradient difference by |∂θ′/∂g| = {self.sensitivity:.3g} (lr = {self.learning_rate:g}), "
                f"so one rounding of g ({self._rounding()}) moves θ by {self.predicted:.2e}; "
                f"observed {self.observed:.2e}")

    def _rounding(self) -> str:
        if self.scale <= self.largest_gradient:
            return "ε·max|g|"
        return f"ε·{self.scale:.2e}, the operand scale of a sum of many terms"


@dataclass(frozen=True)
class Arbiter:
    """Distances of both backends' final parameters to a referee: the same start trained on the
    same plan by a run in higher precision (or, for a third backend on a float64 run, in the
    run's own precision: ``dtype`` says which).

    ``same_code`` names the sides that run the referee's own code — the engine's higher-precision
    run is the engine's math. Such a referee can clear a pair (each side as close to it as the
    other) and can find its own side off (an independent side agrees with it, its own does not),
    but never blame the other side: a wrong engine is as close to itself as ever. A referee
    independent of both sides (``same_code`` empty) judges both the same way."""

    dtype: str
    actual: float
    reference: float
    factor: float
    floor: float
    referee: str = "the engine"             # whose code the referee runs: the engine, or a third backend
    same_code: tuple[str, ...] = ()         # the sides that run that code (empty: independent)
    superseded: Arbiter | None = None       # the engine's own run, when it could not decide

    @property
    def independent(self) -> bool:
        return not self.same_code

    @property
    def actual_within(self) -> bool:
        return self.actual <= self.factor * self.reference + self.floor

    @property
    def reference_within(self) -> bool:
        return self.reference <= self.factor * self.actual + self.floor

    @property
    def ok(self) -> bool:
        """Each side within ``factor`` × the other's distance + ``floor``."""
        return self.actual_within and self.reference_within

    def off(self, actual_name: str, desired_name: str) -> str | None:
        """The side found off — only where the other side does not run the referee's code (a
        referee agrees with its own code by construction, which is no evidence); else None."""
        if not self.actual_within and desired_name not in self.same_code:
            return actual_name
        if not self.reference_within and actual_name not in self.same_code:
            return desired_name
        return None

    def describe(self, actual_name: str, desired_name: str) -> str:
        """Who referees, both distances and the rule's outcome, ending in the verdict."""
        own = " and ".join(self.same_code)
        whose = f"{own}'s own code" if own else "independent of both sides"
        head = (f"{self.referee} in {self.dtype} referees, {whose}: {actual_name} {self.actual:.3e} "
                f"from it, {desired_name} {self.reference:.3e}")
        if self.superseded is not None:
            first = self.superseded
            head = (f"{first.referee} in {first.dtype} is {' and '.join(first.same_code)}'s own code and "
                    f"could not decide ({actual_name} {first.actual:.3e}, {desired_name} "
                    f"{first.reference:.3e} from it); {head}")
        rule = f"{self.factor:g}× the other's distance + {self.floor:.0e}"
        if self.ok:
            return f"{head}; each within {rule}: rounding"
        beyond = actual_name if not self.actual_within else desired_name
        blamed = self.off(actual_name, desired_name)
        if blamed is None:
            return (f"{head}; {beyond} beyond {rule}, but the referee is {own}'s own code: it cannot tell "
                    f"which side is off (no independent backend could referee)")
        return f"{head}; {blamed} beyond {rule}: {blamed} is off"


@dataclass(frozen=True)
class Trajectory:
    """Two free-running trajectories compared step by step."""

    actual: str
    desired: str
    dtype: str
    steps: int
    losses: dict[str, list[float]]
    parameter_errors: list[float]          # max over tensors of the normwise error, after each step
    loss_errors: list[float]               # per-step loss error, floored at max|Z_L| (loss_floor)
    parting_step: int | None = None
    parting_quantity: str = ""
    cause: str = ""                         # "", "kink", "tie", "amplification", "arbiter"
    flips: list[KinkFlip] = field(default_factory=list)
    ties: list[tuple[int, TieFlip]] = field(default_factory=list)   # (step, max-pool tie flipped)
    amplification: Amplification | None = None
    arbiter: Arbiter | None = None

    @property
    def ok(self) -> bool:
        if self.parting_step is None or self.cause in ("kink", "tie", "amplification"):
            return True
        return self.arbiter is not None and self.arbiter.ok

    @property
    def farther(self) -> str | None:
        """The backend an independent referee finds off (None: within tolerance, explained,
        cleared, or no referee could tell)."""
        return None if self.arbiter is None else self.arbiter.off(self.actual, self.desired)

    def blame(self) -> str:
        """A few words for a headline: which side is off, or that no referee could tell."""
        if self.ok:
            return "ok"
        return f"{self.farther} is off" if self.farther else "cannot tell which side is off"

    def verdict(self) -> str:
        """One line: within tolerance, parted and why, or which backend is wrong."""
        largest = max(self.parameter_errors, default=0.0)
        if self.parting_step is None:
            return f"within tolerance for all {self.steps} steps (largest parameter error {largest:.2e})"
        head = f"parted at step {self.parting_step} ({self.parting_quantity})"
        if self.cause == "kink":
            more = f" and {len(self.flips) - 1} more" if len(self.flips) > 1 else ""
            return f"{head}: a kink flipped by rounding — {self.flips[0].describe()}{more}"
        if self.cause == "tie":
            step, tie = self.ties[0]
            more = f" and {len(self.ties) - 1} more" if len(self.ties) > 1 else ""
            return f"{head}: a max-pool tie broken by rounding — step {step}, {tie.describe()}{more}"
        if self.cause == "amplification":
            return f"{head}: an adaptive step amplified rounding — {self.amplification.describe()}"
        return f"{head}, no rounding cause found; {self.arbiter.describe(self.actual, self.desired)}"


def follow(actual, desired, x, targets, plan, bounds: dict | None = None, referees=()) -> Trajectory:
    """Train both backends (in place) on ``plan`` from their current state, comparing every step.
    ``bounds`` overrides the "parameters" and "curve" bounds (tests only, explicitly).
    ``referees``: callables ``make(spec, tensors)`` building a third backend (the caller's, e.g. a
    twin) for a spec in float64, asked in order when the engine's own higher-precision run cannot
    decide (:func:`_arbitrate`); one that raises :class:`scratch.errors.BackendError` is passed over."""
    plan = list(plan)
    spec = desired.spec
    dtype = spec.dtype
    bounds = bounds or {}
    parameter_bound = bounds.get("parameters", tolerance(dtype, "parameters"))
    curve_bound = bounds.get("curve", tolerance(dtype, "curve"))
    start = (desired.tensors(), desired.optimizer_state())
    losses = {"actual": [], "reference": []}
    parameter_errors, loss_errors, flips, ties = [], [], [], []
    parting, quantity, amplification = None, "", None
    for step, x_batch, y_batch in batches(x, targets, plan):
        got = actual.trace(x_batch, y_batch, step.masks)
        want = desired.trace(x_batch, y_batch, step.masks)
        if parting is None:
            flips += kink_flips(got, want, spec, step.step)
            ties += [(step.step, tie) for tie in pool_ties.tie_flips(got, want, spec, x_batch, dtype)]
        before = desired.tensors(), desired.optimizer_state()
        actual.apply_gradients(canonical_gradients(got, spec))
        desired.apply_gradients(canonical_gradients(want, spec))
        loss_a, loss_d = float(got["loss"]), float(want["loss"])
        losses["actual"].append(loss_a)
        losses["reference"].append(loss_d)
        floor = loss_floor(want[f"Z{spec.n_layers}"])
        loss_errors.append(relative_error(np.asarray(loss_a), np.asarray(loss_d), floor))
        errors = _parameter_errors(actual, desired)
        worst = max(errors, key=errors.get)
        parameter_errors.append(errors[worst])
        if parting is None:
            if errors[worst] > parameter_bound:
                parting, quantity = step.step, worst
                amplification = _amplification(actual, desired, before, want, worst, spec, x_batch)
            elif not loss_errors[-1] <= curve_bound:
                parting, quantity = step.step, "loss"
    result = Trajectory(actual.name, desired.name, dtype, len(plan), losses, parameter_errors, loss_errors,
                        parting, quantity, flips=flips if parting is not None else [],
                        ties=ties if parting is not None else [])
    if parting is None:
        return result
    if flips:
        return _replace(result, cause="kink")
    if ties:
        return _replace(result, cause="tie")
    if amplification is not None and amplification.explains and spec.optimizer.name in ADAPTIVE:
        return _replace(result, cause="amplification", amplification=amplification)
    arbiter = _arbitrate(actual, desired, start, x, targets, plan, parameter_bound, referees)
    return _replace(result, cause="arbiter", amplification=amplification, arbiter=arbiter)


def kink_flips(got: dict, want: dict, spec, step: int) -> list[KinkFlip]:
    """Hidden pre-activations on different sides of a ReLU/leaky-ReLU kink in the two traces,
    where both values are zero to rounding: |Z| ≤ (forward bound)·max|Z_l| in both."""
    bound = tolerance(spec.dtype, "forward")
    flips = []
    for layer in range(1, spec.n_layers):
        if spec.activations[layer - 1] not in KINKED:
            continue
        z_a = np.asarray(got[f"Z{layer}"], np.float64)
        z_d = np.asarray(want[f"Z{layer}"], np.float64)
        near = bound * float(np.max(np.abs(z_d)))
        flipped = ((z_a > 0) != (z_d > 0)) & (np.abs(z_a) <= near) & (np.abs(z_d) <= near)
        for index in zip(*np.nonzero(flipped), strict=True):
            flips.append(KinkFlip(step, layer, tuple(int(i) for i in index), float(z_a[index]),
                                  float(z_d[index])))
    return flips


def _parameter_errors(actual, desired) -> dict[str, float]:
    got, want = canonical_parameters(actual), canonical_parameters(desired)
    names = parameter_names(actual.spec)
    floors = _residue_floors(actual.spec, want)
    return {name: relative_error(a, d, floors.get(name, 0.0))
            for name, a, d in zip(names, got, want, strict=True)}


def _residue_floors(spec, parameters) -> dict[str, float]:
    """{"b_l": max|W_l|} for each bias a BatchNorm cancels (``spec.cancelled_biases``; a β_l
    before another BatchNorm: max|γ_l|): its true gradient is exactly 0, so its value is its start
    plus rounding residue (~1e-17 in float64 after a few SGD steps, different in every backend),
    and its error is measured at the scale of the layer's kernel, beside which it enters
    Z_l = W_l·A + b_l."""
    named = dict(zip(parameter_names(spec), parameters, strict=True))
    floors = {}
    for layer in spec.cancelled_biases:
        trainable = [tensor for tensor in spec.numbered_layers[layer - 1].tensors if tensor.trainable]
        kernel = next(tensor.name for tensor in trainable if not tensor.offset)
        floors.update((f"{tensor.name}{layer}", float(np.max(np.abs(named[f"{kernel}{layer}"]))))
                      for tensor in trainable if tensor.offset)
    return floors


def _amplification(actual, desired, before, want, worst: str, spec, x) -> Amplification:
    """The reference optimizer's sensitivity |∂θ′/∂g| at the element of ``worst`` that parted
    most, measured by a difference quotient in higher precision on the state before the step.
    One rounding of g is ε times its operand scale: max|g|, or the gradient's floor
    (:func:`judge.parity.trace_floors`) where that is larger — db_l sums m·H·W terms of dZ_l,
    so it carries their rounding however small the sum (measured: a BatchNorm β whose gradient
    summed 144 terms to 0 in the engine and to −2.8e-17 in JAX, 14× ε·max|g|)."""
    names = parameter_names(spec)
    index = names.index(worst)
    tensors, state = before
    theta = flat_tensors(spec, tensors)[index]
    gradient = canonical_gradients(want, spec)[index]
    got = canonical_parameters(actual)[index]
    now = canonical_parameters(desired)[index]
    difference = np.abs(np.asarray(got, np.float64) - now)
    element = np.unravel_index(int(np.argmax(difference)), difference.shape)
    high = _higher(spec.dtype)
    g = gradient.astype(high)
    delta = np.maximum(np.abs(g), high.type(spec.optimizer.epsilon)) * high.type(2.0 ** -20)
    moved = [_one_update(spec, theta, state, index, g + sign * delta, high) for sign in (0, 1)]
    sensitivity = np.abs(moved[1] - moved[0]) / delta
    largest = float(np.max(np.abs(gradient))) or 1.0
    scale = max(largest, trace_floors(want, x).get(gradient_name(worst), 0.0))
    eps = float(np.finfo(spec.dtype).eps)
    return Amplification(worst, tuple(int(i) for i in element), float(gradient[element]), largest,
                         float(sensitivity[element]), spec.optimizer.learning_rate,
                         float(sensitivity[element]) * eps * scale, float(difference[element]), scale)


def _one_update(spec, theta, state: OptimizerState, index: int, gradient, high) -> np.ndarray:
    optimizer = make_optimizer(spec.optimizer)
    optimizer.t = state.t
    if state.t:
        optimizer.state = [{name: buffer.astype(high) for name, buffer in state.slots[index].items()}]
    param = theta.astype(high)
    optimizer.step([param], [gradient])
    return param


def _arbitrate(actual, desired, start, x, targets, plan, floor: float, referees=()) -> Arbiter:
    """The NumPy engine in higher precision from ``start`` on ``plan``; both distances. Where the
    engine is a side (``judge.engine_backend.runs_engine``) and its run does not clear the pair,
    the first of ``referees`` that can run the spec — a backend that is neither side nor the engine
    — referees instead, in float64; where none can, the engine's run stands and cannot blame."""
    spec = desired.spec
    high = _higher(spec.dtype)
    tensors, state = start
    model = MLP(spec, tensors=[{name: array.astype(high) for name, array in layer.items()}
                               for layer in tensors], dtype=high)
    optimizer = make_optimizer(spec.optimizer)
    optimizer.t = state.t
    if state.t:
        optimizer.state = [{name: buffer.astype(high) for name, buffer in slot.items()}
                           for slot in state.slots]
    for step, x_batch, y_batch in batches(x, targets, plan):
        masks = map_masks(step.masks, lambda mask: mask.astype(high))
        inputs = x_batch if spec.token_inputs else x_batch.astype(high)       # token ids stay integers
        model.train_step(inputs, y_batch.astype(high), optimizer, masks)
    same_code = tuple(side.name for side in (actual, desired) if runs_engine(side))
    engine = _distances(actual, desired, [p.astype(np.float64) for p in model.parameters], floor,
                        _precision_name(high), "the engine", same_code)
    if engine.ok or engine.off(actual.name, desired.name) is not None:
        return engine
    for make in referees:
        try:
            referee = _referee_run(make, spec, start, x, targets, plan)
        except BackendError:
            continue
        if referee.name in (actual.name, desired.name) or runs_engine(referee):
            continue
        dtype = "float64" if spec.dtype != "float64" else "float64 (the run's own precision)"
        truth = canonical_parameters(referee)
        return replace(_distances(actual, desired, truth, floor, dtype, referee.name, ()), superseded=engine)
    return engine


def _referee_run(make, spec, start, x, targets, plan):
    """A third backend built by ``make`` for ``spec`` in float64 from ``start`` (parameters and
    optimizer state cast up exactly), trained on ``plan`` as :func:`follow` trains both sides."""
    spec64 = spec.replace(dtype="float64")
    tensors, state = start
    tensors64 = [{name: np.asarray(array, np.float64) for name, array in layer.items()} for layer in tensors]
    referee = make(spec64, tensors64)
    if state.t:
        state64 = OptimizerState(state.t, [{name: np.asarray(buffer, np.float64)
                                            for name, buffer in slot.items()} for slot in state.slots])
        referee.load_state(None, None, state64, tensors=tensors64)
    for step, x_batch, y_batch in batches(x, targets, plan):
        masks = map_masks(step.masks, lambda mask: np.asarray(mask, np.float64))
        trace = referee.trace(np.asarray(x_batch, np.float64), np.asarray(y_batch, np.float64), masks)
        referee.apply_gradients(canonical_gradients(trace, spec64))
    return referee


def _distances(actual, desired, truth, floor: float, dtype: str, referee: str, same_code) -> Arbiter:
    """Both backends' normwise distances to the referee's parameters ``truth`` (float64)."""
    spec = desired.spec
    truth = [np.asarray(t, np.float64) for t in truth]
    residues = _residue_floors(spec, truth)
    scales = [residues.get(name, 0.0) for name in parameter_names(spec)]
    distances = [max(relative_error(a, t, scale) for a, t, scale in zip(canonical_parameters(backend), truth,
                                                                        scales, strict=True))
                 for backend in (actual, desired)]
    return Arbiter(dtype, distances[0], distances[1], ARBITER_FACTOR, floor, referee, tuple(same_code))


def _higher(dtype: str) -> np.dtype:
    return np.dtype(np.longdouble if dtype == "float64" else np.float64)


def _precision_name(dtype: np.dtype) -> str:
    """"float64", or "longdouble (64-bit significand)": numpy's name for the x87 80-bit format
    is "float128", which says how it is stored, not how precise it is. Where longdouble is
    no wider than float64, the arbiter says so rather than pretend."""
    if dtype != np.longdouble:
        return dtype.name
    bits = np.finfo(dtype).nmant + 1
    return f"longdouble ({bits}-bit significand{', no wider than float64' if bits <= 53 else ''})"


def _replace(result: Trajectory, **changes) -> Trajectory:
    return replace(result, **changes)
