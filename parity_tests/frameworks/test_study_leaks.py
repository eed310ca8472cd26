"""Where backprop leaks (:mod:`reports.study.leaks`), on tiny settings: the four backends agree on
every gradient norm (and a perturbed norm is caught), the sigmoid stack vanishes and ReLU + He
does not, dead-unit counts are integers that can only grow in the first layer, every backend
leaves the finite numbers at the same step, the frameworks' defaults are what the page says, and
the section's drawings and blocks render."""

from __future__ import annotations

import copy
import json
import math
import xml.etree.ElementTree as ET

import pytest

from reports.render.blocks import Details, Svg, Table
from reports.render.html import render_block
from reports.study.leaks import (
    LeakSettings,
    agreement_rows,
    disagreements,
    leaks_blocks,
    leaks_data,
)
from scratch.errors import SpecError

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("jax")

BACKENDS = ["scratch", "torch", "keras", "jax"]
TINY = LeakSettings(batch=8, depth=5, width=16, dead_width=16, dead_steps=4, dead_every=2, explode_depth=4,
                    explode_steps=6, explode_gain=2.0, explode_learning_rate=0.01)
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def data():
    return leaks_data(TINY)


def test_the_data_is_json_ready_and_every_backend_ran(data):
    assert data["backends"] == BACKENDS and data["skipped"] == {}
    assert json.loads(json.dumps(data, allow_nan=False)) == data


def test_the_four_backends_agree_on_every_norm(data):
    assert agreement_rows(data) == []
    for stack in data["vanishing"]:
        assert list(stack["dW"]) == BACKENDS
        assert len(stack["dW"]["torch"]) == TINY.depth + 1
        for backend in BACKENDS:
            for actual, desired in zip(stack["dW"][backend], stack["dW"]["scratch"], strict=True):
                assert actual == pytest.approx(desired, rel=data["tolerance"])


@pytest.mark.parametrize("perturbed", [1.0 + 1e-3, float("nan")], ids=["relative-1e-3", "nan"])
def test_a_perturbed_norm_is_caught(data, perturbed):
    changed = copy.deepcopy(data)
    value = changed["vanishing"][0]["dW"]["keras"][2]
    changed["vanishing"][0]["dW"]["keras"][2] = "nan" if math.isnan(perturbed) else value * perturbed
    rows = agreement_rows(changed)
    assert [(row["backend"], row["index"]) for row in rows] == [("keras", 2)]
    assert rows[0]["where"].endswith("dW3")
    html = "\n".join(render_block(block) for block in leaks_blocks(changed))
    assert "1 norms differ beyond the gradient tolerance" in html


def test_disagreements_compares_non_finite_values_by_kind():
    assert disagreements({"scratch": ["inf", "nan", 1.0], "jax": ["inf", "nan", 1.0]}, 1e-4) == []
    rows = disagreements({"scratch": ["inf", 1.0], "jax": ["nan", 1.0 + 2e-4]}, 1e-4)
    assert [row["index"] for row in rows] == [0, 1]


def test_the_sigmoid_stack_vanishes_and_relu_with_he_does_not(data):
    *sigmoids, relu = data["vanishing"]
    for stack in sigmoids:
        assert stack["activation"] == "sigmoid"
        for backend in BACKENDS:            # ‖dW_L‖ / ‖dW_1‖: the first layer's gradient is tiny
            assert stack["ratio"][backend] > 100, (stack["label"], backend)
            assert stack["dW"][backend][0] < stack["dW"][backend][-1] / 100
    assert relu["activation"] == "relu"
    for backend in BACKENDS:
        assert 0.01 < relu["ratio"][backend] < 10, backend


def test_dead_units_are_counted_and_only_grow_in_the_first_layer(data):
    dead = data["dead"]
    assert dead["steps"] == [0, 2, 4]
    for backend in BACKENDS:
        counts = dead["counts"][backend]
        assert len(counts) == len(dead["steps"])
        for per_layer in counts:
            assert all(isinstance(count, int) and 0 <= count <= units
                       for count, units in zip(per_layer, dead["units"], strict=True))
        first_layer = [per_layer[0] for per_layer in counts]
        assert first_layer == sorted(first_layer), backend
        assert sum(counts[-1]) > sum(counts[0]), backend   # the learning rate kills units
        assert counts == dead["counts"]["scratch"], backend
        assert len(dead["loss"][backend]) == TINY.dead_steps


