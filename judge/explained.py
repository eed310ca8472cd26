"""A failing pair judged again from its cause: every layer of the actual fed its own inputs.

Two mechanisms make two correct backends part, on one batch, far beyond a bound near the
floating-point floor (measured on a trained Keras-convention BatchNorm CNN, float32, 64 digits:
``docs/reductions.md``):

* **A long reduction.** Keras's BatchNorm averages 50 176 values per channel in float32 and its
  output lands 1.3e-4 from the float64 normalization of the same input; the engine's lands 7e-8
  from it. Every later forward quantity inherits the 1e-4.
* **A kink flipped within that difference.** The digits' blank background makes a whole region of
  a feature map share one value; where that value is zero to rounding (Z2 = +2.3e-5 in Keras,
  −1.3e-5 in the engine, against max|Z2| ≈ 4), ReLU′ takes the other branch for the whole region at
  once, and dZ_l, dA_{l−1} and everything below part by O(1) (0.56 on dZ4).

:func:`explain` re-runs the engine layer by layer, each layer fed the **actual's own** A_{l−1} and
dA_l (the targets at the output), so nothing accumulates:

1. every quantity of the actual is compared with the engine's layer fed the same inputs, at the
   table's bounds (:func:`judge.parity.gradient_floors` floors): a wrong layer still fails;
2. a ReLU/leaky-ReLU pre-activation on the other side of the kink in the actual, both values within
   the layer's forward bound of zero (× max|Z_l|), is routed as the actual's — g′ taken at the
   actual's Z_l (``Network.layer_pass(route_z=…)``) — and named;
3. a layer with a long reduction (:data:`judge.reduction_bounds.REDUCING`) whose own outputs
   still miss the bound is judged from its cause. In float32 a **float64 arbiter** — the engine's
   layer in float64 fed the same inputs, exactly cast up — says which backend is off and by how
   much: the actual passes when its distance to the arbiter is within the table's bound plus the
   layer's reduction bound (:func:`judge.reduction_bounds.output_bound`) and the engine's own
   distance within the table's bound. In float64 the reduction bound is added directly (n·u is
   2⁻²⁹ times smaller there);
4. a float32 pair explained by a reduction is then checked **in float64** as well (the same spec,
   parameters and batch cast up exactly; the actual's own framework): a real error of the layer —
   ε 1e-3 for 1e-5, a mean off by one element, the wrong axis — that float32's reduction error
   could hide is 1e-2…1e-6 there, against bounds of 1e-13 to ~1e-11.

The explanation holds only where a cause (2 or 3) was found and every local comparison passes;
otherwise the end-to-end rows stand as they are. Max-pool ties broken by rounding need no rule
here: a max-pool fed the actual's own input routes as the actual does
(``judge.pool_ties`` handles them end to end first).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from judge.engine_backend import runs_engine
from judge.parity import Comparison, elementwise_ulps, layer_floors, layer_keys, loss_floor, relative_error
from judge.reduction_bounds import REDUCING, output_bound
from judge.tolerances import tolerance
from scratch.model import Network

KINKED = ("relu", "leaky_relu")


@dataclass(frozen=True)
class Explanation:
    """The local comparisons that replace the failing end-to-end rows, and the causes found."""

    comparisons: dict[str, Comparison]      # by name (Z2, dA1, loss, …)
    causes: list[str]

    @property
    def note(self) -> str:
        return ("judged layer by layer, each engine layer fed the actual's own inputs: "
                + "; ".join(self.causes))


def _bound(bounds, dtype: str, kind: str) -> float:
    return (bounds or {}).get(kind, tolerance(dtype, kind))


def _compare(name, layer, kind, actual, desired, dtype, bound, floor=0.0) -> Comparison:
    """Like ``parity._compare_one``, but ``desired`` may be a float64 arbiter of a float32 run
    (then only ``actual``'s dtype is checked against the spec's)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    if actual.shape != desired.shape:
        return Comparison(name, layer, kind, np.inf, bound,
                          f"shape {actual.shape} != reference {desired.shape}")
    if actual.dtype != np.dtype(dtype):
        return Comparison(name, layer, kind, np.inf, bound, f"dtype {actual.dtype}, spec says {dtype}")
    ulps, where = elementwise_ulps(actual, desired, dtype)
    error = relative_error(actual, desired, floor)
    return Comparison(name, layer, kind, error, bound, ulps=ulps, where=where)


def _name(key: str, layer: int) -> str:
    return f"dA{layer - 1}" if key == "dA_prev" else f"{key}{layer}"


