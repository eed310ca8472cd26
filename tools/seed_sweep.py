"""Run the core parity tests under ``--seed N`` for every N in a range, once, and summarize.

    python tools/seed_sweep.py                      # seeds 0..99, the core tests, results in out/
    python tools/seed_sweep.py --seeds 3-5 --json out/sweep.json

Each seed is one sequential, niced pytest run (``-q -x -p no:cacheprovider -m "not slow"``) with
``--seed N`` (the suite's global seed) and ``--hypothesis-seed N`` (so the Hypothesis-drawn
architectures are reproducible too). The runs use a snapshot of the project (tracked files and
untracked non-ignored files, see ``project_copy.py``) taken at start, with ``PYTHONPATH`` set to
it, so edits made in the working tree during a long sweep do not mix into it. The JSON is
rewritten after every seed, so an interrupted sweep keeps what it measured.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from project_copy import ROOT, copy_project

CORE_TESTS = [
    "parity_tests/frameworks/test_forward_gradients.py",
    "parity_tests/frameworks/test_training_curves.py",
    "parity_tests/numpy_only/test_gradients_fd.py",
]
FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)
COUNTS = re.compile(r"(\d+) (passed|failed|error|errors|skipped|xfailed|xpassed|deselected)")


def seed_range(text: str) -> list[int]:
    """"0-99" → [0, …, 99]; "1,5,7" → [1, 5, 7]."""
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def pytest_command(seed: int, tests: list[str]) -> list[str]:
    return ["nice", "-n", "10", sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
            "-m", "not slow", "--seed", str(seed), f"--hypothesis-seed={seed}", *tests]


def run_seed(seed: int, tests: list[str], where: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(where), PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    start = time.perf_counter()
    done = subprocess.run(pytest_command(seed, tests), cwd=where, env=env, capture_output=True, text=True)
    output = done.stdout + done.stderr
    counts = {kind: int(n) for n, kind in COUNTS.findall(output.splitlines()[-1] if output else "")}
    failed = FAILED_LINE.findall(output)
    return {"seed": seed, "returncode": done.returncode, "ok": done.returncode == 0,
            "counts": counts, "first_failure": failed[0] if failed else None,
            "seconds": round(time.perf_counter() - start, 1),
            "tail": None if done.returncode == 0 else output[-4000:]}


def summary(results: list[dict]) -> str:
    passed = [r for r in results if r["ok"]]
    tests = {r["counts"].get("passed", 0) for r in passed}
    lines = [f"{len(passed)} of {len(results)} seeds passed "
             f"({', '.join(map(str, sorted(tests))) or '0'} tests passed per seed)"]
    for r in results:
        if not r["ok"]:
            lines.append(f"  seed {r['seed']}: exit {r['returncode']}, first failure {r['first_failure']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=seed_range, default=list(range(100)), help="e.g. 0-99 or 1,5,7")
    parser.add_argument("--json", type=Path, default=ROOT / "out" / "seed_sweep.json")
    parser.add_argument("--in-place", action="store_true",
                        help="run in the working tree instead of a snapshot of it")
    parser.add_argument("tests", nargs="*", default=CORE_TESTS)
    args = parser.parse_args(argv)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="seed-sweep-") as temp:
        where = ROOT if args.in_place else copy_project(Path(temp) / "project")
        git = functools.partial(subprocess.run, cwd=ROOT, capture_output=True, text=True)
        document = {"started": datetime.datetime.now().isoformat(timespec="seconds"),
                    "commit": git(["git", "rev-parse", "HEAD"]).stdout.strip(),
                    "uncommitted": git(["git", "status", "--porcelain"]).stdout.splitlines(),
                    "snapshot": not args.in_place,
                    "command": " ".join(pytest_command(0, args.tests)).replace("--seed 0", "--seed N")
                    .replace("--hypothesis-seed=0", "--hypothesis-seed=N"),
                    "results": []}
        for seed in args.seeds:
            result = run_seed(seed, args.tests, where)
            document["results"].append(result)
            args.json.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
            status = "ok" if result["ok"] else f"FAIL {result['first_failure']}"
            print(f"seed {seed:3d}: {status}  {result['counts']}  {result['seconds']} s", flush=True)
    print(summary(document["results"]))
    print(f"results: {args.json}")
    return 0 if all(r["ok"] for r in document["results"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
