"""The benchmark's arithmetic and a tiny end-to-end run (no timing is asserted: timings are
figures to read, not pass/fail)."""

from __future__ import annotations

import json

import pytest

from reports.bench import step_flops, time_interleaved
from reports.cli import main


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


def test_bench_cli_tiny_grid_writes_every_backend(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    import torch

    threads = torch.get_num_threads()
    out = tmp_path / "bench.json"
    try:
        code = main(["bench", "--batches", "8", "--dtypes", "float32", "--optimizers", "sgd",
                     "--rounds", "2", "--threads", "1", "--json", str(out)])
    finally:
        torch.set_num_threads(threads)                 # the CLI is one process; the suite goes on
    assert code == 0
    results = json.loads(out.read_text())
    (row,) = results["grid"]
    assert set(row["backends"]) == {"scratch", "torch", "tf.function", "keras"}
    assert row["backends"]["scratch"]["ratio_to_scratch"] == 1.0
    assert "scratch" in capsys.readouterr().out
