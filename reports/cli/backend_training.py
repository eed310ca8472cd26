"""``train --backend NAME`` for a framework twin: the spec trained through that framework's own loop
(``Backend.fit(fused=True)``: torch eager, one ``tf.function`` graph per step for Keras, one
``jax.jit`` per step for JAX), from the same start as the engine (the spec's initializer or the
weight file), on the same batches and dropout masks (``scratch.batching``'s plan).

After every evaluated epoch the twin's own inference (``Backend.inference_outputs``: no dropout,
BatchNorm by its running statistics) gives (Z_L, A_L) on the training and test splits, and the
engine's loss function and L2 penalty (the one place their formulas live) turn them into the
loss; accuracy is :func:`scratch.model.class_labels` (the argmax, or A_L > 0.5 for one output
unit) against the labels — the same metrics, by the same formulas, as the engine's own ``fit``.
Wall time covers building the backend, every step and every evaluation, as the engine path's does.

A spec whose optimizer convention the twin cannot train (:func:`twins.backends.twins_for`: Keras
and torch-convention Adam) is trained with the same optimizer in the twin's own convention
(:func:`trainable_spec`), and the run says so. Imported by ``train`` only once its arguments and
data are checked; it imports the framework.
"""

from __future__ import annotations

import math
import time

import numpy as np

from scratch.batching import training_plan
from scratch.data import Data
from scratch.model import Network, class_labels
from scratch.spec import OptimizerSpec
from scratch.training import History
from twins.backends import make_backend, twins_for

EVALUATION_BLOCK = 1000                    # rows per inference call


def trainable_spec(backend: str, spec):
    """(spec, note): ``spec`` itself when ``backend`` trains its optimizer in its convention, else
    the same optimizer and learning rate in the twin's own convention and a note saying so."""
    optimizer = spec.optimizer
    if backend == "scratch" or backend in twins_for(optimizer.name, optimizer.convention):
        return spec, None
    convention = "keras" if backend == "keras" else "optax" if backend == "jax" else "torch"
    changed = spec.replace(optimizer=OptimizerSpec.framework_default(
        optimizer.name, convention, learning_rate=optimizer.learning_rate, momentum=optimizer.momentum))
    return changed, (f"{backend} cannot train {optimizer.convention}-convention {optimizer.name}: trained "
                     f"with {convention}'s")


def train_in_backend(name: str, spec, parameters, data: Data, *, eval_every: int, on_losses):
    """Train backend ``name`` from ``parameters`` (named tensors, statistics) on ``data``; returns
    (History, backend, wall seconds). ``on_losses(first_step, losses)`` sees each epoch's step
    losses as they arrive (the divergence check)."""
    started = time.perf_counter()
    tensors, statistics = parameters
    backend = make_backend(name, spec, statistics=statistics or None, tensors=tensors)
    reference = Network(spec, tensors=tensors, statistics=statistics)     # its loss formulas and targets
    targets = reference.targets(data.y_train)
    plan = list(training_plan(spec, len(data.x_train)))
    per_epoch = len(plan) // spec.epochs
    history = History()
    for epoch in range(spec.epochs):
        chunk = plan[epoch * per_epoch:(epoch + 1) * per_epoch]
        losses = [float(loss) for loss in backend.fit(data.x_train, targets, chunk, fused=True)]
        on_losses(epoch * per_epoch, losses)
        history.step_loss.extend(losses)
        if (epoch + 1) % eval_every == 0 or epoch + 1 == spec.epochs:
            _record(backend, history, epoch + 1, data)
    return history, backend, time.perf_counter() - started


def _record(backend, history: History, epoch: int, data: Data) -> None:
    engine = Network(backend.spec, tensors=backend.tensors(), statistics=backend.statistics())
    history.epochs.append(epoch)
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        loss, accuracy = (math.nan, math.nan) if x is None else evaluate(backend, engine, x, y)
        getattr(history, f"{split}_loss").append(loss)
        getattr(history, f"{split}_accuracy").append(accuracy)


def evaluate(backend, engine: Network, x, y) -> tuple[float, float]:
    """(mean loss incl. L2, accuracy) of the backend's inference on (x, y), by the engine's
    formulas (``engine`` holds the backend's current parameters)."""
    outputs = [backend.inference_outputs(x[start:start + EVALUATION_BLOCK])
               for start in range(0, len(x), EVALUATION_BLOCK)]
    z_out = np.concatenate([z for z, _ in outputs])
    a_out = np.concatenate([a for _, a in outputs])
    data_loss = engine.loss_fn.value(z_out, a_out, engine.targets(y))
    loss = float(data_loss + engine.l2_penalty() if backend.spec.l2 else data_loss)
    return loss, float(np.mean(class_labels(a_out) == y))
