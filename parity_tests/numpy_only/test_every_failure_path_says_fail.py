"""Every way a comparison can fail, through every path a verdict takes to the user: each must
say FAIL.

The failures (:data:`CASES`): an error over its bound; a NaN or infinite error, and an error that
is a NumPy scalar rather than a Python float; a shape or dtype mismatch, a missing or an extra
quantity (made by :func:`judge.parity.compare_traces` from real engine traces, one entry
spoiled); a failing per-step training row; and a free-running divergence that no rounding cause
explains (a referee finds the actual off), beside per-step rows that all pass.

The paths: ``check``'s table (:func:`judge.parity.format_table`) and its free-running lines,
its verdict line (:class:`reports.verdict.check.Verdict`), ``check --json`` (serialized and read
back), the exit status of ``check`` with and without ``--json`` (the real command in process, its
backends' comparisons replaced by the case), the report's verdict (:mod:`reports.verdict.report`)
over results built by the scenarios' own row converters, its HTML and Markdown, and
``results.json`` (serialized, read back and checked against the schema). Last, ``check`` on a
deliberately broken twin (the engine with a bug, under the name torch) exits 1.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from judge import parity
from judge.parity import Comparison, compare_traces, format_table
from judge.stepwise import StepwiseResult
from judge.tolerances import ARBITER_FACTOR, tolerance
from judge.training_parity import TrainingParity
from judge.trajectory import Arbiter, Trajectory
from reports.json_file import json_bytes
from reports.verdict.check import Verdict
from scratch.model import Network
from scratch.spec import ModelSpec, OptimizerSpec
from twins.scratch_backend import ScratchBackend

DTYPE = "float64"
SPEC = ModelSpec((4, 3, 2), dtype=DTYPE, seed=1, batch_size=4, init="glorot_uniform",
                 optimizer=OptimizerSpec("sgd", learning_rate=0.1))
PAIR = "torch vs scratch"
FORWARD, GRADIENT = tolerance(DTYPE, "forward"), tolerance(DTYPE, "gradient")


@pytest.fixture(autouse=True)
def _quiet_observers(monkeypatch):
    """Deliberate mismatches stay out of the suite's largest-error summary."""
    monkeypatch.setattr(parity, "_observers", [])


