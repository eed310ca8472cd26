"""Per-step training checks: the pass/fail verdict on training.

Two backends trained side by side drift apart by rounding, and adaptive optimizers amplify that
drift (see :mod:`judge.trajectory`), so a bound on the free-running trajectory cannot tell a
rounding difference from a bug. Here errors cannot accumulate: at every step k of the plan

1. the actual backend is **re-synchronized** to the reference: it is loaded with the reference's
   parameters θ_{k−1} and optimizer state (t, m, s, v) — :meth:`load_state`;
2. both trace the step's batch from that same point; every forward quantity, the loss and every
   gradient are compared with :func:`judge.parity.compare_traces` (the same bounds and
   floors as the single-batch parity check);
3. the actual framework's optimizer applies **its own** gradients g_a, and the NumPy engine's
   optimizer (the spec's convention, :mod:`scratch.optimizers`) applies the very same g_a to the
   very same state. The two updated parameters and optimizer buffers must agree **elementwise**
   within ``ULPS_UPDATE`` units in the last place of each element's operands: the update formula
   itself, fed identical inputs, is held to rounding, however much it amplifies a difference in
   its inputs. The operand scale of a buffer b ← b + δ is S_b = max(|b|, |b′|, |δ|) (m ← m +
   (1 − β₁)(g − m) can cancel to far below its operands); of a parameter θ ← θ − u it is
   max(|θ|, |θ′|, |u|·max_b S_b/|b′|), since u is proportional to the buffers and inherits
   their rounding relative to their operands;
4. the reference advances on its own gradients.

Differences smaller than the dtype's smallest normal number (``tiny``: float32 1.18e-38,
float64 2.2e-308) count as agreement in step 3 (:func:`within_flush_to_zero`). XLA runs CPU
code with flush-to-zero and denormals-are-zero (measured: in JAX, float32 3e-39 · 1.0 is 0.0),
so every subnormal operand or result is 0 there and kept in NumPy and torch. A buffer that
decays below ``tiny``, or a subnormal (1 − ρ)·g² added to an s near the bottom of the normal
range, then differs by less than ``tiny`` — which the spacing down there (1.4e-45 in float32)
turns into thousands or millions of ulps (measured on the train → check flow of
``docs/training.md``, torch-convention RMSprop, float32: W3's s, 5.0e6 ulp at step 1 and 2132
ulp at step 2 after 2 epochs). A difference that small cannot move a parameter by a
representable amount: it enters the update only beside ε or a normal-range term. A difference
of ``tiny`` or more is compared as before, so a 0 where the reference has ``tiny`` still fails.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from judge.optimizer_state import (
    OptimizerState,
    canonical_gradients,
    canonical_parameters,
    flat_tensors,
)
from judge.parity import Comparison, compare_backend_traces, elementwise_ulps
from judge.tolerances import ULPS_UPDATE
from scratch.batching import batches


@dataclass(frozen=True)
class StepwiseResult:
    """Every comparison of every re-synchronized step (each carries its ``step``)."""

    comparisons: list[Comparison]
    steps: int

    @property
    def failed(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failed



def parameter_names(spec) -> list[str]:
    """The declared name and layer of every trainable tensor of ``spec``'s layers with parameters
    (W1, b1; gamma2, beta2; alpha3; …; its gradient is ``d`` + this name): the canonical order of
    parameters, gradients and optimizer buffers."""
    return [f"{name}{layer}"
            for layer, names in zip(spec.parameter_layers, spec.parameter_names, strict=True)
            for name in names]


def _pairs(count: int) -> list[str]:
    return [f"{kind}{layer}" for layer in range(1, count // 2 + 1) for kind in ("W", "b")]


def compare_update(actual_params, desired_params, before, actual_state: OptimizerState,
                   desired_state: OptimizerState, before_state: OptimizerState, dtype: str,
                   step: int, bound: float = ULPS_UPDATE, names: list[str] | None = None) -> list[Comparison]:
    """Elementwise ulps between two updates of the same parameters and state (see module doc);
    ``names`` labels the parameters (default W1, b1, W2, … in order)."""
    names = names or _pairs(len(before))
    results = []
    for index, (name, got, want, old) in enumerate(zip(names, actual_params, desired_params, before,
                                                      strict=True)):
        layer = int(name[len(name.rstrip("0123456789")):])          # the numbered layer l
        wanted_slots = desired_state.slots[index] if desired_state.slots else {}
        got_slots = actual_state.slots[index] if actual_state.slots else {}
        old_slots = before_state.slots[index] if before_state.t and before_state.slots else {}
        inherited = np.ones(np.shape(want))
        for buffer, new in wanted_slots.items():
            scale = _operand_scale(old_slots.get(buffer, np.zeros_like(new)), new)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(new != 0, scale / np.abs(new), 1.0)
            inherited = np.maximum(inherited, ratio)
        results.append(_ulps_comparison(f"{name} update", layer, got, want, old, dtype, step, bound,
                                        np.abs(np.asarray(want) - old) * inherited))
        for buffer in sorted(set(wanted_slots) | set(got_slots)):
            label = f"{name} {buffer}"
            if buffer not in got_slots or buffer not in wanted_slots:
                side = "actual" if buffer not in got_slots else "reference"
                results.append(Comparison(label, layer, "update", np.inf, bound,
                                          f"optimizer buffer missing from the {side}", step=step))
                continue
            old_buffer = old_slots.get(buffer, np.zeros_like(wanted_slots[buffer]))
            results.append(_ulps_comparison(label, layer, got_slots[buffer], wanted_slots[buffer],
                                            old_buffer, dtype, step, bound))
    if actual_state.t != desired_state.t:
        results.append(Comparison("step counter t", None, "update", np.inf, bound,
                                  f"actual t = {actual_state.t}, reference t = {desired_state.t}", step=step))
    return results


def _operand_scale(before, after) -> np.ndarray:
    """S = max(|before|, |after|, |after − before|): the operands of ``after = before + δ``."""
    before, after = np.abs(np.asarray(before, np.float64)), np.asarray(after, np.float64)
    return np.maximum(np.maximum(before, np.abs(after)), np.abs(after - before))


def within_flush_to_zero(got, want, dtype: str) -> np.ndarray:
    """``got`` with every element that differs from ``want`` by less than the smallest normal
    number of ``dtype`` replaced by ``want``'s: the reach of a flush-to-zero CPU mode (see the
    module docstring). Shapes must already match."""
    got, want = np.asarray(got), np.asarray(want)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.abs(got.astype(np.float64) - want.astype(np.float64)) < np.finfo(dtype).tiny
    return np.where(close, want, got)


def _ulps_comparison(name, layer, got, want, old, dtype, step, bound, extra_scale=0.0) -> Comparison:
    got, want, old = np.asarray(got), np.asarray(want), np.asarray(old)
    if got.shape != want.shape:
        return Comparison(name, layer, "update", np.inf, bound,
                          f"shape {got.shape} != reference {want.shape}", step=step)
    if got.dtype != np.dtype(dtype):
        return Comparison(name, layer, "update", np.inf, bound, f"dtype {got.dtype}, spec says {dtype}",
                          step=step)
    scale = np.maximum(_operand_scale(old, want), extra_scale)
    ulps, where = elementwise_ulps(within_flush_to_zero(got, want, dtype), want, dtype, scale)
    return Comparison(name, layer, "update", ulps, bound, ulps=ulps, where=where, step=step)


def check_steps(actual, desired, update_reference, x, targets, plan, bounds: dict | None = None,
                ulps_bound: float = ULPS_UPDATE) -> StepwiseResult:
    """Run ``plan`` with ``actual`` re-synchronized to ``desired`` before every step.

    ``update_reference`` is a backend whose optimizer is the reference formula for step 3 (the
    NumPy engine in the spec's convention); ``desired`` and ``actual`` are advanced in place.
    """
    dtype = desired.spec.dtype
    results, count = [], 0
    for step, x_batch, y_batch in batches(x, targets, plan):
        tensors = desired.tensors()
        state = desired.optimizer_state()
        actual.load_state(None, None, state, tensors=tensors)
        want = desired.trace(x_batch, y_batch, step.masks)
        got = actual.trace(x_batch, y_batch, step.masks)
        results += [replace(c, step=step.step)
                    for c in compare_backend_traces(got, want, desired, x_batch, step.masks, bounds,
                                                   targets=y_batch, actual_backend=actual)]
        gradients = canonical_gradients(got, desired.spec)
        actual.apply_gradients(gradients)
        update_reference.load_state(None, None, state, tensors=tensors)
        update_reference.apply_gradients(gradients)
        results += compare_update(canonical_parameters(actual), canonical_parameters(update_reference),
                                  flat_tensors(desired.spec, tensors), actual.optimizer_state(),
                                  update_reference.optimizer_state(), state, dtype, step.step, ulps_bound,
                                  parameter_names(desired.spec))
        desired.apply_gradients(canonical_gradients(want, desired.spec))
        count += 1
    return StepwiseResult(results, count)

