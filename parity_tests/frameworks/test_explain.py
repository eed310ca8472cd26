"""The backprop study's rows (``reports.explain.walk``): one row per intermediate; each gradient's
row names the torch autograd nodes, the TensorFlow gradient ops and the JAX jaxpr equations that
really produce it, every row quotes the engine statement that computed it with its math, and shows
every framework within the float64 tolerance of the NumPy engine.
"""

from __future__ import annotations

import inspect
import json
import re

import numpy as np
import pytest
from cases import make_case

from judge.tolerances import tolerance
from reports.cli.main import main
from reports.explain import walk as explain_module
from reports.explain.walk import explain, format_table
from scratch import activations, losses
from scratch.layer_specs import BatchNormSpec, Conv2DSpec, DenseSpec, FlattenSpec, MaxPool2DSpec
from scratch.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D
from scratch.model import MLP, Network
from scratch.spec import ModelSpec

SPECS = {
    "2-layer-relu-cce": ModelSpec((6, 5, 3), init="torch_default"),
    "4-layer-relu-cce": ModelSpec((6, 5, 4, 4, 3), init="he_normal"),
    "3-layer-tanh-bce": ModelSpec((4, 5, 3, 1), hidden_activation="tanh", output_activation="sigmoid",
                                  loss="bce", init="glorot_uniform"),
    "3-layer-relu-mse-l2-dropout": ModelSpec((6, 5, 4, 3), loss="mse", l2=2.0 ** -6, dropout=0.25),
}
# hidden activation → (torch node, TF op) of its derivative
ACTIVATION_NODES = {"relu": ("ReluBackward0", "ReluGrad"), "tanh": ("TanhBackward0", "TanhGrad")}
# hidden activation → the jaxpr primitive of its derivative (ReLU′ is a select; JAX's tanh′ is
# (g + g·A)·(1 − A), two products summed)
ACTIVATION_EQNS = {"relu": "select_n", "tanh": "mul"}
# loss → (torch node, one of the TF ops) that start dL/dZ_L (dL/dA_L for MSE)
LOSS_NODES = {"cce": ("LogSoftmaxBackward0", ("SoftmaxCrossEntropyWithLogits:1", "Exp")),
              "bce": ("BinaryCrossEntropyWithLogitsBackward0", ("Select",)),
              "mse": ("MseLossBackward0", ("Neg",))}


@pytest.fixture(scope="module", params=SPECS, ids=list(SPECS))
def explained(request, global_seed):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    pytest.importorskip("jax")
    spec = SPECS[request.param].replace(seed=global_seed)
    case = make_case(spec, 8, global_seed)
    rows = explain(spec, case.tensors, case.x, case.targets, case.masks)
    return spec, {row["name"]: row for row in rows}


def backward_rows(rows: dict) -> dict:
    return {name: row for name, row in rows.items() if name.startswith("d")}


def _collapsed(function) -> str:
    return " ".join(inspect.getsource(function).split())


def assert_quoted(rows: dict, classes) -> None:
    """Every engine statement of every row is in the source of one of the methods its ``where``
    names (``Class.method + …``, each class one of ``classes``), and every row has its math."""
    by_name = {cls.__name__: cls for cls in classes}
    for row in rows.values():
        methods = [re.fullmatch(r"(\w+)\.(\w+)", where.strip()) for where in row["where"].split(" + ")]
        sources = [_collapsed(getattr(by_name[m[1]], m[2])) for m in methods]
        assert row["scratch"] and row["math"], row["name"]
        for statement in row["scratch"].split("; "):
            assert any(statement in source for source in sources), (row["name"], statement)


def test_rows_walk_down_from_the_loss_with_shapes(explained):
    spec, rows = explained
    sizes, m = spec.layer_sizes, 8
    expected = []
    for layer in range(spec.n_layers, 0, -1):
        if layer < spec.n_layers or spec.loss == "mse":
            expected.append((f"dA{layer}", (m, sizes[layer])))
        expected += [(f"dZ{layer}", (m, sizes[layer])), (f"dW{layer}", (sizes[layer], sizes[layer - 1])),
                     (f"db{layer}", (sizes[layer],))]
    assert [(name, row["shape"]) for name, row in backward_rows(rows).items()] == \
        [(n, str(s)) for n, s in expected]
    forward = [name for name in rows if not name.startswith("d")]
    assert forward == [f"{q}{layer}" for layer in range(1, spec.n_layers + 1) for q in ("Z", "A")]
    assert list(rows)[:len(forward)] == forward                 # forward rows first, in order


