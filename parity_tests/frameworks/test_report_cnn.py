"""The report's rows on the convolutional catalog model (``lenet5`` in every profile): its parity
rows and training checks in each twin against the engine through the general scenarios
(``reports.scenarios.parity``, ``curves``), the convention findings measured at report time
(``reports.scenarios.cnn_findings``, rendered by ``reports.render.findings``), the model's own
verdict (``reports.verdict.report.model_verdict``) — which must say FAIL when a twin is wrong —
and a lenet5 bench file through the general benchmark section (``reports.render.bench``).

The scenarios run once per module on the ``--quick`` profile's lenet5 rows with the torch and
Keras twins (the JAX twin's XLA compilations would triple the time; the whole ``--quick`` report,
JAX included, is checked in ``test_report.py``); that is ``-m slow``. The wrong-layout test, the
effect helper and the bench file run in the default set."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")

from reports.render import document  # noqa: E402
from reports.render.bench import file_blocks  # noqa: E402
from reports.render.blocks import Table, fmt_err  # noqa: E402
from reports.render.findings import findings_blocks  # noqa: E402
from reports.render.ties import TIES_SHOWN  # noqa: E402
from reports.scenarios import cnn_findings  # noqa: E402
from reports.scenarios import curves as scenario_curves  # noqa: E402
from reports.scenarios import parity as scenario_parity  # noqa: E402
from reports.scenarios.common import Context  # noqa: E402
from reports.scenarios.suite import PROFILES  # noqa: E402
from reports.schema import CURVES, FINDINGS, PARITY, check_against, validate_bench  # noqa: E402
from reports.verdict.report import model_verdict  # noqa: E402
from scratch import catalog  # noqa: E402
from scratch.errors import DataError  # noqa: E402

MODEL = "lenet5"
TWINS = ("torch", "keras")
COMMAND = "backprop-parity report --quick --threads 1"


def quick_settings(scenario: str):
    """The ``--quick`` profile's settings of ``scenario`` on lenet5 (its row, as the report runs it)."""
    (row,) = [r for r in PROFILES["quick"].resolved() if (r.scenario, r.model) == (scenario, MODEL)]
    return row.settings


@pytest.fixture(scope="module")
def ctx():
    return Context(backends=["scratch", *TWINS])


@pytest.fixture(scope="module")
def parity(ctx):
    """lenet5's parity entry on the ``--quick`` settings, torch and Keras twins."""
    out = scenario_parity.run(ctx, MODEL, quick_settings("parity"))
    check_against(PARITY, out, "results.json parity[0]")
    return out


@pytest.fixture(scope="module")
def curves(ctx):
    """lenet5's curves entry on the ``--quick`` settings, torch and Keras twins."""
    out = scenario_curves.run(ctx, MODEL, quick_settings("curves"))
    check_against(CURVES, out, "results.json curves[0]")
    return out


@pytest.fixture(scope="module")
def findings(ctx):
    out = cnn_findings.run(ctx, MODEL, quick_settings("findings"))
    check_against(FINDINGS, out, "results.json findings[0]")
    return out


def results_with(parity: dict | None = None, curves: dict | None = None) -> dict:
    """What the verdict and the model's sections read: the command and lenet5's entries."""
    return {"command": COMMAND, "parity": [parity] if parity else [], "curves": [curves] if curves else []}


def table(blocks, table_id: str) -> Table:
    (found,) = [b for b in blocks if isinstance(b, Table) and b.id == table_id]
    return found


def tables(blocks, table_id: str) -> list[Table]:
    return [b for b in blocks if isinstance(b, Table) and b.id == table_id]


def parity_blocks(results: dict) -> list:
    return document._parity(results, results["parity"][0], {}).blocks


def curves_blocks(results: dict) -> list:
    return document._curves(results, results["curves"][0], {}).blocks