def _kink_flips(spec, layer: int, z_actual, z_reference, allowed: float) -> np.ndarray | None:
    """Elements of Z_l on different sides of a ReLU/leaky-ReLU kink, both within ``allowed`` ×
    max|Z_l| of zero (None: the layer has no kink, or is the output)."""
    if layer == spec.n_layers or spec.activations[layer - 1] not in KINKED:
        return None
    z_a = np.asarray(z_actual, np.float64)
    z_r = np.asarray(z_reference, np.float64)
    near = allowed * float(np.max(np.abs(z_r))) if z_r.size else 0.0
    flipped = ((z_a > 0) != (z_r > 0)) & (np.abs(z_a) <= near) & (np.abs(z_r) <= near)
    return flipped if flipped.any() else None


class _LocalPass:
    """The engine's layer l fed the actual's inputs, routed at the actual's flipped kinks."""

    def __init__(self, engine, actual: dict, x, targets, masks):
        self.engine, self.actual, self.spec = engine, actual, engine.spec
        self.x, self.targets, self.masks = x, targets, masks

    def inputs(self, layer: int, dtype=None):
        a_prev = self.x if layer == 1 else self.actual[f"A{layer - 1}"]
        last = layer == self.spec.n_layers
        upstream = self.targets if last else self.actual[f"dA{layer}"]
        mask = None if self.masks is None or last else self.masks[layer - 1]
        if dtype is not None:
            a_prev, upstream = (np.asarray(v, dtype) for v in (a_prev, upstream))
            mask = None if mask is None else np.asarray(mask, dtype)
        return a_prev, upstream, mask

    def run(self, engine, layer: int, allowed: float, dtype=None):
        """(the layer's outputs, the flipped kinks routed or None)."""
        a_prev, upstream, mask = self.inputs(layer, dtype)
        out = engine.layer_pass(layer, a_prev, upstream, mask)
        z_actual = self.actual[f"Z{layer}"]
        flips = _kink_flips(self.spec, layer, z_actual, out["Z"], allowed)
        if flips is not None:
            route = np.where(flips, np.asarray(z_actual, out["Z"].dtype), out["Z"])
            out = engine.layer_pass(layer, a_prev, upstream, mask, route_z=route)
        return out, flips


def explain(actual: dict, results: list[Comparison], engine, x, targets, masks, *,
            actual_name: str = "the actual", bounds: dict | None = None, engine64=None,
            shadow=None) -> Explanation | None:
    """The explanation of the failing rows in ``results`` (see the module docstring), or None.

    ``engine`` is the NumPy engine (``scratch.model.Network``) at the spec's dtype with the pair's
    parameters; ``engine64`` the same in float64 (the arbiter of a float32 reduction; None: no
    reduction is explained); ``shadow()`` runs the pair in float64 and returns (ok, what it found)."""
    spec = engine.spec
    dtype = spec.dtype
    failing = [c for c in results if not c.ok]
    if not failing or targets is None:
        return None
    local = _LocalPass(engine, actual, x, targets, masks)
    comparisons, causes, reduced = {}, [], False
    carried = []                   # reducing layers within the table's bound locally, (l, bound, Z_l row)
    for layer in range(1, spec.n_layers + 1):
        layer_spec = spec.numbered_layers[layer - 1]
        forward_bound = _bound(bounds, dtype, "forward")
        a_prev, upstream, _ = local.inputs(layer)
        out, flips = local.run(engine, layer, forward_bound)
        reduction, allowed = None, forward_bound
        if layer_spec.kind in REDUCING:                 # its kinks may sit within the reduction's reach
            gamma = getattr(engine.layers[layer - 1], "gamma", None)
            reduction = output_bound(layer_spec, a_prev, gamma, out["Z"], dtype)
            allowed = forward_bound + reduction.forward
            out, flips = local.run(engine, layer, allowed)
        hidden = layer < spec.n_layers
        floors = layer_floors(spec, layer, out["dZ"], upstream if hidden else None, a_prev)
        rows = {}
        for key in layer_keys(out):
            name = _name(key, layer)
            if key not in out or out[key] is None or name not in actual:
                continue
            kind = "gradient" if key.startswith("d") else "forward"
            rows[name] = _compare(name, layer, kind, actual[name], out[key], dtype,
                                  _bound(bounds, dtype, kind), floors.get(name, 0.0))
        if flips is not None:
            where = tuple(int(i) for i in np.argwhere(flips)[0])
            z_a, z_r = float(actual[f"Z{layer}"][where]), float(out["Z"][where])
            causes.append(f"layer {layer}: {int(flips.sum())} {spec.activations[layer - 1]} kink(s) on the "
                          f"other side in {actual_name} within the forward bound, "
                          f"e.g. Z{layer}{list(where)} = "
                          f"{z_a:+.3e} ({actual_name}) vs {z_r:+.3e} (the engine), routed as {actual_name}'s")
        if reduction is not None and not all(c.ok for c in rows.values()):
            judged = _judge_reduction(local, layer, reduction, rows, allowed, actual_name, bounds, engine64)
            if judged is None:
                return None
            rows, cause = judged
            causes.append(cause)
            reduced = reduced or dtype == "float32"
        elif reduction is not None:
            carried.append((layer, reduction, rows.get(f"Z{layer}")))
        comparisons.update(rows)
    if "loss" in actual:
        z_out, a_out = actual[f"Z{spec.n_layers}"], actual[f"A{spec.n_layers}"]
        value = engine.loss_fn.value(z_out, a_out, targets)
        value = value + engine.l2_penalty() if spec.l2 else value
        comparisons["loss"] = _compare("loss", None, "forward", actual["loss"],
                                       np.asarray(value, dtype=dtype), dtype,
                                       _bound(bounds, dtype, "forward"), loss_floor(z_out))
    if any(not c.ok for c in comparisons.values()):
        return None
    if not causes:
        # Every layer agrees locally: the end-to-end excess is carried up from a long reduction at
        # or below the first failing forward row (its local difference, within the table's bound,
        # grown by the layers above), or there is no cause and the rows stand.
        first = min((c.layer for c in failing if c.kind == "forward" and c.layer is not None),
                    default=spec.n_layers)
        for layer, reduction, row in carried:
            if layer <= first and row is not None:
                causes.append(f"{actual_name}: layer {layer} {reduction.describe()} put Z{layer} "
                              f"{row.error:.1e} from the engine's, within the bound: a long reduction's "
                              "rounding that the layers above carry")
                reduced = reduced or dtype == "float32"
        if not causes:
            return None
    if any(c.name not in comparisons for c in failing):
        return None
    if reduced:
        if shadow is None:
            return None
        ok, found = shadow()
        if not ok:
            return None
        causes.append(found)
    return Explanation(comparisons, causes)


