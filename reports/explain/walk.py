"""The backprop study's rows: one line per named intermediate of one step, the NumPy engine's
own statement beside the records torch, TensorFlow and JAX keep of the same step.

For each layer l = 1…L the forward rows Z_l, A_l, then from the loss down dZ_l, the gradient of
each declared tensor (dW_l, db_l, dγ_l, dα_l …) and dA_{l−1} (rows are samples, m of them; see
``scratch.model``), e.g. for a dense layer

    dL/dA_{l−1}  (m, n_{l−1})     = dZ_l · W_l
    dL/dZ_l      (m, n_l)         = dA_l ⊙ g′(Z_l)     (at l = L: the loss's dZ, e.g. (A − Y)/m)
    dL/dW_l      (n_l, n_{l−1})   = dZ_lᵀ · A_{l−1}  (+ λ·W_l)
    dL/db_l      (n_l,)           = Σ_rows dZ_l

Each row: the shape; **the engine's statement** that computes it and the math it implements, both
from the engine class's ``FORMULAS`` declaration (:mod:`reports.study.formulas`), the statement
quoted from the method's source — only the statements that ran in this step (the forward and
backward passes run once more under ``sys.settrace``: λ·W's line only with L2, BatchNorm's batch
statistics and not its running ones); the torch autograd
node(s) with the tensors the node saved for backward (:mod:`reports.explain.torch_graph`), the
TensorFlow gradient ops (:mod:`reports.explain.tf_graph`) and the JAX jaxpr equations
(:mod:`reports.explain.jax_graph`) that produce it; and for each framework max|framework − engine|,
the normwise relative error (:func:`judge.parity.relative_error`, over max(max|engine|, the
parity suite's operand-scale floor, ``judge.parity.trace_floors``): a conv bias before a BatchNorm
has a gradient of ~0 that is rounding only) and a match word: ``exact`` (bit for bit), ``≈``
(within the tolerance table's bound) or ``✗``.

A forward row names the torch node that recorded it (``Z.grad_fn``, what the backward pass will
run through it) with what that node saved, the TensorFlow ops and the JAX equations that compute
it from the previous named values. Heuristic parts: the grouping of nodes/ops/equations
into rows is by data flow between the named quantities (see the helper modules). The framework
columns come from separate forward passes of the same backend objects whose ``trace`` gives the
numbers.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import textwrap
from dataclasses import dataclass

import numpy as np

from judge.parity import relative_error, trace_floors
from judge.tolerances import tolerance
from reports.study.formulas import intermediates
from reports.study.run import engine_step
from scratch.activations import Activation
from scratch.errors import BackendError
from scratch.layer_specs import LAYER_SPECS
from scratch.layers import Dropout
from scratch.losses import Loss
from scratch.model import Network
from scratch.spec import OptimizerSpec
from twins.backends import available_backends, make_backend

# framework backend → the module whose ``producers`` names its gradient nodes/ops, and their row key
FRAMEWORKS = {"torch": "reports.explain.torch_graph", "keras": "reports.explain.tf_graph",
              "jax": "reports.explain.jax_graph"}
COLUMNS = {"torch": "torch_nodes", "keras": "tf_ops", "jax": "jax_eqns"}
# … and the function that names each forward value's node (torch), ops (TF) or equations (JAX)
FORWARD = {"torch": "forward_nodes", "keras": "forward_ops", "jax": "forward_eqns"}
# The objects whose executed statements :func:`executed_statements` records.
TRACED = (Activation, Loss, Dropout, *dict.fromkeys(spec.engine_class for spec in LAYER_SPECS.values()))


def explain(spec, tensors, x, targets, masks=None, backends: dict | None = None) -> list[dict]:
    """One row per named intermediate, forward then backward: {layer, name, quantity, shape, where,
    scratch, math, torch_nodes, torch_saved, tf_ops, jax_eqns, and <framework>_max_abs,
    <framework>_max_rel, <framework>_match for torch, keras and jax, tolerance, ok}. A framework
    that is not installed, or cannot express ``spec``, gets its reason in its column and ``None``
    for its numbers. The optimizer plays no part in one step's gradients, so every backend is built
    with plain SGD (torch.optim has no Keras-convention Adam, and so on). ``tensors``: the named
    tensors ({name: array} per layer with parameters, ``Network.tensors``); ``backends``: the
    frameworks' backends already built on them (:func:`framework_backends`), else built here."""
    spec = spec.replace(optimizer=OptimizerSpec())
    backends = framework_backends(spec, tensors) if backends is None else backends
    run = engine_step(spec, tensors, x, targets, masks)
    ran = executed_statements(run.network, run.forward, targets, x, masks)
    desired = make_backend("scratch", spec, tensors=tensors).trace(x, targets, masks)
    frameworks = {name: _run_framework(name, backends[name], x, targets, masks) for name in FRAMEWORKS}
    floors = trace_floors(desired, x)          # the parity suite's operand scales (db before BatchNorm ≈ 0)
    rows = []
    for item in intermediates(run):
        if item.name not in desired:
            continue
        item = item.that_ran(ran)
        kind = "gradient" if item.name.startswith("d") else "forward"
        bound = tolerance(spec.dtype, kind)
        row = {"layer": item.layer, "name": item.name, "quantity": _quantity(item.name),
               "shape": str(desired[item.name].shape), "where": item.where, "scratch": item.line,
               "math": item.math}
        verdicts = []
        for framework, (note, producers, saved, forward, trace) in frameworks.items():
            if framework == "torch":
                row["torch_saved"] = note or saved.get(item.name, "")
            if kind == "forward":       # the node that recorded it (torch), the ops/equations (TF, JAX)
                row[COLUMNS[framework]] = note or forward.get(item.name) or "—"
            else:
                row[COLUMNS[framework]] = note or describe(*producers.get(item.name, ([], None)))
            absolute = relative = None
            if trace is not None:
                absolute, relative = _difference(trace.get(item.name), desired[item.name],
                                                 floors.get(item.name, 0.0))
                verdicts.append(relative <= bound)
            row[f"{framework}_max_abs"], row[f"{framework}_max_rel"] = absolute, relative
            row[f"{framework}_match"] = match_word(absolute, relative, bound)
        row["tolerance"] = bound
        row["ok"] = all(verdicts) if verdicts else None
        rows.append(row)
    return rows


