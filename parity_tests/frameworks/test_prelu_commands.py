"""A PReLU spec through the commands that run the twins: ``train --backend`` in each framework,
``check --weights`` of the engine's trained file (every pair PASS, the slope's gradient dα a row
of every pair, the slopes compared after each training step) and ``bench --weights`` (each
backend's step timed, the engine's profiled layer by layer). The commands hand each layer's
named tensors to the twins; a PReLU holds no (W, b) pair. Both slopes at z = 0 run: "alpha"
(torch's, Keras refuses it) and "zero" (Keras's, torch refuses it); JAX expresses both."""

from __future__ import annotations

import json

import pytest

from reports.cli.exit_codes import EXIT_OK
from reports.cli.main import main
from scratch.layer_specs import DenseSpec, PReLUSpec
from scratch.spec import ModelSpec, OptimizerSpec
from twins.backends import BACKENDS, available_backends

SPEC = ModelSpec(inputs=2, layers=(DenseSpec(4, "identity"), PReLUSpec("per_channel", 0.25),
                                   DenseSpec(1, "sigmoid")),
                 loss="bce", init="glorot_uniform", epochs=20, seed=0, dtype="float64",
                 optimizer=OptimizerSpec("sgd", learning_rate=0.5))


# the twin that refuses each slope at z = 0 (a skipped pair in ``check``, named with why)
REFUSES = {"alpha": "keras", "zero": "torch"}


def spec_with(slope_at_zero: str) -> ModelSpec:
    prelu = SPEC.layers[1]
    return SPEC.replace(layers=(SPEC.layers[0], PReLUSpec(prelu.slopes, prelu.alpha_init, slope_at_zero),
                                SPEC.layers[2]))


@pytest.fixture(scope="module", params=sorted(REFUSES))
def trained(request, tmp_path_factory):
    """(spec file, the engine's trained weight file, its slope at z = 0)."""
    folder = tmp_path_factory.mktemp("prelu")
    spec_file, weights = folder / "prelu.json", folder / "prelu.safetensors"
    spec_file.write_text(spec_with(request.param).to_json(), encoding="utf-8")
    argv = ["train", "--spec", str(spec_file), "--dataset", "xor", "--save", str(weights), "-q"]
    assert main(argv) == EXIT_OK
    return spec_file, weights, request.param


@pytest.mark.parametrize("backend", [name for name in BACKENDS if name != "scratch"])
def test_train_backend_trains_a_prelu_spec(backend, trained, tmp_path, capsys):
    if backend not in available_backends():
        pytest.skip(f"{backend} not installed")
    spec_file, _, slope_at_zero = trained
    history = tmp_path / "history.json"
    code = main(["train", "--spec", str(spec_file), "--dataset", "xor", "--backend", backend,
                 "--json", str(history), "-q"])
    if backend == REFUSES[slope_at_zero]:
        assert code != EXIT_OK and "slope_at_zero" in capsys.readouterr().err
        return
    assert code == EXIT_OK, capsys.readouterr()
    result = json.loads(history.read_text(encoding="utf-8"))
    assert result["backend"] == backend and len(result["history"]["step_loss"]) == SPEC.epochs


def test_check_of_a_trained_prelu_model_passes_with_its_slope_rows(trained, tmp_path, capsys):
    _, weights, slope_at_zero = trained
    verdict_file = tmp_path / "check.json"
    code = main(["check", "--weights", str(weights), "--batch", "16", "--steps", "2",
                 "--json", str(verdict_file)])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert out.startswith("verdict: PASS"), out
    verdict = json.loads(verdict_file.read_text(encoding="utf-8"))
    assert verdict["ok"] is True and len(verdict["backends"]) >= 2
    refusing = REFUSES[slope_at_zero]
    if refusing in available_backends():
        assert verdict["skipped"][refusing] == "cannot express this spec", verdict["skipped"]
        assert refusing not in verdict["backends"]
    pairs = {row["pair"] for row in verdict["comparisons"]}
    slope_rows = {row["pair"] for row in verdict["comparisons"]
                  if row["quantity"] == "dalpha2" and row["kind"] == "gradient"}
    assert slope_rows == pairs, "every pair compares the slope's gradient"
    trained_pairs = {training["pair"] for training in verdict["training"]}
    assert trained_pairs, "at least one pair trained (plain SGD: every twin trains it)"


def test_bench_times_a_prelu_model_in_every_backend(trained, tmp_path, capsys):
    _, weights, slope_at_zero = trained
    results_file = tmp_path / "bench.json"
    code = main(["bench", "--weights", str(weights), "--batches", "8", "--rounds", "1", "--settle", "0",
                 "--peak-size", "64", "--threads", "1", "--json", str(results_file)])
    assert code == EXIT_OK, capsys.readouterr()
    (row,) = json.loads(results_file.read_text(encoding="utf-8"))["rows"]   # a stack that is not dense
    expected = {"scratch"} | {kind for kind, backend in (("torch", "torch"), ("tf.function", "keras"),
                                                           ("jax", "jax")) if backend in available_backends()
                                    and backend != REFUSES[slope_at_zero]}
    assert set(row["backends"]) == expected, ("every installed backend but keras's Sequential (dense only) "
                                              "and the twin that refuses the slope at z = 0")
    assert "cannot express this spec, skipped" in capsys.readouterr().err
    parts = row["profile"]["engine_profile_s"]
    assert any(part.startswith("prelu2") for part in parts), parts
