"""The backprop study (``reports.explain.walk``): each gradient's row names the torch autograd nodes,
the TensorFlow gradient ops and the JAX jaxpr equations that really produce it, quotes the scratch
code that computed it, and shows every framework within the float64 tolerance of the NumPy engine.
"""

from __future__ import annotations

import inspect
import json
import re

import numpy as np
import pytest
from cases import make_case

from reference.tolerances import tolerance
from reports.cli.main import main
from reports.explain import walk as explain_module
from reports.explain.walk import explain, format_table
from scratch import activations, losses
from scratch.layers import Dense, Dropout
from scratch.model import MLP
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
    return spec, {row["name"]: row for row in explain(spec, case.weights, case.biases, case.x, case.targets,
                                                        case.masks)}


def _collapsed(function) -> str:
    return " ".join(inspect.getsource(function).split())


def test_rows_walk_down_from_the_loss_with_shapes(explained):
    spec, rows = explained
    sizes, m = spec.layer_sizes, 8
    expected = []
    for layer in range(spec.n_layers, 0, -1):
        if layer < spec.n_layers or spec.loss == "mse":
            expected.append((f"dA{layer}", (m, sizes[layer])))
        expected += [(f"dZ{layer}", (m, sizes[layer])), (f"dW{layer}", (sizes[layer], sizes[layer - 1])),
                     (f"db{layer}", (sizes[layer],))]
    assert [(name, row["shape"]) for name, row in rows.items()] == [(n, str(s)) for n, s in expected]


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
    backward = _collapsed(type(model).backward)
    hidden, out, loss = type(model.activations[0]), type(model.activations[-1]), type(model.loss_fn)
    for row in rows.values():
        for statement in row["scratch"].split("; "):
            callee = re.fullmatch(r"(\w+)\.(\w+): (.*)", statement)
            if callee is None:
                assert statement in backward, (row["name"], statement)
            else:
                cls = {c.__name__: c for c in (hidden, out, loss, Dense, Dropout)}[callee[1]]
                assert callee[3] in _collapsed(getattr(cls, callee[2])), (row["name"], statement)
    for layer in range(1, spec.n_layers):
        assert f"{hidden.__name__}.backward: return" in rows[f"dZ{layer}"]["scratch"]
    output = rows[f"dZ{spec.n_layers}"]["scratch"]
    if spec.loss == "mse":                           # dZ_L through the output activation
        assert f"{out.__name__}.backward" in output and loss.__name__ not in output
        assert f"{loss.__name__}.gradient" in rows[f"dA{spec.n_layers}"]["scratch"]
    else:                                            # the fused (A − Y)/m, no activation backward
        assert f"{loss.__name__}.gradient" in output and ".backward" not in output
    for layer in range(1, spec.n_layers + 1):      # the layer's own formula, and λ·W only with L2
        weight_rows = rows[f"dW{layer}"]["scratch"]
        assert "Dense.weight_gradient: dw = dz.T @ a_prev" in weight_rows
        assert ("Dense.weight_gradient: dw +=" in weight_rows) == bool(spec.l2)


def test_every_difference_is_within_the_float64_tolerance(explained):
    spec, rows = explained
    bound = tolerance(spec.dtype, "gradient")
    for row in rows.values():
        for framework in ("torch", "keras", "jax"):
            assert row[f"{framework}_max_rel"] <= bound, (row["name"], framework)
            assert 0.0 <= row[f"{framework}_max_abs"] < np.inf
        assert row["ok"] is True and row["tolerance"] == bound


def test_the_scratch_column_follows_the_code(monkeypatch):
    """A changed activation shows its own line: nothing in the table is a copied string."""

    class WhereReLU(activations.ReLU):
        def backward(self, z, a, da):
            return np.where(z > 0, da, 0.0 * da)

    monkeypatch.setitem(activations._REGISTRY, "relu", WhereReLU)
    monkeypatch.setattr(explain_module, "available_backends", lambda: ["scratch"])
    spec = ModelSpec((4, 3, 2))
    case = make_case(spec, 4, 0)
    rows = explain(spec, case.weights, case.biases, case.x, case.targets)
    dz1 = next(row for row in rows if row["name"] == "dZ1")
    assert "WhereReLU.backward: return np.where(z > 0, da, 0.0 * da)" in dz1["scratch"]


def test_a_missing_framework_is_named_not_guessed(monkeypatch):
    monkeypatch.setattr(explain_module, "available_backends", lambda: ["scratch"])
    spec = ModelSpec((4, 3, 2))
    case = make_case(spec, 4, 0)
    rows = explain(spec, case.weights, case.biases, case.x, case.targets)
    assert all(row["torch_nodes"] == "torch not installed" and row["tf_ops"] == "keras not installed"
               and row["jax_eqns"] == "jax not installed"
               and row["torch_max_abs"] is None and row["ok"] is None for row in rows)
    assert "[1] torch not installed" in format_table(rows)
    assert losses.CategoricalCrossEntropy.__name__ in rows[0]["scratch"]


def test_cli_prints_the_table_and_writes_json(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    path = tmp_path / "explain.json"
    code = main(["explain", "--layers", "5,4,3", "--hidden", "tanh", "--batch", "4", "--json", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "scratch line" in out and "TanhBackward0" in out and "TanhGrad" in out
    assert "JAX eqn(s)" in out and "max|Δ| jax" in out

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    document = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    assert ModelSpec.from_dict(document["spec"]).layer_sizes == (5, 4, 3) and document["batch"] == 4
    assert [row["name"] for row in document["explain"]] == ["dZ2", "dW2", "db2", "dA1", "dZ1", "dW1", "db1"]


def test_cli_refuses_spec_flags_with_a_weight_file(tmp_path, capsys):
    code = main(["explain", "--weights", str(tmp_path / "w.safetensors"), "--layers", "5,4,3"])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ") and "--layers" in err and err.count("\n") == 1
