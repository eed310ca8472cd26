"""The backprop study: one walk down the backward pass, the NumPy engine beside torch and TF.

For each layer l = L, …, 1 and each gradient the NumPy engine computes (rows are samples, m of
them; see ``scratch.model``)

    dL/dA_l  (m, n_l)          = dZ_{l+1} · W_{l+1}          (l < L; at l = L only for MSE)
    dL/dZ_l  (m, n_l)          = dA_l ⊙ g′(Z_l)              (at l = L: the loss's dZ, e.g. (A − Y)/m)
    dL/dW_l  (n_l, n_{l−1})    = dZ_lᵀ · A_{l−1}  (+ λ·W_l)
    dL/db_l  (n_l,)            = Σ_rows dZ_l

(for a dense layer; a conv, pool, BatchNorm, … layer has its own formulas in ``scratch.layers``,
and dW_l, db_l exist only for the spec's ``parameter_layers``). Each difference is relative to
max(max|scratch|, the parity suite's operand-scale floor, ``judge.parity.trace_floors``): a
conv bias before a BatchNorm has a gradient of ~0 that is rounding only.

:func:`explain` gives one row: the shape; the scratch statements that computed it; the torch
autograd nodes (:mod:`reports.explain.torch_graph`), the TensorFlow gradient ops
(:mod:`reports.explain.tf_graph`) and the JAX jaxpr equations (:mod:`reports.explain.jax_graph`)
that produce it; and, for each framework, max|framework − scratch| and the normwise relative
error (:func:`judge.parity.relative_error`) of its ``trace``.

The scratch column is read from the code, never copied: ``Network.backward`` runs once under
``sys.settrace``, which records every statement it executes (its text from ``inspect`` and
``ast``), the index of every store into the containers it returns as ``Gradients(...)``, and the
lines each layer's methods (``Dense.differentiate`` → ``Dense.weight_gradient``, ``Dropout.backward``,
up to :data:`CALL_DEPTH` calls deep), activation's ``backward`` or loss's ``gradient`` ran when
called from it. A quantity's statements are its stores (``dws[layer], dbs[layer] = grads``) with
the statement that computed what they store (``grads, da_prev = ….differentiate(…)``) and that
call's lines (``Dense.weight_gradient: dw = dz.T @ a_prev``, and ``dw += …`` only when L2 ran;
a layer's call computes its dW, db and dA_{l−1} together, so their rows share its lines); a plain
copy (``dzs[layer] = dz``) is replaced by the statement that last assigned the copied name, plus
the callee's lines (``ReLU.backward: return da * (z > 0)``) and the last assignment of each plain
name passed to a call, unless that is another quantity's statement (``dh = …``). So only what ran
for this spec is shown: a CCE output shows the loss's fused (A − Y)/m, an MSE output the softmax's
backward.

Heuristic parts: the grouping of nodes/ops/statements into rows is by data flow between the named
quantities (see the helper modules); which statements belong to a quantity follows the rule above,
one level of argument definitions deep. The framework columns come from separate forward passes
of the same backend objects whose ``trace`` gives the numbers.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import sys
import textwrap
from dataclasses import dataclass, field

import numpy as np

from judge.parity import relative_error, trace_floors
from judge.tolerances import tolerance
from scratch.activations import Activation
from scratch.errors import BackendError
from scratch.layer_specs import LAYER_SPECS
from scratch.losses import Loss
from scratch.model import Gradients, Network
from scratch.spec import OptimizerSpec
from twins.backends import available_backends, make_backend

# framework backend → the module whose ``producers`` names its gradient nodes/ops, and their row key
FRAMEWORKS = {"torch": "reports.explain.torch_graph", "keras": "reports.explain.tf_graph",
              "jax": "reports.explain.jax_graph"}
COLUMNS = {"torch": "torch_nodes", "keras": "tf_ops", "jax": "jax_eqns"}
# The objects whose methods' lines the scratch column quotes when ``backward`` calls them, at any
# depth below it (a layer's ``differentiate`` calls its own ``backward``, which calls …).
TRACED = (Activation, Loss, *dict.fromkeys(spec.engine_class for spec in LAYER_SPECS.values()))
CALL_DEPTH = 4
# Gradients field → the trace-name prefix of ``twins.backend_base``; rows in this order per layer.
# ``dp`` holds each layer's tuple of parameter gradients, named by ``Gradients.names``.
PREFIXES = {"da": "dA", "dz": "dZ"}


def explain(spec, tensors, x, targets, masks=None) -> list[dict]:
    """One row per gradient, from the output layer down: {layer, quantity, name, shape, scratch,
    torch_nodes, tf_ops, jax_eqns, and <framework>_max_abs, <framework>_max_rel for torch, keras
    and jax, tolerance, ok}. A framework that is not installed, or cannot express ``spec``, gets its
    reason in its column and ``None`` for its numbers. The optimizer plays no part in one backward pass, so
    every backend is built with plain SGD (torch.optim has no Keras-convention Adam, and so on).
    ``tensors``: the named tensors ({name: array} per layer with parameters, ``Network.tensors``)."""
    spec = spec.replace(optimizer=OptimizerSpec())
    model = Network(spec, tensors=tensors)
    lines = scratch_statements(model, model.forward(x, masks), targets)
    desired = make_backend("scratch", spec, tensors=tensors).trace(x, targets, masks)
    frameworks = {name: _run_framework(name, spec, tensors, x, targets, masks) for name in FRAMEWORKS}
    bound = tolerance(spec.dtype, "gradient")
    floors = trace_floors(desired, x)          # the parity suite's operand scales (db before BatchNorm ≈ 0)
    rows = []
    for layer in range(spec.n_layers, 0, -1):
        for prefix in (*PREFIXES.values(), *model.trace_names[layer - 1]):
            name = f"{prefix}{layer}"
            if name not in desired:
                continue
            row = {"layer": layer, "quantity": f"dL/d{prefix[1:]}_{layer}", "name": name,
                   "shape": str(desired[name].shape), "scratch": "; ".join(lines.get(name, ["(not found)"]))}
            verdicts = []
            for framework, (note, producers, trace) in frameworks.items():
                row[COLUMNS[framework]] = note or describe(*producers.get(name, ([], None)))
                absolute = relative = None
                if trace is not None:
                    absolute, relative = _difference(trace.get(name), desired[name], floors.get(name, 0.0))
                    verdicts.append(relative <= bound)
                row[f"{framework}_max_abs"], row[f"{framework}_max_rel"] = absolute, relative
            row["tolerance"] = bound
            row["ok"] = all(verdicts) if verdicts else None
            rows.append(row)
    return rows


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


def _run_framework(name, spec, tensors, x, targets, masks):
    """(note, producers, trace): a note and Nones where the framework cannot run."""
    if name not in available_backends():
        return f"{name} not installed", {}, None
    try:
        backend = make_backend(name, spec, tensors=tensors)
    except BackendError as error:
        return f"skipped: {error}", {}, None
    producers = importlib.import_module(FRAMEWORKS[name]).producers(backend, x, targets, masks)
    return None, producers, backend.trace(x, targets, masks)


# -- the scratch column --------------------------------------------------------------------------

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


@dataclass
class _Event:
    """One executed statement of ``backward``: the (container, index) pairs it stores into, and
    the lines of the layer/activation/loss methods it called."""

    node: ast.stmt
    stores: list[tuple[str, object]]
    callees: list[str] = field(default_factory=list)


def scratch_statements(model: Network, forward, targets) -> dict[str, list[str]]:
    """{"dZ3": ["da_out, dz = self.loss_fn.gradient(…)", "CategoricalCrossEntropy.gradient: return
    …"], …}: the statements of ``type(model).backward`` (and of its callees) that computed each
    gradient in this run (see the module docstring for the rule)."""
    source, events, grads = _record(model, forward, targets)
    containers = _containers(source)
    main: dict[str, list[int]] = {}
    for position, event in enumerate(events):
        for container, index in event.stores:
            if container not in containers:
                continue
            field_name = containers[container]
            layer = index if isinstance(getattr(grads, field_name), dict) else index + 1
            prefixes = grads.names[layer - 1] if field_name == "dp" else (PREFIXES[field_name],)
            for prefix in prefixes:
                main.setdefault(f"{prefix}{layer}", []).append(_resolve_copy(events, position))
    claimed = {p for positions in main.values() for p in positions}
    out = {}
    for name, positions in main.items():
        chosen = set(positions)
        for position in positions:
            chosen |= {p for p in _argument_definitions(events, position) if p not in claimed}
        out[name] = [text for p in sorted(chosen)
                     for text in [source.code(events[p].node), *events[p].callees]]
    return out


def _record(model: Network, forward, targets):
    """Run ``model.backward`` under ``sys.settrace``: (its source, the executed statements in
    order, the Gradients it returned)."""
    function = type(model).backward
    source, code = _Source.of(function), function.__code__
    events: list[_Event] = []
    last = [None]

    def in_backward(frame, event, arg):
        if event == "line":
            node = source.at(frame.f_lineno)
            if node is not None and node is not last[0]:
                events.append(_Event(node, _store(node, frame)))
            last[0] = node
        return in_backward

    def below_backward(frame) -> bool:
        caller = frame.f_back
        for _ in range(CALL_DEPTH):
            if caller is None:
                return False
            if caller.f_code is code:
                return True
            caller = caller.f_back
        return False

    def tracer(frame, event, arg):
        if frame.f_code is code:
            return in_backward
        owner = frame.f_locals.get("self")
        if events and isinstance(owner, TRACED) and below_backward(frame):
            return _callee_tracer(owner, frame.f_code.co_name, events[-1])
        return None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        grads = model.backward(forward, targets)
    finally:
        sys.settrace(previous)
    return source, events, grads


def _callee_tracer(owner, method: str, event: _Event):
    source = _Source.of(getattr(type(owner), method))
    label = f"{type(owner).__name__}.{method}"

    def trace(frame, kind, arg):
        if kind == "line":
            node = source.at(frame.f_lineno)
            text = node is not None and f"{label}: {source.code(node)}"
            if text and text not in event.callees:
                event.callees.append(text)
        return trace

    return trace


def _targets(node) -> list:
    return node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]


def _store(node, frame) -> list[tuple[str, object]]:
    """[(container, index)] for ``container[index] = …``, ``+=`` or ``a[i], b[i] = …``, the index
    evaluated in ``frame``."""
    stores = []
    for target in _targets(node):
        for element in (target.elts if isinstance(target, ast.Tuple) else [target]):
            if isinstance(element, ast.Subscript) and isinstance(element.value, ast.Name):
                expression = compile(ast.Expression(element.slice), "<index>", "eval")
                stores.append((element.value.id, eval(expression, frame.f_globals, dict(frame.f_locals))))
    return stores


def _assigned(node) -> set[str]:
    return {sub.id for target in _targets(node) if target is not None
            for sub in ast.walk(target) if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store)}


def _containers(source: _Source) -> dict[str, str]:
    """{local name: Gradients field} from the ``return Gradients(...)`` statement."""
    for node in source.statements:
        call = getattr(node, "value", None)
        if isinstance(node, ast.Return) and isinstance(call, ast.Call) \
                and getattr(call.func, "id", None) == Gradients.__name__:
            names = [f.name for f in dataclasses.fields(Gradients)]
            pairs = [*zip(names[:len(call.args)], call.args, strict=True),
                     *((keyword.arg, keyword.value) for keyword in call.keywords)]
            return {arg.id: name for name, arg in pairs if isinstance(arg, ast.Name)}
    return {}


def _last_definition(events: list[_Event], position: int, name: str) -> int | None:
    return next((p for p in range(position - 1, -1, -1) if name in _assigned(events[p].node)), None)


def _resolve_copy(events: list[_Event], position: int) -> int:
    """Follow ``x = y`` / ``c[i] = y`` back to the statement that last assigned ``y``."""
    node = events[position].node
    if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
        source = _last_definition(events, position, node.value.id)
        if source is not None:
            return _resolve_copy(events, source)
    return position


def _argument_definitions(events: list[_Event], position: int) -> list[int]:
    calls = [sub for sub in ast.walk(events[position].node) if isinstance(sub, ast.Call)]
    names = [arg.id for call in calls for arg in [*call.args, *(k.value for k in call.keywords)]
             if isinstance(arg, ast.Name)]
    found = (_last_definition(events, position, name) for name in names)
    return [p for p in found if p is not None]


# -- the terminal table --------------------------------------------------------------------------

# (title, row key, width at which long cells wrap); a column widens to its longest unbreakable word.
TABLE = [("layer", "layer", 5), ("quantity", "quantity", 8), ("shape", "shape", 10),
         ("scratch line", "scratch", 46), ("torch node(s)", "torch_nodes", 32), ("TF op(s)", "tf_ops", 30),
         ("JAX eqn(s)", "jax_eqns", 30), ("max|Δ| torch", "torch", 12), ("max|Δ| keras", "keras", 12),
         ("max|Δ| jax", "jax", 12)]


def format_table(rows: list[dict]) -> str:
    """The rows as a plain-text table; long cells wrap (one scratch statement per line). A
    framework that did not run shows a numbered note, printed once under the table."""
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
        absolute, relative = row[f"{key}_max_abs"], row[f"{key}_max_rel"]
        return ["—"] if absolute is None else [f"{absolute:.1e}", f"rel {relative:.1e}"]
    pieces = str(row[key]).split("; ") if key == "scratch" else [str(row[key])]
    return [line for piece in pieces
            for line in textwrap.wrap(piece, width, subsequent_indent="  ", break_on_hyphens=False,
                                      break_long_words=False) or [""]]