@pytest.mark.slow
def test_every_quantity_of_every_layer_is_compared_in_both_dtypes_and_passes(parity, curves):
    spec = catalog.spec(MODEL)
    for dtype in ("float32", "float64"):
        for twin in TWINS:
            pair = f"{twin} vs scratch"
            names = {r["quantity"] for r in parity["rows"] if (r["dtype"], r["pair"]) == (dtype, pair)}
            for layer in range(1, spec.n_layers + 1):
                assert {f"Z{layer}", f"A{layer}", f"dZ{layer}"} <= names, (dtype, twin, layer)
            assert {traced[0] for traced in spec.gradient_names} <= names   # dW_l (or dgamma_l, …)
            assert "loss" in names
    assert parity["pairs"] == [f"{twin} vs scratch" for twin in TWINS] + ["keras vs torch"]
    assert all(row["ok"] for row in parity["rows"])
    assert {row["tolerance"] for row in parity["rows"] if row["dtype"] == "float64"} == {1e-13}
    configs = {(c["dtype"], c["pair"]): c["config"] for c in curves["checks"]}
    assert len(configs) == len(curves["checks"]), "one check per dtype and pair"
    assert configs == {(d, p): c for d in ("float32", "float64")
                       for p, c in (("torch vs scratch", "adam-torch"), ("keras vs scratch", "adam-keras"))}
    assert all(c["ok"] for c in curves["checks"])
    verdict = model_verdict(results_with(parity, curves), MODEL)
    n = len(parity["rows"]) + 4 * len(curves["checks"])          # forward, gradient, update, free-running
    assert (verdict["ok"], verdict["comparisons"], verdict["failed"]) == (True, n, 0)
    assert verdict["line"] == f"{MODEL}: PASS — all {n} comparisons within tolerance"
    assert model_verdict(results_with(parity, curves), "seed-002")["comparisons"] == 0, "per model"


@pytest.mark.slow
def test_the_parity_tables_carry_every_rows_error(parity, curves):
    results = results_with(parity, curves)
    blocks = parity_blocks(results)
    checked = 0
    for dtype in ("float64", "float32"):
        shown = table(blocks, f"parity-{MODEL}-{dtype}")
        these = [r for r in parity["rows"] if r["dtype"] == dtype]
        assert [line[0] for line in shown.rows] == list(dict.fromkeys(r["quantity"] for r in these))
        for line in shown.rows:
            for row in (r for r in these if r["quantity"] == line[0]):
                column = shown.columns.index(f"{row['pair']} max rel")
                assert line[column] == fmt_err(row["rel_error"]), (dtype, row["pair"], row["quantity"])
                assert line[column - 1] == fmt_err(row["abs_error"])
                checked += 1
            assert line[-1] == "ok"
    assert checked == len(parity["rows"])
    assert blocks[0] == "Model verdict: " + model_verdict(results, MODEL)["line"] + "."
    assert blocks[0].startswith(f"Model verdict: {MODEL}: PASS — all ")
    assert not tables(blocks, f"parity-failures-{MODEL}")
    text = " ".join(b for b in curves_blocks(results) if isinstance(b, str))
    assert "cannot express torch-convention Adam" in text
    optimizers = table(curves_blocks(results), f"curve-optimizers-{MODEL}")
    assert [line[0] for line in optimizers.rows] == ["adam-torch", "adam-keras"]


@pytest.mark.slow
def test_the_curves_start_together_and_bound_each_twins_free_running_error(curves):
    runs = {(r["backend"], r["convention"], r["dtype"]): r["loss"] for r in curves["runs"]}
    assert set(runs) == {(backend, convention, dtype) for dtype in ("float32", "float64")
                         for backend, convention in (("scratch", "torch"), ("torch", "torch"),
                                                     ("scratch", "keras"), ("keras", "keras"))}
    assert {len(loss) for loss in runs.values()} == {curves["steps"]} and curves["steps"] > 1
    for dtype in ("float32", "float64"):
        # the first step's loss is computed before any update: every backend from the same start
        firsts = [loss[0] for (_, _, d), loss in runs.items() if d == dtype]
        assert np.ptp(firsts) <= 1e-5 * firsts[0]
    for check in curves["checks"]:
        twin = check["pair"].removesuffix(" vs scratch")
        convention = "torch" if check["config"] == "adam-torch" else "keras"
        engine = np.array(runs["scratch", convention, check["dtype"]])
        theirs = np.array(runs[twin, convention, check["dtype"]])
        # curve error: |Δloss| / max(|loss|, floor) per step, so at most the plain relative one
        plain = np.max(np.abs(theirs - engine) / np.abs(engine))
        assert 0 <= check["curve_rel_error"] <= plain * (1 + 1e-12), check["pair"]
        assert (check["curve_rel_error"] == 0) == (plain == 0)


