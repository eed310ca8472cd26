"""``--model NAME`` in ``check`` and ``explain``: the catalog model's spec is what runs (a small
XOR model, so each run takes seconds), and ``check`` names it in its reproduce line."""

from __future__ import annotations

import json

import pytest

from reports.cli.exit_codes import EXIT_OK
from reports.cli.main import main
from scratch import catalog


def test_check_model_runs_its_spec_and_reproduces_with_it(tmp_path, capsys):
    pytest.importorskip("torch")
    path = tmp_path / "check.json"
    code = main(["check", "--model", "xor-default", "--batch", "8", "--steps", "2",
                 "--backends", "scratch,torch", "--json", str(path)])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, out + err
    verdict = json.loads(path.read_text(encoding="utf-8"))
    assert verdict["spec"] == catalog.spec("xor-default").to_dict()
    assert verdict["backends"] == ["scratch", "torch"] and verdict["ok"] is True
    assert "--model xor-default" in verdict["reproduce"]


def test_explain_model_walks_its_spec_with_flags_on_top(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    path = tmp_path / "explain.json"
    code = main(["explain", "--model", "xor-uniform", "--dtype", "float32", "--batch", "4",
                 "--json", str(path)])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, out + err
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["spec"] == catalog.spec("xor-uniform").replace(dtype="float32").to_dict()
    assert document["batch"] == 4
    layers = {row["layer"] for row in document["explain"]}
    assert layers == {1, 2}, "the 2-4-1 net has two layers"


@pytest.mark.slow
def test_check_lenet5_passes_in_every_backend_that_can_train_it(tmp_path, capsys):
    """`check --model lenet5`: the CNN's forward pass and every gradient agree in all four
    backends; training is compared where the twin trains torch-convention Adam (not Keras)."""
    code = main(["check", "--model", "lenet5", "--batch", "16", "--steps", "2",
                 "--json", str(tmp_path / "check.json")])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert out.startswith("verdict: PASS") and "keras vs scratch: training not compared" in out
