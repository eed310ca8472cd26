"""A catalog CNN (``mnist-cnn`` by default, or ``lenet5``) trained on the bundled MNIST in one
backend, from the shared start: ``python tools/cnn_mnist.py --backend torch [--model NAME]
[--epochs N] [--threads 1] [--json out.json]``.

Every backend gets the same initial weights (the spec's initializer), the same batches and
dropout masks (``scratch.batching``'s plan), and trains as its users would (``fit(fused=True)``:
one ``tf.function`` graph or ``jax.jit`` per step; torch and the engine run eagerly). The time
covers building the backend and every training step, not the test pass after each epoch: its
own inference (``Backend.inference``, in blocks of 1000 rows) over the 10 000 test digits. The
spec's Adam is torch's convention; a twin that cannot train it (Keras) trains the same Adam in
its own convention, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from scratch import catalog  # noqa: E402
from scratch.spec import OptimizerSpec  # noqa: E402
from twins.backends import BACKENDS, twins_for  # noqa: E402

BLOCK = 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=sorted(BACKENDS), required=True)
    parser.add_argument("--model", choices=("mnist-cnn", "lenet5"), default="mnist-cnn")
    parser.add_argument("--epochs", type=int, default=None, help="default: the catalog's")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="write the result here")
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)

    import numpy as np

    from scratch.batching import training_plan
    from scratch.datasets import load_mnist
    from scratch.model import Network
    from twins.backends import make_backend

    spec = catalog.spec(args.model)
    if args.epochs is not None:
        spec = spec.replace(epochs=args.epochs)
    optimizer = spec.optimizer
    note = ""
    if args.backend not in ("scratch", *twins_for(optimizer.name, optimizer.convention)):
        convention = "keras" if args.backend == "keras" else "optax"
        spec = spec.replace(optimizer=OptimizerSpec.framework_default(
            optimizer.name, convention, learning_rate=optimizer.learning_rate))
        note = (f"{args.backend} cannot train {optimizer.convention}-convention {optimizer.name}: "
                f"trained in {convention}'s")
    data = load_mnist(None, dtype=np.dtype(spec.dtype))
    x = data.x_train.reshape(len(data.x_train), *spec.input_shape)
    x_test = data.x_test.reshape(len(data.x_test), *spec.input_shape)
    start = Network(spec)
    targets = start.targets(data.y_train)
    plan = list(training_plan(spec, len(x)))
    per_epoch = len(plan) // spec.epochs
    started = time.perf_counter()
    backend = make_backend(args.backend, spec, start.weights, start.biases)
    build_s, train_s, losses, accuracies = time.perf_counter() - started, 0.0, [], []
    for epoch in range(spec.epochs):                 # the test pass after each epoch is not timed
        started = time.perf_counter()
        losses.extend(backend.fit(x, targets, plan[epoch * per_epoch:(epoch + 1) * per_epoch], fused=True))
        train_s += time.perf_counter() - started
        outputs = np.concatenate([backend.inference(x_test[i:i + BLOCK])
                                  for i in range(0, len(x_test), BLOCK)])
        accuracies.append(float(np.mean(outputs.argmax(axis=1) == data.y_test)))
        print(f"epoch {epoch + 1}: test accuracy {accuracies[-1]:.4f}, {build_s + train_s:.1f} s", flush=True)
    result = {"backend": args.backend, "model": args.model, "epochs": spec.epochs, "steps": len(plan),
              "threads": args.threads,
              "optimizer": f"{spec.optimizer.name}[{spec.optimizer.convention}]", "note": note,
              "train_seconds": round(build_s + train_s, 1), "test_accuracy": accuracies[-1],
              "test_accuracy_per_epoch": accuracies,
              "last_loss": float(losses[-1]), "finite": bool(np.all(np.isfinite(losses)))}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(result, stream, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