def findings_of(findings, finding):
    return {(r["case"], r["quantity"]): r for r in findings["rows"] if r["finding"] == finding}


@pytest.mark.slow
def test_each_convention_finding_is_measured_with_its_effect(findings):
    assert findings["model"] == MODEL
    padding = findings_of(findings, "padding")
    (symmetric,) = [r for (case, quantity), r in padding.items()
                    if case.startswith("stride 2") and quantity.startswith("Z1")]
    assert "(2, 2, 2, 2)" in symmetric["case"] and "(1, 2, 1, 2)" in symmetric["case"]
    assert symmetric["effect"] == "moves" and symmetric["rel_error"] > 1e-3
    (twin,) = [r for r in padding.values() if r["evidence"] == "torch twin"]
    assert twin["effect"] in ("rounding", "bit-identical")

    flatten = findings_of(findings, "flatten")
    unpermuted = [r for (case, _), r in flatten.items() if "as they are" in case]
    permuted = [r for (case, _), r in flatten.items() if "permuted" in case]
    assert len(unpermuted) == len(permuted) == 2
    assert all(r["effect"] == "moves" for r in unpermuted)
    assert all(r["effect"] in ("rounding", "bit-identical") for r in permuted)

    batchnorm = findings["rows"]
    by = {(r["case"].split(",")[0], r["quantity"]): r for r in batchnorm if r["finding"] == "batchnorm"}
    assert by["biased running variance instead of unbiased", "running mean"]["effect"] == "bit-identical"
    assert by["biased running variance instead of unbiased", "running variance"]["effect"] == "moves"
    assert by["ρ 0.99 instead of 0.9", "inference output"]["effect"] == "moves"
    assert by["ε 0.001 instead of 1e-05", "running mean"]["effect"] == "moves"
    twins = [r for r in batchnorm if r["finding"] == "batchnorm" and r["evidence"].endswith("twin")]
    assert {r["evidence"] for r in twins} == {"torch twin", "keras twin"}
    assert all(r["effect"] in ("rounding", "bit-identical") for r in twins)

    layout = findings_of(findings, "kernel layout")
    assert all(r["effect"] == "moves" for (case, _), r in layout.items()
               if "reshaped" in case or "swapped" in case)
    assert all(r["effect"] == "bit-identical" for (case, _), r in layout.items() if "correct inverse" in case)
    (keras,) = [r for r in layout.values() if r["evidence"] == "keras twin"]
    assert keras["effect"] in ("rounding", "bit-identical")

    blocks = findings_blocks(findings)
    for finding in ("padding", "flatten", "batchnorm", "kernel layout"):
        shown = table(blocks, f"{MODEL}-finding-{finding.replace(' ', '-')}")
        these = [r for r in findings["rows"] if r["finding"] == finding]
        assert [line[-1] for line in shown.rows] == [r["effect"] for r in these]
        assert [line[3] for line in shown.rows] == [fmt_err(r["rel_error"]) for r in these]


@pytest.mark.parametrize(("error", "dtype", "want"), [
    (0.0, "float64", "bit-identical"), (5e-14, "float64", "rounding"), (2e-13, "float64", "moves"),
    (None, "float64", "moves"), (5e-6, "float32", "rounding"), (2e-5, "float32", "moves")])
def test_effect_names_identical_rounding_and_moves(error, dtype, want):
    assert cnn_findings.effect(error, dtype) == want


