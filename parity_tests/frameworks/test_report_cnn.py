"""The report's convolutional section (5b, ``reports.scenarios.cnn``): lenet5's parity rows and
training checks in each twin against the engine, the convention findings measured at report time,
the section's own verdict — which must say FAIL when a twin is wrong — and the CNN benchmark rows
of ``report --bench``.

The scenario runs once per module on the ``--quick`` settings with the torch and Keras twins (the
JAX twin's XLA compilations would triple the time; the whole ``--quick`` report, JAX included, is
checked in ``test_report.py``); at ~11 s that is ``-m slow``. The wrong-layout test, the effect
helper and the bench file run in the default set (about a second)."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")

from reports.render import cnn as render_cnn  # noqa: E402
from reports.render.document import Table  # noqa: E402
from reports.scenarios import cnn, cnn_findings  # noqa: E402
from reports.scenarios.common import Context  # noqa: E402
from reports.scenarios.suite import PROFILES  # noqa: E402
from reports.schema import CNN, check_against, validate_bench  # noqa: E402
from reports.verdict.report import section_verdict  # noqa: E402
from scratch.errors import DataError  # noqa: E402

TWINS = ("torch", "keras")
COMMAND = "backprop-parity report --quick --threads 1"


@pytest.fixture(scope="module")
def section():
    """The scenario's dict on the ``--quick`` settings, torch and Keras twins."""
    out = cnn.run(Context(backends=["scratch", *TWINS]), PROFILES["quick"].cnn)
    check_against(CNN, out, "results.json cnn")
    return out


def results_with(section: dict) -> dict:
    return {"command": COMMAND, "cnn": section}


def table(blocks, table_id: str) -> Table:
    (found,) = [b for b in blocks if isinstance(b, Table) and b.id == table_id]
    return found


@pytest.mark.slow
def test_every_quantity_of_every_layer_is_compared_in_both_dtypes_and_passes(section):
    spec = cnn.lenet5_spec("float32")
    for dtype in ("float32", "float64"):
        for twin in TWINS:
            pair = f"{twin} vs scratch"
            names = {r["quantity"] for r in section["rows"] if (r["dtype"], r["pair"]) == (dtype, pair)}
            for layer in range(1, spec.n_layers + 1):
                assert {f"Z{layer}", f"A{layer}", f"dZ{layer}"} <= names, (dtype, twin, layer)
            assert {f"dW{layer}" for layer in spec.parameter_layers} <= names
            assert "loss" in names
    assert all(row["ok"] for row in section["rows"])
    assert {row["tolerance"] for row in section["rows"] if row["dtype"] == "float64"} == {1e-13}
    configs = {(c["dtype"], c["pair"]): c["config"] for c in section["checks"]}
    assert configs == {(d, p): c for d in ("float32", "float64")
                       for p, c in (("torch vs scratch", "adam-torch"), ("keras vs scratch", "adam-keras"))}
    assert all(c["ok"] for c in section["checks"])
    verdict = section_verdict(results_with(section))
    n = len(section["rows"]) + 4 * len(section["checks"])          # forward, gradient, update, free-running
    assert (verdict["ok"], verdict["comparisons"], verdict["failed"]) == (True, n, 0)
    assert verdict["line"] == f"lenet5: PASS — all {n} comparisons within tolerance"


@pytest.mark.slow
def test_the_parity_table_shows_the_largest_error_per_quantity(section):
    blocks = render_cnn.section(results_with(section), {}).blocks
    parity = table(blocks, "cnn-parity")
    assert len(parity.rows) == 2 * len(TWINS)
    for line in parity.rows:
        dtype, pair = line[:2]
        these = [r for r in section["rows"] if (r["dtype"], r["pair"]) == (dtype, pair)]
        for quantity, cell in zip(render_cnn.QUANTITIES, line[2:9], strict=True):
            errors = [r["rel_error"] for r in these if re.fullmatch(rf"{quantity}\d*", r["quantity"])]
            assert float(cell) == pytest.approx(max(errors), rel=5e-3, abs=0), (dtype, pair, quantity)
        assert line[-1] == "ok"
    assert blocks[0] == "Section verdict: lenet5: PASS — all " + str(section_verdict(
        results_with(section))["comparisons"]) + " comparisons within tolerance."
    text = " ".join(b for b in blocks if isinstance(b, str))
    assert "Keras's optimizers cannot express torch-convention Adam" in text and "adam-keras" in text
    assert not [b for b in blocks if isinstance(b, Table) and b.id == "cnn-failures"]


