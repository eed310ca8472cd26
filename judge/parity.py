"""The one parity helper: shape → dtype → values, forward first, then every gradient.

``check_parity(actual, desired, …)`` runs both backends on the same batch and compares every
named quantity in causal order — Z1, A1, …, ZL, AL, loss, then dA_L (if any), dZ_L, dW_L, db_L,
dA_{L−1}, … — against :mod:`judge.tolerances`. ``desired`` is the reference (the check is
asymmetric, like ``assert_allclose``). When something exceeds its bound, every layer is run
again *in isolation*, fed the reference's own input A_{l−1} and upstream gradient dA_l (or the
targets at the output), so the message names the first layer and quantity that is wrong by
itself rather than one that merely inherited an earlier error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from judge import pool_ties
from judge.time_steps import first_step_apart
from judge.tolerances import relative_error, tolerance
from scratch.layer_specs import LAYER_SPECS
from scratch.tensor_specs import gradient_name

_observers = []


def add_observer(callback) -> None:
    """Call ``callback(dtype, comparisons)`` after every comparison this module makes (the test
    suite uses it to print the largest error seen per dtype and quantity)."""
    _observers.append(callback)


def _notify(dtype: str, comparisons: list) -> None:
    for callback in _observers:
        callback(dtype, comparisons)


class ParityFailure(AssertionError):
    """Two backends disagree beyond the tolerance table; the message locates it."""


@dataclass(frozen=True)
class Comparison:
    """One quantity compared: its normwise relative error against its bound."""

    name: str
    layer: int | None
    kind: str
    error: float
    bound: float
    problem: str = ""          # a shape or dtype mismatch, reported before any value
    ulps: float = float("nan")  # the largest elementwise error, in ulps of the reference element
    where: tuple = ()           # the index of that element
    step: int | None = None     # the training step, for per-step checks
    note: str = ""              # how the reference was adjusted, e.g. a max-pool tie (pool_ties)
    ties: tuple = ()            # the pool_ties.TieFlip behind that adjustment, one per max-pool layer
    time_step: int | None = None  # a sequence's first time step apart, in computation order (time_steps)

    @property
    def ok(self) -> bool:
        return not self.problem and self.error <= self.bound

    def describe(self) -> str:
        at = f" at step {self.step}" if self.step is not None else ""
        at += f", first apart at time step {self.time_step}" if self.time_step is not None else ""
        if self.problem:
            return f"{self.name}{at}: {self.problem}"
        verdict = "<=" if self.ok else ">"
        if self.kind == "update":
            return (f"{self.name}{at}: {self.error:.0f} ulp {verdict} tol {self.bound:.0f} ulp"
                    f"{self._location()}")
        note = f"; {self.note}" if self.note else ""
        return (f"{self.name}{at}: rel err {self.error:.3e} {verdict} tol {self.bound:.0e}{self._ulp_note()}"
                f"{note}")

    def _location(self) -> str:
        return f" at {list(self.where)}" if self.where else ""

    def _ulp_note(self) -> str:
        if not np.isfinite(self.ulps):
            return ""
        return f" (largest elementwise: {self.ulps:.3g} ulp{self._location()})"


def elementwise_ulps(actual, desired, dtype: str, scale=None) -> tuple[float, tuple]:
    """The largest |actual − desired| in units in the last place (``np.spacing`` in ``dtype``) of
    max(|desired|, ``scale``) elementwise, and the index where it is. ``scale`` (an array or a
    number) is an operand the element was computed from, where that can exceed the result (an
    update θ − u that nearly cancels): rounding is relative to the operands."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    if desired.size == 0:
        return 0.0, ()
    magnitude = np.abs(desired) if scale is None else np.maximum(np.abs(desired), np.abs(scale))
    ulp = np.spacing(magnitude.astype(dtype)).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        ulps = np.abs(actual - desired) / ulp
    ulps = np.where(np.isnan(ulps), np.inf, ulps)
    index = np.unravel_index(int(np.argmax(ulps)), ulps.shape)
    return float(ulps[index]), tuple(int(i) for i in index)


