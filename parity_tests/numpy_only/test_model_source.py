"""One model source for every command (``reports.cli.model_source``): the same flags give the same
spec in ``train``, ``check``, ``explain``, ``bench`` and ``report``; no flag gives the one default
model; and a conflict is one clear error with exit status 2, before any framework is imported.
``report`` puts the model in its profile's model slot, named by the catalog or the file's stem."""

from __future__ import annotations

import re

import numpy as np
import pytest

from reports.cli.bench import validate
from reports.cli.exit_codes import EXIT_USAGE
from reports.cli.main import build_parser, main
from reports.cli.model_source import read_spec_file, resolve
from scratch import catalog
from scratch.data import load_dataset
from scratch.model import Network, save_model
from scratch.spec import OptimizerSpec

COMMANDS = ("train", "check", "explain", "bench", "report")
TINY = ('{"layer_sizes": [2, 3, 1], "hidden_activation": "tanh", "output_activation": "sigmoid", '
        '"loss": "bce"}')


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


def _no_framework(monkeypatch):
    import twins.hygiene

    monkeypatch.setattr(twins.hygiene, "configure_frameworks",
                        lambda *a, **k: pytest.fail("a framework was configured before the error"))


@pytest.mark.parametrize("flags", [["--spec", "tiny.json"], ["--model", "seed-001"], ["--weights", "w.st"],
                                   ["--dtype", "float32", "--lr", "0.1"]])
def test_report_from_json_takes_no_model_flag(flags, tmp_path, capsys, monkeypatch):
    _no_framework(monkeypatch)
    saved = tmp_path / "results.json"
    saved.write_text("{}", encoding="utf-8")
    out = tmp_path / "r"
    named = ", ".join(flag for flag in flags if flag.startswith("--"))
    _one_error(capsys, main(["report", "--from-json", str(saved), *flags, "--out", str(out)]),
               rf"^error: {named}: --from-json runs nothing, so it takes no model \(drop {named}\)$")
    assert not out.exists()


def test_report_model_and_spec_together_are_one_usage_error(tmp_path, capsys, monkeypatch):
    _no_framework(monkeypatch)
    _one_error(capsys, main(["report", "--quick", "--model", "seed-002", "--spec", str(tmp_path / "s.json")]),
               r"argument --spec: not allowed with argument --model")


def _slot(argv):
    from reports.cli.report import slot_model

    return slot_model(build_parser("report").parse_args(["report", "--quick", *argv]))


def test_report_puts_a_spec_file_model_in_the_slot_named_by_its_stem(tmp_path):
    """``report --spec FILE``: the file's spec (spec flags on top) on the data set its input fits,
    from its initializer, named by the stem (made safe for the plot files' names; ``-file`` added
    where the stem is a catalog name) in the parity, curves, divergence and explain rows only."""
    from reports.scenarios.suite import MODEL, PROFILES, with_model

    path = tmp_path / "tiny xor.json"
    path.write_text(TINY, encoding="utf-8")
    model = _slot(["--spec", str(path), "--seed", "4"])
    expected = read_spec_file(path).replace(seed=4)
    assert (model.name, model.dataset, model.spec, model.tensors) == ("tiny-xor", "xor", expected, None)
    assert model.start(model.spec_with(dtype="float32")).tensors[0]["W"].dtype == np.float32
    quick = PROFILES["quick"]
    rows = with_model(quick, model).resolved()
    slot = [row.scenario for row in quick.rows if row.model == MODEL]
    assert [row.key for row in rows if row.model is model] == [f"{scenario} tiny-xor" for scenario in slot]
    others = [row for row in rows if row.model is not model]
    assert others == [row for row in quick.resolved() if row.model != catalog.DEFAULT_MODEL]
    catalog_named = tmp_path / "lenet5.json"
    catalog_named.write_text(TINY, encoding="utf-8")
    assert _slot(["--spec", str(catalog_named)]).name == "lenet5-file", "never mistaken for the catalog's"


def test_report_weights_bring_their_parameters_and_no_flag_the_one_default(tmp_path):
    network = Network(catalog.spec("xor-default").replace(seed=7))
    path = tmp_path / "trained.safetensors"
    save_model(network, str(path))
    model = _slot(["--weights", str(path)])
    assert (model.name, model.dataset, model.spec) == ("trained", "xor", network.spec)
    started = model.start(model.spec_with(dtype="float32"))
    for layer, kept in zip(started.tensors, network.tensors, strict=True):
        for name, value in kept.items():
            assert layer[name].dtype == np.float32 and np.array_equal(layer[name], value.astype(np.float32))
    default = _slot([])
    assert (default.name, default.spec, default.dataset) == (catalog.DEFAULT_MODEL,
                                                             catalog.spec(catalog.DEFAULT_MODEL), "mnist")
    assert _slot(["--model", "spirals-default"]).dataset == "spirals"


@pytest.mark.parametrize("spec,pattern", [
    ('{"layer_sizes": [5, 3, 2]}', r"its input has 5 numbers, .* none has that many features \(mnist 784"),
    ('{"layer_sizes": [784, 3, 3]}', r"the output layer has 3 units but dataset 'mnist' has 10 classes"),
])
def test_report_refuses_a_spec_that_fits_no_data_set_before_any_framework(spec, pattern, tmp_path, capsys,
                                                                          monkeypatch):
    _no_framework(monkeypatch)
    path = tmp_path / "s.json"
    path.write_text(spec, encoding="utf-8")
    _one_error(capsys, main(["report", "--quick", "--spec", str(path), "--out", str(tmp_path / "r")]),
               rf"^error: --spec {re.escape(str(path))}: .*{pattern}")
    assert not (tmp_path / "r").exists()