@pytest.mark.slow
def test_the_curves_start_together_and_name_each_twins_deviation(section):
    runs = {(r["backend"], r["convention"]): r["loss"] for r in section["curves"]["runs"]}
    assert set(runs) == {("scratch", "torch"), ("torch", "torch"), ("scratch", "keras"), ("keras", "keras")}
    assert len({len(loss) for loss in runs.values()}) == 1 and len(runs["torch", "torch"]) == section["steps"]
    # the first step's loss is computed before any update: every backend from the same start
    assert np.ptp([loss[0] for loss in runs.values()]) <= 1e-5 * runs["scratch", "torch"][0]
    for deviation in section["curves"]["deviations"]:
        engine = np.array(runs["scratch", deviation["convention"]])
        twin = np.array(runs[deviation["backend"], deviation["convention"]])
        assert deviation["max_abs_loss_diff"] == pytest.approx(np.max(np.abs(twin - engine)), abs=0)


def findings_of(section, finding):
    return {(r["case"], r["quantity"]): r for r in section["findings"]["rows"] if r["finding"] == finding}


@pytest.mark.slow
def test_each_convention_finding_is_measured_with_its_effect(section):
    padding = findings_of(section, "padding")
    (symmetric,) = [r for (case, quantity), r in padding.items()
                    if case.startswith("stride 2") and quantity.startswith("Z1")]
    assert "(2, 2, 2, 2)" in symmetric["case"] and "(1, 2, 1, 2)" in symmetric["case"]
    assert symmetric["effect"] == "moves" and symmetric["rel_error"] > 1e-3
    (twin,) = [r for r in padding.values() if r["evidence"] == "torch twin"]
    assert twin["effect"] in ("rounding", "bit-identical")

    flatten = findings_of(section, "flatten")
    unpermuted = [r for (case, _), r in flatten.items() if "as they are" in case]
    permuted = [r for (case, _), r in flatten.items() if "permuted" in case]
    assert len(unpermuted) == len(permuted) == 2
    assert all(r["effect"] == "moves" for r in unpermuted)
    assert all(r["effect"] in ("rounding", "bit-identical") for r in permuted)

    batchnorm = section["findings"]["rows"]
    by = {(r["case"].split(",")[0], r["quantity"]): r for r in batchnorm if r["finding"] == "batchnorm"}
    assert by["biased running variance instead of unbiased", "running mean"]["effect"] == "bit-identical"
    assert by["biased running variance instead of unbiased", "running variance"]["effect"] == "moves"
    assert by["ρ 0.99 instead of 0.9", "inference output"]["effect"] == "moves"
    assert by["ε 0.001 instead of 1e-05", "running mean"]["effect"] == "moves"
    twins = [r for r in batchnorm if r["finding"] == "batchnorm" and r["evidence"].endswith("twin")]
    assert {r["evidence"] for r in twins} == {"torch twin", "keras twin"}
    assert all(r["effect"] in ("rounding", "bit-identical") for r in twins)

    layout = findings_of(section, "kernel layout")
    assert all(r["effect"] == "moves" for (case, _), r in layout.items()
               if "reshaped" in case or "swapped" in case)
    assert all(r["effect"] == "bit-identical" for (case, _), r in layout.items() if "correct inverse" in case)
    (keras,) = [r for r in layout.values() if r["evidence"] == "keras twin"]
    assert keras["effect"] in ("rounding", "bit-identical")


@pytest.mark.parametrize(("error", "dtype", "want"), [
    (0.0, "float64", "bit-identical"), (5e-14, "float64", "rounding"), (2e-13, "float64", "moves"),
    (None, "float64", "moves"), (5e-6, "float32", "rounding"), (2e-5, "float32", "moves")])