def dz_floor(dz: np.ndarray, upstream: np.ndarray | None) -> float:
    """The operand scale of dZ_l, used as the floor of its relative error.

    dZ_l = dA_l ⊙ g′(Z_l), and every elementwise g′ here lies in [0, 1]; computed from a saturated
    output (1 − a², a(1 − a)) it carries an absolute rounding error of ~ε, which the product
    turns into ~ε·|dA_l| however small g′ makes dZ_l. So dZ_l is measured against max|dA_l|.
    At a fused output, dZ_L = (A_L − Y)/(m·k or m) cancels as the fit improves, with operands of
    size ≤ 1: the floor is 1/(m·k). Without this, one saturated unit (|dZ| ~ 1e-5·|dA|) turns an
    ulp of tanh into a 1e-11 "relative error" that says nothing about backprop.
    """
    if upstream is not None:
        return float(np.max(np.abs(upstream))) if np.size(upstream) else 0.0
    return 1.0 / dz.size if dz.size else 0.0


def loss_floor(logits: np.ndarray) -> float:
    """The operand scale of the loss: max|Z_L|. The loss is computed from the logits
    (logsumexp − y·z, or max(z, 0) − z·y + …), so its rounding error is ~ε·max|Z_L| however
    small the loss (sweep seed 99: a confident fit, loss ≪ |Z_L|)."""
    return float(np.max(np.abs(logits))) if np.size(logits) else 0.0


def floor_pair(tensors) -> tuple[str, str] | None:
    """(kernel, bias) names of a layer kind whose trainable ``tensors`` are a kernel and an
    additive ``offset`` — (W, b) of dense and conv2d, (gamma, beta) of the normalizations — whose
    gradients :func:`gradient_floors` floors; None for any other kind (PReLU's α)."""
    trainable = [tensor for tensor in tensors if tensor.trainable]
    if len(trainable) != 2 or [tensor.offset for tensor in trainable] != [False, True]:
        return None
    return trainable[0].name, trainable[1].name


# every (kernel, bias) pair a layer kind declares, in registry order: (W, b), (gamma, beta)
FLOOR_PAIRS = tuple(dict.fromkeys(pair for spec in LAYER_SPECS.values()
                                  if (pair := floor_pair(spec.tensors))))


