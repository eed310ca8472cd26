"""Scenario: the backprop study (``reports.explain.walk``) on one catalog model, from its initial
parameters, on the first 8 training samples of its data set, float64 — the scratch line, the torch
autograd nodes, the TensorFlow gradient ops and the JAX jaxpr equations behind every gradient,
with their differences."""

from __future__ import annotations

from dataclasses import dataclass

from reports.scenarios.common import Context, dataset_of, model_spec, start
from scratch.batching import dropout_masks


@dataclass(frozen=True)
class ExplainSettings:
    batch: int = 8                        # the first ``batch`` training samples
    dtype: str = "float64"


def run(ctx: Context, model: str, settings: ExplainSettings) -> dict:
    from reports.explain.walk import explain

    spec = model_spec(model, dtype=settings.dtype)
    x, labels = ctx.training_data(spec, dataset_of(model), settings.batch)
    engine = start(spec)
    rows = explain(spec, engine.tensors, x, engine.targets(labels),
                   dropout_masks(spec, 0, len(x)))
    return {"model": model, "rows": rows}
