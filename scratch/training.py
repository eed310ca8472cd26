"""The training loop: the plan of ``scratch.batching`` fed through forward, backward and the
optimizer, with the history every backend reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scratch.batching import batches, check_batch_statistics, training_plan
from scratch.datasets.validate import check_xy
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
    _check_data(model, x, y, "training data")
    check_batch_statistics(model.spec, len(x))
    if (x_test is None) != (y_test is None):
        given, missing = ("x_test", "y_test") if y_test is None else ("y_test", "x_test")
        raise DataError(f"test data: {given} given without {missing}; x_test and y_test go together "
                        "(give both, or neither to train without a test set)")
    if x_test is not None:
        _check_data(model, x_test, y_test, "test data")
    targets = model.targets(y)
    optimizer = make_optimizer(model.spec.optimizer)
    history = History()
    epochs = model.spec.epochs
    for step, x_batch, y_batch in batches(x, targets, training_plan(model.spec, len(x))):
        loss = model.checked_step(x_batch, y_batch, optimizer, step.masks)   # data checked above
        history.step_loss.append(loss)
        if on_step is not None:
            on_step(step.step, loss)
        if step.last_in_epoch and ((step.epoch + 1) % eval_every == 0 or step.epoch + 1 == epochs):
            _record_epoch(model, history, step.epoch + 1, x, y, x_test, y_test)
    return history


def _check_data(model, x, y, name):
    """One clear DataError for bad features or labels (shape, dtype, NaN/inf, range, lengths)."""
    model.check_inputs(x)
    n_out = model.spec.layer_shapes[-1][0]
    if isinstance(y, np.ndarray) and y.ndim == 1:
        # check_inputs has checked the sample shape; the values and labels are checked row-wise
        n_features = int(np.prod(model.spec.input_shape))
        check_xy(x.reshape(len(x), n_features), y, n_features=n_features,
                 n_classes=2 if n_out == 1 else n_out, name=name)
    elif len(y) != len(x):
        raise DataError(f"{name}: {len(x)} inputs but {len(y)} targets")


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
