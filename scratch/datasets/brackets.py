"""A generated token task that needs an embedding: is the bracket string balanced?

Tokens: 0 ``(``, 1 ``)``, 2 ``a``, 3 ``b`` (the letters are text between the brackets, which the
language ignores). A string of T tokens is *balanced* when, reading its brackets left to right, the
depth (opens minus closes) never goes below 0 and ends at 0. A model must count: no window of
the string decides it, and the ids carry no order (an embedding must learn what each means).

:func:`brackets` draws a seeded, exactly balanced set: half the strings balanced, half not, each
negative made from a balanced string by one edit, so that it differs from a positive in as little
as possible:

* *flip*: one bracket turned into the other (the final depth is ±2);
* *swap*: a ``()`` pair at depth 0 written ``)(`` (the final depth stays 0, but a prefix goes to
  −1: only a model that tracks the running depth sees it);
* *drop*: one bracket replaced by a letter (the final depth is ±1).

A balanced string is drawn as a random walk of ``pairs`` opens and closes that never dips below 0
(each step opens with probability (remaining opens)/(remaining brackets) unless the depth is 0 or
no open is left), with its letters put at random positions among the T. Every string is checked
against :func:`balanced` before it is returned. NumPy only.
"""

from __future__ import annotations

import numpy as np

from scratch.datasets.validate import positive_int
from scratch.errors import DataError

OPEN, CLOSE, LETTER_A, LETTER_B = 0, 1, 2, 3
VOCABULARY = 4
NEGATIVES = ("flip", "swap", "drop")


def balanced(tokens: np.ndarray) -> np.ndarray:
    """(n,) bool: which rows of ``tokens`` (n, T) are balanced (module docstring)."""
    steps = np.where(tokens == OPEN, 1, np.where(tokens == CLOSE, -1, 0))
    depth = np.cumsum(steps, axis=1)
    return (depth.min(axis=1) >= 0) & (depth[:, -1] == 0)


def _balanced_string(rng, length: int, pairs: int) -> np.ndarray:
    brackets, depth, opens = [], 0, pairs
    for remaining in range(2 * pairs, 0, -1):
        if opens and (depth == 0 or rng.random() < opens / remaining):
            brackets.append(OPEN)
            opens, depth = opens - 1, depth + 1
        else:
            brackets.append(CLOSE)
            depth -= 1
    tokens = rng.choice([LETTER_A, LETTER_B], size=length)
    where = np.sort(rng.choice(length, size=2 * pairs, replace=False))
    tokens[where] = brackets
    return tokens


def _negative(rng, tokens: np.ndarray, kind: str) -> np.ndarray | None:
    tokens = tokens.copy()
    positions = np.flatnonzero(tokens <= CLOSE)
    if kind == "flip":
        k = rng.choice(positions)
        tokens[k] = CLOSE if tokens[k] == OPEN else OPEN
    elif kind == "drop":
        tokens[rng.choice(positions)] = rng.choice([LETTER_A, LETTER_B])
    else:                                         # swap a () pair at depth 0: )(
        brackets = tokens[positions]
        depth = np.cumsum(np.where(brackets == OPEN, 1, -1))
        starts = [i for i in range(len(brackets) - 1) if brackets[i] == OPEN and brackets[i + 1] == CLOSE
                  and (depth[i - 1] if i else 0) == 0]
        if not starts:
            return None
        i = rng.choice(starts)
        tokens[positions[i]], tokens[positions[i + 1]] = CLOSE, OPEN
    return tokens


def brackets(n_per_class: int, *, length: int = 20, max_pairs: int = 6, seed: int = 0):
    """(tokens (2n, T) int64, labels (2n,) int64: 1 balanced, 0 not), shuffled, from
    ``numpy.random.default_rng(seed)``; each balanced string has 1..``max_pairs`` bracket pairs,
    each negative one edit of a fresh balanced string (its kind drawn uniformly from
    :data:`NEGATIVES`)."""
    n = positive_int(n_per_class, "n_per_class")
    length = positive_int(length, "length", minimum=2)
    max_pairs = positive_int(max_pairs, "max_pairs")
    if 2 * max_pairs > length:
        raise DataError(f"max_pairs {max_pairs}: {2 * max_pairs} brackets do not fit in length {length}")
    rng = np.random.default_rng(seed)
    positives = [_balanced_string(rng, length, int(rng.integers(1, max_pairs + 1))) for _ in range(n)]
    negatives = []
    while len(negatives) < n:
        source = _balanced_string(rng, length, int(rng.integers(1, max_pairs + 1)))
        edited = _negative(rng, source, NEGATIVES[int(rng.integers(len(NEGATIVES)))])
        if edited is not None:
            negatives.append(edited)
    x = np.stack(positives + negatives).astype(np.int64)
    y = np.repeat(np.array([1, 0], dtype=np.int64), n)
    if not np.array_equal(balanced(x), y.astype(bool)):
        raise AssertionError("brackets: a drawn string does not have its label")
    order = rng.permutation(2 * n)
    return x[order], y[order]