def test_effect_names_identical_rounding_and_moves(error, dtype, want):
    assert cnn_findings.effect(error, dtype) == want


def minimal_section(rows: list[dict]) -> dict:
    """A section with only parity rows (no training, curves or findings)."""
    return {"model": "lenet5", "spec": cnn.lenet5_spec("float32", 16).to_dict(), "data": "MNIST", "steps": 0,
            "pairs": ["keras vs scratch"], "rows": rows, "checks": [],
            "curves": {"dtype": "float32", "runs": [], "deviations": []},
            "findings": {"dtype": "float64", "data": "MNIST", "rows": []}}


@pytest.mark.deliberate_mismatch
def test_a_keras_kernel_reshaped_instead_of_transposed_fails_the_section(monkeypatch):
    """A deliberately wrong weight layout in the Keras twin (HWIO kernels reshaped from OIHW, the
    mutant ``keras-kernel-without-transpose``): its rows fail, the section's verdict and the
    report's say FAIL, the table shows the failing quantities, and the layout finding's twin row
    moves."""
    from reports.verdict.report import report_verdict
    from twins import keras_layers

    right = keras_layers.Parameter.to_keras

    def reshaped(self, array):
        if np.ndim(array) == 4:
            return np.ascontiguousarray(array).reshape(self.variable.shape)
        return right(self, array)

    monkeypatch.setattr(keras_layers.Parameter, "to_keras", reshaped)
    ctx = Context(backends=["scratch", "keras"])
    rows = cnn.parity_rows(ctx, PROFILES["quick"].cnn, "float64")
    failing = [r for r in rows if not r["ok"]]
    assert failing and {"Z1", "dW1"} <= {r["quantity"] for r in failing}
    broken = minimal_section(rows)
    check_against(CNN, broken, "results.json cnn")
    results = results_with(broken)
    verdict = section_verdict(results)
    assert not verdict["ok"] and verdict["failed"] == len(failing)
    assert verdict["line"].startswith(f"lenet5: FAIL — {len(failing)} of {verdict['comparisons']} "
                                      "comparisons exceed tolerance: lenet5 float64 keras vs scratch layer ")
    blocks = render_cnn.section(results, {}).blocks
    (line,) = [r for r in table(blocks, "cnn-parity").rows if r[:2] == ["float64", "keras vs scratch"]]
    assert line[-1].startswith("FAIL: ") and "Z1 (passes at " in line[-1]
    assert table(blocks, "cnn-parity").classes[table(blocks, "cnn-parity").rows.index(line)][-1] == "fail"
    failures = table(blocks, "cnn-failures")
    assert len(failures.rows) == len(failing) and all(r[3] == COMMAND for r in failures.rows)
    whole = dict(results, parity={"rows": []}, curves={"spec": {"dtype": "float64"}, "checks": []},
                 variants={"rows": []})
    assert report_verdict(whole)["line"].startswith("verdict: FAIL")
    x = ctx.mnist("float64").x_train[:2].reshape(2, 1, 28, 28)
    (twin_row,) = [r for r in cnn_findings.kernel_layout(ctx, x) if r["evidence"] == "keras twin"]
    assert twin_row["effect"] == "moves"


@pytest.mark.slow
def test_a_failing_training_check_fails_the_section_with_its_step(section):
    broken = copy.deepcopy(section)
    check = next(c for c in broken["checks"] if (c["dtype"], c["pair"]) == ("float32", "torch vs scratch"))
    check["step_update"].update(error=13.2, ok=False)               # 1.65× the 8-ulp bound
    check.update(steps_ok=False, ok=False)
    verdict = section_verdict(results_with(broken))
    assert verdict["failed"] == 1 and verdict["line"].endswith(
        f"lenet5 float32 adam-torch torch vs scratch per-step update {check['step_update']['quantity']} "
        f"at step {check['step_update']['step']} (13 ulp, 1.65× the bound 8 ulp)")
    blocks = render_cnn.section(results_with(broken), {}).blocks
    statuses = [r[-1] for r in table(blocks, "cnn-training").rows]
    assert statuses.count("FAIL: update passes at 14 ulp") == 1