def _traces():
    """(actual, desired, x): two identical engine traces of :data:`SPEC` on a fixed batch."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4))
    start = Network(SPEC)                            # SPEC's initializer and seed, in DTYPE
    targets = start.targets(rng.integers(0, 2, 6))
    desired = ScratchBackend(SPEC, tensors=start.tensors).trace(x, targets)
    return {k: np.array(v) for k, v in desired.items()}, desired, x


def _spoiled(spoil):
    """compare_traces of an engine trace against itself after ``spoil(actual)``."""
    def rows():
        actual, desired, x = _traces()
        spoil(actual)
        return compare_traces(actual, desired, DTYPE, x=x)
    return rows


def _set(name, value):
    def spoil(trace):
        trace[name] = value(trace[name])
    return spoil


def _drop(name):
    return lambda trace: trace.pop(name)


def _nan_at_one(array):
    array = array.copy()
    array.flat[0] = np.nan
    return array


def _one(comparison):
    """The failing ``comparison`` beside a passing row."""
    return lambda: [Comparison("loss", None, "forward", 0.0, FORWARD), comparison]


def _training(stepwise_rows, trajectory_fields=None):
    """A TrainingParity of ``PAIR`` over 5 steps; ``trajectory_fields`` part the free-running run."""
    trajectory = Trajectory("torch", "scratch", DTYPE, 5, {"actual": [0.5] * 5, "reference": [0.5] * 5},
                            [1e-16] * 5, [1e-16] * 5, **(trajectory_fields or {}))
    return TrainingParity("torch", "scratch", StepwiseResult(stepwise_rows, 5), trajectory)


PASSING_STEPS = [Comparison("dW1", 1, "gradient", 1e-16, GRADIENT, step=s) for s in range(5)] + [
    Comparison("W1 update", 1, "update", 1.0, 8, step=s) for s in range(5)]
FAILING_STEP = Comparison("W1 update", 1, "update", 50.0, 8, ulps=50.0, where=(0, 1), step=3)
# parted at step 2 for no rounding cause; a third backend refereeing finds the actual 1e6× farther
UNEXPLAINED = {"parting_step": 2, "parting_quantity": "W1", "cause": "arbiter",
               "arbiter": Arbiter("float64", 1e-10, 1e-16, ARBITER_FACTOR, tolerance(DTYPE, "parameters"),
                                  "jax")}

PASSING_Z1 = Comparison("Z1", 1, "forward", 0.0, FORWARD)

# name → (rows of the single-batch check, trainings, the failing quantity as a row names it or None)
CASES = {
    "over the bound": (_one(Comparison("dW2", 2, "gradient", 3e-10, GRADIENT)), [], "dW2"),
    "NaN error": (_one(Comparison("dW2", 2, "gradient", math.nan, GRADIENT)), [], "dW2"),
    "inf error": (_one(Comparison("Z1", 1, "forward", math.inf, FORWARD)), [], "Z1"),
    "numpy float64 error": (_one(Comparison("dW2", 2, "gradient", np.float64(3e-10), GRADIENT)), [], "dW2"),
    "numpy float32 error": (_one(Comparison("Z2", 2, "forward", np.float32(0.25), np.float32(FORWARD))), [],
                            "Z2"),
    "numpy NaN error": (_one(Comparison("db1", 1, "gradient", np.float64("nan"), GRADIENT)), [], "db1"),
    "NaN in a trace": (_spoiled(_set("dW1", _nan_at_one)), [], "dW1"),
    "shape mismatch": (_spoiled(_set("dW1", lambda a: a.T.copy())), [], "dW1"),
    "dtype mismatch": (_spoiled(_set("A1", lambda a: a.astype(np.float32))), [], "A1"),
    "missing quantity": (_spoiled(_drop("db2")), [], "db2"),
    "extra quantity": (_spoiled(lambda t: t.update(dZ9=t["dZ2"])), [], "dZ9"),
    "per-step training row": (_one(PASSING_Z1), [_training([*PASSING_STEPS, FAILING_STEP])], "W1 update"),
    "free-running divergence": (_one(PASSING_Z1), [_training(PASSING_STEPS, UNEXPLAINED)], None),
}
# the cases whose error is no finite number: the worst failure, whatever else fails beside it
UNBOUNDED = ["NaN error", "inf error", "numpy NaN error", "NaN in a trace", "shape mismatch",
             "dtype mismatch", "missing quantity", "extra quantity"]
MILD = [Comparison(f"Z{i}", i, "forward", 2 * FORWARD, FORWARD) for i in (7, 8, 9)]    # 2× the bound


def _case(name):
    """(rows as ``check`` holds them, trainings) of case ``name``."""
    make_rows, trainings, _ = CASES[name]
    rows = [(PAIR, c) for c in make_rows()]
    for training in trainings:                   # as check.run adds them: each kind's worst step
        rows += [(PAIR, c) for c in training.summary_rows()]
    return rows, list(trainings)


def _verdict(rows, trainings):
    return Verdict(SPEC, rows, trainings, ["scratch", "torch"], {}, 5, "backprop-parity check --steps 5")


@pytest.mark.parametrize("case", CASES)
def test_check_table_and_verdict_line_say_fail(case):
    rows, trainings = _case(case)
    quantity = CASES[case][2]
    verdict = _verdict(rows, trainings)
    assert not verdict.ok and verdict.failed_count >= 1
    headline = verdict.headline()
    assert headline.startswith("verdict: FAIL"), headline
    assert (quantity or "free-running") in headline, headline
    details = "\n".join(verdict.failure_details())
    assert "failing comparisons" in details and (quantity or "free-running") in details
    if quantity is not None:
        table = format_table(rows).splitlines()
        [line] = [line for line in table if f" {quantity} " in f" {line} "]
        assert line.split()[-1].startswith("FAIL") or " FAIL" in line, line


@pytest.mark.parametrize("case", UNBOUNDED)
def test_a_non_finite_or_structural_failure_is_named_first(case):
    """Beside three failures at 2× their bound it is the worst: named first in the headline, not
    lost in "and N more" (a NaN excess would sort anywhere)."""
    rows, trainings = _case(case)
    verdict = _verdict([*((PAIR, c) for c in MILD), *rows], trainings)
    named = verdict.headline().split(f"({DTYPE}): ", 1)[1]
    assert named.startswith(f"{PAIR} "), named
    first = named.split(";")[0]
    assert f" {CASES[case][2]} " in first + " ", (first, verdict.headline())


@pytest.mark.parametrize("case", CASES)
def test_check_json_says_fail(case):
    rows, trainings = _case(case)
    quantity = CASES[case][2]
    data = json.loads(json_bytes(_verdict(rows, trainings).to_dict(), "check.json"))
    assert data["ok"] is False and data["verdict"].startswith("verdict: FAIL")
    if quantity is None:
        [training] = data["training"]
        assert training["free_running_ok"] is False and training["ok"] is False
        assert all(row["ok"] for row in data["comparisons"])         # only the free-running run fails
        return
    [row] = [row for row in data["comparisons"] if row["quantity"] == quantity]
    assert row["ok"] is False, row
    for key in ("error", "tolerance", "max_ulps", "smallest_passing_tolerance"):
        assert row[key] is None or (type(row[key]) in (int, float) and math.isfinite(row[key])), (key, row)
    error = float([c for _, c in rows if c.name == quantity][0].error)
    assert row["error"] == (error if math.isfinite(error) else None)


def _run_check(monkeypatch, tmp_path, capsys, rows, trainings, extra=()):
    """``backprop-parity check`` on a small spec, in process, its pairs' comparisons replaced by
    ``rows`` and ``trainings``: (exit status, stdout)."""
    from reports.cli.main import main

    comparisons = [c for _, c in rows]
    monkeypatch.setattr("twins.backends.available_backends", lambda: ["scratch", "torch"])
    monkeypatch.setattr("twins.backends.make_backend",
                        lambda name, spec, statistics=None, *, tensors: ScratchBackend(spec, tensors=tensors))
    monkeypatch.setattr("twins.hygiene.configure_frameworks", lambda threads=None: {})
    monkeypatch.setattr("judge.parity.compare_backend_traces", lambda *a, **k: list(comparisons))
    monkeypatch.setattr("judge.training_parity.compare_training",
                        lambda *a, **k: trainings[0] if trainings else _training(PASSING_STEPS))
    path = tmp_path / "spec.json"
    path.write_text(SPEC.to_json(), encoding="utf-8")
    code = main(["check", "--spec", str(path), "--backends", "scratch,torch", "--batch", "6", "--steps", "5",
                 *extra])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("case", CASES)
def test_check_exits_1_with_and_without_json(case, monkeypatch, tmp_path, capsys):
    rows, trainings = _case(case)
    rows = [row for row in rows if row[1].step is None]     # check.run adds the training's own rows
    code, out = _run_check(monkeypatch, tmp_path, capsys, rows, trainings)
    assert code == 1, out
    assert out.startswith("verdict: FAIL"), out
    target = tmp_path / "check.json"
    code_json, out_json = _run_check(monkeypatch, tmp_path, capsys, rows, trainings, ["--json", str(target)])
    assert code_json == 1, out_json
    assert out_json.splitlines()[0] == out.splitlines()[0]
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["ok"] is False and data["verdict"] == out.splitlines()[0]
    if CASES[case][2] is None:
        assert "torch vs scratch: FAIL — parted at step 2" in out


def test_check_exits_0_when_nothing_fails(monkeypatch, tmp_path, capsys):
    """The harness above can pass: the same run without a failure exits 0, with and without --json."""
    rows = [(PAIR, Comparison("Z1", 1, "forward", 0.0, FORWARD)),
            (PAIR, Comparison("dW1", 1, "gradient", np.float64(1e-16), GRADIENT))]
    for extra in ([], ["--json", str(tmp_path / "ok.json")]):
        code, out = _run_check(monkeypatch, tmp_path, capsys, rows, [], extra)
        assert code == 0 and out.startswith("verdict: PASS"), out
    assert json.loads((tmp_path / "ok.json").read_text(encoding="utf-8"))["ok"] is True


MODEL = "seed-002"           # the model the case's entries name (any catalog name)


def _results(rows, trainings) -> dict:
    """A results.json holding the case: its rows in the parity section and its trainings in the
    curves section, each made by the scenario's own converter; the other sections empty."""
    from reports.scenarios.common import spec_summary
    from reports.scenarios.curves import check_entry
    from reports.scenarios.parity import comparison_row
    from reports.schema import FORMAT

    actual, desired, _ = _traces()
    spec = SPEC.to_dict()
    return {
        "format": FORMAT, "mode": "quick", "created_utc": "2025-01-01T00:00:00Z",
        "command": "backprop-parity report --quick", "wall_time_s": 1.0, "timings_s": {},
        "model": MODEL, "rows": [],
        "backends": {"used": ["scratch", "torch"], "skipped": {}},
        "parity": [{"model": MODEL, "data": "a test batch", "specs": {DTYPE: spec_summary(SPEC)},
                    "pairs": [PAIR], "rows": [comparison_row(DTYPE, label, c, actual, desired)
                                              for label, c in rows if c.step is None]}],
        "curves": [{"model": MODEL, "data": "a test batch", "spec": spec, "optimizers": {}, "steps": 5,
                    "runs": [], "checks": [dict(check_entry("sgd", t), dtype=DTYPE) for t in trainings]}],
        "divergence": [],
        "seeds": {"full_setting": False, "rows": [], "runs": []},
        "variants": {"variants": {}, "rows": []},
        "conventions": {"data": "-", "spec": spec, "steps": 0, "rows": [], "series": []},
        "environment": {"platform": "-", "machine": "-", "python_implementation": "-", "executable": "-",
                        "versions": {}, "threads": {}, "blas": [], "hygiene": {}, "env": {}},
    }


