"""``backprop-parity compare A B`` on NumPy-only sides (weight files, the NumPy layer protocol):
verdicts, the doctor's line, the shipped NumPy example, and bad input (exit 2, one line)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from judge.parity import Comparison, relative_error
from ports.compare import judge_cancelled
from reports.cli.main import main
from scratch.layer_specs import BatchNormSpec, Conv2DSpec, DenseSpec, FlattenSpec, MaxPool2DSpec
from scratch.model import Network
from scratch.spec import ModelSpec, OptimizerSpec
from scratch.weights import save_tensors

ROOT = Path(__file__).resolve().parents[2]
SPEC = ModelSpec(inputs=(2, 8, 8), layers=(Conv2DSpec(3, 3, padding="same", activation="identity"),
                                           BatchNormSpec(activation="relu"), MaxPool2DSpec(2),
                                           FlattenSpec("channels_last"), DenseSpec(5, "relu"),
                                           DenseSpec(4, "softmax")),
                 optimizer=OptimizerSpec("adam", "torch", learning_rate=0.01), dtype="float64")


@pytest.fixture
def files(tmp_path):
    network = Network(SPEC)
    statistics = [(np.full(3, 0.1), np.full(3, 2.0))]
    a = save_tensors(tmp_path / "a.safetensors", SPEC, network.tensors, statistics)
    flipped = [dict(held) for held in network.tensors]
    flipped[0]["W"] = np.ascontiguousarray(flipped[0]["W"][:, :, ::-1, ::-1])
    b_flip = save_tensors(tmp_path / "b_flip.safetensors", SPEC, flipped, statistics)
    layers = list(SPEC.layers)
    layers[1] = BatchNormSpec(epsilon=1e-3, activation="relu")
    b_eps = save_tensors(tmp_path / "b_eps.safetensors", SPEC.replace(layers=tuple(layers)), network.tensors,
                         statistics)
    other = SPEC.replace(layers=SPEC.layers[:4] + (DenseSpec(4, "softmax"),))
    fresh = Network(other)
    b_other = save_tensors(tmp_path / "b_other.safetensors", other, fresh.tensors, fresh.statistics)
    return {"a": a, "b_flip": b_flip, "b_eps": b_eps, "b_other": b_other, "dir": tmp_path}


def run(capsys, *argv):
    batch = [] if "--data" in argv else ["--batch", "8"]
    status = main(["compare", *map(str, argv), *batch])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_model_against_itself_passes(files, capsys):
    status, out, _ = run(capsys, files["a"], files["a"])
    assert status == 0, out
    assert out.startswith("compare: PASS — A and B are one model")
    assert "the two readings agree in float64: nothing for the doctor to explain" in out


@pytest.mark.parametrize("name, cause", [("b_flip", "conv kernel flipped"), ("b_eps", "BatchNorm ε")])
def test_a_port_mistake_fails_and_is_named(files, capsys, name, cause):
    status, out, _ = run(capsys, files["a"], files[name])
    assert status == 1, out
    headline = out.splitlines()[0]
    assert headline.startswith("compare: FAIL — B differs from A") and f"explained by {cause}" in headline
    assert f"explained by {cause} — layer " in out


def test_different_models_are_refused_with_the_difference(files, capsys):
    status, _, err = run(capsys, files["a"], files["b_other"])
    assert status == 2
    assert "different models" in err and "layers" in err


def test_the_numpy_example_faithful_passes_and_the_seed_bug_is_located(capsys):
    weights = ROOT / "examples" / "mlp_weights.safetensors"
    status, out, _ = run(capsys, weights, f"{ROOT / 'examples' / 'numpy_mlp.py'}:faithful")
    assert status == 0, out
    status, out, _ = run(capsys, weights, f"{ROOT / 'examples' / 'numpy_mlp.py'}:seed_bug")
    assert status == 1
    assert "B's own code computes something its reading does not" in out.splitlines()[0]
    assert "first db2" in out.splitlines()[0]
    # an MLP's training and inference outputs are one: nothing says it runs in training mode
    assert "not a known convention" in out.splitlines()[0] and "train vs eval" not in out


@pytest.mark.parametrize("side, message", [
    ("missing.safetensors", "no such file"),
    ("examples/numpy_mlp.py:not-a-name", "is not a Python function name"),
    ("examples/numpy_mlp.py:faithful@missing.pt", "no such state_dict file"),
    ("examples/numpy_mlp.py:nothing_here", "has no function 'nothing_here'"),
])
def test_bad_sides_end_in_one_error_line(capsys, monkeypatch, side, message):
    monkeypatch.chdir(ROOT)
    status, out, err = run(capsys, "examples/mlp_weights.safetensors", side)
    assert status == 2
    assert message in err and err.count("error:") == 1 and "Traceback" not in err


def test_bad_data_file_is_refused(files, capsys):
    bad = files["dir"] / "x.npy"
    np.save(bad, np.zeros((4, 3)))
    status, _, err = run(capsys, files["a"], files["a"], "--data", bad)
    assert status == 2 and "the model takes (m, 2, 8, 8)" in err


ALWAYS_BATCH_STATISTICS = '''
import numpy as np

from ports.numpy_port import NumpyPort

SPEC = {"inputs": 5, "layers": [{"kind": "dense", "units": 6, "activation": "identity"},
                                {"kind": "batch_norm", "activation": "relu"},
                                {"kind": "dense", "units": 3, "activation": "softmax"}],
        "loss": "cce", "optimizer": {"name": "sgd", "learning_rate": 0.1}}


class MyBatchNorm:
    """Right in training; but it normalizes by the batch's statistics whatever ``training`` says."""

    def __init__(self):
        self.tensors = {"gamma": np.ones(6), "beta": np.zeros(6)}

    def forward(self, a_prev, training):
        self.std = np.sqrt(a_prev.var(axis=0) + 1e-5)
        self.xhat = (a_prev - a_prev.mean(axis=0)) / self.std
        return self.tensors["gamma"] * self.xhat + self.tensors["beta"]

    def backward(self, dz):
        m, dxhat = len(dz), dz * self.tensors["gamma"]
        da = (m * dxhat - dxhat.sum(axis=0) - self.xhat * (dxhat * self.xhat).sum(axis=0)) / (m * self.std)
        return da, {"gamma": (dz * self.xhat).sum(axis=0), "beta": dz.sum(axis=0)}


