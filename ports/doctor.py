"""The convention doctor: which known cause (:mod:`ports.causes`) explains why B differs from A.

Both readings run in the NumPy engine in float64, so a framework's float32 rounding plays no part:
what differs here differs by a convention or a mistake. :func:`measure` takes every quantity of a
reading on one batch — each layer's Z_l and A_l in training mode, the loss, every gradient, the
outputs in inference mode and, after ``steps`` optimizer steps, every parameter and the inference
outputs again (BatchNorm's running statistics and the optimizer show only there). Two readings
agree where every quantity's normwise relative error (:func:`judge.parity.relative_error`) is at
most the float64 parameters bound of :mod:`judge.tolerances`, or where its difference is within
what the two measurements' own rounding explains (:func:`rounding`): each float64 quantity q is
measured against the same in ``np.longdouble`` too, and with e = max|q_float64 − q_longdouble|,

    |a − b| ≤ |a − a_long| + |a_long − b_long| + |b_long − b| ≈ e_a + e_b   when A and B compute
    the same function (a_long − b_long is longdouble's own rounding, 2⁻¹¹ of float64's),

so a difference up to :data:`NOISE_FACTOR`·(e_a + e_b) agrees. That matters for a quantity that
is zero in exact arithmetic, rounding alone: the bias of a conv2d or dense layer right before
batch_norm (the normalization cancels its gradient; Adam's step then divides that rounding by its
own root). Two forms of one model (another flatten order: the same sums in another order) round
it differently, and its relative error is 100% in a faithful port. Where ``np.longdouble`` is no
wider than float64, e reads 0 and only the bound is left.

:func:`diagnose` walks greedily from A toward B: it measures every variant of every cause (A
differing from B by that cause alone at one place), keeps the one that brings A closest — the
*distance* is Σ over quantities of log₁₀(error / bound), the decades still to close — and repeats
from there until A agrees with B or no variant brings it closer. The variants are ranked with the
current reading's long-double rounding standing in for each one's own (a convention changes a
quantity, hardly how much it rounds); the best is then measured on its own rounding and kept only if
that brings A closer — one long-double pass per step instead of one per variant. Each kept step is
printed with the worst quantity's error before and after it. What is still off at the end is not a
known convention: the first quantity that disagrees, in causal order (forward by layer, the loss,
gradients from the output layer down, inference outputs, then after training), names where; and
:func:`isolate` runs each layer of both alone, fed A's own inputs and upstream gradient
(:func:`judge.parity.localize`), to name the first layer that differs by itself rather than by what
reaches it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from judge.parity import Comparison, causal_order, localize, relative_error
from judge.tolerances import tolerance
from ports.causes import CAUSES, Cause
from ports.reading import Reading
from scratch.errors import ParityError
from scratch.model import Network
from scratch.optimizers import make_optimizer
from scratch.tensor_specs import gradient_name
from twins.backends import make_backend

AGREE = tolerance("float64", "parameters")
PAIRED = 6       # the best single variants tried in pairs when no single one brings A closer
NOISE_FACTOR = 4.0
"""The slack on e_a + e_b (the module docstring) for longdouble's own rounding."""


def measure(reading: Reading, x: np.ndarray, targets: np.ndarray, steps: int,
            dtype=np.float64) -> dict[str, np.ndarray]:
    """Every quantity of ``reading`` on (x, targets), in the engine, float64 (see the module) or
    ``dtype`` (``np.longdouble`` for :func:`rounding`)."""
    dtype = np.dtype(dtype)
    spec = reading.spec.replace(dtype="float64")
    tensors = [{name: np.asarray(value, dtype=dtype) for name, value in held.items()}
               for held in reading.tensors]
    statistics = None if reading.statistics is None else [
        tuple(np.asarray(value, dtype=dtype) for value in pair) for pair in reading.statistics]
    network = Network(spec, tensors=tensors, statistics=statistics, dtype=dtype)
    x, targets = np.asarray(x, dtype=dtype), np.asarray(targets, dtype=dtype)
    measured = dict(network.forward(x, training=True).named())
    loss, gradients = network.gradients(x, targets)
    measured["loss"] = np.asarray(loss)
    names = [gradient_name(name, layer) for layer, layer_names in
             zip(spec.parameter_layers, spec.parameter_names, strict=True) for name in layer_names]
    measured.update(zip(names, gradients, strict=True))
    measured["inference outputs"] = network.inference_outputs(x)[1]
    if steps:
        optimizer = make_optimizer(spec.optimizer)
        for _ in range(steps):
            network.train_step(x, targets, optimizer)
        for layer, held in zip(spec.parameter_layers, network.tensors, strict=True):
            for name, value in held.items():
                measured[f"{name}{layer} after {steps} steps"] = value.copy()
        measured[f"inference outputs after {steps} steps"] = network.inference_outputs(x)[1]
    return measured


