"""The extended tier: parametrizations that repeat a check the default run already makes in
another dtype or backend, marked ``extended`` so the default run (``-m "not slow and not
extended"``, the README's test command through tox) stays quick. CI runs them after it (``-m
"slow or extended"``), and the mutation self-test (``tools/mutation_test.py``, ``-m "not slow"``)
keeps running them, so every mutant meets the same tests as before.

Each rule is (test file, test function, a predicate on the parametrization id, why the default
run loses nothing it needs). The ids are pytest's, e.g. ``jax-lenet-like-float32``.
"""

from __future__ import annotations

RULES = [
    ("test_conv_parity.py", "test_forward_and_every_gradient",
     lambda id_: id_.startswith(("keras-", "jax-")) and id_.endswith("-float32"),
     "each conv case's Keras and JAX twins stay in float64 (tolerance 1e-13, where a layout or "
     "formula mistake shows first); torch keeps both dtypes"),
    ("test_conv_parity.py", "test_training_steps",
     lambda id_: id_.startswith("jax-"),
     "the JAX twin's conv training is the fused/eager pair test and the float64 gradients in the "
     "default run; torch and Keras keep every case"),
    ("test_training_curves.py", "test_training_curve",
     lambda id_: id_.endswith("-float32"),
     "every optimizer, convention and backend pair keeps its float64 curve (the per-step verdict "
     "at 1e-13 and the optimizer's 8 ulps)"),
    ("test_forward_gradients.py", "test_random_architectures",
     lambda id_: id_.startswith("jax-"),
     "Hypothesis-drawn stacks keep torch and Keras against the engine; the JAX twin keeps the seed "
     "architectures and every pairing"),
]


def is_extended(path_name: str, function: str, id_: str | None) -> bool:
    """Whether the test ``function`` of ``path_name`` with parametrization id ``id_`` is extended."""
    return id_ is not None and any(
        path_name == file and function == name and rule(id_) for file, name, rule, _ in RULES)
