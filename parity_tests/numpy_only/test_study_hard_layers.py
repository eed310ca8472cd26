"""The hard layers step by step (``reports.study.hard_layers``).

For an MLP (no BatchNorm, pooling, convolution, dropout or L2: one line each, naming a catalog
model that has the layer) and for a small float64 conv + BatchNorm + max-pool + dropout + L2
model: the numbers in the data are recomputed here from the run's arrays by other means (numpy's
var, a naive convolution, a reshape of the pooling windows, …); every staged or im2col check is
within 1e-12 relative in float64; a wrong stage of the staged BatchNorm, a convolution that flips
its kernel and a last-maximum pooling rule each make their check report a mismatch; the blocks
render; and the separate softmax + CE path at the largest logit scale is non-finite or far off
while the fused one stays finite.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from reports.render.blocks import Details, Svg, Table
from reports.render.html import render_block
from reports.render.markdown import _block as markdown_block
from reports.scenarios.common import start
from reports.study import hard_layers
from reports.study.graph import summary
from reports.study.hard_layers import (
    BN_BACKWARD,
    Stage,
    check,
    failed_checks,
    hard_layers_blocks,
    hard_layers_data,
)
from reports.study.run import study_run
from scratch.batching import dropout_masks
from scratch.catalog import MODELS, get_model
from scratch.data import drawn_batch
from scratch.layer_specs import (
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    GRUSpec,
    LSTMSpec,
    MaxPool2DSpec,
    SimpleRNNSpec,
)
from scratch.spec import ModelSpec

ROWS = 4
TOPICS = ("batch_norm", "softmax", "max_pool", "conv", "dropout", "l2", "bptt")


def make_run(spec: ModelSpec, rows: int = ROWS):
    x, labels = drawn_batch(spec, rows, spec.seed, None)
    return study_run(spec, start(spec).tensors, x, labels, dropout_masks(spec, 0, rows))


def small_cnn() -> ModelSpec:
    """conv (identity) → BatchNorm (relu) → max-pool → conv (same) → flatten → dense → dropout →
    softmax, float64, with L2: every topic present, on MNIST digits (ties in blank regions)."""
    layers = (Conv2DSpec(3, 3, activation="identity"), BatchNormSpec(activation="relu"), MaxPool2DSpec(2),
              Conv2DSpec(4, 3, padding="same"), FlattenSpec(), DenseSpec(16), DropoutSpec(0.5),
              DenseSpec(10, "softmax"))
    return ModelSpec(inputs=(1, 28, 28), layers=layers, dtype="float64", l2=0.01)


@pytest.fixture(scope="module")
def mlp():
    return make_run(get_model("mnist-default").spec())


@pytest.fixture(scope="module")
def cnn():
    return make_run(small_cnn())


@pytest.fixture(scope="module")
def mlp_data(mlp):
    return hard_layers_data(mlp)


@pytest.fixture(scope="module")
def cnn_data(cnn):
    return hard_layers_data(cnn)


def every_check(data: dict) -> list[dict]:
    return [entry for name in TOPICS for entry in data[name].get("checks", [])]


# --------------------------------------------------------------------------------- what is shown

def test_an_absent_layer_is_one_line_naming_a_catalog_model_that_has_it(mlp_data):
    kinds = {"max_pool": "max_pool2d", "conv": "conv2d"}
    for topic, kind in kinds.items():
        line = mlp_data[topic]["absent"]
        named = re.search(r"catalog models? ([\w-]+)", line).group(1)
        assert any(layer.kind == kind for layer in MODELS[named].spec().numbered_layers), line
    named = re.search(r"catalog models? ([\w-]+)", mlp_data["dropout"]["absent"]).group(1)
    assert any(MODELS[named].spec().dropout_rates)
    # no catalog model has BatchNorm or sets L2: the lines say so instead of naming one
    assert not any(layer.kind == "batch_norm" for model in MODELS.values()
                   for layer in model.spec().numbered_layers)
    assert "no catalog model has one" in mlp_data["batch_norm"]["absent"]
    assert not any(model.spec().l2 for model in MODELS.values())
    assert "λ = 0" in mlp_data["l2"]["absent"]
    assert set(mlp_data["softmax"]) > {"checks", "scales"}              # softmax + CE is there
    named = re.search(r"catalog models? ([\w-]+)", mlp_data["bptt"]["absent"]).group(1)
    assert any(layer.kind in ("lstm", "gru", "simple_rnn") for layer in MODELS[named].spec().numbered_layers)


def test_every_topic_is_there_for_the_small_cnn(cnn_data):
    assert all("absent" not in cnn_data[topic] for topic in TOPICS if topic != "bptt")
    assert (cnn_data["batch_norm"]["layer"], cnn_data["max_pool"]["layer"], cnn_data["conv"]["layer"],
            cnn_data["dropout"]["layer"]) == (2, 3, 4, 6)


def test_every_check_is_rounding_level_in_float64(mlp_data, cnn_data):
    checks = every_check(mlp_data) + every_check(cnn_data)
    assert len(checks) == 2 + 4 + 2 + 1 + 4 + 1 + 5
    for entry in checks:
        assert entry["ok"] and entry["relative"] <= 1e-12, entry
    assert failed_checks(cnn_data) == []


def test_batch_norm_stages_are_the_runs_numbers(cnn, cnn_data):
    bn = cnn_data["batch_norm"]
    x, dz = cnn.forward.a[0], cnn.gradients.dz[1]                       # A1 and dZ2
    stages = {entry["name"]: entry for entry in bn["stages"]}
    assert stages["μ"]["summary"] == summary(x.mean(axis=(0, 2, 3)))
    assert stages["σ²"]["summary"] == summary(x.var(axis=(0, 2, 3)))
    assert stages["dβ"]["summary"] == summary(cnn.named["dbeta2"])
    shown, engine = dict(stages["dx"]["summary"]), summary(cnn.named["dA1"])   # its mean: rounding noise
    assert shown.pop("mean") == pytest.approx(engine.pop("mean"), abs=1e-15) and shown == engine
    assert stages["y"]["summary"] == summary(cnn.named["Z2"])
    assert stages["dx̂"]["summary"] == summary(dz * cnn.tensors[1]["gamma"][:, None, None])
    assert (bn["channels"], bn["n"], bn["shape"]) == (3, ROWS * 26 * 26, list(x.shape))
    assert [entry["name"] for entry in bn["stages"]][-8:] == ["dβ", "dγ", "dx̂", "d(1/σ)", "dσ²", "d(x−μ)",
                                                              "dμ", "dx"]


def test_batch_norm_graph_sums_the_gradients_of_the_two_reused_values(cnn_data):
    graph = cnn_data["batch_norm"]["graph"]
    nodes = {node["id"]: node for node in graph["nodes"]}
    assert set(nodes) == {"x", "μ", "x−μ", "σ²", "1/σ", "x̂", "y", "γ", "β"}
    assert {id for id, node in nodes.items() if node.get("reused")} == {"x", "x−μ"}
    backward = [edge for edge in graph["edges"] if edge["kind"] == "backward"]
    assert len(backward) == len(graph["edges"]) // 2 == 10
    assert all("points" in edge and "label" in edge for edge in backward)
    stages = {entry["name"]: entry["summary"] for entry in cnn_data["batch_norm"]["stages"]}
    assert nodes["x"]["grad"] == stages["dx"] and nodes["σ²"]["grad"] == stages["dσ²"]


def test_a_wrong_stage_makes_the_batch_norm_check_a_mismatch(cnn, monkeypatch):
    """dσ² without its −½ (a classic slip) changes d(x − μ), dμ and dx: dx no longer equals the
    engine's compact formula, and the page says so."""
    wrong = tuple(Stage(s.name, s.math, lambda v: v["d(1/σ)"] * v["1/σ"] ** 3, True) if s.name == "dσ²" else s
                  for s in BN_BACKWARD)
    monkeypatch.setattr(hard_layers, "BN_BACKWARD", wrong)
    data = hard_layers_data(cnn)
    checks = {entry["quantity"]: entry for entry in data["batch_norm"]["checks"]}
    assert not checks["dx"]["ok"] and checks["dx"]["relative"] > 1e-3
    assert checks["y"]["ok"] and checks["dγ"]["ok"] and checks["dβ"]["ok"]
    assert failed_checks(data) == ["batch_norm: dx"]
    html = "\n".join(render_block(block) for block in hard_layers_blocks(data))
    assert '<td class="fail">MISMATCH</td>' in html and "1 beyond it: batch_norm: dx" in html


