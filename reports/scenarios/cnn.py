"""Scenario 5b: the convolutional model, the catalog's ``lenet5``, in every twin against the engine.

Three parts, on a small MNIST subset (the first n training digits as 1×28×28 maps):

* **parity** — one batch through every backend from the engine's initial parameters, with the
  spec's dropout masks (``scratch.batching.dropout_masks``), in float32 (the catalog's dtype) and
  float64; every named quantity Z_l, A_l, the loss, dA_l, dZ_l, dW_l, db_l of each twin against
  the engine by :func:`judge.parity.compare_backend_traces` (normwise relative error against
  :mod:`judge.tolerances`), rows exactly as the MLP parity scenario writes them;
* **training** — :func:`judge.training_parity.compare_training` of each twin against the
  engine over the same plan (batches, dropout masks) in both dtypes: every step re-synchronized
  (the verdict) and the free-running trajectories measured. The catalog's optimizer is
  torch-convention Adam; Keras's optimizers cannot express it (``twins.backends.twins_for``),
  so the Keras twin trains Keras-convention Adam (same η, β₁, β₂, ε) against the engine running
  that same convention — the section says so;
* **curves** — the float32 free-running losses of those trainings, every backend from the same
  start, and each twin's largest deviation from the engine.

The convention findings (``reports.scenarios.cnn_findings``) are measured in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from judge.parity import compare_backend_traces
from judge.training_parity import compare_training
from reports.scenarios import cnn_findings
from reports.scenarios.common import Context, backend, number, numbers, spec_summary
from reports.scenarios.curves import check_entry
from reports.scenarios.parity import comparison_row, pair_label
from scratch import catalog
from scratch.batching import dropout_masks, training_plan
from scratch.model import Network
from scratch.spec import ModelSpec, OptimizerSpec
from twins.backends import twins_for

MODEL = "lenet5"
DTYPES = ("float32", "float64")
TWINS = ("torch", "keras", "jax")


@dataclass(frozen=True)
class CnnSettings:
    batch: int = 32  # parity: the first ``batch`` MNIST training digits
    samples: int = 512  # training: the first ``samples`` digits …
    batch_size: int = 16  # … in mini-batches of this size, one epoch
    finding_samples: int = 64  # the convention findings' batch
    batchnorm_steps: int = 20  # training steps before the BatchNorm finding compares


def lenet5_spec(dtype: str, batch_size: int | None = None) -> ModelSpec:
    """The catalog's ``lenet5`` in ``dtype`` (its layers, initializer, seed and optimizer), one
    epoch of ``batch_size``."""
    return catalog.spec(MODEL).replace(dtype=dtype, epochs=1, batch_size=batch_size)


def maps(ctx: Context, dtype: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, 1, 28, 28), labels (n,)): the first ``n`` MNIST training digits, row-major maps."""
    data = ctx.mnist(dtype)
    return data.x_train[:n].reshape(n, 1, 28, 28), data.y_train[:n]


def training_spec(spec: ModelSpec, twin: str) -> tuple[ModelSpec, str]:
    """(the spec ``twin`` trains, its optimizer's config name): the catalog's optimizer where the
    twin's framework expresses it, else the same hyperparameters in the twin's own convention."""
    optimizer = spec.optimizer
    if twin in twins_for(optimizer.name, optimizer.convention):
        return spec, f"{optimizer.name}-{optimizer.convention}"
    own = OptimizerSpec(
        optimizer.name,
        twin,
        learning_rate=optimizer.learning_rate,
        beta1=optimizer.beta1,
        beta2=optimizer.beta2,
        epsilon=optimizer.epsilon,
    )
    return spec.replace(optimizer=own), f"{optimizer.name}-{twin}"