def _quantity(name: str) -> str:
    """"dW2" → "dL/dW_2", "Z2" → "Z_2"."""
    stem = name.rstrip("0123456789")
    layer = name[len(stem):]
    return f"dL/d{stem[1:]}_{layer}" if stem.startswith("d") else f"{stem}_{layer}"


def match_word(absolute, relative, bound: float) -> str:
    """"exact" (max|Δ| = 0), "≈" (within ``bound``), "✗" (beyond), "—" (not run)."""
    if absolute is None:
        return "—"
    if absolute == 0.0:
        return "exact"
    return "≈" if relative <= bound else "✗"


def _difference(actual, desired, floor: float = 0.0) -> tuple[float, float]:
    """(max|actual − desired|, normwise relative error over max(max|desired|, ``floor``)); infinite
    where shapes differ or it is missing."""
    if actual is None or np.shape(actual) != desired.shape:
        return float("inf"), float("inf")
    return float(np.max(np.abs(np.asarray(actual, np.float64) - desired), initial=0.0)), \
        relative_error(actual, desired, floor)


def describe(branches: list[list[str]], sink: str | None) -> str:
    """"A → B → sink" for one branch; "(A → B) + (C) → sink" where several paths meet in the sink
    (their gradients summed: torch's input buffer, TF's AddN)."""
    if not branches:
        return sink or "(none recorded)"
    if len(branches) == 1:
        return " → ".join([*branches[0], *([sink] if sink else [])])
    joined = " + ".join(f"({' → '.join(branch)})" for branch in branches)
    return f"{joined} → {sink}" if sink else joined


def framework_backends(spec, tensors) -> dict:
    """{"torch": its backend on ``tensors``, …}, or in place of a backend the one-line reason it
    cannot run (not installed; cannot express ``spec``). One step's gradients do not depend on the
    optimizer, so callers pass the spec with plain SGD (torch.optim has no Keras-convention Adam)."""
    out = {}
    for name in FRAMEWORKS:
        if name not in available_backends():
            out[name] = f"{name} not installed"
            continue
        try:
            out[name] = make_backend(name, spec, tensors=tensors)
        except BackendError as error:
            out[name] = f"skipped: {error}"
    return out


def _run_framework(name, backend, x, targets, masks):
    """(note, producers, saved, forward, trace) of ``backend`` (or of its reason not to run, a
    str: the note, and empties); ``saved`` (torch only) maps each quantity to what its node saved
    for backward, ``forward`` each forward value to its node (torch), ops (TF) or equations (JAX)."""
    if isinstance(backend, str):
        return backend, {}, {}, {}, None
    module = importlib.import_module(FRAMEWORKS[name])
    producers = module.producers(backend, x, targets, masks)
    saved = module.saved_tensors(backend, x, targets, masks) if hasattr(module, "saved_tensors") else {}
    forward = getattr(module, FORWARD[name])(backend, x, targets, masks)
    return None, producers, saved, forward, backend.trace(x, targets, masks)