def rounding(reading: Reading, x: np.ndarray, targets: np.ndarray, steps: int,
             measured: dict[str, np.ndarray]) -> dict[str, float]:
    """{quantity: e}, e = max|q_float64 − q_longdouble|: the rounding error ``measured``
    (``reading``'s float64 measurement) carries, as far as longdouble resolves it."""
    precise = measure(reading, x, targets, steps, np.longdouble)
    return {name: float(np.max(np.abs(np.asarray(value, np.longdouble) - precise[name]), initial=0.0))
            for name, value in measured.items()}


def ordered(names) -> list[str]:
    """Causal order: the trace's names (forward, loss, gradients), then inference, then training."""
    names = list(names)
    traced = [name for name in names if " " not in name]
    return causal_order(traced) + [name for name in names if " " in name]


@dataclass(frozen=True)
class Gap:
    """How far a measurement is from the target: the worst quantity, its error, and the distance
    (Σ log₁₀(error / bound) over the quantities beyond the bound)."""

    quantity: str
    error: float
    distance: float
    first: str | None          # the first quantity beyond the bound, causal order
    first_error: float = 0.0

    @property
    def agrees(self) -> bool:
        return self.first is None

    def describe(self) -> str:
        if self.agrees:
            return f"every quantity agrees (worst rel err {self.error:.1e})"
        worst = "" if self.first == self.quantity else f", worst {self.quantity} {self.error:.2e}"
        return f"{self.first} off first (rel err {self.first_error:.2e}{worst})"


def gap(measured: dict, target: dict, noise: dict[str, float] | None = None) -> Gap:
    """How far ``measured`` is from ``target``; a quantity whose max|difference| is within its
    ``noise`` (what rounding explains: NOISE_FACTOR·(e_a + e_b), the module docstring) agrees:
    its relative error is taken against max(max|target|, noise / AGREE)."""
    noise = noise or {}
    errors = {name: relative_error(measured[name], target[name], noise.get(name, 0.0) / AGREE)
              for name in ordered(target)
              if name in measured and np.shape(measured[name]) == np.shape(target[name])}
    errors.update({name: math.inf for name in target if name not in errors})
    worst = max(errors, key=lambda name: errors[name])
    beyond = [name for name in ordered(errors) if not errors[name] <= AGREE]
    distance = sum(min(math.log10(errors[name] / AGREE), 40.0) for name in beyond)
    first = beyond[0] if beyond else None
    return Gap(worst, errors[worst], distance, first, errors[first] if first else 0.0)


@dataclass(frozen=True)
class Explanation:
    cause: Cause
    where: str
    before: Gap
    after: Gap
    fixed: bool = False         # a side's framework fixes it: no port can remove it

    def describe(self) -> str:
        fixed = "; a side's framework fixes this, no port can remove it" if self.fixed else ""
        return (f"{self.cause.title} — {self.where}: before, {self.before.describe()}; with it undone, "
                f"{self.after.describe()} ({self.cause.why}{fixed})")


@dataclass
class Diagnosis:
    start: Gap
    explanations: list[Explanation] = field(default_factory=list)
    end: Gap | None = None
    isolated: Comparison | None = None   # where not explained: the first layer off on A's own inputs
    isolation_ran: bool = False

    @property
    def explained(self) -> bool:
        return self.end is not None and self.end.agrees

    @property
    def only_fixed(self) -> bool:
        """Explained entirely by differences the sides' frameworks fix (none a port could remove)."""
        return self.explained and bool(self.explanations) and all(e.fixed for e in self.explanations)

    @property
    def causes(self) -> list[str]:
        return [explanation.cause.name for explanation in self.explanations]

    def lines(self) -> list[str]:
        if self.start.agrees:
            return ["the two readings agree in float64: nothing for the doctor to explain"]
        lines = [f"explained by {explanation.describe()}" for explanation in self.explanations]
        if not self.explained:
            end = self.end or self.start
            layer = "".join(ch for ch in end.first if ch.isdigit()) if end.first else ""
            at = f"layer {layer}, " if layer and " " not in end.first else ""
            after = ", after the above" if self.explanations else ""
            lines.append(f"not a known convention: first divergence at {at}quantity {end.first} "
                         f"(rel err {end.first_error:.2e}{after})")
            if self.isolated is not None:
                first = self.isolated
                lines.append(f"  each layer fed A's own inputs: layer {first.layer} differs by itself first, "
                             f"at {first.name} (rel err {first.error:.2e})")
            elif self.isolation_ran:
                lines.append("  each layer fed A's own inputs: every layer agrees, so the difference is in "
                             "what the layers pass on or in training (the optimizer, the running statistics)")
        return lines