@pytest.mark.deliberate_mismatch
def test_a_keras_kernel_reshaped_instead_of_transposed_fails_the_section(monkeypatch):
    """A deliberately wrong weight layout in the Keras twin (HWIO kernels reshaped from OIHW, the
    mutant ``keras-kernel-without-transpose``): its rows fail, the model's verdict and the
    report's say FAIL, the parity table shows the failing quantities, and the layout finding's
    twin row moves."""
    from reports.verdict.report import report_verdict
    from twins import keras_layers

    right = keras_layers.Parameter.to_keras

    def reshaped(self, array):
        if np.ndim(array) == 4:
            return np.ascontiguousarray(array).reshape(self.variable.shape)
        return right(self, array)

    monkeypatch.setattr(keras_layers.Parameter, "to_keras", reshaped)
    ctx = Context(backends=["scratch", "keras"])
    settings = dataclasses.replace(quick_settings("parity"), dtypes=("float64",))
    entry = scenario_parity.run(ctx, MODEL, settings)
    check_against(PARITY, entry, "results.json parity[0]")
    failing = [r for r in entry["rows"] if not r["ok"]]
    assert failing and {"Z1", "dW1"} <= {r["quantity"] for r in failing}
    results = results_with(entry)
    verdict = model_verdict(results, MODEL)
    assert not verdict["ok"] and verdict["failed"] == len(failing)
    assert verdict["comparisons"] == len(entry["rows"])
    assert verdict["line"].startswith(
        f"{MODEL}: FAIL — {len(failing)} of {verdict['comparisons']} comparisons exceed tolerance: "
        f"{MODEL} float64 keras vs scratch layer ")
    blocks = parity_blocks(results)
    assert blocks[0] == f"Model verdict: {verdict['line']}."
    shown = table(blocks, f"parity-{MODEL}-float64")
    for quantity in ("Z1", "dW1"):
        (line,) = [r for r in shown.rows if r[0] == quantity]
        assert line[-1].startswith("FAIL: keras vs scratch (passes at "), line
        assert shown.classes[shown.rows.index(line)][-1] == "fail"
    assert sum(line[-1].startswith("FAIL") for line in shown.rows) == len(failing)
    failures = table(blocks, f"parity-failures-{MODEL}")
    assert len(failures.rows) == len(failing) and all(r[3] == COMMAND for r in failures.rows)
    whole = dict(results, variants={"rows": []})
    assert report_verdict(whole)["line"].startswith("verdict: FAIL")
    x = ctx.mnist("float64").x_train[:2].reshape(2, 1, 28, 28)
    (twin_row,) = [r for r in cnn_findings.kernel_layout(ctx, x, MODEL) if r["evidence"] == "keras twin"]
    assert twin_row["effect"] == "moves"


@pytest.mark.slow
def test_a_failing_training_check_fails_the_model_with_its_step(parity, curves):
    broken = copy.deepcopy(curves)
    check = next(c for c in broken["checks"] if (c["dtype"], c["pair"]) == ("float32", "torch vs scratch"))
    check["step_update"].update(error=13.2, ok=False)               # 1.65× the 8-ulp bound
    check.update(steps_ok=False, ok=False)
    verdict = model_verdict(results_with(parity, broken), MODEL)
    assert verdict["failed"] == 1 and verdict["line"].endswith(
        f"{MODEL} float32 adam-torch torch vs scratch per-step update {check['step_update']['quantity']} "
        f"at step {check['step_update']['step']} (13 ulp, 1.65× the bound 8 ulp)")
    blocks = curves_blocks(results_with(parity, broken))
    statuses = [r[-1] for r in table(blocks, f"curve-checks-{MODEL}").rows]
    assert statuses.count("FAIL: update passes at 14 ulp") == 1 and statuses.count("ok") == len(statuses) - 1
    failures = table(blocks, f"curve-failures-{MODEL}")
    assert len(failures.rows) == 1 and failures.rows[0][2:] == ["14 ulp", COMMAND]


@pytest.mark.slow
def test_a_rerouted_max_pool_tie_is_said_in_the_section(curves):
    """A check entry's notes (``judge.pool_ties``, via ``curves.check_entry``) reach the page;
    without notes the sentence is absent."""
    plain = copy.deepcopy(curves)
    for c in plain["checks"]:
        c.update(notes=[], ties=[])
    assert not any("Max-pool ties" in b for b in curves_blocks(results_with(curves=plain))
                   if isinstance(b, str))
    noted = copy.deepcopy(plain)
    note = "step 5: compared with the reference's backward routed as the actual's: layer 4 (max-pool): …"
    noted["checks"][0]["notes"] = [note]
    check_against(CURVES, noted, "results.json curves[0]")
    (sentence,) = [b for b in curves_blocks(results_with(curves=noted))
                   if isinstance(b, str) and "Max-pool ties" in b]
    assert note in sentence and noted["checks"][0]["pair"] in sentence
    tied = copy.deepcopy(plain)                     # with the entries as data: a capped table instead
    tie = {"step": 5, "layer": 4, "windows": 3, "window": [0, 2, 1, 1], "reference": [0.5, 0.5],
           "actual": [0.5, float(np.nextafter(np.float32(0.5), np.float32(1)))], "gap_ulp": [0.0, 1.0]}
    tied["checks"][0].update(notes=[note] * 8, ties=[dict(tie, step=step) for step in range(8)])
    check_against(CURVES, tied, "results.json curves[0]")
    blocks = curves_blocks(results_with(curves=tied))
    assert len(table(blocks, f"ties-{MODEL}").rows) == TIES_SHOWN
    assert not any(note in b for b in blocks if isinstance(b, str)), "the long text gives way to the table"


