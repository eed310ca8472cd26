"""The study page's annotated graph (``reports.study.graph``, drawn by ``reports.study.svg``).

Counts come from the spec (what each layer kind contributes), every summary on a node is
recomputed here from the run's own arrays, a changed engine formula shows on the graph, no two
boxes overlap (the checker is shown an overlap it must find), the markup is well-formed SVG with
escaped text, and a value that feeds two consumers (W_l into its matmul and into L2) says that its
gradients are summed.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from reports.render.blocks import Details, Svg
from reports.scenarios.common import start
from reports.study import graph as study_graph
from reports.study.graph import REUSED, graph_blocks, graph_data
from reports.study.run import study_run
from scratch.batching import dropout_masks
from scratch.catalog import get_model
from scratch.data import drawn_batch
from scratch.layer_specs import activation_of

ROWS = 4
SVG = "{http://www.w3.org/2000/svg}"


def make_run(name: str, **changes):
    spec = get_model(name).spec()
    spec = spec.replace(**changes) if changes else spec
    x, labels = drawn_batch(spec, ROWS, spec.seed, None)
    return study_run(spec, start(spec).tensors, x, labels, dropout_masks(spec, 0, ROWS))


@pytest.fixture(scope="module")
def mlp():
    return make_run("mnist-default")


@pytest.fixture(scope="module")
def mlp_l2():
    return make_run("mnist-default", l2=0.01)


@pytest.fixture(scope="module")
def lenet():
    return make_run("lenet5")


def sig3(value) -> float:
    return float(f"{float(value):.3g}")


def expected_summary(array) -> dict:
    """The node summary, computed here: mean, std, min, max to 3 significant digits."""
    values = np.asarray(array, dtype=np.float64).ravel()
    mean = values.sum() / values.size
    return {"mean": sig3(mean), "std": sig3(math.sqrt(((values - mean) ** 2).sum() / values.size)),
            "min": sig3(min(values)), "max": sig3(max(values))}


def kinds(graph: dict) -> dict[str, list[dict]]:
    out = {"forward": [], "backward": []}
    for edge in graph["edges"]:
        out[edge["kind"]].append(edge)
    return out


def layer_counts(run, layer: int, *, detail_input: bool) -> tuple[int, int, int]:
    """(nodes, forward edges, backward edges) layer ``layer`` adds at full detail, from its spec:
    its trainable tensors, one op (two where a bias is added after a product), its activation,
    its dropout and mask, and for the output layer the targets and the loss."""
    spec = run.spec
    spec_layer = spec.numbered_layers[layer - 1]
    params = sum(tensor.trainable for tensor in spec_layer.tensors)
    split = spec_layer.kind in study_graph.SPLIT_BIAS
    ops = 2 if split else 1
    activation = activation_of(spec_layer) != "identity"
    last = layer == spec.n_layers
    rate = spec.dropout_rates[layer - 1] if not last else 0.0
    mask = bool(rate) and run.masks is not None and run.masks[layer - 1] is not None
    fused = spec.n_layers not in run.gradients.da
    nodes = params + ops + activation + bool(rate) + mask + detail_input
    forward = params + 1 + (1 if split else 0) + activation + bool(rate) + mask
    backward = params + (layer > 1) + (1 if split else 0) + (activation and not (last and fused)) + bool(rate)
    if last:
        nodes, forward, backward = nodes + 2, forward + 2, backward + 1
    return nodes, forward, backward


def boxes(graph: dict) -> list[tuple[str, float, float, float, float]]:
    """(what, left, top, right, bottom) of every node and every rule box."""
    out = [(node["id"], node["x"] - node["w"] / 2, node["y"] - node["h"] / 2,
            node["x"] + node["w"] / 2, node["y"] + node["h"] / 2) for node in graph["nodes"]]
    out += [(f"rule {edge['from']}→{edge['to']}", edge["label"]["x"] - edge["label"]["w"] / 2,
             edge["label"]["y"] - edge["label"]["h"] / 2, edge["label"]["x"] + edge["label"]["w"] / 2,
             edge["label"]["y"] + edge["label"]["h"] / 2) for edge in graph["edges"] if "label" in edge]
    return out


def overlaps(graph: dict) -> list[tuple[str, str]]:
    found = []
    every = boxes(graph)
    for i, (a, l1, t1, r1, b1) in enumerate(every):
        for b, l2, t2, r2, b2 in every[i + 1:]:
            if l1 < r2 and l2 < r1 and t1 < b2 and t2 < b1:
                found.append((a, b))
    return found


def all_graphs(data: dict) -> list[dict]:
    return [data] + data["layers"]


def test_mlp_counts_follow_the_spec(mlp, mlp_l2):
    for run in (mlp, mlp_l2):
        data = graph_data(run)
        assert not data["collapsed"] and data["layers"] == []
        spec = run.spec
        per_layer = [layer_counts(run, layer, detail_input=False) for layer in range(1, spec.n_layers + 1)]
        l2_nodes = 2 if spec.l2 else 0                     # the penalty and the total L
        l2_edges = len(spec.kernel_layers) + 2 if spec.l2 else 0
        edges = kinds(data)
        assert len(data["nodes"]) == 1 + sum(n for n, _, _ in per_layer) + l2_nodes
        assert len(edges["forward"]) == sum(f for _, f, _ in per_layer) + l2_edges
        assert len(edges["backward"]) == sum(b for _, _, b in per_layer) + l2_edges
        assert len({node["id"] for node in data["nodes"]}) == len(data["nodes"])


def test_lenet5_is_collapsed_one_node_per_layer_each_expandable(lenet):
    data = graph_data(lenet)
    spec = lenet.spec
    assert data["collapsed"]
    edges = kinds(data)
    assert len(data["nodes"]) == 1 + spec.n_layers + 2            # X, one per layer, Y, the loss
    assert len(edges["forward"]) == spec.n_layers + 2
    assert len(edges["backward"]) == spec.n_layers                # between layers, and the loss's
    assert [layer["layer"] for layer in data["layers"]] == list(range(1, spec.n_layers + 1))
    for layer in data["layers"]:
        nodes, forward, backward = layer_counts(lenet, layer["layer"], detail_input=True)
        edges = kinds(layer)
        counts = (len(layer["nodes"]), len(edges["forward"]), len(edges["backward"]))
        assert counts == (nodes, forward, backward), layer["title"]
    ops = {node["op"] for layer in data["layers"] for node in layer["nodes"]}
    assert {"conv2d", "max_pool", "flatten", "matmul", "add bias", "relu", "dropout mask",
            "softmax+CE"} <= ops
    blocks = graph_blocks(data)
    details = [block for block in blocks if isinstance(block, Details)]
    assert sum(isinstance(block, Svg) for block in blocks) == 1
    assert len(details) == spec.n_layers
    assert all(len(d.blocks) == 1 and isinstance(d.blocks[0], Svg) and not d.open for d in details)


def test_mlp_is_drawn_at_full_detail_in_one_drawing(mlp):
    blocks = graph_blocks(graph_data(mlp))
    assert [type(block) for block in blocks if not isinstance(block, str)] == [Svg]


def check_summaries(run, data) -> int:
    """Every node's value and gradient summary against the run's own arrays; how many were checked."""
    checked = 0
    values = dict(run.named)
    for index, (layer, names) in enumerate(zip(run.spec.parameter_layers, run.spec.parameter_names,
                                               strict=True)):
        for name in names:
            values[f"{study_graph.DISPLAY.get(name, name)}{layer}"] = run.tensors[index][name]
    values.update(X=run.x, Y=run.targets)
    for graph in all_graphs(data):
        for node in graph["nodes"]:
            if node["grad_name"] in run.named:
                assert node["grad"] == expected_summary(run.named[node["grad_name"]]), node["id"]
                checked += 1
            for extra in node.get("grads_more", []):
                assert extra["grad"] == expected_summary(run.named[extra["name"]]), node["id"]
                checked += 1
            for name in (node["name"], node.get("alias")):
                if name not in values:
                    continue
                assert node["value"] == expected_summary(values[name]), node["id"]
                assert node["shape"] == list(np.shape(values[name])), node["id"]
                checked += 1
    return checked


def test_every_summary_is_the_runs_own_number(mlp, mlp_l2, lenet):
    for run in (mlp, mlp_l2, lenet):
        data = graph_data(run)
        assert check_summaries(run, data) > 0
        shown = {node["grad_name"] for graph in all_graphs(data) for node in graph["nodes"]}
        shown |= {extra["name"] for graph in all_graphs(data) for node in graph["nodes"]
                  for extra in node.get("grads_more", [])}
        gradients = {name for name in run.named if name.startswith("d")}
        assert gradients <= shown, f"gradients on no node: {sorted(gradients - shown)}"
        named = {name for graph in all_graphs(data) for node in graph["nodes"]
                 for name in (node["name"], node.get("alias"))}
        values = set(run.named) - gradients
        assert values <= named, f"values on no node: {sorted(values - named)}"
    loss = next(node for node in graph_data(mlp)["nodes"] if node["id"] == "loss")
    assert loss["value"]["mean"] == sig3(mlp.loss)


def test_the_summary_checker_fails_on_a_wrong_number(mlp):
    data = json.loads(json.dumps(graph_data(mlp)))
    node = next(node for node in data["nodes"] if node["id"] == "Z2")
    node["grad"] = expected_summary(mlp.named["dZ1"])
    with pytest.raises(AssertionError, match="^Z2"):
        check_summaries(mlp, data)


def test_a_changed_engine_formula_changes_the_graph(mlp, monkeypatch):
    """ReLU's backward made to pass dA on unchanged (the classic missing g′): dZ1 on the graph
    changes to the patched run's dZ1, while the forward values stay."""
    before = graph_data(mlp)
    from scratch.activations import ReLU
    monkeypatch.setattr(ReLU, "backward", lambda self, z, a, da: da)
    run = make_run("mnist-default")
    after = graph_data(run)

    def node(data, id):
        return next(node for node in data["nodes"] if node["id"] == id)
    assert node(after, "Z1")["grad"] != node(before, "Z1")["grad"]
    assert node(after, "Z1")["grad"] == expected_summary(run.named["dZ1"])
    assert node(after, "W1")["grad"] != node(before, "W1")["grad"]
    assert node(after, "Z1")["value"] == node(before, "Z1")["value"]
    markup = graph_blocks(after)[1].markup
    z1 = node(after, "Z1")["grad"]
    assert f"μ {z1['mean']:.3g} σ {z1['std']:.3g}".replace("-", "−") in markup


