"""What the benchmark times: one catalog model (or spec, or weight file: :mod:`reports.cli.model_source`)
at grid points batch × dtype × optimizer, on the first ``batch`` MNIST training samples (N(0, 1)
rows with random labels, seed 0, for a model that does not fit MNIST).

With no model given, the grid is the default model's net (``mnist-default``: seed 002's ReLU net,
He-normal) at batches 64, 1024, 8192, 60000, float32 and float64, SGD (η = 0.1) and Adam (torch
convention; Keras convention for the Keras steps — same work per step). With a model given, each
axis defaults to the model's own batch size, dtype and optimizer; ``--batches``, ``--dtypes`` and
``--optimizers`` set an axis.
"""

from __future__ import annotations

import math

import numpy as np

from reports.bench.steps import make_step
from scratch.data import drawn_batch
from scratch.datasets import read_mnist_pixels, scale_pixels
from scratch.errors import DataError
from scratch.model import Network
from scratch.spec import OptimizerSpec

BATCHES = (64, 1024, 8192, 60000)
DTYPES = ("float32", "float64")
OPTIMIZERS = ("sgd", "adam")          # the optimizers an axis may name
SGD_LEARNING_RATE = 0.1
MNIST_TRAIN_SAMPLES = 60000           # rows of the bundled MNIST training split, the largest batch


def point_spec(base, batch: int, dtype: str, optimizer: str):
    """``base`` at one grid point: the model's own optimizer when ``optimizer`` is its name, else
    SGD at η = :data:`SGD_LEARNING_RATE` or torch-convention Adam with its defaults."""
    if optimizer == base.optimizer.name:
        chosen = base.optimizer
    elif optimizer == "sgd":
        chosen = OptimizerSpec("sgd", learning_rate=SGD_LEARNING_RATE)
    elif optimizer == "adam":
        chosen = OptimizerSpec.framework_default("adam", "torch")
    else:
        raise DataError(f"bench optimizer {optimizer!r}: expected one of {', '.join(OPTIMIZERS)} or the "
                        f"model's own ({base.optimizer.name})")
    return base.replace(batch_size=batch, dtype=dtype, optimizer=chosen)


def mnist_pixels():
    """MNIST as stored (uint8, from the folder :func:`scratch.datasets.resolve_data_dir` picks,
    read once per process by :func:`scratch.datasets.read_mnist_pixels`): a point scales only its
    batch's rows."""
    return read_mnist_pixels()


def fits_mnist(spec) -> bool:
    return math.prod(spec.input_shape) == 784 and spec.layer_shapes[-1][0] in (10, 1)


def bench_batch(spec, batch: int, parameters=None):
    """(x, targets, tensors): the point's batch and start (``parameters``, named tensors per layer
    with parameters, cast to the spec's dtype, else the spec's initializer)."""
    if fits_mnist(spec):
        pixels = mnist_pixels()
        if batch > len(pixels.x_train):
            raise DataError(f"bench batch {batch}: MNIST has only {len(pixels.x_train)} training samples")
        x = scale_pixels(pixels.x_train[:batch], spec.dtype).reshape(batch, *spec.input_shape)
        labels = pixels.y_train[:batch]
        labels = labels % 2 if spec.layer_shapes[-1][0] == 1 else labels
    else:
        x, labels = drawn_batch(spec, batch, 0)
    if parameters is None:
        model = Network(spec)
    else:
        cast = [{name: np.asarray(value, dtype=spec.dtype) for name, value in layer.items()}
                for layer in parameters]
        model = Network(spec, tensors=cast)
    return x, model.targets(labels), model.tensors


def build_step(kind: str, spec, parameters=None):
    """The step callable of ``kind`` for the point ``spec`` (its batch size is the batch)."""
    x, targets, tensors = bench_batch(spec, spec.batch_size, parameters)
    return make_step(kind, spec, tensors, x, targets)