def gradient_floors(layer: int, dz: np.ndarray, upstream, a_prev,
                    pair: tuple[str, str] | None = ("W", "b")) -> dict[str, float]:
    """Floors for dZ_l and the two gradients built from it alone, named after ``pair`` (the layer's
    :func:`floor_pair`; None: dZ_l's alone): dW_l = dZ_lᵀ·A_{l−1} inherits dZ_l's absolute error f
    times the column sums of |A_{l−1}| (a conv kernel: the sums of |A_{l−1}| over samples and
    positions, per channel), db_l = Σ dZ_l times the m (·H·W) values it sums. A normalization's
    dβ_l = Σ dZ_l is db_l's sum; its dγ_l = Σ dZ_l ⊙ x̂_l is held to dW_l's floor."""
    f = dz_floor(dz, upstream)
    floors = {f"dZ{layer}": f}
    if pair is None:
        return floors
    kernel, bias = pair
    floors[gradient_name(bias, layer)] = f * (dz.size // dz.shape[1])
    if a_prev is not None and np.size(a_prev):
        # every axis but the channels (axis 1): a conv kernel element sums over samples and positions
        summed = tuple(axis for axis in range(np.ndim(a_prev)) if axis != 1)
        floors[gradient_name(kernel, layer)] = f * float(np.max(np.abs(a_prev).sum(axis=summed)))
    return floors


def layer_floors(spec, layer: int, dz: np.ndarray, upstream, a_prev) -> dict[str, float]:
    """:func:`gradient_floors` of layer ``layer`` of ``spec``, named after its declared tensors."""
    return gradient_floors(layer, dz, upstream, a_prev, floor_pair(spec.numbered_layers[layer - 1].tensors))


_NAME = re.compile(r"^(d?)([A-Za-z_]+?)(\d*)$")


def _parse(name: str) -> tuple[bool, str, int | None]:
    gradient, base, layer = _NAME.match(name).groups()
    return bool(gradient), base, int(layer) if layer else None


def _causal_key(name: str) -> tuple[int, int, int]:
    gradient, base, layer = _parse(name)
    layer = layer or 0
    if not gradient:
        return (0, layer if base != "loss" else 10**9, {"Z": 0, "A": 1}.get(base, 2))
    return (1, -layer, {"A": 0, "Z": 1, "W": 2, "b": 3}.get(base, 4))


def causal_order(names) -> list[str]:
    """Forward quantities by layer, the loss, then gradients from the output layer down."""
    return sorted(names, key=_causal_key)


def trace_floors(desired: dict, x: np.ndarray | None = None) -> dict[str, float]:
    """{name: floor} of every quantity of the reference trace ``desired`` that has one: the loss
    (:func:`loss_floor`) and each layer's dZ, db and dW, or dbeta and dgamma
    (:func:`gradient_floors` of the :data:`FLOOR_PAIRS` pair the trace holds; ``x`` is A_0)."""
    n_layers = max((_parse(name)[2] or 0) for name in desired)
    floors = {"loss": loss_floor(desired[f"Z{n_layers}"])} if f"Z{n_layers}" in desired else {}
    for name in desired:
        if name.startswith("dZ"):
            layer = _parse(name)[2]
            a_prev = x if layer == 1 else desired.get(f"A{layer - 1}")
            pair = next((pair for pair in FLOOR_PAIRS
                         if all(gradient_name(tensor, layer) in desired for tensor in pair)), None)
            floors.update(gradient_floors(layer, desired[name], desired.get(f"dA{layer}"), a_prev, pair))
    return floors


def compare_traces(actual: dict, desired: dict, dtype: str, bounds: dict | None = None,
                   x: np.ndarray | None = None, notify: bool = True) -> list[Comparison]:
    """Compare every quantity of two traces (dicts of named arrays) in causal order; ``x`` (the
    input batch) sets the floor of dW_1 (see :func:`gradient_floors`)."""
    missing = sorted(set(desired) - set(actual))
    extra = sorted(set(actual) - set(desired))
    results = [Comparison(name, _parse(name)[2], "forward", np.inf, 0.0, "missing from actual trace")
               for name in missing]
    results += [Comparison(name, _parse(name)[2], "forward", np.inf, 0.0, "not in reference trace")
                for name in extra]
    # The loss is computed from the logits (logsumexp − y·z, or max(z, 0) − z·y + …): its rounding
    # error is ~ε·max|Z_L| however small the loss (sweep seed 99: a confident fit, loss ≪ |Z_L|).
    floors = trace_floors(desired, x)
    for name in causal_order(set(actual) & set(desired)):
        gradient, _, layer = _parse(name)
        kind = "gradient" if gradient else "forward"
        bound = (bounds or {}).get(kind, tolerance(dtype, kind))
        results.append(_compare_one(name, layer, kind, actual[name], desired[name], dtype, bound,
                                    floors.get(name, 0.0)))
    if notify:
        _notify(dtype, results)
    return results


def compare_backend_traces(actual: dict, desired: dict, desired_backend, x: np.ndarray, masks,
                           bounds: dict | None = None, *, targets: np.ndarray | None = None,
                           actual_backend=None) -> list[Comparison]:
    """:func:`compare_traces` of two backends' traces on one batch. Where rows fail:

    * below a max-pool whose ties rounding broke differently, they are compared again with the
      reference's backward re-run under the actual's routing (:mod:`judge.pool_ties`);
    * where that is not the whole story and ``targets`` are given, every layer is judged again fed
      the actual's own inputs, with kinks flipped within rounding routed as the actual's and long
      reductions judged from their cause (:mod:`judge.explained`; ``actual_backend`` lets a
      float32 reduction be confirmed in float64).

    A row adjusted either way says so in its ``note``; without a cause the rows stand."""
    dtype = desired_backend.spec.dtype
    results = _judged_from_cause(actual, desired, desired_backend, x, masks, bounds, targets, actual_backend)
    _notify(dtype, results)                   # the rows as judged, not the end-to-end rows they replace
    return results


def _judged_from_cause(actual, desired, desired_backend, x, masks, bounds, targets, actual_backend):
    dtype = desired_backend.spec.dtype
    results = compare_traces(actual, desired, dtype, bounds, x, notify=False)
    if all(c.ok for c in results):
        return results
    flips = pool_ties.tie_flips(actual, desired, desired_backend.spec, x, dtype)
    if flips:
        rerouted, replaced = pool_ties.rerouted_reference(desired_backend, actual, desired, x, masks, flips)
        note = "compared with the reference's backward routed as the actual's: " + "; ".join(
            flip.describe() for flip in flips)
        results = [replace(c, note=note, ties=tuple(flips)) if c.name in replaced else c
                   for c in compare_traces(actual, rerouted, dtype, bounds, x, notify=False)]
        if all(c.ok for c in results):
            return results
    if targets is None:
        return results
    from judge import explained  # (explained builds on this module's comparisons)

    return explained.explain_pair(results, actual, desired, desired_backend, x, targets, masks, bounds,
                                  actual_backend)


def _compare_one(name, layer, kind, actual, desired, dtype, bound, floor=0.0) -> Comparison:
    actual, desired = np.asarray(actual), np.asarray(desired)
    if actual.shape != desired.shape:
        return Comparison(name, layer, kind, np.inf, bound,
                          f"shape {actual.shape} != reference {desired.shape}")
    if actual.dtype != np.dtype(dtype) or desired.dtype != np.dtype(dtype):
        return Comparison(name, layer, kind, np.inf, bound,
                          f"dtype {actual.dtype} / reference {desired.dtype}, spec says {dtype}")
    ulps, where = elementwise_ulps(actual, desired, dtype)
    return Comparison(name, layer, kind, relative_error(actual, desired, floor), bound,
                      ulps=ulps, where=where)


def layer_keys(out: dict) -> list[str]:
    """The keys of one layer's pass (``layer_trace``) in causal order: Z, A, dZ, the gradient of
    each trainable tensor (dW, db; dalpha; …, in the pass's order), dA_prev."""
    return (["Z", "A", "dZ"] + [key for key in out if key.startswith("d") and key not in ("dZ", "dA_prev")]
            + ["dA_prev"] * ("dA_prev" in out))


def localize(actual_backend, desired_backend, desired_trace: dict, x, targets, masks,
             dtype: str, bounds: dict | None = None) -> list[Comparison]:
    """Run each layer alone in both backends, fed the reference's inputs; every comparison,
    layer by layer (forward: Z, A; backward: dZ, each parameter's gradient, dA_{l−1}). A failing
    sequence (m, T, …) also names its first time step apart in computation order — h_1 onwards
    forward, T backwards for a gradient (``judge.time_steps``)."""
    n_layers = actual_backend.spec.n_layers
    results = []
    for layer in range(1, n_layers + 1):
        a_prev = x if layer == 1 else desired_trace[f"A{layer - 1}"]
        upstream = targets if layer == n_layers else desired_trace[f"dA{layer}"]
        mask = None if masks is None or layer == n_layers else masks[layer - 1]
        got = actual_backend.layer_trace(layer, a_prev, upstream, mask)
        want = desired_backend.layer_trace(layer, a_prev, upstream, mask)
        floors = layer_floors(actual_backend.spec, layer, want["dZ"], None if layer == n_layers else upstream,
                              a_prev)
        for key in layer_keys(want):
            if key == "dA_prev" and layer == 1:
                continue
            name = f"dA{layer - 1}" if key == "dA_prev" else f"{key}{layer}"
            kind = "gradient" if key.startswith("d") else "forward"
            bound = (bounds or {}).get(kind, tolerance(dtype, kind))
            result = _compare_one(name, layer, kind, got[key], want[key], dtype, bound, floors.get(name, 0.0))
            if not result.ok and not result.problem and np.ndim(want[key]) == 3:     # (m, T, …): a sequence
                apart = first_step_apart(got[key], want[key], bound, backward=kind == "gradient")
                result = replace(result, time_step=None if apart is None else apart.step)
            results.append(result)
    return results


def check_parity(actual_backend, desired_backend, x, targets, masks=None, *,
                 repro: str = "", bounds: dict | None = None) -> list[Comparison]:
    """Trace both backends on (x, targets, masks) and compare; raise :class:`ParityFailure`
    naming the first diverging layer and quantity, or return every comparison."""
    dtype = desired_backend.spec.dtype
    desired = desired_backend.trace(x, targets, masks)
    actual = actual_backend.trace(x, targets, masks)
    results = compare_backend_traces(actual, desired, desired_backend, x, masks, bounds, targets=targets,
                                     actual_backend=actual_backend)
    failed = [c for c in results if not c.ok]
    if failed:
        isolated = sorted((c for c in localize(actual_backend, desired_backend, desired, x, targets, masks,
                                               dtype, bounds) if not c.ok), key=lambda c: _causal_key(c.name))
        raise ParityFailure(failure_message(actual_backend.name, desired_backend.name, dtype,
                                            failed, len(results), isolated, repro))
    return results


def failure_message(actual_name, desired_name, dtype, failed, total, isolated, repro) -> str:
    lines = [f"{actual_name} vs {desired_name} (reference), {dtype}: "
             f"{len(failed)} of {total} quantities exceed tolerance"]
    if isolated:
        first = isolated[0]
        lines.append(f"  first diverging (layer fed the reference's own inputs): layer {first.layer}, "
                     f"{first.describe()}")
    else:
        lines.append("  every layer agrees in isolation: the end-to-end error is accumulated rounding, "
                     "not one wrong layer")
    lines.append(f"  first in causal order end to end: {failed[0].describe()}")
    lines += [f"    {c.describe()}" for c in failed[1:6]]
    if len(failed) > 6:
        lines.append(f"    … and {len(failed) - 6} more")
    if repro:
        lines.append(f"  reproduce: {repro}")
    return "\n".join(lines)


def compare_curves(actual_losses, desired_losses, dtype: str, bound: float | None = None) -> Comparison:
    """The per-step loss curves: the worst step's relative error (and a problem naming the first
    step beyond the bound)."""
    actual_losses = np.asarray(actual_losses, dtype=np.float64)
    desired_losses = np.asarray(desired_losses, dtype=np.float64)
    bound = tolerance(dtype, "curve") if bound is None else bound
    if actual_losses.shape != desired_losses.shape:
        return Comparison("loss curve", None, "curve", np.inf, bound,
                          f"{actual_losses.size} steps != reference {desired_losses.size}")
    per_step = np.abs(actual_losses - desired_losses) / np.abs(desired_losses)
    exceeds = ~(per_step <= bound)                           # NaN counts as exceeding
    worst = float(np.max(np.where(np.isfinite(per_step), per_step, np.inf))) if per_step.size else 0.0
    problem = ""
    if exceeds.any():
        first = int(np.argmax(exceeds))
        problem = (f"first exceeds tol {bound:.0e} at step {first} (rel err {per_step[first]:.3e}); "
                   f"worst {worst:.3e}")
    result = Comparison("loss curve", None, "curve", worst, bound, problem)
    _notify(dtype, [result])
    return result


def compare_parameters(actual_backend, desired_backend, bound: float | None = None) -> list[Comparison]:
    """Every trainable tensor after training (W_l and b_l, a PReLU's α_l, …), read by name from
    each side's ``tensors()`` ({name: array} per layer of ``spec.parameter_layers``) and named
    ``<name><l>`` with l the layer's number, as in a trace."""
    spec = desired_backend.spec
    dtype = spec.dtype
    bound = tolerance(dtype, "parameters") if bound is None else bound
    actual, desired = actual_backend.tensors(), desired_backend.tensors()
    results = []
    for layer, names, ours, theirs in zip(spec.parameter_layers, spec.parameter_names, actual, desired,
                                          strict=True):
        results += [_compare_one(f"{name}{layer}", layer, "parameters", ours[name], theirs[name], dtype,
                                 bound) for name in names]
    _notify(dtype, results)
    return results


def format_table(rows: list[tuple[str, Comparison]]) -> str:
    """A plain-text table of (pair label, comparison) rows, for the CLI and reports. ``error`` is
    the normwise relative error (ulps for an update); ``max ulp`` the largest elementwise error;
    ``ok *``: compared with an adjusted reference (a rerouted max-pool tie), its note printed apart."""
    width = max([20, *(len(label) + 2 for label, _ in rows)])
    where_width = max([12, *(len(str(list(c.where))) + 2 for _, c in rows)])
    name_width = max([18, *(len(c.name) + 6 for _, c in rows)])      # room for " @step"
    header = (f"{'pair':<{width}}{'quantity':<{name_width}}{'kind':<10}{'error':>11}{'tol':>9}{'max ulp':>10}"
              f"  {'where':<{where_width}}status")
    lines = [header, "-" * len(header)]
    for label, c in rows:
        status = "ok" if c.ok else ("FAIL " + c.problem if c.problem else "FAIL")
        status += " *" if c.note else ""                    # the note is printed below the table
        name = c.name if c.step is None else f"{c.name} @{c.step}"
        if c.kind == "update":
            error, bound = f"{c.error:>8.0f} ulp", f"{c.bound:>5.0f} ulp"
        else:
            error, bound = f"{c.error:>11.2e}", f"{c.bound:>9.0e}"
        ulps = f"{c.ulps:>10.3g}" if np.isfinite(c.ulps) else f"{'-':>10}"
        where = str(list(c.where)) if c.where else "-"
        lines.append(f"{label:<{width}}{name:<{name_width}}{c.kind:<10}{error}{bound}{ulps}  "
                     f"{where:<{where_width}}{status}")
    return "\n".join(lines)