@pytest.mark.slow
def test_a_rerouted_max_pool_tie_is_said_in_the_section(section):
    """A check entry's notes (``judge.pool_ties``, via ``curves.check_entry``) reach the page;
    without notes the sentence is absent."""
    assert not any("Max-pool ties" in b for b in render_cnn.section(results_with(section), {}).blocks
                   if isinstance(b, str))
    noted = copy.deepcopy(section)
    note = "step 5: compared with the reference's backward routed as the actual's: layer 4 (max-pool): …"
    noted["checks"][0]["notes"] = [note]
    check_against(CNN, noted, "results.json cnn")
    (sentence,) = [b for b in render_cnn.section(results_with(noted), {}).blocks
                   if isinstance(b, str) and "Max-pool ties" in b]
    assert note in sentence and noted["checks"][0]["pair"] in sentence
    tied = copy.deepcopy(section)                   # with the entries as data: a capped table instead
    tie = {"step": 5, "layer": 4, "windows": 3, "window": [0, 2, 1, 1], "reference": [0.5, 0.5],
           "actual": [0.5, float(np.nextafter(np.float32(0.5), np.float32(1)))], "gap_ulp": [0.0, 1.0]}
    tied["checks"][0].update(notes=[note] * 8, ties=[dict(tie, step=step) for step in range(8)])
    check_against(CNN, tied, "results.json cnn")
    blocks = render_cnn.section(results_with(tied), {}).blocks
    assert len(table(blocks, "cnn-ties").rows) == render_cnn.TIES_SHOWN
    assert not any(note in b for b in blocks if isinstance(b, str)), "the long text gives way to the table"


# --- report --bench with the CNN step's file -----------------------------------------------------

def cnn_bench() -> dict:
    """A ``bench --model lenet5 --json`` file's shape with stand-in timings (a real run is
    ``test_bench.py``'s, under -m slow)."""
    timing = {"median_s": 0.004, "q1_s": 0.0038, "q3_s": 0.0043, "ratio_to_fastest": 1.0}
    return {"model": "lenet5", "threads": 1, "settle_s": 0.25, "frameworks": {"torch": "threads 1"},
            "cnn": [{"batch": 64, "dtype": "float32", "optimizer": "sgd",
                     "backends": {"scratch": dict(timing, median_s=0.008, ratio_to_fastest=2.0),
                                  "torch": timing},
                     "engine_profile_s": {"conv1 im2col": 0.002, "step": 0.008},
                     "im2col": [{"layer": 1, "rows": 50176, "cols": 25, "bytes": 5017600}],
                     "engine_step_tracemalloc_peak_bytes": 9000000}]}


def test_a_cnn_bench_file_is_recognised_and_rendered(tmp_path):
    from reports.cli.report import load_benches

    bench = cnn_bench()
    assert validate_bench(bench, "cnn.json") == "bench_cnn"
    blocks = render_cnn.bench_blocks(bench, {"bench_cnn": "bench_cnn.png"})
    rows = table(blocks, "bench-cnn")
    assert rows.columns == ["batch", "scratch ms", "scratch × fastest", "torch ms", "torch × fastest"]
    assert rows.rows == [["64", "8.000", "2.00", "4.000", "1.00"]]
    assert table(blocks, "bench-cnn-profile").rows == [["conv1 im2col", "2.000 (25.0 %)"],
                                                       ["step", "8.000 (100.0 %)"]]
    path = tmp_path / "cnn.json"
    path.write_text(json.dumps(bench))
    assert load_benches([path]) == {"bench_cnn": bench}
    with pytest.raises(DataError, match="a second bench file of the CNN step"):
        load_benches([path, path])
    del bench["cnn"][0]["backends"]["scratch"]
    with pytest.raises(DataError, match=r"cnn\.json: \(top level\): cnn\[0\]: backends: no 'scratch'"):
        validate_bench(bench, "cnn.json")
