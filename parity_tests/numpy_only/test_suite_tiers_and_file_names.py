"""The suite itself: the extended tier's rules (``parity_tests/extended_tier.py``) each name a
test function that exists and mark only repeats (its file and function keep default-run cases);
the default run's command excludes the tier while CI and the mutation self-test include it; and
test file names are unique across the folders."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from extended_tier import RULES, is_extended

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("file,function", [(rule[0], rule[1]) for rule in RULES])
def test_every_rule_names_a_test_function_that_exists(file, function):
    tree = ast.parse((ROOT / "parity_tests" / "frameworks" / file).read_text(encoding="utf-8"))
    assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


CONV, CURVES = ("test_conv_parity.py", "test_forward_and_every_gradient"), ("test_training_curves.py",
                                                                             "test_training_curve")


def test_rules_mark_the_repeats_and_keep_the_default_cases():
    assert is_extended(*CONV, "jax-lenet-like-float32")
    assert is_extended(*CONV, "keras-dilated-float32")
    assert not is_extended(*CONV, "jax-lenet-like-float64")
    assert not is_extended(*CONV, "torch-lenet-like-float32")
    assert is_extended(*CURVES, "sgd-jax-vs-scratch-plain-float32")
    assert not is_extended(*CURVES, "sgd-jax-vs-scratch-plain-float64")
    assert not is_extended("test_training_curves.py", "test_other", "sgd-jax-vs-scratch-plain-float32")
    assert not is_extended("test_conv_parity.py", "test_training_steps", None)


def test_the_default_run_leaves_the_tier_out_and_ci_runs_it():
    tox = (ROOT / "tox.ini").read_text(encoding="utf-8")
    assert '-m "not slow and not extended"' in tox
    assert '-m "slow or extended"' in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    mutation = (ROOT / "tools" / "mutation_test.py").read_text(encoding="utf-8")
    assert '"-m", "not slow"' in mutation and "extended" not in mutation, "the mutation subset keeps the tier"


def test_test_file_names_are_unique_across_folders():
    """The test folders are not packages (rootdir imports), so two files of one name cannot both be
    collected: the second is an 'import file mismatch' error."""
    names = [path.name for path in (ROOT / "parity_tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted({name for name in names if names.count(name) > 1})


def test_the_mutation_environment_installs_what_every_mutants_tests_need():
    """A mutant in the JAX twin, a port reader or the report is caught by tests that skip without
    JAX or the report's dependencies: in an environment without them it would survive."""
    import configparser

    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini", encoding="utf-8")
    extras = set(tox["testenv:mutation"]["extras"].split())
    assert {"torch", "tf", "jax", "reports", "test"} <= extras, extras