def test_no_two_boxes_overlap(mlp, mlp_l2, lenet):
    for run in (mlp, mlp_l2, lenet):
        for graph in all_graphs(graph_data(run)):
            assert overlaps(graph) == [], graph.get("title", run.spec.describe_stack())


def test_the_overlap_checker_finds_an_overlap(mlp):
    data = json.loads(json.dumps(graph_data(mlp)))
    first, second = data["nodes"][:2]
    second["x"], second["y"] = first["x"] + 3, first["y"] + 3
    assert (first["id"], second["id"]) in overlaps(data)


def test_the_markup_is_well_formed_scalable_self_contained_svg(mlp, lenet):
    for run in (mlp, lenet):
        svgs = [block for block in graph_blocks(graph_data(run)) if isinstance(block, Svg)]
        svgs += [inner for block in graph_blocks(graph_data(run)) if isinstance(block, Details)
                 for inner in block.blocks]
        ids = []
        for drawing in svgs:
            root = ET.fromstring(drawing.markup)
            assert root.tag == f"{SVG}svg" and len(root.get("viewBox").split()) == 4
            assert not list(root.iter(f"{SVG}script")) and not list(root.iter(f"{SVG}style"))
            assert not list(root.iter(f"{SVG}image")) and "http" not in drawing.markup.replace(
                'xmlns="http://www.w3.org/2000/svg"', "")
            texts = list(root.iter(f"{SVG}text"))
            assert texts and all(float(text.get("font-size")) >= 10 for text in texts)
            ids += [marker.get("id") for marker in root.iter(f"{SVG}marker")]
        assert len(ids) == len(set(ids)), "marker ids repeat between the page's drawings"
    two_models = [block.markup for data, id in ((graph_data(mlp), "mlp"), (graph_data(lenet), "lenet"))
                  for block in graph_blocks(data, id) if isinstance(block, Svg)]
    markers = [m.get("id") for markup in two_models for m in ET.fromstring(markup).iter(f"{SVG}marker")]
    assert len(markers) == len(set(markers)), "two models' graphs on one page share marker ids"
    width = graph_data(mlp)["width"]
    assert width <= 1100, f"the MLP's drawing is {width} px wide: the page would shrink its text"


