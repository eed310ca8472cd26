"""Tests of the ``backprop-parity`` command line (``reports.cli.main``), NumPy only.

``main([...])`` runs in-process; its stdout/stderr are read with ``capsys``. Every project error
must come out as one ``error: ...`` line on stderr with exit code 2, before any file is written.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reports.cli import model_source
from reports.cli import train as cli_train
from reports.cli.main import main
from scratch.datasets import xor
from scratch.errors import SpecError
from scratch.model import load_model
from scratch.spec import ModelSpec, OptimizerSpec

ROOT = Path(__file__).resolve().parents[2]


def _summary(out: str) -> dict[str, str]:
    """The summary lines ``name  value`` as {name: value}."""
    rows = {}
    for line in out.strip().splitlines():
        name, _, value = line.partition("  ")
        rows[name.strip()] = value.strip()
    return rows


def _strict_json(path: Path):
    def refuse(constant):
        raise AssertionError(f"{path}: non-standard JSON constant {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def _run_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_xor_reaches_100_percent_and_saves_the_asked_spec(tmp_path, capsys, global_seed):
    weights, history = tmp_path / "out" / "xor.safetensors", tmp_path / "xor.json"
    code = main(["train", "--dataset", "xor", "--layers", "2,4,1", "--hidden", "tanh",
                 "--output", "sigmoid", "--loss", "bce", "--init", "glorot_uniform",
                 "--optimizer", "sgd", "--lr", "1.0", "--batch-size", "full", "--epochs", "300",
                 "--seed", str(global_seed), "--dtype", "float64",
                 "--save", str(weights), "--json", str(history)])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = _summary(out)
    assert summary["train acc"] == "100.00 %"
    assert summary["test acc"] == "n/a"
    assert summary["steps"] == "300"

    expected = ModelSpec(layer_sizes=(2, 4, 1), hidden_activation="tanh", output_activation="sigmoid",
                         loss="bce", init="glorot_uniform",
                         optimizer=OptimizerSpec(name="sgd", convention="torch", learning_rate=1.0),
                         batch_size=None, epochs=300, seed=global_seed, dtype="float64")
    model = load_model(weights)
    assert model.spec == expected
    x, y = xor()
    np.testing.assert_array_equal(model.predict(x), y)

    document = _strict_json(history)
    assert document["spec"] == expected.to_dict()
    assert len(document["history"]["step_loss"]) == 300
    assert document["final"]["train_accuracy"] == 1.0
    assert document["final"]["test_accuracy"] is None


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_xor_defaults_reach_100_percent(capsys, global_seed, seed):
    assert main(["train", "--dataset", "xor", "--seed", str(global_seed + seed)]) == 0
    assert _summary(capsys.readouterr().out)["train acc"] == "100.00 %"


def test_spirals_quick_run(tmp_path, capsys, global_seed):
    history = tmp_path / "spirals.json"
    code = main(["train", "--dataset", "spirals", "--epochs", "60", "--batch-size", "100",
                 "--dtype", "float32", "--seed", str(global_seed), "--json", str(history)])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = _summary(out)
    assert summary["data"] == "spirals: 400 train, 200 test"
    assert summary["steps"] == "240"                      # 60 epochs x 4 batches of 100
    final = _strict_json(history)["final"]
    assert final["steps"] == 240
    assert final["test_accuracy"] > 0.8, summary
    assert "float32" in summary["spec"]


def test_spec_file_with_overrides(tmp_path, capsys):
    spec_file, weights = tmp_path / "spec.json", tmp_path / "w.safetensors"
    base = ModelSpec(layer_sizes=(2, 8, 2), hidden_activation="tanh", output_activation="softmax",
                     loss="cce", init="lecun_normal",
                     optimizer=OptimizerSpec(name="adam", learning_rate=0.05), epochs=100, seed=1)
    spec_file.write_text(base.to_json(), encoding="utf-8")
    code = main(["train", "--dataset", "xor", "--spec", str(spec_file), "--epochs", "150",
                 "--seed", "4", "--convention", "keras", "--save", str(weights), "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    # Flags win; the rest comes from the file; a new convention takes that framework's
    # epsilon but keeps the file's learning rate.
    expected = base.replace(epochs=150, seed=4, optimizer=OptimizerSpec.framework_default(
        "adam", "keras", learning_rate=0.05))
    assert load_model(weights).spec == expected
    assert _summary(out)["train acc"] == "100.00 %"


@pytest.mark.parametrize(
    ("base", "flags", "expected"),
    [
        (("adam", "torch", 0.05), dict(convention="keras"),
         OptimizerSpec.framework_default("adam", "keras", learning_rate=0.05)),
        (("sgd", "torch", 1.0), dict(name="momentum"),
         OptimizerSpec.framework_default("momentum", "torch")),
        (("sgd", "torch", 1.0), dict(name="rmsprop", learning_rate=0.01, momentum=0.5),
         OptimizerSpec.framework_default("rmsprop", "torch", learning_rate=0.01, momentum=0.5)),
        (("adam", "keras", 0.01), dict(learning_rate=0.2),
         OptimizerSpec.framework_default("adam", "keras", learning_rate=0.2)),
        (("adam", "torch", 0.01), dict(weight_decay=0.05),
         OptimizerSpec.framework_default("adam", "torch", learning_rate=0.01, weight_decay=0.05)),
        (("adam", "keras", 0.01), dict(weight_decay=0.05),
         OptimizerSpec.framework_default("adam", "keras", learning_rate=0.01, weight_decay=0.05,
                                         decoupled_decay=True)),
        (("adam", "torch", 0.01), dict(weight_decay=0.05, decay_form="decoupled"),
         OptimizerSpec.framework_default("adam", "torch", learning_rate=0.01, weight_decay=0.05,
                                         decoupled_decay=True)),
    ],
    ids=["convention-keeps-lr", "new-name-framework-defaults", "explicit-flags-win", "lr-only",
         "torch-decays-coupled", "keras-decays-decoupled", "decay-form-given"],
)
def test_optimizer_flags(base, flags, expected):
    name, convention, lr = base
    start = OptimizerSpec.framework_default(name, convention, learning_rate=lr)
    assert model_source.optimizer_spec(start, **flags) == expected


def test_weight_decay_carries_over_a_new_optimizer_in_its_form():
    start = OptimizerSpec.framework_default("adam", "torch", weight_decay=0.05, decoupled_decay=True)
    moved = model_source.optimizer_spec(start, name="rmsprop")
    assert (moved.name, moved.weight_decay, moved.decoupled_decay) == ("rmsprop", 0.05, True)
    assert not model_source.optimizer_spec(start, weight_decay=0.0).decoupled_decay


def test_a_decoupled_form_without_a_decay_is_refused():
    with pytest.raises(SpecError, match="--decay-form decoupled: the spec decays nothing"):
        model_source.optimizer_spec(OptimizerSpec(), decay_form="decoupled")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"layer_sizes": [2, 4, 1], "loss": "bce"', "malformed JSON"),
        ('{"layer_sizes": [2, 4, 1], "colour": "red"}', "spec field 'colour': unknown field"),
        ('{"layer_sizes": [2, 4, 1], "loss": "hinge"}', "spec field 'loss': unknown value 'hinge'"),
        ('[2, 4, 1]', "expected a JSON object"),
    ],
    ids=["malformed", "unknown-field", "bad-value", "not-an-object"],
)
def test_bad_spec_json_is_one_error_line(tmp_path, capsys, content, message):
    spec_file, weights = tmp_path / "spec.json", tmp_path / "w.safetensors"
    spec_file.write_text(content, encoding="utf-8")
    code = main(["train", "--dataset", "xor", "--spec", str(spec_file), "--save", str(weights)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0] and str(spec_file) in lines[0]
    assert not weights.exists()


def test_missing_spec_file(tmp_path, capsys):
    assert main(["train", "--spec", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cannot read" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("dataset", "layers", "message"),
    [
        ("xor", "3,4,1", "the input layer has 3 units but dataset 'xor' has 2 features"),
        ("xor", "2,4,3", "the output layer has 3 units but dataset 'xor' has 2 classes"),
        ("spirals", "2,8,4", "the output layer has 4 units but dataset 'spirals' has 2 classes"),
        ("mnist", "784,16,9", "the output layer has 9 units but dataset 'mnist' has 10 classes"),
    ],
    ids=["xor-input", "xor-output", "spirals-output", "mnist-output"],
)
def test_layers_must_fit_the_dataset(tmp_path, capsys, dataset, layers, message):
    weights = tmp_path / "w.safetensors"
    code = main(["train", "--dataset", dataset, "--layers", layers, "--save", str(weights)])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: spec field 'layer_sizes': {message}"), err
    assert "Traceback" not in err and out == ""
    assert not weights.exists()


@pytest.mark.parametrize(
    "argv",
    [["fly"], ["train", "--limit", "0"], ["train", "--layers", "2,x"], ["train", "--dtype", "int8"],
     ["train", "--batch-size", "many"]],
    ids=["unknown-command", "limit-0", "bad-layers", "bad-dtype", "bad-batch"],
)
def test_usage_errors_exit_2(capsys, argv):
    """(A bare `backprop-parity` prints the help and exits 0:
    test_cli_signals_verdicts_and_output_paths.py.)"""
    assert main(argv) == 2
    assert "usage: backprop-parity" in capsys.readouterr().err


def test_spec_errors_from_flags_exit_2(capsys):
    assert main(["train", "--dataset", "xor", "--momentum", "0.9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: spec field 'optimizer.momentum'") and err.count("\n") == 1


def test_mnist_limit_quick_run(monkeypatch, capsys):
    monkeypatch.delenv("BACKPROP_PARITY_DATA", raising=False)      # the bundled copy
    code = main(["train", "--dataset", "mnist", "--limit", "500", "--epochs", "1",
                 "--dtype", "float32"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = _summary(out)
    assert summary["data"] == "mnist: 500 train, 10000 test"
    assert summary["steps"] == "8"                         # ceil(500 / 64)
    assert summary["spec"].startswith("784-64-32-10 relu/softmax cce he_normal adam[torch] lr=0.001")
    assert float(summary["test acc"].rstrip(" %")) > 20.0


def test_progress_bar_only_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(cli_train, "_isatty", lambda stream: True)
    monkeypatch.setattr(cli_train._ProgressBar, "MININTERVAL_S", 0.0)   # draw every step
    assert main(["train", "--dataset", "xor", "--epochs", "50"]) == 0
    assert "loss=" in capsys.readouterr().err
    assert main(["train", "--dataset", "xor", "--epochs", "50", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_python_m_reports_help():
    result = subprocess.run([sys.executable, "-m", "reports", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
    assert "usage: backprop-parity" in result.stdout and "train" in result.stdout


def test_cli_never_imports_a_framework():
    result = _run_python(
        "import sys\n"
        "from reports.cli.main import main\n"
        "assert main(['--help']) == 0\n"
        "assert 'numpy' not in sys.modules, 'top-level --help imported numpy'\n"
        "assert main(['train', '--dataset', 'xor', '--epochs', '5', '-q']) == 0\n"
        "heavy = sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax', 'matplotlib')\n"
        "               if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_lenet5_trains_on_mnist_maps_and_saves_its_stack(tmp_path, capsys):
    """`train --model lenet5`: the bundled MNIST rows reshaped to 1×28×28 maps, the layer list in
    the summary, and a weight file that loads back to the same stack (OIHW kernels). Slow: ~6 s,
    most of it the inference pass over the 10 000 test digits."""
    path = tmp_path / "lenet5.safetensors"
    assert main(["train", "--model", "lenet5", "--limit", "256", "--epochs", "1", "--save", str(path),
                 "-q"]) == 0
    out = capsys.readouterr().out
    assert "1×28×28 → conv2d(6, 5×5, same, relu) → max_pool2d(2)" in out and "steps       4" in out
    model = load_model(path)
    assert model.spec.input_shape == (1, 28, 28) and model.weights[0].shape == (6, 1, 5, 5)
    assert all(np.all(np.isfinite(p)) for p in model.parameters)