# --- report --bench with a lenet5 file: the general bench section -------------------------------

def cnn_bench() -> dict:
    """A ``bench --model lenet5`` file with stand-in timings (a real run is ``test_bench.py``'s,
    under -m slow): the same shape as any bench file, with the engine's profile."""
    def timing(median_s, ratio_to_scratch, ratio_to_fastest):
        return {"median_s": median_s, "q1_s": 0.95 * median_s, "q3_s": 1.05 * median_s,
                "ratio_to_scratch": ratio_to_scratch, "ratio_to_fastest": ratio_to_fastest, "gflops": 5.0,
                "percent_of_peak": 10.0}

    return {"format": "backprop-parity-bench/2", "threads": 1, "settle_s": 0.25,
            "frameworks": {"torch": "threads 1"}, "blas": [], "peak_gflops": {"float32": {"numpy": 50.0}},
            "specs": {MODEL: catalog.spec(MODEL).to_dict()},
            "rows": [{"model": MODEL, "batch": 64, "dtype": "float32", "optimizer": "adam",
                      "flops": 40_000_000,
                      "backends": {"scratch": timing(0.008, 1.0, 2.0), "torch": timing(0.004, 0.5, 1.0)},
                      "profile": {"engine_profile_s": {"conv1 im2col": 0.002, "step": 0.008},
                                  "im2col": [{"layer": 1, "rows": 50176, "cols": 25, "bytes": 5017600}],
                                  "engine_step_tracemalloc_peak_bytes": 9000000}}]}


def test_a_cnn_bench_file_renders_through_the_general_bench_section(tmp_path):
    from reports.cli.report import load_benches

    bench = cnn_bench()
    validate_bench(bench, "cnn.json")
    blocks = file_blocks(bench, {f"bench-{MODEL}": f"bench-{MODEL}.png"})
    rows = table(blocks, f"bench-{MODEL}-float32")
    assert rows.columns == ["optimizer", "batch", "scratch ms", "torch ms", "torch × scratch", "fastest",
                            "scratch × fastest", "scratch GFLOP/s", "scratch % of GEMM peak"]
    assert rows.rows == [["adam", "64", "8.000", "4.000", "0.50", "torch", "2.00", "5.0", "10.0"]]
    assert table(blocks, f"bench-profile-{MODEL}").rows == [["conv1 im2col", "2.000 (25.0 %)"],
                                                             ["step", "8.000 (100.0 %)"]]
    path = tmp_path / "cnn.json"
    path.write_text(json.dumps(bench))
    assert load_benches([path]) == [bench]
    with pytest.raises(DataError, match="a second bench file of model 'lenet5'"):
        load_benches([path, path])
    del bench["rows"][0]["backends"]["scratch"]
    with pytest.raises(DataError, match=r"cnn\.json: \(top level\): rows\[0\]: backends: no 'scratch'"):
        validate_bench(bench, "cnn.json")


def test_the_quick_profile_runs_lenet5_as_rows_of_the_general_scenarios():
    """lenet5 is a row of each model scenario (not a copy), in both dtypes, with the two Adam
    conventions; re-pointing the profile's model slot at it keeps one row per (scenario, model)."""
    rows = {(r.scenario, r.model): r.settings for r in PROFILES["quick"].resolved()}
    assert {("parity", MODEL), ("curves", MODEL), ("divergence", MODEL), ("findings", MODEL)} <= set(rows)
    assert rows["parity", MODEL].dtypes == rows["curves", MODEL].dtypes == ("float32", "float64")
    assert rows["curves", MODEL].optimizers == ("adam-torch", "adam-keras")
    keys = [(r.scenario, r.model) for r in dataclasses.replace(PROFILES["quick"], model=MODEL).resolved()]
    assert len(keys) == len(set(keys)) and ("explain", MODEL) in keys