@pytest.mark.parametrize("case", CASES)
def test_report_verdict_html_markdown_and_results_json_say_fail(case):
    from reports.render.html import render_html
    from reports.render.markdown import render_markdown
    from reports.schema import validate
    from reports.verdict.report import report_verdict

    rows, trainings = _case(case)
    results = _results(rows, trainings)
    verdict = report_verdict(results)
    assert verdict["ok"] is False and verdict["failed"] >= 1
    assert verdict["line"].startswith("verdict: FAIL"), verdict["line"]
    assert (CASES[case][2] or "free-running") in verdict["line"], verdict["line"]
    results["verdict"] = verdict
    saved = json.loads(json_bytes(results, "results.json"))
    validate(saved)                                          # the stored verdict agrees with the rows
    assert saved["verdict"]["ok"] is False and saved["verdict"]["line"] == verdict["line"]
    assert report_verdict(saved)["line"] == verdict["line"]  # --from-json renders the same verdict
    html = render_html(saved, {})
    assert '<p id="verdict" class="verdict fail">verdict: FAIL' in html
    markdown = render_markdown(saved, {})
    assert f"**{verdict['line']}**" in markdown
    # the section's own table: the row of the failing quantity (or training check) ends in a FAIL cell
    quantity = CASES[case][2]
    row_start = (f"| {quantity} |" if quantity is not None and not trainings
                 else f"| sgd | {DTYPE} | torch vs scratch |")
    [line] = [line for line in markdown.splitlines() if line.startswith(row_start)]
    assert line.rstrip(" |").rsplit("|", 1)[-1].strip().startswith("FAIL"), line
    assert '<td class="fail">FAIL' in html