def _judge_reduction(local: _LocalPass, layer: int, reduction, rows: dict, allowed: float, actual_name: str,
                     bounds, engine64):
    """(the layer's rows judged against the reduction, the cause) or None (not explained)."""
    dtype = local.spec.dtype
    extra = {"forward": reduction.forward, "gradient": reduction.gradient}
    if dtype == "float64":
        judged = {name: replace(c, bound=c.bound + extra[c.kind]) for name, c in rows.items()}
        if not all(c.ok for c in judged.values()):
            return None
        worst = max(judged.values(), key=lambda c: c.error)
        return judged, (f"{actual_name}: layer {layer} {reduction.describe()} part by {worst.error:.1e} "
                        f"({worst.name}), within the float64 reduction bound {reduction.forward:.1e} (n·u·κ)")
    if engine64 is None:
        return None
    arbiter, _ = local.run(engine64, layer, allowed, np.float64)
    own, _ = local.run(local.engine, layer, allowed)
    a_prev, upstream, _ = local.inputs(layer, np.float64)
    floors = layer_floors(local.spec, layer, arbiter["dZ"], upstream if layer < local.spec.n_layers else None,
                          a_prev)
    judged, reference_rows = {}, {}
    for name, c in rows.items():
        key = "dA_prev" if name == f"dA{layer - 1}" else name[:-len(str(layer))]
        bound = _bound(bounds, dtype, c.kind)
        floor = floors.get(name, 0.0)
        judged[name] = _compare(name, layer, c.kind, local.actual[name], arbiter[key], dtype,
                                bound + extra[c.kind], floor)
        reference_rows[name] = _compare(name, layer, c.kind, own[key], arbiter[key], dtype, bound, floor)
    if not all(c.ok for c in judged.values()) or not all(c.ok for c in reference_rows.values()):
        return None
    z = f"Z{layer}"
    return judged, (f"{actual_name}: layer {layer} {reduction.describe()} put {z} {judged[z].error:.1e} from "
                    f"float64, the engine {reference_rows[z].error:.1e} (reduction bound n·u·κ "
                    f"{reduction.forward:.1e}): the framework's float32 reduction")


def apply(results: list[Comparison], explanation: Explanation) -> list[Comparison]:
    """``results`` with every failing row replaced by its local comparison, carrying the note."""
    note = explanation.note
    return [c if c.ok else replace(explanation.comparisons[c.name], note=note, step=c.step) for c in results]