def test_text_is_escaped(mlp):
    data = json.loads(json.dumps(graph_data(mlp)))
    data["nodes"][0]["op"] = "<script>alert('x') & </script>"
    data["edges"][-1]["rule"] = 'a < b & "c"'
    markup = graph_blocks(data)[1].markup
    root = ET.fromstring(markup)
    assert not list(root.iter(f"{SVG}script"))
    assert "<script>alert('x') & </script>" in [text.text for text in root.iter(f"{SVG}text")]


def test_a_value_used_twice_sums_its_gradients(mlp, mlp_l2):
    data = graph_data(mlp_l2)
    for layer in mlp_l2.spec.kernel_layers:
        into = [edge for edge in data["edges"] if edge["kind"] == "backward" and edge["to"] == f"W{layer}"]
        assert sorted(edge["from"] for edge in into) == sorted([f"matmul{layer}", "L2"])
        assert all(REUSED in edge["rule"] for edge in into)
        assert next(node for node in data["nodes"] if node["id"] == f"W{layer}").get("reused")
    # A_{l−1} feeds one matmul, b_l one add: nothing is summed there, and without L2 nothing at all
    assert not any(REUSED in edge["rule"] for edge in data["edges"]
                   if edge["kind"] == "backward" and not edge["to"].startswith("W"))
    assert not any(REUSED in edge.get("rule", "") for edge in graph_data(mlp)["edges"])


def test_backward_rules_name_the_local_rule(mlp, lenet):
    rules = {edge["rule"] for edge in graph_data(mlp)["edges"] if edge["kind"] == "backward"}
    assert "add: passes the gradient on" in rules
    assert "matmul (swap): dA1 = dZ2·W2" in rules
    assert any(rule.startswith("relu: routes where Z1 > 0") for rule in rules)
    assert any(rule.startswith("softmax+CE fused: dZ3") for rule in rules)
    lenet_rules = {edge["rule"] for graph in all_graphs(graph_data(lenet)) for edge in graph["edges"]
                   if edge["kind"] == "backward"}
    assert any(rule.startswith("max-pool: routes to the max") for rule in lenet_rules)
    assert any(rule.startswith("dropout: the mask routes") for rule in lenet_rules)


def test_graph_data_is_json_ready(mlp, lenet):
    def plain(value) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or type(value) in (str, int, float, bool)
    for run in (mlp, lenet):
        data = graph_data(run)
        assert plain(data)
        assert json.loads(json.dumps(data)) == data
