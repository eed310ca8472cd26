"""Scenario: the backprop study (``reports.study.page.study_data``, the same as ``backprop-parity
study``) on one model (a catalog name or a :class:`~reports.scenarios.common.ScenarioModel`), from
its initial parameters (a weight file's, else its initializer's), on the first 8 training samples
of its data set, float64: one line per intermediate (the engine statement and its math, the torch
autograd node, the TensorFlow gradient op, the JAX equation, and each framework's agreement), the
step's annotated graph and the frameworks' own records."""

from __future__ import annotations

from dataclasses import dataclass

from reports.scenarios.common import Context, ScenarioModel, scenario_model
from scratch.batching import dropout_masks


@dataclass(frozen=True)
class ExplainSettings:
    batch: int = 8                        # the first ``batch`` training samples
    dtype: str = "float64"


def run(ctx: Context, model: str | ScenarioModel, settings: ExplainSettings) -> dict:
    from reports.study.page import study_data

    model = scenario_model(model)
    spec = model.spec_with(dtype=settings.dtype)
    x, labels = ctx.training_data(spec, model.dataset, settings.batch)
    return study_data(model.name, spec, model.start(spec).tensors, x, labels, dropout_masks(spec, 0, len(x)))
