"""Scenario 4: the seeds' bugs, as named engine variants, caught and located by the parity suite.

* ``seed001_bias_scalar`` changes a gradient, so one forward/backward trace shows it:
  ``check_parity(variant, reference)`` raises :class:`~judge.parity.ParityFailure`, whose
  message names the first layer and quantity that is wrong when each layer is fed the
  reference's own inputs (here every db_l is wrong, and nothing else).
* ``seed003_adam_no_sqrt`` changes only the update, so its gradients pass; after k training
  steps ``compare_curves`` names the first step whose loss differs and ``compare_parameters``
  lists every W_l and b_l that moved differently.

The references are the default engine and every framework twin that has the same optimizer
(torch-convention Adam: the NumPy engine and torch).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from judge.parity import ParityFailure, check_parity, compare_curves, compare_parameters
from reports.scenarios.common import SEED_NET, Context, backend, number, run_steps, start
from scratch.batching import training_plan
from scratch.spec import ModelSpec, OptimizerSpec
from scratch.variants import VARIANTS, Variant
from twins.scratch_backend import ScratchBackend


class VariantBackend(ScratchBackend):
    """The NumPy engine with a :class:`~scratch.variants.Variant` swapped in: its model class
    (whose layers a layer run alone for localization uses too) and its optimizer."""

    def __init__(self, variant: Variant, spec, *, tensors):
        super().__init__(spec, tensors=tensors)
        self.variant = variant
        self.name = f"scratch[{variant.name}]"
        self.model = variant.make_model(spec, tensors=tensors)
        self.optimizer = variant.make_optimizer(spec.optimizer)


@dataclass(frozen=True)
class VariantSettings:
    batch: int = 64                       # samples in the checked batch / each training step
    steps: int = 10                       # training steps for the optimizer variant
    seed: int = 0


def _case(ctx: Context, spec: ModelSpec, n: int):
    data = ctx.mnist(spec.dtype)
    engine = start(spec)
    return engine.tensors, data.x_train[:n], engine.targets(data.y_train[:n])


def _references(ctx: Context, optimizer: OptimizerSpec) -> list[str]:
    """Backends whose optimizer is the one the variant is compared with."""
    return [name for name in ctx.backends
            if name == "scratch" or optimizer.name == "sgd" or name == optimizer.convention]


def gradient_check(ctx: Context, variant: Variant, settings: VariantSettings) -> list[dict]:
    """check_parity of the variant against every reference, on one batch."""
    spec = ModelSpec(SEED_NET, init="lecun_normal", seed=settings.seed)
    tensors, x, targets = _case(ctx, spec, settings.batch)
    rows = []
    for reference in _references(ctx, spec.optimizer):
        actual = VariantBackend(variant, spec, tensors=tensors)
        desired = backend(reference, spec, tensors)
        try:
            check_parity(actual, desired, x, targets,
                         repro=f"backprop-parity report --quick  (section 4: {variant.name} vs {reference})")
        except ParityFailure as failure:
            rows.append(_row(variant, "gradients (one trace)", reference, True, _located(str(failure)),
                             str(failure)))
        else:
            rows.append(_row(variant, "gradients (one trace)", reference, False, "",
                             "every quantity within tolerance"))
    return rows


def training_check(ctx: Context, variant: Variant, settings: VariantSettings) -> list[dict]:
    """The variant's gradients on one batch, then k training steps against every reference."""
    optimizer = OptimizerSpec.framework_default("adam", "torch", learning_rate=0.001)
    spec = ModelSpec(SEED_NET, init="he_normal", seed=settings.seed, optimizer=optimizer,
                     batch_size=settings.batch, shuffle=False)
    tensors, x, targets = _case(ctx, spec, settings.batch * settings.steps)
    plan = list(itertools.islice(training_plan(spec, len(x)), settings.steps))
    rows = []
    for reference in _references(ctx, optimizer):
        actual = VariantBackend(variant, spec, tensors=tensors)
        desired = backend(reference, spec, tensors)
        try:
            check_parity(actual, desired, x[:settings.batch], targets[:settings.batch])
            gradients = "gradients of the first batch agree"
        except ParityFailure as failure:
            gradients = f"gradients differ: {_located(str(failure))}"
        curve_a = run_steps(actual, x, targets, plan)
        curve_d = run_steps(desired, x, targets, plan)
        curve = compare_curves(curve_a, curve_d, spec.dtype)
        failed = [c for c in compare_parameters(actual, desired) if not c.ok]
        detected = not curve.ok or bool(failed)
        located = "; ".join(filter(None, [
            curve.problem and f"loss curve {curve.problem}",
            failed and f"parameters after {settings.steps} steps: {', '.join(c.name for c in failed)}"]))
        message = "\n".join([f"{gradients}; after {settings.steps} Adam steps:", f"  {curve.describe()}",
                             *[f"  {c.describe()}" for c in failed],
                             f"  final loss: variant {curve_a[-1]:.6g}, {reference} {curve_d[-1]:.6g}"])
        rows.append(_row(variant, f"training ({settings.steps} steps)", reference, detected, located, message,
                         curve_rel_error=number(curve.error)))
    return rows


def _located(message: str) -> str:
    """The line of a ParityFailure message that names the first diverging layer and quantity."""
    for line in message.splitlines():
        if "first diverging" in line or "every layer agrees" in line:
            return line.strip()
    return message.splitlines()[0]


def _row(variant: Variant, check: str, reference: str, detected: bool, located: str, message: str,
         curve_rel_error: float | None = None) -> dict:
    return {"variant": variant.name, "description": variant.description, "check": check,
            "reference": reference, "detected": detected, "located": located, "message": message,
            "curve_rel_error": curve_rel_error}


CHECKS = {"seed001_bias_scalar": gradient_check, "seed003_adam_no_sqrt": training_check}


def run(ctx: Context, settings: VariantSettings) -> dict:
    rows = []
    for name, check in CHECKS.items():
        rows += check(ctx, VARIANTS[name], settings)
    return {"variants": {name: v.description for name, v in VARIANTS.items()}, "rows": rows}