def test_softmax_numbers_are_the_runs(mlp, mlp_data):
    sm = mlp_data["softmax"]
    z, a, y = mlp.forward.z[-1], mlp.forward.a[-1], mlp.targets
    first = sm["scales"][0]
    assert first["scale"] == 1.0 and first["max_logit"] == float(np.abs(z).max())
    assert first["min_target_probability"] == float(a[np.arange(ROWS), mlp.labels].min())
    assert first["loss_fused"] == pytest.approx(mlp.loss, rel=1e-15)
    assert sm["m"] == ROWS and sm["classes"] == 10
    assert [row["scale"] for row in sm["scales"]] == [1.0, 100.0, 1000.0]
    separate = dict((entry["quantity"], entry) for entry in sm["checks"])
    assert separate["fused (A − Y)/m"]["max_abs"] == float(np.abs((a - y) / ROWS - mlp.named["dZ3"]).max())


@pytest.mark.parametrize("which", ["mlp_data", "cnn_data"])
def test_the_separate_softmax_path_breaks_at_huge_logits_and_the_fused_does_not(which, request):
    rows = request.getfixturevalue(which)["softmax"]["scales"]
    huge = rows[-1]
    assert huge["separate_nonfinite"] > 0 or huge["separate_relative"] > 1e-3
    assert huge["loss_separate"] is None and huge["min_target_probability"] == 0.0
    assert all(row["fused_finite"] and row["loss_fused"] is not None for row in rows)
    assert rows[0]["separate_nonfinite"] == 0 and rows[0]["separate_relative"] <= 1e-12


