"""Scenario 2b: how far two backends drift apart over training, float32 against float64.

Both backends of a pair start from the same parameters and take the same steps. After step t
(1-based) the report records

    |Δloss|_t     = |loss_t(actual) − loss_t(desired)|           (loss of step t's batch)
    ‖Δθ‖/‖θ‖_t    = ‖θ_t(actual) − θ_t(desired)‖₂ / ‖θ_t(desired)‖₂

with θ every W_l and b_l flattened. Rounding differs between the backends' kernels (summation
order, fused operations), so even identical math differs in the last bits; training feeds each
step's parameters into the next, so those differences are carried forward and accumulate
(measured on the default setting, 200 SGD steps: ‖Δθ‖/‖θ‖ grows from ~6e-9 to ~2e-7 in float32,
and from ~1e-17 to ~4e-16 in float64 — there it never leaves a few units of the unit roundoff
2⁻⁵³ ≈ 1.1e-16, while in float32 it passes its roundoff 2⁻²⁴ ≈ 6e-8 within the run).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reports.scenarios.common import (
    SEED_NET,
    Context,
    backend,
    flat_parameters,
    number,
    numbers,
    relative_distance,
    run_steps,
    spec_summary,
)
from scratch.batching import training_plan
from scratch.initializers import initialize
from scratch.model import MLP
from scratch.spec import ModelSpec, OptimizerSpec
from twins.backends import PAIRS

DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class DivergenceSettings:
    samples: int = 19200                  # the first ``samples`` MNIST training samples
    batch_size: int = 64
    epochs: int = 1
    learning_rate: float = 0.1            # plain SGD, the same update in every backend
    layer_sizes: tuple[int, ...] = SEED_NET           # the net of common.SEED_MODEL
    init: str = "he_normal"
    seed: int = 0


def _spec(settings: DivergenceSettings, dtype: str) -> ModelSpec:
    return ModelSpec(settings.layer_sizes, init=settings.init, seed=settings.seed, dtype=dtype,
                     optimizer=OptimizerSpec("sgd", learning_rate=settings.learning_rate),
                     batch_size=settings.batch_size, epochs=settings.epochs)


def _trajectory(ctx, name, spec, weights, biases, x, targets, plan):
    """The loss of every step and θ after every step, for backend ``name``."""
    model = backend(name, spec, weights, biases)
    thetas = []
    with ctx.bar(len(plan), f"divergence {spec.dtype} {name}") as bar:
        losses = run_steps(model, x, targets, plan, bar,
                           after_step=lambda step, loss: thetas.append(flat_parameters(model)))
    return np.array(losses), thetas


def run(ctx: Context, settings: DivergenceSettings) -> dict:
    series = []
    for dtype in DTYPES:
        spec = _spec(settings, dtype)
        data = ctx.mnist(dtype)
        x, labels = data.x_train[:settings.samples], data.y_train[:settings.samples]
        weights, biases = initialize(spec.init, spec.layer_sizes, spec.seed, np.dtype(dtype))
        targets = MLP(spec, weights, biases).targets(labels)
        plan = list(training_plan(spec, len(x)))
        trajectories = {name: _trajectory(ctx, name, spec, weights, biases, x, targets, plan)
                        for name in ctx.backends}
        for actual, desired in PAIRS:
            if actual not in trajectories or desired not in trajectories:
                continue
            (loss_a, thetas_a), (loss_d, thetas_d) = trajectories[actual], trajectories[desired]
            param = [relative_distance(a, d) for a, d in zip(thetas_a, thetas_d, strict=True)]
            series.append({"pair": f"{actual} vs {desired}", "dtype": dtype,
                           "loss_abs_diff": numbers(np.abs(loss_a - loss_d)),
                           "param_rel_diff": numbers(param)})
    return {
        "data": f"MNIST, first {settings.samples} training samples",
        "spec": spec_summary(_spec(settings, "float64")),
        "steps": len(plan),
        "series": series,
        "summary": [_summary(s) for s in series],
    }


def _summary(series: dict) -> dict:
    """The first, last and largest value of each series."""
    def stats(values):
        finite = [v for v in values if v is not None]
        return {"first": values[0], "last": values[-1],
                "max": number(max(finite)) if finite else None}
    return {"pair": series["pair"], "dtype": series["dtype"],
            "loss_abs_diff": stats(series["loss_abs_diff"]),
            "param_rel_diff": stats(series["param_rel_diff"])}
