"""The engine's own statement behind each intermediate, quoted from its source.

Every engine class declares ``FORMULAS`` (``scratch.layers``): quantity → (math, ``"method:variable"``,
…). :func:`formula` reads the named method's source with :mod:`ast` and keeps the simple statements
that assign ``variable`` (plainly, augmented, or into a subscript of it: ``dx_p[…] += …``) — except
plumbing, a call of another of the object's methods or an allocation — or the method's ``return``
statements for ``"method:return"``. The source is the class's method as it is now, so a
changed formula changes the quoted line.

:func:`intermediates` lists, for one :class:`reports.study.run.StudyRun`, every named intermediate
of the step in the order the step computes it — Z_l, A_l for l = 1…L, then dZ_L, d<tensor>_L,
dA_{L−1}, dZ_{L−1}, … — each with the class, math and statements that compute it.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass, replace
from functools import cache

from scratch.tensor_specs import gradient_name


@dataclass(frozen=True)
class Formula:
    """``where``: "Dense.weight_gradient" (the methods quoted, joined by " + "); ``lines``: their
    statements as written, whitespace collapsed; ``math``: the declared formula."""

    where: str
    math: str
    quoted: tuple[tuple[str, str], ...]        # ("Dense.weight_gradient", "dw = dz.T @ a_prev"), …

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(code for _, code in self.quoted)

    @property
    def line(self) -> str:
        return "; ".join(self.lines)

    def that_ran(self, executed: set[str]) -> Formula:
        """This formula with only the statements in ``executed`` ("Class.method: code" of every
        statement a traced pass ran, :func:`reports.explain.walk.executed_statements`): λ·W's line
        only where L2 ran. Unchanged where none of its statements was traced (a forward formula)."""
        kept = tuple(pair for pair in self.quoted if f"{pair[0]}: {pair[1]}" in executed)
        return replace(self, quoted=kept) if kept else self


def formula(owner, quantity: str) -> Formula | None:
    """The declared formula of ``quantity`` on ``owner`` (an engine object or class); None where
    the class declares none."""
    cls = owner if isinstance(owner, type) else type(owner)
    declared = getattr(cls, "FORMULAS", {}).get(quantity)
    if declared is None:
        return None
    math, *places = declared
    quoted, methods = [], []
    for place in places:
        method, variable = place.split(":")
        label = f"{cls.__name__}.{method}"
        quoted += [(label, line) for line in _statements(getattr(cls, method), variable)
                   if (label, line) not in quoted]
        methods.append(label)
    return Formula(" + ".join(dict.fromkeys(methods)), math, tuple(quoted))


def _statements(function, variable: str) -> list[str]:
    return list(_cached_statements(function, variable))


@cache
def _cached_statements(function, variable: str) -> tuple[str, ...]:
    text = textwrap.dedent(inspect.getsource(function))
    tree = ast.parse(text)
    body = tree.body[0]
    out = []
    for node in ast.walk(body):
        if not isinstance(node, ast.stmt) or hasattr(node, "body") or node is body:
            continue
        if variable == "return":
            if isinstance(node, ast.Return) and node.value is not None:
                out.append((node.lineno, _code(text, node)))
        elif variable in _assigned(node) and not _plumbing(node):
            out.append((node.lineno, _code(text, node)))
    return tuple(code for _, code in sorted(out))


def _plumbing(node) -> bool:
    """A statement that only moves values: a call of another method of the same object
    (``dw, db, dx = self.backward(…)``, quoted where that method is) or an allocation
    (``np.zeros(…)``)."""
    value = getattr(node, "value", None)
    if not isinstance(value, ast.Call):
        return False
    function = value.func
    if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name):
        return function.value.id == "self" or function.attr in ALLOCATIONS
    return False


ALLOCATIONS = ("zeros", "zeros_like", "empty", "empty_like")


def _assigned(node) -> set[str]:
    """The names a statement writes: assignment targets, and an array a call writes in place —
    ``np.exp(e, out=e)`` (its ``out=``) or ``np.add.at(dx, …)`` (a ufunc's ``at``)."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        call = node.value
        written = [keyword.value for keyword in call.keywords if keyword.arg == "out"]
        if isinstance(call.func, ast.Attribute) and call.func.attr == "at" and call.args:
            written.append(call.args[0])
        return {target.id for target in written if isinstance(target, ast.Name)}
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    else:
        return set()
    names = set()
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)
            elif isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name):
                names.add(sub.value.id)
    return names


def _code(text: str, node) -> str:
    return " ".join(ast.get_source_segment(text, node).split())


@dataclass(frozen=True)
class Intermediate:
    """One named quantity of the step: ``name`` as traced (Z2, dW2, dA1, …), its layer (1-based),
    and the formulas that produce it, in the order they run (dropout's mask, then the activation's
    derivative, for a hidden dZ_l)."""

    name: str
    layer: int
    formulas: tuple[Formula, ...]

    @property
    def math(self) -> str:
        return "; ".join(f.math for f in self.formulas)

    @property
    def line(self) -> str:
        return "; ".join(f.line for f in self.formulas)

    @property
    def where(self) -> str:
        return " + ".join(f.where for f in self.formulas)

    def that_ran(self, executed: set[str]) -> Intermediate:
        return replace(self, formulas=tuple(f.that_ran(executed) for f in self.formulas))


def intermediates(run) -> list[Intermediate]:
    """Every named intermediate of ``run`` that the engine computed, forward then backward."""
    network, named = run.network, run.named
    n = run.spec.n_layers
    masks = run.masks or [None] * n
    out = []

    def add(name, layer, *pairs):
        if name in named:
            found = tuple(f for f in (formula(owner, quantity) for owner, quantity in pairs) if f is not None)
            out.append(Intermediate(name, layer, found))

    for layer in range(1, n + 1):
        operation, activation = network.layers[layer - 1], network.activations[layer - 1]
        add(f"Z{layer}", layer, (operation, "Z"))
        add(f"A{layer}", layer, (activation, "A"),
            *([(network.dropout, "A")] if layer < n and masks[layer - 1] is not None else []))
    for layer in range(n, 0, -1):
        operation, activation = network.layers[layer - 1], network.activations[layer - 1]
        if layer == n:
            loss = network.loss_fn
            if "dZ" in getattr(type(loss), "FORMULAS", {}):
                add(f"dZ{layer}", layer, (loss, "dZ"))
            else:
                add(f"dA{layer}", layer, (loss, "dA"))
                add(f"dZ{layer}", layer, (activation, "dZ"))
        else:
            add(f"dZ{layer}", layer, *([(network.dropout, "dH")] if masks[layer - 1] is not None else []),
                (activation, "dZ"))
        spec_layer = run.spec.numbered_layers[layer - 1]
        trainable = [tensor for tensor in spec_layer.tensors if tensor.trainable]
        for tensor in trainable:
            add(gradient_name(tensor.name, layer), layer, (operation, tensor.name))
        if layer > 1:
            add(f"dA{layer - 1}", layer - 1, (operation, "dA_prev"))
    return out
