"""``compare A B``: two models on one batch, every quantity, and the doctor where they differ.

1. **Fill.** What a side leaves out comes from the other side (:func:`fill`): its weights (A's
   tensors put in B's form and loaded into B's own object), its loss, its optimizer (A's
   hyperparameters in B's framework's convention).
2. **Faithfulness.** Each side's own object against the engine running its reading
   (:func:`faithfulness`): outputs in training and inference mode, the loss, every gradient, the
   parameters after one optimizer step. Where they differ, the reading missed something the
   user's code does, and nothing measured on the reading would be about the user's model; a side
   whose inference outputs equal its reading's *training* outputs runs in training mode when asked
   for inference (the ``eval_mode`` cause).
3. **A against B** on the users' own objects (:func:`compare_sides`): the same quantities, B's
   gradients and parameters put in A's form (:mod:`ports.align`), then ``steps`` steps of each
   side's own optimizer from the same start, free-running. Each quantity's normwise relative error
   is held to the tolerance table of :mod:`judge.tolerances` for the lower precision of the two.
4. **The doctor** (:mod:`ports.doctor`) when something differs, on the readings in float64.

The verdict: PASS when every comparison is within tolerance; FAIL otherwise, with the doctor's
explanation. Trained parameters that part only after several free-running steps while the two
readings agree exactly in float64 are float32 rounding amplified by training (each framework
sums in its own order), not a port mistake: the verdict stays PASS and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from judge.parity import Comparison, relative_error
from judge.tolerances import tolerance
from ports.align import align
from ports.causes import BY_NAME
from ports.doctor import Diagnosis, diagnose
from ports.engine_model import EngineModel
from ports.reading import Reading
from scratch.model import Network
from scratch.spec import ModelSpec

CONVENTION_OF = {"torch": "torch", "keras": "keras", "jax": "optax"}


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
        convention = CONVENTION_OF.get(side.framework, other.spec.optimizer.convention)
        spec = spec.replace(optimizer=replace(other.spec.optimizer, convention=convention))
        notes.append(f"optimizer taken from the other side, in {side.framework}'s convention: "
                     f"{spec.optimizer.name} lr {spec.optimizer.learning_rate}")
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


def _row(name: str, actual, desired, dtype: str, kind: str, step: int | None = None) -> Comparison:
    actual, desired = np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64)
    bound = tolerance(dtype, kind)
    if actual.shape != desired.shape:
        return Comparison(name, None, kind, np.inf, bound, f"shape {actual.shape} != {desired.shape}",
                          step=step)
    return Comparison(name, None, kind, relative_error(actual, desired), bound, step=step)


def _quantities(real, spec: ModelSpec, x, targets, into_a=None) -> dict[str, tuple[str, np.ndarray]]:
    """{name: (kind, value)}: outputs in both modes, loss, gradients, parameters after one step (the
    batch in the side's own dtype: a float64 batch rounded once for a float32 side)."""
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
    tensors, _ = real.step(x, targets)
    if into_a is not None:
        tensors = into_a(tensors)
    for layer, held in zip(spec.parameter_layers, tensors, strict=True):
        for name, value in held.items():
            out[f"{name}{layer} after 1 step"] = ("parameters", value)
    return out


CANCELLED = ("BatchNorm right after removes this bias: its true gradient is 0, so it holds rounding residue "
             "only (judged against its kernel's gradient; its trained value is shown, not judged)")


def judge_cancelled(rows: list[Comparison], spec: ModelSpec, desired: dict) -> list[Comparison]:
    """Rows of a bias a BatchNorm cancels (``spec.cancelled_biases``): its gradient's error relative
    to the layer's kernel gradient (the operand scale it is rounding residue of), its trained value
    not judged (it moves by residue, amplified by an adaptive optimizer)."""
    out = []
    for row in rows:
        layer = next((l for l in spec.cancelled_biases if row.name.startswith((f"db{l}", f"b{l} "))
                      or row.name == f"b{l}"), None)
        if layer is None or row.problem:
            out.append(row)
        elif row.kind == "gradient":
            actual, wanted = desired["actual " + row.name], desired[row.name]
            floor = float(np.max(np.abs(desired[f"dW{layer}"])))
            out.append(replace(row, error=relative_error(actual, wanted, floor=floor), note=CANCELLED))
        else:
            out.append(replace(row, bound=np.inf, note=CANCELLED))
    return out


def lower_precision(*specs: ModelSpec) -> str:
    return "float32" if any(spec.dtype == "float32" for spec in specs) else "float64"


def faithfulness(reading: Reading, real, x, targets) -> list[Comparison]:
    """The side's own object (actual) against the engine running its reading (desired)."""
    engine = EngineModel(Network(reading.spec, tensors=reading.tensors, statistics=reading.statistics))
    dtype = reading.spec.dtype
    theirs = _quantities(engine, reading.spec, x, targets)
    real.load(reading.tensors, reading.statistics)
    ours = _quantities(real, reading.spec, x, targets)
    real.load(reading.tensors, reading.statistics)            # back to the start for what follows
    rows = [_row(name, ours[name][1], value, dtype, kind) for name, (kind, value) in theirs.items()]
    return judge_cancelled(rows, reading.spec, _values(ours, theirs))


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
        return (f"{BY_NAME['eval_mode'].title}: asked for inference, {reading.source} returns its "
                f"training-mode outputs (rel err {as_training:.1e} to them, {as_inference:.1e} to the "
                f"inference outputs) — {BY_NAME['eval_mode'].why}")
    return None


def compare_sides(a: Reading, real_a, b: Reading, real_b, x, targets, steps: int) -> list[Comparison]:
    """A (desired) against B (actual), B in A's form, then ``steps`` free-running steps."""
    alignment = align(a, b)
    dtype = lower_precision(a.spec, b.spec)

    def into_a(tensors):
        return alignment.tensors(tensors, b.spec)

    ours = _quantities(real_b, b.spec, x, targets, into_a)
    theirs = _quantities(real_a, a.spec, x, targets)
    rows = [_row(name, ours[name][1], value, dtype, kind) for name, (kind, value) in theirs.items()]
    rows = judge_cancelled(rows, a.spec, _values(ours, theirs))
    x_a, targets_a = np.asarray(x, dtype=a.spec.dtype), np.asarray(targets, dtype=a.spec.dtype)
    x_b, targets_b = np.asarray(x, dtype=b.spec.dtype), np.asarray(targets, dtype=b.spec.dtype)
    if steps > 1:
        for _ in range(steps - 1):
            tensors_a, _ = real_a.step(x_a, targets_a)
            tensors_b, _ = real_b.step(x_b, targets_b)
        tensors_b = into_a(tensors_b)
        for layer, mine, other in zip(a.spec.parameter_layers, tensors_b, tensors_a, strict=True):
            rows += judge_cancelled([_row(f"{name}{layer}", mine[name], other[name], dtype, "parameters",
                                          step=steps) for name in other], a.spec, {})
        rows.append(_row("A_L (inference)", real_b.outputs(x_b, False), real_a.outputs(x_a, False), dtype,
                         "forward", step=steps))
    return rows


@dataclass
class Result:
    a: Reading
    b: Reading
    faithful: dict[str, list[Comparison]]
    rows: list[Comparison]
    diagnosis: Diagnosis | None = None
    evidence: list[str] = field(default_factory=list)
    rounding_only: bool = False

    @property
    def ok(self) -> bool:
        unfaithful = any(not c.ok for rows in self.faithful.values() for c in rows)
        return not unfaithful and (all(c.ok for c in self.rows) or self.rounding_only)

    def headline(self) -> str:
        failed = [c for c in self.rows if not c.ok]
        if self.ok:
            extra = (f"; {len(failed)} trained parameters part by float32 rounding only (the readings agree "
                     "in float64)") if failed else ""
            return f"compare: PASS — A and B agree: {len(self.rows)} comparisons within tolerance{extra}"
        unfaithful = [label for label, rows in self.faithful.items() if any(not c.ok for c in rows)]
        if unfaithful:
            label = unfaithful[0]
            first = next(c for c in self.faithful[label] if not c.ok)
            return (f"compare: FAIL — {label}'s own code computes something its reading does not "
                    f"(not a known convention): first {first.describe()}; the reading is what the engine "
                    "computes from the spec read off it")
        first = failed[0]
        why = ""
        if self.diagnosis is not None and self.diagnosis.causes:
            why = "; explained by " + ", ".join(BY_NAME[c].title for c in self.diagnosis.causes)
            why += "" if self.diagnosis.explained else " (not entirely)"
        elif self.diagnosis is not None:
            why = "; not a known convention"
        return (f"compare: FAIL — B differs from A in {len(failed)} of {len(self.rows)} comparisons, first "
                f"{first.describe()}{why}")


def run(a: Reading, real_a, b: Reading, real_b, x, targets, steps: int = 3) -> Result:
    """Steps 1–4 of the module docstring."""
    b = fill(b, real_b, a)
    a = fill(a, real_a, b)
    faithful = {"A": faithfulness(a, real_a, x, targets), "B": faithfulness(b, real_b, x, targets)}
    evidence = []
    for label, reading, real in (("A", a, real_a), ("B", b, real_b)):
        if any(not c.ok for c in faithful[label]):
            found = eval_mode_evidence(reading, real, x)
            if found:
                evidence.append(f"{label}: {found}")
    for reading in (a, b):
        evidence += [f"{reading.source}: {BY_NAME[f.cause].title} at {f.where}: {f.message}"
                     for f in reading.findings]
    rows = compare_sides(a, real_a, b, real_b, x, targets, steps)
    result = Result(a, b, faithful, rows, evidence=evidence)
    unfaithful = any(not c.ok for checked in faithful.values() for c in checked)
    if not unfaithful and not all(c.ok for c in rows):
        result.diagnosis = diagnose(a, align(a, b).reading, x, targets, steps)
        one_step = all(c.ok for c in rows if c.step is None)
        result.rounding_only = one_step and result.diagnosis.start.agrees
    return result
