"""Scenario 2b: how far two backends drift apart over training one catalog model, float32
against float64.

The model as the catalog writes it (layers, loss, initializer, seed, dropout), trained with plain
SGD (the same update in every backend) on the first n samples of its data set. Both backends of
a pair start from the same parameters and take the same steps. After step t
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
    Context,
    ScenarioModel,
    backend,
    describe_data,
    flat_parameters,
    number,
    numbers,
    relative_distance,
    run_steps,
    scenario_model,
    spec_summary,
)
from scratch.batching import training_plan
from scratch.spec import ModelSpec, OptimizerSpec
from twins.backends import PAIRS

DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class DivergenceSettings:
    samples: int = 19200                  # the first ``samples`` training samples of the model's data set
    batch_size: int = 64
    epochs: int = 1
    learning_rate: float = 0.1            # plain SGD, the same update in every backend


def _spec(model: ScenarioModel, settings: DivergenceSettings, dtype: str) -> ModelSpec:
    return model.spec_with(dtype=dtype, optimizer=OptimizerSpec("sgd", learning_rate=settings.learning_rate),
                           batch_size=settings.batch_size, epochs=settings.epochs)


def _trajectory(ctx, name, spec, tensors, x, targets, plan):
    """The loss of every step and θ after every step, for backend ``name``."""
    model = backend(name, spec, tensors)
    thetas = []
    with ctx.bar(len(plan), f"divergence {spec.dtype} {name}") as bar:
        losses = run_steps(model, x, targets, plan, bar,
                           after_step=lambda step, loss: thetas.append(flat_parameters(model)))
    return np.array(losses), thetas


def run(ctx: Context, model: str | ScenarioModel, settings: DivergenceSettings) -> dict:
    """Each backend pair's |Δloss| and ‖Δθ‖/‖θ‖ after every SGD step of ``model`` (a catalog name or
    a :class:`~reports.scenarios.common.ScenarioModel`), float64 and float32."""
    model = scenario_model(model)
    series = []
    for dtype in DTYPES:
        spec = _spec(model, settings, dtype)
        x, labels = ctx.training_data(spec, model.dataset, settings.samples)
        engine = model.start(spec)
        targets = engine.targets(labels)
        plan = list(training_plan(spec, len(x)))
        trajectories = {name: _trajectory(ctx, name, spec, engine.tensors, x, targets, plan)
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
        "model": model.name,
        "data": describe_data(model.dataset, x),
        "spec": spec_summary(_spec(model, settings, "float64")),
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
