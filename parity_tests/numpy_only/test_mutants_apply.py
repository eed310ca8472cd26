"""The mutation self-test's mutants (``tools/mutants/*.toml``) still name real code: every file
exists and every ``old`` snippet occurs exactly once, and a mutant whose file or snippet is gone
stops the script with an error that names it (instead of silently testing nothing)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import mutation_test  # noqa: E402


def test_every_mutant_applies_to_this_tree():
    mutants = mutation_test.load_mutants()
    assert len(mutants) > 50
    for mutant in mutants:
        original = (ROOT / mutant.file).read_text(encoding="utf-8")
        mutated = mutant.mutated(ROOT)
        assert mutated != original, mutant.name
        assert mutant.new in mutated, mutant.name


def test_a_mutant_whose_file_moved_fails_loudly(tmp_path):
    gone = mutation_test.Mutant("gone", "reports/cli_train.py", "a moved file", "x = 1", "x = 2")
    with pytest.raises(mutation_test.MutantRotted, match=r"'gone'.*reports/cli_train.py does not exist"):
        gone.mutated(tmp_path)


def test_a_mutant_whose_snippet_is_gone_fails_loudly(tmp_path):
    (tmp_path / "engine.py").write_text("y = 1\n", encoding="utf-8")
    missing = mutation_test.Mutant("missing", "engine.py", "a rewritten line", "x = 1", "x = 2")
    with pytest.raises(mutation_test.MutantRotted, match=r"'missing'.*occurs 0 times in engine.py"):
        missing.mutated(tmp_path)
