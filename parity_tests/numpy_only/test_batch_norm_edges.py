"""BatchNorm at its edges (issue 18, part 1 item 5), NumPy only.

* Running statistics from outside — a weight file, ``Network(statistics=…)`` — are checked: every
  value finite, the variance ≥ 0, |mean| ≤ √max of the dtype; one error naming the tensor, the
  element and its value. Without the check each of these files loaded and inferred NaN or inf.
* A BatchNorm that sees one value per channel in training (a batch of one row after a dense layer
  or on 1×1 maps) is refused up front — by the spec (``batch_size`` 1), by the training plan (a
  last batch of one row), by ``train``/``check``/``explain`` with one line and exit 2 — and by the
  engine's BatchNorm itself, as torch refuses it.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file
from test_cli_bad_input import USAGE, no_frameworks, one_error  # noqa: F401  (a fixture)

from reports.cli.main import main
from scratch.batching import check_batch_statistics, training_plan
from scratch.errors import DataError, SpecError, WeightFileError
from scratch.layer_specs import BatchNormSpec, Conv2DSpec, DenseSpec, FlattenSpec, LayerNormSpec
from scratch.layers.normalization import ONE_VALUE, BatchNorm
from scratch.model import Network, load_model, save_model
from scratch.spec import ModelSpec
from scratch.weights import load_weights, save_weights


def dense_bn_spec(dtype: str = "float64", batch_size: int | None = 4, **changes) -> ModelSpec:
    """2 → dense(6, identity) → batch_norm(relu) → dense(2, softmax): the norm is layers[1]."""
    return ModelSpec(inputs=2, layers=(DenseSpec(6, "identity"), BatchNormSpec(activation="relu"),
                                       DenseSpec(2, "softmax")),
                     dtype=dtype, batch_size=batch_size, **changes)


# --------------------------------------------------------------------------- statistics on load


def file_with(tmp_path, dtype: str, name: str, index: int, value: float):
    """A weight file saved from a trained-looking model, then one element of tensor ``name`` set
    to ``value`` behind ``save_weights``'s back (as another program could write it)."""
    spec = dense_bn_spec(dtype)
    model = Network(spec)
    mean, variance = model.statistics[0]
    mean[:] = np.linspace(-0.5, 0.5, 6)
    variance[:] = np.linspace(0.5, 2.0, 6)
    path = save_weights(tmp_path / "good.safetensors", spec, model.weights, model.biases, model.statistics)
    with safe_open(str(path), "numpy") as stored:
        tensors = {key: stored.get_tensor(key) for key in stored.keys()}   # noqa: SIM118 (no iterator)
        metadata = stored.metadata()
    tensors[name][index] = value
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=metadata)
    return bad


# (tensor, element, value, what the message says)
VAR, MEAN = "layers.1.running_var", "layers.1.running_mean"
BAD_STATISTICS = {
    "negative-variance": (VAR, 3, -0.5, r"1 negative value\(s\), first at \[3\] \(-0\.5\); "
                                        r"a running variance is a mean of squares, so it must be >= 0"),
    "tiny-negative-variance": (VAR, 0, -1e-30, r"1 negative value\(s\), first at \[0\] \(-1e-30\)"),
    "huge-mean": (MEAN, 2, 1e300, r"1 huge value\(s\), first at \[2\] \(1e\+300\); beyond √max "
                                  r"of float64 \(1\.34e\+154\)"),
    "nan-mean": (MEAN, 1, np.nan, r"1 non-finite value\(s\), first at \[1\] \(nan\)"),
    "inf-variance": (VAR, 5, np.inf, r"1 non-finite value\(s\), first at \[5\] \(inf\)"),
    "minus-inf-mean": (MEAN, 0, -np.inf, r"1 non-finite value\(s\), first at \[0\] \(-inf\)"),
}


@pytest.mark.parametrize("case", BAD_STATISTICS)
def test_bad_running_statistics_are_one_error_naming_tensor_element_and_value(tmp_path, case):
    name, index, value, says = BAD_STATISTICS[case]
    path = file_with(tmp_path, "float64", name, index, value)
    for read in (load_weights, load_model):
        with pytest.raises(WeightFileError) as info:
            read(path)
        assert type(info.value) is WeightFileError and info.value.__cause__ is None
        message = str(info.value)
        expected = rf"{re.escape(str(path))}: tensor {re.escape(name)} has {says}.*"
        assert re.fullmatch(expected, message), message


def test_a_float32_mean_beyond_its_square_root_of_max_is_refused_and_one_below_is_not(tmp_path):
    limit = float(np.sqrt(np.finfo(np.float32).max))              # 1.84e19
    with pytest.raises(WeightFileError, match=r"layers\.1\.running_mean has 1 huge value.*of float32 "
                                              r"\(1\.84e\+19\)"):
        load_weights(file_with(tmp_path, "float32", "layers.1.running_mean", 4, 1.01 * limit))
    loaded = load_weights(file_with(tmp_path, "float32", "layers.1.running_mean", 4, 0.99 * limit))
    assert loaded.statistics[0][0][4] == np.float32(0.99 * limit)