def test_forward_rows_name_each_frameworks_forward_op(explained):
    spec, rows = explained
    for layer in range(1, spec.n_layers + 1):
        z = rows[f"Z{layer}"]
        assert z["torch_nodes"] == "AddmmBackward0" and z["tf_ops"].startswith("MatMul → ")
        assert "dot_general" in z["jax_eqns"] and z["jax_eqns"].endswith("add"), z["jax_eqns"]
    for layer in range(1, spec.n_layers):
        a = rows[f"A{layer}"]
        node = "MulBackward0" if spec.dropout else ACTIVATION_NODES[spec.hidden_activation][0]
        op = {"relu": "Relu", "tanh": "Tanh"}[spec.hidden_activation]
        assert a["torch_nodes"] == node and op in a["tf_ops"] and a["jax_eqns"] not in ("—", ""), a


def test_hidden_layers_name_the_activation_and_linear_backward(explained):
    spec, rows = explained
    torch_node, tf_op = ACTIVATION_NODES[spec.hidden_activation]
    for layer in range(1, spec.n_layers):
        assert torch_node in rows[f"dZ{layer}"]["torch_nodes"] and tf_op in rows[f"dZ{layer}"]["tf_ops"]
        assert rows[f"dA{layer}"]["torch_nodes"] == "AddmmBackward0"
        assert rows[f"dA{layer}"]["tf_ops"] == "MatMul"
        assert rows[f"db{layer}"]["torch_nodes"] == "AddmmBackward0 → AccumulateGrad"
        assert rows[f"db{layer}"]["tf_ops"] == "BiasAddGrad"
        assert ACTIVATION_EQNS[spec.hidden_activation] in rows[f"dZ{layer}"]["jax_eqns"]
        assert rows[f"dA{layer}"]["jax_eqns"] == "dot_general"
        assert rows[f"db{layer}"]["jax_eqns"].endswith("reduce_sum")
        if spec.dropout:
            assert rows[f"dZ{layer}"]["torch_nodes"] == f"MulBackward0 → {torch_node}"
    for layer in range(1, spec.n_layers + 1):
        dw = rows[f"dW{layer}"]
        assert "AddmmBackward0 → TBackward0" in dw["torch_nodes"]
        assert dw["torch_nodes"].endswith("AccumulateGrad")
        assert "MatMul" in dw["tf_ops"]
        assert "dot_general → transpose" in dw["jax_eqns"]
        if spec.l2:                                  # the penalty's path is a second branch of the sum
            assert "PowBackward0" in dw["torch_nodes"] and dw["tf_ops"].endswith("AddN")
            assert dw["jax_eqns"].startswith("(") and dw["jax_eqns"].endswith("add_any")


def test_the_loss_rows_name_the_loss_backward(explained):
    spec, rows = explained
    first = rows[f"dA{spec.n_layers}" if spec.loss == "mse" else f"dZ{spec.n_layers}"]
    torch_node, tf_ops = LOSS_NODES[spec.loss]
    assert torch_node in first["torch_nodes"]
    assert any(op in first["tf_ops"].split(" → ") for op in tf_ops), first["tf_ops"]
    if spec.loss == "mse":
        assert rows[f"dZ{spec.n_layers}"]["torch_nodes"] == "SoftmaxBackward0"


