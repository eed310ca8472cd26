"""Scenario: the backprop study (``reports.explain.walk``) on one model (a catalog name or a
:class:`~reports.scenarios.common.ScenarioModel`), from its initial parameters (a weight file's, else
its initializer's), on the first 8 training samples of its data set, float64 — the scratch line, the torch
autograd nodes, the TensorFlow gradient ops and the JAX jaxpr equations behind every gradient,
with their differences."""

from __future__ import annotations

from dataclasses import dataclass

from reports.scenarios.common import Context, ScenarioModel, scenario_model
from scratch.batching import dropout_masks


@dataclass(frozen=True)
class ExplainSettings:
    batch: int = 8                        # the first ``batch`` training samples
    dtype: str = "float64"


def run(ctx: Context, model: str | ScenarioModel, settings: ExplainSettings) -> dict:
    from reports.explain.walk import explain

    model = scenario_model(model)
    spec = model.spec_with(dtype=settings.dtype)
    x, labels = ctx.training_data(spec, model.dataset, settings.batch)
    engine = model.start(spec)
    rows = explain(spec, engine.tensors, x, engine.targets(labels),
                   dropout_masks(spec, 0, len(x)))
    return {"model": model.name, "rows": rows}
