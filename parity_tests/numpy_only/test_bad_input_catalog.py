"""The bad-input catalog: every kind of bad input of issue 6, one id each.

Each case feeds one bad input to the entry point a user calls — ``load_model`` for a weight
file, ``ModelSpec.from_json`` for a spec, ``MLP.fit`` for in-memory data, ``load_mnist`` for data
files — and must raise exactly one of the project's own errors (:mod:`scratch.errors`, all
``ValueError`` subclasses, nothing chained) whose message names the file or field and what was
expected. Cases that have a command-line form are run through ``backprop-parity train`` too:
one ``error: ...`` line on stderr, exit code 2, and no file left in the output folder.

The readers' own unit tests (``test_spec_and_weights.py``, ``test_datasets.py``) check every
reader in detail; this catalog reuses their bad-file builders and checks the user-facing path.
A case the product does not handle is marked ``xfail(strict=True)`` with the gap as its reason
(none at present: the gaps this catalog found — ``fit`` not checking finiteness, empty sets and
lengths, and ``train`` keeping its weight file when ``--json`` fails — are fixed).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_datasets import tiny_mnist, write_mnist_idx
from test_spec_and_weights import bad_file

from reports.cli.main import main
from scratch.batching import steps_per_epoch
from scratch.datasets import load_mnist
from scratch.datasets.mnist import IDX_FILES
from scratch.errors import DataError, ParityError, SpecError, WeightFileError
from scratch.model import MLP, load_model
from scratch.spec import ModelSpec


@dataclass(frozen=True)
class Bad:
    """``run(folder)`` feeds the bad input to its entry point; the message must match ``match``,
    where ``<dir>`` stands for the case's folder. ``cli(folder)``, if given, writes the same input
    for the command line and returns the ``train`` arguments that read it."""

    run: Callable[[Path], object]
    error: type[ParityError]
    match: str
    cli: Callable[[Path], list[str]] | None = None


# --------------------------------------------------------------------------- weight files


def weight_file(kind: str, match: str) -> Bad:
    """A file built by ``test_spec_and_weights.bad_file(kind)`` (spec 4-3-2 float64), loaded."""
    return Bad(lambda folder: load_model(bad_file(kind, folder / "bad.safetensors")), WeightFileError,
               r"^<dir>bad\.safetensors: " + match)


# id: (kind built by bad_file, what the message says after the path)
WEIGHT_FILES = {name: weight_file(kind, match) for name, (kind, match) in {
    "weights-truncated": ("truncated", r"not a readable safetensors file"),
    "weights-not-safetensors": ("random bytes", r"not a readable safetensors file"),
    "weights-missing-tensor": ("missing tensor", r"missing tensor\(s\) b2 for layer sizes \(4, 3, 2\)"),
    "weights-extra-tensor": ("extra tensor", r"unexpected tensor\(s\) W3 for layer sizes \(4, 3, 2\)"),
    "weights-wrong-shape": ("wrong shape", r"tensor W2 has shape \(3, 2\), spec says \(2, 3\)"),
    "weights-wrong-dtype": ("float32 tensors", r"tensor W1 is float32, spec says float64"),
    "weights-integer-dtype": ("int tensor", r"tensor b1 is I64, expected F32 or F64"),
    "weights-nan": ("nan", r"tensor W1 has 1 non-finite value"),
    "weights-inf": ("inf", r"tensor b2 has 1 non-finite value"),
    "weights-no-metadata": ("no metadata",
        r"metadata 'format' is None, expected 'backprop-parity/2' or 'backprop-parity/1'"),
    "weights-spec-metadata-missing": ("metadata without spec", r"metadata has no 'spec'"),
    "weights-spec-disagrees-with-shapes": ("spec disagrees",
                                           r"tensor W1 has shape \(3, 4\), spec says \(5, 4\)"),
    "weights-spec-disagrees-with-dtype": ("spec dtype float32", r"tensor W1 is float64, spec says float32"),
}.items()}

# --------------------------------------------------------------------------- specs

# A spec that fits `train --dataset xor` (2 features, 2 classes); each case changes one thing.
XOR_SPEC = {"layer_sizes": [2, 4, 2], "epochs": 1}


def spec_json(match: str, text: str | None = None, **changes) -> Bad:
    """XOR_SPEC with ``changes`` (or ``text``) written to ``spec.json`` and read with
    ``ModelSpec.from_json``, as ``train --spec`` reads it."""
    if text is None:
        data = {**XOR_SPEC, **changes}
        if "optimizer" in changes:
            data["optimizer"] = {"name": "sgd", **changes["optimizer"]}
        text = json.dumps(data)

    def write(folder) -> Path:
        path = folder / "spec.json"
        path.write_text(text, encoding="utf-8")
        return path

    def run(folder):
        path = write(folder)
        return ModelSpec.from_json(path.read_text(encoding="utf-8"), source=str(path))

    return Bad(run, SpecError, match, lambda folder: ["--dataset", "xor", "--spec", str(write(folder))])


def field(name: str, what: str) -> str:
    return rf"spec field '{re.escape(name)}': {what}"


UNKNOWN = "unknown value {!r}; expected one of"
OUTSIDE = r"{} is outside {}"
SPECS = {
    "spec-unknown-hidden-activation": spec_json(field("hidden_activation", UNKNOWN.format("swish")),
                                                hidden_activation="swish"),
    "spec-unknown-output-activation": spec_json(field("output_activation", UNKNOWN.format("relu")),
                                                output_activation="relu"),
    "spec-unknown-loss": spec_json(field("loss", UNKNOWN.format("hinge") + " mse, bce, cce"), loss="hinge"),
    "spec-unknown-init": spec_json(field("init", UNKNOWN.format("xavier")), init="xavier"),
    "spec-unknown-optimizer": spec_json(field("optimizer.name", UNKNOWN.format("adagrad") + " sgd"),
                                        optimizer={"name": "adagrad"}),
    "spec-unknown-convention": spec_json(field("optimizer.convention", UNKNOWN.format("jax")),
                                         optimizer={"convention": "jax"}),
    "spec-sigmoid-output-with-cce": spec_json(
        field("output_activation", "'sigmoid' does not fit loss 'cce'; expected one of softmax"),
        output_activation="sigmoid"),
    "spec-softmax-output-with-bce": spec_json(
        field("output_activation", "'softmax' does not fit loss 'bce'; expected one of sigmoid"), loss="bce"),
    "spec-layer-size-zero": spec_json(field("layer_sizes[1]", "expected an integer >= 1, got 0"),
                                      layer_sizes=[2, 0, 2]),
    "spec-layer-size-negative": spec_json(field("layer_sizes[0]", "expected an integer >= 1, got -2"),
                                          layer_sizes=[-2, 2]),
    "spec-batch-size-zero": spec_json(field("batch_size", "expected an integer >= 1, got 0"), batch_size=0),
    "spec-learning-rate-zero": spec_json(
        field("optimizer.learning_rate", OUTSIDE.format(r"0\.0", r"\(0\.0, inf\)")),
        optimizer={"learning_rate": 0.0}),
    "spec-learning-rate-negative": spec_json(
        field("optimizer.learning_rate", OUTSIDE.format(r"-0\.1", r"\(0\.0, inf\)")),
        optimizer={"learning_rate": -0.1}),
    "spec-dropout-one": spec_json(field("dropout", OUTSIDE.format(r"1\.0", r"\[0\.0, 1\.0\)")), dropout=1.0),
    "spec-dropout-negative": spec_json(field("dropout", OUTSIDE.format(r"-0\.1", r"\[0\.0, 1\.0\)")),
                                       dropout=-0.1),
    "spec-malformed-json": spec_json(r"^<dir>spec\.json: malformed JSON \(Expecting",
                                     text='{"layer_sizes": [2, 4, 2'),
}

# --------------------------------------------------------------------------- in-memory data

FIT_SPEC = ModelSpec((3, 4, 3), batch_size=4, seed=0)
def good_xy():
    x = np.random.default_rng(0).standard_normal((6, 3))  # (6, 3) float64
    return x, np.array([0, 1, 2, 0, 1, 2])


def fit_with(match: str, edit: Callable[[np.ndarray, np.ndarray], tuple]) -> Bad:
    return Bad(lambda folder: MLP(FIT_SPEC).fit(*edit(*good_xy())), DataError, match)


def with_x_value(value):
    def edit(x, y):
        x[4, 1] = value
        return x, y
    return edit


def bad_test_split():
    return with_x_value(np.nan)(*good_xy())


# Messages are matched loosely enough for either of fit's validators (MLP's own or check_xy).
DATA = {
    "data-nan-features": fit_with(r"x has 1 non-finite values, first at row 4, column 1 \(nan\)",
                                  with_x_value(np.nan)),
    "data-inf-features": fit_with(r"x has 1 non-finite values, first at row 4, column 1 \(inf\)",
                                  with_x_value(np.inf)),
    "data-test-split-nan": Bad(lambda folder: MLP(FIT_SPEC).fit(*good_xy(), *bad_test_split()),
                               DataError, r"test data: x has 1 non-finite values"),
    "data-label-out-of-range": fit_with(r"labels.* \[0, 3\).* first at index 2 \(value 3\)",
                                        lambda x, y: (x, np.where(np.arange(6) == 2, 3, y))),
    "data-label-negative": fit_with(r"labels.* \[0, 3\).* first at index 0 \(value -1\)",
                                    lambda x, y: (x, np.where(np.arange(6) == 0, -1, y))),
    "data-labels-not-integer": fit_with(r"(labels|y).* an integer dtype, (got|found) float64",
                                        lambda x, y: (x, y + 0.5)),
    "data-labels-not-an-array": fit_with(r"(labels|y).* (1-D integer|numpy) array, (got|found) list",
                                         lambda x, y: (x, y.tolist())),
    "data-wrong-feature-count": fit_with(
        r"inputs: expected an array of shape \(m, 3\), got \(6, 4\)|x must have 3 features, found 4",
        lambda x, y: (np.hstack([x, x[:, :1]]), y)),
    "data-wrong-dtype": fit_with(r"inputs: dtype float32 but the spec says float64",
                                 lambda x, y: (x.astype(np.float32), y)),
    "data-empty-set": fit_with(r"empty set", lambda x, y: (x[:0], y[:0])),
    "data-fewer-labels-than-rows": fit_with(r"6 (inputs|rows) but (y has )?5 labels",
                                            lambda x, y: (x, y[:5])),
    "data-more-labels-than-rows": fit_with(r"5 (inputs|rows) but (y has )?6 labels",
                                           lambda x, y: (x[:5], y)),
}

# --------------------------------------------------------------------------- data files


def mnist_file(key: str, mangle: Callable[[bytes], bytes], match: str) -> Bad:
    """A folder of tiny gzipped MNIST IDX files whose ``key`` file is replaced by
    ``mangle(its gzip bytes)``; read by ``load_mnist`` and by ``train --data-dir``."""
    name = IDX_FILES[key] + ".gz"

    def build(folder):
        data_dir = write_mnist_idx(folder / "mnist", tiny_mnist())
        path = data_dir / name
        path.write_bytes(mangle(path.read_bytes()))
        return data_dir

    return Bad(lambda folder: load_mnist(build(folder)), DataError,
               rf"^<dir>mnist/{re.escape(name)}: {match}",
               lambda folder: ["--dataset", "mnist", "--data-dir", str(build(folder))])


def header(edit: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """Apply ``edit`` to the decompressed IDX bytes, then compress again."""
    return lambda raw: gzip.compress(edit(gzip.decompress(raw)))


DATA_FILES = {
    "idx-corrupt-magic": mnist_file("x_train", header(lambda b: b"\x01" + b[1:]),
                                    "not an IDX file, expected magic bytes 00 00, found 01 00"),
    "idx-unknown-type-code": mnist_file("y_train", header(lambda b: b[:2] + b"\x0a" + b[3:]),
                                        "unknown IDX type code 0x0A, expected one of 0x08"),
    "idx-wrong-dimension-count": mnist_file("x_test", header(lambda b: b[:3] + b"\x02" + b[4:]),
                                            "expected 3 dimensions, found 2"),
    "idx-truncated-payload": mnist_file(
        "y_test", header(lambda b: b[:-1]),
        r"truncated payload, expected 2 bytes for shape \(2,\) uint8, found 1"),
    "gzip-cut-short": mnist_file("x_train", lambda raw: raw[: len(raw) // 2],
                                 "gzip stream is corrupt or cut short"),
}

CATALOG = {**WEIGHT_FILES, **SPECS, **DATA, **DATA_FILES}


@pytest.mark.parametrize("case", CATALOG.values(), ids=CATALOG.keys())
def test_bad_input_raises_one_clear_error(case: Bad, tmp_path):
    with pytest.raises(ParityError) as info:
        case.run(tmp_path)
    error = info.value
    assert type(error) is case.error, f"{type(error).__name__}: {error}"
    assert isinstance(error, ValueError)
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    match = case.match.replace("<dir>", re.escape(f"{tmp_path}/"))
    assert re.search(match, str(error)), f"message {str(error)!r} does not match {match!r}"


def test_catalog_covers_the_issue():
    assert len(CATALOG) >= 30
    assert {case.error for case in CATALOG.values()} == {WeightFileError, SpecError, DataError}


# --------------------------------------------------------------------------- the command line

CLI_CASES = {name: case for name, case in CATALOG.items() if case.cli is not None}
# Flags that break the spec the same way (`train` reads no weight file and no in-memory data).
FLAG_CASES = {
    "flag-lr-zero": (["--dataset", "xor", "--lr", "0"], field("optimizer.learning_rate", "0.0 is outside")),
    "flag-dropout-one": (["--dataset", "xor", "--dropout", "1"], field("dropout", "1.0 is outside")),
    "flag-layer-size-zero": (["--dataset", "xor", "--layers", "2,0,2"], field("layer_sizes[1]", "expected")),
    "flag-batch-size-negative": (["--dataset", "xor", "--batch-size", "-3"], field("batch_size", "expected")),
    "flag-data-dir-missing": (["--dataset", "mnist", "--data-dir", "<dir>nowhere"],
                              "<dir>nowhere: MNIST folder \\(data_dir\\) does not exist"),
}


def cli_arguments(name: str, folder: Path) -> tuple[list[str], str]:
    if name in CLI_CASES:
        case = CLI_CASES[name]
        match = case.match.removeprefix("^")
        if case.error is SpecError and not match.startswith("<dir>"):
            match = r"<dir>spec\.json: " + match                # the CLI names the spec file too
        return case.cli(folder), match.replace("<dir>", re.escape(f"{folder}/"))
    argv, match = FLAG_CASES[name]
    return ([arg.replace("<dir>", f"{folder}/") for arg in argv],
            match.replace("<dir>", re.escape(f"{folder}/")))


@pytest.mark.parametrize("name", [*CLI_CASES, *FLAG_CASES])
def test_cli_prints_one_error_line_and_writes_nothing(name, tmp_path, capsys):
    argv, match = cli_arguments(name, tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = main(["train", *argv, "--epochs", "1", "-q",
                 "--save", str(out_dir / "w.safetensors"), "--json", str(out_dir / "history.json")])
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and out == ""
    assert re.search(match, lines[0]), f"{lines[0]!r} does not match {match!r}"
    assert sorted(p.name for p in out_dir.iterdir()) == []


def test_cli_failed_run_leaves_no_output(tmp_path, capsys):
    """``--json`` under a regular file cannot be written: one error line, exit 2, and nothing of
    the failed run left behind — not even the weight file it could write."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    code = main(["train", "--dataset", "xor", "--epochs", "5", "-q", "--save", str(out_dir / "w.safetensors"),
                 "--json", str(tmp_path / "a-file" / "history.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in out_dir.iterdir()) == []


# --------------------------------------------------------------------------- not an error


def test_batch_larger_than_the_data_is_full_batch():
    """``batch_size`` ≥ n is not an error: ``scratch.batching`` takes min(batch_size, n), so every
    epoch is one full-batch step in natural order (no shuffle), exactly like ``batch_size=None``."""
    x, y = good_xy()
    big = FIT_SPEC.replace(batch_size=100, epochs=3)
    assert steps_per_epoch(big, len(x)) == 1
    full, oversized = MLP(big.replace(batch_size=None)), MLP(big)
    curve_full, curve_oversized = full.fit(x, y).step_loss, oversized.fit(x, y).step_loss
    assert len(curve_oversized) == 3
    assert curve_oversized == curve_full
    for a, b in zip(full.parameters, oversized.parameters, strict=True):
        assert a.tobytes() == b.tobytes()