def test_scratch_column_quotes_the_code_that_ran(explained):
    spec, rows = explained
    model = MLP(spec)
    hidden, out, loss = type(model.activations[0]), type(model.activations[-1]), type(model.loss_fn)
    assert_quoted(rows, (hidden, out, loss, Dense, Dropout))
    for layer in range(1, spec.n_layers):
        assert rows[f"dZ{layer}"]["where"].endswith(f"{hidden.__name__}.backward")
        assert ("Dropout.backward" in rows[f"dZ{layer}"]["where"]) == bool(spec.dropout)
        assert rows[f"Z{layer}"]["where"] == "Dense.forward"
        assert "@ self.weight.T" in rows[f"Z{layer}"]["scratch"]
    output = rows[f"dZ{spec.n_layers}"]["where"]
    if spec.loss == "mse":                           # dZ_L through the output activation
        assert output == f"{out.__name__}.backward"
        assert rows[f"dA{spec.n_layers}"]["where"] == f"{loss.__name__}.gradient"
    else:                                            # the fused (A − Y)/m, no activation backward
        assert output == f"{loss.__name__}.gradient"
        assert "(a - y)" in rows[f"dZ{spec.n_layers}"]["scratch"]
    for layer in range(1, spec.n_layers + 1):      # the layer's own formula, and λ·W only with L2
        weight_rows = rows[f"dW{layer}"]["scratch"]
        assert weight_rows.startswith("dw = dz.T @ a_prev")
        assert ("dw +=" in weight_rows) == bool(spec.l2)


def test_every_difference_is_within_the_float64_tolerance(explained):
    spec, rows = explained
    for row in rows.values():
        bound = tolerance(spec.dtype, "gradient" if row["name"].startswith("d") else "forward")
        for framework in ("torch", "keras", "jax"):
            assert row[f"{framework}_max_rel"] <= bound, (row["name"], framework)
            assert 0.0 <= row[f"{framework}_max_abs"] < np.inf
            assert row[f"{framework}_match"] == ("exact" if row[f"{framework}_max_abs"] == 0 else "≈")
        kind = "gradient" if row["name"].startswith("d") else "forward"
        assert row["ok"] is True and row["tolerance"] == tolerance(spec.dtype, kind)


def test_the_match_word_says_exact_close_or_off():
    assert explain_module.match_word(0.0, 0.0, 1e-12) == "exact"
    assert explain_module.match_word(1e-15, 1e-13, 1e-12) == "≈"
    assert explain_module.match_word(1e-3, 1e-11, 1e-12) == "✗"          # beyond the bound must say so
    assert explain_module.match_word(None, None, 1e-12) == "—"


def test_the_scratch_column_follows_the_code(monkeypatch):
    """A changed activation shows its own line: nothing in the table is a copied string."""

    class WhereReLU(activations.ReLU):
        def backward(self, z, a, da):
            return np.where(z > 0, da, 0.0 * da)

    monkeypatch.setitem(activations._REGISTRY, "relu", WhereReLU)
    monkeypatch.setattr(explain_module, "available_backends", lambda: ["scratch"])
    spec = ModelSpec((4, 3, 2))
    case = make_case(spec, 4, 0)
    rows = explain(spec, case.tensors, case.x, case.targets)
    dz1 = next(row for row in rows if row["name"] == "dZ1")
    assert dz1["where"] == "WhereReLU.backward"
    assert dz1["scratch"] == "return np.where(z > 0, da, 0.0 * da)"


def test_a_missing_framework_is_named_not_guessed(monkeypatch):
    monkeypatch.setattr(explain_module, "available_backends", lambda: ["scratch"])
    spec = ModelSpec((4, 3, 2))
    case = make_case(spec, 4, 0)
    rows = explain(spec, case.tensors, case.x, case.targets)
    assert all(row["torch_nodes"] == "torch not installed" and row["tf_ops"] == "keras not installed"
               and row["jax_eqns"] == "jax not installed"
               and row["torch_max_abs"] is None and row["ok"] is None for row in rows)
    assert "[1] torch not installed" in format_table(rows)
    output = next(row for row in rows if row["name"] == "dZ2")
    assert output["where"] == f"{losses.CategoricalCrossEntropy.__name__}.gradient"