# -- which engine statements ran ------------------------------------------------------------------

def executed_statements(model: Network, forward, targets, x=None, masks=None) -> set[str]:
    """{"Dense.weight_gradient: dw = dz.T @ a_prev", …}: every statement that a method of an
    engine layer, activation or loss (:data:`TRACED`) ran during ``model.backward`` — so a
    row quotes λ·W's line only where L2 ran — and, given the batch ``x``, during a training-mode
    ``model.forward(x, masks)`` — so BatchNorm's Z quotes the batch statistics' lines, not the
    running ones of inference."""
    executed: set[str] = set()

    def tracer(frame, event, arg):
        owner = frame.f_locals.get("self")
        if not isinstance(owner, TRACED):
            return None
        method = getattr(type(owner), frame.f_code.co_name, None)
        if getattr(method, "__code__", None) is not frame.f_code:
            return None
        source, label = _Source.of(method), f"{type(owner).__name__}.{frame.f_code.co_name}"

        def lines(frame, kind, arg):
            if kind == "line":
                node = source.at(frame.f_lineno)
                if node is not None:
                    executed.add(f"{label}: {source.code(node)}")
            return lines

        return lines

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        if x is not None:
            model.forward(x, masks)
        model.backward(forward, targets)
    finally:
        sys.settrace(previous)
    return executed


@dataclass(frozen=True)
class _Source:
    """The simple (non-compound) statements of one function, looked up by absolute line number."""

    text: str
    offset: int
    statements: list

    @classmethod
    def of(cls, function) -> _Source:
        lines, first = inspect.getsourcelines(function)
        text = textwrap.dedent("".join(lines))
        statements = [node for node in ast.walk(ast.parse(text))
                      if isinstance(node, ast.stmt) and not hasattr(node, "body")]
        return cls(text, first - 1, statements)

    def at(self, lineno: int):
        line = lineno - self.offset
        return next((s for s in self.statements if s.lineno <= line <= s.end_lineno), None)

    def code(self, node) -> str:
        return " ".join(ast.get_source_segment(self.text, node).split())


# -- the terminal table --------------------------------------------------------------------------

# (title, row key, width at which long cells wrap); a column widens to its longest unbreakable word.
TABLE = [("name", "name", 5), ("shape", "shape", 12), ("engine line", "scratch", 40), ("math", "math", 28),
         ("torch node(s)", "torch_nodes", 26), ("TF op(s)", "tf_ops", 22), ("JAX eqn(s)", "jax_eqns", 22),
         ("torch", "torch", 9), ("keras", "keras", 9), ("jax", "jax", 9)]


def format_table(rows: list[dict]) -> str:
    """The rows as a plain-text table, one row per intermediate; long cells wrap (one engine
    statement per line). Each framework's cell is its match word and max|Δ|. A framework that did
    not run shows a numbered note, printed once under the table."""
    notes: list[str] = []
    cells = [[_cell(row, key, width, notes) for _, key, width in TABLE] for row in rows]
    widths = [max([width, len(title), *(len(line) for row in cells for line in row[column])])
              for column, (title, _, width) in enumerate(TABLE)]
    header = "  ".join(f"{title:<{width}}" for (title, _, _), width in zip(TABLE, widths, strict=True))
    lines = [header, "-" * len(header)]
    for index, (row, row_cells) in enumerate(zip(rows, cells, strict=True)):
        if index and row["layer"] != rows[index - 1]["layer"]:
            lines.append("")
        for depth in range(max(map(len, row_cells))):
            parts = [f"{(cell[depth] if depth < len(cell) else ''):<{width}}"
                     for cell, width in zip(row_cells, widths, strict=True)]
            lines.append("  ".join(parts).rstrip())
    lines += [f"[{number}] {note}" for number, note in enumerate(notes, start=1)]
    return "\n".join(lines)


def _cell(row: dict, key: str, width: int, notes: list[str]) -> list[str]:
    framework = next((name for name, column in COLUMNS.items() if column == key), None)
    if framework and row[f"{framework}_max_abs"] is None:
        if row[key] not in notes:
            notes.append(row[key])
        return [f"[{notes.index(row[key]) + 1}] not run"]
    if key in FRAMEWORKS:
        absolute = row[f"{key}_max_abs"]
        return ["—"] if absolute is None else [row[f"{key}_match"], f"{absolute:.1e}"]
    pieces = str(row[key]).split("; ") if key == "scratch" else [str(row[key])]
    return [line for piece in pieces
            for line in textwrap.wrap(piece, width, subsequent_indent="  ", break_on_hyphens=False,
                                      break_long_words=False) or [""]]
