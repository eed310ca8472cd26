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


def test_a_mutants_own_tests_run_before_the_subset_and_must_exist(tmp_path):
    own = mutation_test.Mutant("own", "engine.py", "a bug", "x = 1", "x = 2", tests=("test_own.py",))
    assert mutation_test.with_own_tests(["test_a.py", "test_own.py"], [own]) == ["test_own.py", "test_a.py"]
    assert mutation_test.with_own_tests(["test_a.py"], [own]) == ["test_own.py", "test_a.py"]
    folder = tmp_path / "tools" / "mutants"
    folder.mkdir(parents=True)
    body = 'name = "own"\nfile = "engine.py"\nmodels = "a bug"\nold = "x = 1"\nnew = "x = 2"\n'
    (folder / "own.toml").write_text(body + 'tests = ["parity_tests/test_gone.py"]\n', encoding="utf-8")
    with pytest.raises(mutation_test.MutantRotted, match=r"its tests \['parity_tests/test_gone.py'\] do not"):
        mutation_test.load_mutants(folder)
    (folder / "own.toml").write_text(body + 'test = ["x"]\n', encoding="utf-8")
    with pytest.raises(mutation_test.MutantRotted, match=r"optionally 'tests'\), found"):
        mutation_test.load_mutants(folder)


def test_the_prelu_mutants_bring_the_prelu_tests():
    prelu = [mutant for mutant in mutation_test.load_mutants() if mutant.file == "scratch/layers/prelu.py"]
    assert len(prelu) >= 2 and all("parity_tests/numpy_only/test_prelu.py" in m.tests for m in prelu)


def test_apply_to_makes_one_broken_copy_to_try(tmp_path, capsys):
    tanh = next(m for m in mutation_test.load_mutants() if m.name == "tanh-derivative-1-minus-a")
    folder = tmp_path / "broken"
    assert mutation_test.main(["--only", tanh.name, "--apply-to", str(folder)]) == 0
    assert (folder / tanh.file).read_text(encoding="utf-8") == tanh.mutated(ROOT)
    assert (ROOT / tanh.file).read_text(encoding="utf-8") != tanh.mutated(ROOT), "the tree is untouched"
    assert f"cd {folder} && PYTHONPATH=. python -m reports" in capsys.readouterr().out
    for argv, message in ((["--only", tanh.name, "--apply-to", str(folder)], "already exists"),
                          (["--apply-to", str(tmp_path / "other")], "exactly one --only")):
        with pytest.raises(SystemExit) as stop:
            mutation_test.main(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err
