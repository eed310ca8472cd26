"""Scenario 2a: training curves of one catalog model, per optimizer and convention, in every
backend that has it.

The model trains as the catalog writes it (layers, loss, initializer, seed, dropout) with each
optimizer of :data:`OPTIMIZERS` the settings name, on the first n samples of its data set, in each
dtype of the settings (default: the model's own). Every backend starts from the same parameters
and is handed the same plan (the same batches in
the same order, ``scratch.batching.training_plan``). The loss of every step is recorded. A
framework runs only the conventions its optimizers express (``twins.backends.twins_for``:
torch.optim has no Keras-style Adam and vice versa; JAX's optax runs the torch and Keras forms
but Keras's Adam, and the optax convention); plain SGD, θ ← θ − η·g, is the same in all, so there
every backend runs. Each pair is
judged by :func:`judge.training_parity.compare_training`: every step re-synchronized (the
verdict), and the free-running curves measured, with the first step where they part and why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from judge.tolerances import tolerance
from judge.training_parity import compare_training
from reports.scenarios.common import (
    Context,
    ScenarioModel,
    describe_data,
    number,
    numbers,
    scenario_model,
    spec_summary,
)
from scratch.batching import training_plan
from scratch.spec import OptimizerSpec
from twins.backends import PAIRS, REFEREES, make_backend, twins_for

# config name → optimizer; momentum, RMSprop and Adam in each framework's defaults (RMSprop at
# η = 1e-3 in both so the two conventions' curves share a scale).
OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec("sgd", learning_rate=0.1),
    "momentum-torch": OptimizerSpec.framework_default("momentum", "torch", learning_rate=0.05),
    "momentum-keras": OptimizerSpec.framework_default("momentum", "keras", learning_rate=0.05),
    "rmsprop-torch": OptimizerSpec.framework_default("rmsprop", "torch", learning_rate=0.001),
    "rmsprop-keras": OptimizerSpec.framework_default("rmsprop", "keras", learning_rate=0.001),
    "adam-torch": OptimizerSpec.framework_default("adam", "torch"),
    "adam-keras": OptimizerSpec.framework_default("adam", "keras"),
    "rmsprop-optax": OptimizerSpec.framework_default("rmsprop", "optax", learning_rate=0.001),
    "adam-optax": OptimizerSpec.framework_default("adam", "optax", learning_rate=0.001),
}


@dataclass(frozen=True)
class CurveSettings:
    samples: int = 6400                   # the first ``samples`` training samples of the model's data set
    batch_size: int = 64
    epochs: int = 1
    dtypes: tuple[str, ...] | None = None     # None: the model's own dtype
    optimizers: tuple[str, ...] = tuple(OPTIMIZERS)   # keys of OPTIMIZERS


def backends_for(optimizer: OptimizerSpec, ctx: Context) -> list[str]:
    """scratch, plus the framework(s) whose optimizers express this convention."""
    wanted = ["scratch", *twins_for(optimizer.name, optimizer.convention)]
    return [name for name in wanted if name in ctx.backends]


def pairs_for(names: list[str]) -> list[tuple[str, str]]:
    """The pairs of ``twins.backends.PAIRS`` whose backends both ran."""
    return [(actual, desired) for actual, desired in PAIRS if actual in names and desired in names]


def run(ctx: Context, model: str | ScenarioModel, settings: CurveSettings) -> dict:
    """Every optimizer of ``settings`` on ``model`` (a catalog name or a
    :class:`~reports.scenarios.common.ScenarioModel`): each backend's loss per step (``runs``) and
    each backend pair's training parity (``checks``), per dtype."""
    model = scenario_model(model)
    dtypes = settings.dtypes or (model.spec.dtype,)
    runs, checks = [], []
    for dtype in dtypes:
        for config in settings.optimizers:
            optimizer = OPTIMIZERS[config]
            spec = model.spec_with(dtype=dtype, optimizer=optimizer, batch_size=settings.batch_size,
                                   epochs=settings.epochs)
            x, labels = ctx.training_data(spec, model.dataset, settings.samples)
            engine = model.start(spec)
            targets = engine.targets(labels)
            plan = list(training_plan(spec, len(x)))
            curves = {}
            for actual, desired in pairs_for(backends_for(optimizer, ctx)):
                with ctx.bar(len(plan), f"curves {model.name} {dtype} {config} {actual} vs {desired}") as bar:
                    training = compare_training(actual, desired, spec, engine.tensors, x,
                                                targets, plan, make_backend=make_backend,
                                                referees=REFEREES)
                    bar.update(len(plan))
                trajectory = training.trajectory
                curves.setdefault(actual, trajectory.losses["actual"])
                curves.setdefault(desired, trajectory.losses["reference"])
                checks.append(dict(check_entry(config, training), dtype=dtype))
            for name, losses in curves.items():
                runs.append({"config": config, "optimizer": optimizer.name,
                             "convention": optimizer.convention,
                             "backend": name, "dtype": dtype, "loss": numbers(losses)})
    return {
        "model": model.name,
        "data": describe_data(model.dataset, x),
        "spec": spec_summary(model.spec_with(dtype=dtypes[0], batch_size=settings.batch_size,
                                             epochs=settings.epochs)),
        "optimizers": {config: dataclasses.asdict(OPTIMIZERS[config]) for config in settings.optimizers},
        "steps": len(plan),
        "runs": runs,
        "checks": checks,
    }


