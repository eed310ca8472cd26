"""``backprop-parity models`` and ``--model NAME`` (NumPy only): the listing, ``train --model``,
and an unknown name refused with one clear error and status 2 before any framework
or data is loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reports.cli.exit_codes import EXIT_OK, EXIT_USAGE
from reports.cli.main import main
from scratch import catalog

ROOT = Path(__file__).resolve().parents[2]


def test_models_lists_every_entry_with_dataset_architecture_training_and_description(capsys):
    assert main(["models"]) == EXIT_OK
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["name", "dataset", "architecture", "training"]
    listed = {line.split()[0]: line for line in lines[1:] if not line.startswith(" ")}
    assert list(listed) == list(catalog.MODELS)
    assert listed["seed-002"].split()[1:3] == ["mnist", "784-64-32-10"]
    assert "sgd[torch] lr=0.1, full batch, 800 epochs, float64" in listed["seed-002"]
    assert listed["seed-004-xor"].split()[1:3] == ["xor", "2-4-1"]
    flat = " ".join(out.split())
    for model in catalog.MODELS.values():
        assert " ".join(model.description.split()) in flat, model.name


def test_train_model_uses_its_spec_and_its_dataset(tmp_path, capsys):
    history = tmp_path / "h.json"
    code = main(["train", "--model", "seed-004-xor", "--epochs", "300", "-q", "--json", str(history)])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    document = json.loads(history.read_text(encoding="utf-8"))
    assert document["dataset"] == "xor"
    expected = catalog.spec("seed-004-xor").replace(epochs=300)
    assert document["spec"] == expected.to_dict(), "the catalog spec with the flag on top"
    assert document["final"]["steps"] == 300


def test_train_model_with_its_own_dataset_is_accepted_and_another_refused(capsys):
    assert main(["train", "--model", "xor-default", "--dataset", "xor", "--epochs", "2", "-q"]) == EXIT_OK
    capsys.readouterr()
    assert main(["train", "--model", "seed-004-xor", "--dataset", "mnist"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.strip() == "error: --model seed-004-xor trains on xor, not --dataset mnist"


def test_model_and_spec_together_are_refused(tmp_path, capsys):
    assert main(["train", "--model", "seed-002", "--spec", str(tmp_path / "s.json")]) == EXIT_USAGE
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["train"], ["check"], ["explain"], ["report", "--quick"]])
def test_unknown_model_lists_the_catalog_before_any_framework_import(command):
    code = ("import sys\n"
            "from reports.cli.main import main\n"
            f"code = main({[*command, '--model', 'seed-9']!r})\n"
            "heavy = sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax') if m in sys.modules)\n"
            "print(code, heavy)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == f"{EXIT_USAGE} []", result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "argument --model: unknown model 'seed-9'" in error
    assert all(name in error for name in catalog.MODELS), error


def test_report_from_json_takes_no_model(tmp_path, capsys):
    out = tmp_path / "r"
    saved = tmp_path / "results.json"
    saved.write_text("{}", encoding="utf-8")
    assert main(["report", "--from-json", str(saved), "--model", "seed-001", "--out", str(out)]) == EXIT_USAGE
    assert "--from-json runs nothing, so it takes no model" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("profile", ["quick", "default", "full"])
@pytest.mark.parametrize("name", ["seed-000", "xor-default", "spirals-default"])
def test_report_model_fills_the_model_slot_of_the_model_scenarios_only(profile, name):
    """``report --model NAME`` (any catalog model, whatever its data set) runs parity, curves,
    divergence and explain on NAME with the profile's settings; every other row is unchanged."""
    from reports.scenarios.suite import MODEL, PROFILES, with_model

    default = PROFILES[profile]
    assert {r.scenario for r in default.rows if r.model == MODEL} == {"parity", "curves", "divergence",
                                                                       "explain"}
    before, after = default.resolved(), with_model(default, name).resolved()
    assert len(before) == len(after)
    for was, now in zip(before, after, strict=True):
        if was.model == catalog.DEFAULT_MODEL:             # the slot: the one default model
            assert (now.scenario, now.model, now.settings) == (was.scenario, name, was.settings)
        else:
            assert now == was
    assert with_model(default, catalog.DEFAULT_MODEL) == default, "the report's default is the one default"


@pytest.mark.parametrize("profile", ["quick", "default", "full"])
def test_a_convolutional_model_in_the_slot_takes_the_cnn_rows_settings_once(profile):
    from reports.scenarios.suite import PROFILES, with_model

    default = PROFILES[profile]
    cnn = {r.scenario: r.settings for r in default.resolved() if r.model == "lenet5"}
    rows = with_model(default, "mnist-cnn").resolved()
    keys = [(r.scenario, r.model) for r in rows]
    assert len(keys) == len(set(keys))
    slot = {r.scenario: r.settings for r in rows if r.model == "mnist-cnn"}
    assert set(slot) == {"parity", "curves", "divergence", "explain"}
    for scenario in ("parity", "curves", "divergence"):
        assert slot[scenario] == cnn[scenario], scenario
    same = with_model(default, "lenet5").resolved()          # lenet5 twice: each (scenario, model) once
    assert len({(r.scenario, r.model) for r in same}) == len(same)
    assert [r.scenario for r in same if r.model == "lenet5"].count("parity") == 1
