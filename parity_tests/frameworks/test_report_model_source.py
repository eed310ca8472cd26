"""``report --spec FILE`` and ``report --weights FILE`` (``reports.cli.model_source``): the file's
model runs the parity, curves, divergence and explain rows under the file's stem, every entry
follows the schema, and a weight file's parameters (not the spec's initializer) are the start
every backend copies. The whole ``--quick`` report on a tiny spec is marked slow (over a minute
here: lenet5's rows, the seeds, variants and conventions run as always)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from reports.cli.main import build_parser, main  # noqa: E402
from reports.cli.report import load_results, slot_model  # noqa: E402
from reports.scenarios import curves as scenario_curves  # noqa: E402
from reports.scenarios import explain as scenario_explain  # noqa: E402
from reports.scenarios import parity as scenario_parity  # noqa: E402
from reports.scenarios.common import Context  # noqa: E402
from reports.schema import CURVES, EXPLAIN, PARITY, check_against  # noqa: E402
from scratch import catalog  # noqa: E402
from scratch.data import load_dataset  # noqa: E402
from scratch.model import Network, save_model  # noqa: E402

TINY = ('{"layer_sizes": [2, 3, 1], "hidden_activation": "tanh", "output_activation": "sigmoid", '
        '"loss": "bce", "init": "glorot_uniform", "dtype": "float64"}')


def _slot(argv):
    return slot_model(build_parser("report").parse_args(["report", "--quick", *argv]))


@pytest.fixture()
def weight_file(tmp_path):
    """xor-default's net with every W doubled: parameters its initializer would not give."""
    network = Network(catalog.spec("xor-default"))
    for layer in network.tensors:
        layer["W"] *= 2.0
    path = tmp_path / "doubled.safetensors"
    save_model(network, str(path))
    return path, network


def test_a_weight_file_model_runs_the_slot_scenarios_from_its_parameters(weight_file, tiny_leaks):
    path, network = weight_file
    model = _slot(["--weights", str(path)])
    ctx = Context(backends=["scratch", "torch"])
    parity = scenario_parity.run(ctx, model, scenario_parity.ParitySettings(batch=4))
    check_against(PARITY, parity, "parity[0]")
    assert (parity["model"], parity["data"]) == ("doubled", "XOR, first 4 training samples")
    assert parity["rows"] and all(row["ok"] for row in parity["rows"])
    curves = scenario_curves.run(ctx, model, scenario_curves.CurveSettings(samples=4, batch_size=4,
                                                                           optimizers=("sgd",)))
    check_against(CURVES, curves, "curves[0]")
    assert curves["model"] == "doubled" and all(check["ok"] for check in curves["checks"])
    data = load_dataset("xor", "float64")
    targets = network.targets(data.y_train)
    first = {run["backend"]: run["loss"][0] for run in curves["runs"]}
    from_file = network.loss(network.forward(data.x_train), targets)
    initializer = Network(network.spec)
    from_initializer = initializer.loss(initializer.forward(data.x_train), targets)
    assert set(first) == {"scratch", "torch"}
    for backend, loss in first.items():
        assert loss == pytest.approx(from_file, rel=1e-12), backend
        assert loss != pytest.approx(from_initializer, rel=1e-3), "the file's parameters, not its init"
    explain = scenario_explain.run(ctx, model, scenario_explain.ExplainSettings(batch=4))
    check_against(EXPLAIN, explain, "explain[0]")
    assert explain["model"] == "doubled" and explain["rows"]


@pytest.mark.slow
@pytest.mark.deliberate_mismatch            # the report runs the seed-faithful variants
def test_report_spec_quick_names_the_file_model_in_results_and_the_verdict(tmp_path, capsys):
    spec = tmp_path / "tiny.json"
    spec.write_text(TINY, encoding="utf-8")
    out = tmp_path / "report"
    assert main(["report", "--quick", "--spec", str(spec), "--seed", "3", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    results = load_results(out / "results.json")                  # the schema accepts the name
    assert results["model"] == "tiny"
    assert f"--spec {spec} --seed 3" in results["command"]
    for scenario in ("parity", "curves", "divergence"):
        assert [entry["model"] for entry in results[scenario]] == ["tiny", "lenet5"], scenario
    assert [entry["model"] for entry in results["explain"]] == ["tiny"]
    assert results["parity"][0]["specs"]["float64"]["seed"] == 3
    assert results["parity"][0]["data"].startswith("XOR")
    assert results["verdict"]["ok"] and "(tiny, lenet5;" in results["verdict"]["line"]
    assert stdout.splitlines()[-1] == results["verdict"]["line"]
    assert {"parity_errors-tiny.png", "divergence-tiny.png"} <= {path.name for path in out.iterdir()}
    assert json.loads((out / "results.json").read_text())["rows"][0] == {
        "scenario": "parity", "model": "tiny", "settings": results["rows"][0]["settings"]}
    assert np.isfinite(results["wall_time_s"])