def parity_rows(ctx: Context, settings: CnnSettings, dtype: str) -> list[dict]:
    """Every quantity of every twin's trace against the engine's, as the parity scenario's rows."""
    spec = lenet5_spec(dtype)
    x, labels = maps(ctx, dtype, settings.batch)
    start = Network(spec)
    targets = start.targets(labels)
    masks = dropout_masks(spec, 0, len(x))
    reference = backend("scratch", spec, start.weights, start.biases)
    desired = reference.trace(x, targets, masks)
    rows = []
    for twin in TWINS:
        if twin not in ctx.backends:
            continue
        twin_backend = backend(twin, spec, start.weights, start.biases)
        actual = twin_backend.trace(x, targets, masks)
        for comparison in compare_backend_traces(actual, desired, reference, x, masks, targets=targets,
                                                 actual_backend=twin_backend):
            rows.append(comparison_row(dtype, pair_label(twin, "scratch"), comparison, actual, desired))
    return rows


def training_checks(ctx: Context, settings: CnnSettings, dtype: str) -> tuple[list[dict], list[dict]]:
    """(checks, curve runs) of every twin against the engine in ``dtype``: the curves scenario's
    check entries (``config`` names the optimizer and convention), and each backend's losses."""
    spec = lenet5_spec(dtype, settings.batch_size)
    x, labels = maps(ctx, dtype, settings.samples)
    start = Network(spec)
    targets = start.targets(labels)
    plan = list(training_plan(spec, len(x)))
    checks, runs = [], {}
    for twin in TWINS:
        if twin not in ctx.backends:
            continue
        twin_spec, config = training_spec(spec, twin)
        with ctx.bar(len(plan), f"lenet5 {dtype} {twin} vs scratch ({config})") as bar:
            training = compare_training(
                twin, "scratch", twin_spec, start.weights, start.biases, x, targets, plan
            )
            bar.update(len(plan))
        checks.append(check_entry(config, training))
        convention = twin_spec.optimizer.convention
        runs.setdefault(("scratch", convention), training.trajectory.losses["reference"])
        runs[(twin, convention)] = training.trajectory.losses["actual"]
    return checks, [
        {"backend": name, "convention": convention, "loss": numbers(losses)}
        for (name, convention), losses in runs.items()
    ]


def deviations(runs: list[dict]) -> list[dict]:
    """Each twin's loss curve against the engine's in the same convention: the largest
    |loss_twin − loss_engine| over the steps, and the step where it is (1-based)."""
    engine = {run["convention"]: run["loss"] for run in runs if run["backend"] == "scratch"}
    out = []
    for run in runs:
        if run["backend"] == "scratch":
            continue
        reference = engine[run["convention"]]
        diff = np.abs(np.array(run["loss"], dtype=np.float64) - np.array(reference, dtype=np.float64))
        worst = int(np.argmax(diff)) if diff.size else 0
        out.append(
            {
                "backend": run["backend"],
                "convention": run["convention"],
                "max_abs_loss_diff": number(diff[worst]) if diff.size else 0.0,
                "at_step": worst + 1,
            }
        )
    return out


def run(ctx: Context, settings: CnnSettings) -> dict:
    rows, checks, curves = [], [], []
    for dtype in DTYPES:
        rows += parity_rows(ctx, settings, dtype)
        dtype_checks, runs = training_checks(ctx, settings, dtype)
        checks += [dict(check, dtype=dtype) for check in dtype_checks]
        if dtype == catalog.spec(MODEL).dtype:
            curves = runs
    spec = lenet5_spec(catalog.spec(MODEL).dtype, settings.batch_size)
    return {
        "model": MODEL,
        "spec": spec_summary(spec),
        "data": f"MNIST, first {settings.batch} training digits (parity); first {settings.samples} in "
        f"batches of {settings.batch_size} (training)",
        "steps": -(-settings.samples // settings.batch_size),
        "pairs": [pair_label(twin, "scratch") for twin in TWINS if twin in ctx.backends],
        "rows": rows,
        "checks": checks,
        "curves": {"dtype": spec.dtype, "runs": curves, "deviations": deviations(curves)},
        "findings": cnn_findings.run(ctx, settings),
    }
