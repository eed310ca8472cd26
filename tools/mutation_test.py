"""Mutation self-test: inject one classic backprop bug at a time and check the parity suite fails.

    python tools/mutation_test.py                     # every mutant in tools/mutants/
    python tools/mutation_test.py --only relu-derivative-ge --json out/m.json
    python tools/mutation_test.py --only tanh-derivative-1-minus-a --apply-to /tmp/broken   # one bug, to try
    tox -e mutation

Each mutant is a TOML file in ``tools/mutants/``: ``name``, ``file`` (relative to the project root),
``models`` (the bug it stands for), and an exact ``old`` snippet with its ``new`` replacement;
optionally ``tests``, test files that run for it after the subset (a new layer kind's own tests come
with its mutants, so adding a kind does not touch this script). Every ``old`` must occur exactly
once in its file, or the script stops before running anything — so a refactoring that moves the code
makes the mutant fail loudly instead of silently testing nothing.

The project (``git ls-files`` plus untracked, non-ignored files) is copied to a temporary folder;
the unmutated copy must pass the subset first (the baseline), then each mutant is applied to a
fresh copy of it and the subset (:data:`SUBSET`) runs there with ``PYTHONPATH`` set to that copy,
so the mutant code is what gets imported, never an installed package (checked once, on the
baseline). A mutant is *caught* when pytest fails; the first failing test (``-x``) is recorded.
Prints a table and the kill rate, writes JSON (default ``out/mutation.json``), and exits 1 if a
mutant survived, 2 if a mutant no longer applies or the baseline fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from project_copy import ROOT, copy_project

MUTANTS_DIR = Path(__file__).resolve().parent / "mutants"
# Fast and broad first: with -x the run stops at the first failure.
SUBSET = [
    "parity_tests/numpy_only/test_checker.py",
    "parity_tests/numpy_only/test_training_verdict.py",
    "parity_tests/numpy_only/test_gradients_fd.py",
    "parity_tests/numpy_only/test_optimizers.py",
    "parity_tests/numpy_only/test_engine_dtypes_and_training_loop.py",
    "parity_tests/numpy_only/test_training_plan_definition.py",
    "parity_tests/numpy_only/test_test_set_evaluation.py",
    "parity_tests/numpy_only/test_weight_memory_layouts.py",
    "parity_tests/numpy_only/test_weight_file_names_and_layout.py",
    "parity_tests/numpy_only/test_layer_list_spec.py",
    "parity_tests/numpy_only/test_conv_layer.py",
    "parity_tests/numpy_only/test_pooling_layers.py",
    "parity_tests/numpy_only/test_normalization_layers.py",
    "parity_tests/numpy_only/test_layer_stack.py",
    "parity_tests/numpy_only/test_pool_ties.py",
    "parity_tests/numpy_only/test_explained.py",
    "parity_tests/frameworks/test_checker_localization.py",
    "parity_tests/frameworks/test_forward_gradients.py",
    "parity_tests/frameworks/test_training_curves.py",
    "parity_tests/frameworks/test_hyperparameters.py",
    "parity_tests/frameworks/test_numerical_extremes.py",
    "parity_tests/frameworks/test_handoff_determinism.py",
    "parity_tests/frameworks/test_conv_parity.py",
]
FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    models: str
    old: str
    new: str
    tests: tuple[str, ...] = ()

    def mutated(self, root: Path) -> str:
        """The text of ``root/file`` with ``old`` replaced by ``new``; ``old`` must occur exactly once."""
        path = root / self.file
        if not path.is_file():
            raise MutantRotted(f"mutant {self.name!r}: its file {self.file} does not exist (moved or "
                               f"renamed?); update tools/mutants/")
        count = path.read_text(encoding="utf-8").count(self.old)
        if count != 1:
            raise MutantRotted(f"mutant {self.name!r}: its 'old' snippet occurs {count} times in "
                               f"{self.file} (expected exactly once); update tools/mutants/")
        return path.read_text(encoding="utf-8").replace(self.old, self.new)

    def apply(self, root: Path) -> None:
        (root / self.file).write_text(self.mutated(root), encoding="utf-8")


class MutantRotted(RuntimeError):
    """A mutant's snippet is no longer in the code exactly once."""


def load_mutants(folder: Path = MUTANTS_DIR) -> list[Mutant]:
    mutants = []
    for path in sorted(folder.glob("*.toml")):
        with path.open("rb") as stream:
            data = tomllib.load(stream)
        fields = {"name", "file", "models", "old", "new"}
        if not fields <= set(data) <= fields | {"tests"}:
            raise MutantRotted(f"{path}: expected the keys {sorted(fields)} (and optionally 'tests'), "
                               f"found {sorted(data)}")
        if data["old"] == data["new"]:
            raise MutantRotted(f"{path}: 'old' and 'new' are the same")
        tests = tuple(data.pop("tests", ()))
        missing = [test for test in tests if not (folder.parent.parent / test).is_file()]
        if missing:
            raise MutantRotted(f"{path}: its tests {missing} do not exist")
        mutants.append(Mutant(**data, tests=tests))
    names = [m.name for m in mutants]
    if len(set(names)) != len(names):
        raise MutantRotted(f"duplicate mutant names in {folder}")
    return mutants


