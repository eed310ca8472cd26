"""The benchmark grid: the catalog's ``seed-002`` net (:mod:`scratch.catalog`) on MNIST at
several batch sizes, float32 and float64, SGD and Adam (torch convention for scratch/torch,
Keras convention for the Keras steps — same work per step)."""

from __future__ import annotations

import functools

import numpy as np

from scratch import catalog

MODEL = "seed-002"                    # the catalog model whose net is timed (He-normal init, as always)
LAYERS = catalog.spec(MODEL).layer_sizes
BATCHES = (64, 1024, 8192, 60000)
DTYPES = ("float32", "float64")
OPTIMIZERS = ("sgd", "adam")          # what spec_for builds; any other name is refused by the CLI
MNIST_TRAIN_SAMPLES = 60000           # rows of the bundled MNIST training split, the largest batch


def spec_for(batch: int, dtype: str, optimizer: str, convention: str):
    from scratch.errors import DataError
    from scratch.spec import ModelSpec, OptimizerSpec

    if optimizer not in OPTIMIZERS:
        raise DataError(f"bench optimizer {optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
    opt = (OptimizerSpec("sgd", learning_rate=0.1) if optimizer == "sgd"
           else OptimizerSpec.framework_default("adam", convention))
    return ModelSpec(LAYERS, init="he_normal", batch_size=batch, dtype=dtype, optimizer=opt)


@functools.lru_cache(maxsize=2)
def mnist(dtype: str):
    """The bundled MNIST in ``dtype``, loaded once per dtype."""
    from scratch.datasets import load_mnist

    return load_mnist(dtype=np.dtype(dtype))


def build_step(kind: str, batch: int, dtype: str, optimizer: str):
    """The step callable of ``kind`` on the first ``batch`` MNIST training samples."""
    from reports.bench.steps import make_step
    from scratch.model import MLP

    convention = "keras" if kind in ("tf.function", "keras") else "torch"
    spec = spec_for(batch, dtype, optimizer, convention)
    data = mnist(dtype)
    if batch > len(data.x_train):
        from scratch.errors import DataError

        raise DataError(f"bench batch {batch}: MNIST has only {len(data.x_train)} training samples")
    model = MLP(spec)
    x = np.ascontiguousarray(data.x_train[:batch])
    targets = model.targets(data.y_train[:batch])
    return make_step(kind, spec, model.weights, model.biases, x, targets)
