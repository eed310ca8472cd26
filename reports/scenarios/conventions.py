"""Scenario 5: torch-convention against Keras-convention Adam and RMSprop, in the NumPy engine.

Same start, same batches, the same hyperparameters; only the update formula differs
(``scratch.optimizers``):

    Adam     torch:  θ ← θ − (η/(1−β₁ᵗ)) · m / (√s/√(1−β₂ᵗ) + ε)
             keras:  θ ← θ − η·√(1−β₂ᵗ)/(1−β₁ᵗ) · m / (√s + ε)
    RMSprop  torch:  θ ← θ − η·g / (√s + ε)
             keras:  θ ← θ − η·g / √(s + ε)

After step t the report records ‖θ_t(torch) − θ_t(keras)‖/‖θ_t(keras)‖ and
|loss_t(torch) − loss_t(keras)|, and at the end each run's test accuracy. A second pair of rows
uses each framework's own defaults (ε, and for RMSprop also ρ and η differ), i.e. what a user gets
who writes ``torch.optim.Adam(params)`` and ``keras.optimizers.Adam()``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reports.scenarios.common import (
    SEED_NET,
    Context,
    accuracy,
    backend,
    flat_parameters,
    number,
    numbers,
    relative_distance,
    run_steps,
    spec_summary,
    start,
)
from scratch.batching import training_plan
from scratch.spec import ModelSpec, OptimizerSpec

# comparison name → (torch-convention optimizer, keras-convention optimizer)
SAME = dict(learning_rate=0.001, epsilon=1e-7)
COMPARISONS: dict[str, tuple[OptimizerSpec, OptimizerSpec]] = {
    "adam, same hyperparameters": (OptimizerSpec("adam", "torch", **SAME),
                                   OptimizerSpec("adam", "keras", **SAME)),
    "rmsprop, same hyperparameters": (OptimizerSpec("rmsprop", "torch", rho=0.9, **SAME),
                                      OptimizerSpec("rmsprop", "keras", rho=0.9, **SAME)),
    "adam, framework defaults": (OptimizerSpec.framework_default("adam", "torch"),
                                 OptimizerSpec.framework_default("adam", "keras")),
    "rmsprop, framework defaults": (OptimizerSpec.framework_default("rmsprop", "torch"),
                                    OptimizerSpec.framework_default("rmsprop", "keras")),
}


@dataclass(frozen=True)
class ConventionSettings:
    samples: int = 12800                  # the first ``samples`` MNIST training samples
    batch_size: int = 64
    epochs: int = 1
    checkpoints: tuple[int, ...] = (1, 10, 100)   # steps reported in the table (plus the last)
    layer_sizes: tuple[int, ...] = SEED_NET           # the net of common.SEED_MODEL
    init: str = "he_normal"
    seed: int = 0


def _run(ctx, settings, optimizer, x, labels, x_test, y_test):
    spec = ModelSpec(settings.layer_sizes, init=settings.init, seed=settings.seed, optimizer=optimizer,
                     batch_size=settings.batch_size, epochs=settings.epochs)
    engine = start(spec)
    model = backend("scratch", spec, engine.tensors)
    targets = engine.targets(labels)
    plan = list(training_plan(spec, len(x)))
    thetas = []
    with ctx.bar(len(plan), f"conventions {optimizer.name}-{optimizer.convention}") as bar:
        losses = run_steps(model, x, targets, plan, bar,
                           after_step=lambda step, loss: thetas.append(flat_parameters(model)))
    return np.array(losses), thetas, accuracy(model, x_test, y_test)


def run(ctx: Context, settings: ConventionSettings) -> dict:
    data = ctx.mnist("float64")
    x, labels = data.x_train[:settings.samples], data.y_train[:settings.samples]
    rows, series = [], []
    for name, (torch_opt, keras_opt) in COMPARISONS.items():
        loss_t, theta_t, acc_t = _run(ctx, settings, torch_opt, x, labels, data.x_test, data.y_test)
        loss_k, theta_k, acc_k = _run(ctx, settings, keras_opt, x, labels, data.x_test, data.y_test)
        param = [relative_distance(t, k) for t, k in zip(theta_t, theta_k, strict=True)]
        loss_diff = np.abs(loss_t - loss_k)
        series.append({"comparison": name, "param_rel_diff": numbers(param),
                       "loss_abs_diff": numbers(loss_diff)})
        steps = sorted({s for s in settings.checkpoints if s <= len(param)} | {len(param)})
        rows.append({
            "comparison": name,
            "torch_optimizer": spec_summary_opt(torch_opt),
            "keras_optimizer": spec_summary_opt(keras_opt),
            "at_step": [{"step": s, "param_rel_diff": number(param[s - 1]),
                         "loss_abs_diff": number(loss_diff[s - 1])} for s in steps],
            "torch_test_accuracy": acc_t,
            "keras_test_accuracy": acc_k,
            "accuracy_diff_pp": number(100 * (acc_t - acc_k)),
        })
    return {
        "data": f"MNIST, first {settings.samples} training samples; test: all 10,000",
        "spec": spec_summary(ModelSpec(settings.layer_sizes, init=settings.init, seed=settings.seed,
                                       batch_size=settings.batch_size, epochs=settings.epochs)),
        "steps": len(series[0]["param_rel_diff"]),
        "rows": rows,
        "series": series,
    }


def spec_summary_opt(optimizer: OptimizerSpec) -> str:
    """``adam/torch lr=0.001 b1=0.9 b2=0.999 eps=1e-08``: the hyperparameters that matter."""
    fields = {"adam": ("learning_rate", "beta1", "beta2", "epsilon"),
              "rmsprop": ("learning_rate", "rho", "epsilon", "momentum")}[optimizer.name]
    short = {"learning_rate": "lr", "beta1": "b1", "beta2": "b2", "epsilon": "eps", "rho": "rho",
             "momentum": "momentum"}
    return f"{optimizer.name}/{optimizer.convention} " + " ".join(
        f"{short[f]}={getattr(optimizer, f):g}" for f in fields)