def diagnose(a: Reading, b: Reading, x: np.ndarray, targets: np.ndarray, steps: int = 3,
             causes=CAUSES, max_causes: int = 8) -> Diagnosis:
    """Walk from A toward B by known causes (see the module docstring); both readings in one form
    (:func:`ports.align.align`)."""
    target = measure(b, x, targets, steps)
    target_rounding = rounding(b, x, targets, steps, target)

    def gap_to_b(reading: Reading, own: dict | None = None) -> tuple[Gap, dict]:
        """The gap, allowing for both sides' rounding; ``own``: a stand-in for ``reading``'s own."""
        measured = measure(reading, x, targets, steps)
        own = rounding(reading, x, targets, steps, measured) if own is None else own
        return gap(measured, target, {name: NOISE_FACTOR * (own.get(name, 0.0) + error)
                                      for name, error in target_rounding.items()}), own

    def ranked(reading: Reading, own: dict, skip=()) -> list:
        """[(gap, cause, where, variant)] of every variant of ``reading``, best first, ranked with
        ``own`` (the reading's rounding) standing in for each variant's."""
        found = []
        for cause in causes:
            if cause in skip:
                continue
            for where, variant in cause.variants(reading, b):
                try:
                    found.append((gap_to_b(variant, own)[0], cause, where, variant))
                except ParityError:
                    continue                       # a variant the engine cannot build
        return sorted(found, key=lambda entry: entry[0].distance)

    current, (current_gap, current_own) = a, gap_to_b(a)
    diagnosis = Diagnosis(current_gap)
    while not current_gap.agrees and len(diagnosis.explanations) < max_causes:
        singles = ranked(current, current_own)
        if not singles:
            break
        steps_taken = [singles[0][1:]]
        variant_gap, variant_own = gap_to_b(singles[0][3])     # kept only on its own rounding
        if variant_gap.distance >= current_gap.distance:
            # two causes that only together close the gap (each alone leaves the other's effect
            # as large): the best pair of two different causes from the best singles
            pairs = [(second, first) for first in singles[:PAIRED]
                     for second in ranked(first[3], current_own, skip=(first[1],))[:1]]
            if not pairs:
                break
            second, first = min(pairs, key=lambda pair: pair[0][0].distance)
            variant_gap, variant_own = gap_to_b(second[3])
            if variant_gap.distance >= current_gap.distance:
                break
            steps_taken = [first[1:], second[1:]]
        for cause, where, variant in steps_taken:
            after = variant_gap if variant is steps_taken[-1][2] else gap_to_b(variant, current_own)[0]
            diagnosis.explanations.append(Explanation(cause, where, current_gap, after,
                                                      cause.fixed_between(current, b)))
            current, current_gap = variant, after
        current_own = variant_own
    diagnosis.end = current_gap
    if not current_gap.agrees and current.spec.n_layers == b.spec.n_layers:
        diagnosis.isolated, diagnosis.isolation_ran = isolate(current, b, x, targets), True
    return diagnosis


def _engine(reading: Reading):
    """The reading in the engine, float64 (as :func:`measure` runs it)."""
    tensors = [{name: np.asarray(value, np.float64) for name, value in held.items()}
               for held in reading.tensors]
    statistics = None if reading.statistics is None else [
        tuple(np.asarray(value, np.float64) for value in pair) for pair in reading.statistics]
    return make_backend("scratch", reading.spec.replace(dtype="float64"), statistics=statistics,
                        tensors=tensors)


def isolate(a: Reading, b: Reading, x: np.ndarray, targets: np.ndarray) -> Comparison | None:
    """The first quantity (Z, A, dZ, each gradient, dA_{l−1}) of the lowest layer of B that differs
    from A's when each runs alone fed A's own A_{l−1} and dA_l (training mode, no dropout); None
    where every layer agrees."""
    desired, actual = _engine(a), _engine(b)
    x, targets = np.asarray(x, np.float64), np.asarray(targets, np.float64)
    trace = desired.trace(x, targets)
    failed = [c for c in localize(actual, desired, trace, x, targets, None, "float64") if not c.ok]
    return failed[0] if failed else None                # localize lists layer by layer, in that order