def test_every_backend_leaves_the_finite_numbers_at_the_same_step(data):
    explode = data["exploding"]
    firsts = {explode["first_nonfinite_loss"][backend] for backend in BACKENDS}
    assert len(firsts) == 1 and None not in firsts
    first = firsts.pop()
    for backend in BACKENDS:
        losses = explode["loss"][backend]
        assert all(isinstance(loss, float) for loss in losses[:first])
        assert losses[:first] == sorted(losses[:first])          # growing until it overflows
        assert losses[first] in ("inf", "nan") and losses[-1] == "nan"
        assert explode["raised"][backend] is None                 # nobody stops it by default
        dz = explode["dZ"][backend]
        assert dz[0] > dz[-1] * 10                                # larger towards the input
        assert explode["first_nonfinite_parameters"][backend] is not None


def test_the_frameworks_defaults_are_as_stated(data):
    defaults = data["defaults"]
    assert [row["framework"] for row in defaults["optimizers"]] == ["torch", "keras", "jax"]
    assert not any(row["clipped"] for row in defaults["optimizers"])
    assert "clipnorm=None, clipvalue=None, global_clipnorm=None" in defaults["optimizers"][1]["measured"]
    losses = {row["what"]: row for row in defaults["losses"]}
    torch_probabilities = losses["BCELoss on sigmoid(z) (probabilities)"]
    assert torch_probabilities["loss"][-1] == 100.0                        # log p clamped at −100
    sigmoid = 1.0 / (1.0 + math.exp(40.0))                                # z = −40: shrunk to −σ(z)/1e-12
    assert torch_probabilities["gradient"][2] == pytest.approx(-sigmoid / 1e-12, rel=1e-5)
    keras_probabilities = next(row for what, row in losses.items()
                               if what.startswith("binary_crossentropy on tf.sigmoid"))
    assert keras_probabilities["loss"][1] == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert keras_probabilities["gradient"][1:] == [0.0, 0.0, 0.0]          # clipped: no gradient
    for row in defaults["losses"]:
        if "twin" in row["what"] or "keeps its logits" in row["what"]:
            assert row["gradient"][1:] == [-1.0, -1.0, -1.0], row["what"]
            assert row["loss"][-1] == pytest.approx(120.0)
    measured = {row["framework"]: row["measured"] for row in defaults["nan_checks"]}
    assert measured == {"torch": "False", "jax": "False, False",
                        "keras": "History: True, ProgbarLogger: True, TerminateOnNaN: False"}


def _svgs(blocks):
    for block in blocks:
        if isinstance(block, Svg):
            yield block
        elif isinstance(block, Details):
            yield from _svgs(block.blocks)


def test_every_chart_is_well_formed_svg_with_one_polyline_per_backend(data):
    svgs = list(_svgs(leaks_blocks(data)))
    assert len(svgs) == len(data["vanishing"]) + 2
    for svg in svgs:
        root = ET.fromstring(svg.markup)
        assert root.tag == f"{SVG}svg" and root.find(f"{SVG}title").text
        series = [line.get("data-series") for line in root.iter(f"{SVG}polyline")]
        assert [name.split(":")[0] for name in series] == BACKENDS
        assert "url(" not in svg.markup and "<script" not in svg.markup


def test_the_blocks_render(data):
    blocks = leaks_blocks(data)
    html = "\n".join(render_block(block) for block in blocks)
    for table in ("leaks-vanishing", "leaks-dead", "leaks-exploding-steps", "leaks-nonfinite",
                  "leaks-clipping", "leaks-losses", "leaks-nan-checks"):
        assert f'id="table-{table}"' in html
    assert "The backends agree on every norm" in html
    assert f"{data['vanishing'][0]['ratio']['scratch']:.3g}" in html
    assert all(isinstance(block, (str, Svg, Table, Details)) for block in blocks)


@pytest.mark.parametrize("field, value", [("depth", 0), ("dead_every", 1.5), ("explode_gain", float("inf")),
                                          ("dtype", "float16"), ("backends", ("torch",))])
def test_bad_settings_are_refused(field, value):
    with pytest.raises(SpecError, match=field):
        LeakSettings(**{field: value})
