"""The benchmark's arithmetic, a tiny end-to-end run (no timing is asserted: timings are
figures to read, not pass/fail), and the optional JAX step checked against the NumPy engine."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from reports.bench.timing import step_flops, time_interleaved


def test_step_flops_counts_forward_dw_and_da_products():
    # layer 1 (3→4): forward + dW = 2 products; layer 2 (4→2): forward + dW + dA1 = 3 products
    assert step_flops((3, 4, 2), batch=5) == 2 * 5 * 3 * 4 * 2 + 2 * 5 * 4 * 2 * 3


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
    path, printed = bench_run
    results = json.loads(path.read_text())
    (row,) = results["grid"]
    assert set(row["backends"]) == {"scratch", "plain-numpy", "torch", "tf.function", "keras"} | (
        {"jax"} if importlib.util.find_spec("jax") else set())
    assert ("jax" in results["frameworks"]) == ("jax" in row["backends"]), "its settings are recorded"
    assert row["backends"]["scratch"]["ratio_to_scratch"] == 1.0
    assert "scratch" in printed


@pytest.mark.parametrize("optimizer", ["sgd", pytest.param("adam", marks=pytest.mark.slow)])
def test_jax_step_matches_the_numpy_engine_in_float64(optimizer, global_seed, repro):
    """The bench's JAX step against scratch's MLP and optimizer from the same parameters, on the
    bench's own batch (the first 64 MNIST training images): the loss of each of 3 steps and the
    parameters after them, within the float64 tolerances.

    The bench's batch, not N(0, 1) inputs: Adam divides each gradient element by its own size, so
    an element within a few ε (1e-8) of zero turns its rounding (~1e-9 of itself there) into a
    parameter difference. On dense N(0, 1) inputs into 784 units that reached 1.1e-13 (seed 0;
    torch vs scratch 6.8e-14 on the same case); on this batch it stays below 6e-14 for seeds 0-99.
    """
    pytest.importorskip("jax")
    import dataclasses
    from types import SimpleNamespace

    import numpy as np

    from judge.parity import compare_curves, compare_parameters
    from reports.bench.grid import spec_for
    from reports.bench.steps import make_step
    from scratch.datasets import load_mnist
    from scratch.model import MLP
    from scratch.optimizers import make_optimizer

    spec = dataclasses.replace(spec_for(64, "float64", optimizer, "torch"), seed=global_seed)
    data = load_mnist(dtype=np.float64)
    model = MLP(spec)
    x, targets = np.ascontiguousarray(data.x_train[:64]), model.targets(data.y_train[:64])
    step = make_step("jax", spec, model.weights, model.biases, x, targets)
    update = make_optimizer(spec.optimizer)
    jax_losses = [step() for _ in range(3)]
    scratch_losses = [model.train_step(x, targets, update) for _ in range(3)]
    assert all(isinstance(loss, float) for loss in jax_losses), "the step returns a Python float"

    curve = compare_curves(jax_losses, scratch_losses, "float64")
    scratch = SimpleNamespace(spec=spec, parameters=lambda: (model.weights, model.biases))
    parameters = compare_parameters(step, scratch)
    failed = [c.describe() for c in [curve, *parameters] if not c.ok]
    assert not failed, f"jax vs scratch (reference), float64, {optimizer}: {failed}\n  reproduce: {repro}"


def test_jax_step_refuses_what_the_grid_does_not_use():
    pytest.importorskip("jax")
    from reports.bench.steps import make_step
    from scratch.errors import BackendError
    from scratch.model import MLP
    from scratch.spec import ModelSpec, OptimizerSpec

    for spec in (ModelSpec((4, 3, 2), hidden_activation="tanh"),
                 ModelSpec((4, 3, 2), optimizer=OptimizerSpec.framework_default("adam", "keras")),
                 ModelSpec((4, 3, 2), l2=0.5)):
        model = MLP(spec)
        x = np.zeros((2, 4))
        with pytest.raises(BackendError, match="the jax bench step covers only the grid's spec"):
            make_step("jax", spec, model.weights, model.biases, x, model.targets(np.array([0, 1])))


# -- the CNN step (--model lenet5) ------------------------------------------------------------


@pytest.mark.slow
def test_cnn_bench_cli_tiny_run_writes_every_backend(tmp_path):
    """``bench --model lenet5`` on one tiny batch: a row with every installed backend, ratios to
    the fastest, the engine's profile (every conv, pooling and dense part) and im2col's sizes."""
    pytest.importorskip("threadpoolctl")
    import contextlib
    import io

    from reports.bench import cnn
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
    (row,) = results["cnn"]
    assert row["batch"] == 8 and list(row["backends"]) == cnn.available_kinds()
    assert {"scratch", "torch", "tf.function"} <= set(row["backends"])
    assert min(t["ratio_to_fastest"] for t in row["backends"].values()) == 1.0
    assert {"conv1 im2col", "conv3 col2im (input gradient)", "pool2 backward", "dense6 forward",
            "step"} <= set(row["engine_profile_s"])
    # P of conv1: 8·28·28 rows × 1·5·5 columns; conv3: 8·10·10 × 6·5·5; float32
    assert [(p["layer"], p["rows"], p["cols"], p["bytes"]) for p in row["im2col"]] == [
        (1, 8 * 28 * 28, 25, 8 * 28 * 28 * 25 * 4), (3, 8 * 10 * 10, 150, 8 * 10 * 10 * 150 * 4)]
    assert row["engine_step_tracemalloc_peak_bytes"] > sum(p["bytes"] for p in row["im2col"])
    assert "lenet5 without dropout" in printed.getvalue()
    assert announced.getvalue().splitlines()[:2] == ["bench: loading the frameworks …",
                                                     "bench: timing lenet5, batch 8, in every backend …"]
    assert "bench:" not in printed.getvalue(), "progress goes to stderr only"


@pytest.mark.parametrize("kind", ["torch", "tf.function", "jax"])
def test_cnn_bench_step_makes_the_engines_update(kind, repro):
    """Each timed lenet5 step, run once from the engine's start on 8 MNIST digits, returns the
    engine's loss and leaves the engine's parameters after its SGD step (float32 tolerances)."""
    pytest.importorskip({"torch": "torch", "tf.function": "tensorflow", "jax": "jax"}[kind])
    from judge.parity import compare_curves, compare_parameters
    from reports.bench import cnn

    spec = cnn.spec_for(8)
    x, targets, weights, biases = cnn.batch_data(spec, 8)
    scratch = cnn.make_step("scratch", spec, weights, biases, x, targets)
    timed = cnn.make_step(kind, spec, weights, biases, x, targets)
    losses = [timed()], [scratch()]
    assert isinstance(losses[0][0], float), "the step returns a Python float"
    curve = compare_curves(*losses, spec.dtype)
    desired = type("Engine", (), {"spec": spec, "parameters": staticmethod(scratch.parameters)})
    changed = [not np.array_equal(after, before) for after, before in zip(scratch.parameters()[0], weights,
                                                                          strict=True)]
    assert all(changed), "one SGD step moves every kernel"
    failed = [c.describe() for c in [curve, *compare_parameters(timed, desired)] if not c.ok]
    assert not failed, f"{kind} vs scratch, lenet5 bench step: {failed}\n  reproduce: {repro}"