def test_the_separate_path_is_recomputed_independently_at_huge_logits(mlp, mlp_data):
    """The count of inf/NaN entries, from softmax and the chain rule written out here."""
    z, y = mlp.forward.z[-1] * 1000.0, mlp.targets
    e = np.exp(z - z.max(axis=1, keepdims=True))
    a = e / e.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        da = -y / (ROWS * a)
        jacobian = np.einsum("ni,ij->nij", a, np.eye(a.shape[1])) - np.einsum("ni,nj->nij", a, a)
        dz = np.einsum("nij,ni->nj", jacobian, da)
    assert int((~np.isfinite(dz)).sum()) == mlp_data["softmax"]["scales"][-1]["separate_nonfinite"] > 0


def test_max_pool_window_and_ties_are_the_runs(cnn, cnn_data):
    mp = cnn_data["max_pool"]
    x, dz, dx = cnn.forward.a[1], cnn.gradients.dz[2], cnn.named["dA2"]     # A2, dZ3, dA2
    m, c, h, w = x.shape
    blocks = x.reshape(m, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    blocks = blocks.reshape(m, c, h // 2, w // 2, 4)
    top = np.sort(blocks, axis=-1)
    tied = top[..., -1] == top[..., -2]
    assert mp["windows"] == blocks[..., 0].size and mp["ties"] == int(tied.sum())
    assert mp["zero_ties"] == int((blocks == 0).all(axis=-1).sum())
    assert mp["ties_with_gradient"] == int((tied & (dz != 0)).sum())
    n, ch, wy, wx = mp["window"]["where"]
    window = x[n, ch, 2 * wy:2 * wy + 2, 2 * wx:2 * wx + 2]
    assert mp["window"]["values"] == window.tolist() and mp["window"]["dz"] == dz[n, ch, wy, wx]
    i, j = mp["window"]["chosen"]
    assert window[i, j] == window.max() and mp["window"]["maxima"] == int((window == window.max()).sum()) > 1
    assert (window.ravel() == window.max()).argmax() == 2 * i + j          # the first maximum, row-major
    routed = np.zeros((2, 2))
    routed[i, j] = dz[n, ch, wy, wx]
    engine = dx[n, ch, 2 * wy:2 * wy + 2, 2 * wx:2 * wx + 2]
    assert mp["window"]["engine_dx"] == engine.tolist() == routed.tolist()


def test_a_last_maximum_rule_is_a_mismatch(cnn, monkeypatch):
    """Route each window to its *last* maximum instead: the batch's ties with a gradient make the
    routing check fail."""
    monkeypatch.setattr(hard_layers, "first_maximum",
                        lambda windows: windows.shape[-1] - 1 - windows[..., ::-1].argmax(axis=-1))
    mp = hard_layers.max_pool_data(cnn)
    assert mp["ties_with_gradient"] > 0 and not mp["checks"][0]["ok"]


def naive_conv(x, w, b, pad):
    """Z[n, o, y, x] = b[o] + Σ_{c,i,j} W[o, c, i, j]·X_p[n, c, y + i, x + j] by loops over (i, j)."""
    x_p = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    h_out, w_out = x_p.shape[2] - k + 1, x_p.shape[3] - k + 1
    z = np.zeros((len(x), w.shape[0], h_out, w_out)) + b[:, None, None]
    for i in range(k):
        for j in range(k):
            z += np.einsum("nchw,oc->nohw", x_p[:, :, i:i + h_out, j:j + w_out], w[:, :, i, j])
    return z


def test_conv_shapes_and_values_are_the_runs(cnn, cnn_data):
    cv = cnn_data["conv"]
    x, w, b = cnn.forward.a[2], cnn.tensors[2]["W"], cnn.tensors[2]["b"]     # layer 4's input, W4, b4
    assert cv["columns_shape"] == [3 * 3 * 3, ROWS * 13 * 13] and cv["w_col_shape"] == [4, 27]
    assert cv["dz_col_shape"] == [4, ROWS * 13 * 13] and cv["padding"] == [1, 1, 1, 1]
    assert np.abs(naive_conv(x, w, b, 1) - cnn.named["Z4"]).max() <= 1e-13
    assert cv["l2"] == 0.01 and "+ λW" in cv["checks"][1]["quantity"]
    assert cv["checks"][3]["against"] == "dA3 of the run"


def test_a_flipped_kernel_im2col_is_a_mismatch(cnn, monkeypatch):
    """A true convolution (the kernel flipped in im2col) instead of the frameworks'
    cross-correlation: Z and dW no longer match (dX goes through col2im, which is not flipped)."""
    real = hard_layers.im2col

    def flipped(x, kernel, *args):
        columns, out = real(x, kernel, *args)
        rows = columns.reshape(x.shape[1], kernel[0] * kernel[1], -1)[:, ::-1]
        return rows.reshape(columns.shape), out

    monkeypatch.setattr(hard_layers, "im2col", flipped)
    checks = {entry["quantity"].split(" =")[0]: entry for entry in hard_layers.conv_data(cnn)["checks"]}
    assert not checks["Z"]["ok"] and not checks["dW"]["ok"]
    assert checks["db"]["ok"] and checks["dX"]["ok"]


def test_dropout_numbers_are_the_runs(cnn, cnn_data):
    dr = cnn_data["dropout"]
    mask, dz = cnn.masks[5], cnn.gradients.dz[5]
    assert dr["rate"] == 0.5 and dr["scale"] == 2.0 and dr["total"] == mask.size == ROWS * 16
    assert dr["kept"] == int(np.count_nonzero(mask)) and dr["kept_fraction"] == dr["kept"] / mask.size
    assert set(np.unique(mask)) == {0.0, 2.0} and dr["scale_error"] == 0.0
    assert dr["dropped_dz_nonzero"] == 0 == int(np.count_nonzero(dz[mask == 0]))


def test_l2_numbers_are_the_runs(cnn, cnn_data):
    l2 = cnn_data["l2"]
    kernels = [cnn.tensors[i]["W"] for i in (0, 2, 3, 4)]
    penalty = 0.005 * sum(float((w ** 2).sum()) for w in kernels)
    assert l2["penalty"] == pytest.approx(penalty, rel=1e-14)
    assert l2["loss"] == cnn.loss and l2["data_loss"] == pytest.approx(cnn.loss - penalty, rel=1e-14)
    assert [row["layer"] for row in l2["layers"]] == [1, 4, 6, 7]
    first = l2["layers"][0]
    data_grad = cnn.named["dW1"] - 0.01 * kernels[0]
    assert first["norm_penalty_grad"] == pytest.approx(0.01 * np.linalg.norm(kernels[0]), rel=1e-14)
    assert first["norm_data_grad"] == pytest.approx(np.linalg.norm(data_grad), rel=1e-12)


# ---------------------------------------------------------------------------- other layouts

@pytest.mark.parametrize("layers, inputs", [
    ((BatchNormSpec(activation="tanh"), DenseSpec(3, "softmax")), 5),                # BN first, on (m, n)
    ((Conv2DSpec(2, 3, strides=2, padding="same"), FlattenSpec(), DenseSpec(3, "softmax")), (2, 7, 7)),
    ((MaxPool2DSpec(3, strides=2), FlattenSpec(), DenseSpec(3, "softmax")), (2, 7, 7)),   # overlapping
], ids=["batch-norm-first-dense", "conv-first-strided", "pool-first-overlapping"])
def test_first_layer_and_odd_windows_check_against_the_engines_own_backward(layers, inputs):
    spec = ModelSpec(inputs=inputs, layers=layers, dtype="float64")
    data = hard_layers_data(make_run(spec, rows=6))
    checks = every_check(data)
    assert checks and all(entry["ok"] and entry["relative"] <= 1e-12 for entry in checks)
    against = [entry["against"] for entry in checks]
    assert any("computes no dX for its input" in text for text in against)
    if "max_pool" in data and "window" in data["max_pool"]:
        assert data["max_pool"]["window"]["engine_dx"] is None       # windows overlap: dX is a sum


def test_float32_runs_are_held_to_the_float32_bound():
    data = hard_layers_data(make_run(get_model("lenet5").spec()))
    checks = every_check(data)
    assert {entry["bound"] for entry in checks} == {1e-5, 1e-4}
    assert all(entry["ok"] for entry in checks)


def test_the_check_fails_beyond_its_bound():
    engine = np.array([1.0, -2.0, 4.0])
    assert check("q", "e", engine + [0, 0, 4e-13], engine, "float64")["ok"] is True
    failed = check("q", "e", engine + [0, 0, 4e-12], engine, "float64")
    assert failed["ok"] is False and failed["relative"] == pytest.approx(1e-12, rel=1e-3)
    with pytest.raises(ValueError, match="is \\(2,\\) here but \\(3,\\)"):
        check("q", "e", engine[:2], engine, "float64")


# --------------------------------------------------------------------------------- the blocks

@pytest.mark.parametrize("which", ["mlp_data", "cnn_data"])
def test_blocks_render_in_html_and_markdown(which, request):
    data = request.getfixturevalue(which)
    blocks = hard_layers_blocks(data, id="m1")
    html = "\n".join(render_block(block) for block in blocks)
    markdown = "\n".join(line for block in blocks for line in markdown_block(block))
    assert "every one within it" in html and "MISMATCH" not in html
    ids = re.findall(r'<table id="([^"]+)"', html)
    assert len(ids) == len(set(ids)) and all(id.startswith("table-m1-") for id in ids)
    absent = [topic for topic in TOPICS if "absent" in data[topic]]
    details = [block for block in blocks if isinstance(block, Details)]
    assert len(details) == len(TOPICS) - len(absent) and len(blocks) == 1 + len(TOPICS)
    for topic in absent:
        assert data[topic]["absent"] in markdown
    if which == "cnn_data":
        svgs = [inner for block in details for inner in block.blocks if isinstance(inner, Svg)]
        assert len(svgs) == 1 and 'id="m1-bn-fwd"' in svgs[0].markup
        tables = [inner for block in details for inner in block.blocks if isinstance(inner, Table)]
        assert any(row[0] == "← dσ²" for table in tables for row in table.rows)
        assert "dZ6 is 0 at every dropped entry — here 0 non-zero of" in markdown


def test_data_is_json_ready(mlp_data, cnn_data):
    for data in (mlp_data, cnn_data):
        text = json.dumps(data, allow_nan=False)
        assert json.loads(text) == data


# ----------------------------------------------------------------------------------- BPTT

def sequence_stack(first) -> ModelSpec:
    """``first`` on MNIST's 28 rows as 28 steps, a second LSTM's last state, softmax; with L2."""
    layers = (first, LSTMSpec(5, return_sequences=False), DenseSpec(10, "softmax"))
    return ModelSpec(inputs=(28, 28), layers=layers, dtype="float64", l2=0.01)


@pytest.mark.parametrize("first", [LSTMSpec(6), GRUSpec(6, reset_after=False, init="keras"),
                                   SimpleRNNSpec(6, biases="one")])
def test_bptt_steps_are_the_engines_state_gradients(first):
    run = make_run(sequence_stack(first))
    bp = hard_layers_data(run)["bptt"]
    assert (bp["layer"], bp["steps"], bp["kind"], bp["last_only"]) == (1, 28, first.kind, False)
    through = run.network.layers[0].bptt(run.gradients.dz[0], run.x, run.forward.caches[0])
    norms = [float(np.linalg.norm(through.dh[:, t])) for t in range(28)]
    assert [row["dh"] for row in bp["rows"]] == pytest.approx(norms, rel=1e-12)
    assert [row["h"] for row in bp["rows"]] == pytest.approx(
        [float(np.linalg.norm(run.forward.z[0][:, t])) for t in range(28)], rel=1e-12)
    assert (bp["rows"][0]["dc"] is not None) == (first.kind == "lstm")
    assert bp["rows"][-1]["ratio"] is None and bp["rows"][0]["ratio"] == pytest.approx(norms[0] / norms[1])


def test_l2_covers_both_recurrent_kernels():
    run = make_run(sequence_stack(GRUSpec(6)))
    l2 = hard_layers_data(run)["l2"]
    assert [row["kernel"] for row in l2["layers"]] == ["W_ih1", "W_hh1", "W_ih2", "W_hh2", "W3"]
    assert all(entry["ok"] for entry in l2["checks"])
    penalty = 0.005 * sum(float((tensor ** 2).sum()) for layer in run.tensors
                          for name, tensor in layer.items() if name in ("weight_ih", "weight_hh", "W"))
    assert l2["penalty"] == pytest.approx(penalty, rel=1e-14)


def test_the_bptt_blocks_render():
    data = hard_layers_data(make_run(sequence_stack(LSTMSpec(6))))
    html = "\n".join(render_block(block) for block in hard_layers_blocks(data, id="seq"))
    assert "Backpropagation through time" in html and "‖δc_t‖" in html and "seq-bptt-steps" in html
