"""``compare A B``: two models on one batch, every quantity, and the doctor's verdict.

Both sides run in float64 (:func:`ports.sides.read_side` casts a float32 model first: every
float32 weight is exactly a float64 one), so neither framework's float32 rounding can pass for a
difference between the two models.

1. **Fill.** What a side leaves out comes from the other side (:func:`fill`): its weights (A's
   tensors put in B's form and loaded into B's own object), its loss, its optimizer (A's
   hyperparameters in B's framework's convention).
2. **Faithfulness.** Each side's own object against the twin of its own framework built from its
   reading (:mod:`ports.twin_model`: the same layers, loss and optimizer, so they agree to the last
   bits): outputs in training and inference mode, the loss, every gradient, the parameters and
   running statistics after one optimizer step and the parameters after two
   (:data:`FAITHFUL_STEPS`), each within the float64 bound of :mod:`judge.tolerances`. Where they differ,
   the reading missed something the user's code does — for your own NumPy layers, where your bug
   is; a side whose inference outputs are its reading's *training* outputs runs in training mode
   when asked for inference (the ``eval_mode`` cause).
3. **The doctor** (:mod:`ports.doctor`) on the two readings in the engine, in float64: whether
   they are one model — every quantity, forward, gradients and ``steps`` training steps — and if not,
   which known causes explain the difference.
4. **Measured on the users' own objects** (:func:`measure_sides`): the same quantities of B against
   A, B in A's form (:mod:`ports.align`), then ``steps`` free-running steps of each side's own
   optimizer: the size of the difference in the frameworks themselves, reported beside the verdict.

The verdict: FAIL where a side's own code is not what its reading says (located); else PASS
when the readings agree (what the frameworks' runs still differ by is their rounding), PASS when
every difference is one the two frameworks fix (torch stores only the unbiased running variance,
Keras only the biased one; each optimizer keeps its own formula; Keras holds its hyperparameters
in float32: ``Cause.fixed``) — the closest a port can come, each named with its measured effect;
FAIL otherwise, with the doctor's causes, or the first quantity no known cause explains.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from judge.parity import Comparison, relative_error
from judge.tolerances import tolerance
from ports.align import align, structure_differences
from ports.causes import BY_NAME
from ports.doctor import Diagnosis, diagnose
from ports.initializers import differences
from ports.reading import OWN_CONVENTION, PortError, Reading, decay_expressible
from ports.twin_model import twin_for
from scratch.model import Network
from scratch.spec import ModelSpec


def _nest(spec: ModelSpec, flat) -> list[dict[str, np.ndarray]]:
    flat = iter(flat)
    return [{name: next(flat) for name in names} for names in spec.parameter_names]


def fill(side: Reading, real, other: Reading) -> Reading:
    """``side`` with what it left out taken from ``other`` (and its real model given the weights)."""
    spec = side.spec
    notes = list(side.notes)
    if "loss" not in side.given and "loss" in other.given and spec.loss != other.spec.loss:
        layers = list(spec.layers)
        layers[-1] = replace(layers[-1], activation=other.spec.output_activation)
        spec = spec.replace(loss=other.spec.loss, layers=tuple(layers))
        notes.append(f"loss taken from the other side: {other.spec.loss}")
    if "optimizer" not in side.given and "optimizer" in other.given:
        convention = OWN_CONVENTION.get(side.framework, other.spec.optimizer.convention)
        optimizer = replace(other.spec.optimizer, convention=convention)
        notes.append(f"optimizer taken from the other side, in {side.framework}'s convention: "
                     f"{optimizer.name} lr {optimizer.learning_rate}")
        if not decay_expressible(side.framework, optimizer):
            optimizer = replace(optimizer, decoupled_decay=not optimizer.decoupled_decay)
            form = "decoupled" if optimizer.decoupled_decay else "coupled"
            notes.append(f"{side.framework}'s {optimizer.name} decays weights {form} only: the other side's "
                         f"weight decay λ {optimizer.weight_decay} taken in that form")
        spec = spec.replace(optimizer=optimizer)
    tensors, statistics = side.tensors, side.statistics
    if "weights" not in side.given:
        mapped = align(side, other).reading              # the other side's tensors in this side's form
        tensors, statistics = mapped.tensors, other.statistics
        notes.append("weights taken from the other side")
    filled = replace(side, spec=spec, tensors=tensors, statistics=statistics, notes=tuple(notes))
    if hasattr(real, "use_spec"):
        real.use_spec(spec)
    real.load(tensors, statistics)
    return filled


def _row(name: str, actual, desired, dtype: str, kind: str) -> Comparison:
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    bound = tolerance(dtype, kind)
    if actual.shape != desired.shape:
        return Comparison(name, None, kind, np.inf, bound, f"shape {actual.shape} != {desired.shape}")
    return Comparison(name, None, kind, relative_error(actual, desired), bound)


def _quantities(real, spec: ModelSpec, x, targets, into_a=None,
                steps: int = 1) -> dict[str, tuple[str, np.ndarray]]:
    """{name: (kind, value)}: outputs in both modes, loss, gradients, parameters and BatchNorm's
    running statistics after one step, and after ``steps`` (the batch in the side's own dtype: a
    float64 batch rounded once for a float32 side). A second step shows what the first cannot:
    a momentum or an optimizer state that the first update does not use."""
    x, targets = np.asarray(x, dtype=spec.dtype), np.asarray(targets, dtype=spec.dtype)
    out = {"A_L (training)": ("forward", real.outputs(x, True)),
           "A_L (inference)": ("forward", real.outputs(x, False))}
    loss, gradients = real.loss_and_gradients(x, targets)
    out["loss"] = ("forward", np.asarray(loss))
    nested = _nest(spec, gradients)
    if into_a is not None:
        nested = into_a(nested)
    for layer, held in zip(spec.parameter_layers, nested, strict=True):
        for name, value in held.items():
            out[f"d{name}{layer}"] = ("gradient", value)
    tensors, statistics = real.step(x, targets)
    if into_a is not None:
        tensors = into_a(tensors)
    for layer, held in zip(spec.parameter_layers, tensors, strict=True):
        for name, value in held.items():
            out[f"{name}{layer} after 1 step"] = ("parameters", value)
    for layer, pair in zip(spec.statistics_layers, statistics or (), strict=True):
        for name, value in zip(("running mean", "running variance"), pair, strict=True):
            out[f"{name} {layer} after 1 step"] = ("parameters", value)
    for _ in range(steps - 1):
        tensors, _ = real.step(x, targets)
    if steps > 1:
        for layer, held in zip(spec.parameter_layers, into_a(tensors) if into_a else tensors, strict=True):
            for name, value in held.items():
                out[f"{name}{layer} after {steps} steps"] = ("parameters", value)
    return out


CANCELLED_SHORT = "a bias BatchNorm removes moves by rounding residue only"
CANCELLED = ("BatchNorm right after removes this bias: its true gradient is 0, so it holds rounding residue "
             "only (judged against its kernel's gradient; its trained value is shown, not judged)")


def judge_cancelled(rows: list[Comparison], spec: ModelSpec, desired: dict) -> list[Comparison]:
    """Rows of a bias a BatchNorm cancels (``spec.cancelled_biases``): its gradient's error relative
    to the layer's kernel gradient (the operand scale it is rounding residue of), its trained value
    not judged (it moves by residue, amplified by an adaptive optimizer)."""
    out = []
    for row in rows:
        layer = next((l for l in spec.cancelled_biases
                      if row.name in (f"db{l}", f"b{l}") or row.name.startswith(f"b{l} ")), None)
        if layer is None or row.problem:
            out.append(row)
        elif row.kind == "gradient":
            actual, wanted = desired["actual " + row.name], desired[row.name]
            floor = float(np.max(np.abs(desired[f"dW{layer}"])))
            out.append(replace(row, error=relative_error(actual, wanted, floor=floor), note=CANCELLED))
        else:
            out.append(replace(row, bound=np.inf, note=CANCELLED))
    return out


FAITHFUL_STEPS = 2
"""Optimizer steps a side's own object takes beside its twin: two, so that a momentum or an Adam
state the reading left out shows (the first update of SGD with momentum is plain SGD's)."""


def faithfulness(reading: Reading, real, x, targets) -> tuple[list[Comparison], str]:
    """The side's own object (actual) against its own framework's twin of its reading (desired),
    and a note where the engine stands in for that twin."""
    twin, note = twin_for(reading)
    dtype = reading.spec.dtype
    theirs = _quantities(twin, reading.spec, x, targets, steps=FAITHFUL_STEPS)
    real.load(reading.tensors, reading.statistics)
    ours = _quantities(real, reading.spec, x, targets, steps=FAITHFUL_STEPS)
    real.load(reading.tensors, reading.statistics)            # back to the start for what follows
    rows = [_row(name, ours[name][1], value, dtype, kind) for name, (kind, value) in theirs.items()]
    return judge_cancelled(rows, reading.spec, _values(ours, theirs)), note


def _values(ours: dict, theirs: dict) -> dict:
    """{name: desired value, "actual <name>": actual value} for :func:`judge_cancelled`."""
    values = {name: value for name, (_, value) in theirs.items()}
    values.update({f"actual {name}": value for name, (_, value) in ours.items()})
    return values


def eval_mode_evidence(reading: Reading, real, x) -> str | None:
    """Where the side's inference outputs are its reading's training-mode outputs: the sentence."""
    engine = Network(reading.spec, tensors=reading.tensors, statistics=reading.statistics)
    x = np.asarray(x, dtype=engine.dtype)
    inference, training = engine.inference_outputs(x)[1], engine.forward(x, training=True).output
    got = real.outputs(x, False)                      # x already in the reading's dtype
    as_training, as_inference = relative_error(got, training), relative_error(got, inference)
    if as_training <= tolerance(reading.spec.dtype, "forward") < as_inference:
        return (f"— asked for inference, {reading.source} returns its training-mode outputs (rel err "
                f"{as_training:.1e} to them, {as_inference:.1e} to the inference outputs): "
                f"{BY_NAME['eval_mode'].why}")
    return None


@dataclass(frozen=True)
class Measured:
    """One quantity of B against A in the frameworks' own runs: its normwise relative error."""

    name: str
    error: float
    note: str = ""


def measure_sides(a: Reading, real_a, b: Reading, real_b, x, targets, steps: int) -> list[Measured]:
    """B against A on the users' own objects, B in A's form, then ``steps`` free-running steps."""
    alignment = align(a, b)

    def into_a(tensors):
        return alignment.tensors(tensors, b.spec)

    ours = _quantities(real_b, b.spec, x, targets, into_a)
    theirs = _quantities(real_a, a.spec, x, targets)
    rows = judge_cancelled([_row(name, ours[name][1], value, "float64", kind)
                            for name, (kind, value) in theirs.items()], a.spec, _values(ours, theirs))
    for _ in range(steps - 1):
        tensors_a, _ = real_a.step(x, targets)
        tensors_b, _ = real_b.step(x, targets)
    if steps > 1:
        for layer, mine, other in zip(a.spec.parameter_layers, into_a(tensors_b), tensors_a, strict=True):
            rows += judge_cancelled([_row(f"{name}{layer} after {steps} steps", mine[name], other[name],
                                          "float64", "parameters") for name in other], a.spec, {})
        rows.append(_row(f"A_L (inference) after {steps} steps", real_b.outputs(x, False),
                         real_a.outputs(x, False), "float64", "forward"))
    return [Measured(row.name, row.error, "not judged: " + CANCELLED_SHORT if row.note else "")
            for row in rows]


@dataclass(frozen=True)
class Evidence:
    """A known cause seen on one side's own model: a reader's finding, or its inference outputs
    being its reading's training-mode ones."""

    label: str
    cause: str
    text: str
    own_model: bool = True      # says why the side's own model parts from its reading

    def describe(self) -> str:
        return f"{self.label}: {BY_NAME[self.cause].title} {self.text}"


@dataclass
class Result:
    a: Reading
    b: Reading
    faithful: dict[str, list[Comparison]]
    diagnosis: Diagnosis | None
    measured: list[Measured] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unfaithful(self) -> list[str]:
        return [label for label, rows in self.faithful.items() if any(not c.ok for c in rows)]

    @property
    def ok(self) -> bool:
        return (not self.unfaithful and self.diagnosis is not None
                and (self.diagnosis.start.agrees or self.diagnosis.only_fixed))

    def worst_measured(self) -> str:
        judged = [m for m in self.measured if not m.note]
        if not judged:
            return "nothing measured"
        worst = max(judged, key=lambda m: m.error)
        return f"{worst.name} rel err {worst.error:.1e}"

    def headline(self) -> str:
        if self.unfaithful:
            label = self.unfaithful[0]
            first = next(c for c in self.faithful[label] if not c.ok)
            seen = list(dict.fromkeys(BY_NAME[e.cause].title for e in self.evidence
                                      if e.label == label and e.own_model))
            why = ("explained by " + ", ".join(seen)) if seen else "not a known convention"
            return (f"compare: FAIL — {label}'s own code computes something its reading does not, {why}: "
                    f"first {first.describe()} (the reading is what its framework's twin computes from "
                    "the spec read off it)")
        diagnosis = self.diagnosis
        runs = f"the frameworks' own runs differ by at most {self.worst_measured()}"
        if diagnosis.start.agrees:
            return (f"compare: PASS — A and B are one model: their readings agree at every quantity in "
                    f"float64 (forward, every gradient, training); {runs}, their rounding")
        fixed = [e.cause.title for e in diagnosis.explanations if e.fixed]
        if diagnosis.only_fixed:
            return (f"compare: PASS — B agrees with A up to what their frameworks fix, which no port can "
                    f"remove: {', '.join(fixed)}; {runs}, what those differences amount to in them")
        mistakes = [e.cause.title for e in diagnosis.explanations if not e.fixed]
        why = ("explained by " + ", ".join(mistakes)) if mistakes else "not a known convention"
        why += f" (besides what the frameworks fix: {', '.join(fixed)})" if fixed else ""
        why += "" if diagnosis.explained or not mistakes else "; the rest is not a known convention"
        return f"compare: FAIL — B differs from A, {why}; {runs}"


def run(a: Reading, real_a, b: Reading, real_b, x, targets, steps: int = 3) -> Result:
    """Steps 1–4 of the module docstring."""
    problems = structure_differences(a, b)     # named A and B as given (fill aligns each to the other)
    if problems:
        raise PortError("A and B are different models, not two forms of one: " + "; ".join(problems))
    drawn = differences(a, b)                  # each side's own draw, before either takes the other's
    b = fill(b, real_b, a)
    a = fill(a, real_a, b)
    faithful, notes = {}, []
    for label, reading, real in (("A", a, real_a), ("B", b, real_b)):
        faithful[label], note = faithfulness(reading, real, x, targets)
        if note:
            notes.append(f"{label}: {note}")
    evidence = []
    for label, reading, real in (("A", a, real_a), ("B", b, real_b)):
        evidence += [Evidence(label, f.cause, f"at {f.where}: {f.message}") for f in reading.findings]
        if any(not c.ok for c in faithful[label]):
            found = eval_mode_evidence(reading, real, x)
            if found:
                evidence.append(Evidence(label, "eval_mode", found))
            clipped = real.clipped_outputs(x) if hasattr(real, "clipped_outputs") else None
            if clipped:
                evidence.append(Evidence(label, "bce_clipping", clipped))
    evidence += [Evidence("B", "initializer", f"— {line}", own_model=False) for line in drawn]
    unfaithful = any(not c.ok for checked in faithful.values() for c in checked)
    diagnosis = None if unfaithful else diagnose(a, align(a, b).reading, x, targets, steps)
    measured = measure_sides(a, real_a, b, real_b, x, targets, steps)
    return Result(a, b, faithful, diagnosis, measured, evidence, notes)
