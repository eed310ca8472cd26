"""Scenario 1: forward and gradient parity of one catalog model, per layer and quantity, for every
backend pair.

One batch of the model's data set goes through each backend from the same parameters (the
model's initializer and seed; its dropout masks, ``scratch.batching.dropout_masks``, where it
drops); every named quantity
(Z_l, A_l, the loss, dA_l, dZ_l, and d<name>_l of each declared tensor: dW_l, db_l; dgamma_l,
dbeta_l; dalpha_l) is compared for each pair (actual vs desired, the
desired one being the reference) with

    max abs error = max|actual − desired|
    max rel error = max|actual − desired| / max|desired|      (``judge.parity``)

against the tolerance table (``judge.tolerances``), in float64 and in float32. Each row also
keeps the largest elementwise error in ulps of the reference element (``max_ulps``) and the index
where it is (``where``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from judge.parity import compare_backend_traces
from reports.scenarios.common import (
    Context,
    ScenarioModel,
    backend,
    describe_data,
    number,
    scenario_model,
    spec_summary,
)
from scratch.batching import dropout_masks
from twins.backends import PAIRS

DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class ParitySettings:
    batch: int = 256                      # the first ``batch`` training samples of the model's data set
    dtypes: tuple[str, ...] = DTYPES


def pair_label(actual: str, desired: str) -> str:
    return f"{actual} vs {desired}"


def max_abs_error(actual, desired) -> float:
    """max|actual − desired| (inf when one is missing or the shapes differ)."""
    if actual is None or desired is None:
        return float("inf")
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    if actual.shape != desired.shape:
        return float("inf")
    if desired.size == 0:
        return 0.0
    return float(np.max(np.abs(actual - desired)))


def comparison_row(dtype: str, pair: str, comparison, actual: dict, desired: dict) -> dict:
    """One parity row of results.json (``reports.schema.PARITY_ROW``) from a
    :class:`~judge.parity.Comparison` of the traces ``actual`` and ``desired``: non-finite
    errors become null, ``ok`` a plain bool (the report's verdict counts it as written); a row judged
    again from its cause (``judge.explained``, a rerouted tie) carries its ``note``, and then
    ``rel_error`` is that judgement's while ``abs_error`` stays the end-to-end difference."""
    return {
        "dtype": dtype,
        "pair": pair,
        "quantity": comparison.name,
        "layer": comparison.layer,
        "kind": comparison.kind,
        "abs_error": number(max_abs_error(actual.get(comparison.name), desired.get(comparison.name))),
        "rel_error": number(comparison.error),
        "tolerance": float(comparison.bound),
        "ok": bool(comparison.ok),
        "max_ulps": number(comparison.ulps),
        "where": [int(i) for i in comparison.where],
        **({"note": comparison.note} if comparison.note else {}),     # judged from its cause
    }


def run(ctx: Context, model: str | ScenarioModel, settings: ParitySettings) -> dict:
    """Rows of (dtype, pair, quantity) for ``model`` (a catalog name or a
    :class:`~reports.scenarios.common.ScenarioModel`): max abs and rel error, tolerance, ok, max
    ulps and where."""
    model = scenario_model(model)
    rows = []
    specs = {}
    for dtype in settings.dtypes:
        spec = model.spec_with(dtype=dtype)
        specs[dtype] = spec_summary(spec)
        x, labels = ctx.training_data(spec, model.dataset, settings.batch)
        engine = model.start(spec)
        targets = engine.targets(labels)
        masks = dropout_masks(spec, 0, len(x))
        backends = {name: backend(name, spec, engine.tensors) for name in ctx.backends}
        traces = {name: twin.trace(x, targets, masks) for name, twin in backends.items()}
        for actual, desired in PAIRS:
            if actual not in traces or desired not in traces:
                continue
            for comparison in compare_backend_traces(traces[actual], traces[desired], backends[desired], x,
                                                     masks, targets=targets, actual_backend=backends[actual]):
                rows.append(comparison_row(dtype, pair_label(actual, desired), comparison, traces[actual],
                                           traces[desired]))
    return {
        "model": model.name,
        "data": describe_data(model.dataset, x),
        "specs": specs,
        "pairs": [pair_label(a, d) for a, d in PAIRS if ctx.has(a, d)],
        "rows": rows,
    }