def check_entry(config: str, training) -> dict:
    """One pair's training parity as JSON: the per-step verdict (the worst gradient and update
    over all re-synchronized steps) and the free-running measurement with its explanation."""
    trajectory = training.trajectory
    worst = {c.kind: c for c in training.summary_rows()}
    return {
        "config": config,
        "pair": f"{training.actual} vs {training.desired}",
        "steps_ok": bool(training.stepwise.ok),
        "step_forward": _worst_entry(worst.get("forward")),
        "step_gradient": _worst_entry(worst.get("gradient")),
        "step_update": _worst_entry(worst.get("update")),
        "curve_rel_error": number(max(trajectory.loss_errors, default=0.0)),
        "curve_tolerance": tolerance(trajectory.dtype, "curve"),
        "parameters_rel_error": number(max(trajectory.parameter_errors, default=0.0)),
        "parameters_tolerance": tolerance(trajectory.dtype, "parameters"),
        "parting_step": trajectory.parting_step,
        "cause": trajectory.cause,
        "free_running": trajectory.verdict(),
        "free_running_ok": bool(trajectory.ok),
        "ok": bool(training.ok),
        # how a step's reference was adjusted (a max-pool tie rerouted: judge.pool_ties), once per step
        "notes": list(dict.fromkeys(f"step {c.step}: {c.note}" for c in training.stepwise.comparisons
                                    if c.note)),
        # the same ties as data, one entry per step and max-pool layer (the report shows the first few)
        "ties": tie_entries(training.stepwise.comparisons, trajectory.dtype),
    }


def tie_entries(comparisons, dtype: str) -> list[dict]:
    """Each max-pool tie that rounding broke the other way (``Comparison.ties``), once per step and
    layer: the first flipped window (n, c, y, x), how many flipped, the two values in the reference
    (at its own first maximum, then at the actual's) and in the actual, and each pair's gap in ulps
    (:meth:`judge.pool_ties.TieFlip.gaps_ulp`)."""
    entries = {}
    for c in comparisons:
        for tie in c.ties:
            if (c.step, tie.layer) not in entries:
                entries[(c.step, tie.layer)] = {
                    "step": c.step, "layer": tie.layer, "windows": tie.windows, "window": list(tie.where),
                    "reference": list(tie.values), "actual": list(tie.actual_values),
                    "gap_ulp": list(tie.gaps_ulp(dtype))}
    return list(entries.values())


def _worst_entry(comparison) -> dict | None:
    if comparison is None:
        return None
    return {"quantity": comparison.name, "step": comparison.step, "error": number(comparison.error),
            "tolerance": float(comparison.bound), "ok": bool(comparison.ok)}
