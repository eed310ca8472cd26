"""The model catalog (``scratch.catalog``): every entry builds a valid spec that says what its seed
recorded, every unrecorded setting is named as the project's choice, unknown names fail with one
error listing the catalog, and the seed net's sizes are written nowhere else in the code."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from reports.cli import train as cli_train
from scratch import catalog
from scratch.errors import SpecError
from scratch.spec import ModelSpec
from scratch.variants import VARIANTS, get_variant

ROOT = Path(__file__).resolve().parents[2]


def test_every_entry_builds_a_fresh_valid_spec_for_its_dataset():
    assert {"seed-000", "seed-001", "seed-002", "seed-003", "seed-004-xor"} <= set(catalog.MODELS)
    features = {"mnist": (784, 10), "xor": (2, 1), "spirals": (2, 2), "brackets": (20, 2)}
    for name, model in catalog.MODELS.items():
        assert model.name == name
        spec = model.spec()
        assert isinstance(spec, ModelSpec) and spec == model.spec()
        assert model.dataset in catalog.DATASETS, name
        n_in = int(np.prod(spec.input_shape))
        assert (n_in, spec.layer_shapes[-1][0]) == features[model.dataset], name
        assert "\n" not in model.description, f"{name}: the description is one line"
        if model.variant is not None:
            assert model.variant in VARIANTS, name
            get_variant(model.variant).make_optimizer(spec.optimizer)     # the variant fits the spec


def test_the_seeds_recorded_settings():
    s002 = catalog.spec("seed-002")
    assert (s002.layer_sizes, s002.hidden_activation, s002.output_activation, s002.loss, s002.init) == (
        (784, 64, 32, 10), "relu", "softmax", "cce", "lecun_normal")
    assert (s002.optimizer.name, s002.optimizer.learning_rate, s002.batch_size, s002.epochs) == (
        "sgd", 0.1, None, 800)
    assert catalog.spec("seed-000").init == catalog.spec("seed-003").init == "he_normal"
    assert catalog.spec("seed-001").init == "uniform_half"
    s003 = catalog.spec("seed-003").optimizer
    assert (s003.name, s003.learning_rate) == ("adam", 0.001)
    s004 = catalog.spec("seed-004-xor")
    assert (s004.layer_sizes, s004.init) == ((2, 4, 1), "small_normal")
    assert catalog.get_model("seed-001").variant == "seed001_bias_scalar"
    assert catalog.get_model("seed-003").variant == "seed003_adam_no_sqrt"
    assert catalog.get_model("seed-002").reported == "92.88 % test"


def test_every_unrecorded_setting_is_named_as_the_project_choice():
    for name, model in catalog.MODELS.items():
        assert set(model.recorded) <= set(catalog.SETTINGS), name
        if name.startswith("seed-"):
            assert model.recorded, f"{name}: a seed entry records something"
            choices = model.description.split("project's choice: ")[1].split(", ")
            assert choices == [s for s in catalog.SETTINGS if s not in model.recorded], name
        else:
            assert not model.recorded and "every setting is the project's choice" in model.description
    assert "dtype" in catalog.get_model("seed-002").project_choices
    assert "architecture" in catalog.get_model("seed-000").project_choices


def test_unknown_name_is_one_error_listing_the_catalog():
    with pytest.raises(SpecError) as raised:
        catalog.get_model("seed-005")
    message = str(raised.value)
    assert message.startswith("unknown model 'seed-005'")
    assert all(name in message for name in catalog.MODELS)
    with pytest.raises(SpecError, match="trains on xor; the report needs a model trained on mnist"):
        catalog.require_dataset("seed-004-xor", "mnist", "the report")


def test_train_dataset_defaults_are_catalog_models():
    for dataset, name in catalog.DATASET_DEFAULTS.items():
        assert catalog.get_model(name).dataset == dataset
        assert cli_train.default_spec(dataset) == catalog.spec(name)


SEED_NET = re.compile(r"784\s*[,-]\s*64\s*[,-]\s*32\s*[,-]\s*10")


def test_the_seed_net_is_written_only_in_the_catalog():
    offenders = []
    for folder in ("scratch", "twins", "judge", "reports", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "scratch" / "catalog.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if SEED_NET.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "take the seed net from scratch.catalog:\n" + "\n".join(offenders)
    assert SEED_NET.search("(784,64,32,10)") and SEED_NET.search("784-64-32-10"), "the pattern itself"