def engine_of(backend, dtype: str | None = None):
    """The NumPy engine holding ``backend``'s parameters and running statistics, in ``dtype``
    (default: the spec's). An engine backend gives its own model (a variant included, rebuilt in
    ``dtype`` by its own class); a framework backend a fresh ``Network``."""
    if dtype is None and runs_engine(backend):
        return backend.model
    spec = backend.spec if dtype is None else backend.spec.replace(dtype=dtype)
    tensors, statistics = _cast_state(backend, spec.dtype)
    if runs_engine(backend):
        return rebuilt_in(backend, spec).model
    return Network(spec, tensors=tensors, statistics=statistics or None)


def rebuilt_in(backend, spec):
    """``backend``'s own class (a twin, the engine or a variant of it) built for ``spec`` — the same
    spec in another dtype — from ``backend``'s parameters and running statistics cast to it."""
    tensors, statistics = _cast_state(backend, spec.dtype)
    return type(backend)(spec, tensors=tensors, **({"statistics": statistics} if statistics else {}))


def arbiter_of(backend):
    """The float64 arbiter: a fresh, unmodified engine in float64 with ``backend``'s state."""
    spec = backend.spec.replace(dtype="float64")
    tensors, statistics = _cast_state(backend, "float64")
    return Network(spec, tensors=tensors, statistics=statistics or None)


def _cast_state(backend, dtype: str):
    tensors = [{name: np.asarray(array, dtype) for name, array in layer.items()}
               for layer in backend.tensors()]
    statistics = [(np.asarray(m, dtype), np.asarray(v, dtype)) for m, v in backend.statistics()]
    return tensors, statistics


def _engine_trace(engine, x, targets, masks) -> dict:
    forward = engine.forward(x, masks)
    return {"loss": np.asarray(engine.loss(forward, targets)), **forward.named(),
            **engine.backward(forward, targets).named()}


def float64_shadow(backend, reference_backend, x, targets, masks):
    """A callable running ``backend``'s framework in float64 against the engine of
    ``reference_backend`` in float64 (its own class where that is an engine backend), same
    parameters, statistics and batch cast up exactly, compared and explained (a reduction now
    judged by its float64 bound) as in float32. Returns (ok, what it found)."""

    def run():
        from judge.parity import compare_traces

        engine = engine_of(reference_backend, "float64")
        try:
            twin = rebuilt_in(backend, engine.spec)
        except Exception as error:                   # a twin that cannot run float64 cannot confirm
            return False, f"float64 check not possible: {error}"
        x64 = np.asarray(x, np.float64)
        targets64 = np.asarray(targets, np.float64)
        masks64 = None if masks is None else [None if m is None else np.asarray(m, np.float64) for m in masks]
        got = twin.trace(x64, targets64, masks64)
        results = compare_traces(got, _engine_trace(engine, x64, targets64, masks64), "float64", None, x64)
        if all(c.ok for c in results):
            return True, f"{backend.name} in float64 agrees within the float64 bounds"
        found = explain(got, results, engine, x64, targets64, masks64, actual_name=backend.name)
        if found is None:
            worst = max((c for c in results if not c.ok), key=lambda c: c.error)
            return False, f"in float64 {backend.name} still parts: {worst.describe()}"
        return True, f"in float64 {backend.name} agrees layer by layer (" + "; ".join(found.causes) + ")"

    return run


def _explain_side(trace: dict, results, backend, reference_backend, engine, x, targets, masks, bounds):
    """:func:`explain` of one backend's trace against the engine (None: not explained)."""
    dtype = engine.spec.dtype
    name = getattr(backend, "name", "the actual")
    engine64 = arbiter_of(reference_backend) if dtype == "float32" else None
    shadow = (float64_shadow(backend, reference_backend, x, targets, masks)
              if backend is not None and dtype == "float32" else None)
    return explain(trace, results, engine, x, targets, masks, actual_name=name, bounds=bounds,
                   engine64=engine64, shadow=shadow)


def explain_pair(results, actual: dict, desired: dict, desired_backend, x, targets, masks, bounds,
                 actual_backend):
    """``results`` with the failing rows explained where a cause holds, else as they are. The
    engine is the local reference: an engine backend's own model, or — for a framework reference
    — a fresh engine that the framework must itself agree with, explained the same way."""
    from judge.parity import compare_traces

    engine = engine_of(desired_backend)
    found = _explain_side(actual, results, actual_backend, desired_backend, engine, x, targets, masks,
                          bounds)
    if found is None:
        return results
    if not runs_engine(desired_backend):
        own = compare_traces(desired, _engine_trace(engine, x, targets, masks), engine.spec.dtype, bounds, x)
        if not all(c.ok for c in own):
            theirs = _explain_side(desired, own, desired_backend, desired_backend, engine, x, targets, masks,
                                   bounds)
            if theirs is None:
                return results
            found = Explanation(found.comparisons, found.causes + theirs.causes)
    return apply(results, found)