def build():
    return NumpyPort(SPEC, {2: MyBatchNorm()})


def build_engine_only():
    return NumpyPort(SPEC, {})
'''


def test_a_layer_that_ignores_inference_mode_is_named_train_vs_eval(capsys, tmp_path):
    (tmp_path / "mine.py").write_text(ALWAYS_BATCH_STATISTICS)
    status, out, _ = run(capsys, f"{tmp_path / 'mine.py'}:build_engine_only", f"{tmp_path / 'mine.py'}:build")
    headline = out.splitlines()[0]
    assert status == 1, out
    assert headline.startswith("compare: FAIL — B's own code computes something its reading does not, "
                               "explained by train vs eval mode: first A_L (inference)")
    assert "found: B: train vs eval mode — asked for inference" in out


def test_a_compare_too_large_for_memory_is_refused_with_the_figures(capsys, monkeypatch):
    from reports.cli import model_memory

    monkeypatch.setattr(model_memory, "available_bytes", lambda: 2 ** 20)
    weights = ROOT / "examples" / "mlp_weights.safetensors"
    status, out, err = run(capsys, weights, weights)
    assert status == 2 and out == ""
    assert "for 8 backends, but only 1.0 MiB of memory is available" in err


def test_data_from_npz_with_labels_and_from_csv_rows(files, capsys):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 2, 8, 8))
    np.savez(files["dir"] / "batch.npz", x=x, y=np.array([0, 1, 2, 3, 0, 1]))
    np.savetxt(files["dir"] / "batch.csv", x.reshape(6, -1), delimiter=",")
    for name, drawn in (("batch.npz", False), ("batch.csv", True)):
        status, out, err = run(capsys, files["a"], files["b_flip"], "--data", files["dir"] / name)
        assert status == 1 and "explained by conv kernel flipped" in out.splitlines()[0], out
        assert f"comparing 6 samples from {files['dir'] / name}" in err
        assert ("labels drawn (seed 0): the file has none" in err) is drawn
    np.savez(files["dir"] / "bad.npz", x=x, y=np.array([0, 1, 2, 3, 0, 4]))
    status, _, err = run(capsys, files["a"], files["a"], "--data", files["dir"] / "bad.npz")
    assert status == 2 and "y must be 6 integer labels in [0, 4)" in err
    status = main(["compare", str(files["a"]), str(files["a"]), "--data", str(files["dir"] / "batch.csv"),
                   "--batch", "4"])
    assert status == 2 and "give one of them" in capsys.readouterr().err


def test_only_a_bias_batch_norm_cancels_is_judged_against_its_kernel_gradient():
    """SPEC's conv bias b1 (BatchNorm right after) is rounding residue: its gradient is judged
    against max|dW1| and its trained value is not judged. The dense bias b5 keeps its own rows."""
    assert SPEC.cancelled_biases == (1,)
    desired = {"dW1": np.ones((3, 2, 3, 3)), "db1": np.full(3, 1e-17),
               "dW5": np.ones((5, 48)), "db5": np.full(5, 1e-6)}
    desired.update({f"actual {name}": value + 1e-15 for name, value in desired.items()})
    rows = [Comparison(name, None, "gradient", relative_error(desired[f"actual {name}"], desired[name]),
                       1e-13) for name in ("db1", "db5")]
    rows += [Comparison(f"b{layer} after 1 step", None, "parameters", 1e-9, 1e-13) for layer in (1, 5)]
    db1, db5, b1, b5 = judge_cancelled(rows, SPEC, desired)
    assert not rows[0].ok and db1.ok and db1.error == pytest.approx(1e-15) and db1.note
    assert b1.ok and b1.bound == np.inf and b1.note
    assert db5 == rows[1] and not db5.ok                      # 1e-15 on 1e-6: judged on its own scale
    assert b5 == rows[3] and not b5.ok


def test_a_missing_or_unknown_data_file_is_refused_before_any_side_is_read(capsys, tmp_path):
    """Side A names a function its file lacks: reading it would fail, so the data error shows the
    file was checked first."""
    (tmp_path / "x.txt").write_text("1,2\n")
    for data, message in ((tmp_path / "none.npy", "no such file"), (tmp_path / "x.txt", "expected a .npy")):
        status = main(["compare", f"{ROOT / 'examples' / 'numpy_mlp.py'}:not_there",
                       str(ROOT / "examples" / "mlp_weights.safetensors"), "--data", str(data)])
        err = capsys.readouterr().err
        assert status == 2 and f"--data {data}: {message}" in err, err
