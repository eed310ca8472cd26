"""Every layer kind is declared once (``scratch.layer_specs.LAYER_SPECS``), and this registry test
holds each kind to the rest of the project without importing a framework: an engine class with
the stack's protocol, a row or a reasoned refusal in each twin's table (read from the twin's
source), a finite-difference case, a parity case, an explain entry (its ``FORMULAS`` and a rule in
the study graph) and at least one mutant of its engine module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from reports.explain.walk import TRACED
from reports.study.graph import KINDS
from scratch.layer_specs import LAYER_SPECS

ROOT = Path(__file__).resolve().parents[2]
# A kind a twin has no row for, and why (shown when the registry test names a missing row). A
# row may still refuse some settings of its kind with a BackendError that says why (torch's
# nn.PReLU cannot hold one slope per element of a map: test_conv_parity's REFUSED).
REFUSED: dict[tuple[str, str], str] = {}
# Kinds whose engine module has no mutant of its own yet, and why.
NO_MUTANT = {"dropout": "dropout's masks are the training plan's (scratch.batching); its mutants live there",
             "flatten": "flatten is a reshape; its order is caught by the channels_last parity cases"}


def table_keys(path: str, name: str) -> set[str]:
    """The string keys of the module-level dict ``name`` in a twin's source."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return {key.value for key in node.value.keys if isinstance(key, ast.Constant)}
    raise AssertionError(f"{path} has no table {name}")


TWINS = {"torch": lambda: table_keys("twins/torch_layers.py", "LAYERS") | {"dropout"},
         "keras": lambda: table_keys("twins/keras_layers.py", "LAYERS"),
         "jax": lambda: table_keys("twins/jax_layers.py", "LAYERS") | {"dropout"}}


def files_mentioning(folder: str, word: str) -> list[Path]:
    return [path for path in (ROOT / folder).rglob("*.py") if word in path.read_text(encoding="utf-8")]


@pytest.mark.parametrize("kind", sorted(LAYER_SPECS))
def test_every_kind_has_an_engine_class_with_the_stack_protocol(kind):
    engine = LAYER_SPECS[kind].engine_class
    if kind != "dropout":
        assert callable(getattr(engine, "run", None)) and callable(getattr(engine, "differentiate", None))
    assert engine in TRACED or kind == "dropout" or any(issubclass(engine, t) for t in TRACED)


@pytest.mark.parametrize("twin", sorted(TWINS))
@pytest.mark.parametrize("kind", sorted(LAYER_SPECS))
def test_every_kind_has_a_row_or_a_reasoned_refusal_in_each_twin(kind, twin):
    assert kind in TWINS[twin]() or REFUSED.get((twin, kind)), \
        f"{twin} twin: no row for {kind!r} and no reason"


@pytest.mark.parametrize("kind", sorted(LAYER_SPECS))
def test_every_kind_has_finite_difference_and_parity_cases(kind):
    name = LAYER_SPECS[kind].__name__
    numpy_tests = files_mentioning("parity_tests/numpy_only", name)
    assert any("whole_stack_check" in p.read_text(encoding="utf-8") or "numerical_gradient" in
               p.read_text(encoding="utf-8") for p in numpy_tests), f"no finite-difference case uses {name}"
    spec_words = (name, f'"{kind}"', "catalog")
    assert any(files_mentioning("parity_tests/frameworks", word) for word in spec_words)


@pytest.mark.parametrize("kind", sorted(LAYER_SPECS))
def test_every_kind_has_a_mutant_of_its_engine_module(kind):
    if kind in NO_MUTANT:
        pytest.skip(NO_MUTANT[kind])
    module = LAYER_SPECS[kind].engine_class.__module__.replace(".", "/") + ".py"   # as tools/mutants name it
    mutants = [p for p in (ROOT / "tools/mutants").glob("*.toml") if f'file = "{module}"' in p.read_text()]
    assert mutants, f"no mutant in tools/mutants/ changes {module} ({kind})"


def test_declared_tensors_give_the_shapes_the_weight_file_has_always_used():
    """Format 2's names are torch's attributes: every kind's trainable tensors are stored as weight
    and bias (or weight alone), its statistics as running_mean, running_var; a recurrent layer's
    as torch's ``weight_ih_l0``, … without the ``_l0`` (or Keras's one ``bias``)."""
    for spec in LAYER_SPECS.values():
        stored = [t.stored for t in spec.tensors]
        assert stored in ([], ["weight"], ["weight", "bias"],
                          ["weight", "bias", "running_mean", "running_var"],
                          ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "bias"])


@pytest.mark.parametrize("kind", sorted(LAYER_SPECS))
def test_every_kind_has_its_formulas_and_a_study_graph_rule(kind):
    """The study quotes each quantity's statement and math from the engine class's ``FORMULAS``
    (its forward Z, its input gradient, each declared tensor's gradient) and draws the layer with
    its row in the study graph's table (dropout is drawn inside the layer it follows)."""
    spec = LAYER_SPECS[kind]
    formulas = spec.engine_class.FORMULAS
    if kind == "dropout":
        assert {"A", "dH"} <= set(formulas)
        return
    declared = {tensor.name for tensor in spec.tensors if tensor.trainable}
    assert {"Z", "dA_prev"} | declared <= set(formulas), f"{kind}: FORMULAS lacks {declared - set(formulas)}"
    assert kind in KINDS, f"the study graph has no rule for {kind!r} (reports/study/graph.py KINDS)"