@pytest.mark.parametrize("factor, finite", [(0.99, True), (1.01, False)])
def test_the_mean_limit_is_where_inference_overflows(factor, finite):
    """Why √max: the running mean is subtracted from the input, and the next square of that
    (here the MSE loss of one row and a one-unit identity output, W = 1) overflows beyond it —
    certainly beyond, and a sum of a few such squares already below. The statistics are set in
    place, past the check, to show what the check prevents."""
    spec = ModelSpec(inputs=1, layers=(BatchNormSpec(epsilon=1e-5), DenseSpec(1, "identity")), loss="mse")
    model = Network(spec, [np.ones(1), np.ones((1, 1))], [np.zeros(1), np.zeros(1)])   # γ, W = 1; β, b = 0
    mean, variance = model.statistics[0]
    mean[0] = factor * np.sqrt(np.finfo(np.float64).max)
    variance[0] = 1.0 - 1e-5                                       # √(v + ε) = 1
    with np.errstate(over="ignore", invalid="ignore"):
        loss, _ = model.evaluate(np.zeros((1, 1)), np.zeros(1, dtype=np.int64))
    assert np.isfinite(loss) == finite


def test_network_statistics_are_checked_like_a_file():
    spec = dense_bn_spec()
    mean, variance = np.zeros(6), np.ones(6)
    variance[4] = -2.0
    with pytest.raises(SpecError, match=r"^statistics: tensor layers\.1\.running_var has 1 negative "
                                        r"value\(s\), first at \[4\] \(-2\.0\)"):
        Network(spec, statistics=[(mean, variance)])
    mean[1] = np.nan
    with pytest.raises(SpecError, match=r"layers\.1\.running_mean has 1 non-finite value\(s\), first at "
                                        r"\[1\]"):
        Network(spec, statistics=[(mean, np.ones(6))])


def test_saving_bad_statistics_writes_nothing(tmp_path):
    spec = dense_bn_spec()
    model = Network(spec)
    model.statistics[0][1][2] = -1.0                              # past the check: set in place
    folder = tmp_path / "out"
    with pytest.raises(WeightFileError, match=r"layers\.1\.running_var has 1 negative value"):
        save_model(model, folder / "m.safetensors")
    assert not folder.exists() or list(folder.iterdir()) == []


def test_statistics_a_training_run_leaves_load_again(tmp_path, global_seed):
    """The check refuses nothing training produces: a few steps, saved and loaded, infer the same."""
    spec = dense_bn_spec(epochs=3, seed=global_seed)
    rng = np.random.default_rng(global_seed)
    x, y = rng.standard_normal((18, 2)), rng.integers(0, 2, 18)
    model = Network(spec)
    model.fit(x, y)
    assert not np.array_equal(model.statistics[0][0], np.zeros(6))          # the statistics moved
    save_model(model, tmp_path / "m.safetensors")
    restored = load_model(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(restored.inference_outputs(x)[1], model.inference_outputs(x)[1])


# --------------------------------------------------------------------------- one value per channel


def test_engine_batch_norm_refuses_one_value_per_channel_in_training():
    norm = BatchNorm(np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), decay=0.9, epsilon=1e-5, unbiased=True)
    for x in (np.ones((1, 3)), np.ones((1, 3, 1, 1))):
        with pytest.raises(DataError, match=re.escape(ONE_VALUE)):
            norm.forward(x, training=True)
        assert norm.forward(x, training=False)[0].shape == x.shape          # inference: fine
    assert np.array_equal(norm.running_mean, np.zeros(3))                   # nothing moved
    norm.forward(np.ones((1, 3, 2, 1)), training=True)                      # 2 values per channel


@pytest.mark.parametrize("layers, inputs", [
    ((DenseSpec(4, "identity"), BatchNormSpec(), DenseSpec(2, "softmax")), 3),
    ((Conv2DSpec(2, 3), BatchNormSpec(), FlattenSpec(), DenseSpec(2, "softmax")), (1, 3, 3)),   # 1×1 maps
], ids=["after-dense", "on-1x1-maps"])
def test_spec_refuses_batch_size_1_where_a_norm_sees_one_value(layers, inputs):
    with pytest.raises(SpecError, match=r"^spec field 'batch_size': 1, but layers\[1\] \(batch_norm on "
                                        rf"\([^)]+\)\) sees one value per channel .*{re.escape(ONE_VALUE)}.*"
                                        r"use batch_size >= 2$"):
        ModelSpec(inputs=inputs, layers=layers, batch_size=1)
    assert ModelSpec(inputs=inputs, layers=layers, batch_size=2).one_value_norms