def test_cli_prints_the_table_and_writes_json(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    path = tmp_path / "explain.json"
    code = main(["explain", "--layers", "5,4,3", "--hidden", "tanh", "--batch", "4", "--json", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "engine line" in out and "TanhBackward0" in out and "TanhGrad" in out
    assert "JAX eqn(s)" in out and "dA ⊙ (1 − A²)" in out and "return da * (1 - a * a)" in out

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    document = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    assert ModelSpec.from_dict(document["spec"]).layer_sizes == (5, 4, 3) and document["batch"] == 4
    assert [row["name"] for row in document["explain"]] == ["Z1", "A1", "Z2", "A2", "dZ2", "dW2", "db2",
                                                             "dA1", "dZ1", "dW1", "db1"]
    assert all(row["torch_saved"] for row in document["explain"])


def test_cli_refuses_spec_flags_with_a_weight_file(tmp_path, capsys):
    code = main(["explain", "--weights", str(tmp_path / "w.safetensors"), "--layers", "5,4,3"])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ") and "--layers" in err and err.count("\n") == 1


# -- convolutional stacks ---------------------------------------------------------------------------

# conv (identity) → BatchNorm (ReLU) → max-pool → conv (tanh) → flatten → dense softmax: every row
# kind of a conv stack (a conv's dW, db and input gradient, BatchNorm's γ, β and input gradient, a
# pool's input gradient). The BatchNorm follows one framework's convention; the other refuses it.
CONV_STACK_BN = {"keras": dict(decay=0.99, epsilon=1e-3, running_variance="biased"),
                 "torch": dict(decay=0.9, epsilon=1e-5, running_variance="unbiased")}
REFUSES = {"keras": "torch", "torch": "keras"}     # BatchNorm convention → the twin that refuses it
# framework column → (conv dW, conv input gradient, max-pool input gradient, BatchNorm input
# gradient, BatchNorm γ and β, ReLU′): node/op/equation names each row must contain, as each
# framework's graph records them (Keras 3 normalizes with tf.nn.batch_normalization, decomposed
# into Rsqrt, Mul, Sub…, so TF's BatchNorm backward is RsqrtGrad among Mul/Sum ops, not
# FusedBatchNormGradV3; the JAX twin calls jax.nn.standardize)
CONV_NAMES = {
    "torch_nodes": ("ConvolutionBackward0 → AccumulateGrad", "ConvolutionBackward0",
                    "MaxPool2DWithIndicesBackward0", "NativeBatchNormBackward0",
                    "NativeBatchNormBackward0 → AccumulateGrad", "ReluBackward0"),
    "tf_ops": ("Conv2DBackpropFilter", "Conv2DBackpropInput", "MaxPoolGrad", "RsqrtGrad", "Sum", "ReluGrad"),
    "jax_eqns": ("conv_general_dilated", "conv_general_dilated", "select_and_scatter_add", "standardize",
                 "reduce_sum", "select_n"),
}


def conv_spec(convention: str) -> ModelSpec:
    layers = (Conv2DSpec(2, 3, padding="same", activation="identity"),
              BatchNormSpec(**CONV_STACK_BN[convention], activation="relu"), MaxPool2DSpec(2),
              Conv2DSpec(2, 2, activation="tanh"), FlattenSpec("channels_last"), DenseSpec(3, "softmax"))
    return ModelSpec(inputs=(1, 6, 6), layers=layers, init="he_normal", seed=3)


@pytest.fixture(scope="module", params=sorted(CONV_STACK_BN), ids=lambda c: f"batchnorm-{c}")
def conv_explained(request):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    pytest.importorskip("jax")
    spec = conv_spec(request.param)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, *spec.input_shape))
    model = Network(spec)
    rows = explain(spec, model.tensors, x, model.targets(rng.integers(0, 3, 4)))
    return request.param, spec, {row["name"]: row for row in rows}


def test_conv_rows_cover_every_layer_and_parameters_only_where_the_spec_has_them(conv_explained):
    _, spec, rows = conv_explained
    shapes, m = spec.layer_shapes, 4
    expected = []
    for layer in range(spec.n_layers, 0, -1):
        if layer < spec.n_layers:
            expected.append((f"dA{layer}", (m, *shapes[layer])))
        expected.append((f"dZ{layer}", (m, *shapes[layer])))
        if layer in spec.parameter_layers:                      # (dW, db), or BatchNorm's (dgamma, dbeta)
            index = spec.parameter_layers.index(layer)
            expected += list(zip(spec.gradient_names[index], spec.parameter_shapes[index], strict=True))
    assert spec.parameter_layers == (1, 2, 4, 6) and spec.gradient_names[1] == ("dgamma2", "dbeta2")
    assert [(name, row["shape"]) for name, row in backward_rows(rows).items()] == \
        [(n, str(s)) for n, s in expected]


def test_conv_rows_name_the_framework_backward_of_each_layer(conv_explained):
    convention, _, rows = conv_explained
    ran = [column for column in CONV_NAMES if not rows["dW1"][column].startswith("skipped")]
    assert len(ran) == 2
    for column in ran:
        conv_w, conv_input, pool_input, norm_input, norm_parameters, relu = CONV_NAMES[column]
        for layer in (1, 4):                                    # a conv's kernel and bias
            assert conv_w in rows[f"dW{layer}"][column], (column, layer)
        assert conv_input in rows["dA3"][column], column        # layer 4's input gradient
        assert pool_input in rows["dA2"][column], column        # layer 3's
        assert relu in rows["dZ2"][column], column
        for name in ("dA1", "dZ1"):                             # BatchNorm's input gradient (A_1 = Z_1)
            assert norm_input in rows[name][column], (column, name)
        for name in ("dgamma2", "dbeta2"):                     # γ and β
            assert norm_parameters in rows[name][column], (column, name)
    refused = rows["dW1"][explain_module.COLUMNS[REFUSES[convention]]]
    assert refused.startswith(f"skipped: {REFUSES[convention]} backend:") and "running variance" in refused


def test_conv_scratch_column_quotes_the_layers_backward(conv_explained):
    _, spec, rows = conv_explained
    assert_quoted(rows, (Conv2D, BatchNorm, MaxPool2D, Flatten, Dense, Dropout, activations.ReLU,
                         activations.Tanh, activations.Softmax, activations.Identity,
                         losses.CategoricalCrossEntropy))
    assert rows["dW1"]["where"].startswith("Conv2D.backward") and rows["dW1"]["scratch"].startswith("dw = ")
    assert rows["db1"]["where"] == "Conv2D.backward" and rows["db1"]["scratch"].startswith("db = ")
    assert rows["dA3"]["where"] == "Conv2D.input_gradient" and "d_columns" in rows["dA3"]["scratch"]
    assert rows["dA2"]["where"] == "MaxPool2D.backward"
    gamma = rows["dgamma2"]
    assert gamma["where"] == "BatchNorm.backward" and gamma["scratch"].startswith("dgamma = ")
    assert rows["dgamma2"]["quantity"] == "dL/dgamma_2" and rows["dbeta2"]["quantity"] == "dL/dbeta_2"
    assert "dW2" not in rows and "db2" not in rows
    assert rows["dA1"]["where"] == "BatchNorm.backward"
    assert rows["Z2"]["where"] == "BatchNorm.forward" and "x_hat" in rows["Z2"]["scratch"]


def test_conv_differences_are_within_the_tolerance_table(conv_explained):
    convention, spec, rows = conv_explained
    for row in rows.values():
        bound = tolerance(spec.dtype, "gradient" if row["name"].startswith("d") else "forward")
        for framework in ("torch", "keras", "jax"):
            if framework == REFUSES[convention]:
                assert row[f"{framework}_max_rel"] is None and row[f"{framework}_max_abs"] is None
            else:
                assert row[f"{framework}_max_rel"] <= bound, (row["name"], framework)
                assert 0.0 <= row[f"{framework}_max_abs"] < np.inf
        assert row["ok"] is True and row["tolerance"] == bound


@pytest.mark.slow
def test_cli_explains_lenet5_on_mnist_maps(capsys):
    """``explain --model lenet5``: the MNIST rows reshaped to 1×28×28, every twin in float32."""
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    pytest.importorskip("jax")
    code = main(["explain", "--model", "lenet5", "--batch", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    for name in ("ConvolutionBackward0", "MaxPool2DWithIndicesBackward0", "Conv2DBackpropFilter",
                 "Conv2DBackpropInput", "MaxPoolGrad", "conv_general_dilated", "select_and_scatter_add",
                 "columns.T).reshape(self.weight.shape)", "np.equal(view,"):
        assert name in out, name
    assert "not run" not in out
