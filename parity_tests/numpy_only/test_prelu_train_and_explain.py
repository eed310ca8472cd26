"""A PReLU spec through the commands that run on the NumPy engine alone: ``train --spec`` saves
its slope α by name, and ``explain --weights`` walks the saved model's forward and backward
passes, one row per intermediate, the slope's gradient dα a row of its own (the frameworks hidden,
as on a NumPy-only install).
The commands pass each layer's named tensors, never a (W, b) pair, which a PReLU does not hold."""

from __future__ import annotations

import json

import numpy as np
import pytest

import reports.explain.walk
import twins.hygiene
from reports.cli.exit_codes import EXIT_OK
from reports.cli.main import main
from scratch.layer_specs import DenseSpec, PReLUSpec
from scratch.spec import ModelSpec, OptimizerSpec
from scratch.weights import load_weights

# XOR through a dense layer, a per-unit learned slope and a sigmoid output
SPEC = ModelSpec(inputs=2, layers=(DenseSpec(4, "identity"), PReLUSpec("per_channel", 0.25),
                                   DenseSpec(1, "sigmoid")),
                 loss="bce", init="glorot_uniform", epochs=40, seed=0, dtype="float64",
                 optimizer=OptimizerSpec.framework_default("adam", "torch", learning_rate=0.05))


@pytest.fixture
def numpy_only(monkeypatch):
    """Every framework looks uninstalled to ``explain``, and none is imported."""
    monkeypatch.setattr(reports.explain.walk, "available_backends", lambda: ["scratch"])
    monkeypatch.setattr(twins.hygiene, "configure_frameworks", lambda threads=None: {})


def test_train_then_explain_a_prelu_spec(tmp_path, capsys, numpy_only):
    spec_file, weights = tmp_path / "prelu.json", tmp_path / "prelu.safetensors"
    spec_file.write_text(SPEC.to_json(), encoding="utf-8")
    code = main(["train", "--spec", str(spec_file), "--dataset", "xor", "--save", str(weights), "-q"])
    assert code == EXIT_OK, capsys.readouterr()
    loaded = load_weights(weights)
    assert loaded.spec == SPEC
    alpha = loaded.tensors[1]["alpha"]
    assert alpha.shape == (4,) and not np.all(alpha == 0.25), "the slopes were trained and saved"

    rows_file = tmp_path / "explain.json"
    code = main(["explain", "--weights", str(weights), "--batch", "4", "--json", str(rows_file)])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    rows = {row["name"]: row for row in json.loads(rows_file.read_text(encoding="utf-8"))["explain"]}
    assert list(rows) == ["Z1", "A1", "Z2", "A2", "Z3", "A3",  # forward, then the backward pass
                          "dZ3", "dW3", "db3", "dA2", "dZ2", "dalpha2", "dA1", "dZ1", "dW1", "db1"]
    slope = rows["dalpha2"]
    assert slope["quantity"] == "dL/dalpha_2" and slope["shape"] == "(4,)"
    assert slope["where"].startswith("PReLU.differentiate"), slope["where"]
    assert slope["scratch"].startswith("dalpha ="), slope["scratch"]
    assert slope["torch_nodes"] == "torch not installed" and slope["ok"] is None
    assert "dalpha2" in out and "dα = Σ_shared dZ ⊙ min(0, X)" in out