@pytest.mark.parametrize("case", UNBOUNDED)
def test_the_report_names_a_non_finite_or_structural_failure_first(case):
    from reports.verdict.report import report_verdict

    rows, trainings = _case(case)
    verdict = report_verdict(_results([*((PAIR, c) for c in MILD), *rows], trainings))
    assert verdict["failures"][0]["quantity"] == CASES[case][2], verdict["line"]
    assert f" {CASES[case][2]} (" in verdict["line"].split("): ", 1)[1].split(";")[0], verdict["line"]


def test_the_report_passes_when_nothing_fails():
    from reports.render.html import render_html
    from reports.verdict.report import report_verdict

    rows = [(PAIR, Comparison("Z1", 1, "forward", np.float64(0.0), FORWARD))]
    results = _results(rows, [_training(PASSING_STEPS)])
    results["verdict"] = report_verdict(results)
    assert results["verdict"]["line"].startswith("verdict: PASS"), results["verdict"]["line"]
    assert 'class="verdict pass"' in render_html(json.loads(json_bytes(results, "results.json")), {})


class BrokenTwin(ScratchBackend):
    """The engine with one realistic bug: dW of the output layer scaled by 1 + 1e-9."""

    name = "torch"

    def trace(self, x, targets, masks=None):
        out = super().trace(x, targets, masks)
        out[f"dW{self.spec.n_layers}"] = out[f"dW{self.spec.n_layers}"] * (1 + 1e-9)
        return out


def test_check_on_a_broken_twin_exits_1(monkeypatch, tmp_path, capsys):
    """The real ``check`` pipeline (traces, comparisons, training parity, verdict, JSON) with the
    engine as scratch and a broken copy of it as torch: exit 1, the wrong gradient named."""
    from reports.cli.main import main

    def make(name, spec, statistics=None, *, tensors):
        return (BrokenTwin if name == "torch" else ScratchBackend)(spec, tensors=tensors)

    monkeypatch.setattr("twins.backends.available_backends", lambda: ["scratch", "torch"])
    monkeypatch.setattr("twins.backends.make_backend", make)
    monkeypatch.setattr("twins.hygiene.configure_frameworks", lambda threads=None: {})
    path = tmp_path / "spec.json"
    path.write_text(SPEC.to_json(), encoding="utf-8")
    argv = ["check", "--spec", str(path), "--backends", "scratch,torch", "--batch", "8", "--steps", "3"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert out.startswith("verdict: FAIL") and "torch vs scratch layer 2 dW2" in out.splitlines()[0], out
    assert main([*argv, "--json", str(tmp_path / "c.json")]) == 1
    data = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert data["ok"] is False
    assert {row["quantity"] for row in data["comparisons"] if not row["ok"]} >= {"dW2"}
