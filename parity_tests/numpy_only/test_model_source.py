"""One model source for every command (``reports.cli.model_source``): the same flags give the same
spec in ``train``, ``check``, ``explain`` and ``bench``; no flag gives the one default model; and a
conflict is one clear error with exit status 2, before any framework is imported."""

from __future__ import annotations

import re

import pytest

from reports.cli.bench import validate
from reports.cli.exit_codes import EXIT_USAGE
from reports.cli.main import build_parser, main
from reports.cli.model_source import resolve
from scratch import catalog
from scratch.data import load_dataset
from scratch.model import Network, save_model
from scratch.spec import OptimizerSpec

COMMANDS = ("train", "check", "explain", "bench")


def resolved(command: str, argv: list[str]):
    args = build_parser(command).parse_args([command, *argv])
    return resolve(args, getattr(args, "dataset", None))


@pytest.mark.parametrize("argv,expected", [
    ([], catalog.spec(catalog.DEFAULT_MODEL)),
    (["--model", "lenet5", "--dtype", "float64", "--lr", "0.01", "--seed", "3", "--batch-size", "full"],
     catalog.spec("lenet5").replace(dtype="float64", seed=3, batch_size=None,
                                    optimizer=OptimizerSpec.framework_default("adam", "torch",
                                                                              learning_rate=0.01))),
    (["--model", "xor-uniform", "--loss", "mse", "--optimizer", "momentum", "--momentum", "0.9",
      "--epochs", "7"],
     catalog.spec("xor-uniform").replace(loss="mse", output_activation="sigmoid", epochs=7,
                                         optimizer=OptimizerSpec.framework_default(
                                             "momentum", "torch", momentum=0.9))),
    (["--layers", "784,16,10", "--hidden", "tanh", "--init", "he_normal"],
     catalog.spec(catalog.DEFAULT_MODEL).replace(layer_sizes=(784, 16, 10), hidden_activation="tanh",
                                                 init="he_normal")),
], ids=["default", "lenet5-flags", "xor-loss-optimizer", "mlp-shorthand"])
def test_the_same_flags_give_the_same_spec_in_every_command(argv, expected):
    specs = {command: resolved(command, argv).spec for command in COMMANDS}
    assert all(spec == expected for spec in specs.values()), {c: s.to_json() for c, s in specs.items()}


def test_the_source_dataset_and_weights_come_with_the_spec(tmp_path):
    model = Network(catalog.spec("xor-default"))
    path = tmp_path / "w.safetensors"
    save_model(model, str(path))
    for command in COMMANDS:
        source = resolved(command, ["--weights", str(path), "--epochs", "3"])
        assert source.spec == catalog.spec("xor-default").replace(epochs=3)
        assert source.origin == f"--weights {path}" and source.dataset.name == "xor"
        tensors, _ = source.parameters()
        assert all((layer[name] == kept[name]).all()
                   for layer, kept in zip(tensors, model.tensors, strict=True) for name in kept)
        assert resolved(command, ["--model", "lenet5"]).dataset == catalog.dataset("mnist")
        assert resolved(command, []).origin == f"the default model {catalog.DEFAULT_MODEL}"


def _one_error(capsys, code: int, pattern: str) -> None:
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE and out == "" and "Traceback" not in err, (code, out, err)
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and re.search(pattern, lines[0]), err


@pytest.mark.parametrize("command", COMMANDS)
def test_a_conflicting_flag_is_one_error_in_every_command(command, tmp_path, capsys, monkeypatch):
    import twins.hygiene

    monkeypatch.setattr(twins.hygiene, "configure_frameworks",
                        lambda *a, **k: pytest.fail("a framework was configured before the error"))
    path = tmp_path / "w.safetensors"
    save_model(Network(catalog.spec("xor-default")), str(path))
    _one_error(capsys, main([command, "--weights", str(path), "--layers", "2,3,1", "--dtype", "float32"]),
               r"^error: --weights .* fixes the model; drop --layers, --dtype")
    _one_error(capsys, main([command, "--model", "lenet5", "--hidden", "tanh"]),
               r"^error: --hidden: this flag describes a stack of dense layers .* --model lenet5 is a conv2d")
    _one_error(capsys, main([command, "--model", "lenet5", "--spec", "s.json"]),
               r"argument --spec: not allowed with argument --model")


def test_bench_axis_and_spec_flag_for_the_same_thing_is_one_error(capsys):
    _one_error(capsys, main(["bench", "--dtype", "float32", "--dtypes", "float64"]),
               r"^error: --dtypes and --dtype both set the bench's dtype; give one")


def test_train_dataset_must_be_the_models(capsys):
    _one_error(capsys, main(["train", "--model", "lenet5", "--dataset", "xor"]),
               r"^error: --model lenet5 trains on mnist, not --dataset xor")


@pytest.mark.parametrize("name", ["xor-default", "spirals-default", "seed-002"])
def test_bench_times_a_full_batch_model_at_its_own_datasets_rows(name):
    """A full-batch model's bench batch is its dataset's training split (4 XOR rows, 400 spiral
    points, MNIST's 60 000), not MNIST's size whatever the data."""
    args = build_parser("bench").parse_args(["bench", "--model", name])
    source = validate(args)
    assert source.spec.batch_size is None
    data = load_dataset(source.dataset.name, "float64") if source.dataset.name != "mnist" else None
    rows = len(data.x_train) if data is not None else 60000
    assert source.dataset.train_rows == rows and args.batches == [rows]