def environment(copy: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(copy), PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")


def check_imports_come_from(copy: Path) -> None:
    code = ("import judge, reports, scratch, twins; "
            "print(scratch.__file__, twins.__file__, judge.__file__, reports.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=copy, env=environment(copy), capture_output=True,
                         text=True, check=True).stdout.split()
    foreign = [f for f in out if not Path(f).resolve().is_relative_to(copy.resolve())]
    if foreign:
        raise RuntimeError(f"the copy does not shadow the installed package: {foreign}")


def with_own_tests(tests: list[str], mutants: list[Mutant]) -> list[str]:
    """The mutants' own test files first, then ``tests`` (the subset) that they do not hold yet:
    with ``-x`` a mutant stops at its first failure, and the test written for it is the likeliest
    to fail (a compare or report mutant no longer waits for the whole subset to pass first)."""
    return list(dict.fromkeys([*(test for mutant in mutants for test in mutant.tests), *tests]))


def run_subset(copy: Path, tests: list[str], timeout: float) -> dict:
    command = ["nice", "-n", "10", sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-m", "not slow", "--seed", "0", "--hypothesis-seed=0", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=copy, env=environment(copy), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"returncode": None, "first_failure": f"timeout after {timeout:.0f} s",
                "seconds": round(time.perf_counter() - start, 1), "tail": ""}
    output = done.stdout + done.stderr
    failed = FAILED_LINE.findall(output)
    return {"returncode": done.returncode, "first_failure": failed[0] if failed else None,
            "seconds": round(time.perf_counter() - start, 1),
            "tail": "" if done.returncode == 0 else output[-3000:]}


def apply_to(mutant: Mutant, folder: Path) -> int:
    """Copy the project to ``folder`` with ``mutant`` applied (the README's worked FAIL)."""
    copy = copy_project(folder)
    try:
        mutant.apply(copy)
    except MutantRotted as error:
        shutil.rmtree(copy)
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{mutant.name} applied to {copy / mutant.file}: {mutant.models}")
    print(f"run a command on the broken copy with: cd {copy} && PYTHONPATH=. python -m reports COMMAND")
    return 0


def table(results: list[dict]) -> str:
    width = max(len(r["name"]) for r in results)
    lines = [f"{'mutant':<{width}}  {'status':<8}  {'s':>6}  first failing test", "-" * (width + 80)]
    for r in results:
        status = "caught" if r["caught"] else "SURVIVED"
        lines.append(f"{r['name']:<{width}}  {status:<8}  {r['seconds']:>6.1f}  {r['first_failure'] or '-'}")
    caught = sum(r["caught"] for r in results)
    lines.append(f"kill rate: {caught}/{len(results)} = {caught / len(results):.0%}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this mutant (repeatable)")
    parser.add_argument("--json", type=Path, default=ROOT / "out" / "mutation.json")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per pytest run (default 1200)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="mutants run at once, each in its own pytest process (default 1; give each "
                             "job a core and the memory of one suite process, ~1.5 GB)")
    parser.add_argument("--skip-baseline", action="store_true", help="do not run the unmutated copy first")
    parser.add_argument("--list", action="store_true", help="check every mutant applies, list them, exit")
    parser.add_argument("--apply-to", type=Path, metavar="DIR",
                        help="copy the project to DIR (a new folder) with the one --only mutant applied, "
                             "run nothing, and say how to run a command there")
    parser.add_argument("tests", nargs="*", default=SUBSET, help="test files to run (default: the subset)")
    args = parser.parse_args(argv)

    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected at least 1")
    if args.apply_to is not None and len(args.only or []) != 1:
        parser.error("--apply-to takes exactly one --only NAME")
    if args.apply_to is not None and args.apply_to.exists():
        parser.error(f"--apply-to {args.apply_to}: already exists (give a new folder)")
    mutants = load_mutants()
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in mutants})
        if unknown:
            parser.error(f"unknown mutant(s) {unknown}; known: {', '.join(m.name for m in mutants)}")
        mutants = [m for m in mutants if m.name in args.only]
    if args.apply_to is not None:
        return apply_to(mutants[0], args.apply_to)
    with tempfile.TemporaryDirectory(prefix="mutation-") as temp:
        base = copy_project(Path(temp) / "base")
        try:
            for mutant in mutants:                          # every mutant must apply before anything runs
                mutant.mutated(base)
        except MutantRotted as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if args.list:
            for mutant in mutants:
                print(f"{mutant.name:<36} {mutant.file:<26} {mutant.models}")
            return 0
        check_imports_come_from(base)
        document = {"tests": args.tests, "baseline": None, "mutants": []}
        if not args.skip_baseline:
            baseline = run_subset(base, with_own_tests(args.tests, mutants), args.timeout)
            document["baseline"] = baseline
            print(f"baseline (no mutant): exit {baseline['returncode']} in {baseline['seconds']} s",
                  flush=True)
            if baseline["returncode"] != 0:
                print(f"error: the subset fails without any mutant:\n{baseline['tail']}", file=sys.stderr)
                return 2
        def run_one(mutant: Mutant) -> dict:
            copy = Path(temp) / mutant.name.replace("/", "_")
            shutil.copytree(base, copy)
            mutant.apply(copy)
            result = run_subset(copy, with_own_tests(args.tests, [mutant]), args.timeout)
            shutil.rmtree(copy)
            return {**asdict(mutant), **result, "caught": result["returncode"] != 0}

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:     # each run is its own process
            for row in pool.map(run_one, mutants):                   # rows in the mutants' order
                document["mutants"].append(row)
                verdict = f"caught by {row['first_failure']}" if row["caught"] else "SURVIVED"
                print(f"{row['name']}: {verdict} ({row['seconds']} s)", flush=True)
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    results = document["mutants"]
    print(table(results))
    print(f"results: {args.json}")
    return 0 if all(r["caught"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
