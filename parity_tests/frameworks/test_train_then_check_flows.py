"""The README's own flow, end to end (slow): ``train --dataset mnist --save m.safetensors`` then
``check --weights m.safetensors`` must pass for the adaptive optimizers, whose free-running
trajectories part by amplified rounding after a real epoch of training (before the per-step
verdict, ``check`` said FAIL here). ``tools/readme_flows.py`` runs the whole grid (every
optimizer and convention, both dtypes, 1/2/5 epochs)."""

from __future__ import annotations

import pytest

from reports.cli.main import main

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer,convention", [("adam", "torch"), ("rmsprop", "torch"), ("adam", "keras")])
def test_train_then_check_passes(optimizer, convention, dtype, tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    weights = tmp_path / "m.safetensors"
    assert main(["train", "--dataset", "mnist", "--epochs", "1", "--optimizer", optimizer,
                 "--convention", convention, "--dtype", dtype, "--save", str(weights), "--quiet"]) == 0
    capsys.readouterr()
    code = main(["check", "--weights", str(weights), "--json", str(tmp_path / "check.json")])
    out = capsys.readouterr().out
    assert out.startswith("verdict: PASS"), out[:2000]
    assert code == 0
    assert "FAIL" not in out
