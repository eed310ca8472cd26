"""The JAX figures of ``docs/conventions.md``, measured again: ``python tools/jax_figures.py [--steps N]``.

1. The JAX twin against the NumPy engine on the seeds' MNIST net (``scratch.catalog.SEED_NET``,
   ReLU, softmax + CCE, He init, SGD lr 0.1, batch 64): the largest normwise relative error per
   quantity (forward Z/A, loss, every gradient, parameters after N training steps), per dtype.
2. optax's conventions against torch's and Keras's in the NumPy engine: the same start, data and
   hyperparameters (framework defaults with ε = 1e-7, lr 0.01 (Adam) / 0.001 (RMSprop)), and the
   parameters' largest relative difference after k steps.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from judge.parity import compare_parameters, compare_traces, relative_error  # noqa: E402
from scratch.batching import batches, training_plan  # noqa: E402
from scratch.catalog import SEED_NET  # noqa: E402
from scratch.datasets import load_mnist  # noqa: E402
from scratch.model import Network  # noqa: E402
from scratch.spec import ModelSpec, OptimizerSpec  # noqa: E402
from twins.backends import make_backend  # noqa: E402


def twin_errors(dtype: str, steps: int, data) -> dict[str, float]:
    spec = ModelSpec(SEED_NET, init="he_normal", batch_size=64, dtype=dtype,
                     optimizer=OptimizerSpec("sgd", learning_rate=0.1), seed=0)
    start = Network(spec)
    x = data.x_train.astype(dtype)
    targets = start.targets(data.y_train)
    jax_twin, scratch = (make_backend(name, spec, tensors=start.tensors) for name in ("jax", "scratch"))
    worst: dict[str, float] = {}
    plan = list(training_plan(spec, len(x)))[:steps]
    for index, (step, xb, yb) in enumerate(batches(x, targets, plan)):
        if index % 50 == 0:                       # the trace of every 50th step, before it is taken
            for c in compare_traces(jax_twin.trace(xb, yb, step.masks), scratch.trace(xb, yb, step.masks),
                                    dtype, x=xb):
                key = c.name.rstrip("0123456789")
                worst[key] = max(worst.get(key, 0.0), c.error)
        jax_twin.train_step(xb, yb, step.masks)
        scratch.train_step(xb, yb, step.masks)
    worst[f"W, b after {steps} steps"] = max(c.error for c in compare_parameters(jax_twin, scratch))
    return worst


def convention_gaps(optimizer: str, steps: tuple[int, ...]) -> dict[str, list[float]]:
    shared = dict(learning_rate=0.01 if optimizer == "adam" else 0.001, epsilon=1e-7)
    if optimizer == "rmsprop":
        shared["rho"] = 0.9
    spec = ModelSpec((12, 8, 3), batch_size=10, epochs=100, seed=0)
    start = Network(spec)                         # seed 0, float64
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 12))
    targets = start.targets(rng.integers(0, 3, 100))
    runs = {}
    for convention in ("torch", "keras", "optax"):
        run = spec.replace(optimizer=OptimizerSpec(optimizer, convention, **shared))
        backend = make_backend("scratch", run, tensors=start.tensors)
        snapshots = []
        for index, (step, xb, yb) in enumerate(batches(x, targets, training_plan(run, len(x))), start=1):
            backend.train_step(xb, yb, step.masks)
            if index in steps:
                snapshots.append([layer["W"] for layer in backend.tensors()])
            if index == max(steps):
                break
        runs[convention] = snapshots

    def gap(a, b):
        return [max(relative_error(p, q) for p, q in zip(sa, sb, strict=True))
                for sa, sb in zip(runs[a], runs[b], strict=True)]

    return {"optax vs torch": gap("optax", "torch"), "optax vs keras": gap("optax", "keras")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    data = load_mnist(dtype="float64")
    for dtype in ("float64", "float32"):
        errors = twin_errors(dtype, args.steps, data)
        print(f"jax vs scratch, MNIST {'-'.join(map(str, SEED_NET))}, {dtype}: "
              + ", ".join(f"{name} {error:.2e}" for name, error in errors.items()))
    steps = (1, 10, 100, 1000)
    for optimizer in ("adam", "rmsprop"):
        for label, gaps in convention_gaps(optimizer, steps).items():
            print(f"{optimizer} {label}, max rel diff of W after {steps} steps: "
                  + ", ".join(f"{g:.2e}" for g in gaps))


if __name__ == "__main__":
    main()
