"""Training parity for SGD, momentum, RMSprop and Adam in each convention, plain, with L2 and
with dropout: every step re-synchronized (gradients within the gradient bound, the update within
``ULPS_UPDATE`` ulps) and the free-running curves within tolerance or parted for a named rounding
cause (``judge.training_parity``).

Every backend is handed the same plan (``scratch.batching.training_plan``): the same batches in
the same order and the same dropout masks. A framework is compared with the NumPy engine only
in the conventions its optimizers express (``twins.backends.twins_for``: torch.optim has no
Keras-style Adam, and vice versa; optax builds the torch and Keras forms from its own pieces, all
but Keras's Adam, and its own); plain SGD is the same in all, so there every pair is compared.

L2 and dropout act before the optimizer: every backend puts (λ/2)·Σ‖W_l‖² in its loss and the
plan's masks in its forward pass, and hands the optimizer only the resulting gradients (no
optimizer reads λ or a mask). So the ``l2`` and ``dropout`` variants run with SGD, on every pair,
and with Adam, in every convention (a stateful optimizer on every twin); the other optimizers run
plain, which is where they differ.
"""

from __future__ import annotations

import pytest
from cases import FRAMEWORKS, make_case

from judge.parity import compare_curves, compare_parameters
from judge.training_parity import compare_training
from scratch.batching import training_plan
from scratch.spec import ModelSpec, OptimizerSpec
from twins.backends import PAIRS, make_backend, twins_for

OPTIMIZERS = {
    "sgd": OptimizerSpec("sgd", learning_rate=0.1),
    "momentum-torch": OptimizerSpec.framework_default("momentum", "torch", learning_rate=0.05),
    "momentum-keras": OptimizerSpec.framework_default("momentum", "keras", learning_rate=0.05),
    "rmsprop-torch": OptimizerSpec.framework_default("rmsprop", "torch"),
    "rmsprop-keras": OptimizerSpec.framework_default("rmsprop", "keras"),
    "rmsprop-momentum-torch": OptimizerSpec.framework_default("rmsprop", "torch", momentum=0.5),
    "rmsprop-momentum-keras": OptimizerSpec.framework_default("rmsprop", "keras", momentum=0.5),
    "adam-torch": OptimizerSpec.framework_default("adam", "torch", learning_rate=0.01),
    "adam-keras": OptimizerSpec.framework_default("adam", "keras", learning_rate=0.01),
    "rmsprop-momentum-optax": OptimizerSpec.framework_default("rmsprop", "optax", learning_rate=0.001,
                                                              momentum=0.5),
    "adam-optax": OptimizerSpec.framework_default("adam", "optax", learning_rate=0.01),
}
VARIANTS = {"plain": {}, "l2": dict(l2=2.0 ** -6), "dropout": dict(dropout=0.25)}


def pairs_for(optimizer: OptimizerSpec) -> list[tuple[str, str]]:
    if optimizer.name == "sgd":
        return list(PAIRS)
    return [(twin, "scratch") for twin in twins_for(optimizer.name, optimizer.convention)]


# (optimizer, pair, variant, dtype): every optimizer plain; L2 and dropout with SGD and Adam (see
# above). With -m slow only: SGD's framework-vs-framework pairs (see cases.pair_params) and L2 and
# dropout in float32 (the same code as in float64, under the looser bound; plain runs float32).
WITH_VARIANTS = ("sgd", "adam-torch", "adam-keras", "adam-optax")
CASES = [pytest.param(name, pair, variant, dtype, id=f"{name}-{pair[0]}-vs-{pair[1]}-{variant}-{dtype}",
                      marks=() if pair[1] == "scratch" and (dtype == "float64" or variant == "plain")
                      else pytest.mark.slow)
         for name, opt in OPTIMIZERS.items() for pair in pairs_for(opt)
         for variant in (VARIANTS if name in WITH_VARIANTS else ["plain"])
         for dtype in ("float64", "float32")]


def train_both(case, actual_name, desired_name):
    actual, desired = case.backend(actual_name), case.backend(desired_name)
    plan = list(training_plan(case.spec, len(case.x)))
    return actual, desired, actual.fit(case.x, case.targets, plan), desired.fit(case.x, case.targets, plan)


@pytest.mark.parametrize("optimizer,pair,variant,dtype", CASES)
def test_training_curve(optimizer, pair, variant, dtype, global_seed, repro):
    spec = ModelSpec((8, 6, 5, 3), dtype=dtype, optimizer=OPTIMIZERS[optimizer], batch_size=16, epochs=3,
                     init="glorot_uniform", seed=global_seed, **VARIANTS[variant])
    case = make_case(spec, 40, global_seed)
    for name in pair:
        case.backend(name)                            # skips when a framework is not installed
    plan = list(training_plan(case.spec, len(case.x)))
    assert len(plan) == 9                             # ⌈40/16⌉ = 3 steps × 3 epochs
    training = compare_training(*pair, spec, case.tensors, case.x, case.targets, plan,
                                make_backend=make_backend)
    assert training.stepwise.steps == 9
    assert training.ok, (f"{pair[0]} vs {pair[1]}:\n  " + "\n  ".join(training.describe_failures())
                         + f"\n  reproduce: {repro}")
    assert len(training.trajectory.losses["actual"]) == 9


@pytest.mark.slow
@pytest.mark.parametrize("actual_name", FRAMEWORKS)
def test_full_mnist_epoch_float64(actual_name, repro):
    """One epoch of MNIST (60 000 samples, batch 64 → 938 steps), float64, SGD: every backend's
    loss curve within 1e-12 relative of the NumPy engine's at every step."""
    from cases import Case

    from judge.tolerances import FULL_EPOCH_FLOAT64
    from scratch.datasets import load_mnist
    from scratch.model import MLP

    data = load_mnist(dtype="float64")
    spec = ModelSpec((784, 64, 32, 10), init="he_normal", batch_size=64, epochs=1,
                     optimizer=OptimizerSpec("sgd", learning_rate=0.1), seed=0)
    model = MLP(spec)
    case = Case(spec, model.weights, model.biases, data.x_train, model.targets(data.y_train),
                data.y_train, None)
    actual, desired, actual_curve, desired_curve = train_both(case, actual_name, "scratch")
    assert len(desired_curve) == 938
    curve = compare_curves(actual_curve, desired_curve, "float64", bound=FULL_EPOCH_FLOAT64)
    print(f"\n{actual_name} vs scratch, full MNIST epoch float64: max per-step rel err {curve.error:.3e}")
    assert curve.ok, f"{curve.describe()}\n  reproduce: {repro}"
    bad = [c.describe() for c in compare_parameters(actual, desired, bound=FULL_EPOCH_FLOAT64) if not c.ok]
    assert not bad, bad
