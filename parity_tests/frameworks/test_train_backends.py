"""``train --backend NAME``: each framework twin trains a catalog model through its own loop
(``fit(fused=True)``) from the engine's start on the same batches, and prints the same metrics.
XOR's default (full-batch SGD, which every twin trains in the engine's convention) for 30 steps:
the final loss and accuracy of each twin equal the engine's within float64 rounding."""

from __future__ import annotations

import json
import math

import pytest

from reports.cli.exit_codes import EXIT_BACKEND_UNAVAILABLE, EXIT_OK
from reports.cli.main import main

NEEDS = {"torch": "torch", "keras": "tensorflow", "jax": "jax"}


def _train(tmp_path, capsys, backend: str, *extra: str) -> tuple[dict, str]:
    path = tmp_path / f"{backend}.json"
    code = main(["train", "--dataset", "xor", "--epochs", "30", "--backend", backend, "-q",
                 "--json", str(path), *extra])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    return json.loads(path.read_text(encoding="utf-8")), out


@pytest.mark.parametrize("backend", ["torch", "keras", "jax"])
def test_train_backend_matches_the_engines_run(backend, tmp_path, capsys):
    pytest.importorskip(NEEDS[backend])
    engine, engine_out = _train(tmp_path, capsys, "scratch")
    twin, twin_out = _train(tmp_path, capsys, backend)
    assert twin["backend"] == backend and twin["spec"] == engine["spec"]
    assert len(twin["history"]["step_loss"]) == 30
    assert twin["history"]["epochs"] == engine["history"]["epochs"]
    for key in ("train_loss", "train_accuracy"):
        assert math.isclose(twin["final"][key], engine["final"][key], rel_tol=1e-9, abs_tol=1e-12), key
    assert twin["history"]["step_loss"] == pytest.approx(engine["history"]["step_loss"], rel=1e-9)
    labels = [line.split()[0] for line in engine_out.splitlines()]
    assert [line.split()[0] for line in twin_out.splitlines() if not line.startswith("backend")] == labels
    assert f"backend     {backend}" in twin_out


def test_train_backend_not_installed_is_status_3(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "jax" else real(name, *a))
    assert main(["train", "--dataset", "xor", "--backend", "jax"]) == EXIT_BACKEND_UNAVAILABLE
    err = capsys.readouterr().err
    assert err.startswith("error: --backend jax needs jax, which is not installed")
