"""Framework hygiene for the parity tests: every flag is set in ``twins.hygiene``, once,
before torch or TensorFlow is imported."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import largest_errors
import pytest

from judge.parity import add_observer
from twins.hygiene import configure_frameworks

SETTINGS = configure_frameworks()

_RECORDING = [True]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _RECORDING[0] = item.get_closest_marker("deliberate_mismatch") is None
    try:
        return (yield)
    finally:
        _RECORDING[0] = True


def _record(dtype, comparisons):
    """Every comparison into the closing table (``largest_errors``, printed by the root conftest)."""
    if _RECORDING[0]:
        largest_errors.record(dtype, comparisons)


add_observer(_record)


def pytest_report_header(config):
    return [f"frameworks: {name}: {value}" for name, value in SETTINGS.items()]


@pytest.fixture
def tiny_leaks(monkeypatch):
    """The study's leaks experiments at a tiny size wherever a test builds the study's data (the
    page, the report's explain scenario): they do not depend on the model, and
    ``test_study_leaks.py`` tests them at their own size."""
    from reports.study import page
    from reports.study.leaks import LeakSettings, leaks_data

    tiny = LeakSettings(batch=8, depth=4, width=8, dead_width=8, dead_steps=2, dead_every=1,
                        explode_depth=3, explode_steps=2)
    monkeypatch.setattr(page, "leaks_data", lambda settings=None: leaks_data(tiny))


@pytest.fixture
def repro(request, global_seed) -> str:
    """The one command that reproduces the running test."""
    return f'pytest "{request.node.nodeid}" --seed {global_seed}'


@pytest.fixture(scope="session")
def bench_run(tmp_path_factory) -> tuple[Path, str]:
    """One real ``backprop-parity bench --json`` run on the smallest grid (batch 64, float32, SGD,
    2 rounds, 1 thread, a 256² GEMM peak), shared by the bench and report tests: (the JSON file,
    what it printed)."""
    import contextlib
    import io

    pytest.importorskip("threadpoolctl")
    from reports.cli.main import main

    path = tmp_path_factory.mktemp("bench") / "bench.json"
    torch = importlib.import_module("torch") if importlib.util.find_spec("torch") else None
    threads = torch.get_num_threads() if torch else None
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            code = main(["bench", "--batches", "64", "--rounds", "2", "--dtypes", "float32",
                         "--optimizers", "sgd", "--threads", "1", "--peak-size", "256", "--settle", "0",
                         "--json", str(path)])
    finally:
        if torch:
            torch.set_num_threads(threads)             # the CLI is one process; the suite goes on
    assert code == 0
    return path, printed.getvalue()
