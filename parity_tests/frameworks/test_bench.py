"""The benchmark's arithmetic, a tiny end-to-end run (no timing is asserted: timings are
figures to read, not pass/fail), and the optional JAX step checked against the NumPy engine."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from reports.bench.timing import step_flops, time_interleaved


def test_step_flops_counts_forward_dw_and_da_products():
    from scratch.layer_specs import Conv2DSpec, DenseSpec, FlattenSpec, LSTMSpec
    from scratch.spec import ModelSpec

    # layer 1 (3→4): forward + dW = 2 products; layer 2 (4→2): forward + dW + dA1 = 3 products
    assert step_flops(ModelSpec((3, 4, 2)), batch=5) == 2 * 5 * 3 * 4 * 2 + 2 * 5 * 4 * 2 * 3
    # conv 2@3×3 on 1×5×5 → 2×3×3 (9 positions, kernel 2·1·3·3), flatten, dense 18→4
    conv = ModelSpec(inputs=(1, 5, 5), layers=(Conv2DSpec(2, 3), FlattenSpec("channels_first"),
                                               DenseSpec(4, "softmax")))
    assert step_flops(conv, batch=5) == 2 * 5 * 9 * 18 * 2 + 2 * 5 * 18 * 4 * 3
    # an LSTM of 3 units on 6 steps of 2 features: W_ih (12, 2) at each step, forward + dW (the input
    # needs no gradient); W_hh (12, 3) at each step, forward + dW + the state handed back; dense 3→4
    lstm = ModelSpec(inputs=(6, 2), layers=(LSTMSpec(3, return_sequences=False), DenseSpec(4, "softmax")))
    assert step_flops(lstm, batch=5) == 2 * 5 * 6 * (24 * 2 + 36 * 3) + 2 * 5 * 3 * 4 * 3


def test_time_interleaved_reports_every_step_with_quartiles():
    calls = {"a": 0, "b": 0}

    def make(name):
        def step():
            calls[name] += 1
        return step

    summary = time_interleaved({"a": make("a"), "b": make("b")}, rounds=4, min_block=0.0, warmup=1)
    assert set(summary) == {"a", "b"}
    for name, figures in summary.items():
        assert figures["samples"] == 4
        assert figures["q1_s"] <= figures["median_s"] <= figures["q3_s"]
        assert calls[name] >= 1 + 1 + 4


def test_settle_sleeps_before_every_timed_block_and_outside_the_timing(monkeypatch):
    import reports.bench.timing as bench

    events = []
    monkeypatch.setattr(bench.time, "sleep", lambda seconds: events.append(("sleep", seconds)))
    steps = {name: (lambda name=name: events.append(("step", name))) for name in ("a", "b")}
    summary = time_interleaved(steps, rounds=3, min_block=0.0, warmup=1, settle=0.25)
    timed = events[4:]                                   # after warm-up and calibration (2 per step)
    assert timed == [event for _ in range(3) for name in ("a", "b")
                     for event in (("sleep", 0.25), ("step", name))]
    assert all(figures["samples"] == 3 for figures in summary.values())


@pytest.mark.slow                      # a real bench run (~10 s); the report's tests share it
def test_bench_cli_tiny_grid_writes_every_backend(bench_run):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    from reports.schema import BENCH_FORMAT, validate_bench

    path, printed = bench_run
    results = json.loads(path.read_text())
    validate_bench(results, str(path))
    assert results["format"] == BENCH_FORMAT and list(results["specs"]) == ["mnist-default"]
    (row,) = results["rows"]
    point = (row["model"], row["batch"], row["dtype"], row["optimizer"])
    assert point == ("mnist-default", 64, "float32", "sgd")
    assert "profile" not in row and "memory" not in row, "measured only when asked for"
    assert set(row["backends"]) == {"scratch", "plain-numpy", "torch", "tf.function", "keras"} | (
        {"jax"} if importlib.util.find_spec("jax") else set())
    assert ("jax" in results["frameworks"]) == ("jax" in row["backends"]), "its settings are recorded"
    assert row["backends"]["scratch"]["ratio_to_scratch"] == 1.0
    assert min(t["ratio_to_fastest"] for t in row["backends"].values()) == 1.0
    assert "scratch" in printed


def _engine_update_failures(kind, spec, batch, steps, repro, make=None):
    """Run ``kind``'s timed step and the engine's ``steps`` times from the same start on the bench's
    batch; the failed comparisons (losses, then parameters after them, at the spec's tolerances)."""
    from judge.parity import compare_curves, compare_parameters
    from reports.bench.grid import bench_batch
    from reports.bench.steps import make_step

    make = make or make_step
    x, targets, tensors = bench_batch(spec, batch)
    engine = make("scratch", spec, tensors, x, targets)
    timed = make(kind, spec, tensors, x, targets)
    losses = [timed() for _ in range(steps)], [engine() for _ in range(steps)]
    assert all(isinstance(loss, float) for loss in losses[0]), "the step returns a Python float"
    moved = [not np.array_equal(after[name], before[name])
             for after, before in zip(engine.tensors(), tensors, strict=True) for name in before]
    assert all(moved), "the steps move every trainable tensor"
    curve = compare_curves(*losses, spec.dtype)
    desired = type("Engine", (), {"spec": spec, "tensors": staticmethod(engine.tensors)})
    return [c.describe() for c in [curve, *compare_parameters(timed, desired)] if not c.ok]


@pytest.mark.parametrize("optimizer", ["sgd", pytest.param("adam", marks=pytest.mark.slow)])
@pytest.mark.parametrize("kind", ["torch", "tf.function", "jax"])
def test_mlp_bench_step_makes_the_engines_update_in_float64(kind, optimizer, global_seed, repro):
    """Each timed step of the default grid's net, from the engine's start on the bench's own batch
    (the first 64 MNIST training images): the loss of each of 3 steps and the parameters after
    them, within the float64 tolerances (tf.function times Keras-convention Adam, which the
    engine also runs).

    The bench's batch, not N(0, 1) inputs: Adam divides each gradient element by its own size, so
    an element within a few ε (1e-8) of zero turns its rounding (~1e-9 of itself there) into a
    parameter difference. On dense N(0, 1) inputs into 784 units that reached 1.1e-13 (seed 0;
    torch vs scratch 6.8e-14 on the same case); on this batch it stays below 6e-14 for seeds 0-99.
    """
    pytest.importorskip({"torch": "torch", "tf.function": "tensorflow", "jax": "jax"}[kind])
    from reports.bench.grid import point_spec
    from reports.bench.steps import spec_for_kind
    from scratch import catalog

    spec = point_spec(catalog.spec(catalog.DEFAULT_MODEL), 64, "float64", optimizer).replace(seed=global_seed)
    spec = spec_for_kind(kind, spec)                 # what the kind times; the engine runs the same
    failed = _engine_update_failures(kind, spec, 64, 3, repro)
    assert not failed, f"{kind} vs scratch (reference), float64, {optimizer}: {failed}\n  reproduce: {repro}"


@pytest.mark.parametrize("kind", ["torch", "tf.function", "jax"])
def test_cnn_bench_step_makes_the_engines_update(kind, repro):
    """Each timed lenet5 step (its own Adam; dropout layers idle without a mask plan), run once from
    the engine's start on 8 MNIST digits, returns the engine's loss and leaves the engine's
    parameters after its step (float32 tolerances)."""
    pytest.importorskip({"torch": "torch", "tf.function": "tensorflow", "jax": "jax"}[kind])
    from reports.bench.grid import point_spec
    from reports.bench.steps import spec_for_kind
    from scratch import catalog

    spec = spec_for_kind(kind, point_spec(catalog.spec("lenet5"), 8, "float32", "sgd"))
    failed = _engine_update_failures(kind, spec, 8, 1, repro)
    assert not failed, f"{kind} vs scratch, lenet5 bench step: {failed}\n  reproduce: {repro}"


def test_the_bench_step_check_fails_on_a_wrong_update(repro):
    """The check above must fail when a timed step does not make the engine's update: torch's step
    with its learning rate doubled."""
    pytest.importorskip("torch")
    from reports.bench.grid import point_spec
    from reports.bench.steps import make_step
    from scratch import catalog
    from scratch.spec import OptimizerSpec

    def doubled(kind, spec, *rest):
        if kind == "torch":
            doubled_rate = 2 * spec.optimizer.learning_rate
            spec = spec.replace(optimizer=OptimizerSpec("sgd", learning_rate=doubled_rate))
        return make_step(kind, spec, *rest)

    spec = point_spec(catalog.spec(catalog.DEFAULT_MODEL), 64, "float64", "sgd")
    assert _engine_update_failures("torch", spec, 64, 2, repro, make=doubled), "a doubled step is caught"


# -- a model that is not a dense stack (--model lenet5) ------------------------------------------


@pytest.mark.slow
def test_cnn_bench_cli_tiny_run_writes_every_backend(tmp_path):
    """``bench --model lenet5`` on one tiny batch: the same shape as the default model's file — a row
    with every backend that can time it, its ratios and GFLOP/s — plus the engine's profile (every
    conv, pooling and dense part) and im2col's sizes."""
    pytest.importorskip("threadpoolctl")
    import contextlib
    import io

    from reports.bench.steps import available_kinds
    from reports.cli.main import main

    path = tmp_path / "cnn.json"
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    printed, announced = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(announced):
            code = main(["bench", "--model", "lenet5", "--batches", "8", "--rounds", "2", "--threads", "1",
                         "--settle", "0", "--json", str(path)])
    finally:
        torch.set_num_threads(threads)                 # the CLI is one process; the suite goes on
    assert code == 0
    results = json.loads(path.read_text())
    from reports.schema import validate_bench

    validate_bench(results, "cnn.json")                # the report reads it
    assert list(results["specs"]) == ["lenet5"] and results["specs"]["lenet5"]["layers"]
    (row,) = results["rows"]
    assert row["model"] == "lenet5" and row["batch"] == 8
    assert list(row["backends"]) == [k for k in available_kinds() if k not in ("plain-numpy", "keras")]
    assert {"scratch", "torch", "tf.function"} <= set(row["backends"])
    assert min(t["ratio_to_fastest"] for t in row["backends"].values()) == 1.0
    assert row["backends"]["scratch"]["ratio_to_scratch"] == 1.0 and row["flops"] > 0
    assert all(t["gflops"] > 0 and t["percent_of_peak"] > 0 for t in row["backends"].values())
    profile = row["profile"]
    assert {"conv1 im2col", "conv3 col2im (input gradient)", "pool2 backward", "dense6 forward",
            "step"} <= set(profile["engine_profile_s"])
    # P of conv1: 8·28·28 rows × 1·5·5 columns; conv3: 8·10·10 × 6·5·5; float32
    assert [(p["layer"], p["rows"], p["cols"], p["bytes"]) for p in profile["im2col"]] == [
        (1, 8 * 28 * 28, 25, 8 * 28 * 28 * 25 * 4), (3, 8 * 10 * 10, 150, 8 * 10 * 10 * 150 * 4)]
    assert profile["engine_step_tracemalloc_peak_bytes"] > sum(p["bytes"] for p in profile["im2col"])
    assert "--model lenet5" in printed.getvalue()
    assert announced.getvalue().splitlines()[:2] == ["bench: loading the frameworks …",
                                                     "bench: the GEMM peak, float32 …"]
    assert "bench:" not in printed.getvalue(), "progress goes to stderr only"
