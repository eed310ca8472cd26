"""The generated token task (``scratch.datasets.brackets``): every label is the language's own
answer, the draw is seeded and balanced, each kind of negative occurs, and the two splits differ."""

from __future__ import annotations

import numpy as np
import pytest

from scratch import catalog
from scratch.data import load_dataset
from scratch.datasets.brackets import CLOSE, OPEN, balanced, brackets
from scratch.errors import DataError


def reference_balanced(row) -> bool:
    depth = 0
    for token in row:
        depth += 1 if token == OPEN else -1 if token == CLOSE else 0
        if depth < 0:
            return False
    return depth == 0


def test_balanced_is_the_language():
    rows = np.random.default_rng(0).integers(0, 4, (2000, 8))
    assert balanced(rows).tolist() == [reference_balanced(row) for row in rows]
    assert balanced(np.array([[OPEN, CLOSE, CLOSE, OPEN]])).tolist() == [False]      # depth 0 at the end


def test_every_label_is_the_strings_own_answer_and_the_classes_are_even():
    x, y = brackets(500, seed=3)
    assert x.shape == (1000, 20) and x.dtype == np.int64 and set(np.unique(x)) <= {0, 1, 2, 3}
    assert [reference_balanced(row) for row in x] == y.astype(bool).tolist()
    assert y.sum() == 500


def test_negatives_include_a_swap_that_keeps_the_count():
    """A negative whose brackets still sum to 0 can only be told by its running depth."""
    x, y = brackets(500, seed=3)
    negatives = x[y == 0]
    counts = (negatives == OPEN).sum(axis=1) - (negatives == CLOSE).sum(axis=1)
    assert (counts == 0).any() and (np.abs(counts) == 2).any() and (np.abs(counts) == 1).any()


def test_the_draw_is_seeded_and_the_splits_differ():
    first, again = brackets(50, seed=1), brackets(50, seed=1)
    np.testing.assert_array_equal(first[0], again[0])
    data = load_dataset("brackets", "float32")
    facts = catalog.dataset("brackets")
    assert data.x_train.shape == (facts.train_rows, facts.features) and data.x_train.dtype == np.int64
    train = {row.tobytes() for row in data.x_train[:2000]}
    assert sum(row.tobytes() in train for row in data.x_test[:2000]) < 200     # mostly unseen strings


@pytest.mark.parametrize("fields", [dict(length=4, max_pairs=3), dict(n_per_class=0)])
def test_bad_settings_are_one_clear_error(fields):
    with pytest.raises(DataError):
        brackets(fields.pop("n_per_class", 10), **fields)
