"""The training loop: the plan of ``scratch.batching`` fed through forward, backward and the
optimizer, with the history every backend reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scratch.batching import batches, training_plan
from scratch.errors import DataError
from scratch.optimizers import make_optimizer


@dataclass
class History:
    """``step_loss[t]``: the loss (incl. L2) of step t's batch before its update;
    per evaluated epoch: ``epochs`` (1-based), train/test loss and accuracy (no dropout)."""

    step_loss: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        return {name: list(values) for name, values in self.__dict__.items()}


def fit(model, x, y, *, x_test=None, y_test=None, on_step=None, eval_every: int = 1) -> History:
    """Train ``model`` in place for ``model.spec.epochs`` epochs and return its :class:`History`.

    ``on_step(step, loss)`` is called after every step (for progress bars); train and test
    accuracy are measured every ``eval_every`` epochs and after the last one.
    """
    model.check_inputs(x)
    targets = model.targets(y)
    if len(targets) != len(x):
        raise DataError(f"data: {len(x)} inputs but {len(targets)} labels")
    optimizer = make_optimizer(model.spec.optimizer)
    params = model.parameters
    history = History()
    epochs = model.spec.epochs
    for step, x_batch, y_batch in batches(x, targets, training_plan(model.spec, len(x))):
        forward = model.forward(x_batch, step.masks)
        loss = model.loss(forward, y_batch)
        grads = model.backward(forward, y_batch)
        optimizer.step(params, grads.parameter_gradients)
        history.step_loss.append(float(loss))
        if on_step is not None:
            on_step(step.step, float(loss))
        if step.last_in_epoch and ((step.epoch + 1) % eval_every == 0 or step.epoch + 1 == epochs):
            _record_epoch(model, history, step.epoch + 1, x, y, x_test, y_test)
    return history


def _record_epoch(model, history, epoch, x, y, x_test, y_test):
    train_loss, train_accuracy = model.evaluate(x, y)
    history.epochs.append(epoch)
    history.train_loss.append(train_loss)
    history.train_accuracy.append(train_accuracy)
    if x_test is not None:
        test_loss, test_accuracy = model.evaluate(x_test, y_test)
        history.test_loss.append(test_loss)
        history.test_accuracy.append(test_accuracy)
    else:
        history.test_loss.append(np.nan)
        history.test_accuracy.append(np.nan)