def test_batch_size_1_is_fine_where_every_norm_sees_several_values():
    spec = ModelSpec(inputs=(1, 4, 4), layers=(Conv2DSpec(2, 3), BatchNormSpec(), FlattenSpec(),
                                               DenseSpec(4), LayerNormSpec(), DenseSpec(2, "softmax")),
                     batch_size=1)
    assert spec.one_value_norms == ()                                      # 2×2 maps: 2·2 values
    check_batch_statistics(spec, 5)


@pytest.mark.parametrize("n_rows, batch_size, refused", [
    (65, 64, True), (129, 64, True), (1, None, True), (1, 8, True),
    (64, 64, False), (66, 64, False), (2, None, False), (7, 3, True), (8, 3, False),
])
def test_the_plan_refuses_exactly_the_batches_of_one_row(n_rows, batch_size, refused):
    """Against the rule itself: a plan is refused iff one of its steps has one row."""
    spec = dense_bn_spec(batch_size=batch_size)
    one_row_step = any(len(step.indices if step.indices is not None else range(n_rows)) == 1
                       for step in training_plan(spec, n_rows))
    assert one_row_step == refused
    if not refused:
        check_batch_statistics(spec, n_rows)
        return
    with pytest.raises(DataError, match=re.escape(ONE_VALUE)) as info:
        check_batch_statistics(spec, n_rows)
    suggested = re.search(r"\(e\.g\. (\d+)\)$", str(info.value))
    if suggested:                                                  # the fix it names works
        check_batch_statistics(spec.replace(batch_size=int(suggested[1])), n_rows)
        assert f"use {n_rows - 1} or {n_rows + 1} rows" in str(info.value)


def test_fit_refuses_a_last_batch_of_one_row_before_any_step():
    spec = dense_bn_spec(batch_size=4)
    model = Network(spec)
    before = [p.copy() for p in model.parameters]
    x, y = np.random.default_rng(0).standard_normal((9, 2)), np.arange(9) % 2
    with pytest.raises(DataError, match=r"^training data: 9 rows in batches of 4 leave a last batch of "
                                        r"1 row"):
        model.fit(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.parameters, strict=True))


def _spec_file(tmp_path, **changes) -> str:
    path = tmp_path / "bn.json"
    spec = dense_bn_spec(dtype="float32", batch_size=64, **changes)
    path.write_text(json.dumps(spec.to_dict()), encoding="utf-8")
    return str(path)


def test_train_refuses_a_last_batch_of_one_row_with_one_line(tmp_path, capsys):
    save = tmp_path / "out" / "m.safetensors"
    code = main(["train", "--dataset", "spirals", "--limit", "65", "--spec", _spec_file(tmp_path), "--quiet",
                 "--save", str(save)])
    one_error(capsys, code, USAGE, r"^error: training data \(spirals, --limit/--batch-size\): 65 rows in "
                                   r"batches of 64 leave a last batch of 1 row, .*layers\[1\] "
                                   rf"\(batch_norm on \(6,\)\) .*{re.escape(ONE_VALUE)}")
    assert not save.exists()


def test_train_refuses_batch_size_1_with_one_line(tmp_path, capsys):
    code = main(["train", "--dataset", "spirals", "--spec", _spec_file(tmp_path), "--batch-size", "1"])
    one_error(capsys, code, USAGE, r"^error: spec field 'batch_size': 1, but layers\[1\] "
                                   r"\(batch_norm on \(6,\)\)")


@pytest.mark.parametrize("command", [["check", "--batch", "1", "--steps", "0"],
                                     ["check", "--batch", "65", "--steps", "2"],
                                     ["explain", "--batch", "1"]])
def test_check_and_explain_refuse_one_value_per_channel_before_any_framework(tmp_path, capsys, command,
                                                                               no_frameworks):  # noqa: F811
    code = main([*command, "--spec", _spec_file(tmp_path)])
    one_error(capsys, code, USAGE, rf"^error: --batch: .*{re.escape(ONE_VALUE)}")


@pytest.mark.parametrize("command", ["check", "explain"])
def test_check_and_explain_refuse_bad_statistics_before_any_framework(tmp_path, capsys, command,
                                                                      no_frameworks):  # noqa: F811
    """A negative running variance used to pass ``check`` (it compared training mode only) and
    load; now the file is refused with one line, exit 2."""
    path = file_with(tmp_path, "float64", "layers.1.running_var", 2, -0.25)
    code = main([command, "--weights", str(path)])
    one_error(capsys, code, USAGE, rf"^error: {re.escape(str(path))}: tensor layers\.1\.running_var has 1 "
                                   r"negative value\(s\), first at \[2\] \(-0\.25\)")
